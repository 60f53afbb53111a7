//! Load benchmark of the webhook over TLS keep-alive: `/validate` with a realistic ~6 KB
//! Deployment review against `/bare` on the same server stack (reads the body, returns a
//! fixed answer: the floor), then a steady 1,000 reviews/s with the server's memory
//! sampled every second.
//!
//! `cargo bench --bench webhook_load` (BENCH_SECONDS=10 BENCH_STEADY_SECONDS=60
//! BENCH_CONNECTIONS=8 BENCH_RATE=1000 to change the defaults; BENCH_REVIEW=apiserver for
//! the review as the apiserver sends it, ~14 KB with status and managedFields). The server runs as its
//! own process (`budgetgate webhook`, one worker thread unless BENCH_WORKERS says otherwise);
//! the load comes from this one.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOW: &str = "2026-11-29T10:00:00Z";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Worker threads of the server (`BENCH_WORKERS`, default 1: the other core is the client's).
fn workers() -> u64 {
    env_or("BENCH_WORKERS", 1)
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/samples")
}

#[path = "../tests/support/client.rs"]
mod client;

/// The review every request carries: the ~6 KB one, or with `BENCH_REVIEW=apiserver` the
/// same review as the apiserver sends it (with the objects' status and managedFields).
fn review() -> Bytes {
    let review = client::six_kb_review();
    match std::env::var("BENCH_REVIEW").as_deref() {
        Ok("apiserver") => Bytes::from(client::apiserver_review(&review)),
        _ => Bytes::from(review),
    }
}

struct Server {
    child: Child,
    addr: std::net::SocketAddr,
    ca: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = std::env::temp_dir().join(format!("budgetgate-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let today = "2026-11-29".parse().unwrap();
    budgetgate::certs::issue(&dir, &["localhost".into()], &[], today).unwrap();
    // A free port: bind, note, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let samples = samples();
    let child = Command::new(env!("CARGO_BIN_EXE_budgetgate"))
        .arg("webhook")
        .arg("--policy")
        .arg(&samples)
        .arg("--budgets")
        .arg(samples.join("budgets.json"))
        .arg("--tls-cert-file")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key-file")
        .arg(dir.join("tls.key"))
        .args([
            "--listen",
            &addr.to_string(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--now",
            NOW,
            "--workers",
            &workers().to_string(),
            "--bare-endpoint",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "webhook did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        addr,
        ca: dir.join("ca.crt"),
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr, ca: &Path) -> Sender {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = client::tls_connector(ca).connect(name, tcp).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn post(sender: &mut Sender, path: &str, body: &Bytes) {
    let request = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.len() > 20);
}

struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Summary {
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e3
    };
    Summary {
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
    }
}

/// Every connection sends back to back for `seconds`.
async fn closed_loop(
    server: &Server,
    path: &'static str,
    body: Bytes,
    connections: u64,
    seconds: u64,
) -> Summary {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (addr, ca, body) = (server.addr, server.ca.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr, &ca).await;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                post(&mut sender, path, &body).await;
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    summarize(all, start.elapsed())
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Requests start on a fixed schedule (`rate` per second, round robin over the
/// connections); latency counts from the scheduled start, so a slow answer cannot hide the
/// queue behind it. The schedule is kept by a thread of its own sleeping to each instant
/// (the OS's high-resolution timer): tokio's timer rounds to the millisecond, and spinning
/// on the client's runtime until the instant would starve its own I/O driver, so responses
/// already received would wait for the spinner and pass for server latency.
async fn open_loop(
    server: &Server,
    body: Bytes,
    rate: u64,
    seconds: u64,
    connections: u64,
) -> OpenLoop {
    let pid = server.child.id();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = rate * seconds;
    let mut tasks = Vec::new();
    let mut schedules = Vec::new();
    for _ in 0..connections {
        let (addr, ca, body) = (server.addr, server.ca.clone(), body.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        schedules.push(tx);
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr, &ca).await;
            let mut latencies = Vec::with_capacity((total / connections + 1) as usize);
            let mut queued = 0u64;
            let mut idle_since = Instant::now();
            while let Some(scheduled) = rx.recv().await {
                let sent = Instant::now();
                // Due while this connection still waited for its previous answer.
                queued += u64::from(scheduled < idle_since);
                post(&mut sender, "/validate", &body).await;
                idle_since = Instant::now();
                latencies.push((
                    idle_since - scheduled,
                    idle_since - sent,
                    sent.saturating_duration_since(scheduled),
                ));
            }
            (latencies, queued)
        }));
    }
    // Every connection is up before the clock starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let scheduled = start + interval * i as u32;
            if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let _ = schedules[(i % connections) as usize].send(scheduled);
        }
    });
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for _ in 0..=seconds {
            samples.push(rss_mib(pid));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        samples
    });
    let (mut from_schedule, mut from_send, mut late) = (Vec::new(), Vec::new(), Vec::new());
    let mut queued = 0;
    // The pacer ends by dropping the senders, which ends every connection's loop.
    tokio::task::spawn_blocking(move || pacer.join().unwrap())
        .await
        .unwrap();
    for task in tasks {
        let (latencies, waited) = task.await.unwrap();
        queued += waited;
        for (scheduled, sent, dispatch) in latencies {
            from_schedule.push(scheduled);
            from_send.push(sent);
            late.push(dispatch);
        }
    }
    let elapsed = start.elapsed();
    OpenLoop {
        from_schedule: summarize(from_schedule, elapsed),
        from_send: summarize(from_send, elapsed),
        dispatch: summarize(late, elapsed),
        queued,
        rss: sampler.await.unwrap(),
    }
}

