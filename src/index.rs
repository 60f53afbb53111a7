//! The state the admission decision reads: namespaces, objectives, exceptions, releases,
//! the template revisions each Deployment owns, and the evaluated budgets.
//!
//! File mode fills it from `--policy` / `--budgets`; cluster mode will fill it from
//! watches. It is plain data: readers never wait on anything.

use crate::api::{
    BudgetExceptionSpec, Enforcement, Plan, Release, ReleasePhase, ServiceLevelObjectiveSpec,
    TeamBudgetStatus, Timestamp, Window, keys,
};
use crate::budget::{self, Assessment, Period, Signals};
use crate::policy::{Policy, Tier};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// `namespace/name` of a namespaced object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the platform's namespace labels say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NamespaceMeta {
    pub team: Option<String>,
    pub tier: Option<String>,
    pub enforcement: Option<String>,
    pub progressive: bool,
}

impl NamespaceMeta {
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        NamespaceMeta {
            team: labels.get(keys::TEAM).filter(|t| !t.is_empty()).cloned(),
            tier: labels.get(keys::TIER).filter(|t| !t.is_empty()).cloned(),
            enforcement: labels.get(keys::ENFORCEMENT).cloned(),
            progressive: labels.get(keys::PROGRESSIVE).is_some_and(|v| v == "true"),
        }
    }
}

/// The part of a Release the cadence rules, exception counts and the scoreboard's
/// ledger need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReleaseEntry {
    pub deployment: String,
    pub created: Option<Timestamp>,
    pub phase: Option<ReleasePhase>,
    pub exception: Option<String>,
    pub revision: String,
    pub band: Option<String>,
    pub plan: Option<Plan>,
    pub remaining_at_start: Option<f64>,
    pub budget_consumed: Option<f64>,
    pub reason: Option<String>,
    pub completed_at: Option<Timestamp>,
    /// While `Queued`: when the Deployment entered the team's queue (orders the queue).
    pub queued_since: Option<Timestamp>,
}

impl ReleaseEntry {
    pub fn from_release(release: &Release) -> ReleaseEntry {
        let status = release.status.as_ref();
        ReleaseEntry {
            deployment: release.spec.deployment.clone(),
            created: release.metadata.creation_timestamp.as_ref().map(|t| t.0),
            phase: status.and_then(|s| s.phase),
            exception: release.spec.exception.clone(),
            revision: release.spec.revision.clone(),
            band: release.spec.band.clone(),
            plan: release.spec.plan.clone(),
            remaining_at_start: release.spec.remaining_at_start,
            budget_consumed: status.and_then(|s| s.budget_consumed),
            reason: status.and_then(|s| s.reason.clone()),
            completed_at: status.and_then(|s| s.completed_at.as_ref().map(|t| t.0)),
            queued_since: status.and_then(|s| s.queued_since.as_ref().map(|t| t.0)),
        }
    }
}

/// Evaluated budgets, whatever produced them (a snapshot file or the controller).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Budgets {
    /// When the counts were read; `None` = no budget data at all.
    pub evaluated_at: Option<Timestamp>,
    pub slos: BTreeMap<ObjectKey, Assessment>,
    /// Keyed by (team, tier).
    pub teams: BTreeMap<(String, String), Assessment>,
    /// Platform aggregate per tier.
    pub platform: BTreeMap<String, Assessment>,
}

#[derive(Clone, Debug, Default)]
pub struct Index {
    pub policy: Option<Policy>,
    /// Name of the ReliabilityPolicy object in force (cluster mode).
    pub policy_name: Option<String>,
    pub namespaces: BTreeMap<String, NamespaceMeta>,
    pub slos: BTreeMap<ObjectKey, ServiceLevelObjectiveSpec>,
    pub exceptions: BTreeMap<ObjectKey, BudgetExceptionSpec>,
    pub releases: BTreeMap<ObjectKey, ReleaseEntry>,
    /// Revision hashes of the pod templates of the ReplicaSets each Deployment owns that
    /// existed before budgetgate saw their namespace managed (cluster mode), or that the
    /// `--policy` files list (file mode). A ReplicaSet created later (planted by a team and
    /// adopted by the Deployment controller) is not here.
    pub revisions: BTreeMap<ObjectKey, BTreeSet<String>>,
    /// Live Deployments (file mode), as JSON.
    pub deployments: BTreeMap<ObjectKey, serde_json::Value>,
    pub budgets: Budgets,
    /// Published TeamBudget statuses by team (incidents, last release), for the
    /// scoreboard; the decision does not read them.
    pub team_budgets: BTreeMap<String, TeamBudgetStatus>,
}

