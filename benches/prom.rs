//! One budget evaluation against a real Prometheus: 1,000 SLOs × the 7 burn windows of the
//! default alert pairs, plus the 30d period. Direct queries on the SLOs' own series (two
//! batch sizes) against the recorded series of `budgetgate rules`. Prints the wall time per
//! evaluation (read + judge) and the HTTP requests sent.
//!
//! ```sh
//! cargo bench --bench prom          # needs prometheus and promtool (./test installs them)
//! ```
//!
//! The history (2,000 counter series, 31 days) is generated once and cached as a TSDB in
//! `target/prom-bench-*`; later runs only start Prometheus on it. Samples are written every
//! minute for the last 6h, every 5 minutes up to 3d6h and hourly before: a 30d direct query
//! scans ~1,900 samples per series, where a real 1m scrape would hold ~43,000, so direct
//! queries here are cheaper than in production. The recorded series are written straight
//! into the TSDB under the names and labels `budgetgate rules` gives them (promtool's rule
//! backfill writes one block per rule: ~19,000 blocks for 1,000 SLOs); the tests check the
//! rules themselves against Prometheus.

#[path = "../tests/support/prometheus.rs"]
mod support;

use budgetgate::api::Timestamp;
use budgetgate::index::evaluate_budgets;
use budgetgate::prom::rules::{Metric, increase_metric};
use budgetgate::prom::{PromConfig, evaluate_blocking};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const SLOS: usize = 1_000;
const TEAMS: usize = 10;
const RUNS: usize = 7;
/// Bump when the generated data changes: the cached TSDB is rebuilt.
const DATA_VERSION: &str = "v1";
const RANGES: [&str; 8] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"];

fn resolution() -> Resolution {
    Resolution {
        bands: vec![
            (6 * HOUR + 5 * MINUTE, MINUTE),
            (3 * DAY + 6 * HOUR, 5 * MINUTE),
        ],
        coarse: HOUR,
        history: 31 * DAY,
    }
}

fn team(i: usize) -> usize {
    i % TEAMS
}

fn write_policy(dir: &Path) {
    std::fs::create_dir_all(dir).expect("policy directory");
    let policy = r#"apiVersion: budgetgate.dev/v1alpha1
kind: ReliabilityPolicy
metadata: {name: platform}
spec:
  tiers:
    production:
      bands:
        - {name: healthy,  minRemaining: 0.5,  plan: {steps: [20, 50, 100], pause: 2m}}
        - {name: caution,  minRemaining: 0.25, plan: {steps: [10, 25, 50, 100], pause: 5m}}
        - {name: critical, minRemaining: 0,    plan: {steps: [5, 10, 25, 50, 100], pause: 10m}}
"#;
    std::fs::write(dir.join("policy.yaml"), policy).expect("policy.yaml");
    let mut docs: Vec<String> = (0..TEAMS)
        .map(|t| {
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-{t}, labels: {{budgetgate.dev/team: team-{t}, budgetgate.dev/tier: production}}}}\n"
            )
        })
        .collect();
    for i in 0..SLOS {
        let ns = format!("team-{}", team(i));
        docs.push(format!(
            r#"apiVersion: budgetgate.dev/v1alpha1
kind: ServiceLevelObjective
metadata: {{name: slo-{i:04}, namespace: {ns}}}
spec:
  service: svc-{i:04}
  objective: {}
  indicator:
    ratio:
      errors: 'http_requests_total{{namespace="{ns}",service="svc-{i:04}",code=~"5.."}}'
      total: 'http_requests_total{{namespace="{ns}",service="svc-{i:04}"}}'
"#,
            [99.9, 99.5, 99.95, 99.0][i % 4]
        ));
    }
    std::fs::write(dir.join("slos.yaml"), docs.join("---\n")).expect("slos.yaml");
}

