//! The webhook over real TLS: every sample decision through /validate and /mutate equals
//! `budgetgate evaluate`; bad requests get clear 4xx answers; certificates rotate without
//! a restart; concurrent keep-alive clients get their own answers; readiness; reloads.

mod common;

use common::*;
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const REVIEWS: [&str; 18] = [
    "budget-exception-invalid",
    "create",
    "dry-run",
    "dryrun-namespace",
    "exception-override",
    "forged-annotations",
    "forged-annotations-status",
    "forged-annotations-unmanaged",
    "metadata",
    "relabel-laxer-slo",
    "relabel-onto-exception",
    "restart",
    "rollback",
    "rollout-exhausted",
    "rollout-image-change",
    "scale",
    "unmanaged",
    "warn-mode",
];

#[tokio::test]
async fn every_sample_review_gets_the_answer_evaluate_gives() {
    let webhook = start_on_samples("answers");
    let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
    for name in REVIEWS {
        let path = Path::new(SAMPLES).join(format!("reviews/{name}.json"));
        let review = std::fs::read(&path).unwrap();
        for hook in ["validate", "mutate"] {
            let served = conn.review(hook, &review).await;
            let offline = evaluate(SAMPLES, &format!("{SAMPLES}/budgets.json"), &path, hook);
            assert_eq!(served, offline, "{name} via /{hook}");
        }
    }
    // And one spot check of the content, so agreement is not agreement on nothing.
    let review = std::fs::read(Path::new(SAMPLES).join("reviews/rollout-exhausted.json")).unwrap();
    let answer = conn.review("validate", &review).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 403);
    // One log line per decision, with its fields.
    let decision_lines = || {
        let logs = webhook.logs.lock().unwrap();
        logs.iter()
            .filter(|l| l["fields"]["message"] == "admission decision")
            .cloned()
            .collect::<Vec<Value>>()
    };
    // stderr is read by another thread: give the last line a moment to arrive.
    eventually(Duration::from_secs(5), async || {
        decision_lines().len() == REVIEWS.len() * 2 + 1
    })
    .await;
    let decisions = decision_lines();
    assert_eq!(decisions.len(), REVIEWS.len() * 2 + 1);
    let last = decisions.last().unwrap();
    assert_eq!(last["fields"]["namespace"], "search");
    assert_eq!(last["fields"]["deployment"], "indexer");
    assert_eq!(last["fields"]["team"], "discovery");
    assert_eq!(last["fields"]["class"], "rollout");
    assert_eq!(last["fields"]["verdict"], "deny");
    assert_eq!(last["fields"]["reason"], "exhausted");
    let metrics = metrics(webhook.metrics).await;
    assert!(
        metrics.contains(r#"budgetgate_admission_requests_total{webhook="validate",operation="UPDATE",decision="deny",reason="exhausted"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"budgetgate_would_deny_total{namespace="ledger"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("budgetgate_budget_state_age_seconds 30.0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"budgetgate_admission_duration_seconds_count{webhook="mutate"} 18"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_requests_get_clear_answers_and_the_server_keeps_serving() {
    let webhook = start_on_samples("bad-requests");
    let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
    let malformed = std::fs::read(Path::new(SAMPLES).join("reviews/malformed.json")).unwrap();
    let (status, body) = conn.send("POST", "/validate", malformed).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "not an AdmissionReview: request.userInfo.groups[0]: EOF while parsing a string at line 32 column 15\n"
        )
    );
    let (status, body) = conn
        .send(
            "POST",
            "/mutate",
            "{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}",
        )
        .await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "not an AdmissionReview: expected apiVersion admission.k8s.io/v1 kind AdmissionReview, got v1 Pod\n"
        )
    );
    let (status, body) = conn.send("GET", "/validate", Bytes::new()).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (405, "GET /validate is not served; use POST\n")
    );
    let (status, body) = conn.send("POST", "/healthz", Bytes::new()).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (405, "POST /healthz is not served; use GET\n")
    );
    let (status, body) = conn.send("POST", "/admit", Bytes::new()).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            404,
            "no such path /admit; the webhook serves POST /validate and /mutate\n"
        )
    );
    // The same connection still answers real reviews.
    let review = std::fs::read(Path::new(SAMPLES).join("reviews/scale.json")).unwrap();
    assert_eq!(
        conn.review("validate", &review).await["response"]["allowed"],
        true
    );

    // Over 7 MiB: refused by its Content-Length before the body is read.
    let answer = raw(
        webhook.addr,
        &webhook.ca,
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 7340033\r\n\r\n{",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nreview is 7340033 bytes, over the 7 MiB limit\n"),
        "{answer}"
    );
    // A 7 MiB review that is all whitespace but the review itself is still parsed.
    let mut padded = review.clone();
    padded.resize(7 * 1024 * 1024, b' ');
    let mut ok = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
    assert_eq!(
        ok.review("validate", &padded).await["response"]["uid"],
        "0b6f3c1e-1111-4c6e-9a01-000000000003"
    );
    let metrics = metrics(webhook.metrics).await;
    assert!(
        metrics.contains(r#"budgetgate_admission_rejected_requests_total{source="malformed"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"budgetgate_admission_rejected_requests_total{source="method"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"budgetgate_admission_rejected_requests_total{source="not_found"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn health_and_readiness_in_file_mode() {
    let webhook = start_on_samples("health");
    assert_eq!(
        get(webhook.addr, &webhook.ca, "/healthz").await,
        (200, "ok\n".into())
    );
    // File mode loads before it listens: ready from the first request.
    assert_eq!(
        get(webhook.addr, &webhook.ca, "/readyz").await,
        (200, "ok\n".into())
    );
}

#[tokio::test]
async fn cluster_mode_is_not_ready_until_its_watches_sync_and_fails_open_meanwhile() {
    let dir = scratch("not-ready");
    let ca = certs(&dir);
    // An apiserver that is not there: the watches retry and never sync.
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n",
    )
    .unwrap();
    let webhook = start(
        &["--kubeconfig", kubeconfig.to_str().unwrap()],
        &dir.join("tls.crt"),
        &dir.join("tls.key"),
        &ca,
    );
    assert_eq!(
        get(webhook.addr, &webhook.ca, "/healthz").await,
        (200, "ok\n".into())
    );
    assert_eq!(
        get(webhook.addr, &webhook.ca, "/readyz").await,
        (
            503,
            "not ready: policy and budget state not loaded yet\n".into()
        )
    );
    let review = std::fs::read(Path::new(SAMPLES).join("reviews/rollout-exhausted.json")).unwrap();
    let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
    assert_eq!(
        conn.review("validate", &review).await,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "response": {"uid": "0b6f3c1e-1111-4c6e-9a01-000000000006", "allowed": true}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_keep_alive_clients_each_get_their_own_answers() {
    let webhook = start_on_samples("concurrent");
    let template: Value = serde_json::from_slice(
        &std::fs::read(Path::new(SAMPLES).join("reviews/rollout-exhausted.json")).unwrap(),
    )
    .unwrap();
    let scale: Value = serde_json::from_slice(
        &std::fs::read(Path::new(SAMPLES).join("reviews/scale.json")).unwrap(),
    )
    .unwrap();
    let mut clients = Vec::new();
    for client in 0..16 {
        let (addr, ca) = (webhook.addr, webhook.ca.clone());
        let (template, scale) = (template.clone(), scale.clone());
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr, &ca).await.unwrap();
            for i in 0..25 {
                // Alternate a denial and an allowed scale, each with its own uid.
                let (mut review, allowed) = if i % 2 == 0 {
                    (template.clone(), false)
                } else {
                    (scale.clone(), true)
                };
                let uid = format!("client-{client}-request-{i}");
                review["request"]["uid"] = json!(uid);
                let answer = conn
                    .review("validate", &serde_json::to_vec(&review).unwrap())
                    .await;
                assert_eq!(answer["response"]["uid"], json!(uid));
                assert_eq!(answer["response"]["allowed"], json!(allowed));
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let metrics = metrics(webhook.metrics).await;
    assert!(
        metrics.contains(r#"budgetgate_admission_duration_seconds_count{webhook="validate"} 400"#),
        "{metrics}"
    );
}

/// Kubernetes Secret volumes: `tls.crt -> ..data/tls.crt`, `..data -> ..2026_11_29…`; an
/// update writes a new timestamped directory and swaps the `..data` symlink.
#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let dir = scratch("rotation");
    let first_ca = certs(&dir.join("..first"));
    let second_ca = certs(&dir.join("..second"));
    std::os::unix::fs::symlink("..first", dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file)).unwrap();
    }
    let webhook = start_on_samples_with(&dir.join("tls.crt"), &dir.join("tls.key"), &first_ca);
    let mut old_conn = Conn::open(webhook.addr, &first_ca).await.unwrap();
    assert!(
        Conn::open(webhook.addr, &second_ca).await.is_err(),
        "the second CA is not trusted yet"
    );

    std::os::unix::fs::symlink("..second", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();

    let rotated = eventually(Duration::from_secs(10), async || {
        Conn::open(webhook.addr, &second_ca).await.is_ok()
    })
    .await;
    assert!(rotated, "new connections get the new certificate");
    assert!(
        Conn::open(webhook.addr, &first_ca).await.is_err(),
        "the old certificate is no longer served"
    );
    // The connection made before the rotation keeps working.
    assert_eq!(old_conn.send("GET", "/healthz", Bytes::new()).await.0, 200);
    let logged = eventually(Duration::from_secs(5), async || {
        webhook
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l["fields"]["message"] == "serving a new TLS certificate")
    })
    .await;
    assert!(logged, "the rotation is logged");

    // A broken certificate file keeps the current one.
    std::fs::write(dir.join("..second/tls.crt"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(Conn::open(webhook.addr, &second_ca).await.is_ok());
    let metrics = metrics(webhook.metrics).await;
    assert!(
        metrics.contains(r#"budgetgate_state_reload_errors_total{source="certificate"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_broken_file_keeps_the_last_good_state_and_a_good_change_is_picked_up() {
    let dir = scratch("reload");
    let ca = certs(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    for entry in std::fs::read_dir(SAMPLES).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, state.join(path.file_name().unwrap())).unwrap();
        }
    }
    let policy = state.to_str().unwrap().to_owned();
    let budgets = state.join("budgets.json");
    let webhook = start(
        &["--policy", &policy, "--budgets", budgets.to_str().unwrap()],
        &dir.join("tls.crt"),
        &dir.join("tls.key"),
        &ca,
    );
    let review =
        std::fs::read(Path::new(SAMPLES).join("reviews/rollout-image-change.json")).unwrap();
    let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
    assert_eq!(
        conn.review("validate", &review).await["response"]["allowed"],
        true
    );

    // Break the policy: the last good state keeps answering.
    let good_policy = std::fs::read_to_string(state.join("policy.yaml")).unwrap();
    std::fs::write(
        state.join("policy.yaml"),
        good_policy.replace("bands:", "bands: [unclosed"),
    )
    .unwrap();
    let logged =
        eventually(Duration::from_secs(10), async || {
            webhook.logs.lock().unwrap().iter().any(|l| {
                l["fields"]["message"] == "reload failed; the last good state stays in force"
            })
        })
        .await;
    assert!(logged);
    assert_eq!(
        conn.review("validate", &review).await["response"]["allowed"],
        true
    );
    let metrics = metrics(webhook.metrics).await;
    assert!(
        metrics.contains(r#"budgetgate_state_reload_errors_total{source="state"} 1"#),
        "{metrics}"
    );

    // Fix it, and spend checkout's budget: the next answer is a denial.
    std::fs::write(state.join("policy.yaml"), &good_policy).unwrap();
    let spent = std::fs::read_to_string(&budgets).unwrap().replace(
        r#""period": { "bad": 1200, "total": 2000000 }"#,
        r#""period": { "bad": 2400, "total": 2000000 }"#,
    );
    std::fs::write(&budgets, spent).unwrap();
    let denied = eventually(Duration::from_secs(10), async || {
        conn.review("validate", &review).await["response"]["allowed"] == false
    })
    .await;
    assert!(denied, "the new budgets are in force");
    let answer = conn.review("validate", &review).await;
    assert_eq!(
        answer["response"]["status"]["message"],
        "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
         the error budget is exhausted: SLO shop/checkout-availability has -20.0% remaining (burn 5m 0.4x, 1h 0.5x, 6h 0.4x). \
         Still allowed: rolling back to a previous revision, and scaling. \
         To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace shop."
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut webhook = start_on_samples("sigterm");
    let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
    assert_eq!(conn.send("GET", "/healthz", Bytes::new()).await.0, 200);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &webhook.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = eventually(Duration::from_secs(10), async || {
        matches!(webhook.child.try_wait(), Ok(Some(_)))
    })
    .await;
    assert!(exited, "the webhook exits after SIGTERM");
    assert_eq!(webhook.child.try_wait().unwrap().unwrap().code(), Some(0));
}
