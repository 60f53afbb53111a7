//! `budgetgate controller`: the budget evaluator. Every interval the lease holder reads the
//! SLIs (a [`SignalSource`]), evaluates budgets with the pure core, and publishes
//! `ServiceLevelObjective.status`, `TeamBudget.status` and the platform aggregates in
//! `ReliabilityPolicy.status` by server-side apply (field manager `budgetgate`), only when
//! something changed or the last write is getting old. Band changes become Events.
//!
//! Reads the cluster through the same watch-fed index as the webhook; only the leader writes.

use crate::api::{ReliabilityPolicy, ServiceLevelObjective, TeamBudget, TeamBudgetSpec, Timestamp};
use crate::index::{self, Index, ObjectKey, SloSignals};
use crate::publish::{self, Previous, Published};
use crate::snapshot;
use crate::webhook::Shared;
use crate::webhook::metrics::SourceLabel;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod lease;
pub mod rollout;

pub const FIELD_MANAGER: &str = "budgetgate";

/// Where SLI counts come from.
pub trait SignalSource: Send + Sync {
    /// Counts for every SLO of the index, and the instant they describe.
    fn read(
        &self,
        index: &Index,
        now: Timestamp,
    ) -> impl Future<Output = Result<(Vec<SloSignals>, Timestamp), String>> + Send;
    fn describe(&self) -> String;
}

/// A BudgetSnapshot file, re-read every evaluation (for clusters fed by an external
/// evaluator, and for tests and demos without Prometheus).
pub struct SnapshotFile(pub PathBuf);

impl SignalSource for SnapshotFile {
    async fn read(
        &self,
        index: &Index,
        _now: Timestamp,
    ) -> Result<(Vec<SloSignals>, Timestamp), String> {
        let snapshot = crate::load::load_snapshot(&self.0).map_err(|e| e.to_string())?;
        let signals = snapshot::signals(index, &snapshot)
            .map_err(|e| format!("{}: {e}", self.0.display()))?;
        Ok((signals, snapshot.evaluated_at))
    }

    fn describe(&self) -> String {
        format!("budget snapshot {}", self.0.display())
    }
}

/// Prometheus, read every evaluation in batched queries.
pub struct PrometheusSource(pub crate::prom::PromConfig);

impl SignalSource for PrometheusSource {
    async fn read(
        &self,
        index: &Index,
        now: Timestamp,
    ) -> Result<(Vec<SloSignals>, Timestamp), String> {
        let evaluation = crate::prom::evaluate(index, now, &self.0)
            .await
            .map_err(|e| e.to_string())?;
        for note in &evaluation.notes {
            tracing::debug!("{note}");
        }
        Ok((evaluation.slos, evaluation.evaluated_at))
    }

    fn describe(&self) -> String {
        format!("Prometheus {}", self.0.url)
    }
}

/// A snapshot over Prometheus (`--budgets` and `--prometheus` together): the SLOs the
/// snapshot lists take its counts, every other SLO is read from Prometheus. A what-if and
/// test override: pin chosen SLOs to exact numbers while the rest follow real traffic.
/// Either source failing fails the evaluation.
pub struct Layered {
    pub snapshot: SnapshotFile,
    pub prometheus: PrometheusSource,
}

impl SignalSource for Layered {
    async fn read(
        &self,
        index: &Index,
        now: Timestamp,
    ) -> Result<(Vec<SloSignals>, Timestamp), String> {
        let path = &self.snapshot.0;
        let snapshot = crate::load::load_snapshot(path).map_err(|e| e.to_string())?;
        let pinned =
            snapshot::signals(index, &snapshot).map_err(|e| format!("{}: {e}", path.display()))?;
        let listed = listed(&snapshot);
        let (measured, measured_at) = self.prometheus.read(&unlisted(index, &listed), now).await?;
        let at = layered_instant(index, &listed, snapshot.evaluated_at, measured_at);
        Ok((layer(pinned, measured, &listed), at))
    }

    fn describe(&self) -> String {
        format!(
            "{} over {}",
            self.snapshot.describe(),
            self.prometheus.describe()
        )
    }
}

/// The SLOs a snapshot gives counts for.
fn listed(snapshot: &snapshot::BudgetSnapshot) -> BTreeSet<ObjectKey> {
    snapshot
        .slos
        .iter()
        .map(|s| ObjectKey::new(&s.namespace, &s.name))
        .collect()
}

/// The part of the index Prometheus is asked about: every SLO the snapshot does not list.
fn unlisted(index: &Index, listed: &BTreeSet<ObjectKey>) -> Index {
    Index {
        policy: index.policy.clone(),
        namespaces: index.namespaces.clone(),
        slos: index
            .slos
            .iter()
            .filter(|(key, _)| !listed.contains(key))
            .map(|(key, spec)| (key.clone(), spec.clone()))
            .collect(),
        ..Index::default()
    }
}

