//! The canary state machine, state by signal. Times are seconds after `T0`; the plan is
//! the caution band's `[10, 25, 50, 100]` every 5m, 4 stable replicas.

use super::objects::*;
use super::*;
use crate::api::{CanarySpec, Duration, Plan, ReleasePhase, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde_json::json;
use std::collections::BTreeSet;

const T0: &str = "2026-11-29T10:00:00Z";
const NEW: &str = "bbbbbbbbbb";
const OLD: &str = "aaaaaaaaaa";
const RELEASE: &str = "web-bbbbbbbb-2";

fn at(seconds: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_secs(seconds)
}

fn spec() -> CanarySpec {
    CanarySpec {
        analysis_window: Duration::from_seconds(300),
        abort_burn_rate: 14.4,
        consecutive_failures: 2,
        progress_deadline: Duration::from_seconds(600),
        ..CanarySpec::default()
    }
}

fn plan() -> Plan {
    Plan {
        steps: vec![10, 25, 50, 100],
        pause: Duration::parse("5m").unwrap(),
    }
}

fn progress(stage: Stage, started: Option<i64>) -> Progress {
    Progress {
        revision: NEW.into(),
        plan: plan(),
        band: "caution".into(),
        stage,
        stage_started_at: started.map(at),
    }
}

fn deployment(stage: Stage, started: Option<i64>) -> DeploymentView {
    DeploymentView {
        name: "web".into(),
        uid: "u-web".into(),
        replicas: 4,
        paused: stage != Stage::Promoting,
        template_revision: NEW.into(),
        progress: Some(Ok(progress(stage, started))),
        action: None,
        action_by: None,
        rolled_out: false,
        history: vec![OLD.into()],
    }
}

fn idle() -> DeploymentView {
    DeploymentView {
        name: "web".into(),
        uid: "u-web".into(),
        replicas: 4,
        paused: false,
        template_revision: OLD.into(),
        progress: None,
        action: None,
        action_by: None,
        rolled_out: true,
        history: vec![],
    }
}

fn canary(revision: &str, replicas: u32, available: u32) -> CanaryState {
    CanaryState::Owned(CanaryView {
        name: "web-canary".into(),
        uid: "u-canary".into(),
        revision: revision.into(),
        replicas,
        available,
    })
}

fn owned() -> Option<OwnedCanary> {
    Some(OwnedCanary {
        name: "web-canary".into(),
        uid: "u-canary".into(),
    })
}

fn release(revision: &str, phase: ReleasePhase, failed: u32) -> ReleaseView {
    ReleaseView {
        name: if revision == NEW {
            RELEASE.into()
        } else {
            format!("web-{revision}")
        },
        revision: revision.into(),
        phase,
        failed_checks: failed,
        created: Some(at(0)),
        generation: 2,
        remaining_at_start: Some(0.4),
        reason: None,
        actions: vec![],
    }
}

fn pass() -> Verdict {
    Verdict::Pass
}

fn burning() -> Verdict {
    Verdict::Fail {
        reason: "team t burns 20.0x over 5m, above abortBurnRate 14.4x".into(),
    }
}

fn unknown() -> Verdict {
    Verdict::Unknown {
        reason: "no burn rate over 5m for team t".into(),
    }
}

fn thin() -> Verdict {
    Verdict::InsufficientTraffic {
        reason: "canary has 40 events in the check window, fewer than minCanaryEvents 100 (SLO shop/avail)".into(),
    }
}

fn run(
    d: &DeploymentView,
    c: &CanaryState,
    r: Option<&ReleaseView>,
    v: &Verdict,
    now: i64,
) -> Action {
    next(&Input {
        deployment: d,
        canary: c,
        release: r,
        verdict: v,
        canary_spec: &spec(),
        check_due: true,
        last_error: None,
        routing: None,
        now: at(now),
    })
}

fn progressing(failed: u32) -> ReleaseView {
    release(NEW, ReleasePhase::Progressing, failed)
}

fn rolled_back(reason: &str, by_hand: Option<ByHand>) -> Action {
    Action::RollBack(RollBack {
        release: Some(RELEASE.into()),
        revision: NEW.into(),
        reason: reason.into(),
        by_hand,
        outcome: ReleasePhase::RolledBack,
        canary: owned(),
    })
}

fn advance(stage: usize, weight: u32, replicas: u32, by_hand: Option<ByHand>) -> Action {
    Action::Advance {
        stage,
        weight,
        replicas,
        by_hand,
    }
}

fn promote(by_hand: Option<ByHand>) -> Action {
    Action::Promote {
        release: RELEASE.into(),
        revision: NEW.into(),
        last_stage: 3,
        by_hand,
    }
}

/// A manual action by `by` at `stage`.
fn hand(action: ManualAction, by: Option<&str>, stage: u32) -> Option<ByHand> {
    Some(ByHand {
        action,
        by: by.map(str::to_owned),
        stage,
    })
}

fn sync(stage: usize, replicas: u32, weight: f64, uid: Option<&str>) -> Action {
    Action::SyncCanary {
        release: RELEASE.into(),
        stage,
        revision: NEW.into(),
        replicas,
        weight,
        canary_uid: uid.map(str::to_owned),
    }
}

#[test]
fn replica_math_never_reduces_stable_and_reports_the_real_weight() {
    // max(1, round(N·w/(100−w)))
    let cases = [
        (4, 10, 1),
        (4, 25, 1),
        (4, 50, 4),
        (10, 5, 1),
        (10, 20, 3),
        (10, 50, 10),
        (3, 50, 3),
        (1, 5, 1),
        (0, 10, 1),
        (100, 25, 33),
    ];
    for (n, w, want) in cases {
        assert_eq!(canary_replicas(n, w), want, "N={n} w={w}");
    }
    assert_eq!(effective_weight(4, 1), 20.0);
    assert_eq!(effective_weight(100, 33), 33.0 * 100.0 / 133.0);
    assert_eq!(effective_weight(0, 0), 0.0);
}

#[test]
fn no_canary_in_progress_is_idle_and_only_an_owned_leftover_canary_is_removed() {
    let v = pass();
    assert_eq!(
        run(&idle(), &CanaryState::Absent, None, &v, 0),
        Action::Idle
    );
    assert_eq!(
        run(&idle(), &canary(OLD, 1, 1), None, &v, 0),
        Action::RemoveCanary {
            canary: owned().unwrap()
        }
    );
    let foreign = CanaryState::Foreign {
        name: "web-canary".into(),
        owner: None,
    };
    assert_eq!(run(&idle(), &foreign, None, &v, 0), Action::Idle);
}

#[test]
fn unreadable_annotations_touch_nothing() {
    let mut d = deployment(Stage::Canary(0), None);
    d.progress = Some(Err("annotation budgetgate.dev/plan is missing".into()));
    assert_eq!(
        run(&d, &CanaryState::Absent, None, &pass(), 0),
        Action::Invalid {
            reason: "annotation budgetgate.dev/plan is missing".into()
        }
    );
}

#[test]
fn a_new_canary_opens_its_release_first() {
    let d = deployment(Stage::Canary(0), None);
    let want = Action::OpenRelease {
        revision: NEW.into(),
        plan: plan(),
        band: "caution".into(),
        supersedes: None,
    };
    assert_eq!(run(&d, &CanaryState::Absent, None, &pass(), 0), want);
    // The newest Release is a finished one of an older revision: still a new Release.
    let done = release(OLD, ReleasePhase::Promoted, 0);
    assert_eq!(run(&d, &CanaryState::Absent, Some(&done), &pass(), 0), want);
    // A rolled-back revision applied again is a new rollout with a new Release.
    let rolled = release(NEW, ReleasePhase::RolledBack, 2);
    assert_eq!(
        run(&d, &CanaryState::Absent, Some(&rolled), &pass(), 0),
        want
    );
}

#[test]
fn a_new_template_mid_canary_supersedes_the_running_release() {
    let d = deployment(Stage::Canary(0), None);
    let running = release(OLD, ReleasePhase::Progressing, 1);
    assert_eq!(
        run(&d, &canary(OLD, 2, 2), Some(&running), &pass(), 0),
        Action::OpenRelease {
            revision: NEW.into(),
            plan: plan(),
            band: "caution".into(),
            supersedes: Some(format!("web-{OLD}")),
        }
    );
    // Then, with its Release open and its start stamped, the owned canary takes the new
    // template and stage 0's size.
    let d = deployment(Stage::Canary(0), Some(0));
    assert_eq!(
        run(&d, &canary(OLD, 2, 2), Some(&progressing(0)), &pass(), 1),
        sync(0, 1, 20.0, Some("u-canary"))
    );
}

#[test]
fn stage_zero_gets_its_start_time_before_anything_else() {
    let d = deployment(Stage::Canary(0), None);
    assert_eq!(
        run(&d, &CanaryState::Absent, Some(&progressing(0)), &pass(), 0),
        Action::StartStage { stage: 0 }
    );
}

#[test]
fn the_canary_is_created_then_resized_to_each_stage() {
    let r = progressing(0);
    let d = deployment(Stage::Canary(0), Some(0));
    assert_eq!(
        run(&d, &CanaryState::Absent, Some(&r), &pass(), 1),
        sync(0, 1, 20.0, None)
    );
    // Stage 2 (50%) of 4 stable: 4 canary pods.
    let d = deployment(Stage::Canary(2), Some(0));
    assert_eq!(
        run(&d, &canary(NEW, 1, 1), Some(&r), &pass(), 1),
        sync(2, 4, 50.0, Some("u-canary"))
    );
    // The user (or an HPA) scaled the Deployment to 12: the canary follows.
    let mut d = deployment(Stage::Canary(2), Some(0));
    d.replicas = 12;
    assert_eq!(
        run(&d, &canary(NEW, 4, 4), Some(&r), &pass(), 1),
        sync(2, 12, 50.0, Some("u-canary"))
    );
}

#[test]
fn a_foreign_canary_name_fails_the_rollout_at_once_and_is_never_touched() {
    let d = deployment(Stage::Canary(0), Some(0));
    let foreign = CanaryState::Foreign {
        name: "web-canary".into(),
        owner: None,
    };
    let want = Action::RollBack(RollBack {
        release: Some(RELEASE.into()),
        revision: NEW.into(),
        reason: "the canary's name is taken: Deployment web-canary exists and is not controlled by web (it has no controller); budgetgate never changes or deletes it. Rename it or delete it, then apply the rollout again".into(),
        by_hand: None,
        outcome: ReleasePhase::Failed,
        canary: None,
    });
    assert_eq!(run(&d, &foreign, Some(&progressing(0)), &pass(), 1), want);
    // Even an abort by hand leaves the foreign object alone.
    let mut d = d;
    d.action = Some(ManualAction::Abort);
    assert_eq!(run(&d, &foreign, Some(&progressing(0)), &pass(), 1), want);
    let other = CanaryState::Foreign {
        name: "web-canary".into(),
        owner: Some("Deployment other (uid u-9)".into()),
    };
    match run(&d, &other, Some(&progressing(0)), &pass(), 1) {
        Action::RollBack(r) => assert!(
            r.reason
                .contains("(its controller is Deployment other (uid u-9))"),
            "{}",
            r.reason
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unavailable_canary_waits_then_rolls_back_at_the_progress_deadline() {
    let r = progressing(0);
    let d = deployment(Stage::Canary(1), Some(0));
    let c = canary(NEW, 1, 0);
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 599),
        Action::Wait {
            reason: "waiting for the canary to be available (0/1)".into()
        }
    );
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 600),
        rolled_back(
            "the canary was not available within progressDeadline 10m (0/1 pods available)",
            None
        )
    );
}

