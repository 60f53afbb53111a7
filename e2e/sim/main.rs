//! traffic-sim: request metrics for the pods of a cluster whose pods run no code (kwok).
//!
//! Watches every Pod; each Ready, non-terminating pod that a ReplicaSet controls "serves"
//! `--rate` requests per second (unless an HTTPRoute feeds it, below), counted in `http_requests_total{namespace, deployment, pod,
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
//! The simulator is also the Gateway of every Gateway API HTTPRoute
//! (`gateway.networking.k8s.io/v1`; without the CRDs it simulates without routes and
//! retries the watch with backoff). Each second a route receives `--route-rate` requests
//! (200), or its annotation `traffic-sim/rate`, split evenly over its rules, a rule's over
//! its backendRefs by weight (absent: 1; only Services of the route's namespace), a
//! backend's evenly over the Ready pod endpoints of the Service's EndpointSlices, the
//! remainder round-robin; remainders carry over, so a 5% weight of 200/s is exactly 10/s and
//! 1% of 150/s is 1.5/s over time. A pod selected by a route's backend Service gets only
//! what routes send it, never `--rate`, and answers as its image tag says. What the gateway
//! sent is counted in `traffic_sim_route_requests_total{namespace, route, backend, code}`:
//! `200`/`500` as the pods answered, `503` for requests of a Service that is missing or has
//! no Ready endpoint. Requests for a Service whose Ready pods do not count yet (just
//! started, not yet scraped) are not counted anywhere. As a gateway controller, it writes
//! each route's `status.parents`: per parentRef, controller `budgetgate.dev/traffic-sim`,
//! `Accepted` and `ResolvedRefs` (False, `BackendNotFound`, while a backend Service is
//! missing), only when that changes. See `gateway.rs`.
//!
//! cargo run --example traffic-sim -- --kubeconfig e2e/.run/kubeconfig --listen 127.0.0.1:22492

#![forbid(unsafe_code)]

mod gateway;
mod traffic;

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use gateway::{Gateway, RouteKey, Target};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use traffic::{PodKey, Serving};

#[derive(Parser, Debug)]
#[command(
    name = "traffic-sim",
    about = "Simulated request metrics for every Ready pod of a cluster, by image tag: \
             -faulty = 20% errors, -errP = P% errors, -slow = 1.5 s, else healthy; \
             HTTPRoutes' traffic goes by their backendRef weights"
)]
struct Args {
    /// Kubeconfig to watch Pods, Services, EndpointSlices and HTTPRoutes with, and write
    /// route status (default: in-cluster or ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where /metrics and /healthz are served.
    #[arg(long, env = "TRAFFIC_SIM_LISTEN", default_value = "127.0.0.1:22492")]
    listen: SocketAddr,
    /// Requests per second each serving pod receives (pods behind an HTTPRoute's backend
    /// Services get only what their routes send).
    #[arg(long, env = "TRAFFIC_SIM_RATE", default_value_t = 20)]
    rate: u64,
    /// Requests per second each HTTPRoute receives, unless its `traffic-sim/rate`
    /// annotation says otherwise.
    #[arg(long, env = "TRAFFIC_SIM_ROUTE_RATE", default_value_t = 200)]
    route_rate: u64,
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

/// What the gateway sent a route's backend, by how it was answered (`503`: not placed).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RouteLabels {
    namespace: String,
    route: String,
    backend: String,
    code: &'static str,
}

const ROUTE_CODES: [&str; 3] = ["200", "500", "503"];

