//! `budgetgate status --prometheus`, `budgetgate rules` and the canary check's reads against
//! a real Prometheus.
//!
//! One Prometheus serves this whole test binary: 36 days of counters generated here (diurnal
//! traffic, known error bursts, a histogram whose bucket is written `le="0.30"`, a service
//! that stops reporting, one that goes idle, one that never existed, 300 fleet SLOs, services
//! with a canary track beside their stable series), turned into TSDB blocks by promtool,
//! plus the recording rules of `budgetgate rules` backfilled by promtool. Every test compares
//! what the real binary prints, or the library reads, with the generated counts.

mod support;

use budgetgate::api::{Duration, Indicator, Timestamp};
use budgetgate::index::ObjectKey;
use budgetgate::prom::query::{Events, TrackCounts, track_query};
use budgetgate::prom::{PromConfig, PromError, read_tracks};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use support::prometheus::*;

const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];
/// 2026-11-01T00:00:00Z → NOW: the elapsed part of the calendar month.
const MONTH_ELAPSED: i64 = 28 * DAY + 11 * HOUR;
const FLEET_SLOS: usize = 300;
const FLEET_SERVICES: usize = 30;

const POLICY: &str = r#"apiVersion: budgetgate.dev/v1alpha1
kind: ReliabilityPolicy
metadata: {name: platform}
spec:
  defaultTier: production
  rawQueryNamespaces: [search, ledger, shop]
  tiers:
    production:
      window: 30d
      bands:
        - {name: healthy,  minRemaining: 0.5,  plan: {steps: [20, 50, 100], pause: 2m}}
        - {name: caution,  minRemaining: 0.25, plan: {steps: [10, 25, 50, 100], pause: 5m}}
        - {name: critical, minRemaining: 0,    plan: {steps: [5, 10, 25, 50, 100], pause: 10m}}
    staging:
      enforcement: warn
      window: 7d
      bands:
        - {name: healthy, minRemaining: 0.25, plan: {steps: [50, 100], pause: 1m}}
        - {name: critical, minRemaining: 0, plan: {steps: [25, 100], pause: 2m}}
"#;

const NAMESPACES: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {budgetgate.dev/team: payments, budgetgate.dev/tier: production}}
---
apiVersion: v1
kind: Namespace
metadata: {name: search, labels: {budgetgate.dev/team: discovery, budgetgate.dev/tier: production}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ads-staging, labels: {budgetgate.dev/team: growth, budgetgate.dev/tier: staging}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ledger, labels: {budgetgate.dev/team: billing}}
"#;

fn ratio_slo(namespace: &str, name: &str, service: &str, objective: f64, extra: &str) -> String {
    format!(
        r#"apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  service: {service}
  objective: {objective}{extra}
  indicator:
    ratio:
      errors: 'http_requests_total{{namespace="{namespace}",service="{service}",code=~"5.."}}'
      total: 'http_requests_total{{namespace="{namespace}",service="{service}"}}'
"#
    )
}

fn scenario_slos() -> String {
    [
        ratio_slo("shop", "checkout-availability", "checkout", 99.9, ""),
        r#"apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: cart-latency, namespace: shop}
spec:
  service: cart
  objective: 99
  indicator:
    latency: {histogram: 'http_request_duration_seconds_bucket{namespace="shop",service="cart"}', threshold: "0.3"}
"#
        .to_owned(),
        r#"apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: query-availability, namespace: search}
spec:
  service: query
  objective: 99.9
  indicator:
    raw:
      errorQuery: 'sum(increase(search_errors_total{namespace="search"}[{{window}}]))'
      totalQuery: 'sum(increase(search_requests_total{namespace="search"}[{{window}}]))'
"#
        .to_owned(),
        ratio_slo("search", "ghost-availability", "ghost", 99.9, ""),
        ratio_slo("search", "vanishing-availability", "vanishing", 99.9, ""),
        ratio_slo("ads-staging", "banner-availability", "banner", 99.5, ""),
        ratio_slo(
            "ledger",
            "ledger-availability",
            "ledger",
            99.95,
            "\n  window: {calendar: month}",
        ),
    ]
    .join("---\n")
}

fn fleet_objective(i: usize) -> f64 {
    [
        99.0, 99.5, 99.9, 99.95, 99.8, 99.25, 99.6, 99.7, 99.85, 99.4,
    ][i / FLEET_SERVICES % 10]
}

