//! The webhook's own metrics (prometheus-client), served on the plain `--metrics-listen`
//! port. Budgets and decisions only: never object contents or secrets.

use crate::listener::ConnectionMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub webhook: &'static str,
    pub operation: &'static str,
    pub decision: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    pub webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabel {
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub team: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub namespace: String,
    pub deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TeamLabel {
    pub team: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<WebhookLabel, Histogram, fn() -> Histogram>,
    pub state_age: Gauge<f64, AtomicU64>,
    pub would_deny: Family<NamespaceLabel, Counter>,
    pub rejected: Family<SourceLabel, Counter>,
    pub reload_errors: Family<SourceLabel, Counter>,
    pub rollouts: Family<OutcomeLabels, Counter>,
    pub rollout_stage: Family<DeploymentLabels, Gauge>,
    pub canary_weight: Family<DeploymentLabels, Gauge>,
    pub rollback_seconds: Histogram,
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    pub queued_rollouts: Family<TeamLabel, Gauge>,
    pub connections: ConnectionMetrics,
}

fn latency_histogram() -> Histogram {
    // 25 µs … ~0.8 s: the admission path answers in microseconds; the apiserver gives up at
    // timeoutSeconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        25e-6, 2.0, 16,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("budgetgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission reviews answered, by webhook, operation, decision and reason",
            requests.clone(),
        );
        let duration = Family::<WebhookLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "admission_duration_seconds",
            "Time from a review's body being read to its answer being ready",
            duration.clone(),
        );
        let state_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "budget_state_age_seconds",
            "Age of the budget data the webhook answers from (now minus its evaluation time)",
            state_age.clone(),
        );
        let would_deny = Family::<NamespaceLabel, Counter>::default();
        registry.register(
            "would_deny",
            "Rollouts dry-run namespaces would have had denied",
            would_deny.clone(),
        );
        let rejected = Family::<SourceLabel, Counter>::default();
        registry.register(
            "admission_rejected_requests",
            "HTTP requests refused before a decision (bad method, path, body or size)",
            rejected.clone(),
        );
        let reload_errors = Family::<SourceLabel, Counter>::default();
        registry.register(
            "state_reload_errors",
            "Failed reloads of policy, budget or certificate files (the last good state stays)",
            reload_errors.clone(),
        );
        let rollouts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rollouts",
            "Finished releases by team and outcome (promoted, rolled_back, superseded, direct, observed, failed)",
            rollouts.clone(),
        );
        let rollout_stage = Family::<DeploymentLabels, Gauge>::default();
        registry.register(
            "rollout_stage",
            "Current canary stage of each Deployment with a canary in progress (1 = first)",
            rollout_stage.clone(),
        );
        let canary_weight = Family::<DeploymentLabels, Gauge>::default();
        registry.register(
            "canary_weight",
            "Percent of an HTTPRoute's traffic the canary receives, for each Deployment whose canary is routed through one",
            canary_weight.clone(),
        );
        let rollback_seconds = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 12),
        );
        registry.register(
            "rollback_seconds",
            "Time from the first failed canary check (burn detected) to the stable template restored",
            rollback_seconds.clone(),
        );
        let reconcile_errors = Family::<ErrorLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed looks of the rollout controller at a Deployment, by error (read, write, conflict, encode); each is retried",
            reconcile_errors.clone(),
        );
        let queued_rollouts = Family::<TeamLabel, Gauge>::default();
        registry.register(
            "queued_rollouts",
            "Rollouts waiting in their team's queue for the budget to recover (Queued Releases), by team",
            queued_rollouts.clone(),
        );
        let connections = ConnectionMetrics::default();
        registry.register(
            "connection_limits",
            "Connections closed and requests refused by a server limit, by listener (reviews, metrics, scoreboard) and limit (connections, handshake, header, idle, keep_alive, body_time, body_budget, in_flight)",
            connections.limits.clone(),
        );
        registry.register(
            "open_connections",
            "Connections open now, by listener",
            connections.open.clone(),
        );
        Metrics {
            registry,
            connections,
            reconcile_errors,
            queued_rollouts,
            rollouts,
            rollout_stage,
            canary_weight,
            rollback_seconds,
            requests,
            duration,
            state_age,
            would_deny,
            rejected,
            reload_errors,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
