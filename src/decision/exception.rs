//! Validation of BudgetException objects by the validating webhook (DESIGN §9): a reason,
//! an approver, and an expiry in the future no later than the policy's `maxDuration`.

use super::review::AdmissionRequest;
use super::{Decision, Operation, Reason, ReviewError};
use crate::api::{BudgetExceptionSpec, Duration, ExceptionKind, Timestamp};
use crate::policy::Policy;

pub fn validate(
    req: &AdmissionRequest,
    policy: Option<&Policy>,
    now: Timestamp,
) -> Result<Decision, ReviewError> {
    let mut d = Decision::new(req, Reason::ExceptionValid);
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        d.reason = Reason::NotApplicable;
        return Ok(d);
    }
    let object = req
        .object
        .as_ref()
        .map(super::Object::value)
        .ok_or_else(|| {
            ReviewError::Malformed(
                "request.object: missing for a BudgetException CREATE or UPDATE".into(),
            )
        })?;
    let max = policy
        .map(|p| p.max_exception.clone())
        .unwrap_or_else(|| Duration::from_seconds(7 * 86_400));
    if let Err(why) = check(object, &max, now) {
        d.reason = Reason::ExceptionInvalid;
        d.would_deny = true;
        d.message = Some(format!(
            "budgetgate rejected BudgetException {}/{}: {why}",
            d.namespace, d.name
        ));
    }
    Ok(d)
}

fn check(object: &serde_json::Value, max: &Duration, now: Timestamp) -> Result<(), String> {
    let spec = object.get("spec").ok_or("spec is required")?;
    let spec: BudgetExceptionSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
        match e.path().to_string().as_str() {
            // An error about `spec` itself (e.g. a missing required field) has the root path ".".
            "." => format!("spec: {}", e.inner()),
            path => format!("spec.{path}: {}", e.inner()),
        }
    })?;
    if spec.reason.trim().is_empty() {
        return Err("spec.reason is required: say why the budget rules should not apply".into());
    }
    if spec.approved_by.trim().is_empty() {
        return Err("spec.approvedBy is required: name the platform approver".into());
    }
    let expires = spec.expires_at.0;
    if expires <= now {
        return Err(format!("spec.expiresAt {expires} is already past"));
    }
    let latest = now.saturating_add(max.signed()).unwrap_or(now);
    if expires > latest {
        return Err(format!(
            "spec.expiresAt {expires} is more than the policy's maxDuration {max} away (latest allowed {latest})"
        ));
    }
    match (spec.kind, spec.extra_budget) {
        (ExceptionKind::Offset, Some(extra)) if extra > 0.0 && extra <= 1.0 => Ok(()),
        (ExceptionKind::Offset, _) => {
            Err("spec.extraBudget must be above 0 and at most 1 for kind offset".into())
        }
        (ExceptionKind::Override, Some(_)) => {
            Err("spec.extraBudget applies only to kind offset".into())
        }
        (ExceptionKind::Override, None) => Ok(()),
    }
}
