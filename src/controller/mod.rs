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
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// One of the sources, chosen on the command line.
pub enum AnySource {
    Prometheus(PrometheusSource),
    Snapshot(SnapshotFile),
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
        }
    }

    fn describe(&self) -> String {
        match self {
            AnySource::Prometheus(s) => s.describe(),
            AnySource::Snapshot(s) => s.describe(),
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
        let published = publish::publish(&index, &budgets, &previous, now);
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
            api.patch_status(&key.name, &params, &Patch::Apply(&patch))
                .await
                .map_err(|e| format!("writing the status of ServiceLevelObjective {key}: {e}"))?;
            written += 1;
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
