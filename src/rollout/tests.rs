//! The canary state machine, state by signal. Times are seconds after `T0`; the plan is
//! the caution band's `[10, 25, 50, 100]` every 5m, 4 stable replicas.

use super::*;
use crate::api::{CanarySpec, Duration, Plan, ReleasePhase, Timestamp};
use serde_json::json;

const T0: &str = "2026-11-29T10:00:00Z";
const NEW: &str = "bbbbbbbbbb";
const OLD: &str = "aaaaaaaaaa";

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

fn progress(stage: Stage, started: Option<i64>) -> Progress {
    Progress {
        revision: NEW.into(),
        plan: Plan {
            steps: vec![10, 25, 50, 100],
            pause: Duration::parse("5m").unwrap(),
        },
        band: "caution".into(),
        stage,
        stage_started_at: started.map(at),
    }
}

fn deployment(stage: Stage, started: Option<i64>) -> DeploymentView {
    DeploymentView {
        replicas: 4,
        paused: stage != Stage::Promoting,
        template_revision: NEW.into(),
        progress: Some(Ok(progress(stage, started))),
        action: None,
        rolled_out: false,
    }
}

fn idle() -> DeploymentView {
    DeploymentView {
        replicas: 4,
        paused: false,
        template_revision: OLD.into(),
        progress: None,
        action: None,
        rolled_out: true,
    }
}

fn canary(revision: &str, replicas: u32, available: u32) -> CanaryView {
    CanaryView {
        revision: revision.into(),
        replicas,
        available,
    }
}

fn release(revision: &str, phase: ReleasePhase, failed: u32) -> ReleaseView {
    ReleaseView {
        name: format!("web-{revision}"),
        revision: revision.into(),
        phase,
        failed_checks: failed,
    }
}

fn healthy() -> Health {
    Health::Healthy { burn: 0.5 }
}

fn burning() -> Health {
    Health::Unhealthy {
        burn: Some(20.0),
        reason: "team t burns 20.0x over 5m, above abortBurnRate 14.4x".into(),
    }
}

fn unknown() -> Health {
    Health::Unknown {
        reason: "no burn rate over 5m for team t".into(),
    }
}

fn run(
    d: &DeploymentView,
    c: Option<&CanaryView>,
    r: Option<&ReleaseView>,
    h: &Health,
    now: i64,
) -> Action {
    next(&Input {
        deployment: d,
        canary: c,
        release: r,
        health: h,
        canary_spec: &spec(),
        check_due: true,
        now: at(now),
    })
}

