//! The planning review (`budgetgate report`): per team and tier, over a range ending at
//! `now`, what the budget allowed and what shipping cost — releases, rollbacks, change
//! failure rate, deployment frequency, budget consumed, incidents and their overage, and
//! exception use. Computed from the Release ledger, the TeamBudgets the controller
//! publishes and the BudgetExceptions.
//!
//! Pure: plain objects and `now` in, a [`Report`] out; [`render`] turns it into Markdown,
//! CSV or JSON. Every number's definition is in [`DEFINITIONS`] (printed in the Markdown
//! footer) and in the design notes.

use crate::api::{
    BudgetException, BudgetState, Duration, ExceptionKind, Release, ReleasePhase, TeamBudget,
    Timestamp,
};
use crate::index::{Index, SloSignals};
use serde::Serialize;
use std::collections::BTreeMap;

pub mod render;

/// What the report is computed from.
pub struct ReportInput<'a> {
    pub releases: &'a [Release],
    pub team_budgets: &'a [TeamBudget],
    pub exceptions: &'a [BudgetException],
    /// Namespace → (team, tier) mapping and the platform budgets.
    pub index: &'a Index,
    /// Length of the range; it ends at `now`.
    pub since: &'a Duration,
    pub now: Timestamp,
    /// Each SLO's counts over the range (its `period` = the range), when Prometheus was read.
    pub events: Option<&'a [SloSignals]>,
}

/// The definitions of every number, in the words the Markdown footer prints.
pub const DEFINITIONS: &[(&str, &str)] = &[
    (
        "Range",
        "from `now − since` to `now`, both included; a Release belongs to it when it was created in it.",
    ),
    (
        "Team and tier",
        "those of the Release's namespace (labels `budgetgate.dev/team` and `budgetgate.dev/tier`, else the policy's default tier). Releases of namespaces without a team are not counted.",
    ),
    (
        "Releases",
        "Releases created in the range whose phase is not Superseded (a superseded canary was replaced by a newer revision of the same rollout). A Release without a phase counts as Progressing.",
    ),
    (
        "Rollbacks",
        "Releases in the range that were RolledBack or Failed.",
    ),
    (
        "Change failure rate",
        "rollbacks ÷ completed-or-failed releases (Promoted + Direct + RolledBack + Failed); none when there were none. Observed (dry-run) and Progressing releases are left out.",
    ),
    (
        "Deployments per week",
        "completed deployments (Promoted + Direct) ÷ the range in weeks.",
    ),
    (
        "Budget consumed by releases",
        "the sum of the Releases' `status.budgetConsumed` (fractions of the team's budget for the tier's period).",
    ),
    (
        "Remaining, band, state",
        "the team's budget now, as the controller last published it on the TeamBudget.",
    ),
    (
        "Incidents",
        "the TeamBudget's incidents that overlap the range (started before `now` and ended after its start, or still open).",
    ),
    (
        "Incident budget consumed",
        "the sum of the incidents' `budgetConsumed`.",
    ),
    (
        "Overage",
        "budget an incident consumed beyond what was left when it opened: max(0, budgetConsumed − max(0, remainingAtStart)), summed over the incidents that record `remainingAtStart`; an incident that opened on an exhausted budget is all overage.",
    ),
    ("Over budget", "incidents not `withinBudget`."),
    (
        "Overdue",
        "incidents that lasted longer than the tier's `recoveryTarget`.",
    ),
    (
        "Exception releases",
        "Releases in the range whose `spec.exception` names the BudgetException that let them through (of any phase).",
    ),
    (
        "Active exceptions",
        "BudgetExceptions whose `expiresAt` is after `now`; rollouts used counts every Release naming it, in or before the range.",
    ),
    (
        "Ledger",
        "the controller keeps the newest 20 Releases per Deployment; a Deployment released more often within the range is under-counted.",
    ),
    (
        "Events (with Prometheus)",
        "each SLO's bad and total events over the range, summed per team and tier; burn over the range = Σ bad ÷ Σ (budget ratio × total), so 1 means the team spent exactly what its objectives allow for that traffic.",
    ),
    (
        "Tier and platform totals",
        "sums of the team counts; rates are recomputed from the sums, and remaining is the platform aggregate the controller published for the tier.",
    ),
];

/// The review.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub from: Timestamp,
    pub to: Timestamp,
    /// The range as given, e.g. `90d`.
    pub since: String,
    /// One row per team and tier, grouped by tier, worst (lowest remaining) first.
    pub teams: Vec<TeamRow>,
    /// Per tier: the sums of its teams and the platform aggregate.
    pub tiers: BTreeMap<String, TierTotals>,
    /// Every tier together.
    pub platform: Activity,
    pub rollbacks: Vec<RollbackRow>,
    pub incidents: Vec<IncidentRow>,
    /// Exceptions named by Releases in the range.
    pub exceptions_used: Vec<ExceptionUse>,
    /// Exceptions in force at `now`.
    pub active_exceptions: Vec<ActiveException>,
    /// Releases in the range in namespaces without a team (not in any row).
    pub unmanaged_releases: u32,
}