#[test]
fn writes_the_apiserver_keeps_refusing_hit_the_progress_deadline_with_the_error() {
    let r = progressing(0);
    let d = deployment(Stage::Canary(0), Some(0));
    let s = spec();
    let input = |now| Input {
        deployment: &d,
        canary: &CanaryState::Absent,
        release: Some(&r),
        verdict: &Verdict::Pass,
        canary_spec: &s,
        check_due: true,
        last_error: Some("applying the canary shop/web-canary: exceeded quota"),
        routing: None,
        now: at(now),
    };
    // Before the deadline: try again.
    assert_eq!(next(&input(599)), sync(0, 1, 20.0, None));
    match next(&input(600)) {
        Action::RollBack(rb) => {
            assert_eq!(
                rb.reason,
                "the canary was not available within progressDeadline 10m (last error: applying the canary shop/web-canary: exceeded quota)"
            );
            assert_eq!(rb.canary, None);
            assert_eq!(rb.outcome, ReleasePhase::RolledBack);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_healthy_stage_waits_out_its_pause_then_advances() {
    let r = progressing(0);
    let d = deployment(Stage::Canary(0), Some(0));
    let c = canary(NEW, 1, 1);
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 299),
        Action::Wait {
            reason: "stage 0 at 10% healthy; 1s of the 5m pause left".into()
        }
    );
    assert_eq!(run(&d, &c, Some(&r), &pass(), 300), advance(1, 25, 1, None));
}

#[test]
fn the_stage_before_the_last_step_promotes() {
    // Stage 2 is 50%; the next step is 100 = promotion.
    let r = progressing(0);
    let d = deployment(Stage::Canary(2), Some(0));
    let c = canary(NEW, 4, 4);
    assert_eq!(run(&d, &c, Some(&r), &pass(), 300), promote(None));
    // A plan without a 100 step promotes after its last stage too.
    let mut d = d;
    if let Some(Ok(p)) = &mut d.progress {
        p.plan.steps = vec![10, 50];
        p.stage = Stage::Canary(1);
    }
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 300),
        Action::Promote {
            release: RELEASE.into(),
            revision: NEW.into(),
            last_stage: 1,
            by_hand: None
        }
    );
    // Reaching a 100 stage directly (annotation says so) is the promotion.
    let d = deployment(Stage::Canary(3), Some(0));
    assert_eq!(run(&d, &c, Some(&r), &pass(), 0), promote(None));
}