fn progressing(failed: u32) -> ReleaseView {
    release(NEW, ReleasePhase::Progressing, failed)
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
fn no_canary_in_progress_is_idle_and_a_leftover_canary_is_removed() {
    let h = healthy();
    assert_eq!(run(&idle(), None, None, &h, 0), Action::Idle);
    let left = canary(OLD, 1, 1);
    assert_eq!(run(&idle(), Some(&left), None, &h, 0), Action::RemoveCanary);
}

#[test]
fn unreadable_annotations_touch_nothing() {
    let mut d = deployment(Stage::Canary(0), None);
    d.progress = Some(Err("annotation budgetgate.dev/plan is missing".into()));
    assert_eq!(
        run(&d, None, None, &healthy(), 0),
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
        supersedes: None,
    };
    assert_eq!(run(&d, None, None, &healthy(), 0), want);
    // The newest Release is a finished one of an older revision: still a new Release.
    let done = release(OLD, ReleasePhase::Promoted, 0);
    assert_eq!(run(&d, None, Some(&done), &healthy(), 0), want);
    // A rolled-back revision applied again is a new rollout with a new Release.
    let rolled_back = release(NEW, ReleasePhase::RolledBack, 2);
    assert_eq!(run(&d, None, Some(&rolled_back), &healthy(), 0), want);
}

#[test]
fn a_new_template_mid_canary_supersedes_the_running_release() {
    let d = deployment(Stage::Canary(0), None);
    let running = release(OLD, ReleasePhase::Progressing, 1);
    assert_eq!(
        run(&d, Some(&canary(OLD, 2, 2)), Some(&running), &healthy(), 0),
        Action::OpenRelease {
            revision: NEW.into(),
            supersedes: Some(format!("web-{OLD}")),
        }
    );
    // Then, with its Release open and its start stamped, the canary takes the new template
    // and stage 0's size.
    let d = deployment(Stage::Canary(0), Some(0));
    assert_eq!(
        run(
            &d,
            Some(&canary(OLD, 2, 2)),
            Some(&progressing(0)),
            &healthy(),
            1
        ),
        Action::SyncCanary {
            create: false,
            revision: NEW.into(),
            replicas: 1,
            weight: 20.0
        }
    );
}

#[test]
fn stage_zero_gets_its_start_time_before_anything_else() {
    let d = deployment(Stage::Canary(0), None);
    assert_eq!(
        run(&d, None, Some(&progressing(0)), &healthy(), 0),
        Action::StartStage { stage: 0 }
    );
}

#[test]
fn the_canary_is_created_then_resized_to_each_stage() {
    let r = progressing(0);
    let d = deployment(Stage::Canary(0), Some(0));
    assert_eq!(
        run(&d, None, Some(&r), &healthy(), 1),
        Action::SyncCanary {
            create: true,
            revision: NEW.into(),
            replicas: 1,
            weight: 20.0
        }
    );
    // Stage 2 (50%) of 4 stable: 4 canary pods.
    let d = deployment(Stage::Canary(2), Some(0));
    assert_eq!(
        run(&d, Some(&canary(NEW, 1, 1)), Some(&r), &healthy(), 1),
        Action::SyncCanary {
            create: false,
            revision: NEW.into(),
            replicas: 4,
            weight: 50.0
        }
    );
    // The user (or an HPA) scaled the Deployment to 12: the canary follows.
    let mut d = deployment(Stage::Canary(2), Some(0));
    d.replicas = 12;
    assert_eq!(
        run(&d, Some(&canary(NEW, 4, 4)), Some(&r), &healthy(), 1),
        Action::SyncCanary {
            create: false,
            revision: NEW.into(),
            replicas: 12,
            weight: 50.0
        }
    );
}

#[test]
fn an_unavailable_canary_waits_then_rolls_back_at_the_progress_deadline() {
    let r = progressing(0);
    let d = deployment(Stage::Canary(1), Some(0));
    let c = canary(NEW, 1, 0);
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 599),
        Action::Wait {
            reason: "waiting for the canary to be available (0/1)".into()
        }
    );
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 600),
        Action::RollBack {
            reason: "the canary was not available within progressDeadline 10m (0/1 pods available)"
                .into(),
            manual: false
        }
    );
}

#[test]
fn a_healthy_stage_waits_out_its_pause_then_advances() {
    let r = progressing(0);
    let d = deployment(Stage::Canary(0), Some(0));
    let c = canary(NEW, 1, 1);
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 299),
        Action::Wait {
            reason: "stage 0 at 10% healthy; 1s of the 5m pause left".into()
        }
    );
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 300),
        Action::Advance {
            stage: 1,
            weight: 25,
            manual: false
        }
    );
}

#[test]
fn the_stage_before_the_last_step_promotes() {
    // Stage 2 is 50%; the next step is 100 = promotion.
    let r = progressing(0);
    let d = deployment(Stage::Canary(2), Some(0));
    let c = canary(NEW, 4, 4);
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 300),
        Action::Promote { manual: false }
    );
    // A plan without a 100 step promotes after its last stage too.
    let mut d = d;
    if let Some(Ok(p)) = &mut d.progress {
        p.plan.steps = vec![10, 50];
        p.stage = Stage::Canary(1);
    }
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 300),
        Action::Promote { manual: false }
    );
    // Reaching a 100 stage directly (annotation says so) is the promotion.
    let d = deployment(Stage::Canary(3), Some(0));
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 0),
        Action::Promote { manual: false }
    );
}

