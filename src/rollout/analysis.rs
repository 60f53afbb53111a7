//! Placeholder until the judgement lands (same API).
use super::Health;
use crate::api::CanarySpec;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub bad: f64,
    pub total: f64,
}
#[derive(Clone, Debug, PartialEq)]
pub struct SloReading {
    pub slo: String,
    pub objective: f64,
    pub tracks: Tracks,
}
#[derive(Clone, Debug, PartialEq)]
pub enum Tracks {
    Split { canary: Counts, stable: Counts },
    WholeService { why: String },
    Unavailable { reason: String },
}
#[derive(Clone, Debug, PartialEq)]
pub struct SloJudgement {
    pub slo: String,
    pub canary: Counts,
    pub stable: Counts,
    pub canary_burn: f64,
    pub z: Option<f64>,
    pub judged: bool,
}
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    Fail { reason: String },
    InsufficientTraffic { reason: String },
    Unknown { reason: String },
}
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub verdict: Verdict,
    pub slos: Vec<SloJudgement>,
    pub whole_service: Vec<String>,
    pub burn: Option<f64>,
}
pub fn judge(_readings: &[SloReading], floor: &Health, _spec: &CanarySpec) -> Check {
    let verdict = match floor {
        Health::Healthy { .. } => Verdict::Pass,
        Health::Unhealthy { reason, .. } => Verdict::Fail {
            reason: reason.clone(),
        },
        Health::Unknown { reason } => Verdict::Unknown {
            reason: reason.clone(),
        },
    };
    Check {
        verdict,
        slos: vec![],
        whole_service: vec![],
        burn: floor.burn(),
    }
}
