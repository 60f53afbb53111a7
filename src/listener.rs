//! Every listener of the binary (the TLS admission port, the metrics port, the scoreboard)
//! accepts through here: a cap on open connections, a deadline for the TLS handshake and
//! protocol detection, HTTP/1 header and HTTP/2 stream and keep-alive limits, an idle
//! timeout, and graceful shutdown. It owns no routes: each server passes its handler.
//! Request-level limits (body size, body deadline, in-flight reviews) belong to the
//! handlers.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

pub type Reply = Response<Full<Bytes>>;

/// The apiserver gives up after 30 s at most; nothing in flight outlives that.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// What a client sends first on an HTTP/2 connection (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes hyper may buffer per HTTP/1 connection (request head and body reads).
const H1_MAX_BUF: usize = 64 * 1024;
/// Request header block an HTTP/2 client may send.
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// Connection limits of one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; one more is closed at once.
    pub max_connections: usize,
    /// TLS handshake and protocol detection together.
    pub handshake_timeout: Duration,
    /// HTTP/1: each request head (hyper's header-read timeout, which also times the wait
    /// for the next request on a keep-alive connection). HTTP/2: the first request.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
    pub http2_keep_alive_interval: Duration,
    pub http2_keep_alive_timeout: Duration,
}

/// The command line's defaults (the review port's connection cap).
impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            http2_max_concurrent_streams: 16,
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(10),
        }
    }
}

/// Which limit closed a connection or refused a request (the `limit` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Over `max_connections`: closed before the handshake.
    Connections,
    /// TLS handshake or protocol detection not done in time.
    Handshake,
    /// Request head (HTTP/1) or first request (HTTP/2) not received in time.
    Header,
    /// No request in flight for the idle timeout.
    Idle,
    /// HTTP/2 keep-alive ping not answered.
    KeepAlive,
    /// Request body not received within its deadline.
    BodyTime,
    /// Request bodies in flight would exceed the byte budget.
    BodyBudget,
    /// Too many reviews in flight.
    InFlight,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::Handshake => "handshake",
            Limit::Header => "header",
            Limit::Idle => "idle",
            Limit::KeepAlive => "keep_alive",
            Limit::BodyTime => "body_time",
            Limit::BodyBudget => "body_budget",
            Limit::InFlight => "in_flight",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub listener: &'static str,
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

/// The counters this module moves (registered with the process's metrics).
#[derive(Clone, Debug, Default)]
pub struct ConnectionMetrics {
    pub limits: Family<LimitLabels, Counter>,
    pub open: Family<ListenerLabel, Gauge>,
}

impl ConnectionMetrics {
    pub fn hit(&self, listener: &'static str, limit: Limit) {
        self.limits
            .get_or_create(&LimitLabels {
                listener,
                limit: limit.as_str(),
            })
            .inc();
    }
}

/// One listener: its name (the `listener` label), limits and optional TLS.
pub struct Listener {
    pub name: &'static str,
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
    pub limits: Limits,
    pub metrics: ConnectionMetrics,
}

struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

fn protocols(limits: &Limits) -> Protocols {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(H1_MAX_BUF)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(limits.http2_keep_alive_timeout);
    Protocols { http1, http2 }
}

impl Listener {
    /// Answers with `handler` until `shutdown` resolves, then lets in-flight requests
    /// finish (at most 30 s).
    pub async fn serve<H, F>(self, handler: H, shutdown: impl Future<Output = ()>)
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let Listener {
            name,
            tcp,
            tls,
            limits,
            metrics,
        } = self;
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let protocols = Arc::new(protocols(&limits));
        let limits = Arc::new(limits);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                // Dropping the stream closes it: the file descriptor is back at once.
                metrics.hit(name, Limit::Connections);
                tracing::debug!(listener = name, %peer, "over the connection limit; closed");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                name,
                limits: limits.clone(),
                protocols: protocols.clone(),
                metrics: metrics.clone(),
                watcher: graceful.watcher(),
            };
            let (tls, handler) = (tls.clone(), handler.clone());
            tokio::spawn(async move {
                let open = connection
                    .metrics
                    .open
                    .get_or_create(&ListenerLabel { listener: name })
                    .clone();
                open.inc();
                let deadline = Instant::now() + connection.limits.handshake_timeout;
                match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => connection.run(tls, deadline, handler).await,
                            Ok(Err(e)) => {
                                tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                connection.metrics.hit(name, Limit::Handshake);
                                tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                            }
                        }
                    }
                    None => connection.run(stream, deadline, handler).await,
                }
                open.dec();
                drop(slot);
            }
            .instrument(tracing::debug_span!("connection", listener = name, %peer)));
        }
        drop(tcp);
        tracing::info!(
            listener = name,
            connections = graceful.count(),
            "shutting down: draining in-flight requests"
        );
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                listener = name,
                "drain timed out; closing the remaining connections"
            );
        }
    }
}

