//! The webhook's two listeners over [`crate::listener`]: admission reviews over TLS, and
//! the plain metrics port (which also answers `/healthz` and `/readyz`, so a flood on the
//! review port cannot fail the liveness probe).

use super::Shared;
use super::http::{Reply, handle};
use crate::listener::{Limits, Listener};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Serves admission reviews over TLS until `shutdown` resolves, then drains.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let listener = Listener {
        name: "reviews",
        tcp: listener,
        tls: Some(TlsAcceptor::from(tls)),
        limits,
        metrics: shared.metrics.connections.clone(),
    };
    let handler = move |req| {
        let shared = shared.clone();
        async move {
            match handle(req, shared).await {
                Ok(reply) => reply,
                Err(never) => match never {},
            }
        }
    };
    listener.serve(handler, shutdown).await;
}

/// Plain HTTP `GET /metrics`, `/healthz` and `/readyz` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    limits: Limits,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    use http_body_util::Full;
    use hyper::{Method, Response, StatusCode};
    let listener = Listener {
        name: "metrics",
        tcp: listener,
        tls: None,
        limits,
        metrics: shared.metrics.connections.clone(),
    };
    let text = |status: StatusCode, body: &'static str| -> Reply {
        let mut r = Response::new(Full::new(body.into()));
        *r.status_mut() = status;
        r
    };
    let handler = move |req: hyper::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move {
            let path = req.uri().path();
            if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
                return text(
                    StatusCode::NOT_FOUND,
                    "only /metrics, /healthz and /readyz are served here\n",
                );
            }
            if req.method() != Method::GET {
                return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
            }
            match path {
                "/healthz" => text(StatusCode::OK, "ok\n"),
                "/readyz" => match shared.not_ready() {
                    None => text(StatusCode::OK, "ok\n"),
                    Some(why) => {
                        let mut r = Response::new(Full::new(format!("not ready: {why}\n").into()));
                        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                        r
                    }
                },
                _ => {
                    shared.observe_state_age();
                    let mut r = Response::new(Full::new(shared.metrics.encode().into()));
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                }
            }
        }
    };
    listener.serve(handler, shutdown).await;
}