fn fleet_slos() -> String {
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: fleet, labels: {budgetgate.dev/team: fleet}}\n";
    let slos = (0..FLEET_SLOS).map(|i| {
        ratio_slo(
            "fleet",
            &format!("slo-{i:03}"),
            &format!("svc-{:02}", i % FLEET_SERVICES),
            fleet_objective(i),
            "",
        )
    });
    std::iter::once(namespace.to_owned())
        .chain(slos)
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The generated history of every service above.
fn history(resolution: &Resolution) -> History {
    let mut h = History::default();
    let start = resolution.start();
    let slo = |namespace: &str, name: &str, objective, bad, total| SloTruth {
        namespace: namespace.into(),
        name: name.into(),
        objective,
        bad: Sum(bad),
        total: Sum(total),
    };

    // checkout: 0.02% errors, and an hour at 20% ten days ago: ~60% of the budget spent.
    let burst = (NOW - 10 * DAY, NOW - 10 * DAY + HOUR);
    let (ok, err) = ratio_service(
        &mut h,
        "shop",
        "checkout",
        |t| diurnal(1000.0, t).round() as u64,
        |t| {
            if t > burst.0 && t <= burst.1 {
                0.2
            } else {
                0.0002
            }
        },
        resolution,
    );
    h.slos.push(slo(
        "shop",
        "checkout-availability",
        99.9,
        vec![(err, 1)],
        vec![(ok, 1), (err, 1)],
    ));

    // cart: a latency histogram; 0.3% of requests are slower than 0.3s. The exporter writes
    // that bucket as le="0.30".
    let requests = counter(start, NOW, |t| diurnal(500.0, t).round() as u64);
    let bucket = |le: &str, values: Vec<u64>| Series {
        family: "http_request_duration_seconds".into(),
        histogram: true,
        name: "http_request_duration_seconds_bucket".into(),
        labels: vec![
            ("namespace".into(), "shop".into()),
            ("service".into(), "cart".into()),
            ("le".into(), le.into()),
        ],
        values,
        stops_at: None,
        start,
    };
    h.add(bucket("0.1", share(&requests, start, |_| 0.7)));
    let fast = h.add(bucket("0.30", share(&requests, start, |_| 0.997)));
    h.add(bucket("1", share(&requests, start, |_| 0.9995)));
    let inf = h.add(bucket("+Inf", requests.clone()));
    h.slos.push(slo(
        "shop",
        "cart-latency",
        99.0,
        vec![(inf, 1), (fast, -1)],
        vec![(inf, 1)],
    ));

    // query (raw PromQL): 0.01% errors, 3% for the last 50 minutes: burning now.
    let all = counter(start, NOW, |t| diurnal(800.0, t).round() as u64);
    let errors = share(&all, start, |t| {
        if t > NOW - 50 * MINUTE { 0.03 } else { 0.0001 }
    });
    let plain = |family: &str, values: Vec<u64>| Series {
        family: family.into(),
        histogram: false,
        name: format!("{family}_total"),
        labels: vec![("namespace".into(), "search".into())],
        values,
        stops_at: None,
        start,
    };
    let total = h.add(plain("search_requests", all));
    let bad = h.add(plain("search_errors", errors));
    h.slos.push(slo(
        "search",
        "query-availability",
        99.9,
        vec![(bad, 1)],
        vec![(total, 1)],
    ));

    // ghost: no series at all.
    h.slos
        .push(slo("search", "ghost-availability", 99.9, vec![], vec![]));

    // vanishing: stops reporting two hours before NOW.
    let (ok, err) = ratio_service(
        &mut h,
        "search",
        "vanishing",
        |t| diurnal(300.0, t).round() as u64,
        |_| 0.0005,
        resolution,
    );
    for i in [ok, err] {
        h.series[i].stops_at = Some(NOW - 2 * HOUR);
    }
    h.slos.push(slo(
        "search",
        "vanishing-availability",
        99.9,
        vec![(err, 1)],
        vec![(ok, 1), (err, 1)],
    ));

    let (ok, err) = ratio_service(
        &mut h,
        "ads-staging",
        "banner",
        |t| diurnal(200.0, t).round() as u64,
        |_| 0.002,
        resolution,
    );
    h.slos.push(slo(
        "ads-staging",
        "banner-availability",
        99.5,
        vec![(err, 1)],
        vec![(ok, 1), (err, 1)],
    ));

    // ledger: calendar month; idle (counters flat, still reported) for the last 6 hours.
    let (ok, err) = ratio_service(
        &mut h,
        "ledger",
        "ledger",
        |t| {
            if t > NOW - 6 * HOUR {
                0
            } else {
                diurnal(100.0, t).round() as u64
            }
        },
        |_| 0.0001,
        resolution,
    );
    h.slos.push(slo(
        "ledger",
        "ledger-availability",
        99.95,
        vec![(err, 1)],
        vec![(ok, 1), (err, 1)],
    ));

    // fleet: 30 services with different error ratios under 300 SLOs of different objectives.
    let mut services = Vec::new();
    for s in 0..FLEET_SERVICES {
        let ratio = 0.0001 * (1 + s % 7) as f64;
        let base = 50.0 + 10.0 * s as f64;
        services.push(ratio_service(
            &mut h,
            "fleet",
            &format!("svc-{s:02}"),
            move |t| diurnal(base, t).round() as u64,
            move |_| ratio,
            resolution,
        ));
    }
    for i in 0..FLEET_SLOS {
        let (ok, err) = services[i % FLEET_SERVICES];
        h.slos.push(slo(
            "fleet",
            &format!("slo-{i:03}"),
            fleet_objective(i),
            vec![(err, 1)],
            vec![(ok, 1), (err, 1)],
        ));
    }
    h
}

/// The generated truth of one SLO's canary and stable tracks.
struct TrackTruth {
    namespace: &'static str,
    name: &'static str,
    /// The SLO's indicator, as YAML.
    indicator: String,
    canary_bad: Sum,
    canary_total: Sum,
    stable_bad: Sum,
    stable_total: Sum,
}

impl TrackTruth {
    fn key(&self) -> ObjectKey {
        ObjectKey::new(self.namespace, self.name)
    }
}

