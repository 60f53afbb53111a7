//! The scoreboard's I/O: a read-only plain-HTTP server on `--dashboard-listen` that renders
//! the views from the live [`Index`] and, for the team page's charts, asks Prometheus for
//! range queries. Everything else on the page is the published state; nothing here writes.
//!
//! | path | answer |
//! |---|---|
//! | `/` | platform page |
//! | `/teams/<team>` | team page (404 for a team budgetgate does not know) |
//! | `/adoption` | adoption page |
//! | `/api/v1/platform`, `/api/v1/teams/<team>`, `/api/v1/adoption` | the same views as JSON |
//! | `/healthz` | `ok` |

use super::{Charts, Series, html};
use crate::api::Window;
use crate::budget::{Period, budget_ratio};
use crate::index::{Index, ObjectKey};
use crate::prom::client::{self, PromConfig};
use crate::prom::query::{Count, Events};
use crate::webhook::Shared;
use crate::webhook::http::Reply;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Points on a burn-down chart (about).
const BURNDOWN_POINTS: i64 = 120;
/// The burn chart covers this much history, one point every [`BURN_STEP`].
const BURN_RANGE: i64 = 6 * 3_600;
const BURN_STEP: i64 = 120;
/// A page waits at most this long for Prometheus.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Scoreboard {
    shared: Arc<Shared>,
    prometheus: Option<(PromConfig, prometheus_http_query::Client)>,
}

impl Scoreboard {
    /// `prometheus`: where the charts' series come from; without it the charts say so.
    pub fn new(shared: Arc<Shared>, prometheus: Option<PromConfig>) -> Result<Self, String> {
        let prometheus = match prometheus {
            Some(mut config) => {
                config.timeout = config.timeout.min(QUERY_TIMEOUT);
                let client = client::client(&config).map_err(|e| e.to_string())?;
                Some((config, client))
            }
            None => None,
        };
        Ok(Scoreboard { shared, prometheus })
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the scoreboard is read-only: use GET\n",
            );
        }
        let path = req.uri().path().to_owned();
        let index = self.shared.index.load_full();
        let now = self.shared.clock.now();
        match path.as_str() {
            "/" => page(
                StatusCode::OK,
                html::platform(&super::platform(&index, now)),
            ),
            "/adoption" => page(
                StatusCode::OK,
                html::adoption(&super::adoption(&index, now)),
            ),
            "/api/v1/platform" => json(&super::platform(&index, now)),
            "/api/v1/adoption" => json(&super::adoption(&index, now)),
            "/healthz" => text(StatusCode::OK, "ok\n"),
            _ => {
                let (api, team) = match (
                    path.strip_prefix("/teams/"),
                    path.strip_prefix("/api/v1/teams/"),
                ) {
                    (Some(team), _) => (false, team),
                    (_, Some(team)) => (true, team),
                    _ => {
                        return page(
                            StatusCode::NOT_FOUND,
                            html::not_found(&format!("nothing is served at {path}")),
                        );
                    }
                };
                let team = decode(team);
                let charts = self.charts(&index, &team, now).await;
                match super::team(&index, &team, &charts, now) {
                    Some(view) if api => json(&view),
                    Some(view) => page(StatusCode::OK, html::team(&view)),
                    None if api => text(StatusCode::NOT_FOUND, &format!("no team {team:?}\n")),
                    None => page(
                        StatusCode::NOT_FOUND,
                        html::not_found(&format!(
                            "budgetgate knows no team {team:?}: no managed namespace is labelled with it"
                        )),
                    ),
                }
            }
        }
    }

    /// Both charts of every SLO of `team`, read from Prometheus concurrently.
    async fn charts(
        &self,
        index: &Index,
        team: &str,
        now: crate::api::Timestamp,
    ) -> BTreeMap<ObjectKey, Charts> {
        let Some(policy) = &index.policy else {
            return BTreeMap::new();
        };
        let mut jobs = Vec::new();
        for (key, spec) in &index.slos {
            let Some((t, tier)) = index.team_of(&key.namespace) else {
                continue;
            };
            if t != team {
                continue;
            }
            let window: Option<Window> = spec
                .window
                .clone()
                .or_else(|| policy.tier(&tier).map(|t| t.window.clone()));
            let Some(window) = window else { continue };
            let period = Period::at(&window, now);
            let b = budget_ratio(spec.objective);
            let events =
                Events::from_indicator(&spec.indicator, &policy.confinement(&key.namespace));
            jobs.push(async move {
                let now = now.as_second();
                let end = period.start.as_second() + period.length_seconds;
                let burn_start = now - BURN_RANGE;
                let charts = match (&self.prometheus, events) {
                    (None, _) => Charts {
                        burndown: Series::missing(
                            period.start.as_second(),
                            end,
                            "no Prometheus configured",
                        ),
                        burn: Series::missing(burn_start, now, "no Prometheus configured"),
                    },
                    (_, Err(e)) => Charts {
                        burndown: Series::missing(period.start.as_second(), end, e.clone()),
                        burn: Series::missing(burn_start, now, e),
                    },
                    (Some((config, client)), Ok(events)) => {
                        let (burndown, burn) = tokio::join!(
                            burndown(
                                client,
                                config,
                                &events,
                                b,
                                period.start.as_second(),
                                end,
                                now
                            ),
                            burn(client, config, &events, b, burn_start, now)
                        );
                        Charts { burndown, burn }
                    }
                };
                (key.clone(), charts)
            });
        }
        futures_util::future::join_all(jobs)
            .await
            .into_iter()
            .collect()
    }
}