fn route_labels(route: &RouteKey, backend: &str, code: &'static str) -> RouteLabels {
    RouteLabels {
        namespace: route.namespace.clone(),
        route: route.name.clone(),
        backend: backend.to_owned(),
        code,
    }
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
    routes: Family<RouteLabels, Counter>,
    /// The route series that exist, to drop those of routes and backends gone.
    route_series: Mutex<BTreeSet<RouteLabels>>,
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
        let routes = Family::<RouteLabels, Counter>::default();
        registry.register(
            "traffic_sim_route_requests",
            "Requests the simulated gateway sent each HTTPRoute backend, by the pods' answer \
             (503: no Ready endpoint or no such Service)",
            routes.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            routes,
            route_series: Mutex::default(),
            pods: Mutex::default(),
        }
    }

    /// Makes every (route, backend) series exist, at 0 when new, and drops the others.
    fn route_backends(&self, routes: &[gateway::Route]) {
        let now: BTreeSet<RouteLabels> = routes
            .iter()
            .flat_map(|r| {
                r.services().into_iter().flat_map(move |backend| {
                    ROUTE_CODES.map(|code| route_labels(&r.key, backend, code))
                })
            })
            .collect();
        let mut series = lock(&self.route_series);
        for gone in series.difference(&now) {
            self.routes.remove(gone);
        }
        for labels in &now {
            let _ = self.routes.get_or_create(labels);
        }
        *series = now;
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

/// What the gateway sees in a tick.
struct Routing<'a> {
    routes: &'a [gateway::Route],
    cluster: &'a gateway::Cluster,
    /// Pods (namespace, name) behind a route's backend Service: they get only what the
    /// routes send them, not `--rate`.
    routed: &'a BTreeSet<(String, String)>,
}

/// A tick without routes: every serving pod gets `n` requests.
#[cfg(test)]
fn tick(
    metrics: &Metrics,
    active: &mut BTreeMap<PodKey, Active>,
    now: Vec<Serving>,
    n: u64,
    gated: bool,
) -> bool {
    let routing = Routing {
        routes: &[],
        cluster: &gateway::Cluster::default(),
        routed: &BTreeSet::new(),
    };
    tick_routed(
        metrics,
        active,
        now,
        n,
        gated,
        &mut Gateway::default(),
        &routing,
    )
}

/// One tick: stop pods that ended, start those that began serving (their series at 0 until
/// the next tick, so a scrape can see the start; with `gated`, until their endpoint has
/// been scraped), count `n` requests for every pod already serving that no route feeds,
/// and send every route's requests through the gateway. True when the set of serving pods
/// changed.
fn tick_routed(
    metrics: &Metrics,
    active: &mut BTreeMap<PodKey, Active>,
    now: Vec<Serving>,
    n: u64,
    gated: bool,
    gateway: &mut Gateway,
    routing: &Routing<'_>,
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
    // The pods that count requests this tick, by (namespace, pod).
    let counting: BTreeMap<(String, String), PodKey> = active
        .keys()
        .filter(|key| !started.contains(key))
        .filter(|key| {
            !gated
                || metrics
                    .endpoint(key)
                    .is_some_and(|e| e.scraped.load(Ordering::SeqCst))
        })
        .map(|key| (pod_id(key), key.clone()))
        .collect();
    for (id, key) in &counting {
        if !routing.routed.contains(id)
            && let Some(a) = active.get_mut(key)
        {
            serve_requests(metrics, key, a, n);
        }
    }
    metrics.route_backends(routing.routes);
    let sent = gateway.tick(routing.routes, routing.cluster, |namespace, pod| {
        counting.contains_key(&(namespace.to_owned(), pod.to_owned()))
    });
    for s in sent {
        let count = |code, n| {
            metrics
                .routes
                .get_or_create(&route_labels(&s.route, &s.backend, code))
                .inc_by(n);
        };
        match &s.target {
            Target::Pod(pod) => {
                let id = (s.route.namespace.clone(), pod.clone());
                if let Some(key) = counting.get(&id)
                    && let Some(a) = active.get_mut(key)
                {
                    let errors = serve_requests(metrics, key, a, s.requests);
                    count("200", s.requests - errors);
                    count("500", errors);
                }
            }
            Target::Unplaced => count("503", s.requests),
            Target::Uncounted => {}
        }
    }
    changed
}

