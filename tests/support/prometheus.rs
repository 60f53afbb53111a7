//! Test and benchmark support: deterministic counter histories, written as OpenMetrics,
//! backfilled with `promtool tsdb create-blocks-from openmetrics`, served by a real
//! Prometheus on 127.0.0.1 with a temporary data directory.
//!
//! Counters advance once a minute; samples are written every minute near `NOW` and more
//! sparsely further back (the `Resolution`). Every window budgetgate reads starts and ends
//! on a sample, so Prometheus's `increase()` needs no extrapolation and equals the
//! generated counts exactly — except for series that stop early, where it extrapolates.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 2026-11-29T11:00:00Z, the instant every test evaluates at (not on a 2h TSDB block
/// boundary, so promtool's rule backfill can start a second before it).
pub const NOW: i64 = 1_795_950_000;
pub const NOW_RFC3339: &str = "2026-11-29T11:00:00Z";
pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3_600;
pub const DAY: i64 = 86_400;

/// How densely samples are written, by distance from `NOW` (each step divides the next).
#[derive(Clone, Debug)]
pub struct Resolution {
    /// (distance from NOW, step) pairs, nearest first; beyond the last, `coarse`.
    pub bands: Vec<(i64, i64)>,
    pub coarse: i64,
    /// How far back the history starts.
    pub history: i64,
}

impl Resolution {
    /// Every minute for the last 6h5m, every 5 minutes up to 3d6h, every 15 minutes before.
    pub fn tests() -> Self {
        Resolution {
            bands: vec![
                (6 * HOUR + 5 * MINUTE, MINUTE),
                (3 * DAY + 6 * HOUR, 5 * MINUTE),
            ],
            coarse: 15 * MINUTE,
            history: 36 * DAY,
        }
    }

    fn sampled(&self, t: i64) -> bool {
        let age = NOW - t;
        let step = self
            .bands
            .iter()
            .find(|(span, _)| age <= *span)
            .map_or(self.coarse, |(_, step)| *step);
        t.rem_euclid(step) == 0
    }

    pub fn start(&self) -> i64 {
        NOW - self.history
    }
}

/// A counter series: its value at every minute from the history's start.
#[derive(Clone, Debug)]
pub struct Series {
    /// OpenMetrics family (`http_requests`, type counter; or a histogram's name).
    pub family: String,
    pub histogram: bool,
    /// Sample name: `http_requests_total`, `h_bucket`.
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// Value at `start + i·60`.
    pub values: Vec<u64>,
    /// No samples after this instant.
    pub stops_at: Option<i64>,
    pub start: i64,
}

impl Series {
    pub fn value_at(&self, t: i64) -> u64 {
        let i = ((t - self.start) / MINUTE).clamp(0, self.values.len() as i64 - 1);
        self.values[i as usize]
    }

    /// Whether Prometheus has samples of it in `[from, …]` to compute an increase (the
    /// windows used here are longer than a sample step).
    pub fn covers(&self, from: i64) -> bool {
        self.stops_at.is_none_or(|stop| stop > from)
    }

    /// Increase over `[from, to]`, up to where the series stops.
    pub fn increase(&self, from: i64, to: i64) -> u64 {
        let to = self.stops_at.map_or(to, |stop| stop.min(to));
        self.value_at(to) - self.value_at(from)
    }

