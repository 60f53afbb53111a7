//! Admission decision on a ~6 KB Deployment review (JSON parse, decision, patch, response
//! serialization), the floors any decision on that review pays, and team aggregation over
//! 1,000 SLOs.

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
use client::{apiserver_review, six_kb_review};

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
    floors(c, &bytes);
}

/// What no implementation of `/validate` on this review can skip, whatever its design:
/// reading every byte of the review's JSON (a scan that builds nothing), and the SHA-256
/// of the new pod template's canonical bytes (the revision hash of Appendix A).
fn floors(c: &mut Criterion, bytes: &[u8]) {
    c.bench_function("floor_scan_6kb_review_building_nothing", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(bytes)).unwrap();
            serde_json::from_str::<serde::de::IgnoredAny>(text).unwrap()
        })
    });
    let review: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let template = serde_json::to_vec(&review["request"]["object"]["spec"]["template"]).unwrap();
    println!(
        "new pod template: {} bytes of canonical JSON",
        template.len()
    );
    c.bench_function("floor_sha256_of_the_template", |b| {
        b.iter(|| {
            use sha2::Digest;
            sha2::Sha256::digest(black_box(&template))
        })
    });
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