/// Canary series beside stable ones, labelled `track="canary"` (the stable pods' series
/// have no track label): a ratio SLO, a latency SLO and a raw SLO with `{{track}}`, in
/// different namespaces. The canary started two hours ago and is worse than stable. Plus
/// checkout, which has no canary: its stable track is the whole service.
fn canary_history(h: &mut History, resolution: &Resolution) -> Vec<TrackTruth> {
    let start = resolution.start();
    let since_rollout = |per_minute: f64| {
        move |t: i64| {
            if t > NOW - 2 * HOUR {
                diurnal(per_minute, t).round() as u64
            } else {
                0
            }
        }
    };
    let canary = |h: &mut History, series: &[usize]| {
        for &i in series {
            h.series[i].labels.push(("track".into(), "canary".into()));
        }
    };
    let mut truths = Vec::new();

    // payments (ratio): 0.1% errors on stable, 2% on the canary.
    let (ok, err) = ratio_service(
        h,
        "shop",
        "payments",
        |t| diurnal(600.0, t).round() as u64,
        |_| 0.001,
        resolution,
    );
    let (canary_ok, canary_err) = ratio_service(
        h,
        "shop",
        "payments",
        since_rollout(60.0),
        |_| 0.02,
        resolution,
    );
    canary(h, &[canary_ok, canary_err]);
    truths.push(TrackTruth {
        namespace: "shop",
        name: "payments-availability",
        indicator: r#"ratio:
  errors: 'http_requests_total{namespace="shop",service="payments",code=~"5.."}'
  total: 'http_requests_total{namespace="shop",service="payments"}'"#
            .into(),
        canary_bad: Sum(vec![(canary_err, 1)]),
        canary_total: Sum(vec![(canary_ok, 1), (canary_err, 1)]),
        stable_bad: Sum(vec![(err, 1)]),
        stable_total: Sum(vec![(ok, 1), (err, 1)]),
    });

    // suggest (latency): 0.5% slower than 0.3s on stable, 4% on the canary.
    let buckets = |h: &mut History, requests: Vec<u64>, fast: f64| {
        let bucket = |le: &str, values: Vec<u64>| Series {
            family: "http_request_duration_seconds".into(),
            histogram: true,
            name: "http_request_duration_seconds_bucket".into(),
            labels: vec![
                ("namespace".into(), "search".into()),
                ("service".into(), "suggest".into()),
                ("le".into(), le.into()),
            ],
            values,
            stops_at: None,
            start,
        };
        let good = h.add(bucket("0.3", share(&requests, start, |_| fast)));
        let all = h.add(bucket("+Inf", requests));
        (good, all)
    };
    let (good, all) = buckets(
        h,
        counter(start, NOW, |t| diurnal(400.0, t).round() as u64),
        0.995,
    );
    let (canary_good, canary_all) = buckets(h, counter(start, NOW, since_rollout(40.0)), 0.96);
    canary(h, &[canary_good, canary_all]);
    truths.push(TrackTruth {
        namespace: "search",
        name: "suggest-latency",
        indicator: r#"latency: {histogram: 'http_request_duration_seconds_bucket{namespace="search",service="suggest"}', threshold: "0.3"}"#.into(),
        canary_bad: Sum(vec![(canary_all, 1), (canary_good, -1)]),
        canary_total: Sum(vec![(canary_all, 1)]),
        stable_bad: Sum(vec![(all, 1), (good, -1)]),
        stable_total: Sum(vec![(all, 1)]),
    });

    // postings (raw PromQL with {{track}}): 0.2% failures on stable, 1% on the canary.
    let plain = |h: &mut History, family: &str, values: Vec<u64>| {
        h.add(Series {
            family: family.into(),
            histogram: false,
            name: format!("{family}_total"),
            labels: vec![("namespace".into(), "ledger".into())],
            values,
            stops_at: None,
            start,
        })
    };
    let postings = counter(start, NOW, |t| diurnal(300.0, t).round() as u64);
    let failures = share(&postings, start, |_| 0.002);
    let (total, failed) = (
        plain(h, "ledger_postings", postings),
        plain(h, "ledger_posting_failures", failures),
    );
    let postings = counter(start, NOW, since_rollout(30.0));
    let failures = share(&postings, start, |_| 0.01);
    let (canary_total, canary_failed) = (
        plain(h, "ledger_postings", postings),
        plain(h, "ledger_posting_failures", failures),
    );
    canary(h, &[canary_total, canary_failed]);
    truths.push(TrackTruth {
        namespace: "ledger",
        name: "posting-availability",
        indicator: r#"raw:
  errorQuery: 'sum(increase(ledger_posting_failures_total{namespace="ledger",{{track}}}[{{window}}]))'
  totalQuery: 'sum(increase(ledger_postings_total{namespace="ledger",{{track}}}[{{window}}]))'"#
            .into(),
        canary_bad: Sum(vec![(canary_failed, 1)]),
        canary_total: Sum(vec![(canary_total, 1)]),
        stable_bad: Sum(vec![(failed, 1)]),
        stable_total: Sum(vec![(total, 1)]),
    });

    // checkout: no canary series at all.
    let checkout = h.slo("shop", "checkout-availability");
    truths.push(TrackTruth {
        namespace: "shop",
        name: "checkout-availability",
        indicator: r#"ratio:
  errors: 'http_requests_total{namespace="shop",service="checkout",code=~"5.."}'
  total: 'http_requests_total{namespace="shop",service="checkout"}'"#
            .into(),
        canary_bad: Sum::default(),
        canary_total: Sum::default(),
        stable_bad: checkout.bad.clone(),
        stable_total: checkout.total.clone(),
    });
    truths
}

fn period_of(slo: &SloTruth) -> i64 {
    match slo.namespace.as_str() {
        "ads-staging" => 7 * DAY,
        "ledger" => MONTH_ELAPSED,
        _ => 30 * DAY,
    }
}

struct Server {
    url: String,
    root: PathBuf,
    history: History,
    tracks: Vec<TrackTruth>,
}

impl Server {
    fn policy(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The generated counts as a BudgetSnapshot file, for `status --budgets`.
    fn snapshot(&self, name: &str, namespaces: &[&str]) -> PathBuf {
        let mut snapshot = self.history.snapshot(&WINDOWS, period_of);
        if let Some(slos) = snapshot["slos"].as_array_mut() {
            slos.retain(|s| namespaces.iter().any(|ns| s["namespace"] == *ns));
        }
        let path = self.root.join(format!("{name}-snapshot.json"));
        std::fs::write(&path, snapshot.to_string()).expect("write the snapshot");
        path
    }
}

fn write_policy(dir: &Path, slos: &str) {
    std::fs::create_dir_all(dir).expect("create a policy directory");
    std::fs::write(dir.join("policy.yaml"), POLICY).expect("write policy.yaml");
    std::fs::write(dir.join("namespaces.yaml"), NAMESPACES).expect("write namespaces.yaml");
    std::fs::write(dir.join("slos.yaml"), slos).expect("write slos.yaml");
}

/// The Prometheus of this test binary, set up once.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        require_prometheus();
        let root = temp_dir("prom-tests");
        let data = root.join("data");
        let resolution = Resolution::tests();
        let mut history = history(&resolution);
        let tracks = canary_history(&mut history, &resolution);
        let openmetrics = root.join("history.om");
        history.write_openmetrics(&openmetrics, &resolution);
        create_blocks(&openmetrics, &data);
        std::fs::remove_file(&openmetrics).expect("remove the OpenMetrics file");