#[test]
fn missing_metrics_and_thin_traffic_hold_the_stage_without_advancing_or_rolling_back() {
    let r = progressing(1);
    let d = deployment(Stage::Canary(1), Some(0));
    let c = canary(NEW, 1, 1);
    // Long past the pause, one failure already recorded: still only a hold.
    assert_eq!(
        run(&d, &c, Some(&r), &unknown(), 10_000),
        Action::Hold {
            kind: HoldKind::MetricsUnavailable,
            reason: "no burn rate over 5m for team t".into()
        }
    );
    assert_eq!(
        run(&d, &c, Some(&r), &thin(), 10_000),
        Action::Hold {
            kind: HoldKind::InsufficientTraffic,
            reason: "canary has 40 events in the check window, fewer than minCanaryEvents 100 (SLO shop/avail)".into()
        }
    );
}

#[test]
fn resume_or_promote_by_hand_overrides_thin_traffic_but_not_missing_metrics_or_a_failure() {
    let r = progressing(0);
    let c = canary(NEW, 1, 1);
    let mut d = deployment(Stage::Canary(0), Some(0));
    d.action = Some(ManualAction::Resume);
    assert_eq!(
        run(&d, &c, Some(&r), &thin(), 10),
        advance(1, 25, 1, hand(ManualAction::Resume, None, 0))
    );
    assert!(matches!(
        run(&d, &c, Some(&r), &unknown(), 10),
        Action::Hold { .. }
    ));
    d.action = Some(ManualAction::Promote);
    assert_eq!(
        run(&d, &c, Some(&r), &thin(), 10),
        promote(hand(ManualAction::Promote, None, 0))
    );
    // Promote skips pauses, never the judgement: a failing check is counted as ever.
    assert_eq!(
        run(&d, &c, Some(&r), &burning(), 10),
        Action::RecordCheck {
            release: RELEASE.into(),
            failed_checks: 1,
            reason: "team t burns 20.0x over 5m, above abortBurnRate 14.4x".into()
        }
    );
}