/// Release counts by phase, over the range.
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PhaseCounts {
    pub promoted: u32,
    pub rolled_back: u32,
    pub direct: u32,
    pub observed: u32,
    pub failed: u32,
    pub progressing: u32,
    pub superseded: u32,
}

impl PhaseCounts {
    fn add(&mut self, phase: Option<ReleasePhase>) {
        let slot = match phase {
            Some(ReleasePhase::Promoted) => &mut self.promoted,
            Some(ReleasePhase::RolledBack) => &mut self.rolled_back,
            Some(ReleasePhase::Direct) => &mut self.direct,
            Some(ReleasePhase::Observed) => &mut self.observed,
            Some(ReleasePhase::Failed) => &mut self.failed,
            Some(ReleasePhase::Superseded) => &mut self.superseded,
            // Still open: waiting in the queue or running.
            Some(ReleasePhase::Queued | ReleasePhase::Progressing) | None => &mut self.progressing,
        };
        *slot += 1;
    }

    fn sum(&mut self, other: &PhaseCounts) {
        self.promoted += other.promoted;
        self.rolled_back += other.rolled_back;
        self.direct += other.direct;
        self.observed += other.observed;
        self.failed += other.failed;
        self.progressing += other.progressing;
        self.superseded += other.superseded;
    }
}

/// The counts every row and total has.
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Releases in the range that were not superseded.
    pub releases: u32,
    pub phases: PhaseCounts,
    /// RolledBack + Failed.
    pub rollbacks: u32,
    /// rollbacks / (Promoted + Direct + RolledBack + Failed).
    pub change_failure_rate: Option<f64>,
    /// (Promoted + Direct) per week of the range.
    pub deployment_frequency: f64,
    pub incidents: u32,
    pub incidents_over_budget: u32,
    pub incidents_overdue: u32,
    pub exception_releases: u32,
}

impl Activity {
    fn sum(&mut self, other: &Activity) {
        self.phases.sum(&other.phases);
        self.incidents += other.incidents;
        self.incidents_over_budget += other.incidents_over_budget;
        self.incidents_overdue += other.incidents_overdue;
        self.exception_releases += other.exception_releases;
    }