struct OpenLoop {
    /// Scheduled instant to answer: what a caller on that schedule sees.
    from_schedule: Summary,
    /// Send to answer: the server and the wire.
    from_send: Summary,
    /// Scheduled instant to send: the client's own lateness, and any wait for a busy
    /// connection.
    dispatch: Summary,
    /// Requests due while their connection still waited for the previous answer.
    queued: u64,
    rss: Vec<f64>,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only for real.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = env_or("BENCH_SECONDS", 10);
    let steady = env_or("BENCH_STEADY_SECONDS", 60);
    let connections = env_or("BENCH_CONNECTIONS", 8);
    let rate = env_or("BENCH_RATE", 1_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = start_server();
    let review = review();
    println!(
        "review: {} bytes; server: budgetgate webhook, {} worker thread(s); client: 1 runtime thread (+1 pacing thread in the open loop), {connections} keep-alive TLS connections",
        review.len(),
        workers()
    );
    runtime.block_on(async {
        // Warm up both paths.
        closed_loop(&server, "/validate", review.clone(), connections, 2).await;
        closed_loop(&server, "/bare", review.clone(), connections, 2).await;
        let bare = closed_loop(&server, "/bare", review.clone(), connections, seconds).await;
        let validate = closed_loop(&server, "/validate", review.clone(), connections, seconds).await;
        for (name, s) in [("/bare    ", &bare), ("/validate", &validate)] {
            println!(
                "{name} closed loop {seconds}s: {:>8.0} req/s   p50 {:.3} ms   p99 {:.3} ms   p99.9 {:.3} ms",
                s.rate, s.p50, s.p99, s.p999
            );
        }
        println!("throughput ratio /validate : /bare = {:.1}%", 100.0 * validate.rate / bare.rate);
        let open = open_loop(&server, review.clone(), rate, steady, connections).await;
        for (what, s) in [
            ("latency from the scheduled instant", &open.from_schedule),
            ("latency from the actual send", &open.from_send),
            ("client lateness, scheduled to sent", &open.dispatch),
        ] {
            println!(
                "/validate open loop {rate}/s for {steady}s: {:.0} req/s   p50 {:.3} ms   p99 {:.3} ms   p99.9 {:.3} ms   ({what})",
                s.rate, s.p50, s.p99, s.p999
            );
        }
        println!(
            "requests due while their connection was still busy: {} of {}",
            open.queued,
            rate * steady
        );
        let rss = open.rss;
        let max = rss.iter().cloned().fold(f64::NAN, f64::max);
        println!(
            "server RSS over the steady run: start {:.1} MiB, end {:.1} MiB, max {:.1} MiB ({} samples, 1/s)",
            rss.first().copied().unwrap_or(f64::NAN),
            rss.last().copied().unwrap_or(f64::NAN),
            max,
            rss.len()
        );
    });
}