#[test]
fn missing_metrics_hold_the_stage_without_advancing_or_rolling_back() {
    let r = progressing(1);
    let d = deployment(Stage::Canary(1), Some(0));
    let c = canary(NEW, 1, 1);
    // Long past the pause, one failure already recorded: still only a hold.
    assert_eq!(
        run(&d, Some(&c), Some(&r), &unknown(), 10_000),
        Action::Hold {
            reason: "no burn rate over 5m for team t".into()
        }
    );
}

#[test]
fn burn_above_the_abort_rate_rolls_back_at_the_consecutive_failure_count() {
    let d = deployment(Stage::Canary(1), Some(0));
    let c = canary(NEW, 1, 1);
    assert_eq!(
        run(&d, Some(&c), Some(&progressing(0)), &burning(), 30),
        Action::RecordCheck {
            failed_checks: 1,
            reason: "team t burns 20.0x over 5m, above abortBurnRate 14.4x".into()
        }
    );
    assert_eq!(
        run(&d, Some(&c), Some(&progressing(1)), &burning(), 32),
        Action::RollBack {
            reason: "team t burns 20.0x over 5m, above abortBurnRate 14.4x (2 checks in a row)"
                .into(),
            manual: false
        }
    );
    // A second failure within the same interval is not counted again.
    assert_eq!(
        next(&Input {
            deployment: &d,
            canary: Some(&c),
            release: Some(&progressing(1)),
            health: &burning(),
            canary_spec: &spec(),
            check_due: false,
            now: at(31),
        }),
        Action::Wait {
            reason: "unhealthy, next check within the interval: team t burns 20.0x over 5m, above abortBurnRate 14.4x".into()
        }
    );
    // A healthy check between failures resets the count.
    assert_eq!(
        run(&d, Some(&c), Some(&progressing(1)), &healthy(), 34),
        Action::RecordCheck {
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
        run(&d, Some(&c), Some(&progressing(0)), &burning(), 100_000),
        Action::RecordCheck { .. }
    ));
}

#[test]
fn manual_actions() {
    let r = progressing(0);
    let c = canary(NEW, 1, 1);
    let mut d = deployment(Stage::Canary(0), Some(0));
    d.action = Some(ManualAction::Resume);
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 10),
        Action::Advance {
            stage: 1,
            weight: 25,
            manual: true
        }
    );
    // Resume does not skip a health check.
    assert!(matches!(
        run(&d, Some(&c), Some(&r), &unknown(), 10),
        Action::Hold { .. }
    ));
    d.action = Some(ManualAction::Promote);
    assert_eq!(
        run(&d, Some(&c), Some(&r), &burning(), 10),
        Action::Promote { manual: true }
    );
    d.action = Some(ManualAction::Abort);
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 10),
        Action::RollBack {
            reason: "aborted by hand (annotation budgetgate.dev/action=abort)".into(),
            manual: true
        }
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
        run(&d, Some(&c), Some(&r), &burning(), 10),
        Action::Wait {
            reason: "waiting for the rolling update of the promoted revision".into()
        }
    );
    let mut done = d.clone();
    done.rolled_out = true;
    assert_eq!(
        run(&done, Some(&c), Some(&r), &unknown(), 10),
        Action::FinishPromotion
    );
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 600),
        Action::RollBack {
            reason: "the promoted rollout did not complete within progressDeadline 10m".into(),
            manual: false
        }
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
        run(&d, Some(&c), Some(&r), &healthy(), 250),
        Action::Wait {
            reason: "stage 1 at 25% healthy; 150s of the 5m pause left".into()
        }
    );
    assert_eq!(
        run(&d, Some(&c), Some(&r), &healthy(), 400),
        Action::Advance {
            stage: 2,
            weight: 50,
            manual: false
        }
    );
}

