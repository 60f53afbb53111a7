//! The canary state machine (DESIGN §7): from what the cluster shows — the Deployment, its
//! canary Deployment, the Release, the budget signals, the tier's canary settings and the
//! time — to the one next action. Pure: the rollout controller reads, calls [`next`],
//! carries the action out and asks again.
//!
//! Progress lives on the Deployment (system annotations `revision`, `plan`, `pause`,
//! `band`, `stage`, `stage-started-at`), the consecutive failed checks on the Release, so a
//! restarted or new leader computes the same next action from the same objects: nothing is
//! advanced twice, no pause time is lost.

pub mod analysis;
mod health;
#[cfg(test)]
mod tests;

pub use health::{Health, health};

use crate::api::{CanarySpec, Duration, Plan, ReleasePhase, Timestamp, keys};
use crate::decision as classify;
use serde_json::Value;

/// Annotation a user sets on a Deployment to steer its canary by hand; handled once and
/// removed.
pub const ACTION: &str = "budgetgate.dev/action";
/// Value of the `stage` annotation while the promoted Deployment rolls out.
pub const PROMOTING: &str = "promoting";
/// Suffix of the canary Deployment's name.
pub const CANARY_SUFFIX: &str = "-canary";
/// Pod label value of the canary's pods (`budgetgate.dev/track`).
pub const CANARY_TRACK: &str = "canary";

/// `kubectl annotate deployment X budgetgate.dev/action=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManualAction {
    /// Promote now, skipping the remaining stages.
    Promote,
    /// Roll back now.
    Abort,
    /// Advance to the next stage now, without waiting for the rest of the pause.
    Resume,
}

impl ManualAction {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "promote" => Some(ManualAction::Promote),
            "abort" => Some(ManualAction::Abort),
            "resume" => Some(ManualAction::Resume),
            _ => None,
        }
    }
}

/// Where a canary stands, from the Deployment's annotations.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Index into the plan's steps.
    Canary(usize),
    /// Unpaused; the Deployment's own rolling update is running.
    Promoting,
}

/// A canary in progress, as the Deployment's system annotations describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub revision: String,
    pub plan: Plan,
    pub band: String,
    pub stage: Stage,
    pub stage_started_at: Option<Timestamp>,
}

/// The parts of the user's Deployment the machine reads.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentView {
    /// `spec.replicas` (1 when unset): the stable capacity, owned by the user or an HPA.
    pub replicas: u32,
    pub paused: bool,
    /// Revision hash of the Deployment's pod template.
    pub template_revision: String,
    /// `None` when no canary is in progress; `Err` when the annotations do not parse.
    pub progress: Option<Result<Progress, String>>,
    pub action: Option<ManualAction>,
    /// The rolling update finished: observed, updated, available and no old pods left.
    pub rolled_out: bool,
}

/// The canary Deployment `<name>-canary`, when it exists.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryView {
    pub revision: String,
    pub replicas: u32,
    pub available: u32,
}

/// The Release of the rollout in progress (the newest for the Deployment).
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseView {
    pub name: String,
    pub revision: String,
    pub phase: ReleasePhase,
    pub failed_checks: u32,
}

pub struct Input<'a> {
    pub deployment: &'a DeploymentView,
    pub canary: Option<&'a CanaryView>,
    pub release: Option<&'a ReleaseView>,
    pub health: &'a Health,
    pub canary_spec: &'a CanarySpec,
    /// A failed check counts once per evaluation interval: false while the last counted
    /// failure is younger than that.
    pub check_due: bool,
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// No canary in progress and nothing left over.
    Idle,
    /// A canary Deployment is left over from a finished canary: delete it.
    RemoveCanary,
    /// The canary annotations cannot be read: say so, touch nothing.
    Invalid { reason: String },
    /// Open the Release of `revision`; a Progressing Release of another revision is
    /// superseded by it.
    OpenRelease {
        revision: String,
        supersedes: Option<String>,
    },
    /// Record when the current stage started (the webhook writes stage 0 without a time).
    StartStage { stage: usize },
    /// Create the canary or bring it to the stage's template and replica count.
    SyncCanary {
        create: bool,
        revision: String,
        replicas: u32,
        weight: f64,
    },
    /// Nothing to do until `until` (or the next check).
    Wait { reason: String },
    /// Metrics missing or stale: neither advance nor roll back.
    Hold { reason: String },
    /// A health check: `failed_checks` is the new count of consecutive failures (0 after
    /// a healthy check that follows failures).
    RecordCheck { failed_checks: u32, reason: String },
    /// Move to `stage` (its start is now).
    Advance {
        stage: usize,
        weight: u32,
        manual: bool,
    },
    /// Unpause the Deployment: the normal rolling update takes the new template.
    Promote { manual: bool },
    /// The rolling update is done: delete the canary, push the revision onto `history`,
    /// Release `Promoted`.
    FinishPromotion,
    /// Restore the serving template, unpause, delete the canary, Release `RolledBack`.
    RollBack { reason: String, manual: bool },
}

