//! The real binary on the samples: every sample review gets the answer DESIGN §6
//! prescribes (the whole response), and bad input exits 2 with a one-line error.

mod common;

use common::run as budgetgate;

use base64::Engine;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const NOW: &str = "2026-11-29T10:00:00Z";
const SAMPLES: &str = "manifests/samples";

/// `evaluate --review` on a sample review: (exit code, response).
fn review(name: &str, webhook: &str) -> (i32, Value) {
    review_on(&format!("{SAMPLES}/budgets.json"), name, webhook)
}

/// [`review`] with another BudgetSnapshot.
fn review_on(budgets: &str, name: &str, webhook: &str) -> (i32, Value) {
    review_in(SAMPLES, budgets, name, webhook)
}

/// [`review`] with other policy files and BudgetSnapshot.
fn review_in(policy: &str, budgets: &str, name: &str, webhook: &str) -> (i32, Value) {
    let review = format!("{SAMPLES}/reviews/{name}.json");
    let out = budgetgate(&[
        "evaluate",
        "--policy",
        policy,
        "--budgets",
        budgets,
        "--review",
        &review,
        "--webhook",
        webhook,
        "--now",
        NOW,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let review: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{name}: stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    (out.status.code().unwrap_or(-1), review["response"].clone())
}

fn decoded_patch(response: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            response["patch"]
                .as_str()
                .expect("patch is a base64 string"),
        )
        .expect("patch is base64");
    serde_json::from_slice(&bytes).expect("patch is JSON")
}

fn uid(n: u32) -> String {
    format!("0b6f3c1e-1111-4c6e-9a01-{n:012}")
}

const EXHAUSTED_INDEXER: &str = "budgetgate denied the rollout of deployment search/indexer (team discovery, tier production): \
the error budget is exhausted: team discovery has -50.0% remaining (burn 5m 1.6x, 1h 1.5x, 6h 1.5x). \
Still allowed: rolling back to a previous revision, and scaling. \
To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace search.";

#[test]
fn create_within_budget_is_allowed_without_a_canary() {
    assert_eq!(
        review("create", "validate"),
        (0, json!({"uid": uid(1), "allowed": true}))
    );
    assert_eq!(
        review("create", "mutate"),
        (0, json!({"uid": uid(1), "allowed": true}))
    );
}

#[test]
fn image_change_in_a_progressive_namespace_gets_the_caution_plan() {
    // checkout's own SLO (40% left) is stricter than team payments (89%): band caution.
    assert_eq!(
        review("rollout-image-change", "validate"),
        (0, json!({"uid": uid(2), "allowed": true}))
    );
    let (code, response) = review("rollout-image-change", "mutate");
    assert_eq!(code, 0);
    assert_eq!(response["allowed"], true);
    assert_eq!(
        decoded_patch(&response),
        json!([
            {"op": "add", "path": "/spec/paused", "value": true},
            {"op": "add", "path": "/metadata/annotations", "value": {
                "budgetgate.dev/band": "caution",
                "budgetgate.dev/pause": "5m",
                "budgetgate.dev/plan": "10,25,50,100",
                "budgetgate.dev/revision": "316d50f5d6",
                "budgetgate.dev/stage": "0"
            }}
        ])
    );
}

#[test]
fn scale_and_metadata_changes_pass_untouched() {
    for (name, n) in [("scale", 3), ("metadata", 4)] {
        for webhook in ["validate", "mutate"] {
            assert_eq!(
                review(name, webhook),
                (0, json!({"uid": uid(n), "allowed": true})),
                "{name} {webhook}"
            );
        }
    }
}

#[test]
fn rollback_to_the_serving_replica_set_passes_a_frozen_team_with_a_warning() {
    assert_eq!(
        review("rollback", "validate"),
        (
            0,
            json!({
                "uid": uid(5),
                "allowed": true,
                "warnings": ["budgetgate: rollback of search/indexer let through despite the freeze (budget exhausted, -50.0% left)"]
            })
        )
    );
    assert_eq!(
        review("rollback", "mutate"),
        (0, json!({"uid": uid(5), "allowed": true}))
    );
}

#[test]
fn rollout_restart_passes_a_frozen_team_and_records_the_restarted_revision() {
    assert_eq!(
        review("restart", "validate"),
        (
            0,
            json!({
                "uid": uid(15),
                "allowed": true,
                "warnings": ["budgetgate: restart of search/indexer let through despite the freeze (budget exhausted, -50.0% left)"]
            })
        )
    );
    let (code, response) = review("restart", "mutate");
    assert_eq!(code, 0);
    assert_eq!(response["allowed"], true);
    assert_eq!(
        decoded_patch(&response),
        json!([{"op": "add", "path": "/metadata/annotations/budgetgate.dev~1history", "value": "053111694b,c0ffee0001"}])
    );
}

#[test]
fn rollout_of_a_team_with_an_exhausted_budget_is_denied() {
    assert_eq!(
        review("rollout-exhausted", "validate"),
        (
            1,
            json!({
                "uid": uid(6),
                "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": EXHAUSTED_INDEXER}
            })
        )
    );
    // The mutating webhook always allows; the validating one decides.
    assert_eq!(
        review("rollout-exhausted", "mutate"),
        (0, json!({"uid": uid(6), "allowed": true}))
    );
}