#[test]
fn annotations_parse_into_progress() {
    let d = json!({
        "metadata": {"name": "web", "annotations": {
            "budgetgate.dev/revision": NEW, "budgetgate.dev/plan": "10,25,50,100",
            "budgetgate.dev/pause": "5m", "budgetgate.dev/band": "caution",
            "budgetgate.dev/stage": "1", "budgetgate.dev/stage-started-at": T0,
            "budgetgate.dev/action": "resume"}},
        "spec": {"replicas": 4, "paused": true, "template": {}},
        "status": {}
    });
    let view = deployment_view(&d);
    assert_eq!(view.progress, Some(Ok(progress(Stage::Canary(1), Some(0)))));
    assert_eq!(view.action, Some(ManualAction::Resume));
    assert_eq!(view.replicas, 4);
    assert!(view.paused);
    assert!(!view.rolled_out);

    let mut promoting = d.clone();
    promoting["metadata"]["annotations"]["budgetgate.dev/stage"] = json!("promoting");
    assert_eq!(
        progress_of(&promoting).unwrap().stage,
        Stage::Promoting,
        "promoting"
    );
    let mut bad = d.clone();
    bad["metadata"]["annotations"]["budgetgate.dev/plan"] = json!("10,abc");
    assert_eq!(
        super::progress(&bad),
        Some(Err(
            "annotation budgetgate.dev/plan: \"abc\" is not a weight 1-100".into()
        ))
    );
    let mut none = d.clone();
    none["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("budgetgate.dev/stage");
    assert_eq!(super::progress(&none), None);
}

fn progress_of(d: &serde_json::Value) -> Result<Progress, String> {
    super::progress(d).unwrap()
}

#[test]
fn rolled_out_needs_every_replica_updated_and_available() {
    let mut d = json!({
        "metadata": {"name": "web", "generation": 3},
        "spec": {"replicas": 3, "template": {}},
        "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    });
    assert!(deployment_view(&d).rolled_out);
    d["status"]["replicas"] = json!(4); // an old pod still terminating
    assert!(!deployment_view(&d).rolled_out);
    d["status"]["replicas"] = json!(3);
    d["status"]["observedGeneration"] = json!(2);
    assert!(!deployment_view(&d).rolled_out);
}

#[test]
fn the_canary_object_cannot_overlap_the_stable_replica_set() {
    let d = json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
    });
    let c = canary_object(&d, NEW, 2);
    assert_eq!(
        c,
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
    assert_eq!(canary_view(&c), canary(NEW, 2, 0));
}

#[test]
fn roll_back_restores_the_newest_replica_set_that_is_not_the_canary() {
    let rs = |n: &str, image: &str| {
        json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": n}},
               "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": format!("h{n}")}},
                                     "spec": {"containers": [{"name": "web", "image": image}]}}}})
    };
    let sets = [rs("1", "web:1"), rs("3", "web:3"), rs("2", "web:2")];
    let (revision, template) = serving_template(&sets, "none").unwrap();
    assert_eq!(
        template,
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:3"}]}})
    );
    assert_eq!(revision, crate::decision::revision_hash(&template));
    // The newest one is the canary's own revision (a promotion that was rolling): skip it.
    let (_, template) = serving_template(&sets, &revision).unwrap();
    assert_eq!(template["spec"]["containers"][0]["image"], "web:2");
    assert_eq!(serving_template(&[], "x"), None);
}

#[test]
fn history_keeps_the_newest_ten_without_repeats() {
    let old: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    assert_eq!(push_history(&[], "a"), "a");
    assert_eq!(push_history(&["a".into(), "b".into()], "b"), "b,a");
    assert_eq!(push_history(&old, "new"), "new,r0,r1,r2,r3,r4,r5,r6,r7,r8");
    assert_eq!(release_name("web", NEW, 7), "web-bbbbbbbb-7");
}
