//! Admission decision on a ~6 KB Deployment review (JSON parse, decision, patch, response
//! serialization), and team aggregation over 1,000 SLOs.

use budgetgate::api::Duration;
use budgetgate::budget::{Counts, Signals, budget_ratio};
use budgetgate::decision::{decide, parse_review};
use budgetgate::index::{NamespaceMeta, ObjectKey, SloSignals, evaluate_budgets};
use budgetgate::load;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

// The same allocator as the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::Path;

fn samples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples"))
}

#[path = "../tests/support/client.rs"]
mod client;
use client::six_kb_review;

fn decision(c: &mut Criterion) {
    let (index, _) = load::load_state(samples(), &samples().join("budgets.json")).unwrap();
    let now = "2026-11-29T10:00:00Z".parse().unwrap();
    let bytes = six_kb_review();
    c.bench_function("parse_6kb_review", |b| {
        b.iter(|| parse_review(black_box(&bytes)).unwrap())
    });
    let full = apiserver_review(&bytes);
    println!(
        "review: {} bytes; with status and managedFields: {} bytes",
        bytes.len(),
        full.len()
    );
    c.bench_function("parse_review_with_status_and_managed_fields", |b| {
        b.iter(|| parse_review(black_box(&full)).unwrap())
    });
    let request = parse_review(&bytes).unwrap();
    c.bench_function("decide_only", |b| {
        b.iter(|| decide(black_box(&request), &index, now).unwrap())
    });
    c.bench_function("decision_6kb_review_parse_decide_patch", |b| {
        b.iter(|| {
            let request = parse_review(black_box(&bytes)).unwrap();
            let d = decide(&request, &index, now).unwrap();
            assert!(d.canary.is_some());
            d.mutate_response().review_bytes()
        })
    });
}

/// The 6 KB review as the apiserver sends it: both objects also carry their
/// `metadata.managedFields` (client-side apply and the controller manager) and `status`.
fn apiserver_review(bytes: &[u8]) -> Vec<u8> {
    let mut review: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    for object in ["object", "oldObject"] {
        let o = &mut review["request"][object];
        let env: serde_json::Map<String, serde_json::Value> = (0..24)
            .map(|i| {
                let key = format!("k:{{\"name\":\"CHECKOUT_FEATURE_FLAG_{i}\"}}");
                (
                    key,
                    serde_json::json!({".": {}, "f:name": {}, "f:value": {}}),
                )
            })
            .collect();
        o["metadata"]["managedFields"] = serde_json::json!([
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-11-29T09:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}, "f:labels": {".": {}, "f:app": {}}},
                          "f:spec": {"f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
                                     "f:selector": {}, "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                                     "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                                    "f:spec": {"f:containers": {"k:{\"name\":\"checkout\"}": {".": {}, "f:env": env, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                                                               "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-11-29T09:01:00Z", "fieldsType": "FieldsV1", "subresource": "status",
             "fieldsV1": {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}},
                          "f:status": {"f:availableReplicas": {}, "f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:lastTransitionTime": {}, "f:lastUpdateTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"Progressing\"}": {".": {}, "f:lastTransitionTime": {}, "f:lastUpdateTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}},
                                       "f:observedGeneration": {}, "f:readyReplicas": {}, "f:replicas": {}, "f:updatedReplicas": {}}}}
        ]);
        o["status"] = serde_json::json!({
            "observedGeneration": 7, "replicas": 6, "updatedReplicas": 6, "readyReplicas": 6, "availableReplicas": 6,
            "conditions": [
                {"type": "Available", "status": "True", "lastUpdateTime": "2026-11-29T09:01:00Z", "lastTransitionTime": "2026-11-29T09:01:00Z", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "lastUpdateTime": "2026-11-29T09:01:00Z", "lastTransitionTime": "2026-11-29T09:00:00Z", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet \"checkout-5d8c7b9f4\" has successfully progressed."}
            ]
        });
    }
    serde_json::to_vec(&review).unwrap()
}

fn aggregation(c: &mut Criterion) {
    let policy_text = std::fs::read_to_string(samples().join("policy.yaml")).unwrap();
    let object: budgetgate::api::ReliabilityPolicy = serde_yaml_ng::from_str(&policy_text).unwrap();
    let policy = budgetgate::policy::Policy::from_spec(&object.spec).unwrap();
    let windows: Vec<Duration> = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
        .iter()
        .map(|w| Duration::parse(w).unwrap())
        .collect();
    let namespaces = (0..50)
        .map(|i| {
            let labels = [("budgetgate.dev/team".to_owned(), format!("team-{}", i % 10))].into();
            (format!("ns-{i}"), NamespaceMeta::from_labels(&labels))
        })
        .collect();
    let slos: Vec<SloSignals> = (0..1_000)
        .map(|i| SloSignals {
            key: ObjectKey::new(format!("ns-{}", i % 50), format!("slo-{i}")),
            objective: 99.9,
            window: None,
            signals: Signals::from_counts(
                budget_ratio(99.9),
                Some(Counts {
                    bad: (i % 700) as f64,
                    total: 1e6,
                }),
                windows.iter().map(|w| {
                    (
                        w.clone(),
                        Some(Counts {
                            bad: (i % 13) as f64,
                            total: 1e4,
                        }),
                    )
                }),
            ),
        })
        .collect();
    let at = "2026-11-29T10:00:00Z".parse().unwrap();
    c.bench_function("evaluate_budgets_1000_slos_10_teams", |b| {
        b.iter(|| evaluate_budgets(&policy, &namespaces, black_box(&slos), at))
    });
}

criterion_group!(benches, decision, aggregation);
criterion_main!(benches);