#[test]
fn missing_data_never_lifts_a_known_exhaustion() {
    // query-availability's 30m series is missing (its page-slow pair cannot be judged), and
    // the team has an SLO whose period series is missing: the known −50% still denies.
    let mut budgets: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{SAMPLES}/budgets.json")).unwrap())
            .unwrap();
    let slos = budgets["slos"].as_array_mut().unwrap();
    let query = slos
        .iter_mut()
        .find(|s| s["name"] == "query-availability")
        .unwrap();
    query["windows"]["30m"] = Value::Null;
    slos.push(json!({
        "namespace": "search", "name": "query-latency", "objective": 99.0,
        "period": null, "windows": {}
    }));
    let path = scratch("budgets-missing.json", &budgets.to_string());
    let message = EXHAUSTED_INDEXER.replace(
        "(burn 5m 1.6x, 1h 1.5x, 6h 1.5x). ",
        "(burn 5m 1.6x, 1h 1.5x, 6h 1.5x); 1 SLO without data is not counted. ",
    );
    assert_eq!(
        review_on(&path, "rollout-exhausted", "validate"),
        (
            1,
            json!({
                "uid": uid(6),
                "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": message}
            })
        )
    );
}

#[test]
fn relabelling_a_rollout_keeps_the_stricter_slo_and_drops_foreign_exceptions() {
    // indexer relabelled app=query in the same write would match query's override
    // hotfix-4411: an exception applies only when it selects the old and the new labels.
    assert_eq!(
        review("relabel-onto-exception", "validate"),
        (
            1,
            json!({
                "uid": uid(16),
                "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": EXHAUSTED_INDEXER}
            })
        )
    );
    // checkout relabelled app=cart: cart-latency (99%) and the team (89%) would give the
    // healthy plan; checkout's own SLO (40%) still selects it by its old labels: caution.
    let (code, response) = review("relabel-laxer-slo", "mutate");
    assert_eq!(code, 0);
    assert_eq!(
        decoded_patch(&response),
        json!([
            {"op": "add", "path": "/spec/paused", "value": true},
            {"op": "add", "path": "/metadata/annotations", "value": {
                "budgetgate.dev/band": "caution",
                "budgetgate.dev/pause": "5m",
                "budgetgate.dev/plan": "10,25,50,100",
                "budgetgate.dev/revision": "316d50f5d6",
                "budgetgate.dev/stage": "0"
            }}
        ])
    );
}

#[test]
fn a_planted_replica_set_does_not_make_a_rollout_a_rollback() {
    // indexer-planted (v4, created after search's first Release) is ignored: denied.
    let denied = json!({
        "uid": uid(6),
        "allowed": false,
        "status": {"code": 403, "reason": "Forbidden", "message": EXHAUSTED_INDEXER}
    });
    assert_eq!(review("rollout-exhausted", "validate"), (1, denied));
    // The same ReplicaSet from before search was managed is one indexer ran: a rollback.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-predating");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(SAMPLES).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("2026-11-29T09:30:00Z", "2026-11-01T00:00:00Z");
            std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    assert_eq!(
        review_in(
            &dir.to_string_lossy(),
            &format!("{SAMPLES}/budgets.json"),
            "rollout-exhausted",
            "validate"
        ),
        (
            0,
            json!({
                "uid": uid(6),
                "allowed": true,
                "warnings": ["budgetgate: rollback of search/indexer let through despite the freeze (budget exhausted, -50.0% left)"]
            })
        )
    );
}

