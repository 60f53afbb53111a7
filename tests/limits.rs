//! The server limits over real TCP and TLS, each configured small: a silent connection is
//! closed at the handshake deadline, one connection over the cap is closed at once while
//! `/healthz` still answers, bodies over the byte budget or the in-flight cap get 503, a
//! body that does not arrive in time gets 408, an idle HTTP/2 connection is closed. Each
//! limit that bites is counted.

mod common;

use common::*;
use hyper::body::Bytes;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The webhook on the samples with extra limit flags.
fn start_with(name: &str, flags: &[&str]) -> Webhook {
    let dir = scratch(name);
    let ca = certs(&dir);
    let budgets = format!("{SAMPLES}/budgets.json");
    let mut args = vec!["--policy", SAMPLES, "--budgets", &budgets];
    args.extend_from_slice(flags);
    start(&args, &dir.join("tls.crt"), &dir.join("tls.key"), &ca)
}

/// Reads until the server closes the connection; `None` if it is still open after 20 s.
async fn closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer)).await {
        Ok(_) => Some(answer),
        Err(_) => None,
    }
}

async fn tls(
    addr: SocketAddr,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tls_connector(ca).connect(name, tcp).await.unwrap()
}

/// The value of one sample line of the metrics, if present.
async fn sample(addr: SocketAddr, series: &str) -> Option<String> {
    let metrics = metrics(addr).await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(str::to_owned)
}

fn review() -> Vec<u8> {
    std::fs::read(Path::new(SAMPLES).join("reviews/scale.json")).unwrap()
}

/// A review whose head promises `length` bytes and whose body stops after one.
async fn stalled_body(
    webhook: &Webhook,
    length: usize,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut conn = tls(webhook.addr, &webhook.ca).await;
    let head =
        format!("POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: {length}\r\n\r\n{{");
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    conn
}

#[tokio::test]
async fn silent_connections_are_closed_at_the_handshake_deadline() {
    let webhook = start_with("limits-handshake", &["--handshake-timeout", "200ms"]);
    // No TLS at all.
    let mut tcp = tokio::net::TcpStream::connect(webhook.addr).await.unwrap();
    assert_eq!(closed(&mut tcp).await, Some(Vec::new()));
    // A TLS handshake, then not one byte of HTTP: protocol detection has the same deadline.
    let mut conn = tls(webhook.addr, &webhook.ca).await;
    assert_eq!(closed(&mut conn).await, Some(Vec::new()));
    assert_eq!(
        sample(
            webhook.metrics,
            r#"budgetgate_connection_limits_total{listener="reviews",limit="handshake"}"#
        )
        .await
        .as_deref(),
        Some("2")
    );
    // The server still answers.
    assert_eq!(
        get(webhook.addr, &webhook.ca, "/healthz").await,
        (200, "ok\n".to_owned())
    );
}