    /// Fills the derived numbers from the phase counts.
    fn derive(&mut self, weeks: f64) {
        let p = &self.phases;
        self.releases =
            p.promoted + p.rolled_back + p.direct + p.observed + p.failed + p.progressing;
        self.rollbacks = p.rolled_back + p.failed;
        let judged = p.promoted + p.direct + p.rolled_back + p.failed;
        self.change_failure_rate =
            (judged > 0).then(|| f64::from(self.rollbacks) / f64::from(judged));
        self.deployment_frequency = if weeks > 0.0 {
            f64::from(p.promoted + p.direct) / weeks
        } else {
            0.0
        };
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamRow {
    pub team: String,
    pub tier: String,
    /// The team's budget now (from its TeamBudget).
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub state: Option<BudgetState>,
    #[serde(flatten)]
    pub activity: Activity,
    /// Sum of the Releases' budgetConsumed.
    pub budget_consumed: f64,
    /// Sum of the incidents' budgetConsumed.
    pub incident_budget_consumed: f64,
    /// Sum of max(0, budgetConsumed − max(0, remainingAtStart)).
    pub incident_overage: f64,
    /// Bad events of the team's SLOs over the range (with Prometheus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_bad: Option<f64>,
    /// All events of the team's SLOs over the range (with Prometheus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_total: Option<f64>,
    /// Σ bad ÷ Σ (budget ratio × total) over the range (with Prometheus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_burn_rate: Option<f64>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TierTotals {
    /// The platform aggregate of the tier, as published.
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub teams: u32,
    #[serde(flatten)]
    pub activity: Activity,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRow {
    pub team: String,
    pub tier: String,
    pub namespace: String,
    pub release: String,
    pub deployment: String,
    pub revision: String,
    pub phase: ReleasePhase,
    pub reason: Option<String>,
    pub created: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub budget_consumed: Option<f64>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IncidentRow {
    pub team: String,
    pub tier: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub peak_burn: f64,
    pub remaining_at_start: Option<f64>,
    pub budget_consumed: f64,
    /// None when remainingAtStart is not recorded.
    pub overage: Option<f64>,
    pub within_budget: bool,
    pub overdue: bool,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionUse {
    pub namespace: String,
    pub exception: String,
    pub team: Option<String>,
    /// Releases in the range naming it.
    pub releases: u32,
    /// From the BudgetException when it still exists.
    pub kind: Option<ExceptionKind>,
    pub approved_by: Option<String>,
    pub reason: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActiveException {
    pub namespace: String,
    pub exception: String,
    pub team: Option<String>,
    pub kind: ExceptionKind,
    pub approved_by: String,
    pub reason: String,
    pub expires_at: Timestamp,
    pub rollouts_used: u32,
    pub max_rollouts: Option<u32>,
}

/// Overage of one incident; `None` when the remaining budget at its start is unknown.
pub fn overage(budget_consumed: f64, remaining_at_start: Option<f64>) -> Option<f64> {
    remaining_at_start.map(|left| (budget_consumed - left.max(0.0)).max(0.0))
}

fn team_row<'r>(
    rows: &'r mut BTreeMap<(String, String), TeamRow>,
    team: &str,
    tier: &str,
) -> &'r mut TeamRow {
    rows.entry((team.to_owned(), tier.to_owned()))
        .or_insert_with(|| TeamRow {
            team: team.to_owned(),
            tier: tier.to_owned(),
            remaining: None,
            band: None,
            state: None,
            activity: Activity::default(),
            budget_consumed: 0.0,
            incident_budget_consumed: 0.0,
            incident_overage: 0.0,
            events_bad: None,
            events_total: None,
            range_burn_rate: None,
        })
}

/// Builds the review.
pub fn build(input: &ReportInput) -> Report {
    let now = input.now;
    let from = now - input.since.signed();
    let weeks = input.since.as_secs_f64() / (7.0 * 86_400.0);
    let in_range = |t: Timestamp| t >= from && t <= now;

    let mut rows: BTreeMap<(String, String), TeamRow> = BTreeMap::new();

    // Budgets now, and incidents, from the TeamBudgets.
    let mut incidents = Vec::new();
    for budget in input.team_budgets {
        let team = &budget.spec.team;
        for tier in budget.status.iter().flat_map(|s| &s.tiers) {
            let r = team_row(&mut rows, team, &tier.tier);
            r.remaining = tier.remaining;
            r.band = tier.band.clone();
            r.state = tier.state;
            for incident in &tier.incidents {
                let start = incident.start.0;
                let end = incident.end.as_ref().map(|t| t.0);
                if start > now || end.is_some_and(|e| e < from) {
                    continue;
                }
                let overage = overage(incident.budget_consumed, incident.remaining_at_start);
                r.activity.incidents += 1;
                r.activity.incidents_over_budget += u32::from(!incident.within_budget);
                r.activity.incidents_overdue += u32::from(incident.overdue);
                r.incident_budget_consumed += incident.budget_consumed;
                r.incident_overage += overage.unwrap_or(0.0);
                incidents.push(IncidentRow {
                    team: team.clone(),
                    tier: tier.tier.clone(),
                    start,
                    end,
                    peak_burn: incident.peak_burn,
                    remaining_at_start: incident.remaining_at_start,
                    budget_consumed: incident.budget_consumed,
                    overage,
                    within_budget: incident.within_budget,
                    overdue: incident.overdue,
                });
            }
        }
    }

    // The ledger.
    let mut rollbacks = Vec::new();
    let mut used: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut used_ever: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut unmanaged_releases = 0;
    for release in input.releases {
        let namespace = release.metadata.namespace.clone().unwrap_or_default();
        if let Some(exception) = &release.spec.exception {
            *used_ever
                .entry((namespace.clone(), exception.clone()))
                .or_default() += 1;
        }
        let Some(created) = release.metadata.creation_timestamp.as_ref().map(|t| t.0) else {
            continue;
        };
        if !in_range(created) {
            continue;
        }
        let Some((team, tier)) = input.index.team_of(&namespace) else {
            unmanaged_releases += 1;
            continue;
        };
        let r = team_row(&mut rows, &team, &tier);
        let status = release.status.as_ref();
        let phase = status.and_then(|s| s.phase);
        r.activity.phases.add(phase);
        r.budget_consumed += status.and_then(|s| s.budget_consumed).unwrap_or(0.0);
        if let Some(exception) = &release.spec.exception {
            r.activity.exception_releases += 1;
            *used
                .entry((namespace.clone(), exception.clone()))
                .or_default() += 1;
        }
        if let Some(phase @ (ReleasePhase::RolledBack | ReleasePhase::Failed)) = phase {
            rollbacks.push(RollbackRow {
                team,
                tier,
                namespace,
                release: release.metadata.name.clone().unwrap_or_default(),
                deployment: release.spec.deployment.clone(),
                revision: release.spec.revision.clone(),
                phase,
                reason: status.and_then(|s| s.reason.clone()),
                created,
                completed_at: status.and_then(|s| s.completed_at.as_ref()).map(|t| t.0),
                budget_consumed: status.and_then(|s| s.budget_consumed),
            });
        }
    }
    rollbacks.sort_by(|a, b| {
        (a.created, &a.namespace, &a.release).cmp(&(b.created, &b.namespace, &b.release))
    });
    incidents.sort_by(|a, b| (a.start, &a.team, &a.tier).cmp(&(b.start, &b.team, &b.tier)));

    let exception_of = |namespace: &str, name: &str| {
        input.exceptions.iter().find(|x| {
            x.metadata.namespace.as_deref() == Some(namespace)
                && x.metadata.name.as_deref() == Some(name)
        })
    };
    let team_of = |namespace: &str| input.index.team_of(namespace).map(|(team, _)| team);
    let exceptions_used = used
        .into_iter()
        .map(|((namespace, exception), releases)| {
            let object = exception_of(&namespace, &exception);
            ExceptionUse {
                team: team_of(&namespace),
                kind: object.map(|x| x.spec.kind),
                approved_by: object.map(|x| x.spec.approved_by.clone()),
                reason: object.map(|x| x.spec.reason.clone()),
                namespace,
                exception,
                releases,
            }
        })
        .collect();
    let mut active_exceptions: Vec<ActiveException> = input
        .exceptions
        .iter()
        .filter(|x| x.spec.expires_at.0 > now)
        .map(|x| {
            let namespace = x.metadata.namespace.clone().unwrap_or_default();
            let name = x.metadata.name.clone().unwrap_or_default();
            ActiveException {
                team: team_of(&namespace),
                rollouts_used: used_ever
                    .get(&(namespace.clone(), name.clone()))
                    .copied()
                    .unwrap_or(0),
                kind: x.spec.kind,
                approved_by: x.spec.approved_by.clone(),
                reason: x.spec.reason.clone(),
                expires_at: x.spec.expires_at.0,
                max_rollouts: x.spec.max_rollouts,
                namespace,
                exception: name,
            }
        })
        .collect();
    active_exceptions
        .sort_by(|a, b| (&a.namespace, &a.exception).cmp(&(&b.namespace, &b.exception)));

    // Event counts over the range, summed per team and tier like the budgets (§4).
    let mut allowed: BTreeMap<(String, String), f64> = BTreeMap::new();
    for slo in input.events.into_iter().flatten() {
        let (Some((team, tier)), Some(spend)) =
            (input.index.team_of(&slo.key.namespace), slo.signals.period)
        else {
            continue;
        };
        let budget_ratio = crate::budget::budget_ratio(slo.objective);
        let r = team_row(&mut rows, &team, &tier);
        *r.events_bad.get_or_insert(0.0) += spend.bad;
        // Spend keeps b · total; dividing it back leaves float dust: events are whole.
        *r.events_total.get_or_insert(0.0) += (spend.allowed / budget_ratio * 1e6).round() / 1e6;
        *allowed.entry((team, tier)).or_default() += spend.allowed;
    }
    for (key, allowed) in allowed {
        if let Some(r) = rows.get_mut(&key) {
            r.range_burn_rate = r
                .events_bad
                .map(|bad| if allowed > 0.0 { bad / allowed } else { 0.0 });
        }
    }

    let mut teams: Vec<TeamRow> = rows.into_values().collect();
    let mut tiers: BTreeMap<String, TierTotals> = BTreeMap::new();
    let mut platform = Activity::default();
    for r in &mut teams {
        r.activity.derive(weeks);
        let totals = tiers.entry(r.tier.clone()).or_insert_with(|| {
            let published = input.index.budgets.platform.get(&r.tier);
            TierTotals {
                remaining: published.and_then(|a| a.remaining),
                band: published.and_then(|a| a.band.clone()),
                teams: 0,
                activity: Activity::default(),
            }
        });
        totals.teams += 1;
        totals.activity.sum(&r.activity);
        platform.sum(&r.activity);
    }
    for totals in tiers.values_mut() {
        totals.activity.derive(weeks);
    }
    platform.derive(weeks);
    // Worst first within a tier; an unknown budget sorts first (it needs a look too).
    teams.sort_by(|a, b| {
        a.tier
            .cmp(&b.tier)
            .then(
                a.remaining
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&b.remaining.unwrap_or(f64::NEG_INFINITY)),
            )
            .then(a.team.cmp(&b.team))
    });

    Report {
        from,
        to: now,
        since: input.since.as_str().to_owned(),
        teams,
        tiers,
        platform,
        rollbacks,
        incidents,
        exceptions_used,
        active_exceptions,
        unmanaged_releases,
    }
}

#[cfg(test)]
mod tests;