impl Index {
    /// The revisions a Deployment ran before (DESIGN §6 step 2), besides its `history`:
    /// templates of its ReplicaSets from before budgetgate managed the namespace, and those
    /// of its `Promoted`, `Direct` and `Observed` Releases. The one rule for what a
    /// rollback may go back to, in admission and in a canary's roll back.
    pub fn ran_before(&self, key: &ObjectKey) -> BTreeSet<String> {
        let mut ran = self.revisions.get(key).cloned().unwrap_or_default();
        ran.extend(self.ran_releases(key).map(|r| r.revision.clone()));
        ran
    }

    /// Whether `revision` is one of [`Index::ran_before`], without building the set: the
    /// admission path asks only about the one revision a template change goes to.
    pub fn has_run(&self, key: &ObjectKey, revision: &str) -> bool {
        self.revisions
            .get(key)
            .is_some_and(|r| r.contains(revision))
            || self.ran_releases(key).any(|r| r.revision == revision)
    }

    /// The Deployment's Releases whose revision ran: `Promoted`, `Direct`, `Observed`.
    fn ran_releases<'a>(
        &'a self,
        key: &'a ObjectKey,
    ) -> impl Iterator<Item = &'a ReleaseEntry> + 'a {
        self.namespace_releases(&key.namespace)
            .map(|(_, r)| r)
            .filter(move |r| {
                r.deployment == key.name
                    && matches!(
                        r.phase,
                        Some(
                            ReleasePhase::Promoted | ReleasePhase::Direct | ReleasePhase::Observed
                        )
                    )
            })
    }

    /// The (team, tier) owning a namespace; `None` when the namespace is unmanaged.
    pub fn team_of(&self, namespace: &str) -> Option<(String, String)> {
        self.team_ref(namespace)
            .map(|(team, tier)| (team.to_owned(), tier.to_owned()))
    }

    /// The mode `namespace` runs in under `tier`: its enforcement label when that is a
    /// mode, else the tier's. The one rule the webhook, the controller and the scoreboard
    /// share.
    pub fn enforcement(&self, namespace: &str, tier: &Tier) -> Enforcement {
        self.namespaces
            .get(namespace)
            .and_then(|m| m.enforcement.as_deref())
            .and_then(Enforcement::parse)
            .unwrap_or(tier.enforcement)
    }

    /// [`Index::team_of`] without allocating.
    fn team_ref(&self, namespace: &str) -> Option<(&str, &str)> {
        let meta = self.namespaces.get(namespace)?;
        let team = meta.team.as_deref()?;
        let tier = match &meta.tier {
            Some(t) => t.as_str(),
            None => self.policy.as_ref()?.default_tier.as_str(),
        };
        Some((team, tier))
    }

    /// Whether `namespace` belongs to `team` in `tier` (no allocation: this runs per
    /// namespace on the admission path).
    pub fn is_team_namespace(&self, namespace: &str, team: &str, tier: &str) -> bool {
        self.team_ref(namespace) == Some((team, tier))
    }

    /// Releases of every namespace of `team` in `tier`, by namespace and name: a range of
    /// the release map per namespace of the team, not a scan of every release.
    pub fn team_releases<'a>(
        &'a self,
        team: &'a str,
        tier: &'a str,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a ReleaseEntry)> + 'a {
        self.namespaces
            .keys()
            .filter(move |ns| self.is_team_namespace(ns, team, tier))
            .flat_map(move |ns| self.namespace_releases(ns))
    }

    /// The releases of one namespace (keys sort by namespace first).
    pub fn namespace_releases<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a ReleaseEntry)> + 'a {
        self.releases
            .range(ObjectKey::new(namespace, "")..)
            .take_while(move |(k, _)| k.namespace == namespace)
    }
}

