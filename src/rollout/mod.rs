//! The canary state machine (DESIGN §7): from what the cluster shows — the Deployment, its
//! canary Deployment, the Release, the check's verdict, the tier's canary settings and the
//! time — to the one next action. Pure: the rollout controller gathers the inputs, calls
//! [`next`], carries the action out and asks again. Every action carries everything its
//! writes need (names, uids, revisions, reasons); the controller adds nothing but I/O.
//!
//! Progress lives on the Deployment (system annotations `revision`, `plan`, `pause`,
//! `band`, `stage`, `stage-started-at`), the consecutive failed checks on the Release, so a
//! restarted or new leader computes the same next action from the same objects: nothing is
//! advanced twice, no pause time is lost.
//!
//! [`objects`] reads and builds the typed objects, [`ledger`] holds the Release rules,
//! [`health`] the whole-service floor and [`analysis`] the judgement of a check on the
//! canary's own traffic.

pub mod analysis;
mod health;
pub mod ledger;
pub mod objects;
pub mod route;
#[cfg(test)]
mod tests;

pub use analysis::Verdict;
pub use health::{Health, floor, health, health_in_cluster};
pub use ledger::ReleaseView;
pub use objects::{CanaryState, CanaryView};

use crate::api::{CanarySpec, Plan, ReleasePhase, Timestamp};

pub use crate::api::keys::{ACTION, ACTION_BY};
/// Value of the `stage` annotation while the promoted Deployment rolls out.
pub const PROMOTING: &str = "promoting";
/// Suffix of the canary Deployment's name.
pub const CANARY_SUFFIX: &str = "-canary";
/// Pod label value of the canary's pods (`budgetgate.dev/track`).
pub const CANARY_TRACK: &str = "canary";

/// `kubectl annotate deployment X budgetgate.dev/action=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManualAction {
    /// Promote now, skipping the remaining pauses (never the judgement).
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

    pub fn as_str(self) -> &'static str {
        match self {
            ManualAction::Promote => "promote",
            ManualAction::Abort => "abort",
            ManualAction::Resume => "resume",
        }
    }
}

/// A manual action the machine carries out, with who asked for it (the `action-by`
/// annotation the mutating webhook stamps; `None` when no name was recorded, e.g. the
/// action was set before the webhook saw it) and the stage it was taken at. The Release
/// records it (`status.actions`), the Event names the requester.
#[derive(Clone, Debug, PartialEq)]
pub struct ByHand {
    pub action: ManualAction,
    pub by: Option<String>,
    pub stage: u32,
}

impl ByHand {
    fn of(d: &DeploymentView, action: ManualAction, stage: usize) -> ByHand {
        ByHand {
            action,
            by: d.action_by.clone(),
            stage: stage as u32,
        }
    }

    /// "by hand (alice)", or "by hand" when no requester was recorded.
    pub fn text(&self) -> String {
        by_hand_text(self.by.as_deref())
    }
}

/// "by hand (alice)", or "by hand" when no requester was recorded.
pub fn by_hand_text(by: Option<&str>) -> String {
    match by {
        Some(user) if !user.is_empty() => format!("by hand ({user})"),
        _ => "by hand".to_owned(),
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
    pub name: String,
    pub uid: String,
    /// `spec.replicas` (1 when unset): the stable capacity, owned by the user or an HPA.
    pub replicas: u32,
    pub paused: bool,
    /// Revision hash of the Deployment's pod template.
    pub template_revision: String,
    /// `None` when no canary is in progress; `Err` when the annotations do not parse.
    pub progress: Option<Result<Progress, String>>,
    pub action: Option<ManualAction>,
    /// Who set `action` (`action-by`).
    pub action_by: Option<String>,
    /// The rolling update finished: observed, updated, available and no old pods left.
    pub rolled_out: bool,
    /// Revisions in `history`, newest first.
    pub history: Vec<String>,
}

pub struct Input<'a> {
    pub deployment: &'a DeploymentView,
    pub canary: &'a CanaryState,
    /// The Release the canary reports to ([`ledger::current`]).
    pub release: Option<&'a ReleaseView>,
    /// The verdict of this check ([`analysis::judge`]).
    pub verdict: &'a Verdict,
    pub canary_spec: &'a CanarySpec,
    /// A failed check counts once per evaluation interval: false while the last counted
    /// failure is younger than that.
    pub check_due: bool,
    /// The last error the apiserver gave a write of this rollout, while it keeps failing:
    /// it counts against `progressDeadline` like an unavailable canary.
    pub last_error: Option<&'a str>,
    /// Set when the Deployment routes its canary's traffic through an HTTPRoute.
    pub routing: Option<&'a Routing>,
    pub now: Timestamp,
}