#[test]
fn a_failing_check_rolls_back_at_the_consecutive_failure_count() {
    let d = deployment(Stage::Canary(1), Some(0));
    let c = canary(NEW, 1, 1);
    assert_eq!(
        run(&d, &c, Some(&progressing(0)), &burning(), 30),
        Action::RecordCheck {
            release: RELEASE.into(),
            failed_checks: 1,
            reason: "team t burns 20.0x over 5m, above abortBurnRate 14.4x".into()
        }
    );
    assert_eq!(
        run(&d, &c, Some(&progressing(1)), &burning(), 32),
        rolled_back(
            "team t burns 20.0x over 5m, above abortBurnRate 14.4x (2 checks in a row)",
            None
        )
    );
    // A second failure within the same interval is not counted again.
    assert_eq!(
        next(&Input {
            deployment: &d,
            canary: &c,
            release: Some(&progressing(1)),
            verdict: &burning(),
            canary_spec: &spec(),
            check_due: false,
            last_error: None,
            routing: None,
            now: at(31),
        }),
        Action::Wait {
            reason: "unhealthy, next check within the interval: team t burns 20.0x over 5m, above abortBurnRate 14.4x".into()
        }
    );
    // A healthy check between failures resets the count.
    assert_eq!(
        run(&d, &c, Some(&progressing(1)), &pass(), 34),
        Action::RecordCheck {
            release: RELEASE.into(),
            failed_checks: 0,
            reason: "healthy again".into()
        }
    );
}

#[test]
fn an_unhealthy_canary_never_advances_even_after_its_pause() {
    let d = deployment(Stage::Canary(0), Some(0));
    let c = canary(NEW, 1, 1);
    assert!(matches!(
        run(&d, &c, Some(&progressing(0)), &burning(), 100_000),
        Action::RecordCheck { .. }
    ));
}

#[test]
fn manual_actions() {
    let r = progressing(0);
    let c = canary(NEW, 1, 1);
    let mut d = deployment(Stage::Canary(0), Some(0));
    d.action_by = Some("alice".into());
    d.action = Some(ManualAction::Resume);
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 10),
        advance(1, 25, 1, hand(ManualAction::Resume, Some("alice"), 0))
    );
    d.action = Some(ManualAction::Promote);
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 10),
        promote(hand(ManualAction::Promote, Some("alice"), 0))
    );
    d.action = Some(ManualAction::Abort);
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 10),
        rolled_back(
            "aborted by hand (alice) with annotation budgetgate.dev/action=abort",
            hand(ManualAction::Abort, Some("alice"), 0)
        )
    );
    // No requester recorded (the action was set before the webhook could stamp it).
    d.action_by = None;
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 10),
        rolled_back(
            "aborted by hand with annotation budgetgate.dev/action=abort",
            hand(ManualAction::Abort, None, 0)
        )
    );
    assert_eq!(ManualAction::parse("promote"), Some(ManualAction::Promote));
    assert_eq!(ManualAction::parse(" abort "), Some(ManualAction::Abort));
    assert_eq!(ManualAction::parse("resume"), Some(ManualAction::Resume));
    assert_eq!(ManualAction::parse("go"), None);
}

