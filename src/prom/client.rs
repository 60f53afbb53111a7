//! The I/O of `prom`: sends the batched queries of [`super::query`] to Prometheus over HTTP
//! (POST form bodies, so long unions never meet URL limits), with a timeout per request,
//! retries with exponential backoff, and a bounded number of requests in flight.
//!
//! A Prometheus that is down, slow or answering nonsense is an error that says so (the
//! caller keeps the last budgets and lets them go stale); nothing here invents a count.
//! A query Prometheus rejects (`bad_data`, `execution`: one SLO's PromQL is wrong) is cut in
//! halves until the SLO is found; only that SLO is left without data.
//!
//! A canary check ([`read_tracks`]) sends its one query the same way: same retries, same
//! bisection of a rejected query.

use super::parse::{self, Readings};
use super::query::{self, Batch, Source, TrackCounts, TrackQuery};
use crate::api::Timestamp;
use crate::index::{Index, ObjectKey, SloSignals};
use prometheus_http_query::error::PrometheusErrorType;
use prometheus_http_query::response::Data;
use prometheus_http_query::{Client, Error};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// SLOs per batched union. 250 SLOs of typical selectors make a POST body of about 75 KB,
/// far below Prometheus's 10 MB form limit and the 1 MB of common proxies. Measured on
/// 1,000 SLOs (Prometheus 2.42, 2 cores): 250 per union answered as fast as 50 or 100, and
/// faster than 500 or 1,000, whose unions cost Prometheus more than their parts.
pub const DEFAULT_BATCH_SIZE: usize = 250;

/// How to reach Prometheus and how hard to try.
#[derive(Clone, Debug, PartialEq)]
pub struct PromConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (a path prefix is kept).
    pub url: String,
    /// Per request, sent to Prometheus as the query timeout too.
    pub timeout: Duration,
    /// Retries after a failed request (so `retries + 1` attempts).
    pub retries: u32,
    /// First pause before a retry; doubles each time.
    pub backoff: Duration,
    pub batch_size: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Read the series recorded by `budgetgate rules` instead of the SLOs' own.
    pub use_recording_rules: bool,
}

impl PromConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PromConfig {
            url: url.into(),
            timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(250),
            batch_size: DEFAULT_BATCH_SIZE,
            concurrency: 4,
            use_recording_rules: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PromError {
    #[error("invalid Prometheus URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error(
        "Prometheus at {url} did not answer the {query} query after {attempts} attempts: {reason}"
    )]
    Unavailable {
        url: String,
        query: String,
        attempts: usize,
        reason: String,
    },
    #[error("Prometheus at {url} rejected the {query} query: {reason}")]
    Rejected {
        url: String,
        query: String,
        reason: String,
    },
    #[error("Prometheus at {url} answered the {query} query with {reason}")]
    Answer {
        url: String,
        query: String,
        reason: String,
    },
    #[error("cannot run the Prometheus client: {0}")]
    Runtime(String),
}

/// The counts of every SLO at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The instant Prometheus evaluated the queries at (whole seconds).
    pub evaluated_at: Timestamp,
    pub slos: Vec<SloSignals>,
    /// HTTP requests sent, retries and bisections included.
    pub requests: usize,
    /// Distinct ranges read (burn windows and periods).
    pub ranges: usize,
    /// What was missing or left out, one line per SLO.
    pub notes: Vec<String>,
}

/// What one canary check read.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackReading {
    /// Every SLO of the query's `members`: its counts, or why it has none (Prometheus
    /// rejected its PromQL, or its answer is not a count).
    pub counts: BTreeMap<ObjectKey, Result<TrackCounts, String>>,
    /// HTTP requests sent: 1, plus retries, plus 2 per halving of a rejected query; 0 when
    /// the query has no members. What "Prometheus queries per check" reports.
    pub requests: usize,
}

enum Failure {
    /// The query is wrong: retrying cannot help.
    Rejected(String),
    /// Prometheus did not answer usefully, retries included.
    Unavailable(String),
}

struct Outcome {
    batch: Batch,
    attempts: usize,
    result: Result<Data, Failure>,
}

/// Every SLO's period counts cluster by cluster at `at`, in one request (DESIGN §8): per
/// SLO, per value of the series label `label`, bad and total events.
pub async fn read_cluster_split(
    index: &Index,
    label: &str,
    at: Timestamp,
    config: &PromConfig,
) -> Result<parse::ClusterSplit, PromError> {
    let plan = query::plan(index, at);
    let split = query::cluster_split_query(&plan, label);
    if split.promql.is_empty() {
        return Ok(BTreeMap::new());
    }
    let what = format!("cluster split ({} SLOs)", split.members.len());
    let client = client(config)?;
    match send(&client, &split.promql, &what, plan.at.as_second(), config).await {
        (_, Ok(data)) => parse::split_clusters(&data, label).map_err(|e| PromError::Answer {
            url: config.url.clone(),
            query: what,
            reason: e.to_string(),
        }),
        (_, Err(Failure::Rejected(reason))) => Err(PromError::Rejected {
            url: config.url.clone(),
            query: what,
            reason,
        }),
        (attempts, Err(Failure::Unavailable(reason))) => Err(PromError::Unavailable {
            url: config.url.clone(),
            query: what,
            attempts,
            reason,
        }),
    }
}