        write_policy(&root.join("scenario"), &scenario_slos());
        write_policy(&root.join("fleet"), &fleet_slos());
        let broken = format!(
            "{}---\n{}",
            ratio_slo("shop", "checkout-availability", "checkout", 99.9, ""),
            r#"apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: typo, namespace: shop}
spec:
  service: typo
  objective: 99.9
  indicator:
    raw:
      # Parses, but this Prometheus has no such function: rejected at query time.
      errorQuery: 'sum(mad_over_time(search_errors_total[{{window}}]))'
      totalQuery: 'sum(increase(search_requests_total[{{window}}]))'
"#
        );
        write_policy(&root.join("broken"), &broken);
        // A team's SLO that names another team's series: confined to its own namespace.
        write_policy(
            &root.join("confined"),
            r#"apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: thief, namespace: shop}
spec:
  service: thief
  objective: 99.9
  indicator:
    ratio:
      errors: 'search_errors_total{namespace="search"}'
      total: 'search_requests_total'
---
apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {name: query-availability, namespace: search}
spec:
  service: query
  objective: 99.9
  indicator:
    ratio:
      errors: 'search_errors_total'
      total: 'search_requests_total'
"#,
        );

        // The scenario's recording rules, evaluated by promtool at exactly NOW. Prometheus
        // (and promtool) evaluate a group at an offset within its interval hashed from its
        // name, so a 1m group records at some second before NOW, where the windows no longer
        // start and end on samples. An interval of 1ms puts an evaluation on NOW itself
        // (promtool then evaluates every millisecond of [NOW-1s, NOW+1s]).
        let rules = root.join("rules.yaml");
        let out = budgetgate(&[
            "rules",
            "--policy",
            &root.join("scenario").display().to_string(),
        ]);
        assert!(out.status.success(), "budgetgate rules: {}", stderr(&out));
        let mut file: Value = serde_yaml_ng::from_slice(&out.stdout).expect("rules are YAML");
        for group in file["groups"].as_array_mut().into_iter().flatten() {
            group["interval"] = json!("1ms");
        }
        let yaml = serde_yaml_ng::to_string(&file).expect("rules as YAML");
        std::fs::write(&rules, yaml).expect("write the rules");
        let rule_blocks = root.join("rule-blocks");
        {
            let raw = Prometheus::start(&data);
            backfill_rules(&raw.url, &rules, NOW - 1, NOW + 1, &rule_blocks);
        }
        move_blocks(&rule_blocks, &data);
        let url = Prometheus::start_for_process(&data, &root);
        Server {
            url,
            root,
            history,
            tracks,
        }
    })
}

fn budgetgate(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_budgetgate"));
    for (key, _) in std::env::vars() {
        let proxy = key.to_ascii_lowercase().ends_with("_proxy");
        if key.starts_with("BUDGETGATE_") || proxy {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the budgetgate binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `status -o json` plus the JSON log line that reports the requests sent.
fn status(args: &[&str]) -> (Value, Option<u64>) {
    let mut all = vec![
        "--log-format",
        "json",
        "status",
        "--now",
        NOW_RFC3339,
        "-o",
        "json",
    ];
    all.extend_from_slice(args);
    let out = budgetgate(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status failed: {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("status prints JSON");
    let requests = stderr(&out)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "read SLO counts from Prometheus")
        .and_then(|line| line["fields"]["requests"].as_u64());
    (report, requests)
}

fn from_prometheus(policy: &str, extra: &[&str]) -> (Value, u64) {
    let server = server();
    let policy = server.policy(policy).display().to_string();
    let mut args = vec![
        "--policy",
        policy.as_str(),
        "--prometheus",
        server.url.as_str(),
    ];
    args.extend_from_slice(extra);
    let (report, requests) = status(&args);
    (report, requests.expect("the request count is logged"))
}

fn from_snapshot(policy: &str, namespaces: &[&str]) -> Value {
    let server = server();
    let snapshot = server.snapshot(policy, namespaces).display().to_string();
    let policy = server.policy(policy).display().to_string();
    status(&["--policy", &policy, "--budgets", &snapshot]).0
}

/// Compares two reports: equal shapes, strings and nulls; numbers within `tolerance(path)`
/// relative to the larger (for `remaining`, of the spent part `1 − remaining`).
fn assert_close(got: &Value, want: &Value, path: &str, tolerance: &dyn Fn(&str) -> f64) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (mut g, mut w) = (
                g.as_f64().unwrap_or(f64::NAN),
                w.as_f64().unwrap_or(f64::NAN),
            );
            if path.ends_with(".remaining") {
                (g, w) = (1.0 - g, 1.0 - w);
            }
            let scale = g.abs().max(w.abs()).max(1e-12);
            assert!(
                (g - w).abs() <= tolerance(path) * scale,
                "{path}: got {g}, want {w}"
            );
        }
        (Value::Object(g), Value::Object(w)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(g), keys(w), "{path}: keys");
            for (k, v) in w {
                assert_close(&g[k], v, &format!("{path}.{k}"), tolerance);
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: length");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                let name = w["name"].as_str().or(w["team"].as_str()).unwrap_or("");
                assert_close(g, w, &format!("{path}[{i}:{name}]"), tolerance);
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

fn exact(_: &str) -> f64 {
    1e-9
}

fn slo<'a>(report: &'a Value, namespace: &str, name: &str) -> &'a Value {
    report["teams"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["slos"].as_array().into_iter().flatten())
        .find(|s| s["namespace"] == namespace && s["name"] == name)
        .unwrap_or_else(|| panic!("no SLO {namespace}/{name} in {report}"))
}

fn team<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["teams"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["team"] == name)
        .unwrap_or_else(|| panic!("no team {name} in {report}"))
}

fn close(got: &Value, want: f64, tolerance: f64) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{got} is not a number (want {want})"));
    assert!(
        (got - want).abs() <= tolerance * want.abs().max(1e-12),
        "got {got}, want {want}"
    );
}

