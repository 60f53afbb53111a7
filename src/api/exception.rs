//! `BudgetException`: a platform approver's decision to let a Deployment ship despite its
//! budget (namespaced; created only by holders of `budgetgate-exception-approver`).

use super::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "budgetgate.dev",
    version = "v1alpha1",
    kind = "BudgetException",
    namespaced,
    shortname = "bex",
    category = "budgetgate",
    status = "BudgetExceptionStatus",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Approved-By", type_ = "string", json_path = ".spec.approvedBy"),
    // A string, not a date: kubectl prints a date column as an age, `<invalid>` for a
    // time still to come.
    printcolumn(name = "Expires", type_ = "string", json_path = ".spec.expiresAt"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".spec.reason",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetExceptionSpec {
    pub kind: ExceptionKind,
    /// Deployments of the namespace it applies to.
    pub selector: LabelSelector,
    /// Offset only: budget fraction (0–1) added to the remaining budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_budget: Option<f64>,
    pub reason: String,
    pub approved_by: String,
    pub expires_at: Time,
    /// Rollouts it may let through, counted over Releases naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rollouts: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionKind {
    /// Let matching rollouts through whatever the budget says.
    Override,
    /// Add `extraBudget` to the remaining budget.
    Offset,
}

impl ExceptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::Override => "override",
            ExceptionKind::Offset => "offset",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetExceptionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollouts_used: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