/// Listed SLOs from the snapshot, all others from Prometheus; sorted by SLO.
fn layer(
    pinned: Vec<SloSignals>,
    measured: Vec<SloSignals>,
    listed: &BTreeSet<ObjectKey>,
) -> Vec<SloSignals> {
    let mut out: BTreeMap<ObjectKey, SloSignals> = measured
        .into_iter()
        .filter(|s| !listed.contains(&s.key))
        .map(|s| (s.key.clone(), s))
        .collect();
    out.extend(
        pinned
            .into_iter()
            .filter(|s| listed.contains(&s.key))
            .map(|s| (s.key.clone(), s)),
    );
    out.into_values().collect()
}

/// The data is as old as its oldest part: the snapshot's `evaluatedAt` counts only when the
/// snapshot decides an SLO that exists (entries left over for deleted SLOs do not make the
/// real ones look stale).
fn layered_instant(
    index: &Index,
    listed: &BTreeSet<ObjectKey>,
    snapshot_at: Timestamp,
    measured_at: Timestamp,
) -> Timestamp {
    if listed.iter().any(|key| index.slos.contains_key(key)) {
        snapshot_at.min(measured_at)
    } else {
        measured_at
    }
}

/// One of the sources, chosen on the command line.
pub enum AnySource {
    Prometheus(PrometheusSource),
    Snapshot(SnapshotFile),
    Layered(Layered),
}

impl SignalSource for AnySource {
    async fn read(
        &self,
        index: &Index,
        now: Timestamp,
    ) -> Result<(Vec<SloSignals>, Timestamp), String> {
        match self {
            AnySource::Prometheus(s) => s.read(index, now).await,
            AnySource::Snapshot(s) => s.read(index, now).await,
            AnySource::Layered(s) => s.read(index, now).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            AnySource::Prometheus(s) => s.describe(),
            AnySource::Snapshot(s) => s.describe(),
            AnySource::Layered(s) => s.describe(),
        }
    }
}

pub struct Controller<S> {
    pub client: Client,
    pub shared: Arc<Shared>,
    pub source: S,
    pub interval: Duration,
    /// Whether this replica holds the lease; checked again right before writing.
    pub leader: tokio::sync::watch::Receiver<bool>,
    pub recorder: Recorder,
    /// Read every team's events cluster by cluster too (DESIGN §8; set with
    /// `--cluster-name`): one more Prometheus query per evaluation.
    pub cluster_split: Option<crate::prom::PromConfig>,
}