/// Reads every SLO's counts at `at` from Prometheus.
pub async fn evaluate(
    index: &Index,
    at: Timestamp,
    config: &PromConfig,
) -> Result<Evaluation, PromError> {
    let plan = query::plan(index, at);
    let batches = query::batches(&plan, config.use_recording_rules, config.batch_size);
    let ranges = batches
        .iter()
        .map(|b| b.range_seconds)
        .collect::<BTreeSet<_>>()
        .len();
    let client = client(config)?;
    let config = Arc::new(config.clone());
    let time = plan.at.as_second();
    let mut queue: VecDeque<Batch> = batches.into();
    let mut in_flight = JoinSet::new();
    let mut readings = Readings::new();
    let mut notes = Vec::new();
    let mut rejected: BTreeMap<ObjectKey, String> = BTreeMap::new();
    let mut requests = 0;
    loop {
        while in_flight.len() < config.concurrency.max(1) {
            let Some(batch) = queue.pop_front() else {
                break;
            };
            let (client, config) = (client.clone(), Arc::clone(&config));
            in_flight.spawn(async move {
                let (attempts, result) =
                    send(&client, &batch.promql, &batch.describe(), time, &config).await;
                Outcome {
                    batch,
                    attempts,
                    result,
                }
            });
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let outcome = joined.map_err(|e| PromError::Runtime(e.to_string()))?;
        requests += outcome.attempts;
        let batch = outcome.batch;
        match outcome.result {
            Ok(data) => {
                let (values, more) =
                    parse::split(&batch, &data).map_err(|e| PromError::Answer {
                        url: config.url.clone(),
                        query: batch.describe(),
                        reason: e.to_string(),
                    })?;
                tracing::debug!(query = %batch.describe(), series = values.len(), "read");
                notes.extend(more);
                readings
                    .entry((batch.range_seconds, batch.count))
                    .or_default()
                    .extend(values);
            }
            Err(Failure::Rejected(reason)) => match batch.halves() {
                Some((first, second)) => {
                    tracing::debug!(query = %batch.describe(), %reason, "rejected; bisecting");
                    queue.push_back(first);
                    queue.push_back(second);
                }
                None if batch.source == Source::Direct && batch.members.len() == 1 => {
                    let key = batch.members[0].0.clone();
                    rejected.entry(key).or_insert(reason);
                }
                None => {
                    return Err(PromError::Rejected {
                        url: config.url.clone(),
                        query: batch.describe(),
                        reason,
                    });
                }
            },
            Err(Failure::Unavailable(reason)) => {
                return Err(PromError::Unavailable {
                    url: config.url.clone(),
                    query: batch.describe(),
                    attempts: outcome.attempts,
                    reason,
                });
            }
        }
    }
    for (key, reason) in rejected {
        notes.push(format!("{key}: Prometheus rejected its query: {reason}"));
    }
    let (slos, more) = parse::signals(&plan, &readings);
    notes.extend(more);
    Ok(Evaluation {
        evaluated_at: plan.at,
        slos,
        requests,
        ranges,
        notes,
    })
}

/// [`evaluate`] on a runtime of its own, for the command line.
pub fn evaluate_blocking(
    index: &Index,
    at: Timestamp,
    config: &PromConfig,
) -> Result<Evaluation, PromError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PromError::Runtime(e.to_string()))?
        .block_on(evaluate(index, at, config))
}

/// A client for `config.url` with its timeout.
pub fn client(config: &PromConfig) -> Result<Client, PromError> {
    // The process-wide rustls provider; main installs it, library users may not have.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = prometheus_http_query::reqwest::Client::builder()
        .timeout(config.timeout)
        .build()
        .map_err(|e| PromError::Runtime(e.to_string()))?;
    Client::from(http, &config.url).map_err(|e| PromError::Url {
        url: config.url.clone(),
        message: error_chain(&e),
    })
}