/// The canary Service of a routed Deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CanaryService {
    /// Absent, or the stable Service not yet kept to the stable pods.
    #[default]
    Missing,
    /// In place, without a ready endpoint yet: no weight may name it.
    Unready,
    /// In place with a ready endpoint.
    Ready,
}

/// A Deployment's traffic routing (DESIGN §7.9) as the controller found it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    /// Why the annotations, the route or the Services cannot carry the canary's weight.
    pub broken: Option<String>,
    /// The canary's weight, when the route carries it on every managed rule with the canary
    /// Service in place and the stable Service kept to the stable pods; else `None`.
    pub weight: Option<u32>,
    /// Where the canary Service stands.
    pub service: CanaryService,
    /// Canary references in the route or the canary Service are still in place.
    pub leftovers: bool,
    /// The stable Service is still kept to the stable pods.
    pub restricted: bool,
}

/// Why a canary holds without a judgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldKind {
    /// Metrics missing or stale (condition `MetricsUnavailable`).
    MetricsUnavailable,
    /// Fewer than `minCanaryEvents` canary events (condition `InsufficientTraffic`).
    InsufficientTraffic,
}

/// An owned canary Deployment to delete (with its uid as precondition).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedCanary {
    pub name: String,
    pub uid: String,
}

impl From<&CanaryView> for OwnedCanary {
    fn from(c: &CanaryView) -> Self {
        OwnedCanary {
            name: c.name.clone(),
            uid: c.uid.clone(),
        }
    }
}