type Points = Vec<(i64, f64)>;

/// Bad events (by time) and all events over `range` at every step of `[start, end]`.
async fn counts(
    client: &prometheus_http_query::Client,
    config: &PromConfig,
    events: &Events,
    range: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Result<(BTreeMap<i64, f64>, Points), String> {
    let (bad, total) = (
        events.expr(Count::Bad, range),
        events.expr(Count::Total, range),
    );
    let (bad, total) = tokio::join!(
        client::range(client, config, &bad, start, end, step),
        client::range(client, config, &total, start, end, step)
    );
    match (bad, total) {
        (Ok(bad), Ok(total)) => Ok((bad.into_iter().collect(), total)),
        (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
    }
}

/// Remaining budget through the period: budget spent since it began (bad events summed
/// step by step) against the budget of the period's events so far, so the last point is
/// the SLO's remaining budget now.
async fn burndown(
    client: &prometheus_http_query::Client,
    config: &PromConfig,
    events: &Events,
    b: f64,
    start: i64,
    end: i64,
    now: i64,
) -> Series {
    let step = ((end - start) / BURNDOWN_POINTS).max(60);
    // Steps end at `now`, so the last one is not cut short.
    let first = now - ((now - start) / step) * step;
    let (bad, total) = match counts(
        client,
        config,
        events,
        &format!("{step}s"),
        first + step,
        now,
        step,
    )
    .await
    {
        Ok(counts) => counts,
        Err(e) => return Series::missing(start, end, e),
    };
    if total.is_empty() {
        return Series::missing(
            start,
            end,
            "Prometheus has no samples of this SLO in the period",
        );
    }
    let all: f64 = total.iter().map(|(_, v)| v).sum();
    // Every step, so the line stays flat where nothing was spent (or nothing recorded).
    let mut points = vec![(first, 1.0)];
    let mut spent = 0.0;
    for t in (first + step..=now).step_by(step as usize) {
        spent += bad.get(&t).copied().unwrap_or(0.0).max(0.0);
        let remaining = if all > 0.0 {
            1.0 - spent / (b * all)
        } else {
            1.0
        };
        points.push((t, remaining));
    }
    Series {
        start,
        end,
        points,
        missing: None,
    }
}

/// Burn rate over 1h windows, every [`BURN_STEP`], over the last [`BURN_RANGE`].
async fn burn(
    client: &prometheus_http_query::Client,
    config: &PromConfig,
    events: &Events,
    b: f64,
    start: i64,
    now: i64,
) -> Series {
    let (bad, total) = match counts(client, config, events, "1h", start, now, BURN_STEP).await {
        Ok(counts) => counts,
        Err(e) => return Series::missing(start, now, e),
    };
    let points: Vec<(i64, f64)> = total
        .into_iter()
        .filter(|(_, total)| *total > 0.0)
        .map(|(t, total)| (t, bad.get(&t).copied().unwrap_or(0.0).max(0.0) / total / b))
        .collect();
    if points.is_empty() {
        return Series::missing(
            start,
            now,
            "Prometheus has no samples of this SLO in the last 6h",
        );
    }
    Series {
        start,
        end: now,
        points,
        missing: None,
    }
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = segment.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_type(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn page(status: StatusCode, body: String) -> Reply {
    with_type(status, body, "text/html; charset=utf-8")
}

fn text(status: StatusCode, body: &str) -> Reply {
    with_type(status, body.to_owned(), "text/plain; charset=utf-8")
}

fn json<T: serde::Serialize>(value: &T) -> Reply {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => with_type(StatusCode::OK, body, "application/json"),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode: {e}\n"),
        ),
    }
}

/// Serves the scoreboard until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    limits: crate::listener::Limits,
    scoreboard: Arc<Scoreboard>,
    shutdown: impl Future<Output = ()>,
) {
    let listener = crate::listener::Listener {
        name: "scoreboard",
        tcp: listener,
        tls: None,
        limits,
        metrics: scoreboard.shared.metrics.connections.clone(),
    };
    let handler = move |req: Request<Incoming>| {
        let scoreboard = scoreboard.clone();
        async move { scoreboard.handle(req).await }
    };
    listener.serve(handler, shutdown).await;
}