/// Canary replicas for weight `w` percent next to `stable` replicas:
/// `max(1, round(N·w/(100−w)))` — stable capacity is never reduced.
pub fn canary_replicas(stable: u32, weight: u32) -> u32 {
    if weight >= 100 {
        return stable.max(1);
    }
    let n = f64::from(stable);
    let w = f64::from(weight);
    ((n * w / (100.0 - w)).round() as u32).max(1)
}

/// The share of pods the canary really has, in percent.
pub fn effective_weight(stable: u32, canary: u32) -> f64 {
    let total = stable + canary;
    if total == 0 {
        return 0.0;
    }
    f64::from(canary) * 100.0 / f64::from(total)
}

/// The next action. Order matters: a manual action first, then bookkeeping (Release,
/// stage start), then the canary's shape, then availability, then health and the pause.
pub fn next(input: &Input) -> Action {
    let d = input.deployment;
    let progress = match &d.progress {
        None => {
            return if input.canary.is_some() {
                Action::RemoveCanary
            } else {
                Action::Idle
            };
        }
        Some(Err(reason)) => {
            return Action::Invalid {
                reason: reason.clone(),
            };
        }
        Some(Ok(p)) => p,
    };
    // The Release of this revision comes first: everything after reports to it.
    match input.release {
        Some(r) if r.revision == progress.revision && r.phase == ReleasePhase::Progressing => {}
        Some(r) if r.revision == progress.revision && progress.stage == Stage::Promoting => {}
        other => {
            return Action::OpenRelease {
                revision: progress.revision.clone(),
                supersedes: other
                    .filter(|r| r.phase == ReleasePhase::Progressing)
                    .map(|r| r.name.clone()),
            };
        }
    }
    let release = input.release.expect("matched above");
    let deadline = &input.canary_spec.progress_deadline;
    match progress.stage {
        Stage::Promoting => {
            if d.rolled_out {
                return Action::FinishPromotion;
            }
            if let Some(started) = progress.stage_started_at
                && elapsed(started, input.now) >= deadline.seconds()
            {
                return Action::RollBack {
                    reason: format!(
                        "the promoted rollout did not complete within progressDeadline {deadline}"
                    ),
                    manual: false,
                };
            }
            Action::Wait {
                reason: "waiting for the rolling update of the promoted revision".into(),
            }
        }
        Stage::Canary(stage) => canary_stage(input, progress, release, stage),
    }
}

