//! The `budgetgate.dev/v1alpha1` resources and the wire vocabulary around them.
//!
//! Owns the Rust shapes of the five CRDs (DESIGN §2, Appendix A), the label and annotation
//! keys (the only place that spells them), durations and the time type. Pure data: no
//! arithmetic beyond parsing, no I/O.

// kube's `printcolumn(name = …, type_ = …)` repeats argument names, which clippy's
// duplicated_attributes lint mistakes for repeated attributes.
mod duration;
#[allow(clippy::duplicated_attributes)]
mod exception;
pub mod keys;
#[allow(clippy::duplicated_attributes)]
mod policy;
#[allow(clippy::duplicated_attributes)]
mod release;
#[allow(clippy::duplicated_attributes)]
mod slo;
#[allow(clippy::duplicated_attributes)]
mod teambudget;

pub use duration::{Duration, DurationError};
pub use exception::{BudgetException, BudgetExceptionSpec, BudgetExceptionStatus, ExceptionKind};
pub use policy::{
    AlertWindow, Band, CalendarPeriod, CanarySpec, Enforcement, ExceptionRules, OnExhausted,
    OnStale, Plan, PlatformBudget, ReliabilityPolicy, ReliabilityPolicySpec,
    ReliabilityPolicyStatus, Severity, TierSpec, Window,
};
pub use release::{ManualActionRecord, Release, ReleasePhase, ReleaseSpec, ReleaseStatus};
pub use slo::{
    BudgetState, Indicator, LatencyIndicator, RatioIndicator, RawIndicator, ServiceLevelObjective,
    ServiceLevelObjectiveSpec, ServiceLevelObjectiveStatus,
};
pub use teambudget::{
    ClusterEvents, Incident, LastRelease, SloSummary, TeamBudget, TeamBudgetSpec, TeamBudgetStatus,
    TierBudget,
};

pub use jiff::Timestamp;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};

/// API group of every budgetgate resource.
pub const GROUP: &str = "budgetgate.dev";
/// The one served version.
pub const VERSION: &str = "v1alpha1";

/// The CustomResourceDefinitions of all five resources, in a stable order.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![
        ReliabilityPolicy::crd(),
        ServiceLevelObjective::crd(),
        BudgetException::crd(),
        TeamBudget::crd(),
        Release::crd(),
    ]
}
