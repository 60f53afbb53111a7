//! `Release`: one admitted rollout and what it cost (namespaced, owned by the Deployment,
//! written by the controller). The ledger the platform plans from.

use super::{Condition, Plan, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "budgetgate.dev",
    version = "v1alpha1",
    kind = "Release",
    namespaced,
    shortname = "rel",
    category = "budgetgate",
    status = "ReleaseStatus",
    printcolumn(name = "Deployment", type_ = "string", json_path = ".spec.deployment"),
    printcolumn(name = "Revision", type_ = "string", json_path = ".spec.revision"),
    printcolumn(name = "Band", type_ = "string", json_path = ".spec.band"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Stage", type_ = "integer", json_path = ".status.stage"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.weight"),
    printcolumn(name = "Queue", type_ = "integer", json_path = ".status.queuePosition"),
    printcolumn(
        name = "Consumed",
        type_ = "string",
        json_path = ".status.budgetConsumedText",
        priority = 1
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseSpec {
    pub deployment: String,
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_at_start: Option<f64>,
    /// The BudgetException that let it through, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ReleasePhase {
    /// Admitted paused while the budget is frozen, waiting its turn (DESIGN §7.10).
    Queued,
    Progressing,
    Promoted,
    RolledBack,
    Superseded,
    Direct,
    Observed,
    Failed,
}

impl ReleasePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleasePhase::Queued => "Queued",
            ReleasePhase::Progressing => "Progressing",
            ReleasePhase::Promoted => "Promoted",
            ReleasePhase::RolledBack => "RolledBack",
            ReleasePhase::Superseded => "Superseded",
            ReleasePhase::Direct => "Direct",
            ReleasePhase::Observed => "Observed",
            ReleasePhase::Failed => "Failed",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReleasePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
    /// The canary's share: of the route's traffic when the Deployment routes through an
    /// HTTPRoute, else of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// With an HTTPRoute: where its traffic goes and the replica split
    /// (`HTTPRoute web: 95% to Service web (10 pods), 5% to Service web-canary (1 pod); accepted by its gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_consumed: Option<f64>,
    /// `budgetConsumed` as a percentage of the team's budget (`3.1%`), for the printer
    /// column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_consumed_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_burn: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While `Queued`: the place in the team's queue (1 = next to start), and since when
    /// the Deployment waits (its `budgetgate.dev/queued-since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_since: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Consecutive failed health checks of the current stage (the canary rolls back at
    /// the tier's `consecutiveFailures`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_checks: u32,
    /// When the current run of failed checks began (burn detected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Time>,
    /// The manual actions (`budgetgate.dev/action`) taken on this rollout, oldest first,
    /// with who asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ManualActionRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One manual action on a rollout: `promote`, `resume` or `abort`, the requester's
/// username (absent when none was recorded), the stage it was taken at and when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualActionRecord {
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub stage: u32,
    pub at: Time,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