fn canary_stage(input: &Input, progress: &Progress, release: &ReleaseView, stage: usize) -> Action {
    let d = input.deployment;
    let steps = &progress.plan.steps;
    match d.action {
        Some(ManualAction::Abort) => {
            return Action::RollBack {
                reason: format!("aborted by hand (annotation {ACTION}=abort)"),
                manual: true,
            };
        }
        Some(ManualAction::Promote) => return Action::Promote { manual: true },
        Some(ManualAction::Resume) | None => {}
    }
    // A stage at 100% (or past the plan) is the promotion itself.
    let Some(&weight) = steps.get(stage).filter(|&&w| w < 100) else {
        return Action::Promote { manual: false };
    };
    let Some(started) = progress.stage_started_at else {
        return Action::StartStage { stage };
    };
    let replicas = canary_replicas(d.replicas, weight);
    match input.canary {
        None => {
            return Action::SyncCanary {
                create: true,
                revision: progress.revision.clone(),
                replicas,
                weight: effective_weight(d.replicas, replicas),
            };
        }
        Some(c) if c.revision != progress.revision || c.replicas != replicas => {
            return Action::SyncCanary {
                create: false,
                revision: progress.revision.clone(),
                replicas,
                weight: effective_weight(d.replicas, replicas),
            };
        }
        Some(_) => {}
    }
    let canary = input.canary.expect("matched above");
    let waited = elapsed(started, input.now);
    let deadline = &input.canary_spec.progress_deadline;
    if canary.available < canary.replicas {
        if waited >= deadline.seconds() {
            return Action::RollBack {
                reason: format!(
                    "the canary was not available within progressDeadline {deadline} ({}/{} pods available)",
                    canary.available, canary.replicas
                ),
                manual: false,
            };
        }
        return Action::Wait {
            reason: format!(
                "waiting for the canary to be available ({}/{})",
                canary.available, canary.replicas
            ),
        };
    }
    match input.health {
        Health::Unknown { reason } => {
            return Action::Hold {
                reason: reason.clone(),
            };
        }
        Health::Unhealthy { reason, .. } if !input.check_due => {
            return Action::Wait {
                reason: format!("unhealthy, next check within the interval: {reason}"),
            };
        }
        Health::Unhealthy { reason, .. } => {
            let failed = release.failed_checks + 1;
            if failed >= input.canary_spec.consecutive_failures.max(1) {
                return Action::RollBack {
                    reason: if failed > 1 {
                        format!("{reason} ({failed} checks in a row)")
                    } else {
                        reason.clone()
                    },
                    manual: false,
                };
            }
            return Action::RecordCheck {
                failed_checks: failed,
                reason: reason.clone(),
            };
        }
        Health::Healthy { .. } => {
            if release.failed_checks > 0 {
                return Action::RecordCheck {
                    failed_checks: 0,
                    reason: "healthy again".into(),
                };
            }
        }
    }
    let manual = d.action == Some(ManualAction::Resume);
    if !manual && waited < progress.plan.pause.seconds() {
        return Action::Wait {
            reason: format!(
                "stage {} at {weight}% healthy; {}s of the {} pause left",
                stage,
                progress.plan.pause.seconds() - waited,
                progress.plan.pause
            ),
        };
    }
    match steps.get(stage + 1) {
        Some(&w) if w < 100 => Action::Advance {
            stage: stage + 1,
            weight: w,
            manual,
        },
        _ => Action::Promote { manual },
    }
}

fn elapsed(from: Timestamp, to: Timestamp) -> u64 {
    to.duration_since(from).as_secs().max(0) as u64
}

/// Reads the canary annotations of a Deployment (as JSON). `None` = no canary in progress:
/// the Deployment carries no `stage`.
pub fn progress(deployment: &Value) -> Option<Result<Progress, String>> {
    let stage = classify::annotation(deployment, keys::STAGE)?;
    Some(parse_progress(deployment, stage))
}

fn parse_progress(deployment: &Value, stage: &str) -> Result<Progress, String> {
    let get = |key: &str| {
        classify::annotation(deployment, key).ok_or_else(|| format!("annotation {key} is missing"))
    };
    let revision = get(keys::REVISION)?.to_owned();
    let steps = get(keys::PLAN)?
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=100).contains(w))
                .ok_or_else(|| format!("annotation {}: {s:?} is not a weight 1-100", keys::PLAN))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pause = get(keys::PAUSE)?;
    let pause = Duration::parse(pause).map_err(|e| format!("annotation {}: {e}", keys::PAUSE))?;
    let band = classify::annotation(deployment, keys::BAND)
        .unwrap_or_default()
        .to_owned();
    let stage = if stage == PROMOTING {
        Stage::Promoting
    } else {
        Stage::Canary(
            stage
                .parse()
                .map_err(|_| format!("annotation {}: {stage:?} is not a stage", keys::STAGE))?,
        )
    };
    let stage_started_at = match classify::annotation(deployment, keys::STAGE_STARTED_AT) {
        None | Some("") => None,
        Some(t) => Some(
            t.parse()
                .map_err(|e| format!("annotation {}: {e}", keys::STAGE_STARTED_AT))?,
        ),
    };
    Ok(Progress {
        revision,
        plan: Plan { steps, pause },
        band,
        stage,
        stage_started_at,
    })
}