#[test]
fn promotion_waits_for_the_rolling_update_then_finishes() {
    let r = progressing(0);
    let c = canary(NEW, 4, 4);
    let d = deployment(Stage::Promoting, Some(0));
    assert_eq!(
        run(&d, &c, Some(&r), &burning(), 10),
        Action::Wait {
            reason: "waiting for the rolling update of the promoted revision".into()
        }
    );
    let mut done = d.clone();
    done.rolled_out = true;
    assert_eq!(
        run(&done, &c, Some(&r), &unknown(), 10),
        Action::FinishPromotion {
            release: RELEASE.into(),
            revision: NEW.into(),
            history: format!("{NEW},{OLD}"),
            reason: "promoted after 3 stage(s) of plan 10,25,50,100 every 5m".into(),
            canary: owned(),
        }
    );
    // The Release's manual actions are named in its final reason.
    let mut by_hand = r.clone();
    let record = |action: &str, by: Option<&str>, stage| crate::api::ManualActionRecord {
        action: action.into(),
        by: by.map(str::to_owned),
        stage,
        at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(5)),
    };
    by_hand.actions = vec![
        record("resume", Some("alice"), 0),
        record("promote", None, 1),
    ];
    assert!(matches!(
        run(&done, &c, Some(&by_hand), &pass(), 10),
        Action::FinishPromotion { reason, .. }
            if reason == "promoted after 3 stage(s) of plan 10,25,50,100 every 5m; by hand: resume at stage 0 (alice), promote at stage 1"
    ));
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 600),
        rolled_back(
            "the promoted rollout did not complete within progressDeadline 10m",
            None
        )
    );
}

#[test]
fn a_restarted_controller_resumes_at_the_same_stage_with_the_same_pause() {
    // Stage 1 started at t=100 and the annotations say so: a new leader at t=250 waits the
    // remaining 150 s, and at t=400 advances exactly once (to stage 2, not 3).
    let r = progressing(0);
    let d = deployment(Stage::Canary(1), Some(100));
    let c = canary(NEW, 1, 1);
    assert_eq!(
        run(&d, &c, Some(&r), &pass(), 250),
        Action::Wait {
            reason: "stage 1 at 25% healthy; 150s of the 5m pause left".into()
        }
    );
    assert_eq!(run(&d, &c, Some(&r), &pass(), 400), advance(2, 50, 4, None));
}

fn typed(value: serde_json::Value) -> Deployment {
    serde_json::from_value(value).unwrap()
}

#[test]
fn annotations_parse_into_progress() {
    let d = typed(json!({
        "metadata": {"name": "web", "uid": "u-web", "annotations": {
            "budgetgate.dev/revision": NEW, "budgetgate.dev/plan": "10,25,50,100",
            "budgetgate.dev/pause": "5m", "budgetgate.dev/band": "caution",
            "budgetgate.dev/stage": "1", "budgetgate.dev/stage-started-at": T0,
            "budgetgate.dev/history": "a1, a2",
            "budgetgate.dev/action": "resume"}},
        "spec": {"replicas": 4, "paused": true, "selector": {}, "template": {}},
        "status": {}
    }));
    let view = deployment_view(&d);
    assert_eq!(view.progress, Some(Ok(progress(Stage::Canary(1), Some(0)))));
    assert_eq!(view.action, Some(ManualAction::Resume));
    assert_eq!((view.name.as_str(), view.uid.as_str()), ("web", "u-web"));
    assert_eq!(view.history, vec!["a1".to_owned(), "a2".to_owned()]);
    assert_eq!(view.replicas, 4);
    assert!(view.paused);
    assert!(!view.rolled_out);

    let with = |key: &str, value: Option<&str>| {
        let mut d = d.clone();
        let a = d.metadata.annotations.as_mut().unwrap();
        match value {
            Some(v) => a.insert(key.into(), v.into()),
            None => a.remove(key),
        };
        objects::progress(&d.metadata)
    };
    assert_eq!(
        with("budgetgate.dev/stage", Some("promoting"))
            .unwrap()
            .unwrap()
            .stage,
        Stage::Promoting
    );
    assert_eq!(
        with("budgetgate.dev/plan", Some("10,abc")),
        Some(Err(
            "annotation budgetgate.dev/plan: \"abc\" is not a weight 1-100".into()
        ))
    );
    assert_eq!(with("budgetgate.dev/stage", None), None);
}

