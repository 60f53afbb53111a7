//! traffic-sim: request metrics for the pods of a cluster whose pods run no code (kwok).
//!
//! Watches every Pod; each Ready, non-terminating pod that a ReplicaSet controls "serves"
//! `--rate` requests per second, counted in `http_requests_total{namespace, deployment, pod,
//! track, code}` and `http_request_duration_seconds{namespace, deployment, pod, track}`,
//! served on `--listen` at `/metrics` (OpenMetrics) for Prometheus to scrape. How a pod
//! behaves is what was deployed: an image tag ending `-faulty` answers every 5th request
//! with a 500, `-errP` fails exactly P percent (`-err5`, `-err0.2`: stable pods running such
//! an image give a service a background error rate), `-slow` takes 1.5 s, anything else is
//! healthy at 50 ms (see `traffic.rs`).
//!
//! A pod's series start at 0 when it starts serving (so `increase()` sees the start) and
//! are dropped when it stops (deleted, terminating or unready), as a real pod's /metrics
//! would vanish with it; Prometheus keeps what it already scraped, so a budget spent by a
//! pod stays spent after the pod is gone.
//!
//! Each pod's own series are also served at `/pods/<namespace>/<pod>/metrics` as the pod's
//! /metrics would be: without `namespace`, `pod` or `track`, which the scrape adds. With
//! `--targets FILE` the simulator writes a Prometheus file_sd file listing those endpoints
//! with the labels Kubernetes service discovery gives a pod (`__meta_kubernetes_namespace`,
//! `__meta_kubernetes_pod_name`, `__meta_kubernetes_pod_label_budgetgate_dev_track`), so a
//! Prometheus without Kubernetes discovery scrapes them through the same relabel rules as in
//! a real cluster; a pod then serves nothing until its endpoint has been scraped once, so
//! the first sample is the 0 its counters start at.
//!
//! cargo run --example traffic-sim -- --kubeconfig e2e/.run/kubeconfig --listen 127.0.0.1:22492

#![forbid(unsafe_code)]

mod traffic;

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use traffic::{PodKey, Serving};

#[derive(Parser, Debug)]
#[command(
    name = "traffic-sim",
    about = "Simulated request metrics for every Ready pod of a cluster, by image tag: \
             -faulty = 20% errors, -errP = P% errors, -slow = 1.5 s, else healthy"
)]
struct Args {
    /// Kubeconfig to watch Pods with (default: in-cluster or ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where /metrics and /healthz are served.
    #[arg(long, env = "TRAFFIC_SIM_LISTEN", default_value = "127.0.0.1:22492")]
    listen: SocketAddr,
    /// Requests per second each serving pod receives.
    #[arg(long, env = "TRAFFIC_SIM_RATE", default_value_t = 20)]
    rate: u64,
    /// Write the per-pod endpoints here as Prometheus file_sd targets (JSON), and count a
    /// pod's requests only once its endpoint has been scraped.
    #[arg(long)]
    targets: Option<PathBuf>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    deployment: String,
    pod: String,
    track: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    namespace: String,
    deployment: String,
    pod: String,
    track: &'static str,
}

fn requests_labels(key: &PodKey, code: &'static str) -> RequestLabels {
    RequestLabels {
        namespace: key.namespace.clone(),
        deployment: key.deployment.clone(),
        pod: key.pod.clone(),
        track: key.track,
        code,
    }
}

fn duration_labels(key: &PodKey) -> DurationLabels {
    DurationLabels {
        namespace: key.namespace.clone(),
        deployment: key.deployment.clone(),
        pod: key.pod.clone(),
        track: key.track,
    }
}

/// A pod's own series, as its /metrics would serve them: the scrape adds where it runs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodRequestLabels {
    deployment: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodDurationLabels {
    deployment: String,
}

/// One pod's endpoint: its series, and whether Prometheus has scraped it yet.
struct PodEndpoint {
    registry: Registry,
    requests: Family<PodRequestLabels, Counter>,
    duration: Family<PodDurationLabels, Histogram, fn() -> Histogram>,
    scraped: AtomicBool,
}

