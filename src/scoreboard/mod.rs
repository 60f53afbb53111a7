//! The scoreboard: what platform leads and teams look at — every team's budget, burn,
//! releases and risk — as three views (platform, team, adoption) built from the same
//! [`Index`] the webhook answers from. Pure: the views are data ([`html`] renders them,
//! their JSON is the `/api/v1/…` API); the charts' series come in from the I/O layer
//! ([`http`]) that asks Prometheus for them.

pub mod html;
pub mod http;
pub mod svg;

use crate::api::{
    BudgetState, Enforcement, Incident, Plan, ReleasePhase, Severity, Timestamp, Window,
};
use crate::budget::{self, Assessment, Period};
use crate::decision::{self, AdmissionRequest, Operation};
use crate::index::{Index, ObjectKey, ReleaseEntry};
use crate::policy::{BandLookup, Policy, Tier};
use serde::Serialize;
use std::collections::BTreeMap;

/// Burn windows shown per team on the platform page.
pub const PLATFORM_BURN_WINDOWS: [(&str, u64); 3] = [("1h", 3_600), ("6h", 21_600), ("1d", 86_400)];

/// How far back the adoption page looks.
pub const ADOPTION_DAYS: i64 = 30;

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub evaluated_at: Option<Timestamp>,
    pub tiers: Vec<TierView>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TierView {
    pub tier: String,
    pub enforcement: Option<Enforcement>,
    /// The platform aggregate of the tier.
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub state: BudgetState,
    /// Worst first: frozen teams, then teams that would be frozen under enforcement, then
    /// teams without data, then by remaining.
    pub teams: Vec<TeamRow>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamRow {
    pub team: String,
    pub tier: String,
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub state: BudgetState,
    /// Rollouts are refused now (some namespace of the team enforces): why, or `None`.
    pub frozen: Option<String>,
    /// The budget rules would refuse rollouts, but none of the team's namespaces
    /// enforces (dry-run or warn): why, or `None`.
    pub would_freeze: Option<String>,
    /// `1h`, `6h`, `1d` → burn rate (`None` = no data for the window).
    pub burn_rates: BTreeMap<String, Option<f64>>,
    pub rollouts_in_flight: u32,
    /// Rollouts waiting in the team's queue for the budget (DESIGN §7.10).
    pub queued: u32,
    pub last_release: Option<ReleaseRow>,
    pub exhausts_at: Option<Timestamp>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRow {
    pub namespace: String,
    pub name: String,
    pub deployment: String,
    pub revision: String,
    pub phase: Option<ReleasePhase>,
    pub band: Option<String>,
    /// `25,50,100 every 6s`.
    pub plan: Option<String>,
    pub remaining_at_start: Option<f64>,
    pub budget_consumed: Option<f64>,
    pub reason: Option<String>,
    pub exception: Option<String>,
    pub created: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub team: String,
    pub evaluated_at: Option<Timestamp>,
    pub tiers: Vec<TeamTier>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamTier {
    pub tier: String,
    pub namespaces: Vec<String>,
    pub row: TeamRow,
    pub slos: Vec<SloView>,
    /// Newest first.
    pub releases: Vec<ReleaseRow>,
    pub incidents: Vec<IncidentRow>,
    pub exceptions: Vec<ExceptionRow>,
    /// What the webhook would answer now to a new rollout in each namespace.
    pub decisions: Vec<DecisionRow>,
    /// The team's queue in the tier, in the order its rollouts start.
    pub queue: Vec<decision::queue::Queued>,
    /// The team's events over the period by cluster, as the controller last published them
    /// (a global view with `--cluster-name`; empty otherwise).
    pub clusters: Vec<crate::api::ClusterEvents>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloView {
    pub namespace: String,
    pub name: String,
    pub service: String,
    pub objective: f64,
    pub window: String,
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub state: BudgetState,
    pub burn_rates: BTreeMap<String, Option<f64>>,
    pub alerts: Vec<String>,
    pub exhausts_at: Option<Timestamp>,
    /// The tier's alert pairs: the burn chart draws their factors.
    pub thresholds: Vec<Threshold>,
    pub charts: Charts,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    pub name: String,
    pub severity: Severity,
    pub factor: f64,
}

/// The two charts of an SLO, as the I/O layer found them.
#[derive(Serialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Charts {
    pub burndown: Series,
    pub burn: Series,
}

/// Points `(unix seconds, value)` over `[start, end]`, or why there are none.
#[derive(Serialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub start: i64,
    pub end: i64,
    pub points: Vec<(i64, f64)>,
    pub missing: Option<String>,
}

impl Series {
    pub fn missing(start: i64, end: i64, why: impl Into<String>) -> Series {
        Series {
            start,
            end,
            points: Vec::new(),
            missing: Some(why.into()),
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IncidentRow {
    #[serde(flatten)]
    pub incident: Incident,
    /// `within budget`, `overage`, `overdue`, `open`.
    pub verdict: &'static str,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionRow {
    pub namespace: String,
    pub name: String,
    pub kind: String,
    pub extra_budget: Option<f64>,
    pub reason: String,
    pub approved_by: String,
    pub expires_at: Timestamp,
    pub max_rollouts: Option<u32>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRow {
    pub namespace: String,
    /// `allow`, `deny`, `warn`, `dryrun-deny`.
    pub verdict: &'static str,
    pub mode: Enforcement,
    pub reason: &'static str,
    pub band: Option<String>,
    pub plan: Option<String>,
    /// The denial text, or the first warning.
    pub message: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Adoption {
    pub evaluated_at: Option<Timestamp>,
    pub since: Timestamp,
    pub namespaces: Vec<AdoptionRow>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionRow {
    pub namespace: String,
    pub team: String,
    pub tier: String,
    pub mode: Enforcement,
    /// Releases created in the range (superseded ones excluded).
    pub releases: u32,
    /// Budget exhausted when the release started: enforce would have refused it.
    pub would_deny: u32,
    /// Started below the tier's first band: enforce would have paced it as a slower canary.
    pub would_slow: u32,
    /// No budget data when it started.
    pub unknown: u32,
    /// The releases that would have been denied or slowed, newest first.
    pub evidence: Vec<Evidence>,
    /// What enforce would answer to a new rollout now.
    pub now: DecisionRow,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub release: ReleaseRow,
    /// `deny` or `slow`.
    pub outcome: &'static str,
}

fn burn_map(a: Option<&Assessment>, windows: &[(&str, u64)]) -> BTreeMap<String, Option<f64>> {
    windows
        .iter()
        .map(|(label, secs)| ((*label).to_owned(), a.and_then(|a| a.burn_rate(*secs))))
        .collect()
}

fn plan_text(plan: &Plan) -> String {
    format!("{} every {}", plan.steps_annotation(), plan.pause)
}

fn release_row(key: &ObjectKey, r: &ReleaseEntry) -> ReleaseRow {
    ReleaseRow {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        deployment: r.deployment.clone(),
        revision: r.revision.clone(),
        phase: r.phase,
        band: r.band.clone(),
        plan: r.plan.as_ref().map(plan_text),
        remaining_at_start: r.remaining_at_start,
        budget_consumed: r.budget_consumed,
        reason: r.reason.clone(),
        exception: r.exception.clone(),
        created: r.created,
        completed_at: r.completed_at,
    }
}

fn newest_first(rows: &mut [ReleaseRow]) {
    rows.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.name.cmp(&a.name)));
}

/// Why rollouts of a team are refused now (DESIGN §6 step 5), or `None`.
fn frozen(
    policy: &Policy,
    tier: &Tier,
    team: &Assessment,
    platform: Option<&Assessment>,
) -> Option<String> {
    if team.is_exhausted() {
        return Some("error budget exhausted".into());
    }
    if team.state == BudgetState::Burning && tier.freeze_on_page_burn {
        return Some(
            format!("burning at page rate ({})", team.alerts.join(", ")).replace(" ()", ""),
        );
    }
    if policy.platform_freeze && platform.is_some_and(Assessment::is_exhausted) {
        return Some(format!(
            "platform freeze: tier {} aggregate exhausted",
            tier.name
        ));
    }
    None
}

/// The namespaces of every (team, tier), in one pass.
fn namespaces_by_team(index: &Index) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for ns in index.namespaces.keys() {
        if let Some(team) = index.team_of(ns) {
            out.entry(team).or_default().push(ns.clone());
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn team_row(
    index: &Index,
    policy: &Policy,
    team: &str,
    tier_name: &str,
    namespaces: &[String],
    a: &Assessment,
    now: Timestamp,
) -> TeamRow {
    let tier = policy.tier(tier_name);
    let releases: Vec<(&ObjectKey, &ReleaseEntry)> = namespaces
        .iter()
        .flat_map(|ns| index.namespace_releases(ns))
        .collect();
    let in_flight = releases
        .iter()
        .filter(|(_, r)| r.phase == Some(ReleasePhase::Progressing))
        .count() as u32;
    let last_release = releases
        .iter()
        .max_by(|(ka, a), (kb, b)| a.created.cmp(&b.created).then_with(|| ka.cmp(kb)))
        .map(|(k, r)| release_row(k, r));
    let exhausts_at = a.exhausts_at.or_else(|| {
        let tier = tier?;
        let period = Period::at(&tier.window, now);
        budget::forecast(
            a.remaining?,
            a.burn_rate(86_400)?,
            period.length_seconds as f64,
            now,
        )
    });
    let freeze = tier.and_then(|t| frozen(policy, t, a, index.budgets.platform.get(tier_name)));
    // A team without namespaces (published before they were relabelled) counts as enforced.
    // (Without the tier in the policy nothing is frozen either way.)
    let enforced = namespaces.is_empty()
        || tier.is_some_and(|t| {
            namespaces
                .iter()
                .any(|ns| index.enforcement(ns, t) == Enforcement::Enforce)
        });
    TeamRow {
        team: team.to_owned(),
        tier: tier_name.to_owned(),
        remaining: a.remaining,
        band: a.band.clone(),
        state: a.state,
        frozen: freeze.clone().filter(|_| enforced),
        would_freeze: freeze.filter(|_| !enforced),
        burn_rates: burn_map(Some(a), &PLATFORM_BURN_WINDOWS),
        rollouts_in_flight: in_flight,
        queued: releases
            .iter()
            .filter(|(_, r)| r.phase == Some(ReleasePhase::Queued))
            .count() as u32,
        last_release,
        exhausts_at,
    }
}

/// Sort key: frozen first, then frozen if it were enforced, then no data, then the
/// least remaining.
fn worst_first(rows: &mut [TeamRow]) {
    rows.sort_by(|a, b| {
        let key = |r: &TeamRow| {
            (
                r.frozen.is_none(),
                r.would_freeze.is_none(),
                r.remaining.is_some(),
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| {
                a.remaining
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&b.remaining.unwrap_or(f64::NEG_INFINITY))
            })
            .then_with(|| a.team.cmp(&b.team))
    });
}

/// The platform page: per tier its aggregate and every team, worst first.
pub fn platform(index: &Index, now: Timestamp) -> Platform {
    let Some(policy) = &index.policy else {
        return Platform {
            evaluated_at: index.budgets.evaluated_at,
            tiers: Vec::new(),
        };
    };
    let namespaces = namespaces_by_team(index);
    let mut tiers: BTreeMap<&str, Vec<TeamRow>> = BTreeMap::new();
    for (key @ (team, tier), a) in &index.budgets.teams {
        let ns = namespaces.get(key).map_or(&[][..], Vec::as_slice);
        tiers
            .entry(tier.as_str())
            .or_default()
            .push(team_row(index, policy, team, tier, ns, a, now));
    }
    for tier in index.budgets.platform.keys() {
        tiers.entry(tier.as_str()).or_default();
    }
    Platform {
        evaluated_at: index.budgets.evaluated_at,
        tiers: tiers
            .into_iter()
            .map(|(tier, mut teams)| {
                worst_first(&mut teams);
                let aggregate = index.budgets.platform.get(tier);
                TierView {
                    tier: tier.to_owned(),
                    enforcement: policy.tier(tier).map(|t| t.enforcement),
                    remaining: aggregate.and_then(|a| a.remaining),
                    band: aggregate.and_then(|a| a.band.clone()),
                    state: aggregate.map_or(BudgetState::Unknown, |a| a.state),
                    teams,
                }
            })
            .collect(),
    }
}

/// What the webhook answers now to a rollout (a new image) of a Deployment without
/// labels in `namespace`: the team's budget decides, with the SLOs that select every
/// Deployment of the namespace.
fn decision_now(index: &Index, namespace: &str, now: Timestamp) -> Option<DecisionRow> {
    let deployment = |image: &str| {
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "new-rollout", "namespace": namespace, "generation": 1},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "new-rollout"}},
                     "template": {"metadata": {"labels": {"app": "new-rollout"}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}
        })
    };
    let request = AdmissionRequest {
        uid: "scoreboard".into(),
        kind: decision::review::GroupVersionKind {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
        },
        name: "new-rollout".into(),
        namespace: Some(namespace.to_owned()),
        sub_resource: None,
        operation: Operation::Update,
        user_info: Default::default(),
        object: Some(deployment("next").into()),
        old_object: Some(deployment("current").into()),
        dry_run: Some(true),
    };
    let d = decision::decide(&request, index, now).ok()?;
    Some(DecisionRow {
        namespace: namespace.to_owned(),
        verdict: d.verdict(),
        mode: d.mode,
        reason: d.reason.as_str(),
        band: d.canary.as_ref().map(|c| c.band.clone()).or(d.band.clone()),
        plan: d.canary.as_ref().map(|c| plan_text(&c.plan)),
        message: d.message.clone().or_else(|| d.warnings.first().cloned()),
    })
}

fn incident_row(incident: &Incident) -> IncidentRow {
    let verdict = if incident.end.is_none() {
        "open"
    } else if incident.overdue {
        "overdue"
    } else if incident.within_budget {
        "within budget"
    } else {
        "overage"
    };
    IncidentRow {
        incident: incident.clone(),
        verdict,
    }
}

/// An SLO's period and window label.
fn slo_window(spec_window: Option<&Window>, tier: Option<&Tier>) -> Option<Window> {
    spec_window
        .cloned()
        .or_else(|| tier.map(|t| t.window.clone()))
}

/// The team page, with the charts the I/O layer found (missing ones stay empty).
pub fn team(
    index: &Index,
    team: &str,
    charts: &BTreeMap<ObjectKey, Charts>,
    now: Timestamp,
) -> Option<Team> {
    let policy = index.policy.as_ref()?;
    let by_team = namespaces_by_team(index);
    // Tiers with a published budget or a namespace of the team.
    let tier_names: std::collections::BTreeSet<String> = index
        .budgets
        .teams
        .keys()
        .chain(by_team.keys())
        .filter(|(t, _)| t == team)
        .map(|(_, tier)| tier.clone())
        .collect();
    if tier_names.is_empty() {
        return None;
    }
    let unknown = Assessment {
        remaining: None,
        burn_rates: BTreeMap::new(),
        alerts: Vec::new(),
        paging: false,
        band: None,
        state: BudgetState::Unknown,
        exhausts_at: None,
        lacking: 0,
    };
    let published = index.team_budgets.get(team);
    let tiers = tier_names
        .into_iter()
        .map(|tier_name| {
            let tier = policy.tier(&tier_name);
            let a = index
                .budgets
                .teams
                .get(&(team.to_owned(), tier_name.clone()))
                .unwrap_or(&unknown);
            let namespaces = by_team
                .get(&(team.to_owned(), tier_name.clone()))
                .cloned()
                .unwrap_or_default();
            let slos = index
                .slos
                .iter()
                .filter(|(k, _)| namespaces.contains(&k.namespace))
                .map(|(k, spec)| {
                    let s = index.budgets.slos.get(k);
                    let window = slo_window(spec.window.as_ref(), tier);
                    let period = window.as_ref().map(|w| Period::at(w, now));
                    SloView {
                        namespace: k.namespace.clone(),
                        name: k.name.clone(),
                        service: spec.service.clone(),
                        objective: spec.objective,
                        window: window.as_ref().map(Window::label).unwrap_or_default(),
                        remaining: s.and_then(|s| s.remaining),
                        band: s.and_then(|s| s.band.clone()),
                        state: s.map_or(BudgetState::Unknown, |s| s.state),
                        burn_rates: s.map(crate::status::burn_rates).unwrap_or_default(),
                        alerts: s.map(|s| s.alerts.clone()).unwrap_or_default(),
                        exhausts_at: s.and_then(|s| s.exhausts_at),
                        thresholds: match (tier, period) {
                            (Some(tier), Some(period)) => tier
                                .alert_windows
                                .iter()
                                .map(|w| Threshold {
                                    name: w.name.clone(),
                                    severity: w.severity,
                                    factor: round(budget::alert_factor(
                                        w.budget_percent,
                                        period.length_seconds as f64,
                                        w.long.as_secs_f64(),
                                    )),
                                })
                                .collect(),
                            _ => Vec::new(),
                        },
                        charts: charts.get(k).cloned().unwrap_or_default(),
                    }
                })
                .collect();
            let mut releases: Vec<ReleaseRow> = namespaces
                .iter()
                .flat_map(|ns| index.namespace_releases(ns))
                .map(|(k, r)| release_row(k, r))
                .collect();
            newest_first(&mut releases);
            let incidents = published
                .and_then(|p| p.tiers.iter().find(|t| t.tier == tier_name))
                .map(|t| t.incidents.iter().rev().map(incident_row).collect())
                .unwrap_or_default();
            let exceptions = index
                .exceptions
                .iter()
                .filter(|(k, x)| namespaces.contains(&k.namespace) && x.expires_at.0 > now)
                .map(|(k, x)| ExceptionRow {
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                    kind: x.kind.as_str().to_owned(),
                    extra_budget: x.extra_budget,
                    reason: x.reason.clone(),
                    approved_by: x.approved_by.clone(),
                    expires_at: x.expires_at.0,
                    max_rollouts: x.max_rollouts,
                })
                .collect();
            let decisions = namespaces
                .iter()
                .filter_map(|ns| decision_now(index, ns, now))
                .collect();
            let queue = decision::queue::queues(index)
                .into_iter()
                .filter(|q| q.team == team && q.tier == tier_name)
                .collect();
            let clusters = index
                .team_budgets
                .get(team)
                .and_then(|s| s.tiers.iter().find(|t| t.tier == tier_name))
                .map(|t| t.clusters.clone())
                .unwrap_or_default();
            TeamTier {
                row: team_row(index, policy, team, &tier_name, &namespaces, a, now),
                queue,
                clusters,
                tier: tier_name,
                namespaces,
                slos,
                releases,
                incidents,
                exceptions,
                decisions,
            }
        })
        .collect();
    Some(Team {
        team: team.to_owned(),
        evaluated_at: index.budgets.evaluated_at,
        tiers,
    })
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The adoption page: for every dry-run and warn namespace, what enforcement would have
/// done with its releases of the last [`ADOPTION_DAYS`] days, judged by the budget each
/// release started with (`remainingAtStart`) against the tier's bands as they are now.
pub fn adoption(index: &Index, now: Timestamp) -> Adoption {
    let since = now
        .checked_sub(jiff::Span::new().hours(24 * ADOPTION_DAYS))
        .unwrap_or(now);
    let mut rows = Vec::new();
    if let Some(policy) = &index.policy {
        for ns in index.namespaces.keys() {
            let Some((team, tier_name)) = index.team_of(ns) else {
                continue;
            };
            let Some(tier) = policy.tier(&tier_name) else {
                continue;
            };
            let mode = index.enforcement(ns, tier);
            if mode == Enforcement::Enforce {
                continue;
            }
            let mut row = AdoptionRow {
                namespace: ns.clone(),
                team,
                tier: tier_name,
                mode,
                releases: 0,
                would_deny: 0,
                would_slow: 0,
                unknown: 0,
                evidence: Vec::new(),
                now: match decision_now(index, ns, now) {
                    Some(d) => d,
                    None => continue,
                },
            };
            for (key, r) in index.namespace_releases(ns) {
                if r.phase == Some(ReleasePhase::Superseded) || r.created.is_none_or(|c| c < since)
                {
                    continue;
                }
                row.releases += 1;
                let denied = r.phase == Some(ReleasePhase::Observed)
                    && r.reason
                        .as_deref()
                        .is_some_and(|x| x.starts_with(crate::rollout::ledger::WOULD_DENY));
                let outcome = match r.remaining_at_start.map(|x| tier.band_for(x)) {
                    // The ledger judged the whole budget (a page-level burn denies too).
                    _ if denied => {
                        row.would_deny += 1;
                        Some("deny")
                    }
                    None => {
                        row.unknown += 1;
                        None
                    }
                    Some(BandLookup::Exhausted) => {
                        row.would_deny += 1;
                        Some("deny")
                    }
                    Some(BandLookup::Band(0, _)) => None,
                    Some(BandLookup::Band(..)) => {
                        row.would_slow += 1;
                        Some("slow")
                    }
                };
                if let Some(outcome) = outcome {
                    row.evidence.push(Evidence {
                        release: release_row(key, r),
                        outcome,
                    });
                }
            }
            row.evidence
                .sort_by_key(|e| std::cmp::Reverse(e.release.created));
            rows.push(row);
        }
    }
    Adoption {
        evaluated_at: index.budgets.evaluated_at,
        since,
        namespaces: rows,
    }
}

#[cfg(test)]
mod tests;