/// `(bad, total)` of an SLO over `seconds` before NOW, as generated.
fn counts(namespace: &str, name: &str, seconds: i64) -> (f64, f64) {
    let h = &server().history;
    h.counts(h.slo(namespace, name), seconds, NOW)
        .unwrap_or_else(|| panic!("{namespace}/{name} has no data over {seconds}s"))
}

fn burn((bad, total): (f64, f64), objective: f64) -> f64 {
    bad / (total * (100.0 - objective) / 100.0)
}

const SCENARIO: [&str; 4] = ["shop", "search", "ads-staging", "ledger"];

#[test]
fn status_from_prometheus_matches_the_generated_counts() {
    let (report, requests) = from_prometheus("scenario", &[]);
    // Ranges: 7 burn windows, 30d, 7d and the month so far; one union per range and count.
    assert_eq!(requests, 10 * 2);

    // checkout: the burst ten days ago left it in caution.
    let checkout = slo(&report, "shop", "checkout-availability");
    let period = counts("shop", "checkout-availability", 30 * DAY);
    close(&checkout["remaining"], 1.0 - burn(period, 99.9), 1e-12);
    assert!(
        (0.25..0.5).contains(&checkout["remaining"].as_f64().unwrap_or(0.0)),
        "{checkout}"
    );
    assert_eq!(checkout["state"], "Caution");
    assert_eq!(checkout["band"], "caution");
    for w in WINDOWS {
        close(
            &checkout["burnRates"][w],
            burn(counts("shop", "checkout-availability", seconds(w)), 99.9),
            1e-12,
        );
    }

    // cart: latency against the bucket written le="0.30": 0.3% slow at 99% is a burn of 0.3.
    let cart = slo(&report, "shop", "cart-latency");
    let cart_period = counts("shop", "cart-latency", 30 * DAY);
    close(&cart["remaining"], 1.0 - burn(cart_period, 99.0), 1e-12);
    close(
        &cart["burnRates"]["1h"],
        burn(counts("shop", "cart-latency", HOUR), 99.0),
        1e-12,
    );
    assert_eq!(cart["state"], "Healthy");

    // payments: events summed over both SLOs, never ratios averaged.
    let payments = team(&report, "payments");
    let allowed = 0.001 * period.1 + 0.01 * cart_period.1;
    close(
        &payments["remaining"],
        1.0 - (period.0 + cart_period.0) / allowed,
        1e-12,
    );
    let (c1h, l1h) = (
        counts("shop", "checkout-availability", HOUR),
        counts("shop", "cart-latency", HOUR),
    );
    close(
        &payments["burnRates"]["1h"],
        (c1h.0 + l1h.0) / (0.001 * c1h.1 + 0.01 * l1h.1),
        1e-12,
    );
    // The busy, healthy cart outweighs checkout's burst in events.
    assert_eq!(payments["state"], "Healthy");

    // query: 3% errors for the last 50 minutes is burning: page-fast (1h and 5m above 14.4)
    // fires, and any other pair whose two windows exceed its factor.
    let query = slo(&report, "search", "query-availability");
    assert_eq!(query["state"], "Burning");
    let query_burn = |w: &str| burn(counts("search", "query-availability", seconds(w)), 99.9);
    let firing: Vec<&str> = [
        ("page-fast", "1h", "5m", 14.4),
        ("page-slow", "6h", "30m", 6.0),
        ("ticket-fast", "1d", "2h", 3.0),
        ("ticket-slow", "3d", "6h", 1.0),
    ]
    .iter()
    .filter(|(_, long, short, factor)| query_burn(long) > *factor && query_burn(short) > *factor)
    .map(|(name, ..)| *name)
    .collect();
    assert_eq!(firing[0], "page-fast");
    assert_eq!(query["alerts"], json!(firing));
    close(
        &query["burnRates"]["5m"],
        burn(counts("search", "query-availability", 5 * MINUTE), 99.9),
        1e-12,
    );
    close(
        &query["burnRates"]["1h"],
        burn(counts("search", "query-availability", HOUR), 99.9),
        1e-12,
    );

    // ghost: the query returns nothing: Unknown, never zero errors.
    let ghost = slo(&report, "search", "ghost-availability");
    assert_eq!(ghost["remaining"], Value::Null);
    assert_eq!(ghost["state"], "Unknown");
    for w in WINDOWS {
        assert_eq!(ghost["burnRates"][w], Value::Null, "{w}");
    }
    // …and does not make its team Unknown: the team sums the SLOs that have data (query and
    // vanishing) and leaves ghost out; query's page burn is the team's.
    let discovery = team(&report, "discovery");
    assert_eq!(discovery["state"], "Burning");
    let (query_bad, query_total) = counts("search", "query-availability", 30 * DAY);
    let (gone_bad, gone_total) = counts("search", "vanishing-availability", 30 * DAY);
    let spent = (query_bad + gone_bad) / ((query_total + gone_total) * 0.001);
    let remaining = discovery["remaining"]
        .as_f64()
        .expect("the team's remaining is known");
    // Prometheus extrapolates vanishing's counts past its last sample.
    assert!(
        ((1.0 - remaining) - spent).abs() < 0.01 * spent,
        "{remaining} vs 1 - {spent}"
    );
    assert!(report["platform"]["production"]["remaining"].is_number());

    // ledger: idle for six hours is zero traffic (burn 0), not missing data.
    let ledger = slo(&report, "ledger", "ledger-availability");
    for w in ["5m", "30m", "1h", "2h", "6h"] {
        assert_eq!(ledger["burnRates"][w], json!(0.0), "{w}");
    }
    close(
        &ledger["remaining"],
        1.0 - burn(
            counts("ledger", "ledger-availability", MONTH_ELAPSED),
            99.95,
        ),
        1e-12,
    );
    assert_eq!(team(&report, "growth")["state"], "Healthy");
}

