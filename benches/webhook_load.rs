//! Load benchmark of the webhook over TLS keep-alive: `/validate` with a realistic ~6 KB
//! Deployment review against `/bare` on the same server stack (reads the body, returns a
//! fixed answer: the floor), then a steady 1,000 reviews/s with the server's memory
//! sampled every second.
//!
//! `cargo bench --bench webhook_load` (BENCH_SECONDS=10 BENCH_STEADY_SECONDS=60
//! BENCH_CONNECTIONS=8 BENCH_RATE=1000 to change the defaults). The server runs as its
//! own process (`budgetgate webhook`, one worker thread); the load comes from this one.

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

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/samples")
}

#[path = "../tests/support/client.rs"]
mod client;

fn six_kb_review() -> Bytes {
    Bytes::from(client::six_kb_review())
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
            "1",
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

/// Requests start on a fixed schedule (`rate` per second, spread over the connections);
/// latency counts from the scheduled start, so a slow answer cannot hide the queue behind it.
async fn open_loop(
    server: &Server,
    body: Bytes,
    rate: u64,
    seconds: u64,
    connections: u64,
) -> (Summary, Summary, Vec<f64>) {
    let pid = server.child.id();
    let start = Instant::now();
    let per_connection = Duration::from_secs_f64(connections as f64 / rate as f64);
    let count = rate * seconds / connections;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (addr, ca, body) = (server.addr, server.ca.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr, &ca).await;
            let offset = per_connection.mul_f64(c as f64 / connections as f64);
            let mut latencies = Vec::with_capacity(count as usize);
            for i in 0..count {
                let scheduled = start + offset + per_connection * i as u32;
                // tokio's timer has 1 ms granularity: sleep to just before, then yield until
                // the instant, so the client's own lateness does not pass for latency.
                tokio::time::sleep_until((scheduled - Duration::from_millis(1)).into()).await;
                while Instant::now() < scheduled {
                    tokio::task::yield_now().await;
                }
                let sent = Instant::now();
                post(&mut sender, "/validate", &body).await;
                latencies.push((scheduled.elapsed(), sent.elapsed()));
            }
            latencies
        }));
    }
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        for _ in 0..=seconds {
            samples.push(rss_mib(pid));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        samples
    });
    let (mut from_schedule, mut from_send) = (Vec::new(), Vec::new());
    for task in tasks {
        for (scheduled, sent) in task.await.unwrap() {
            from_schedule.push(scheduled);
            from_send.push(sent);
        }
    }
    let elapsed = start.elapsed();
    (
        summarize(from_schedule, elapsed),
        summarize(from_send, elapsed),
        sampler.await.unwrap(),
    )
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
    let review = six_kb_review();
    println!(
        "review: {} bytes; server: budgetgate webhook, 1 worker thread; client: 1 thread, {connections} keep-alive TLS connections",
        review.len()
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
        let (scheduled, sent, rss) = open_loop(&server, review.clone(), rate, steady, connections).await;
        for (from, s) in [("the scheduled instant", &scheduled), ("the actual send", &sent)] {
            println!(
                "/validate open loop {rate}/s for {steady}s: {:.0} req/s   p50 {:.3} ms   p99 {:.3} ms   p99.9 {:.3} ms   (latency from {from})",
                s.rate, s.p50, s.p99, s.p999
            );
        }
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