/// Generates the history service by service (all of it at once would not fit in memory),
/// with the recorded series at NOW−1m and NOW, and turns it into TSDB blocks.
fn build_data(dir: &Path) {
    let resolution = resolution();
    let openmetrics = dir.join("history.om");
    let file = std::fs::File::create(&openmetrics).expect("create the OpenMetrics file");
    let mut out = BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "# TYPE http_requests counter").expect("write");
    let mut recorded: Vec<[(f64, f64); RANGES.len()]> = Vec::with_capacity(SLOS);
    for i in 0..SLOS {
        let mut history = History::default();
        let base = 20.0 + (i % 50) as f64 * 8.0;
        let ratio = 0.0001 * (1 + i % 9) as f64;
        let (ok, err) = ratio_service(
            &mut history,
            &format!("team-{}", team(i)),
            &format!("svc-{i:04}"),
            move |t| diurnal(base, t).round() as u64,
            move |t| {
                if t > NOW - 40 * MINUTE && i % 97 == 0 {
                    0.05
                } else {
                    ratio
                }
            },
            &resolution,
        );
        for s in [ok, err] {
            write_samples(&mut out, &history.series[s], &resolution);
        }
        let increase =
            |s: usize, range: i64, at: i64| history.series[s].increase(at - range, at) as f64;
        recorded.push(RANGES.map(|r| {
            let range = seconds(r);
            (
                increase(err, range, NOW),
                increase(ok, range, NOW) + increase(err, range, NOW),
            )
        }));
    }
    for (r, range) in RANGES.iter().enumerate() {
        let range = budgetgate::api::Duration::parse(range).expect("a range");
        for metric in [Metric::BadEvents, Metric::Events] {
            let name = increase_metric(metric, &range);
            writeln!(out, "# TYPE {name} gauge").expect("write");
            for (i, counts) in recorded.iter().enumerate() {
                let value = match metric {
                    Metric::BadEvents => counts[r].0,
                    Metric::Events => counts[r].1,
                };
                let t = team(i);
                for at in [NOW - MINUTE, NOW] {
                    writeln!(
                        out,
                        "{name}{{namespace=\"team-{t}\",slo=\"slo-{i:04}\",team=\"team-{t}\",tier=\"production\"}} {value} {at}"
                    )
                    .expect("write");
                }
            }
        }
    }
    writeln!(out, "# EOF").expect("write");
    out.flush().expect("flush");
    drop(out);
    create_blocks(&openmetrics, &dir.join("data"));
    std::fs::remove_file(&openmetrics).expect("remove the OpenMetrics file");
}

fn cached_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("prom-bench-{DATA_VERSION}"));
    if !dir.join("complete").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the bench data directory");
        let started = Instant::now();
        eprintln!("generating {SLOS} SLOs of history into {} …", dir.display());
        write_policy(&dir.join("policy"));
        build_data(&dir);
        std::fs::write(dir.join("complete"), "").expect("mark the data complete");
        eprintln!("generated in {:.1}s", started.elapsed().as_secs_f64());
    }
    dir
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    require_prometheus();
    let dir = cached_data();
    let (index, _) = budgetgate::load::load_policy(&dir.join("policy")).expect("the bench policy");
    let Some(policy) = index.policy.clone() else {
        panic!("the bench policy has no ReliabilityPolicy");
    };
    let prometheus = Prometheus::start(&dir.join("data"));
    let at = Timestamp::from_second(NOW).expect("NOW is a time");
    let mode = |batch_size: usize, recorded: bool| PromConfig {
        batch_size,
        use_recording_rules: recorded,
        ..PromConfig::new(&prometheus.url)
    };
    println!(
        "budget evaluation: {SLOS} SLOs x 7 windows + 30d period, Prometheus {} on 127.0.0.1, {RUNS} runs each",
        prometheus_version()
    );
    println!(
        "requests = windows x 2 x ceil(SLOs / batch size) direct; windows x 2 recorded (windows = 8)"
    );
    println!(
        "{:<34} {:>8} {:>10} {:>10} {:>10}",
        "mode", "requests", "min ms", "median ms", "max ms"
    );
    for (name, config) in [
        ("direct, batch 1000", mode(1000, false)),
        ("direct, batch 250 (default)", mode(250, false)),
        ("recording rules", mode(250, true)),
    ] {
        let mut times = Vec::with_capacity(RUNS);
        let mut requests = 0;
        for run in 0..=RUNS {
            let started = Instant::now();
            let evaluation = evaluate_blocking(&index, at, &config).expect("evaluation");
            let budgets = evaluate_budgets(&policy, &index.namespaces, &evaluation.slos, at);
            let elapsed = started.elapsed();
            let unknown = budgets
                .slos
                .values()
                .filter(|a| a.remaining.is_none())
                .count();
            assert_eq!(
                unknown,
                0,
                "{name}: {unknown} SLOs without data: {:?}",
                evaluation.notes.first()
            );
            requests = evaluation.requests;
            // The first run warms Prometheus's caches and is not counted.
            if run > 0 {
                times.push(elapsed);
            }
        }
        times.sort();
        println!(
            "{name:<34} {requests:>8} {:>10.1} {:>10.1} {:>10.1}",
            millis(times[0]),
            millis(times[times.len() / 2]),
            millis(times[times.len() - 1])
        );
    }
}

fn prometheus_version() -> String {
    std::process::Command::new("prometheus")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into())
}