    fn selector(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

/// Per-minute events; `traffic(t)` gives the events of the minute ending at `t`.
pub fn counter(start: i64, end: i64, per_minute: impl Fn(i64) -> u64) -> Vec<u64> {
    let mut values = Vec::with_capacity(((end - start) / MINUTE + 1) as usize);
    let mut total = 0;
    values.push(0);
    let mut t = start + MINUTE;
    while t <= end {
        total += per_minute(t);
        values.push(total);
        t += MINUTE;
    }
    values
}

/// Requests per minute following the day: low at 03:00 UTC, high at 15:00.
pub fn diurnal(base: f64, t: i64) -> f64 {
    let hour = (t.rem_euclid(DAY)) as f64 / 3_600.0;
    base * (1.0 + 0.6 * (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin())
}

/// The `ratio(t)` share of a counter's per-minute events, in whole events, carrying
/// fractions over so the share over any long window is the ratio of the events.
pub fn share(values: &[u64], start: i64, ratio: impl Fn(i64) -> f64) -> Vec<u64> {
    let mut out = Vec::with_capacity(values.len());
    let mut carried = 0.0f64;
    out.push(0);
    for i in 1..values.len() {
        let t = start + i as i64 * MINUTE;
        carried += (values[i] - values[i - 1]) as f64 * ratio(t);
        out.push(carried.floor() as u64);
    }
    out
}

/// A linear combination of series: the counts of an SLO.
#[derive(Clone, Debug, Default)]
pub struct Sum(pub Vec<(usize, i64)>);

/// The generated truth of one SLO.
#[derive(Clone, Debug)]
pub struct SloTruth {
    pub namespace: String,
    pub name: String,
    pub objective: f64,
    pub bad: Sum,
    pub total: Sum,
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub series: Vec<Series>,
    pub slos: Vec<SloTruth>,
}

impl History {
    pub fn add(&mut self, series: Series) -> usize {
        self.series.push(series);
        self.series.len() - 1
    }

    /// The increase of a sum of series over `[from, to]`; `None` where Prometheus has no data.
    pub fn sum(&self, sum: &Sum, from: i64, to: i64) -> Option<f64> {
        if sum.0.is_empty() || sum.0.iter().any(|(i, _)| !self.series[*i].covers(from)) {
            return None;
        }
        Some(
            sum.0
                .iter()
                .map(|(i, sign)| *sign as f64 * self.series[*i].increase(from, to) as f64)
                .sum(),
        )
    }

    /// `(bad, total)` of an SLO over `[to − seconds, to]`; `None` where Prometheus has no data.
    pub fn counts(&self, slo: &SloTruth, seconds: i64, to: i64) -> Option<(f64, f64)> {
        Some((
            self.sum(&slo.bad, to - seconds, to)?,
            self.sum(&slo.total, to - seconds, to)?,
        ))
    }

    pub fn slo(&self, namespace: &str, name: &str) -> &SloTruth {
        self.slos
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
            .unwrap_or_else(|| panic!("no SLO {namespace}/{name} in the history"))
    }

    /// A BudgetSnapshot (DESIGN §5) of the generated counts at `NOW`: the expected answer.
    /// `windows` are the policy's window keys; `period` gives each SLO's period in seconds.
    pub fn snapshot(
        &self,
        windows: &[&str],
        period: impl Fn(&SloTruth) -> i64,
    ) -> serde_json::Value {
        let counts = |c: Option<(f64, f64)>| match c {
            Some((bad, total)) => serde_json::json!({"bad": bad, "total": total}),
            None => serde_json::Value::Null,
        };
        let slos: Vec<_> = self
            .slos
            .iter()
            .map(|slo| {
                let windows: BTreeMap<&str, serde_json::Value> = windows
                    .iter()
                    .map(|w| (*w, counts(self.counts(slo, seconds(w), NOW))))
                    .collect();
                serde_json::json!({
                    "namespace": slo.namespace,
                    "name": slo.name,
                    "objective": slo.objective,
                    "period": counts(self.counts(slo, period(slo), NOW)),
                    "windows": windows,
                })
            })
            .collect();
        serde_json::json!({"evaluatedAt": NOW_RFC3339, "slos": slos})
    }

    /// The history as OpenMetrics, family by family, each series in time order.
    pub fn write_openmetrics(&self, path: &Path, resolution: &Resolution) {
        let file = std::fs::File::create(path).expect("create the OpenMetrics file");
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut families: BTreeMap<&str, Vec<&Series>> = BTreeMap::new();
        for s in &self.series {
            families.entry(&s.family).or_default().push(s);
        }
        for (family, members) in families {
            let kind = if members[0].histogram {
                "histogram"
            } else {
                "counter"
            };
            writeln!(out, "# TYPE {family} {kind}").unwrap();
            for s in members {
                write_samples(&mut out, s, resolution);
            }
        }
        writeln!(out, "# EOF").unwrap();
        out.flush().unwrap();
    }
}

/// One series' samples as OpenMetrics lines (its family's `# TYPE` line comes first).
pub fn write_samples(out: &mut impl Write, s: &Series, resolution: &Resolution) {
    let selector = s.selector();
    let end = s.stops_at.unwrap_or(NOW).min(NOW);
    let mut t = s.start;
    while t <= end {
        if resolution.sampled(t) {
            writeln!(out, "{selector} {} {t}", s.value_at(t)).unwrap();
        }
        t += MINUTE;
    }
}

/// Seconds of a Prometheus duration such as `5m`, `3d`.
pub fn seconds(text: &str) -> i64 {
    let (n, unit) = text.split_at(text.len() - 1);
    let n: i64 = n.parse().expect("a duration");
    n * match unit {
        "s" => 1,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        _ => panic!("unit of {text}"),
    }
}

/// A ratio SLO over `http_requests_total{namespace, service, code}`: two series, `200`
/// and `500`, of `traffic` per minute with `error_ratio(t)` errors.
pub fn ratio_service(
    history: &mut History,
    namespace: &str,
    service: &str,
    traffic: impl Fn(i64) -> u64,
    error_ratio: impl Fn(i64) -> f64,
    resolution: &Resolution,
) -> (usize, usize) {
    let start = resolution.start();
    let all = counter(start, NOW, traffic);
    let bad = share(&all, start, error_ratio);
    let good: Vec<u64> = all.iter().zip(&bad).map(|(a, b)| a - b).collect();
    let series = |code: &str, values: Vec<u64>| Series {
        family: "http_requests".into(),
        histogram: false,
        name: "http_requests_total".into(),
        labels: vec![
            ("namespace".into(), namespace.into()),
            ("service".into(), service.into()),
            ("code".into(), code.into()),
        ],
        values,
        stops_at: None,
        start,
    };
    let ok = history.add(series("200", good));
    let err = history.add(series("500", bad));
    (ok, err)
}

/// Fails the test with what to do when Prometheus is missing.
pub fn require_prometheus() {
    for tool in ["prometheus", "promtool"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} is not installed: run ./test (scripts/deps installs Debian's prometheus package), \
             or install Prometheus 2.x so that prometheus and promtool are on PATH"
        );
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// TSDB blocks from an OpenMetrics file, as one block per history (fast to query).
pub fn create_blocks(openmetrics: &Path, data_dir: &Path) {
    run(
        Command::new("promtool")
            .args([
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                // Hidden flag: one block instead of one per 2h (each 2h block re-reads the file).
                "--max-block-duration=1458h",
            ])
            .arg(openmetrics)
            .arg(data_dir),
        "promtool tsdb create-blocks-from openmetrics",
    );
}

/// Recording rules evaluated over `[start, end]` against a running Prometheus, as blocks.
pub fn backfill_rules(url: &str, rules: &Path, start: i64, end: i64, out_dir: &Path) {
    run(
        Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "rules", "--quiet"])
            .arg(format!("--url={url}"))
            .arg(format!("--start={start}"))
            .arg(format!("--end={end}"))
            .arg("--eval-interval=60s")
            .arg(format!("--output-dir={}", out_dir.display()))
            .arg(rules),
        "promtool tsdb create-blocks-from rules",
    );
}

/// Moves every block directory of `from` into `data_dir`.
pub fn move_blocks(from: &Path, data_dir: &Path) {
    for entry in std::fs::read_dir(from).expect("read the blocks") {
        let entry = entry.expect("a block");
        if entry.path().join("meta.json").exists() {
            std::fs::rename(entry.path(), data_dir.join(entry.file_name())).expect("move a block");
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("budgetgate-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

fn prometheus_args(data_dir: &Path, port: u16) -> Vec<String> {
    let config = data_dir.with_extension("yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("write prometheus.yml");
    vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", data_dir.display()),
        // Retention counts from the newest block, not the clock; keep the whole history.
        "--storage.tsdb.retention.time=100y".into(),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--log.level=warn".into(),
    ]
}

/// A Prometheus this process started. Dropping it stops it.
pub struct Prometheus {
    pub url: String,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus on `data_dir` and waits until it is ready.
    pub fn start(data_dir: &Path) -> Prometheus {
        let port = free_port();
        let child = Command::new("prometheus")
            .args(prometheus_args(data_dir, port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        wait_ready(port);
        prometheus
    }

    /// Starts Prometheus for the rest of this process's life: a watchdog shell stops it and
    /// removes `remove_dir` once this process has exited (a test binary has no teardown).
    pub fn start_for_process(data_dir: &Path, remove_dir: &Path) -> String {
        let port = free_port();
        let script = r#"
prometheus "$@" >/dev/null 2>&1 &
server=$!
while kill -0 "$PARENT" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
rm -rf "$REMOVE"
"#;
        // Not waited for: the watchdog outlives the tests and ends when this process does.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("prometheus-watchdog")
            .args(prometheus_args(data_dir, port))
            .env("PARENT", std::process::id().to_string())
            .env("REMOVE", remove_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        wait_ready(port);
        format!("http://127.0.0.1:{port}")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plain HTTP GET on 127.0.0.1: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if http_get(port, "/-/ready").is_some_and(|(code, _)| code == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("prometheus on 127.0.0.1:{port} was not ready within 120s");
}