/// `n` requests answered by a serving pod, as its image says, counted in its series;
/// returns how many failed.
fn serve_requests(metrics: &Metrics, key: &PodKey, a: &mut Active, n: u64) -> u64 {
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
    if let Some(endpoint) = metrics.endpoint(key) {
        endpoint.count(key, n - errors, errors, behaviour.latency_seconds());
    }
    a.sent += n;
    errors
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
    tracing::info!(listen = %listener_addr, rate = args.rate, route_rate = args.route_rate,
        "serving /metrics");
    tokio::spawn(serve(listener, metrics.clone()));

    let (store, writer) = reflector::store::<Pod>();
    spawn_watch(Api::<Pod>::all(client.clone()), writer, "pod", None);
    let (services, writer) = reflector::store::<Service>();
    spawn_watch(Api::<Service>::all(client.clone()), writer, "Service", None);
    let (slices, writer) = reflector::store::<EndpointSlice>();
    spawn_watch(
        Api::<EndpointSlice>::all(client.clone()),
        writer,
        "EndpointSlice",
        None,
    );
    let route_resource = http_route_resource();
    let writer = reflector::store::Writer::<DynamicObject>::new(route_resource.clone());
    let routes = writer.as_reader();
    let routes_failed = Arc::new(tokio::sync::Notify::new());
    spawn_watch(
        Api::<DynamicObject>::all_with(client.clone(), &route_resource),
        writer,
        "HTTPRoute",
        Some(routes_failed.clone()),
    );
    for (store_ready, what) in [
        (store.wait_until_ready().await, "pod"),
        (services.wait_until_ready().await, "Service"),
        (slices.wait_until_ready().await, "EndpointSlice"),
    ] {
        store_ready.with_context(|| format!("the {what} watch ended before its first list"))?;
    }
    // Without the Gateway API CRDs the route watch never lists: go on without routes.
    tokio::select! {
        ready = routes.wait_until_ready() => {
            ready.context("the HTTPRoute watch ended before its first list")?;
            tracing::info!("pods, Services, EndpointSlices and HTTPRoutes listed; simulating traffic");
        }
        () = routes_failed.notified() => {
            tracing::info!("pods, Services and EndpointSlices listed; simulating traffic, \
                without routes until HTTPRoutes list");
        }
    }

    let mut active = BTreeMap::new();
    let mut gateway = Gateway::default();
    let mut route_log = RouteLog::default();
    let status = StatusWriter {
        client,
        resource: route_resource,
        written: Arc::default(),
    };
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
        let pods = store.state();
        let now = pods
            .iter()
            .filter_map(|pod| traffic::serving(pod))
            .collect();
        let routes: Vec<gateway::Route> = routes
            .state()
            .iter()
            .filter_map(|route| gateway::parse_route(route, args.route_rate))
            .collect();
        let mut cluster = gateway::Cluster::default();
        if !routes.is_empty() {
            for service in services.state() {
                cluster.add_service(&service);
            }
            for slice in slices.state() {
                cluster.add_slice(&slice);
            }
        }
        let no_labels = gateway::Labels::new();
        let routed = gateway::routed(
            &routes,
            &cluster,
            pods.iter().filter_map(|pod| {
                let meta = &pod.metadata;
                Some((
                    meta.namespace.as_deref()?,
                    meta.name.as_deref()?,
                    meta.labels.as_ref().unwrap_or(&no_labels),
                ))
            }),
        );
        route_log.log(&routes);
        let routing = Routing {
            routes: &routes,
            cluster: &cluster,
            routed: &routed,
        };
        if tick_routed(
            &metrics,
            &mut active,
            now,
            args.rate,
            args.targets.is_some(),
            &mut gateway,
            &routing,
        ) && let Some(path) = &args.targets
        {
            write_targets(path, &targets_file(listen, &active));
        }
        status.write(&routes, &cluster);
    }
    tracing::info!("stop requested");
    Ok(())
}

/// HTTPRoute, `gateway.networking.k8s.io/v1`.
fn http_route_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    ApiResource::from_gvk_with_plural(&gvk, "httproutes")
}