impl PodEndpoint {
    fn new(key: &PodKey) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<PodRequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Simulated requests served, by status code",
            requests.clone(),
        );
        let duration =
            Family::<PodDurationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "Simulated request latency",
            duration.clone(),
        );
        for code in ["200", "500"] {
            let _ = requests.get_or_create(&PodRequestLabels {
                deployment: key.deployment.clone(),
                code,
            });
        }
        let _ = duration.get_or_create(&PodDurationLabels {
            deployment: key.deployment.clone(),
        });
        PodEndpoint {
            registry,
            requests,
            duration,
            scraped: AtomicBool::new(false),
        }
    }

    fn count(&self, key: &PodKey, ok: u64, errors: u64, latency: f64) {
        let deployment = || key.deployment.clone();
        self.requests
            .get_or_create(&PodRequestLabels {
                deployment: deployment(),
                code: "200",
            })
            .inc_by(ok);
        self.requests
            .get_or_create(&PodRequestLabels {
                deployment: deployment(),
                code: "500",
            })
            .inc_by(errors);
        let histogram = self.duration.get_or_create(&PodDurationLabels {
            deployment: deployment(),
        });
        for _ in 0..ok + errors {
            histogram.observe(latency);
        }
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.025, 0.1, 0.3, 1.0, 3.0, 10.0])
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    /// Per pod, by (namespace, pod).
    pods: Mutex<BTreeMap<(String, String), Arc<PodEndpoint>>>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Simulated requests served, by pod and status code",
            requests.clone(),
        );
        let duration = Family::<DurationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Simulated request latency, by pod",
            duration.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            pods: Mutex::default(),
        }
    }

    fn start(&self, key: &PodKey) {
        for code in ["200", "500"] {
            let _ = self.requests.get_or_create(&requests_labels(key, code));
        }
        let _ = self.duration.get_or_create(&duration_labels(key));
        self.lock_pods()
            .insert(pod_id(key), Arc::new(PodEndpoint::new(key)));
    }

    fn stop(&self, key: &PodKey) {
        for code in ["200", "500"] {
            self.requests.remove(&requests_labels(key, code));
        }
        self.duration.remove(&duration_labels(key));
        self.lock_pods().remove(&pod_id(key));
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Arc<PodEndpoint>>> {
        self.pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn endpoint(&self, key: &PodKey) -> Option<Arc<PodEndpoint>> {
        self.lock_pods().get(&pod_id(key)).cloned()
    }

    /// One pod's /metrics (marking it scraped), or None for a pod that does not serve.
    fn encode_pod(&self, namespace: &str, pod: &str) -> Option<String> {
        let endpoint = self
            .lock_pods()
            .get(&(namespace.to_owned(), pod.to_owned()))
            .cloned()?;
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &endpoint.registry);
        endpoint.scraped.store(true, Ordering::SeqCst);
        Some(out)
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn pod_id(key: &PodKey) -> (String, String) {
    (key.namespace.clone(), key.pod.clone())
}

/// Prometheus file_sd targets: every serving pod's endpoint on `listen`, with the labels
/// Kubernetes service discovery would give the pod.
fn targets_file(listen: SocketAddr, active: &BTreeMap<PodKey, Active>) -> String {
    let groups: Vec<serde_json::Value> = active
        .keys()
        .map(|key| {
            let mut labels = serde_json::json!({
                "__metrics_path__": format!("/pods/{}/{}/metrics", key.namespace, key.pod),
                "__meta_kubernetes_namespace": key.namespace,
                "__meta_kubernetes_pod_name": key.pod,
            });
            if key.track == "canary" {
                labels["__meta_kubernetes_pod_label_budgetgate_dev_track"] = "canary".into();
            }
            serde_json::json!({"targets": [listen.to_string()], "labels": labels})
        })
        .collect();
    serde_json::Value::Array(groups).to_string()
}

/// Replaces the file whole (Prometheus never reads half of it).
fn write_targets(path: &std::path::Path, text: &str) {
    let temp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, path)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the scrape targets");
    }
}

/// A serving pod and the requests it has answered so far.
struct Active {
    serving: Serving,
    sent: u64,
}