#[test]
fn a_series_that_disappears_leaves_its_recent_windows_unknown() {
    let (report, _) = from_prometheus("scenario", &[]);
    let vanishing = slo(&report, "search", "vanishing-availability");
    assert_eq!(vanishing["state"], "Unknown");
    for w in ["5m", "30m", "1h", "2h"] {
        assert_eq!(vanishing["burnRates"][w], Value::Null, "{w}");
    }
    // Longer windows still hold its samples; Prometheus extrapolates past the last one.
    for w in ["6h", "1d", "3d"] {
        close(
            &vanishing["burnRates"][w],
            burn(counts("search", "vanishing-availability", seconds(w)), 99.9),
            0.01,
        );
    }
    let spent = burn(counts("search", "vanishing-availability", 30 * DAY), 99.9);
    let remaining = vanishing["remaining"].as_f64().expect("remaining is known");
    assert!(
        ((1.0 - remaining) - spent).abs() < 0.01 * spent,
        "{remaining} vs 1 - {spent}"
    );
}

#[test]
fn status_from_prometheus_equals_status_from_a_snapshot_of_the_same_counts() {
    let (got, _) = from_prometheus("scenario", &[]);
    let want = from_snapshot("scenario", &SCENARIO);
    // Prometheus extrapolates vanishing's counts: its own numbers, and the aggregates that
    // sum them (its team's, the production platform's), are close rather than exact.
    let vanishing = |path: &str| {
        let team_level = path.contains(":discovery]") && !path.contains(".slos[");
        if path.contains("vanishing")
            || team_level
            || path.starts_with("status.platform.production")
        {
            0.01
        } else {
            1e-9
        }
    };
    assert_close(&got, &want, "status", &vanishing);

    // The table too, but for the row whose numbers Prometheus extrapolates.
    let server = server();
    let policy = server.policy("scenario").display().to_string();
    let snapshot = server.snapshot("scenario", &SCENARIO).display().to_string();
    let table = |source: &[&str]| {
        let mut args = vec!["status", "--policy", policy.as_str(), "--now", NOW_RFC3339];
        args.extend_from_slice(source);
        let out = budgetgate(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains("vanishing"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let got = table(&["--prometheus", &server.url]);
    assert_eq!(got, table(&["--budgets", &snapshot]));
    assert_eq!(got[0], "budgets evaluated at 2026-11-29T11:00:00Z");
    assert!(got[1].starts_with("TEAM / SLO"), "{}", got[1]);
}

#[test]
fn three_hundred_slos_read_in_requests_per_window_not_per_slo() {
    let want = from_snapshot("fleet", &["fleet"]);
    let (got, requests) = from_prometheus("fleet", &["--prometheus-batch-size", "300"]);
    assert_close(&got, &want, "status", &exact);
    // 7 windows + 30d, bad and total, one union of all 300 SLOs each.
    assert_eq!(requests, 8 * 2);
    let (got, requests) = from_prometheus("fleet", &[]);
    assert_close(&got, &want, "status", &exact);
    // The default batch of 250: 8 × 2 × ceil(300 / 250).
    assert_eq!(requests, 8 * 2 * 2);
    let (got, requests) = from_prometheus("fleet", &["--prometheus-batch-size", "64"]);
    assert_close(&got, &want, "status", &exact);
    // requests = windows × 2 × ceil(SLOs / batch size) = 8 × 2 × 5.
    assert_eq!(requests, 8 * 2 * 5);
    assert_eq!(
        team(&got, "fleet")["slos"].as_array().map(Vec::len),
        Some(FLEET_SLOS)
    );
}

#[test]
fn recorded_series_give_the_same_budgets_as_direct_queries() {
    let (direct, direct_requests) = from_prometheus("scenario", &["--prometheus-batch-size", "1"]);
    let (recorded, recorded_requests) = from_prometheus(
        "scenario",
        &["--prometheus-batch-size", "1", "--use-recording-rules"],
    );
    assert_close(&recorded, &direct, "status", &exact);
    let checkout = slo(&recorded, "shop", "checkout-availability");
    close(
        &checkout["remaining"],
        1.0 - burn(counts("shop", "checkout-availability", 30 * DAY), 99.9),
        1e-12,
    );
    // Direct, one SLO per request: 7 windows × 7 SLOs + 30d × 5 + 7d × 1 + month × 1, × 2.
    assert_eq!(direct_requests, (7 * 7 + 5 + 1 + 1) * 2);
    // Recorded: one query per range and count whatever the SLOs (7 windows, 30d, 7d), plus
    // the calendar month read directly.
    assert_eq!(recorded_requests, 9 * 2 + 2);
}

#[test]
fn one_slo_with_bad_promql_is_unknown_and_the_others_are_read() {
    let server = server();
    let policy = server.policy("broken").display().to_string();
    let out = budgetgate(&[
        "status",
        "--policy",
        &policy,
        "--prometheus",
        &server.url,
        "--now",
        NOW_RFC3339,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let typo = slo(&report, "shop", "typo");
    assert_eq!(typo["state"], "Unknown");
    assert_eq!(typo["remaining"], Value::Null);
    let checkout = slo(&report, "shop", "checkout-availability");
    close(
        &checkout["remaining"],
        1.0 - burn(counts("shop", "checkout-availability", 30 * DAY), 99.9),
        1e-12,
    );
    assert!(
        stderr(&out).contains("shop/typo: Prometheus rejected its query: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_slo_cannot_read_or_disturb_another_namespaces_series() {
    let server = server();
    let policy = server.policy("confined").display().to_string();
    let out = budgetgate(&[
        "status",
        "--policy",
        &policy,
        "--prometheus",
        &server.url,
        "--now",
        NOW_RFC3339,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // shop's SLO names search's series: confined to namespace shop, it reads nothing.
    let thief = slo(&report, "shop", "thief");
    assert_eq!(
        (thief["state"].clone(), thief["remaining"].clone()),
        (json!("Unknown"), Value::Null)
    );
    // search's own SLO, written without a namespace matcher, reads exactly its own counts.
    let own = slo(&report, "search", "query-availability");
    close(
        &own["remaining"],
        1.0 - burn(counts("search", "query-availability", 30 * DAY), 99.9),
        1e-12,
    );
}

#[test]
fn prometheus_down_is_a_clear_error_with_exit_code_2() {
    let port = free_port();
    let out = budgetgate(&[
        "status",
        "--policy",
        "manifests/samples",
        "--prometheus",
        &format!("http://127.0.0.1:{port}"),
        "--now",
        NOW_RFC3339,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let error = stderr(&out);
    let last = error.lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!(
            "error: Prometheus at http://127.0.0.1:{port} did not answer the "
        )),
        "{last}"
    );
    assert!(last.contains(" query after 3 attempts: "), "{last}");
    assert!(last.contains("Connection refused"), "{last}");
}

#[test]
fn a_prometheus_that_never_answers_times_out_after_the_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Accepts and holds every connection without answering (at most 64, then stops).
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(64).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let out = budgetgate(&[
        "status",
        "--policy",
        "manifests/samples",
        "--prometheus",
        &format!("http://127.0.0.1:{port}"),
        "--prometheus-timeout",
        "1s",
        "--prometheus-retries",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let error = stderr(&out);
    let last = error.lines().last().unwrap_or("");
    assert!(
        last.ends_with(" query after 2 attempts: no answer within 1s"),
        "{last}"
    );
}

#[test]
fn generated_rules_pass_promtool() {
    require_prometheus();
    let dir = temp_dir("rules-check");
    for (name, policy) in [
        ("samples", PathBuf::from("manifests/samples")),
        ("scenario", dir.join("scenario")),
    ] {
        if name == "scenario" {
            write_policy(&policy, &scenario_slos());
        }
        let out = budgetgate(&["rules", "--policy", &policy.display().to_string()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, &out.stdout).expect("write rules");
        let check = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .expect("promtool runs");
        assert!(
            check.status.success(),
            "promtool check rules {name}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let rules: Value = serde_yaml_ng::from_slice(&out.stdout).expect("YAML");
        let count: usize = rules["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| g["rules"].as_array().map_or(0, Vec::len))
            .sum();
        let found = format!("SUCCESS: {count} rules found");
        assert!(
            String::from_utf8_lossy(&check.stdout).contains(&found),
            "{name}: {found}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn prometheusrule_format_wraps_the_same_groups() {
    let rules = budgetgate(&["rules", "--policy", "manifests/samples"]);
    let wrapped = budgetgate(&[
        "rules",
        "--policy",
        "manifests/samples",
        "--format",
        "prometheusrule",
    ]);
    assert_eq!(wrapped.status.code(), Some(0), "{}", stderr(&wrapped));
    let rules: Value = serde_yaml_ng::from_slice(&rules.stdout).expect("YAML");
    let wrapped: Value = serde_yaml_ng::from_slice(&wrapped.stdout).expect("YAML");
    assert_eq!(wrapped["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(wrapped["kind"], "PrometheusRule");
    assert_eq!(wrapped["metadata"]["name"], "budgetgate-slos");
    assert_eq!(wrapped["spec"], rules);
    // 5 SLOs: 4 with a rolling period get a second group.
    assert_eq!(rules["groups"].as_array().map(Vec::len), Some(9));
}

#[test]
fn rules_and_status_help_show_examples() {
    for (command, example) in [
        (
            "rules",
            "budgetgate rules --policy manifests/samples > budgetgate-rules.yaml",
        ),
        (
            "status",
            "budgetgate status --policy manifests/samples --prometheus http://127.0.0.1:9090",
        ),
    ] {
        let out = budgetgate(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(example),
            "{command} --help lacks {example:?}:\n{help}"
        );
    }
}

#[test]
fn status_takes_exactly_one_source_of_counts() {
    let both = budgetgate(&[
        "status",
        "--policy",
        "manifests/samples",
        "--budgets",
        "manifests/samples/budgets.json",
        "--prometheus",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(both.status.code(), Some(2));
    assert!(
        stderr(&both).contains(
            "the argument '--budgets <BUDGETS>' cannot be used with '--prometheus <PROMETHEUS>'"
        ),
        "{}",
        stderr(&both)
    );
    let neither = budgetgate(&["status", "--policy", "manifests/samples"]);
    assert_eq!(neither.status.code(), Some(2));
    assert!(
        stderr(&neither).contains("the following required arguments were not provided"),
        "{}",
        stderr(&neither)
    );
}

/// The canary check window of the tests: whole minutes before NOW, so increase() is exact.
const CHECK: i64 = 10 * MINUTE;

fn check_window() -> Duration {
    Duration::from_seconds(CHECK as u64)
}

fn now() -> Timestamp {
    NOW_RFC3339.parse().expect("NOW is a timestamp")
}

/// An indicator's events, unconfined (the query shapes are what these tests read).
fn events(indicator: &str) -> Result<Events, String> {
    let indicator: Indicator = serde_yaml_ng::from_str(indicator).expect("an indicator");
    Events::from_indicator(
        &indicator,
        &budgetgate::prom::query::Confinement {
            namespace: "any",
            label: "namespace",
            cross_namespace: true,
            raw: true,
        },
    )
}

/// The SLOs of the canary series, plus a raw SLO without `{{track}}` (the scenario's query).
fn canary_slos(server: &Server) -> Vec<(ObjectKey, Result<Events, String>)> {
    let mut slos: Vec<_> = server
        .tracks
        .iter()
        .map(|t| (t.key(), events(&t.indicator)))
        .collect();
    slos.push((
        ObjectKey::new("search", "query-availability"),
        events(
            r#"raw:
  errorQuery: 'sum(increase(search_errors_total{namespace="search"}[{{window}}]))'
  totalQuery: 'sum(increase(search_requests_total{namespace="search"}[{{window}}]))'"#,
        ),
    ));
    slos
}

/// The generated counts of an SLO's tracks over the check window (a track without series: 0).
fn track_counts(truth: &TrackTruth) -> TrackCounts {
    let h = &server().history;
    let count = |sum: &Sum| {
        if sum.0.is_empty() {
            0.0
        } else {
            h.sum(sum, NOW - CHECK, NOW).expect("generated data")
        }
    };
    TrackCounts {
        canary_bad: count(&truth.canary_bad),
        canary_total: count(&truth.canary_total),
        stable_bad: count(&truth.stable_bad),
        stable_total: count(&truth.stable_total),
    }
}

#[tokio::test]
async fn a_canary_check_reads_both_tracks_of_every_slo_in_one_request() {
    let server = server();
    let query = track_query(&canary_slos(server), "track", None, &check_window());
    assert_eq!(
        query.whole_service,
        [ObjectKey::new("search", "query-availability")]
    );
    assert!(query.invalid.is_empty(), "{:?}", query.invalid);
    assert_eq!(query.members.len(), server.tracks.len());

    let reading = read_tracks(&PromConfig::new(&server.url), &query, now())
        .await
        .expect("Prometheus answers");
    assert_eq!(reading.requests, 1);
    let want: BTreeMap<_, _> = server
        .tracks
        .iter()
        .map(|t| (t.key(), Ok(track_counts(t))))
        .collect();
    assert_eq!(reading.counts, want);

    // The data tells the tracks apart: each canary has traffic and is worse than stable…
    for truth in &server.tracks[..3] {
        let c = track_counts(truth);
        assert!(
            c.canary_bad > 0.0 && c.canary_total > 0.0,
            "{}: {c:?}",
            truth.name
        );
        assert!(
            c.canary_bad / c.canary_total > 2.0 * c.stable_bad / c.stable_total,
            "{}: {c:?}",
            truth.name
        );
    }
    // …and checkout, with no canary series, is all stable: its whole-service counts.
    let checkout = &reading.counts[&ObjectKey::new("shop", "checkout-availability")];
    let whole = counts("shop", "checkout-availability", CHECK);
    assert_eq!(
        checkout,
        &Ok(TrackCounts {
            stable_bad: whole.0,
            stable_total: whole.1,
            ..TrackCounts::default()
        })
    );
}

#[tokio::test]
async fn one_slo_with_bad_promql_leaves_the_other_canary_counts_read() {
    let server = server();
    let mut slos = canary_slos(server);
    let typo = ObjectKey::new("shop", "typo-availability");
    slos.push((
        typo.clone(),
        // Parses, but this Prometheus has no such function: rejected at query time.
        events(
            r#"raw:
  errorQuery: 'sum(mad_over_time(http_requests_total{namespace="shop",service="payments",{{track}}}[{{window}}]))'
  totalQuery: 'sum(increase(http_requests_total{namespace="shop",service="payments",{{track}}}[{{window}}]))'"#,
        ),
    ));
    let query = track_query(&slos, "track", None, &check_window());
    assert_eq!(query.members.len(), 5);
    let reading = read_tracks(&PromConfig::new(&server.url), &query, now())
        .await
        .expect("Prometheus answers");
    // Rejected whole, then cut in halves down to the typo: 5 → (2 ok, 3) → (1 ok, 2) → (1 ok,
    // 1 rejected): 1 + 2 + 2 + 2 requests.
    assert_eq!(reading.requests, 7);
    let why = reading.counts[&typo]
        .clone()
        .expect_err("the typo is rejected");
    assert!(
        why.starts_with("Prometheus rejected its query: ") && why.contains("mad_over_time"),
        "{why}"
    );
    for truth in &server.tracks {
        assert_eq!(
            reading.counts[&truth.key()],
            Ok(track_counts(truth)),
            "{}",
            truth.name
        );
    }
    assert_eq!(reading.counts.len(), server.tracks.len() + 1);
}

#[tokio::test]
async fn a_canary_check_without_prometheus_is_unavailable_not_bad() {
    let port = free_port();
    let config = PromConfig {
        retries: 1,
        backoff: std::time::Duration::from_millis(10),
        ..PromConfig::new(format!("http://127.0.0.1:{port}"))
    };
    let query = track_query(
        &[(
            ObjectKey::new("shop", "payments-availability"),
            events("ratio: {errors: 'e{code=\"500\"}', total: e}"),
        )],
        "track",
        None,
        &check_window(),
    );
    match read_tracks(&config, &query, now()).await {
        Err(PromError::Unavailable {
            url,
            query,
            attempts,
            reason,
        }) => {
            assert_eq!(url, format!("http://127.0.0.1:{port}"));
            assert_eq!(query, "canary check (1 SLOs)");
            assert_eq!(attempts, 2);
            assert!(reason.contains("Connection refused"), "{reason}");
        }
        other => panic!("want Unavailable, got {other:?}"),
    }
}