#[test]
fn rolled_out_needs_every_replica_updated_and_available() {
    let mut d = typed(json!({
        "metadata": {"name": "web", "generation": 3},
        "spec": {"replicas": 3, "selector": {}, "template": {}},
        "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    }));
    assert!(deployment_view(&d).rolled_out);
    d.status.as_mut().unwrap().replicas = Some(4); // an old pod still terminating
    assert!(!deployment_view(&d).rolled_out);
    d.status.as_mut().unwrap().replicas = Some(3);
    d.status.as_mut().unwrap().observed_generation = Some(2);
    assert!(!deployment_view(&d).rolled_out);
}

fn web() -> Deployment {
    typed(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
    }))
}

#[test]
fn the_canary_object_is_controlled_by_the_deployment_and_cannot_overlap_the_stable_replica_set() {
    let c = canary_object(&web(), NEW, 2, None);
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web-canary", "namespace": "shop",
                "labels": {"app": "web", "budgetgate.dev/track": "canary"},
                "annotations": {"budgetgate.dev/revision": NEW},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "u-1", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "budgetgate.dev/track": "canary"}},
                "template": {"metadata": {"labels": {"app": "web", "budgetgate.dev/track": "canary"}},
                             "spec": {"containers": [{"name": "web", "image": "web:2"}]}}
            }
        })
    );
    // Written back over an existing canary, its uid goes along as a precondition.
    let again = canary_object(&web(), NEW, 2, Some("u-c"));
    assert_eq!(again.metadata.uid.as_deref(), Some("u-c"));
    let mut existing = c.clone();
    existing.metadata.uid = Some("u-c".into());
    assert_eq!(
        canary_state(Some(&existing), "u-1"),
        CanaryState::Owned(CanaryView {
            name: "web-canary".into(),
            uid: "u-c".into(),
            revision: NEW.into(),
            replicas: 2,
            available: 0
        })
    );
}

#[test]
fn only_a_canary_controlled_by_the_deployment_by_uid_is_owned() {
    let mut c = canary_object(&web(), NEW, 2, None);
    // Same name, same owner name, another uid (a deleted and re-created web): foreign.
    assert_eq!(
        canary_state(Some(&c), "u-2"),
        CanaryState::Foreign {
            name: "web-canary".into(),
            owner: Some("Deployment web (uid u-1)".into())
        }
    );
    // The user's own web-canary: no owner at all.
    c.metadata.owner_references = None;
    assert_eq!(
        canary_state(Some(&c), "u-1"),
        CanaryState::Foreign {
            name: "web-canary".into(),
            owner: None
        }
    );
    // An owner reference that is not the controller does not make it ours.
    let mut c = canary_object(&web(), NEW, 2, None);
    c.metadata.owner_references.as_mut().unwrap()[0].controller = Some(false);
    assert!(matches!(
        canary_state(Some(&c), "u-1"),
        CanaryState::Foreign { .. }
    ));
    assert_eq!(canary_state(None, "u-1"), CanaryState::Absent);
}

fn rs(n: &str, image: &str, owner: &str) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": format!("web-{n}"), "annotations": {"deployment.kubernetes.io/revision": n},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner, "controller": true}]},
        "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": format!("h{n}")}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}}}))
    .unwrap()
}

#[test]
fn roll_back_restores_the_newest_owned_replica_set_that_is_not_the_canary() {
    let sets = [
        rs("1", "web:1", "u-1"),
        rs("3", "web:3", "u-1"),
        rs("2", "web:2", "u-1"),
        rs("9", "web:planted", "u-other"),
    ];
    let ran: BTreeSet<String> = sets
        .iter()
        .map(|rs| crate::decision::workload_revision(&serde_json::to_value(rs).unwrap()))
        .collect();
    let (revision, template) = serving_template(&sets, "u-1", "none", &ran).unwrap();
    assert_eq!(
        template,
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:3"}]}})
    );
    assert_eq!(revision, crate::decision::revision_hash(&template));
    // The newest one is the canary's own revision (a promotion that was rolling): skip it.
    let (_, template) = serving_template(&sets, "u-1", &revision, &ran).unwrap();
    assert_eq!(template["spec"]["containers"][0]["image"], "web:2");
    assert_eq!(serving_template(&[], "u-1", "x", &ran), None);
}

#[test]
fn roll_back_never_restores_a_replica_set_the_deployment_did_not_run() {
    // web-7 was planted by a team (adopted, newest revision number): not a revision web
    // ran, so the rollback restores web:2, which did.
    let sets = [
        rs("1", "web:1", "u-1"),
        rs("2", "web:2", "u-1"),
        rs("7", "web:planted", "u-1"),
    ];
    let revision =
        |i: usize| crate::decision::workload_revision(&serde_json::to_value(&sets[i]).unwrap());
    let ran = BTreeSet::from([revision(0), revision(1)]);
    let (restored, template) = serving_template(&sets, "u-1", "canary0000", &ran).unwrap();
    assert_eq!(restored, revision(1));
    assert_eq!(template["spec"]["containers"][0]["image"], "web:2");
    // Nothing it ran: nothing to restore.
    assert_eq!(
        serving_template(&sets, "u-1", "canary0000", &BTreeSet::new()),
        None
    );
}