impl<S: SignalSource> Controller<S> {
    pub fn new(
        client: Client,
        shared: Arc<Shared>,
        source: S,
        interval: Duration,
        leader: tokio::sync::watch::Receiver<bool>,
        instance: Option<String>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "budgetgate".into(),
                instance,
            },
        );
        Controller {
            client,
            shared,
            source,
            interval,
            leader,
            recorder,
            cluster_split: None,
        }
    }

    fn leading(&self) -> bool {
        *self.leader.borrow()
    }

    /// Evaluates every interval until shutdown.
    pub async fn run(self, shutdown: crate::source::Shutdown) {
        tracing::info!(source = %self.source.describe(), interval = ?self.interval, "budget controller started");
        let stop = crate::source::stopped(shutdown);
        tokio::pin!(stop);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = &mut stop => return,
            }
            if !self.leading() || self.shared.not_ready().is_some() {
                continue;
            }
            match self.evaluate().await {
                Ok(written) => tracing::debug!(written, "budgets evaluated"),
                Err(e) => {
                    tracing::warn!(error = %e, "budget evaluation failed; budgets go stale and admission follows onStale");
                    self.mark_stale(&e).await;
                    self.shared
                        .metrics
                        .reload_errors
                        .get_or_create(&SourceLabel {
                            source: "evaluation",
                        })
                        .inc();
                }
            }
        }
    }

    /// One evaluation: read, judge, publish what changed. Returns how many objects were written.
    pub async fn evaluate(&self) -> Result<usize, String> {
        let index = self.shared.index.load_full();
        let Some(policy) = &index.policy else {
            return Err("no valid ReliabilityPolicy in the cluster".into());
        };
        let now = self.shared.clock.now();
        let (signals, at) = self.source.read(&index, now).await?;
        let budgets = index::evaluate_budgets(policy, &index.namespaces, &signals, at);
        let previous = self.previous().await?;
        let mut published = publish::publish(&index, &budgets, &previous, now);
        if let Some(config) = &self.cluster_split {
            // A split that cannot be read leaves it out; the budgets stand without it.
            match crate::prom::read_cluster_split(&index, &policy.cluster_label, at, config).await {
                Ok(split) => publish::attach_clusters(&mut published, &index, &split),
                Err(e) => tracing::warn!(error = %e, "could not read the events by cluster"),
            }
        }
        // The lease may have moved while we read: a former leader writes nothing.
        if !self.leading() {
            return Ok(0);
        }
        let heartbeat = heartbeat(&index, self.interval);
        self.write(&published, &previous, heartbeat, now).await
    }

    async fn previous(&self) -> Result<Previous, String> {
        let slos = Api::<ServiceLevelObjective>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing ServiceLevelObjectives: {e}"))?;
        let teams = Api::<TeamBudget>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing TeamBudgets: {e}"))?;
        Ok(Previous {
            slos: slos
                .items
                .into_iter()
                .filter_map(|s| Some((ObjectKey::new(s.namespace()?, s.name_any()), s.status?)))
                .collect(),
            teams: teams
                .items
                .into_iter()
                .filter_map(|t| Some((t.name_any(), t.status?)))
                .collect(),
        })
    }

    async fn write(
        &self,
        published: &Published,
        previous: &Previous,
        heartbeat: jiff::SignedDuration,
        now: Timestamp,
    ) -> Result<usize, String> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut written = 0;
        for (key, status) in &published.slos {
            if !publish::needs_write(previous.slos.get(key), status, heartbeat, now) {
                continue;
            }
            let api = Api::<ServiceLevelObjective>::namespaced(self.client.clone(), &key.namespace);
            let patch = json!({"apiVersion": "budgetgate.dev/v1alpha1", "kind": "ServiceLevelObjective", "status": status});
            match api
                .patch_status(&key.name, &params, &Patch::Apply(&patch))
                .await
            {
                Ok(_) => written += 1,
                // Deleted since the index saw it: nothing to publish to.
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    tracing::debug!(slo = %key, "ServiceLevelObjective deleted before its status was written");
                }
                Err(e) => {
                    return Err(format!(
                        "writing the status of ServiceLevelObjective {key}: {e}"
                    ));
                }
            }
        }
        let teams = Api::<TeamBudget>::all(self.client.clone());
        for (team, status) in &published.teams {
            let before = previous.teams.get(team);
            if !publish::needs_write(before, status, heartbeat, now) {
                continue;
            }
            if before.is_none() {
                let object = TeamBudget::new(team, TeamBudgetSpec { team: team.clone() });
                teams
                    .patch(team, &params, &Patch::Apply(&object))
                    .await
                    .map_err(|e| format!("creating TeamBudget {team}: {e}"))?;
            }
            let patch = json!({"apiVersion": "budgetgate.dev/v1alpha1", "kind": "TeamBudget", "status": status});
            let updated = teams
                .patch_status(team, &params, &Patch::Apply(&patch))
                .await
                .map_err(|e| format!("writing the status of TeamBudget {team}: {e}"))?;
            written += 1;
            for change in publish::band_changes(team, before, status) {
                self.event(&updated, &change).await;
            }
        }
        if let Some(name) = self.shared.index.load().policy_name.clone() {
            let api = Api::<ReliabilityPolicy>::all(self.client.clone());
            let patch = json!({
                "apiVersion": "budgetgate.dev/v1alpha1",
                "kind": "ReliabilityPolicy",
                "status": {"platform": published.platform, "evaluatedAt": published.slos.values().find_map(|s| s.evaluated_at.clone())}
            });
            api.patch_status(&name, &params, &Patch::Apply(&patch))
                .await
                .map_err(|e| format!("writing the status of ReliabilityPolicy {name}: {e}"))?;
        }
        Ok(written)
    }

    /// Says on the policy and every TeamBudget why budgets stopped updating. A merge patch,
    /// so the published budgets stay as they were (server-side apply of conditions alone
    /// would drop them); the next good evaluation replaces these conditions.
    async fn mark_stale(&self, error: &str) {
        if !self.leading() {
            return;
        }
        let index = self.shared.index.load_full();
        let conditions = publish::stale_conditions(error, self.shared.clock.now());
        let patch = json!({"status": {"conditions": conditions}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        if let Some(name) = &index.policy_name {
            let api = Api::<ReliabilityPolicy>::all(self.client.clone());
            if let Err(e) = api.patch_status(name, &params, &Patch::Merge(&patch)).await {
                tracing::debug!(error = %e, "could not mark the policy stale");
            }
        }
        let teams = Api::<TeamBudget>::all(self.client.clone());
        let names: std::collections::BTreeSet<&String> =
            index.budgets.teams.keys().map(|(team, _)| team).collect();
        for team in names {
            if let Err(e) = teams
                .patch_status(team, &params, &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(%team, error = %e, "could not mark a TeamBudget stale");
            }
        }
    }

    /// Records a band change on the TeamBudget (with its uid, so `kubectl describe
    /// teambudget` lists it).
    async fn event(&self, team_budget: &TeamBudget, change: &publish::BandChange) {
        use kube::Resource;
        let team = team_budget.name_any();
        let reference: ObjectReference = team_budget.object_ref(&());
        let event = Event {
            type_: if change.worse {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: "BandChanged".into(),
            note: Some(change.note.clone()),
            action: "Evaluate".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(%team, error = %e, "could not record a band change event");
        }
        tracing::info!(%team, "{}", change.note);
    }
}

/// Re-write unchanged statuses before they look stale: half the shortest `staleAfter`,
/// and never more often than the evaluation interval.
fn heartbeat(index: &Index, interval: Duration) -> jiff::SignedDuration {
    let stale = index
        .policy
        .as_ref()
        .and_then(|p| p.tiers.values().map(|t| t.stale_after.seconds()).min())
        .unwrap_or(300);
    jiff::SignedDuration::from_secs(((stale / 2).max(interval.as_secs())) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ServiceLevelObjectiveSpec;
    use crate::budget::{Counts, Signals};
    use crate::snapshot::{BudgetSnapshot, SnapshotSlo};

    fn spec() -> ServiceLevelObjectiveSpec {
        serde_json::from_value(json!({
            "service": "web", "objective": 99.0,
            "indicator": {"ratio": {"errors": "http_requests_total{code=~\"5..\"}", "total": "http_requests_total"}}
        }))
        .unwrap()
    }

    fn mk_index(slos: &[(&str, &str)]) -> Index {
        Index {
            slos: slos
                .iter()
                .map(|(ns, name)| (ObjectKey::new(*ns, *name), spec()))
                .collect(),
            ..Index::default()
        }
    }

    fn signals(ns: &str, name: &str, bad: f64) -> SloSignals {
        SloSignals {
            key: ObjectKey::new(ns, name),
            objective: 99.0,
            window: None,
            signals: Signals::from_counts(0.01, Some(Counts { bad, total: 1000.0 }), []),
        }
    }

    fn mk_snapshot(at: &str, slos: &[(&str, &str)]) -> BudgetSnapshot {
        BudgetSnapshot {
            evaluated_at: at.parse().unwrap(),
            slos: slos
                .iter()
                .map(|(ns, name)| SnapshotSlo {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    objective: None,
                    window: None,
                    period: Some(Counts {
                        bad: 1.0,
                        total: 1000.0,
                    }),
                    windows: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn prometheus_is_asked_only_about_slos_the_snapshot_does_not_list() {
        let index = mk_index(&[("shop", "avail"), ("search", "avail"), ("ads", "latency")]);
        let snapshot = mk_snapshot("2026-11-29T10:00:00Z", &[("search", "avail")]);
        let asked = unlisted(&index, &listed(&snapshot));
        let keys: Vec<String> = asked.slos.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["ads/latency", "shop/avail"]);
    }

    #[test]
    fn listed_slos_take_the_snapshots_counts_and_the_rest_prometheus() {
        let snapshot = mk_snapshot("2026-11-29T10:00:00Z", &[("search", "avail")]);
        let pinned = vec![
            signals("search", "avail", 900.0),
            // snapshot::signals also yields the index's unlisted SLOs, without data
            SloSignals {
                signals: Signals::default(),
                ..signals("shop", "avail", 0.0)
            },
        ];
        // Prometheus answered for shop/avail; a search/avail answer must not win
        let measured = vec![
            signals("shop", "avail", 5.0),
            signals("search", "avail", 0.0),
        ];
        let got = layer(pinned, measured, &listed(&snapshot));
        let got: Vec<(String, Option<f64>)> = got
            .iter()
            .map(|s| (s.key.to_string(), s.signals.period.map(|p| p.bad)))
            .collect();
        assert_eq!(
            got,
            [
                ("search/avail".to_string(), Some(900.0)),
                ("shop/avail".to_string(), Some(5.0))
            ]
        );
    }

    #[test]
    fn layered_data_is_as_old_as_the_snapshot_only_when_it_decides_a_live_slo() {
        let index = mk_index(&[("shop", "avail"), ("search", "avail")]);
        let old: Timestamp = "2026-11-29T09:00:00Z".parse().unwrap();
        let fresh: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
        let live = listed(&mk_snapshot("2026-11-29T09:00:00Z", &[("search", "avail")]));
        assert_eq!(layered_instant(&index, &live, old, fresh), old);
        let leftover = listed(&mk_snapshot("2026-11-29T09:00:00Z", &[("gone", "avail")]));
        assert_eq!(layered_instant(&index, &leftover, old, fresh), fresh);
    }
}