/// Whether a ReplicaSet created at `created` may make its template a rollback target
/// (DESIGN §6 step 2): only one that existed before budgetgate managed its namespace. A
/// team can create a ReplicaSet that the Deployment controller adopts; one created since
/// never counts. `managed_since` is the earliest sign of management: when the watch first
/// saw the namespace managed and the namespace's oldest Release (which outlives restarts).
/// Without one, the ReplicaSet counts; with one, a ReplicaSet of unknown age does not.
pub fn predates_management(
    managed_since: impl IntoIterator<Item = Timestamp>,
    created: Option<Timestamp>,
) -> bool {
    match (managed_since.into_iter().min(), created) {
        (None, _) => true,
        (Some(since), Some(created)) => created < since,
        (Some(_), None) => false,
    }
}

/// The creation time of the oldest Release of a namespace.
pub fn oldest_release(
    releases: &BTreeMap<ObjectKey, ReleaseEntry>,
    namespace: &str,
) -> Option<Timestamp> {
    releases
        .range(ObjectKey::new(namespace, "")..)
        .take_while(|(k, _)| k.namespace == namespace)
        .filter_map(|(_, r)| r.created)
        .min()
}

/// One SLO's counts, ready for evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct SloSignals {
    pub key: ObjectKey,
    pub objective: f64,
    pub window: Option<Window>,
    pub signals: Signals,
}

/// Judges every SLO against its namespace's tier and builds team and platform aggregates.
/// SLOs of namespaces without a team are judged but belong to no team or platform.
pub fn evaluate_budgets(
    policy: &Policy,
    namespaces: &BTreeMap<String, NamespaceMeta>,
    slos: &[SloSignals],
    evaluated_at: Timestamp,
) -> Budgets {
    let mut budgets = Budgets {
        evaluated_at: Some(evaluated_at),
        ..Budgets::default()
    };
    let mut teams: BTreeMap<(String, String), Vec<&Signals>> = BTreeMap::new();
    let mut platform: BTreeMap<String, Vec<&Signals>> = BTreeMap::new();
    for slo in slos {
        let meta = namespaces.get(&slo.key.namespace);
        let tier_name = meta
            .and_then(|m| m.tier.clone())
            .unwrap_or_else(|| policy.default_tier.clone());
        let Some(tier) = policy.tier(&tier_name) else {
            continue;
        };
        let window = slo.window.as_ref().unwrap_or(&tier.window);
        let period = Period::at(window, evaluated_at);
        budgets.slos.insert(
            slo.key.clone(),
            budget::assess(&slo.signals, tier, &period, evaluated_at),
        );
        if let Some(team) = meta.and_then(|m| m.team.clone()) {
            teams
                .entry((team, tier_name.clone()))
                .or_default()
                .push(&slo.signals);
            platform.entry(tier_name).or_default().push(&slo.signals);
        }
    }
    let judge = |tier_name: &str, members: Vec<&Signals>| {
        let tier = &policy.tiers[tier_name];
        let period = Period::at(&tier.window, evaluated_at);
        budget::assess(&budget::aggregate(members), tier, &period, evaluated_at)
    };
    for ((team, tier), members) in teams {
        let assessment = judge(&tier, members);
        budgets.teams.insert((team, tier), assessment);
    }
    for (tier, members) in platform {
        let assessment = judge(&tier, members);
        budgets.platform.insert(tier, assessment);
    }
    budgets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn only_replica_sets_older_than_management_predate_it() {
        let since = [at("2026-11-28T16:00:00Z"), at("2026-11-29T09:00:00Z")];
        assert!(predates_management(since, Some(at("2026-11-28T15:59:59Z"))));
        assert!(!predates_management(
            since,
            Some(at("2026-11-28T16:00:00Z"))
        ));
        assert!(!predates_management(
            since,
            Some(at("2026-11-29T09:30:00Z"))
        ));
        assert!(!predates_management(since, None));
        assert!(predates_management([], Some(at("2026-11-29T09:30:00Z"))));
    }
}
