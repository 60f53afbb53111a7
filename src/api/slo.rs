//! `ServiceLevelObjective`: a team's objective over Prometheus metrics (namespaced).
//! The team is the namespace's team, never a field.

use super::{Condition, LabelSelector, Time, Window};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "budgetgate.dev",
    version = "v1alpha1",
    kind = "ServiceLevelObjective",
    namespaced,
    shortname = "slo",
    category = "budgetgate",
    status = "ServiceLevelObjectiveStatus",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Objective", type_ = "number", json_path = ".spec.objective"),
    printcolumn(
        name = "Remaining",
        type_ = "string",
        json_path = ".status.remainingText"
    ),
    printcolumn(name = "Band", type_ = "string", json_path = ".status.band"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Burn-1h",
        type_ = "string",
        json_path = ".status.burnRate1hText"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceLevelObjectiveSpec {
    pub service: String,
    /// Target in percent, e.g. `99.9`.
    pub objective: f64,
    /// Overrides the tier's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    pub indicator: Indicator,
    /// Which Deployments of the namespace this SLO covers; empty or absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_selector: Option<LabelSelector>,
}

/// Exactly one of `ratio`, `latency`, `raw`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Indicator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<RatioIndicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyIndicator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawIndicator>,
}

impl Indicator {
    /// Checks that exactly one kind of indicator is set.
    pub fn validate(&self) -> Result<(), String> {
        let set = [
            self.ratio.is_some(),
            self.latency.is_some(),
            self.raw.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        match set {
            1 => Ok(()),
            0 => Err("one of ratio, latency or raw is required".into()),
            _ => Err("only one of ratio, latency or raw may be set".into()),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatioIndicator {
    /// Series selector of the bad-event counter.
    pub errors: String,
    /// Series selector of the all-events counter.
    pub total: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyIndicator {
    /// Selector of the histogram's `_bucket` series.
    pub histogram: String,
    /// Good = observations in the bucket whose `le` equals this.
    pub threshold: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawIndicator {
    /// PromQL of the bad-event count; `{{window}}` is replaced by the window.
    pub error_query: String,
    /// PromQL of the all-event count; `{{window}}` is replaced by the window.
    pub total_query: String,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum BudgetState {
    Healthy,
    Caution,
    Critical,
    Exhausted,
    Burning,
    Unknown,
}

impl BudgetState {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetState::Healthy => "Healthy",
            BudgetState::Caution => "Caution",
            BudgetState::Critical => "Critical",
            BudgetState::Exhausted => "Exhausted",
            BudgetState::Burning => "Burning",
            BudgetState::Unknown => "Unknown",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLevelObjectiveStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<f64>,
    /// `remaining` as a percentage (`87.4%`), for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_text: Option<String>,
    /// The 1h burn rate as a factor (`0.30x`), for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate1h_text: Option<String>,
    /// Burn rate per window key (`5m`, `1h`, …); absent when the window had no data.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub burn_rates: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BudgetState>,
    /// Names of the alert window pairs firing now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausts_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
