//! Routing and answering: AdmissionReview over HTTP. Reads only the shared index; the
//! request path never waits on Prometheus or the apiserver.

use super::Shared;
use crate::decision::{Decision, Operation, ReviewError, decide, parse_review};
use crate::listener::Limit;
use crate::webhook::intake::Refused;
use crate::webhook::metrics::{NamespaceLabel, RequestLabels, SourceLabel, WebhookLabel};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

pub use crate::listener::Reply;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn text(status: StatusCode, message: impl Into<String>) -> Reply {
    let mut message = message.into();
    message.push('\n');
    reply(status, "text/plain; charset=utf-8", message)
}

/// The fixed answer of the bare endpoint (load benchmarks' floor).
const BARE_ANSWER: &[u8] =
    br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#;

pub async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Reply, Infallible> {
    let path = req.uri().path();
    let route = match path {
        "/validate" => Route::Review(Webhook::Validate),
        "/mutate" => Route::Review(Webhook::Mutate),
        "/healthz" => Route::Health,
        "/readyz" => Route::Ready,
        "/bare" if shared.bare_endpoint => Route::Bare,
        _ => {
            shared
                .metrics
                .rejected
                .get_or_create(&SourceLabel {
                    source: "not_found",
                })
                .inc();
            return Ok(text(
                StatusCode::NOT_FOUND,
                format!("no such path {path}; the webhook serves POST /validate and /mutate"),
            ));
        }
    };
    let (allowed, allowed_text) = match route {
        Route::Review(_) | Route::Bare => (Method::POST, "POST"),
        Route::Health | Route::Ready => (Method::GET, "GET"),
    };
    if req.method() != allowed {
        shared
            .metrics
            .rejected
            .get_or_create(&SourceLabel { source: "method" })
            .inc();
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} {path} is not served; use {allowed}", req.method()),
        );
        response
            .headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static(allowed_text));
        return Ok(response);
    }
    Ok(match route {
        Route::Health => text(StatusCode::OK, "ok"),
        Route::Ready => match shared.not_ready() {
            None => text(StatusCode::OK, "ok"),
            Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
        },
        Route::Bare => match shared.intake.admit(req).await {
            Ok(_) => reply(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(BARE_ANSWER),
            ),
            Err(why) => refused(&shared, why),
        },
        Route::Review(webhook) => match shared.intake.admit(req).await {
            Ok(admitted) => review(&admitted.body, webhook, &shared),
            Err(why) => {
                if !matches!(why, Refused::Limit(_)) {
                    shared
                        .metrics
                        .rejected
                        .get_or_create(&SourceLabel { source: "body" })
                        .inc();
                }
                refused(&shared, why)
            }
        },
    })
}

enum Route {
    Review(Webhook),
    Health,
    Ready,
    Bare,
}

fn too_large(size: impl std::fmt::Display) -> Reply {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("review is {size} bytes, over the 7 MiB limit"),
    )
}

/// The answer to a body not taken in; limits are counted on the `reviews` listener.
fn refused(shared: &Shared, why: Refused) -> Reply {
    let limits = &shared.intake.limits;
    let retry = |message: String| {
        let mut response = text(StatusCode::SERVICE_UNAVAILABLE, message);
        response
            .headers_mut()
            .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
        response
    };
    match why {
        Refused::Limit(limit) => {
            shared.metrics.connections.hit("reviews", limit);
            match limit {
                Limit::InFlight => retry(format!(
                    "reviews in flight are at their limit of {}; retry",
                    limits.max_in_flight
                )),
                Limit::BodyBudget => retry(format!(
                    "review bodies in flight would exceed their {}-byte budget; retry",
                    limits.body_budget
                )),
                _ => text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} ms",
                        limits.body_read_timeout.as_millis()
                    ),
                ),
            }
        }
        Refused::TooLarge(size) => too_large(size),
        Refused::Unreadable(e) => text(
            StatusCode::BAD_REQUEST,
            format!("could not read the body: {e}"),
        ),
    }
}

fn operation(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Answers one review from the current index. Never awaits.
pub fn review(body: &[u8], webhook: Webhook, shared: &Shared) -> Reply {
    let start = Instant::now();
    let request = match parse_review(body) {
        Ok(request) => request,
        Err(ReviewError::TooLarge(size)) => return too_large(size),
        Err(e) => return malformed(shared, e.to_string()),
    };
    let index = shared.index.load();
    let decision = match decide(&request, &index, shared.clock.now()) {
        Ok(d) => d,
        Err(e) => return malformed(shared, e.to_string()),
    };
    let response = match webhook {
        Webhook::Validate => decision.validate_response(),
        Webhook::Mutate => decision.mutate_response(),
    };
    let body = response.review_bytes();
    record(
        shared,
        webhook,
        operation(request.operation),
        &decision,
        start,
    );
    reply(StatusCode::OK, "application/json", body)
}

/// 400 for a body that is not a usable AdmissionReview, counted.
fn malformed(shared: &Shared, message: String) -> Reply {
    shared
        .metrics
        .rejected
        .get_or_create(&SourceLabel {
            source: "malformed",
        })
        .inc();
    text(StatusCode::BAD_REQUEST, message)
}

fn record(
    shared: &Shared,
    webhook: Webhook,
    operation: &'static str,
    d: &Decision,
    start: Instant,
) {
    let m = &shared.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            webhook: webhook.as_str(),
            operation,
            decision: d.verdict(),
            reason: d.reason.as_str(),
        })
        .inc();
    m.duration
        .get_or_create(&WebhookLabel {
            webhook: webhook.as_str(),
        })
        .observe(start.elapsed().as_secs_f64());
    if webhook == Webhook::Validate && d.would_deny && d.mode == crate::api::Enforcement::Dryrun {
        m.would_deny
            .get_or_create(&NamespaceLabel {
                namespace: d.namespace.clone(),
            })
            .inc();
    }
    tracing::info!(
        webhook = webhook.as_str(),
        namespace = %d.namespace,
        deployment = %d.name,
        team = d.team.as_deref().unwrap_or("-"),
        class = d.class.map_or("-", |c| c.as_str()),
        verdict = d.verdict(),
        reason = d.reason.as_str(),
        dry_run = d.dry_run,
        "admission decision"
    );
}