#[test]
fn the_rollback_patch_tests_the_uid_first_and_clears_the_canary_annotations() {
    let mut d = web();
    d.metadata.annotations = Some(
        [
            ("budgetgate.dev/stage", "1"),
            ("budgetgate.dev/plan", "10,100"),
            ("budgetgate.dev/action", "abort"),
            ("other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let template = json!({"spec": {"containers": [{"name": "web", "image": "web:1"}]}});
    assert_eq!(
        rollback_patch(&d, OLD, &template, NEW),
        json!([
            {"op": "test", "path": "/metadata/uid", "value": "u-1"},
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "add", "path": "/spec/paused", "value": false},
            {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1revision", "value": OLD},
            {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1rolled-back-revision", "value": NEW},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1plan"},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1action"},
        ])
    );
    assert_eq!(
        release_patch(&d, false),
        json!([
            {"op": "test", "path": "/metadata/uid", "value": "u-1"},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1plan"},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1action"},
        ])
    );
}

#[test]
fn history_keeps_the_newest_ten_without_repeats() {
    let old: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    assert_eq!(ledger::push_history(&[], "a"), "a");
    assert_eq!(ledger::push_history(&["a".into(), "b".into()], "b"), "b,a");
    assert_eq!(
        ledger::push_history(&old, "new"),
        "new,r0,r1,r2,r3,r4,r5,r6,r7,r8"
    );
    assert_eq!(ledger::release_name("web", NEW, 7), "web-bbbbbbbb-7");
}

// ---- traffic routing (DESIGN §7.9): 10 stable replicas, plan 5,25,50,100 ------------------

fn routed_run(
    d: &DeploymentView,
    c: &CanaryState,
    v: &Verdict,
    routing: &Routing,
    last_error: Option<&str>,
    now: i64,
) -> Action {
    let mut d = d.clone();
    d.replicas = 10;
    if let Some(Ok(p)) = &mut d.progress {
        p.plan.steps = vec![5, 25, 50, 100];
    }
    next(&Input {
        deployment: &d,
        canary: c,
        release: Some(&progressing(0)),
        verdict: v,
        canary_spec: &spec(),
        check_due: true,
        last_error,
        routing: Some(routing),
        now: at(now),
    })
}

fn routing(weight: Option<u32>) -> Routing {
    Routing {
        broken: None,
        weight,
        service: if weight.is_some() {
            CanaryService::Ready
        } else {
            CanaryService::Missing
        },
        leftovers: weight.is_some(),
        restricted: weight.is_some(),
    }
}

#[test]
fn routed_canary_gets_its_weight_only_once_available_and_before_any_judgement() {
    let d = deployment(Stage::Canary(0), Some(0));
    // Replicas for the exact weight: ceil(10·5/100) = 1, and the weight is the stage's.
    assert_eq!(
        routed_run(&d, &CanaryState::Absent, &pass(), &routing(None), None, 10),
        sync(0, 1, 5.0, None)
    );
    assert_eq!(
        routed_run(&d, &canary(NEW, 1, 0), &pass(), &routing(None), None, 20),
        Action::Wait {
            reason: "waiting for the canary to be available (0/1)".into()
        }
    );
    let sync_traffic = Action::SyncTraffic {
        release: RELEASE.into(),
        stage: 0,
        weight: 5,
    };
    assert_eq!(
        routed_run(&d, &canary(NEW, 1, 1), &burning(), &routing(None), None, 30),
        sync_traffic
    );
    // The canary Service waits for a ready endpoint before a weight names it, up to
    // progressDeadline.
    let unready = Routing {
        service: CanaryService::Unready,
        ..routing(None)
    };
    assert_eq!(
        routed_run(&d, &canary(NEW, 1, 1), &pass(), &unready, None, 40),
        Action::Wait {
            reason: "waiting for a ready endpoint of the canary Service".into()
        }
    );
    assert_eq!(
        routed_run(&d, &canary(NEW, 1, 1), &pass(), &unready, None, 600),
        rolled_back(
            "the canary Service had no ready endpoint within progressDeadline 10m",
            None
        )
    );
    let ready = Routing {
        service: CanaryService::Ready,
        ..routing(None)
    };
    assert_eq!(
        routed_run(&d, &canary(NEW, 1, 1), &pass(), &ready, None, 41),
        sync_traffic
    );
    // A route left at another stage's weight is set again.
    assert_eq!(
        routed_run(
            &d,
            &canary(NEW, 1, 1),
            &pass(),
            &routing(Some(25)),
            None,
            30
        ),
        sync_traffic
    );
    // At its weight the stage is judged as usual.
    assert_eq!(
        routed_run(
            &d,
            &canary(NEW, 1, 1),
            &pass(),
            &routing(Some(5)),
            None,
            301
        ),
        advance(1, 25, 3, None)
    );
    let d = deployment(Stage::Canary(1), Some(0));
    assert_eq!(
        routed_run(&d, &canary(NEW, 1, 1), &pass(), &routing(Some(5)), None, 10),
        sync(1, 3, 25.0, Some("u-canary"))
    );
    let d = deployment(Stage::Canary(2), Some(0));
    assert_eq!(
        routed_run(
            &d,
            &canary(NEW, 5, 5),
            &pass(),
            &routing(Some(50)),
            None,
            301
        ),
        promote(None)
    );
}

#[test]
fn a_route_that_cannot_carry_the_canary_is_waited_for_then_fails_the_rollout() {
    let d = deployment(Stage::Canary(0), Some(0));
    let broken = Routing {
        broken: Some("HTTPRoute shop/web not found".into()),
        weight: None,
        service: CanaryService::Missing,
        leftovers: false,
        restricted: false,
    };
    assert_eq!(
        routed_run(&d, &CanaryState::Absent, &pass(), &broken, None, 599),
        Action::Wait {
            reason: "the canary's traffic cannot be routed: HTTPRoute shop/web not found".into()
        }
    );
    assert_eq!(
        routed_run(&d, &canary(NEW, 1, 1), &pass(), &broken, None, 600),
        Action::RollBack(RollBack {
            release: Some(RELEASE.into()),
            revision: NEW.into(),
            reason: "the canary's traffic cannot be routed within progressDeadline 10m: HTTPRoute shop/web not found".into(),
            by_hand: None,
            outcome: ReleasePhase::Failed,
            canary: owned(),
        })
    );
    // A weight the apiserver keeps refusing counts against progressDeadline too.
    assert_eq!(
        routed_run(
            &d,
            &canary(NEW, 1, 1),
            &pass(),
            &routing(None),
            Some("patching the route: conflict"),
            600
        ),
        rolled_back(
            "the canary's traffic weight could not be set within progressDeadline 10m (last error: patching the route: conflict)",
            None
        )
    );
}

#[test]
fn leftover_routing_goes_before_the_leftover_canary() {
    let idle_with = |c: &CanaryState, r: &Routing| {
        next(&Input {
            deployment: &idle(),
            canary: c,
            release: None,
            verdict: &pass(),
            canary_spec: &spec(),
            check_due: true,
            last_error: None,
            routing: Some(r),
            now: at(0),
        })
    };
    assert_eq!(
        idle_with(&canary(NEW, 1, 1), &routing(Some(0))),
        Action::RemoveTraffic
    );
    // Only the restriction left: the canary's pods go first.
    let restricted = Routing {
        restricted: true,
        ..Routing::default()
    };
    assert!(matches!(
        idle_with(&canary(NEW, 1, 1), &restricted),
        Action::RemoveCanary { .. }
    ));
    assert_eq!(
        idle_with(&CanaryState::Absent, &restricted),
        Action::RemoveTraffic
    );
    assert_eq!(
        idle_with(&canary(NEW, 1, 1), &Routing::default()),
        Action::RemoveCanary {
            canary: OwnedCanary {
                name: "web-canary".into(),
                uid: "u-canary".into()
            }
        }
    );
    assert_eq!(
        idle_with(&CanaryState::Absent, &Routing::default()),
        Action::Idle
    );
}

#[test]
fn the_stable_hash_is_the_newest_owned_replica_set_with_pods_that_is_not_the_canary() {
    let with = |n: &str, image: &str, owner: &str, replicas: i32| {
        let mut set = rs(n, image, owner);
        set.metadata
            .labels
            .get_or_insert_default()
            .insert("pod-template-hash".into(), format!("h{n}"));
        set.spec.as_mut().unwrap().replicas = Some(replicas);
        set
    };
    let sets = [
        with("1", "web:1", "u-1", 0),
        with("2", "web:2", "u-1", 4),
        with("3", "web:3", "u-1", 0),
        with("9", "web:planted", "u-other", 4),
    ];
    assert_eq!(stable_hash(&sets, "u-1", "none"), Some("h2".into()));
    let two = crate::decision::workload_revision(&serde_json::to_value(&sets[1]).unwrap());
    // The canary's own revision never counts as stable.
    assert_eq!(stable_hash(&sets, "u-1", &two), None);
    assert_eq!(stable_hash(&sets, "u-2", "none"), None);
}
