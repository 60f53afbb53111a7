//! The demo's month of history (`e2e/lib/history.py`), backfilled by promtool into a real
//! Prometheus and read by `budgetgate status`: the budgets left are the ones the generator
//! was asked for, and nothing fires when the story starts.

mod support;

use serde_json::Value;
use std::process::Command;
use support::prometheus::*;

const SLOS: &str = r#"apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: availability, namespace: checkout}
spec:
  service: checkout
  objective: 99
  indicator:
    ratio:
      errors: 'http_requests_total{deployment="checkout",code=~"5.."}'
      total: 'http_requests_total{deployment="checkout"}'
---
apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: availability, namespace: ads}
spec:
  service: banner
  objective: 99
  indicator:
    ratio:
      errors: 'http_requests_total{deployment="banner",code=~"5.."}'
      total: 'http_requests_total{deployment="banner"}'
"#;

const NAMESPACES: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: checkout, labels: {budgetgate.dev/team: payments, budgetgate.dev/tier: production}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ads, labels: {budgetgate.dev/team: growth, budgetgate.dev/tier: production}}
"#;

#[test]
fn the_demo_history_leaves_the_budgets_asked_for_and_fires_nothing() {
    require_prometheus();
    let root = temp_dir("demo-history");
    let manifest = env!("CARGO_MANIFEST_DIR");
    let history = root.join("history.om");
    let out = Command::new("python3")
        .arg(format!("{manifest}/e2e/lib/history.py"))
        .args(["--end", &NOW.to_string()])
        .args(["checkout/checkout:60:99:0.62", "ads/banner:40:99:0.85"])
        .stdout(std::fs::File::create(&history).expect("create the history file"))
        .output()
        .expect("python3 runs history.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "  checkout/checkout: 139535459 requests, 530235 errors over 30 days (0.3800%; 62.0% of the budget left)\n  \
         ads/banner: 93023639 requests, 139535 errors over 30 days (0.1500%; 85.0% of the budget left)\n"
    );
    let data = root.join("data");
    create_blocks(&history, &data);
    let prometheus = Prometheus::start(&data);

    let policy = root.join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::copy(
        format!("{manifest}/manifests/samples/policy.yaml"),
        policy.join("policy.yaml"),
    )
    .unwrap();
    std::fs::write(policy.join("namespaces.yaml"), NAMESPACES).unwrap();
    std::fs::write(policy.join("slos.yaml"), SLOS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_budgetgate"))
        .args(["status", "--now", NOW_RFC3339, "-o", "json", "--policy"])
        .arg(&policy)
        .args(["--prometheus", &prometheus.url])
        .env_remove("BUDGETGATE_PROMETHEUS")
        .output()
        .expect("budgetgate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("status prints JSON");
    let teams = report["teams"].as_array().expect("teams");
    let mut seen = Vec::new();
    for team in teams {
        let remaining = team["remaining"].as_f64().expect("remaining");
        let want = match team["team"].as_str() {
            Some("payments") => 0.62,
            Some("growth") => 0.85,
            other => panic!("unexpected team {other:?}"),
        };
        // The counters are whole numbers and the 30-day window starts at the first sample.
        assert!((remaining - want).abs() < 1e-4, "{team}");
        assert_eq!(team["state"], "Healthy", "{team}");
        let slo = &team["slos"][0];
        assert_eq!(slo["alerts"], serde_json::json!([]), "{team}");
        // The last four days hold only the background: half of the spend, spread evenly, so
        // every window burns at (1 - remaining) / 2 (the 5m window within sampling noise).
        for (window, burn) in team["burnRates"].as_object().expect("burn rates") {
            let burn = burn.as_f64().expect("a burn rate");
            assert!((burn - (1.0 - want) / 2.0).abs() < 0.01, "{window}: {team}");
        }
        seen.push(team["team"].as_str().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(seen, ["growth", "payments"]);
    drop(prometheus);
    let _ = std::fs::remove_dir_all(&root);
}