/// One tick: stop pods that ended, start those that began serving (their series at 0 until
/// the next tick, so a scrape can see the start; with `gated`, until their endpoint has
/// been scraped), and count `n` requests for every pod already serving. True when the set
/// of serving pods changed.
fn tick(
    metrics: &Metrics,
    active: &mut BTreeMap<PodKey, Active>,
    now: Vec<Serving>,
    n: u64,
    gated: bool,
) -> bool {
    let before = active.len();
    let mut seen: BTreeMap<PodKey, Serving> = now.into_iter().map(|s| (s.key.clone(), s)).collect();
    active.retain(|key, a| {
        if seen.contains_key(key) {
            return true;
        }
        metrics.stop(key);
        tracing::info!(namespace = %key.namespace, deployment = %key.deployment, pod = %key.pod,
            track = key.track, requests = a.sent, "pod stopped serving");
        false
    });
    let mut started = Vec::new();
    for (key, serving) in std::mem::take(&mut seen) {
        active.entry(key).or_insert_with_key(|key| {
            started.push(key.clone());
            metrics.start(key);
            tracing::info!(namespace = %key.namespace, deployment = %key.deployment, pod = %key.pod,
                track = key.track, image = %serving.image, behaviour = serving.behaviour.as_str(),
                "pod serving");
            Active { serving, sent: 0 }
        });
    }
    let changed = !started.is_empty() || active.len() != before + started.len();
    for (key, a) in active.iter_mut() {
        if started.contains(key) {
            continue;
        }
        let endpoint = metrics.endpoint(key);
        if gated
            && !endpoint
                .as_ref()
                .is_some_and(|e| e.scraped.load(Ordering::SeqCst))
        {
            continue;
        }
        let behaviour = a.serving.behaviour;
        let errors = traffic::errors_in(behaviour, a.sent, n);
        metrics
            .requests
            .get_or_create(&requests_labels(key, "200"))
            .inc_by(n - errors);
        metrics
            .requests
            .get_or_create(&requests_labels(key, "500"))
            .inc_by(errors);
        let histogram = metrics.duration.get_or_create(&duration_labels(key));
        for _ in 0..n {
            histogram.observe(behaviour.latency_seconds());
        }
        if let Some(endpoint) = endpoint {
            endpoint.count(key, n - errors, errors, behaviour.latency_seconds());
        }
        a.sent += n;
    }
    changed
}

fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    budgetgate::cli::init_logging(budgetgate::cli::LogFormat::Plain);
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = budgetgate::source::cluster::client(args.kubeconfig.as_deref())
        .await
        .context("cannot reach the cluster (set --kubeconfig)")?;
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let listener_addr = listener.local_addr()?;
    tracing::info!(listen = %listener_addr, rate = args.rate, "serving /metrics");
    tokio::spawn(serve(listener, metrics.clone()));

    let (store, writer) = reflector::store::<Pod>();
    let pods = watcher(Api::<Pod>::all(client), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::warn!(error = %e, "pod watch failed; retrying");
            }
        });
    tokio::spawn(pods);
    store
        .wait_until_ready()
        .await
        .context("the pod watch ended before its first list")?;
    tracing::info!("pods listed; simulating traffic");

    let mut active = BTreeMap::new();
    let listen = listener_addr;
    if let Some(path) = &args.targets {
        write_targets(path, &targets_file(listen, &active));
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        let now = store
            .state()
            .iter()
            .filter_map(|pod| traffic::serving(pod))
            .collect();
        if tick(
            &metrics,
            &mut active,
            now,
            args.rate,
            args.targets.is_some(),
        ) && let Some(path) = &args.targets
        {
            write_targets(path, &targets_file(listen, &active));
        }
    }
    tracing::info!("stop requested");
    Ok(())
}

async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = reply(StatusCode::OK, metrics.encode());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/healthz" => reply(StatusCode::OK, "ok\n".into()),
        path => match pod_path(path).and_then(|(ns, pod)| metrics.encode_pod(ns, pod)) {
            Some(text) => reply(StatusCode::OK, text),
            None => reply(
                StatusCode::NOT_FOUND,
                "/metrics, /pods/<namespace>/<pod>/metrics of a serving pod, or /healthz\n".into(),
            ),
        },
    }
}

/// `/pods/<namespace>/<pod>/metrics` → (namespace, pod).
fn pod_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/pods/")?.strip_suffix("/metrics")?;
    let (namespace, pod) = rest.split_once('/')?;
    (!namespace.is_empty() && !pod.is_empty() && !pod.contains('/')).then_some((namespace, pod))
}