/// One series over `[start, end]` every `step` seconds: the samples of the first series of
/// a range query (the `sum(...)` expressions of [`super::query`] answer one series, or
/// none when the data is missing). One attempt: the scoreboard asks again on the next
/// page load rather than holding a page for retries.
pub async fn range(
    client: &Client,
    config: &PromConfig,
    promql: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<(i64, f64)>, PromError> {
    let answer = client
        .query_range(promql, start, end, step.max(1) as f64)
        .timeout(i64::try_from(config.timeout.as_millis()).unwrap_or(i64::MAX))
        .post()
        .await;
    match answer {
        Ok(result) => match result.into_inner().0 {
            Data::Matrix(series) => Ok(series
                .first()
                .map(|s| {
                    s.samples()
                        .iter()
                        .map(|x| (x.timestamp() as i64, x.value()))
                        .filter(|(_, v)| v.is_finite())
                        .collect()
                })
                .unwrap_or_default()),
            _ => Err(PromError::Answer {
                url: config.url.clone(),
                query: promql.to_owned(),
                reason: "a result that is not a range of samples".into(),
            }),
        },
        Err(e) => Err(match classify(&e, config.timeout) {
            Failure::Rejected(reason) => PromError::Rejected {
                url: config.url.clone(),
                query: promql.to_owned(),
                reason,
            },
            Failure::Unavailable(reason) => PromError::Unavailable {
                url: config.url.clone(),
                query: promql.to_owned(),
                attempts: 1,
                reason,
            },
        }),
    }
}

/// Reads a canary check's counts at `at` (DESIGN §7.4): one request, retried like the
/// budget batches; a rejected query is cut in halves until the SLO whose PromQL Prometheus
/// rejects is found, and only that SLO's entry is an `Err`. A Prometheus that does not
/// answer is [`PromError::Unavailable`]: the canary holds, nothing is judged bad.
pub async fn read_tracks(
    config: &PromConfig,
    query: &TrackQuery,
    at: Timestamp,
) -> Result<TrackReading, PromError> {
    let mut reading = TrackReading {
        counts: BTreeMap::new(),
        requests: 0,
    };
    if query.members.is_empty() {
        return Ok(reading);
    }
    let client = client(config)?;
    let mut queue = VecDeque::from([query.clone()]);
    while let Some(part) = queue.pop_front() {
        let (attempts, result) = send(
            &client,
            &part.promql,
            &part.describe(),
            at.as_second(),
            config,
        )
        .await;
        reading.requests += attempts;
        match result {
            Ok(data) => {
                let counts = parse::split_tracks(&part, &data).map_err(|e| PromError::Answer {
                    url: config.url.clone(),
                    query: part.describe(),
                    reason: e.to_string(),
                })?;
                reading.counts.extend(counts);
            }
            Err(Failure::Rejected(reason)) => match part.halves() {
                Some((first, second)) => {
                    tracing::debug!(query = %part.describe(), %reason, "rejected; bisecting");
                    queue.push_back(first);
                    queue.push_back(second);
                }
                None => {
                    for (key, _) in &part.members {
                        let why = format!("Prometheus rejected its query: {reason}");
                        reading.counts.insert(key.clone(), Err(why));
                    }
                }
            },
            Err(Failure::Unavailable(reason)) => {
                return Err(PromError::Unavailable {
                    url: config.url.clone(),
                    query: part.describe(),
                    attempts,
                    reason,
                });
            }
        }
    }
    Ok(reading)
}

/// One query (`what` names it in logs), retried with backoff while Prometheus does not
/// answer: the attempts made and the answer.
async fn send(
    client: &Client,
    promql: &str,
    what: &str,
    time: i64,
    config: &PromConfig,
) -> (usize, Result<Data, Failure>) {
    let mut attempts = 0;
    let mut pause = config.backoff;
    loop {
        attempts += 1;
        let answer = client
            .query(promql)
            .at(time)
            .timeout(i64::try_from(config.timeout.as_millis()).unwrap_or(i64::MAX))
            .post()
            .await;
        let reason = match answer {
            Ok(result) => return (attempts, Ok(result.into_inner().0)),
            Err(e) => match classify(&e, config.timeout) {
                Failure::Rejected(reason) => return (attempts, Err(Failure::Rejected(reason))),
                Failure::Unavailable(reason) => reason,
            },
        };
        if attempts > config.retries as usize {
            return (attempts, Err(Failure::Unavailable(reason)));
        }
        tracing::warn!(query = %what, attempt = attempts, %reason, "Prometheus query failed; retrying");
        tokio::time::sleep(pause).await;
        pause = pause.saturating_mul(2);
    }
}

fn classify(error: &Error, timeout: Duration) -> Failure {
    match error {
        Error::Prometheus(e) => match e.error_type() {
            PrometheusErrorType::BadData | PrometheusErrorType::Execution => {
                Failure::Rejected(e.message().to_owned())
            }
            _ => Failure::Unavailable(e.to_string()),
        },
        Error::Client(e) if e.inner().is_some_and(|r| r.is_timeout()) => {
            Failure::Unavailable(format!("no answer within {timeout:?}"))
        }
        Error::Client(_) => Failure::Unavailable(error_chain(error)),
        _ => Failure::Rejected(error_chain(error)),
    }
}

/// `message: cause: root cause`, without repeats.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