#[tokio::test]
async fn one_connection_over_the_cap_is_closed_at_once_and_healthz_still_answers() {
    // The metrics port keeps its default cap: the test's own scrapes close
    // asynchronously, and a small cap there would race with them.
    let webhook = start_with("limits-connections", &["--max-connections", "2"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(webhook.addr).await.unwrap());
    }
    let open = r#"budgetgate_open_connections{listener="reviews"}"#;
    assert!(
        eventually(Duration::from_secs(10), async || {
            sample(webhook.metrics, open).await.as_deref() == Some("2")
        })
        .await
    );
    // The third is closed before a handshake, without a byte.
    let mut third = tokio::net::TcpStream::connect(webhook.addr).await.unwrap();
    assert_eq!(closed(&mut third).await, Some(Vec::new()));
    assert_eq!(
        sample(
            webhook.metrics,
            r#"budgetgate_connection_limits_total{listener="reviews",limit="connections"}"#
        )
        .await
        .as_deref(),
        Some("1")
    );
    // The liveness probe's port answers meanwhile.
    assert_eq!(
        plain(webhook.metrics, "GET", "/healthz").await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(
        plain(webhook.metrics, "GET", "/readyz").await,
        (200, "ok\n".to_owned())
    );
    // A freed slot serves again.
    drop(held);
    assert!(
        eventually(Duration::from_secs(10), async || {
            sample(webhook.metrics, open).await.as_deref() == Some("0")
        })
        .await
    );
    assert_eq!(
        get(webhook.addr, &webhook.ca, "/healthz").await,
        (200, "ok\n".to_owned())
    );
}

#[tokio::test]
async fn the_metrics_port_closes_connections_over_its_cap() {
    let webhook = start_with("limits-metrics", &["--metrics-max-connections", "1"]);
    let _held = tokio::net::TcpStream::connect(webhook.metrics)
        .await
        .unwrap();
    // Until the accept loop has taken the held one, a second may still get its slot.
    let mut over = None;
    for _ in 0..50 {
        let mut next = tokio::net::TcpStream::connect(webhook.metrics)
            .await
            .unwrap();
        next.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = closed(&mut next).await.unwrap();
        if answer.is_empty() {
            over = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(over, Some(Vec::new()));
}

#[tokio::test]
async fn a_body_over_the_byte_budget_gets_503_until_room_is_freed() {
    let webhook = start_with(
        "limits-budget",
        &["--review-body-budget", "8Ki", "--body-read-timeout", "1m"],
    );
    // 6 KiB of the 8 KiB budget held by a body that has not arrived.
    let held = stalled_body(&webhook, 6 * 1024).await;
    let review = review();
    assert!(review.len() > 2 * 1024);
    let refused = async || {
        let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
        let (status, body) = conn.send("POST", "/validate", review.clone()).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert!(
        eventually(Duration::from_secs(10), async || refused().await.0 == 503).await,
        "the held body never took its budget"
    );
    assert_eq!(
        refused().await,
        (
            503,
            "review bodies in flight would exceed their 8192-byte budget; retry\n".to_owned()
        )
    );
    assert!(
        sample(
            webhook.metrics,
            r#"budgetgate_connection_limits_total{listener="reviews",limit="body_budget"}"#
        )
        .await
        .is_some()
    );
    // The held body's client leaves: its budget is back.
    drop(held);
    assert!(
        eventually(Duration::from_secs(10), async || refused().await.0 == 200).await,
        "the budget was not given back"
    );
    let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
    assert_eq!(
        conn.review("validate", &review).await["response"]["allowed"],
        true
    );
}

#[tokio::test]
async fn a_review_over_the_in_flight_cap_gets_503() {
    let webhook = start_with(
        "limits-inflight",
        &["--max-inflight-reviews", "1", "--body-read-timeout", "1m"],
    );
    let held = stalled_body(&webhook, 4096).await;
    let review = review();
    let answer = async || {
        let mut conn = Conn::open(webhook.addr, &webhook.ca).await.unwrap();
        let (status, body) = conn.send("POST", "/mutate", review.clone()).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert!(eventually(Duration::from_secs(10), async || answer().await.0 == 503).await);
    assert_eq!(
        answer().await,
        (
            503,
            "reviews in flight are at their limit of 1; retry\n".to_owned()
        )
    );
    drop(held);
    assert!(eventually(Duration::from_secs(10), async || answer().await.0 == 200).await);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let webhook = start_with("limits-body-time", &["--body-read-timeout", "200ms"]);
    let answer = raw(
        webhook.addr,
        &webhook.ca,
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\nthe body did not arrive within 200 ms\n"),
        "{answer}"
    );
    // A chunked body that never ends is cut off the same way.
    let mut conn = tls(webhook.addr, &webhook.ca).await;
    conn.write_all(
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n",
    )
    .await
    .unwrap();
    let answer = String::from_utf8(closed(&mut conn).await.unwrap()).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert_eq!(
        sample(
            webhook.metrics,
            r#"budgetgate_connection_limits_total{listener="reviews",limit="body_time"}"#
        )
        .await
        .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let webhook = start_with("limits-idle", &["--idle-timeout", "300ms"]);
    let conn = tls(webhook.addr, &webhook.ca).await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(conn))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .uri("https://localhost/healthz")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok\n"
    );
    // Nothing more is asked: the server ends the connection.
    let ended = tokio::time::timeout(Duration::from_secs(20), connection).await;
    assert!(ended.is_ok(), "the idle connection was kept");
    assert_eq!(
        sample(
            webhook.metrics,
            r#"budgetgate_connection_limits_total{listener="reviews",limit="idle"}"#
        )
        .await
        .as_deref(),
        Some("1")
    );
}