/// One accepted connection's share of its listener.
struct Connection {
    name: &'static str,
    limits: Arc<Limits>,
    protocols: Arc<Protocols>,
    metrics: ConnectionMetrics,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    /// Detects the protocol by `deadline`, then serves until the client leaves, a limit
    /// closes the connection, or shutdown drains it.
    async fn run<IO, H, F>(self, mut io: IO, deadline: Instant, handler: H)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let name = self.name;
        let (prefix, http2) = match tokio::time::timeout_at(deadline, detect(&mut io)).await {
            Ok(Ok(Some(detected))) => detected,
            Ok(Ok(None)) | Ok(Err(_)) => return,
            Err(_) => {
                self.metrics.hit(name, Limit::Handshake);
                return;
            }
        };
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = activity.clone();
            service_fn(move |req| {
                let request = activity.begin();
                let reply = handler(req);
                async move {
                    let reply = reply.await;
                    drop(request);
                    Ok::<_, Infallible>(reply)
                }
            })
        };
        let io = TokioIo::new(Prefixed {
            prefix,
            read: 0,
            inner: io,
        });
        let idle = activity.idle(self.limits.header_read_timeout, self.limits.idle_timeout);
        let served = if http2 {
            let conn = self.protocols.http2.serve_connection(io, service);
            tokio::select! {
                served = self.watcher.watch(conn) => served.map_err(Closed::Error),
                limit = idle => Err(limit),
            }
        } else {
            let conn = self.protocols.http1.serve_connection(io, service);
            tokio::select! {
                served = self.watcher.watch(conn) => served.map_err(Closed::Error),
                limit = idle => Err(limit),
            }
        };
        match served {
            Ok(()) => {}
            Err(Closed::Limit(limit)) => self.metrics.hit(name, limit),
            Err(Closed::Error(e)) if e.is_timeout() => {
                let limit = if http2 {
                    Limit::KeepAlive
                } else {
                    Limit::Header
                };
                self.metrics.hit(name, limit);
            }
            Err(Closed::Error(e)) => {
                tracing::debug!(listener = name, error = %e, "connection ended with an error");
            }
        }
    }
}

enum Closed {
    Limit(Limit),
    Error(hyper::Error),
}

/// Reads until the bytes are, or cannot be, the HTTP/2 preface: (bytes read, HTTP/2?).
/// `None` when the client closed first.
async fn detect<IO: AsyncRead + Unpin>(io: &mut IO) -> std::io::Result<Option<(Bytes, bool)>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut len = 0;
    loop {
        let mut read = ReadBuf::new(&mut buf[len..]);
        std::future::poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut read)).await?;
        let n = read.filled().len();
        if n == 0 {
            return Ok(None);
        }
        len += n;
        if buf[..len] != H2_PREFACE[..len] {
            return Ok(Some((Bytes::copy_from_slice(&buf[..len]), false)));
        }
        if len == H2_PREFACE.len() {
            return Ok(Some((Bytes::copy_from_slice(&buf), true)));
        }
    }
}

/// The connection with the detection bytes put back in front.
struct Prefixed<IO> {
    prefix: Bytes,
    read: usize,
    inner: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read < this.prefix.len() {
            let rest = &this.prefix[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Requests in flight on one connection, and when the last one finished.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `started` to the end of the latest request, plus one (0: none
    /// finished yet).
    last_done: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// Resolves with the limit that closes the connection: no request before
    /// `first_within`, or none in flight for `idle_timeout`.
    async fn idle(self: Arc<Self>, first_within: Duration, idle_timeout: Duration) -> Closed {
        let started = self.started;
        let mut check = started + first_within;
        loop {
            tokio::time::sleep_until(check).await;
            let now = Instant::now();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                check = now + idle_timeout;
                continue;
            }
            let (due, limit) = match self.last_done.load(Ordering::Acquire) {
                0 => (started + first_within, Limit::Header),
                ms => (
                    started + Duration::from_millis(ms - 1) + idle_timeout,
                    Limit::Idle,
                ),
            };
            if due <= now {
                return Closed::Limit(limit);
            }
            check = due;
        }
    }
}

/// Marks one request in flight until dropped.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        let ms = u64::try_from(activity.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        activity.last_done.store(ms + 1, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
