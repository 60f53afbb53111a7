//! `ReliabilityPolicy`: tiers, budget bands, canary plans (cluster-scoped, normally `platform`).

use super::{Condition, Duration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "budgetgate.dev",
    version = "v1alpha1",
    kind = "ReliabilityPolicy",
    shortname = "rpol",
    category = "budgetgate",
    status = "ReliabilityPolicyStatus",
    printcolumn(
        name = "Default-Tier",
        type_ = "string",
        json_path = ".spec.defaultTier"
    ),
    printcolumn(
        name = "Platform-Freeze",
        type_ = "boolean",
        json_path = ".spec.platformFreeze"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReliabilityPolicySpec {
    /// Tier of a team namespace without a `budgetgate.dev/tier` label.
    #[serde(default = "default_tier")]
    pub default_tier: String,
    /// Requesters the webhook never gates (the controller's own service account).
    #[serde(default)]
    pub controller_users: Vec<String>,
    #[serde(default)]
    pub exceptions: ExceptionRules,
    /// Freeze every team of a tier whose platform aggregate budget is exhausted.
    #[serde(default)]
    pub platform_freeze: bool,
    /// The series label that names a namespace: every `ratio` and `latency` selector of an
    /// SLO is confined to the SLO's own namespace by it.
    #[serde(default = "default_slo_namespace_label")]
    pub slo_namespace_label: String,
    /// Namespaces whose SLOs may read other namespaces' series (their selectors are not
    /// confined).
    #[serde(default, rename = "crossNamespaceSLOs")]
    pub cross_namespace_slos: Vec<String>,
    /// Namespaces whose SLOs may use `raw` indicators (free PromQL); elsewhere a raw SLO is
    /// Unknown, with the reason.
    #[serde(default)]
    pub raw_query_namespaces: Vec<String>,
    /// The series label naming the cluster in a global Prometheus view (remote-written or
    /// federated with an external label, DESIGN §8): budgets sum over it, a canary check
    /// adds `<clusterLabel>="<--cluster-name>"`. Default `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_label: Option<String>,
    pub tiers: BTreeMap<String, TierSpec>,
}

fn default_slo_namespace_label() -> String {
    "namespace".into()
}

fn default_tier() -> String {
    "production".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExceptionRules {
    /// Longest lifetime a BudgetException may ask for.
    #[serde(default = "default_max_exception")]
    pub max_duration: Duration,
}

fn default_max_exception() -> Duration {
    Duration::from_seconds(7 * 86_400)
}

impl Default for ExceptionRules {
    fn default() -> Self {
        ExceptionRules {
            max_duration: default_max_exception(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReliabilityPolicyStatus {
    /// Platform aggregate budget per tier, written by the controller (for `platformFreeze`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platform: Vec<PlatformBudget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<super::Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformBudget {
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<super::BudgetState>,
}

/// One tier. Every field but `bands` is optional; `policy::Tier` applies the defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_stale: Option<OnStale>,
    /// What a rollout that the budget freezes (exhausted, page burn, platform freeze) gets
    /// under `enforce`: a denial (default) or a place in the team's queue (DESIGN §7.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exhausted: Option<OnExhausted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_on_page_burn: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_target: Option<Duration>,
    /// Ordered: the first band whose `minRemaining` is below the remaining budget applies.
    pub bands: Vec<Band>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_windows: Option<Vec<AlertWindow>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    Enforce,
    Warn,
    Dryrun,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Enforce => "enforce",
            Enforcement::Warn => "warn",
            Enforcement::Dryrun => "dryrun",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "enforce" => Some(Enforcement::Enforce),
            "warn" => Some(Enforcement::Warn),
            "dryrun" => Some(Enforcement::Dryrun),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnStale {
    Allow,
    Deny,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnExhausted {
    /// Refuse the rollout (the apply fails with the denial).
    Deny,
    /// Admit it paused, queued until the budget recovers or an exception is approved.
    Queue,
}

/// The SLO period: a rolling duration (`30d`) or a calendar period (`calendar: month`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    Rolling(Duration),
    Calendar(CalendarPeriod),
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CalendarPeriod {
    Month,
    Quarter,
}

impl Window {
    /// The window as written: `30d`, `calendar:month`.
    pub fn label(&self) -> String {
        match self {
            Window::Rolling(d) => d.as_str().to_owned(),
            Window::Calendar(CalendarPeriod::Month) => "calendar:month".into(),
            Window::Calendar(CalendarPeriod::Quarter) => "calendar:quarter".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WindowRepr {
    Rolling(String),
    Calendar(CalendarRepr),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarRepr {
    calendar: CalendarPeriod,
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Window::Rolling(d) => d.serialize(s),
            Window::Calendar(calendar) => CalendarRepr {
                calendar: *calendar,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match WindowRepr::deserialize(d).map_err(|_| {
            D::Error::custom("expected a duration such as 30d, or {calendar: month|quarter}")
        })? {
            WindowRepr::Rolling(text) => Duration::parse(&text)
                .map(Window::Rolling)
                .map_err(D::Error::custom),
            WindowRepr::Calendar(c) => Ok(Window::Calendar(c.calendar)),
        }
    }
}

impl JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }

    // A string or an object: Kubernetes structural schemas only allow that shape as
    // "any value", so the webhook and file loader do the real validation.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "SLO period: a rolling duration such as 30d, or {calendar: month|quarter}.",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Band {
    pub name: String,
    /// The band applies while remaining budget is strictly above this fraction.
    #[serde(default)]
    pub min_remaining: f64,
    pub plan: Plan,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_rollouts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<Duration>,
}

/// A canary plan: traffic weights in percent (the last is 100) and the hold per stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    pub steps: Vec<u32>,
    pub pause: Duration,
}

impl Plan {
    /// The `budgetgate.dev/plan` annotation value: `10,25,50,100`.
    pub fn steps_annotation(&self) -> String {
        self.steps
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Page,
    Ticket,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertWindow {
    pub name: String,
    pub severity: Severity,
    pub long: Duration,
    pub short: Duration,
    /// Share of the period's budget this pair catches being spent within `long`.
    pub budget_percent: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    #[serde(default = "default_analysis_window")]
    pub analysis_window: Duration,
    #[serde(default = "default_abort_burn_rate")]
    pub abort_burn_rate: f64,
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: Duration,
    /// Series label that carries the pod's `budgetgate.dev/track` (canary or stable).
    #[serde(default = "default_track_label")]
    pub track_label: String,
    /// Canary events a check needs before it judges the canary; fewer holds the stage.
    #[serde(default = "default_min_canary_events")]
    pub min_canary_events: u64,
    /// A canary error ratio more than this many times the stable one (and significant)
    /// fails a check.
    #[serde(default = "default_max_relative_error_rate")]
    pub max_relative_error_rate: f64,
}

fn default_analysis_window() -> Duration {
    Duration::from_seconds(300)
}
fn default_abort_burn_rate() -> f64 {
    14.4
}
fn default_consecutive_failures() -> u32 {
    2
}
fn default_progress_deadline() -> Duration {
    Duration::from_seconds(600)
}
fn default_track_label() -> String {
    "track".into()
}
fn default_min_canary_events() -> u64 {
    100
}
fn default_max_relative_error_rate() -> f64 {
    2.0
}

impl Default for CanarySpec {
    fn default() -> Self {
        CanarySpec {
            analysis_window: default_analysis_window(),
            abort_burn_rate: default_abort_burn_rate(),
            consecutive_failures: default_consecutive_failures(),
            progress_deadline: default_progress_deadline(),
            track_label: default_track_label(),
            min_canary_events: default_min_canary_events(),
            max_relative_error_rate: default_max_relative_error_rate(),
        }
    }
}