/// Ending a canary that did not make it.
#[derive(Clone, Debug, PartialEq)]
pub struct RollBack {
    /// The Release to close, when one is open.
    pub release: Option<String>,
    /// The canary's revision (written to `rolled-back-revision`).
    pub revision: String,
    pub reason: String,
    /// Set when the rollback is an abort by hand.
    pub by_hand: Option<ByHand>,
    /// `RolledBack`, or `Failed` when the canary never ran (its name is taken).
    pub outcome: ReleasePhase,
    /// The owned canary to delete; `None` when there is none or the name is someone else's.
    pub canary: Option<OwnedCanary>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// No canary in progress and nothing left over.
    Idle,
    /// An owned canary Deployment is left over from a finished canary: delete it.
    RemoveCanary { canary: OwnedCanary },
    /// The canary annotations cannot be read: say so, touch nothing.
    Invalid { reason: String },
    /// Open the Progressing Release of `revision`; a Progressing Release of another
    /// revision is superseded by it.
    OpenRelease {
        revision: String,
        plan: Plan,
        band: String,
        supersedes: Option<String>,
    },
    /// Record when the current stage started (the webhook writes stage 0 without a time).
    StartStage { stage: usize },
    /// Create the canary (`canary_uid` None) or bring the owned one (`canary_uid`) to the
    /// stage's template and replica count.
    SyncCanary {
        release: String,
        stage: usize,
        revision: String,
        replicas: u32,
        weight: f64,
        canary_uid: Option<String>,
    },
    /// Nothing to do until the next check.
    Wait { reason: String },
    /// No judgement possible: neither advance nor roll back.
    Hold { kind: HoldKind, reason: String },
    /// A health check: `failed_checks` is the new count of consecutive failures (0 after
    /// a healthy check that follows failures).
    RecordCheck {
        release: String,
        failed_checks: u32,
        reason: String,
    },
    /// Move to `stage` (its start is now), with `replicas` canary pods.
    Advance {
        stage: usize,
        weight: u32,
        replicas: u32,
        /// Set when a resume (or promote) by hand skipped the rest of the pause.
        by_hand: Option<ByHand>,
    },
    /// Unpause the Deployment: the normal rolling update takes the new template.
    Promote {
        release: String,
        revision: String,
        last_stage: u32,
        /// Set when a promote (or resume of the last stage) by hand skipped pauses.
        by_hand: Option<ByHand>,
    },
    /// The rolling update is done: delete the canary, write `history`, Release `Promoted`.
    FinishPromotion {
        release: String,
        revision: String,
        history: String,
        reason: String,
        canary: Option<OwnedCanary>,
    },
    /// Restore the serving template, unpause, delete the owned canary, close the Release.
    RollBack(RollBack),
    /// Give the canary exactly `weight` percent of the route's traffic: the canary Service,
    /// the stable Service kept to the stable pods, the weights on the route.
    SyncTraffic {
        release: String,
        stage: usize,
        weight: u32,
    },
    /// No canary in progress, but its routing is still in place: canary weight 0, the canary
    /// references and Service removed, the stable Service's selector given back.
    RemoveTraffic,
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

/// Canary replicas at a stage: by replica ratio, or for an exact traffic weight when the
/// route carries the weight ([`route::canary_replicas`]).
pub fn stage_replicas(stable: u32, weight: u32, routed: bool) -> u32 {
    if routed {
        route::canary_replicas(stable, weight)
    } else {
        canary_replicas(stable, weight)
    }
}

/// The share of pods the canary really has, in percent.
pub fn effective_weight(stable: u32, canary: u32) -> f64 {
    let total = stable + canary;
    if total == 0 {
        return 0.0;
    }
    f64::from(canary) * 100.0 / f64::from(total)
}

/// The next action. Order matters: bookkeeping (Release, stage start) first, then a name
/// taken by someone else, an abort, the canary's shape and availability, then the
/// judgement, and only then a manual promote or resume (they skip pauses, never the
/// judgement).
pub fn next(input: &Input) -> Action {
    let d = input.deployment;
    let progress = match &d.progress {
        None => {
            // Traffic leaves the canary before the canary goes.
            if input.routing.is_some_and(|r| r.leftovers) {
                return Action::RemoveTraffic;
            }
            return match input.canary {
                CanaryState::Owned(c) => Action::RemoveCanary { canary: c.into() },
                // The stable Service takes the canary's pods back only once they are gone.
                _ if input.routing.is_some_and(|r| r.restricted) => Action::RemoveTraffic,
                _ => Action::Idle,
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
    let release = match input.release {
        Some(r)
            if r.revision == progress.revision
                && (r.phase == ReleasePhase::Progressing || progress.stage == Stage::Promoting) =>
        {
            r
        }
        other => {
            return Action::OpenRelease {
                revision: progress.revision.clone(),
                plan: progress.plan.clone(),
                band: progress.band.clone(),
                // A queued Release of this revision becomes the canary's own (the apply that
                // left the queue was admitted); any other open one is superseded.
                supersedes: other
                    .filter(|r| {
                        r.phase == ReleasePhase::Progressing
                            || (r.phase == ReleasePhase::Queued && r.revision != progress.revision)
                    })
                    .map(|r| r.name.clone()),
            };
        }
    };
    match progress.stage {
        Stage::Promoting => promoting(input, progress, release),
        Stage::Canary(stage) => canary_stage(input, progress, release, stage),
    }
}

fn promoting(input: &Input, progress: &Progress, release: &ReleaseView) -> Action {
    let d = input.deployment;
    if d.rolled_out {
        let stages = progress.plan.steps.iter().filter(|w| **w < 100).count();
        return Action::FinishPromotion {
            release: release.name.clone(),
            revision: progress.revision.clone(),
            history: ledger::push_history(&d.history, &progress.revision),
            reason: format!(
                "promoted after {stages} stage(s) of plan {} every {}{}",
                progress.plan.steps_annotation(),
                progress.plan.pause,
                ledger::actions_text(&release.actions)
            ),
            canary: input.canary.owned().map(OwnedCanary::from),
        };
    }
    let deadline = &input.canary_spec.progress_deadline;
    if let Some(started) = progress.stage_started_at
        && elapsed(started, input.now) >= deadline.seconds()
    {
        return roll_back(
            input,
            progress,
            release,
            format!("the promoted rollout did not complete within progressDeadline {deadline}"),
            None,
        );
    }
    Action::Wait {
        reason: "waiting for the rolling update of the promoted revision".into(),
    }
}

fn roll_back(
    input: &Input,
    progress: &Progress,
    release: &ReleaseView,
    reason: String,
    by_hand: Option<ByHand>,
) -> Action {
    Action::RollBack(RollBack {
        release: Some(release.name.clone()),
        revision: progress.revision.clone(),
        reason,
        by_hand,
        outcome: ReleasePhase::RolledBack,
        canary: input.canary.owned().map(OwnedCanary::from),
    })
}

fn canary_stage(input: &Input, progress: &Progress, release: &ReleaseView, stage: usize) -> Action {
    let d = input.deployment;
    if let CanaryState::Foreign { name, owner } = input.canary {
        return Action::RollBack(RollBack {
            release: Some(release.name.clone()),
            revision: progress.revision.clone(),
            reason: format!(
                "the canary's name is taken: Deployment {name} exists and is not controlled by {} ({}); budgetgate never changes or deletes it. Rename it or delete it, then apply the rollout again",
                d.name,
                objects::owner_text(owner.as_deref())
            ),
            by_hand: None,
            outcome: ReleasePhase::Failed,
            canary: None,
        });
    }
    if d.action == Some(ManualAction::Abort) {
        let by_hand = ByHand::of(d, ManualAction::Abort, stage);
        return roll_back(
            input,
            progress,
            release,
            format!("aborted {} with annotation {ACTION}=abort", by_hand.text()),
            Some(by_hand),
        );
    }
    let steps = &progress.plan.steps;
    // A stage at 100% (or past the plan) is the promotion itself.
    let Some(&weight) = steps.get(stage).filter(|&&w| w < 100) else {
        return promote(progress, release, None);
    };
    let Some(started) = progress.stage_started_at else {
        return Action::StartStage { stage };
    };
    let waited = elapsed(started, input.now);
    let deadline = &input.canary_spec.progress_deadline;
    let routing = input.routing;
    if let Some(why) = routing.and_then(|r| r.broken.as_deref()) {
        // Like a canary that cannot be made available: a route created a moment after the
        // Deployment (a GitOps sync) is waited for, up to progressDeadline.
        if waited >= deadline.seconds() {
            return Action::RollBack(RollBack {
                release: Some(release.name.clone()),
                revision: progress.revision.clone(),
                reason: format!(
                    "the canary's traffic cannot be routed within progressDeadline {deadline}: {why}"
                ),
                by_hand: None,
                outcome: ReleasePhase::Failed,
                canary: input.canary.owned().map(OwnedCanary::from),
            });
        }
        return Action::Wait {
            reason: format!("the canary's traffic cannot be routed: {why}"),
        };
    }
    let replicas = stage_replicas(d.replicas, weight, routing.is_some());
    let canary = input.canary.owned();
    let in_shape = canary.filter(|c| c.revision == progress.revision && c.replicas == replicas);
    if in_shape.is_none_or(|c| c.available < c.replicas) {
        // Not yet there: whatever the reason (pods not ready, writes refused), the stage
        // has progressDeadline to get there.
        if waited >= deadline.seconds() {
            let why = match (input.last_error, canary) {
                (Some(error), _) => format!("last error: {error}"),
                (None, Some(c)) => format!("{}/{} pods available", c.available, c.replicas),
                (None, None) => "no canary".to_owned(),
            };
            return roll_back(
                input,
                progress,
                release,
                format!("the canary was not available within progressDeadline {deadline} ({why})"),
                None,
            );
        }
        if in_shape.is_none() {
            return Action::SyncCanary {
                release: release.name.clone(),
                stage,
                revision: progress.revision.clone(),
                replicas,
                weight: if routing.is_some() {
                    f64::from(weight)
                } else {
                    effective_weight(d.replicas, replicas)
                },
                canary_uid: canary.map(|c| c.uid.clone()),
            };
        }
        let c = canary.map_or((0, replicas), |c| (c.available, c.replicas));
        return Action::Wait {
            reason: format!("waiting for the canary to be available ({}/{})", c.0, c.1),
        };
    }
    // Traffic goes to the canary only once its pods are available, and before any
    // judgement of the stage.
    if let Some(r) = routing.filter(|r| r.weight != Some(weight)) {
        if waited >= deadline.seconds()
            && let Some(error) = input.last_error
        {
            return roll_back(
                input,
                progress,
                release,
                format!(
                    "the canary's traffic weight could not be set within progressDeadline {deadline} (last error: {error})"
                ),
                None,
            );
        }
        if r.service == CanaryService::Unready {
            if waited >= deadline.seconds() {
                return roll_back(
                    input,
                    progress,
                    release,
                    format!(
                        "the canary Service had no ready endpoint within progressDeadline {deadline}"
                    ),
                    None,
                );
            }
            return Action::Wait {
                reason: "waiting for a ready endpoint of the canary Service".into(),
            };
        }
        return Action::SyncTraffic {
            release: release.name.clone(),
            stage,
            weight,
        };
    }
    let manual = match d.action {
        Some(a @ (ManualAction::Resume | ManualAction::Promote)) => Some(ByHand::of(d, a, stage)),
        _ => None,
    };
    match input.verdict {
        Verdict::Unknown { reason } => {
            return Action::Hold {
                kind: HoldKind::MetricsUnavailable,
                reason: reason.clone(),
            };
        }
        Verdict::InsufficientTraffic { reason } if manual.is_none() => {
            return Action::Hold {
                kind: HoldKind::InsufficientTraffic,
                reason: reason.clone(),
            };
        }
        Verdict::Fail { reason } if !input.check_due => {
            return Action::Wait {
                reason: format!("unhealthy, next check within the interval: {reason}"),
            };
        }
        Verdict::Fail { reason } => {
            let failed = release.failed_checks + 1;
            if failed >= input.canary_spec.consecutive_failures.max(1) {
                let reason = if failed > 1 {
                    format!("{reason} ({failed} checks in a row)")
                } else {
                    reason.clone()
                };
                return roll_back(input, progress, release, reason, None);
            }
            return Action::RecordCheck {
                release: release.name.clone(),
                failed_checks: failed,
                reason: reason.clone(),
            };
        }
        Verdict::Pass | Verdict::InsufficientTraffic { .. } => {
            if release.failed_checks > 0 {
                return Action::RecordCheck {
                    release: release.name.clone(),
                    failed_checks: 0,
                    reason: "healthy again".into(),
                };
            }
        }
    }
    if d.action == Some(ManualAction::Promote) {
        return promote(progress, release, manual);
    }
    if manual.is_none() && waited < progress.plan.pause.seconds() {
        return Action::Wait {
            reason: format!(
                "stage {stage} at {weight}% healthy; {}s of the {} pause left",
                progress.plan.pause.seconds() - waited,
                progress.plan.pause
            ),
        };
    }
    match steps.get(stage + 1) {
        Some(&w) if w < 100 => Action::Advance {
            stage: stage + 1,
            weight: w,
            replicas: stage_replicas(d.replicas, w, routing.is_some()),
            by_hand: manual,
        },
        _ => promote(progress, release, manual),
    }
}

fn promote(progress: &Progress, release: &ReleaseView, by_hand: Option<ByHand>) -> Action {
    Action::Promote {
        release: release.name.clone(),
        revision: progress.revision.clone(),
        last_stage: progress.plan.steps.len().saturating_sub(1) as u32,
        by_hand,
    }
}

fn elapsed(from: Timestamp, to: Timestamp) -> u64 {
    to.duration_since(from).as_secs().max(0) as u64
}