#[test]
fn server_dry_run_is_answered_exactly_like_the_real_request() {
    assert_eq!(
        review("dry-run", "validate"),
        (
            1,
            json!({
                "uid": uid(7),
                "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": EXHAUSTED_INDEXER}
            })
        )
    );
}

#[test]
fn override_exception_lets_a_frozen_rollout_through_at_the_most_cautious_plan() {
    assert_eq!(
        review("exception-override", "validate"),
        (
            0,
            json!({
                "uid": uid(8),
                "allowed": true,
                "warnings": ["budgetgate: exception hotfix-4411 (approved by platform-oncall) lets this through until 2026-12-01T00:00:00Z"]
            })
        )
    );
    let (_, response) = review("exception-override", "mutate");
    assert_eq!(
        decoded_patch(&response),
        json!([
            {"op": "add", "path": "/spec/paused", "value": true},
            {"op": "add", "path": "/metadata/annotations", "value": {
                "budgetgate.dev/band": "critical",
                "budgetgate.dev/pause": "10m",
                "budgetgate.dev/plan": "5,10,25,50,100",
                "budgetgate.dev/revision": "41afd41c9d",
                "budgetgate.dev/stage": "0"
            }}
        ])
    );
}

#[test]
fn warn_tier_allows_with_the_denial_as_a_warning_and_no_patch() {
    let message = "budgetgate denied the rollout of deployment ads-staging/banner (team growth, tier staging): \
the error budget is exhausted: team growth has -33.3% remaining (burn 5m 1.3x, 1h 1.3x, 6h 1.3x). \
Still allowed: rolling back to a previous revision, and scaling. \
To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace ads-staging.";
    assert_eq!(
        review("warn-mode", "validate"),
        (
            0,
            json!({
                "uid": uid(9),
                "allowed": true,
                "warnings": ["budgetgate (warn mode) would deny ads-staging/banner: budget exhausted, -33.3% left"],
                "auditAnnotations": {"would-deny": message}
            })
        )
    );
    assert_eq!(
        review("warn-mode", "mutate"),
        (0, json!({"uid": uid(9), "allowed": true}))
    );
}

#[test]
fn dryrun_namespace_allows_silently_and_records_the_would_be_denial() {
    let message = "budgetgate denied the rollout of deployment ledger/ledger (team billing, tier production): \
the error budget is exhausted: team billing has -20.0% remaining (burn 5m 0.6x, 1h 0.6x, 6h 0.6x). \
Still allowed: rolling back to a previous revision, and scaling. \
To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace ledger.";
    assert_eq!(
        review("dryrun-namespace", "validate"),
        (
            0,
            json!({"uid": uid(10), "allowed": true, "auditAnnotations": {"would-deny": message}})
        )
    );
    assert_eq!(
        review("dryrun-namespace", "mutate"),
        (0, json!({"uid": uid(10), "allowed": true}))
    );
}

#[test]
fn unmanaged_namespace_is_never_touched() {
    for webhook in ["validate", "mutate"] {
        assert_eq!(
            review("unmanaged", webhook),
            (0, json!({"uid": uid(11), "allowed": true}))
        );
    }
}

