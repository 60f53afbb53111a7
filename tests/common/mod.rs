//! Shared harness of the integration tests: the real binary, real certificates, a real
//! HTTPS client.
#![allow(dead_code)]

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NOW: &str = "2026-11-29T10:00:00Z";
pub const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples");

pub fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_budgetgate"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("BUDGETGATE_POLICY")
        .env_remove("BUDGETGATE_BUDGETS")
        .env_remove("BUDGETGATE_NOW")
        .env_remove("BUDGETGATE_KUBECONFIG")
        .env_remove("BUDGETGATE_CLUSTER")
        .env_remove("KUBECONFIG");
    command
}

/// The binary run with `args` to completion.
pub fn run(args: &[&str]) -> std::process::Output {
    bin()
        .args(args)
        .output()
        .expect("the budgetgate binary runs")
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `budgetgate certs` into `dir`: returns the CA path.
pub fn certs(dir: &Path) -> PathBuf {
    let out = bin()
        .args(["certs", "--out"])
        .arg(dir)
        .args(["--dns", "localhost", "--ip", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("ca.crt")
}

/// A running `budgetgate webhook`, killed on drop. Its stderr (JSON logs) is collected.
pub struct Webhook {
    pub child: Child,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub ca: PathBuf,
    pub logs: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the webhook with `args` (state arguments), TLS from `cert_dir`, on free ports,
/// answering as of [`NOW`].
pub fn start(args: &[&str], cert_file: &Path, key_file: &Path, ca: &Path) -> Webhook {
    let mut child = bin()
        .args(["--log-format", "json", "webhook"])
        .args(args)
        .arg("--tls-cert-file")
        .arg(cert_file)
        .arg("--tls-key-file")
        .arg(key_file)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--reload-interval",
            "1s",
            "--now",
            NOW,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if value.pointer("/fields/listen").is_some() {
                    let _ = tx.send(value.clone());
                }
                logs.lock().unwrap().push(value);
            }
        });
    }
    let started = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("webhook did not start: {:?}", logs.lock().unwrap()));
    let addr = |field: &str| started["fields"][field].as_str().unwrap().parse().unwrap();
    Webhook {
        child,
        addr: addr("listen"),
        metrics: addr("metrics"),
        ca: ca.to_owned(),
        logs,
    }
}

/// The webhook in file mode on the samples, with its own fresh certificates.
pub fn start_on_samples(name: &str) -> Webhook {
    let dir = scratch(name);
    let ca = certs(&dir);
    start_on_samples_with(&dir.join("tls.crt"), &dir.join("tls.key"), &ca)
}

/// The webhook in file mode on the samples, serving the given certificate files.
pub fn start_on_samples_with(cert: &Path, key: &Path, ca: &Path) -> Webhook {
    start(
        &[
            "--policy",
            SAMPLES,
            "--budgets",
            &format!("{SAMPLES}/budgets.json"),
        ],
        cert,
        key,
        ca,
    )
}

#[path = "../support/client.rs"]
mod client;
pub use client::tls_connector;

/// One keep-alive HTTPS/1.1 connection.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr, ca: &Path) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(ca)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Conn { sender })
    }

    /// (status, body).
    pub async fn send(&mut self, method: &str, path: &str, body: impl Into<Bytes>) -> (u16, Bytes) {
        let body: Bytes = body.into();
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    pub async fn review(&mut self, webhook: &str, review: &[u8]) -> Value {
        let (status, body) = self
            .send("POST", &format!("/{webhook}"), review.to_vec())
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }
}

/// Writes raw bytes on a fresh TLS connection and reads the answer until the server
/// closes it or `timeout` passes.
pub async fn raw(addr: SocketAddr, ca: &Path, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tls_connector(ca).connect(name, tcp).await.unwrap();
    tls.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

pub async fn get(addr: SocketAddr, ca: &Path, path: &str) -> (u16, String) {
    let mut conn = Conn::open(addr, ca).await.unwrap();
    let (status, body) = conn.send("GET", path, Bytes::new()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A plain-HTTP request: status and body.
pub async fn plain(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Plain-HTTP GET of the metrics endpoint.
pub async fn metrics(addr: SocketAddr) -> String {
    plain(addr, "GET", "/metrics").await.1
}

/// What `budgetgate evaluate` answers for a review file.
pub fn evaluate(policy: &str, budgets: &str, review: &Path, webhook: &str) -> Value {
    let out = bin()
        .args([
            "evaluate",
            "--policy",
            policy,
            "--budgets",
            budgets,
            "--webhook",
            webhook,
            "--now",
            NOW,
            "--review",
        ])
        .arg(review)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