#[cfg(test)]
mod tests {
    use super::*;
    use traffic::Behaviour;

    fn serving(pod: &str, behaviour: Behaviour) -> Serving {
        Serving {
            key: PodKey {
                namespace: "shop".into(),
                deployment: "web".into(),
                pod: pod.into(),
                track: "stable",
            },
            image: "example/web:1".into(),
            behaviour,
        }
    }

    #[test]
    fn series_start_at_zero_count_each_tick_and_go_with_the_pod() {
        let metrics = Metrics::new();
        let mut active = BTreeMap::new();
        tick(
            &metrics,
            &mut active,
            vec![serving("web-a", Behaviour::Faulty)],
            20,
            false,
        );
        let text = metrics.encode();
        assert!(text.contains(r#"http_requests_total{namespace="shop",deployment="web",pod="web-a",track="stable",code="500"} 0"#), "{text}");
        assert!(text.contains(r#"track="stable",code="200"} 0"#), "{text}");
        tick(
            &metrics,
            &mut active,
            vec![serving("web-a", Behaviour::Faulty)],
            20,
            false,
        );
        let text = metrics.encode();
        assert!(text.contains(r#"code="200"} 16"#), "{text}");
        assert!(text.contains(r#"code="500"} 4"#), "{text}");
        assert!(text.contains(r#"http_request_duration_seconds_bucket{le="0.1",namespace="shop",deployment="web",pod="web-a",track="stable"} 20"#), "{text}");
        tick(&metrics, &mut active, vec![], 20, false);
        assert!(!metrics.encode().contains("web-a"));
    }

    #[test]
    fn a_pods_endpoint_carries_no_placement_labels_and_counts_only_once_scraped() {
        let metrics = Metrics::new();
        let mut active = BTreeMap::new();
        let mut canary = serving("web-canary-x", Behaviour::Faulty);
        canary.key.track = "canary";
        let pods = || vec![serving("web-a", Behaviour::Faulty), canary.clone()];
        assert!(tick(&metrics, &mut active, pods(), 20, true));
        // Not scraped yet: nothing counted, however many ticks pass.
        assert!(!tick(&metrics, &mut active, pods(), 20, true));
        let text = metrics.encode_pod("shop", "web-a").unwrap();
        assert!(
            text.contains("http_requests_total{deployment=\"web\",code=\"500\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("namespace=") && !text.contains("pod=") && !text.contains("track="),
            "{text}"
        );
        // Scraped once: counted from the next tick on; the canary, never scraped, is not.
        tick(&metrics, &mut active, pods(), 20, true);
        let text = metrics.encode_pod("shop", "web-a").unwrap();
        assert!(
            text.contains("http_requests_total{deployment=\"web\",code=\"500\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("http_requests_total{deployment=\"web\",code=\"200\"} 16"),
            "{text}"
        );
        let text = metrics.encode_pod("shop", "web-canary-x").unwrap();
        assert!(text.contains("code=\"200\"} 0"), "{text}");
        // The targets say where each pod is and what Kubernetes discovery would say of it.
        let listen: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let targets: serde_json::Value =
            serde_json::from_str(&targets_file(listen, &active)).unwrap();
        assert_eq!(
            targets,
            serde_json::json!([
                {"targets": ["127.0.0.1:9"], "labels": {
                    "__metrics_path__": "/pods/shop/web-a/metrics",
                    "__meta_kubernetes_namespace": "shop",
                    "__meta_kubernetes_pod_name": "web-a"}},
                {"targets": ["127.0.0.1:9"], "labels": {
                    "__metrics_path__": "/pods/shop/web-canary-x/metrics",
                    "__meta_kubernetes_namespace": "shop",
                    "__meta_kubernetes_pod_name": "web-canary-x",
                    "__meta_kubernetes_pod_label_budgetgate_dev_track": "canary"}}
            ])
        );
        // Gone: its endpoint answers nothing, and the set changed.
        assert!(tick(&metrics, &mut active, vec![], 20, true));
        assert_eq!(metrics.encode_pod("shop", "web-a"), None);
        assert_eq!(
            pod_path("/pods/shop/web-a/metrics"),
            Some(("shop", "web-a"))
        );
        assert_eq!(pod_path("/pods/shop/a/b/metrics"), None);
    }
}