/// The machine's view of a Deployment (as JSON).
pub fn deployment_view(deployment: &Value) -> DeploymentView {
    let int = |p: &str| deployment.pointer(p).and_then(Value::as_i64);
    let replicas = int("/spec/replicas").unwrap_or(1).max(0) as u32;
    let generation = int("/metadata/generation").unwrap_or(0);
    let observed = int("/status/observedGeneration").unwrap_or(0);
    let status = |p: &str| int(p).unwrap_or(0).max(0) as u32;
    let rolled_out = observed >= generation
        && status("/status/updatedReplicas") == replicas
        && status("/status/availableReplicas") >= replicas
        && status("/status/replicas") == replicas;
    DeploymentView {
        replicas,
        paused: deployment.pointer("/spec/paused") == Some(&Value::Bool(true)),
        template_revision: classify::workload_revision(deployment),
        progress: progress(deployment),
        action: classify::annotation(deployment, ACTION).and_then(ManualAction::parse),
        rolled_out,
    }
}

/// The machine's view of a canary Deployment (as JSON).
pub fn canary_view(canary: &Value) -> CanaryView {
    let int = |p: &str| {
        canary
            .pointer(p)
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0) as u32
    };
    CanaryView {
        revision: classify::annotation(canary, keys::REVISION)
            .unwrap_or_default()
            .to_owned(),
        replicas: canary
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as u32,
        available: int("/status/availableReplicas"),
    }
}

/// The canary Deployment for `deployment` (as JSON) at `revision` with `replicas`: the
/// Deployment's template plus the canary track label, a selector that also requires the
/// label (so it never adopts the stable ReplicaSet), owned by the Deployment.
pub fn canary_object(deployment: &Value, revision: &str, replicas: u32) -> Value {
    let name = deployment
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    set_label(&mut template, keys::TRACK, CANARY_TRACK);
    let mut selector = deployment
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(obj) = selector.as_object_mut() {
        let labels = obj
            .entry("matchLabels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(keys::TRACK.into(), CANARY_TRACK.into());
        }
    }
    let mut owner = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
        "controller": true, "blockOwnerDeletion": true,
    });
    if let Some(uid) = deployment.pointer("/metadata/uid") {
        owner["uid"] = uid.clone();
    }
    let mut labels = deployment
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert(keys::TRACK.into(), CANARY_TRACK.into());
    }
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": format!("{name}{CANARY_SUFFIX}"),
            "namespace": deployment.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
            "labels": labels,
            "annotations": { keys::REVISION: revision },
            "ownerReferences": [owner],
        },
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": template,
        }
    })
}

fn set_label(template: &mut Value, key: &str, value: &str) {
    let Some(obj) = template.as_object_mut() else {
        return;
    };
    let metadata = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(metadata) = metadata.as_object_mut() {
        let labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(key.into(), value.into());
        }
    }
}

/// The template to restore on roll back: the newest ReplicaSet (by the Deployment
/// controller's `deployment.kubernetes.io/revision`) whose template is not the canary's
/// revision, without its `pod-template-hash` label. `None` when there is none (a
/// Deployment created with a canary plan has nothing older to go back to).
pub fn serving_template<'a>(
    replica_sets: impl IntoIterator<Item = &'a Value>,
    canary_revision: &str,
) -> Option<(String, Value)> {
    replica_sets
        .into_iter()
        .filter_map(|rs| {
            let revision = classify::workload_revision(rs);
            if revision == canary_revision {
                return None;
            }
            let number = classify::annotation(rs, "deployment.kubernetes.io/revision")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            Some((number, revision, classify::comparable_template(rs)))
        })
        .max_by_key(|(number, _, _)| *number)
        .map(|(_, revision, template)| (revision, template))
}

/// `history` after promoting `revision`: newest first, no repeats, at most
/// [`keys::HISTORY_LIMIT`] entries.
pub fn push_history(history: &[String], revision: &str) -> String {
    let mut out = vec![revision.to_owned()];
    out.extend(history.iter().filter(|h| *h != revision).cloned());
    out.truncate(keys::HISTORY_LIMIT);
    out.join(",")
}

/// Name of the Release for `deployment` at `revision`, opened when the Deployment had
/// `generation`: the same observation always names the same Release, so a restarted
/// leader cannot open two.
pub fn release_name(deployment: &str, revision: &str, generation: i64) -> String {
    let short: String = revision.chars().take(8).collect();
    format!("{deployment}-{short}-{generation}")
}
