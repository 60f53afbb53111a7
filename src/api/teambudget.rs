//! `TeamBudget`: a team's error budget per tier (cluster-scoped, name = team, written by
//! the controller). Tiers are listed worst first, so the printer columns show the worst.

use super::{BudgetState, Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "budgetgate.dev",
    version = "v1alpha1",
    kind = "TeamBudget",
    shortname = "tb",
    category = "budgetgate",
    status = "TeamBudgetStatus",
    printcolumn(name = "Team", type_ = "string", json_path = ".spec.team"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".status.tiers[0].tier"),
    printcolumn(
        name = "Remaining",
        type_ = "string",
        json_path = ".status.tiers[0].remainingText"
    ),
    printcolumn(name = "Band", type_ = "string", json_path = ".status.tiers[0].band"),
    printcolumn(
        name = "Burn-1h",
        type_ = "string",
        json_path = ".status.tiers[0].burnRate1hText"
    ),
    printcolumn(
        name = "In-Flight",
        type_ = "integer",
        json_path = ".status.tiers[0].rolloutsInFlight"
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.tiers[0].state",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamBudgetSpec {
    pub team: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamBudgetStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierBudget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierBudget {
    pub tier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<f64>,
    /// `remaining` as a percentage (`62.0%`), for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BudgetState>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub burn_rates: BTreeMap<String, f64>,
    /// The 1h burn rate again, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate1h: Option<f64>,
    /// The 1h burn rate as a factor (`6.48x`), for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate1h_text: Option<String>,
    /// Names of the alert pairs firing on the team's aggregate (a page pair firing is
    /// what a page-burn denial names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    /// How many of the team's SLOs in the tier had no data and are not in `remaining`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slos_without_data: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<SloSummary>,
    #[serde(default)]
    pub rollouts_in_flight: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_release: Option<LastRelease>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<Incident>,
    /// With a global view (`--cluster-name`): the team's bad and total events over the
    /// period, cluster by cluster, summed over its SLOs that can be split (not `raw`).
    /// `remaining` is computed from all of them together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterEvents>,
}

/// One cluster's share of a team's events (the policy's `clusterLabel` value; empty for
/// series without it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEvents {
    pub cluster: String,
    pub bad: f64,
    pub total: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SloSummary {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BudgetState>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastRelease {
    pub namespace: String,
    pub name: String,
    pub deployment: String,
    pub at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<super::ReleasePhase>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub start: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Time>,
    pub peak_burn: f64,
    /// Remaining budget when the incident opened (what `budgetConsumed` is measured from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_at_start: Option<f64>,
    /// Fraction of the period's budget consumed during the incident.
    pub budget_consumed: f64,
    pub within_budget: bool,
    /// Lasted longer than the tier's `recoveryTarget`.
    pub overdue: bool,
}