/// Keeps `writer`'s store in step with `api`, retrying with backoff. A failing watch is
/// logged once when it starts failing and once when it lists again, not on every retry;
/// `failed` (if any) is told of each failure.
fn spawn_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    what: &'static str,
    failed: Option<Arc<tokio::sync::Notify>>,
) where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let mut failing = false;
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(move |event| {
            match event {
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e,
                            "{what} watch failed; retrying with backoff (logged again once it lists)");
                    }
                    failing = true;
                    if let Some(failed) = &failed {
                        failed.notify_one();
                    }
                }
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("{what} watch listing again");
                }
                Ok(_) => {}
            }
            std::future::ready(())
        });
    tokio::spawn(stream);
}

/// Logs what each route sends where when it changes, and each of its notes once.
#[derive(Default)]
struct RouteLog {
    seen: BTreeMap<RouteKey, (u64, Vec<gateway::Rule>, Vec<String>)>,
}

impl RouteLog {
    fn log(&mut self, routes: &[gateway::Route]) {
        self.seen
            .retain(|key, _| routes.iter().any(|r| &r.key == key));
        for route in routes {
            let now = (route.rate, route.rules.clone(), route.notes.clone());
            let before = self.seen.get(&route.key);
            if before.is_none_or(|(rate, rules, _)| (rate, rules) != (&now.0, &now.1)) {
                let rules: Vec<String> = route
                    .rules
                    .iter()
                    .map(|rule| {
                        rule.backends
                            .iter()
                            .map(|b| format!("{}={}", b.service, b.weight))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect();
                tracing::info!(namespace = %route.key.namespace, route = %route.key.name,
                    rate = route.rate, rules = ?rules, "route: requests/s over rules of Service=weight");
            }
            for note in &route.notes {
                if !before.is_some_and(|(_, _, notes)| notes.contains(note)) {
                    tracing::warn!(namespace = %route.key.namespace, route = %route.key.name, "{note}");
                }
            }
            self.seen.insert(route.key.clone(), now);
        }
    }
}

/// How long a failed route status write waits before it is tried again.
const STATUS_RETRY: Duration = Duration::from_secs(10);

/// Writes each route's status as a gateway controller would, off the tick, once per
/// change.
struct StatusWriter {
    client: Client,
    resource: ApiResource,
    written: Arc<Mutex<BTreeMap<RouteKey, Written>>>,
}

/// The last status patch sent for a route, against which version of it.
struct Written {
    resource_version: Option<String>,
    patch: serde_json::Value,
    failed: Option<Instant>,
}

impl StatusWriter {
    fn write(&self, routes: &[gateway::Route], cluster: &gateway::Cluster) {
        let now = jiff::Timestamp::now();
        let now = jiff::Timestamp::from_second(now.as_second())
            .unwrap_or(now)
            .to_string();
        let mut written = lock(&self.written);
        written.retain(|key, _| routes.iter().any(|r| &r.key == key));
        for route in routes {
            let missing = gateway::missing_services(route, cluster);
            let Some(patch) = gateway::status_patch(route, &missing, &now) else {
                continue;
            };
            // Sent already, and the watch has not shown the route since (or it failed
            // less than STATUS_RETRY ago).
            if written.get(&route.key).is_some_and(|w| {
                w.resource_version == route.resource_version
                    && gateway::same_ignoring_times(&w.patch, &patch)
                    && w.failed.is_none_or(|at| at.elapsed() < STATUS_RETRY)
            }) {
                continue;
            }
            written.insert(
                route.key.clone(),
                Written {
                    resource_version: route.resource_version.clone(),
                    patch: patch.clone(),
                    failed: None,
                },
            );
            let api = Api::<DynamicObject>::namespaced_with(
                self.client.clone(),
                &route.key.namespace,
                &self.resource,
            );
            let key = route.key.clone();
            let book = self.written.clone();
            tokio::spawn(async move {
                let result = api
                    .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                match result {
                    Ok(_) => tracing::info!(namespace = %key.namespace, route = %key.name,
                        missing = ?missing, "route status written"),
                    Err(e) => {
                        tracing::warn!(namespace = %key.namespace, route = %key.name, error = %e,
                            "cannot write the route status; trying again in {}s",
                            STATUS_RETRY.as_secs());
                        if let Some(w) = lock(&book).get_mut(&key) {
                            w.failed = Some(Instant::now());
                        }
                    }
                }
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    fn routed_pods_get_only_what_the_routes_send_and_the_gateway_counts_it() {
        let metrics = Metrics::new();
        let mut active = BTreeMap::new();
        let mut canary = serving("web-canary-x", Behaviour::Faulty);
        canary.key.track = "canary";
        let pods = || {
            vec![
                serving("web-a", Behaviour::Healthy),
                canary.clone(),
                serving("api-a", Behaviour::Healthy),
            ]
        };
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"rules": [{"backendRefs": [
                {"name": "web", "weight": 95}, {"name": "web-canary", "weight": 5}
            ]}]}
        }))
        .unwrap();
        let routes = [gateway::parse_route(&object, 200).unwrap()];
        let mut cluster = gateway::Cluster::default();
        for (service, pod) in [("web", "web-a"), ("web-canary", "web-canary-x")] {
            let id = ("shop".to_owned(), service.to_owned());
            cluster
                .services
                .insert(id.clone(), [("app".into(), service.into())].into());
            cluster.endpoints.insert(id, vec![pod.into()]);
        }
        let routed = BTreeSet::from([
            ("shop".to_owned(), "web-a".to_owned()),
            ("shop".to_owned(), "web-canary-x".to_owned()),
        ]);
        let mut gateway = Gateway::default();
        let mut tick = |cluster: &gateway::Cluster| {
            let routing = Routing {
                routes: &routes,
                cluster,
                routed: &routed,
            };
            tick_routed(
                &metrics,
                &mut active,
                pods(),
                20,
                false,
                &mut gateway,
                &routing,
            )
        };
        let route = |backend: &str, code: &str, n: u64| {
            format!(
                "traffic_sim_route_requests_total{{namespace=\"shop\",route=\"web\",\
                 backend=\"{backend}\",code=\"{code}\"}} {n}\n"
            )
        };
        let pod = |pod: &str, code: &str, n: u64| {
            format!(
                r#"pod="{pod}",track="{}",code="{code}"}} {n}"#,
                if pod.contains("canary") {
                    "canary"
                } else {
                    "stable"
                }
            )
        };
        // Starting: nothing counted yet, every series at 0 (503 too).
        assert!(tick(&cluster));
        let text = metrics.encode();
        for (backend, code) in [("web", "200"), ("web-canary", "500"), ("web-canary", "503")] {
            assert!(text.contains(&route(backend, code, 0)), "{text}");
        }
        // 95/5 of 200: the canary's faulty image fails every 5th of its 10; the unrouted
        // pod gets its 20.
        assert!(!tick(&cluster));
        let text = metrics.encode();
        for want in [
            route("web", "200", 190),
            route("web", "503", 0),
            route("web-canary", "200", 8),
            route("web-canary", "500", 2),
            route("web-canary", "503", 0),
            pod("web-a", "200", 190),
            pod("web-canary-x", "200", 8),
            pod("web-canary-x", "500", 2),
            pod("api-a", "200", 20),
        ] {
            assert!(text.contains(&want), "{want} in {text}");
        }
        // The canary Service gone: its share is the gateway's 503s.
        let mut without = cluster.clone();
        without
            .services
            .remove(&("shop".to_owned(), "web-canary".to_owned()));
        tick(&without);
        let text = metrics.encode();
        for want in [
            route("web", "200", 380),
            route("web-canary", "503", 10),
            pod("web-canary-x", "200", 8),
            pod("api-a", "200", 40),
        ] {
            assert!(text.contains(&want), "{want} in {text}");
        }
    }

    #[test]
    fn routes_are_watched_and_patched_at_the_gateway_api_path() {
        let resource = http_route_resource();
        assert_eq!(resource.api_version, "gateway.networking.k8s.io/v1");
        assert_eq!(
            DynamicObject::url_path(&resource, Some("shop")),
            "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes"
        );
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