#[test]
fn forged_system_annotations_are_restored_by_the_mutating_webhook() {
    assert_eq!(
        review("forged-annotations", "validate"),
        (0, json!({"uid": uid(12), "allowed": true}))
    );
    let (_, response) = review("forged-annotations", "mutate");
    assert_eq!(
        decoded_patch(&response),
        json!([
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
            {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1history", "value": "3f9a1c0b2d"}
        ])
    );
}

#[test]
fn forged_system_annotations_are_restored_unmanaged_and_on_the_status_subresource() {
    let restored = json!([
        {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1history", "value": "3f9a1c0b2d"}
    ]);
    for (name, n) in [
        ("forged-annotations-unmanaged", 18),
        ("forged-annotations-status", 19),
    ] {
        assert_eq!(
            review(name, "validate"),
            (0, json!({"uid": uid(n), "allowed": true})),
            "{name}"
        );
        let (code, response) = review(name, "mutate");
        assert_eq!(code, 0, "{name}");
        assert_eq!(response["allowed"], true, "{name}");
        assert_eq!(decoded_patch(&response), restored, "{name}");
    }
}

#[test]
fn budget_exception_without_an_approver_is_rejected() {
    assert_eq!(
        review("budget-exception-invalid", "validate"),
        (
            1,
            json!({
                "uid": uid(13),
                "allowed": false,
                "status": {
                    "code": 403,
                    "reason": "Forbidden",
                    "message": "budgetgate rejected BudgetException search/skip-all: spec.approvedBy is required: name the platform approver"
                }
            })
        )
    );
}

/// Exit code and the whole of stderr.
fn fails(args: &[&str]) -> (i32, String) {
    let out = budgetgate(args);
    assert!(
        out.stdout.is_empty(),
        "no output on failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str, text: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn truncated_review_exits_2_naming_the_field_and_position() {
    let review = format!("{SAMPLES}/reviews/malformed.json");
    let budgets = format!("{SAMPLES}/budgets.json");
    assert_eq!(
        fails(&["evaluate", "--policy", SAMPLES, "--budgets", &budgets, "--review", &review, "--now", NOW]),
        (2, "error: manifests/samples/reviews/malformed.json: not an AdmissionReview: request.userInfo.groups[0]: EOF while parsing a string at line 32 column 15\n".into())
    );
}

#[test]
fn bad_yaml_exits_2_naming_file_and_document() {
    let policy = std::fs::read_to_string(format!("{SAMPLES}/policy.yaml")).unwrap();
    let file = scratch(
        "bad.yaml",
        &format!("{policy}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: [unclosed\n"),
    );
    let budgets = format!("{SAMPLES}/budgets.json");
    let (code, stderr) = fails(&["status", "--policy", &file, "--budgets", &budgets]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(&format!("error: {file}: document 2: invalid YAML: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn unknown_policy_field_exits_2_with_its_path() {
    let file = scratch(
        "typo.yaml",
        "apiVersion: budgetgate.dev/v1alpha1\nkind: ReliabilityPolicy\nmetadata: {name: platform}\nspec:\n  tiers:\n    production:\n      bands: [{name: a, plan: {steps: [100], pause: 1m}}]\n      freezeOnPageBurns: true\n",
    );
    let budgets = format!("{SAMPLES}/budgets.json");
    let (code, stderr) = fails(&["status", "--policy", &file, "--budgets", &budgets]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error: {file}: document 1 (ReliabilityPolicy platform): spec.tiers.production.freezeOnPageBurns: unknown field `freezeOnPageBurns`, expected one of `enforcement`, `window`, `staleAfter`, `onStale`, `onExhausted`, `freezeOnPageBurn`, `recoveryTarget`, `bands`, `alertWindows`, `canary`\n"
        )
    );
}

#[test]
fn bad_budget_json_exits_2_with_its_path() {
    let budgets = scratch(
        "budgets.json",
        r#"{"evaluatedAt": "2026-11-29T09:59:30Z", "slos": [{"namespace": "shop", "name": "x", "period": {"bad": "many", "total": 1}}]}"#,
    );
    assert_eq!(
        fails(&["status", "--policy", SAMPLES, "--budgets", &budgets]),
        (
            2,
            format!(
                "error: {budgets}: invalid BudgetSnapshot: slos[0].period.bad: invalid type: string \"many\", expected f64 at line 1 column 108\n"
            )
        )
    );
}

#[test]
fn missing_file_exits_2_naming_it() {
    assert_eq!(
        fails(&[
            "status",
            "--policy",
            SAMPLES,
            "--budgets",
            "no/such/budgets.json"
        ]),
        (
            2,
            "error: no/such/budgets.json: No such file or directory (os error 2)\n".into()
        )
    );
}

#[test]
fn bad_now_exits_2() {
    let budgets = format!("{SAMPLES}/budgets.json");
    let (code, stderr) = fails(&[
        "status",
        "--policy",
        SAMPLES,
        "--budgets",
        &budgets,
        "--now",
        "yesterday",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: --now \"yesterday\" is not an RFC 3339 time"),
        "{stderr}"
    );
}

#[test]
fn status_json_has_the_documented_shape_and_numbers() {
    let budgets = format!("{SAMPLES}/budgets.json");
    let out = budgetgate(&[
        "status",
        "--policy",
        SAMPLES,
        "--budgets",
        &budgets,
        "--now",
        NOW,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["evaluatedAt"], "2026-11-29T09:59:30Z");
    let teams = status["teams"].as_array().unwrap();
    let names: Vec<_> = teams
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["team"].as_str().unwrap(),
                t["tier"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "billing/production",
            "discovery/production",
            "growth/staging",
            "payments/production"
        ]
    );
    let payments = &teams[3];
    // 1 − (1200 + 100) / (0.001·2,000,000 + 0.01·1,000,000)
    let want = 1.0 - 1300.0 / 12_000.0;
    assert!((payments["remaining"].as_f64().unwrap() - want).abs() < 1e-12);
    assert_eq!(payments["band"], "healthy");
    assert_eq!(payments["state"], "Healthy");
    // 1h: (30 + 2) / (0.001·60,000 + 0.01·30,000)
    let burn_1h = payments["burnRates"]["1h"].as_f64().unwrap();
    assert!((burn_1h - 32.0 / 360.0).abs() < 1e-12, "{burn_1h}");
    let checkout = payments["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "checkout-availability")
        .unwrap();
    assert!((checkout["remaining"].as_f64().unwrap() - 0.4).abs() < 1e-12);
    assert_eq!(checkout["band"], "caution");
    assert_eq!(checkout["state"], "Caution");
    assert_eq!(checkout["alerts"], json!([]));
    // remaining 0.4 over 30d at 1d burn 600/1440 = 0.41666…: 28.8 days from evaluation.
    assert_eq!(checkout["exhaustsAt"], "2026-12-28T05:11:30Z");
    let discovery = &teams[1];
    assert_eq!(discovery["state"], "Exhausted");
    assert_eq!(discovery["band"], Value::Null);
    assert_eq!(discovery["slos"][0]["alerts"], json!(["ticket-slow"]));
    assert_eq!(status["platform"]["staging"]["band"], Value::Null);
    assert_eq!(status["platform"]["production"]["band"], "healthy");
}

#[test]
fn manifests_are_judged_as_rollouts_and_a_denial_fails_the_gate() {
    let budgets = format!("{SAMPLES}/budgets.json");
    let out = budgetgate(&[
        "evaluate",
        "--policy",
        SAMPLES,
        "--budgets",
        &budgets,
        "--now",
        NOW,
        "-f",
        &format!("{SAMPLES}/deployments"),
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary: Vec<(String, String, Value, Value)> = verdicts
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["deployment"].as_str().unwrap().to_owned(),
                v["verdict"].as_str().unwrap().to_owned(),
                v["band"].clone(),
                v["plan"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "ads-staging/banner".to_owned(),
                "warn".to_owned(),
                Value::Null,
                Value::Null
            ),
            (
                "shop/checkout".to_owned(),
                "allow".to_owned(),
                json!("caution"),
                json!({"steps": [10, 25, 50, 100], "pause": "5m"})
            ),
            (
                "search/indexer".to_owned(),
                "deny".to_owned(),
                Value::Null,
                Value::Null
            ),
        ]
    );
}

#[test]
fn every_command_explains_itself_with_an_example() {
    for command in ["evaluate", "status", "crds"] {
        let out = budgetgate(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example"),
            "{command} --help lacks an example:\n{help}"
        );
    }
}

/// The binary installed as `kubectl-budgetgate` (a link, as users install it).
fn plugin(dir: &std::path::Path) -> Command {
    let link = dir.join("kubectl-budgetgate");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_budgetgate"), &link).unwrap();
    }
    Command::new(link)
}

#[test]
fn installed_as_kubectl_budgetgate_the_binary_is_the_kubectl_plugin() {
    let dir = common::scratch("plugin");
    let out = plugin(&dir).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.starts_with("budgetgate from kubectl"), "{help}");
    for command in [
        "status",
        "why",
        "releases",
        "promote",
        "abort",
        "resume",
        "exception",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command} in {help}"
        );
    }
    assert!(
        help.contains("Usage: kubectl budgetgate [OPTIONS] <COMMAND>"),
        "{help}"
    );
    // A kubeconfig that is not there: a one-line error, exit 2, before any request.
    let missing = dir.join("no-such-kubeconfig");
    let out = plugin(&dir)
        .args(["--kubeconfig", missing.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("error: {}: ", missing.display())),
        "{err}"
    );
    // An apiserver that does not answer: exit 2 naming what could not be read.
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: shop}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let out = plugin(&dir)
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "promote",
            "web",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "error: deployment shop/web: cannot reach the cluster: ServiceError: client error (Connect)\n"
    );
}
