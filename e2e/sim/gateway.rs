//! The simulator as the Gateway of Gateway API HTTPRoutes (`gateway.networking.k8s.io/v1`),
//! as pure functions: what a route says (its rate, rules and weighted Service backendRefs),
//! how a tick's requests are split over rules, backends and Ready endpoints (remainders
//! carried across ticks, so long-run totals are exact), which pods only routes feed, and
//! the status a gateway controller writes on a route. No I/O here.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Annotation on an HTTPRoute: its requests per second (else `--route-rate`).
pub const RATE_ANNOTATION: &str = "traffic-sim/rate";
/// The `controllerName` of the route status the simulator writes.
pub const CONTROLLER_NAME: &str = "budgetgate.dev/traffic-sim";
/// Label of an EndpointSlice naming its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub namespace: String,
    pub name: String,
}

/// A backendRef the gateway sends to: a Service in the route's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub service: String,
    pub weight: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub backends: Vec<Backend>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub key: RouteKey,
    pub generation: Option<i64>,
    pub resource_version: Option<String>,
    /// Requests per second over the whole route.
    pub rate: u64,
    pub rules: Vec<Rule>,
    /// `spec.parentRefs`, as written.
    pub parent_refs: Vec<Value>,
    /// `status.parents`, as found.
    pub parents: Vec<Value>,
    /// What of the route the gateway ignores or cannot use, for the log.
    pub notes: Vec<String>,
}

impl Route {
    /// The Services of its backendRefs, each once, in order of name.
    pub fn services(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .flat_map(|r| &r.backends)
            .map(|b| b.service.as_str())
            .collect()
    }
}

/// The route as the gateway reads it; none without a namespace or name.
pub fn parse_route(object: &DynamicObject, default_rate: u64) -> Option<Route> {
    let meta = &object.metadata;
    let key = RouteKey {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
    };
    let mut notes = Vec::new();
    let annotation = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(RATE_ANNOTATION));
    let rate = match annotation.map(|a| a.trim().parse::<u64>()) {
        None => default_rate,
        Some(Ok(rate)) => rate,
        Some(Err(_)) => {
            notes.push(format!(
                "annotation {RATE_ANNOTATION}={:?} is not a whole number of requests per \
                 second; using {default_rate}",
                annotation.map_or("", |a| a.as_str())
            ));
            default_rate
        }
    };
    let spec = &object.data["spec"];
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let rules_json = list(&spec["rules"]);
    if rules_json.is_empty() {
        notes.push("no rules: the route sends nothing".into());
    }
    let rules = rules_json
        .iter()
        .enumerate()
        .map(|(i, rule)| parse_rule(i, rule, &key.namespace, &mut notes))
        .collect();
    Some(Route {
        generation: meta.generation,
        resource_version: meta.resource_version.clone(),
        rate,
        rules,
        parent_refs: list(&spec["parentRefs"]),
        parents: list(&object.data["status"]["parents"]),
        notes,
        key,
    })
}

fn parse_rule(index: usize, rule: &Value, namespace: &str, notes: &mut Vec<String>) -> Rule {
    let refs = rule["backendRefs"].as_array().cloned().unwrap_or_default();
    let mut backends = Vec::new();
    for r in &refs {
        let text = |field: &str| r[field].as_str();
        let name = text("name").unwrap_or_default();
        let kind = text("kind").unwrap_or("Service");
        let group = text("group").unwrap_or("");
        let ns = text("namespace").unwrap_or(namespace);
        if kind != "Service" || !group.is_empty() || ns != namespace || name.is_empty() {
            notes.push(format!(
                "rule {index}: backendRef {r} is not a Service of this namespace; ignored"
            ));
            continue;
        }
        let weight = match &r["weight"] {
            Value::Null => 1,
            w => match w.as_u64() {
                Some(w) => w,
                None => {
                    notes.push(format!(
                        "rule {index}: backendRef {name} has weight {w}; ignored"
                    ));
                    continue;
                }
            },
        };
        backends.push(Backend {
            service: name.to_owned(),
            weight,
        });
    }
    if backends.is_empty() {
        notes.push(format!(
            "rule {index} has no Service backendRefs: its share of the requests is not sent"
        ));
    } else if backends.iter().all(|b| b.weight == 0) {
        notes.push(format!(
            "rule {index}: every backendRef has weight 0: its share of the requests is not sent"
        ));
    }
    Rule { backends }
}

/// A weighted split whose remainders carry over: the shares take turns by smooth weighted
/// round robin, so each call hands out exactly `n`, every `Σweights` requests give each
/// share exactly its weight, and no share is ever more than ~1.3 requests from its exact
/// part `total × weight / Σweights`.
#[derive(Clone, Debug, Default)]
pub struct Carry {
    weights: Vec<u64>,
    /// Per share, its exact part so far minus what it got, in units of 1/Σweights.
    credit: Vec<i128>,
}

impl Carry {
    /// `n` requests over shares of these weights (none when they sum to 0). New weights
    /// start the turns afresh.
    pub fn split(&mut self, n: u64, weights: &[u64]) -> Vec<u64> {
        if self.weights != weights {
            self.weights = weights.to_vec();
            self.credit = vec![0; weights.len()];
        }
        let total: u64 = weights.iter().sum();
        let mut out = vec![0; weights.len()];
        if total == 0 {
            return out;
        }
        // Whole rounds of `total` requests leave every credit where it was.
        let rounds = n / total;
        for (o, w) in out.iter_mut().zip(weights) {
            *o = rounds * w;
        }
        for _ in 0..n % total {
            for (c, w) in self.credit.iter_mut().zip(weights) {
                *c += i128::from(*w);
            }
            let mut best = 0;
            for (i, c) in self.credit.iter().enumerate() {
                if *c > self.credit[best] {
                    best = i;
                }
            }
            self.credit[best] -= i128::from(total);
            out[best] += 1;
        }
        out
    }
}

/// `n` requests evenly over `k` endpoints, the remainder one each from `start` on
/// (wrapping): 10 over 3 from 0 → 4, 3, 3.
pub fn spread(n: u64, k: usize, start: usize) -> Vec<u64> {
    if k == 0 {
        return Vec::new();
    }
    let kk = k as u64;
    let (each, extra) = (n / kk, (n % kk) as usize);
    (0..k)
        .map(|i| each + u64::from((i + k - start % k) % k < extra))
        .collect()
}

/// The Services and Ready endpoints the gateway sees.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Selector by (namespace, name); empty for a Service without one.
    pub services: BTreeMap<(String, String), Labels>,
    /// The pods of a Service's Ready endpoints, by (namespace, Service), sorted.
    pub endpoints: BTreeMap<(String, String), Vec<String>>,
}

impl Cluster {
    pub fn add_service(&mut self, service: &Service) {
        let (Some(ns), Some(name)) = (&service.metadata.namespace, &service.metadata.name) else {
            return;
        };
        let selector = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        self.services.insert((ns.clone(), name.clone()), selector);
    }

    /// Adds the slice's Ready pod endpoints (`conditions.ready` not false, `terminating`
    /// not true, `targetRef` a Pod) to its Service's.
    pub fn add_slice(&mut self, slice: &EndpointSlice) {
        let meta = &slice.metadata;
        let service = meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
        let (Some(ns), Some(service)) = (&meta.namespace, service) else {
            return;
        };
        let pods = self
            .endpoints
            .entry((ns.clone(), service.clone()))
            .or_default();
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready) != Some(false);
            let terminating = conditions.and_then(|c| c.terminating) == Some(true);
            let pod = endpoint
                .target_ref
                .as_ref()
                .filter(|t| t.kind.as_deref() == Some("Pod"))
                .and_then(|t| t.name.clone());
            if let Some(pod) = pod
                && ready
                && !terminating
            {
                pods.push(pod);
            }
        }
        pods.sort();
        pods.dedup();
    }

    fn has_service(&self, namespace: &str, name: &str) -> bool {
        self.services
            .contains_key(&(namespace.to_owned(), name.to_owned()))
    }
}

/// A non-empty selector all of whose labels the pod carries with the same value.
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pods (namespace, name) that only routes feed: those selected by a Service that is a
/// backend of some route in their namespace.
pub fn routed<'a>(
    routes: &[Route],
    cluster: &Cluster,
    pods: impl IntoIterator<Item = (&'a str, &'a str, &'a Labels)>,
) -> BTreeSet<(String, String)> {
    let selectors: Vec<(&str, &Labels)> = routes
        .iter()
        .flat_map(|r| {
            r.services()
                .into_iter()
                .map(|s| (r.key.namespace.clone(), s.to_owned()))
        })
        .collect::<BTreeSet<_>>()
        .iter()
        .filter_map(|id| cluster.services.get_key_value(id))
        .map(|((ns, _), selector)| (ns.as_str(), selector))
        .collect();
    pods.into_iter()
        .filter(|(ns, _, labels)| {
            selectors
                .iter()
                .any(|(sns, selector)| sns == ns && selects(selector, labels))
        })
        .map(|(ns, pod, _)| (ns.to_owned(), pod.to_owned()))
        .collect()
}

/// Where a backend's requests went.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// To this pod (it answers as its image says).
    Pod(String),
    /// Nowhere: the Service is missing or has no Ready endpoint; the gateway answers 503.
    Unplaced,
    /// The Service has Ready endpoints, but none of their pods counts requests this tick
    /// (just started, not yet scraped, terminating, or not a ReplicaSet's): a real gateway
    /// would have sent them there, the simulator has no series to count them in.
    Uncounted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub route: RouteKey,
    pub backend: String,
    pub target: Target,
    pub requests: u64,
}

/// The gateway's memory between ticks: remainders and round-robin positions.
#[derive(Debug, Default)]
pub struct Gateway {
    /// Per route, its split over rules.
    rules: BTreeMap<RouteKey, Carry>,
    /// Per (route, rule), its split over backends and the backends it was for.
    backends: BTreeMap<(RouteKey, usize), (Vec<String>, Carry)>,
    /// Per (namespace, Service), the endpoint the next remainder goes to.
    next: BTreeMap<(String, String), usize>,
}

impl Gateway {
    /// One second of every route's requests: each route's `rate` evenly over its rules,
    /// a rule's over its backends by weight, a backend's evenly over the Ready endpoints
    /// whose pod `counting(namespace, pod)`. Nothing is returned for zero requests.
    pub fn tick(
        &mut self,
        routes: &[Route],
        cluster: &Cluster,
        counting: impl Fn(&str, &str) -> bool,
    ) -> Vec<Sent> {
        let live: BTreeSet<&RouteKey> = routes.iter().map(|r| &r.key).collect();
        self.rules.retain(|k, _| live.contains(k));
        self.backends.retain(|(k, _), _| live.contains(k));
        let mut sent = Vec::new();
        for route in routes {
            let per_rule = self
                .rules
                .entry(route.key.clone())
                .or_default()
                .split(route.rate, &vec![1; route.rules.len()]);
            for (i, (rule, n)) in route.rules.iter().zip(per_rule).enumerate() {
                let names: Vec<String> = rule.backends.iter().map(|b| b.service.clone()).collect();
                let weights: Vec<u64> = rule.backends.iter().map(|b| b.weight).collect();
                let (known, carry) = self.backends.entry((route.key.clone(), i)).or_default();
                if *known != names {
                    *known = names;
                    *carry = Carry::default();
                }
                let per_backend = carry.split(n, &weights);
                for (backend, n) in rule.backends.iter().zip(per_backend) {
                    for (target, requests) in self.place(
                        &route.key.namespace,
                        &backend.service,
                        n,
                        cluster,
                        &counting,
                    ) {
                        sent.push(Sent {
                            route: route.key.clone(),
                            backend: backend.service.clone(),
                            target,
                            requests,
                        });
                    }
                }
            }
        }
        sent
    }

    fn place(
        &mut self,
        namespace: &str,
        service: &str,
        n: u64,
        cluster: &Cluster,
        counting: &impl Fn(&str, &str) -> bool,
    ) -> Vec<(Target, u64)> {
        if n == 0 {
            return Vec::new();
        }
        let id = (namespace.to_owned(), service.to_owned());
        let ready = cluster.endpoints.get(&id).map_or(&[][..], Vec::as_slice);
        if !cluster.has_service(namespace, service) || ready.is_empty() {
            return vec![(Target::Unplaced, n)];
        }
        let pods: Vec<&String> = ready.iter().filter(|p| counting(namespace, p)).collect();
        if pods.is_empty() {
            return vec![(Target::Uncounted, n)];
        }
        let k = pods.len();
        let next = self.next.entry(id).or_default();
        let start = *next % k;
        *next = (start + (n % k as u64) as usize) % k;
        pods.into_iter()
            .zip(spread(n, k, start))
            .filter(|(_, n)| *n > 0)
            .map(|(pod, n)| (Target::Pod(pod.clone()), n))
            .collect()
    }
}

/// The route's Services that do not exist.
pub fn missing_services(route: &Route, cluster: &Cluster) -> Vec<String> {
    route
        .services()
        .into_iter()
        .filter(|s| !cluster.has_service(&route.key.namespace, s))
        .map(str::to_owned)
        .collect()
}

/// The merge patch of `status.parents` a gateway controller would write, or none when the
/// route already says it (lastTransitionTime aside): one entry per parentRef, with
/// `Accepted` and `ResolvedRefs` (False, `BackendNotFound`, while a Service is missing).
/// Other controllers' entries are kept; a condition keeps its lastTransitionTime while its
/// status stays, else takes `now`.
pub fn status_patch(route: &Route, missing: &[String], now: &str) -> Option<Value> {
    let ours = |p: &&Value| p["controllerName"] == CONTROLLER_NAME;
    let current: Vec<&Value> = route.parents.iter().filter(ours).collect();
    let resolved = match missing {
        [] => (
            "True",
            "ResolvedRefs",
            "All backendRefs resolved".to_owned(),
        ),
        [one] => (
            "False",
            "BackendNotFound",
            format!("Service {one:?} not found"),
        ),
        many => (
            "False",
            "BackendNotFound",
            format!(
                "Services {} not found",
                many.iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    };
    let condition = |kind: &str, (status, reason, message): (&str, &str, String)| {
        let mut c = json!({"type": kind, "status": status, "reason": reason, "message": message});
        if let Some(g) = route.generation {
            c["observedGeneration"] = g.into();
        }
        c
    };
    let mut wanted: Vec<Value> = route
        .parent_refs
        .iter()
        .map(|parent| {
            json!({
                "parentRef": parent,
                "controllerName": CONTROLLER_NAME,
                "conditions": [
                    condition("Accepted", ("True", "Accepted", "Accepted by the traffic simulator".into())),
                    condition("ResolvedRefs", resolved.clone()),
                ],
            })
        })
        .collect();
    let unchanged = current.len() == wanted.len()
        && current
            .iter()
            .zip(&wanted)
            .all(|(c, w)| same_ignoring_times(c, w));
    if unchanged {
        return None;
    }
    for entry in &mut wanted {
        let before = current
            .iter()
            .find(|c| c["parentRef"] == entry["parentRef"]);
        if let Some(conditions) = entry["conditions"].as_array_mut() {
            for c in conditions {
                let kept = before
                    .and_then(|b| b["conditions"].as_array())
                    .and_then(|cs| {
                        cs.iter()
                            .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
                    })
                    .and_then(|o| o["lastTransitionTime"].as_str());
                c["lastTransitionTime"] = kept.unwrap_or(now).into();
            }
        }
    }
    let mut parents: Vec<Value> = route.parents.iter().filter(|p| !ours(p)).cloned().collect();
    parents.extend(wanted);
    Some(json!({"status": {"parents": parents}}))
}

/// Equal once every `lastTransitionTime` is taken out.
pub fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| *k != "lastTransitionTime")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(value: Value) -> Route {
        let object: DynamicObject = serde_json::from_value(value).unwrap();
        parse_route(&object, 200).unwrap()
    }

    /// Route `web` in `shop`: one rule, these (Service, weight) backendRefs.
    fn weighted(backends: &[(&str, Option<u64>)]) -> Route {
        let refs: Vec<Value> = backends
            .iter()
            .map(|(name, weight)| match weight {
                Some(w) => json!({"name": name, "port": 80, "weight": w}),
                None => json!({"name": name, "port": 80}),
            })
            .collect();
        route(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop", "generation": 3},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": refs}]}
        }))
    }

    fn cluster(services: &[(&str, &[&str])]) -> Cluster {
        let mut c = Cluster::default();
        for (name, pods) in services {
            let id = ("shop".to_owned(), (*name).to_owned());
            c.services
                .insert(id.clone(), [("app".into(), (*name).into())].into());
            c.endpoints
                .insert(id, pods.iter().map(|p| (*p).to_owned()).collect());
        }
        c
    }

    /// Requests per (backend, target) over `ticks` ticks, every pod counting.
    fn run(
        gateway: &mut Gateway,
        routes: &[Route],
        cluster: &Cluster,
        ticks: usize,
    ) -> BTreeMap<(String, Target), u64> {
        let mut totals = BTreeMap::new();
        for _ in 0..ticks {
            for s in gateway.tick(routes, cluster, |_, _| true) {
                *totals.entry((s.backend, s.target)).or_default() += s.requests;
            }
        }
        totals
    }

    fn pod(name: &str) -> Target {
        Target::Pod(name.into())
    }

    #[test]
    fn a_route_reads_its_rate_rules_and_service_backends() {
        let r = route(json!({
            "metadata": {"name": "web", "namespace": "shop", "generation": 2,
                         "annotations": {"traffic-sim/rate": "150"}},
            "spec": {
                "parentRefs": [{"name": "gw", "sectionName": "http"}],
                "rules": [
                    {"backendRefs": [
                        {"name": "web", "port": 80, "weight": 95},
                        {"name": "web-canary", "kind": "Service", "group": "", "namespace": "shop", "weight": 5},
                        {"name": "other", "namespace": "elsewhere"},
                        {"name": "bucket", "kind": "Bucket", "group": "storage.example"},
                        {"name": "plain"}
                    ]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}]}
                ]
            },
            "status": {"parents": [{"controllerName": "example.com/gw"}]}
        }));
        assert_eq!(r.rate, 150);
        assert_eq!(r.generation, Some(2));
        assert_eq!(
            r.parent_refs,
            vec![json!({"name": "gw", "sectionName": "http"})]
        );
        assert_eq!(r.parents, vec![json!({"controllerName": "example.com/gw"})]);
        let b = |service: &str, weight| Backend {
            service: service.into(),
            weight,
        };
        assert_eq!(
            r.rules,
            vec![
                Rule {
                    backends: vec![b("web", 95), b("web-canary", 5), b("plain", 1)]
                },
                Rule::default()
            ]
        );
        assert_eq!(
            r.services().into_iter().collect::<Vec<_>>(),
            ["plain", "web", "web-canary"]
        );
        assert_eq!(r.notes.len(), 3, "{:?}", r.notes);
        assert!(r.notes[0].contains("elsewhere"), "{:?}", r.notes);
        assert!(r.notes[1].contains("Bucket"), "{:?}", r.notes);
        assert!(
            r.notes[2].contains("rule 1 has no Service backendRefs"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn the_rate_annotation_falls_back_to_the_default_when_it_is_no_number() {
        let r = route(json!({
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {"traffic-sim/rate": "lots"}},
            "spec": {"rules": [{"backendRefs": [{"name": "web"}]}]}
        }));
        assert_eq!(r.rate, 200);
        assert!(r.notes[0].contains("\"lots\""), "{:?}", r.notes);
        assert_eq!(weighted(&[("web", None)]).rate, 200);
        assert!(weighted(&[("web", None)]).notes.is_empty());
    }

    #[test]
    fn weights_95_5_of_200_per_second_give_exactly_1900_and_100_in_10_ticks() {
        let routes = [weighted(&[("web", Some(95)), ("web-canary", Some(5))])];
        let c = cluster(&[
            ("web", &["web-a", "web-b"]),
            ("web-canary", &["web-canary-x"]),
        ]);
        let totals = run(&mut Gateway::default(), &routes, &c, 10);
        assert_eq!(
            totals,
            BTreeMap::from([
                (("web".into(), pod("web-a")), 950),
                (("web".into(), pod("web-b")), 950),
                (("web-canary".into(), pod("web-canary-x")), 100),
            ])
        );
    }

    #[test]
    fn one_percent_of_150_per_second_is_one_and_a_half_per_second() {
        let mut r = weighted(&[("web", Some(99)), ("web-canary", Some(1))]);
        r.rate = 150;
        let c = cluster(&[("web", &["web-a"]), ("web-canary", &["web-canary-x"])]);
        let mut gateway = Gateway::default();
        let per_tick: Vec<u64> = (0..4)
            .map(|_| {
                let sent = gateway.tick(std::slice::from_ref(&r), &c, |_, _| true);
                assert_eq!(sent.iter().map(|s| s.requests).sum::<u64>(), 150);
                sent.iter()
                    .filter(|s| s.backend == "web-canary")
                    .map(|s| s.requests)
                    .sum()
            })
            .collect();
        assert_eq!(per_tick.iter().sum::<u64>(), 6);
        assert!(per_tick.iter().all(|n| (1..=2).contains(n)), "{per_tick:?}");
        let totals = run(&mut gateway, &[r], &c, 96);
        assert_eq!(totals[&("web-canary".into(), pod("web-canary-x"))], 144);
        assert_eq!(totals[&("web".into(), pod("web-a"))], 14_256);
    }

    #[test]
    fn weight_0_gets_nothing_and_an_absent_weight_is_1() {
        let routes = [weighted(&[
            ("web", None),
            ("web-canary", Some(0)),
            ("web-b", Some(1)),
        ])];
        let c = cluster(&[
            ("web", &["web-a"]),
            ("web-canary", &["web-canary-x"]),
            ("web-b", &["web-b-1"]),
        ]);
        let totals = run(&mut Gateway::default(), &routes, &c, 3);
        assert_eq!(
            totals,
            BTreeMap::from([
                (("web".into(), pod("web-a")), 300),
                (("web-b".into(), pod("web-b-1")), 300),
            ])
        );
    }

    #[test]
    fn a_canary_services_only_endpoint_gets_all_its_share() {
        let routes = [weighted(&[("web", Some(50)), ("web-canary", Some(50))])];
        let c = cluster(&[
            ("web", &["web-a", "web-b"]),
            ("web-canary", &["web-canary-x"]),
        ]);
        let sent = Gateway::default().tick(&routes, &c, |_, _| true);
        let canary: Vec<_> = sent.iter().filter(|s| s.backend == "web-canary").collect();
        assert_eq!(canary.len(), 1);
        assert_eq!(
            (&canary[0].target, canary[0].requests),
            (&pod("web-canary-x"), 100)
        );
    }

    #[test]
    fn three_endpoints_share_10_per_second_as_4_3_3_and_the_extra_request_moves_on() {
        assert_eq!(spread(10, 3, 0), [4, 3, 3]);
        assert_eq!(spread(10, 3, 1), [3, 4, 3]);
        assert_eq!(spread(11, 3, 2), [4, 3, 4]);
        assert_eq!(spread(2, 3, 0), [1, 1, 0]);
        assert_eq!(spread(5, 0, 0), Vec::<u64>::new());
        let mut r = weighted(&[("web", None)]);
        r.rate = 10;
        let c = cluster(&[("web", &["web-a", "web-b", "web-c"])]);
        let mut gateway = Gateway::default();
        let mut tick = || -> Vec<u64> {
            gateway
                .tick(std::slice::from_ref(&r), &c, |_, _| true)
                .iter()
                .map(|s| s.requests)
                .collect()
        };
        assert_eq!(tick(), [4, 3, 3]);
        assert_eq!(tick(), [3, 4, 3]);
        assert_eq!(tick(), [3, 3, 4]);
        assert_eq!(tick(), [4, 3, 3]);
    }

    #[test]
    fn requests_for_a_missing_service_or_one_without_ready_endpoints_are_unplaced() {
        let routes = [weighted(&[("web", Some(90)), ("web-canary", Some(10))])];
        let c = cluster(&[("web", &["web-a"])]);
        let totals = run(&mut Gateway::default(), &routes, &c, 2);
        assert_eq!(
            totals,
            BTreeMap::from([
                (("web".into(), pod("web-a")), 360),
                (("web-canary".into(), Target::Unplaced), 40),
            ])
        );
        let c = cluster(&[("web", &["web-a"]), ("web-canary", &[])]);
        let totals = run(&mut Gateway::default(), &routes, &c, 1);
        assert_eq!(totals[&("web-canary".into(), Target::Unplaced)], 20);
    }

    #[test]
    fn only_counting_pods_get_requests_and_none_counting_leaves_them_uncounted() {
        let routes = [weighted(&[("web", Some(90)), ("web-canary", Some(10))])];
        let c = cluster(&[
            ("web", &["web-a", "web-b"]),
            ("web-canary", &["web-canary-x"]),
        ]);
        let sent = Gateway::default().tick(&routes, &c, |ns, pod| ns == "shop" && pod == "web-b");
        let got: Vec<_> = sent
            .iter()
            .map(|s| (s.backend.as_str(), s.target.clone(), s.requests))
            .collect();
        assert_eq!(
            got,
            [
                ("web", pod("web-b"), 180),
                ("web-canary", Target::Uncounted, 20)
            ]
        );
    }

    #[test]
    fn a_route_is_split_evenly_over_its_rules_and_a_rule_without_backends_sends_nothing() {
        let r = route(json!({
            "metadata": {"name": "web", "namespace": "shop", "annotations": {"traffic-sim/rate": "7"}},
            "spec": {"rules": [
                {"backendRefs": [{"name": "web"}]},
                {"backendRefs": []},
                {"backendRefs": [{"name": "api"}]}
            ]}
        }));
        assert_eq!(
            r.notes,
            ["rule 1 has no Service backendRefs: its share of the requests is not sent"]
        );
        let c = cluster(&[("web", &["web-a"]), ("api", &["api-a"])]);
        let mut gateway = Gateway::default();
        let first = run(&mut gateway, std::slice::from_ref(&r), &c, 1);
        assert_eq!(first.values().sum::<u64>(), 5, "{first:?}"); // 3, 2, 2: 2 not sent
        let totals = run(&mut gateway, &[r], &c, 2);
        // 21 over three rules: 7 each; rule 1's are sent nowhere.
        assert_eq!(
            totals[&("web".into(), pod("web-a"))] + first[&("web".into(), pod("web-a"))],
            7
        );
        assert_eq!(
            totals[&("api".into(), pod("api-a"))] + first[&("api".into(), pod("api-a"))],
            7
        );
    }

    #[test]
    fn the_weighted_split_hands_out_exactly_n_each_time_and_stays_within_a_request_and_a_half() {
        let mut carry = Carry::default();
        let weights = [1, 100, 7, 1, 95];
        let total: u64 = weights.iter().sum();
        let mut got = [0u64; 5];
        let mut sent = 0u64;
        for n in [1, 0, 3, 150, 200, 7, 1, 1, 13, 999]
            .into_iter()
            .cycle()
            .take(100)
        {
            let split = carry.split(n, &weights);
            assert_eq!(split.iter().sum::<u64>(), n);
            sent += n;
            for (g, s) in got.iter_mut().zip(split) {
                *g += s;
            }
            for (g, w) in got.iter().zip(weights) {
                let exact = (sent * w) as f64 / total as f64;
                assert!((*g as f64 - exact).abs() < 1.5, "{got:?} after {sent}");
            }
        }
        // New weights start afresh.
        assert_eq!(carry.split(10, &[1, 1]), [5, 5]);
        assert_eq!(carry.split(10, &[0, 0]), [0, 0]);
    }

    #[test]
    fn changing_weights_moves_traffic_from_the_next_tick() {
        let c = cluster(&[("web", &["web-a"]), ("web-canary", &["web-canary-x"])]);
        let mut gateway = Gateway::default();
        let before = [weighted(&[("web", Some(95)), ("web-canary", Some(5))])];
        run(&mut gateway, &before, &c, 1);
        let after = [weighted(&[("web", Some(75)), ("web-canary", Some(25))])];
        let totals = run(&mut gateway, &after, &c, 1);
        assert_eq!(totals[&("web-canary".into(), pod("web-canary-x"))], 50);
    }

    #[test]
    fn pods_selected_by_a_routes_backend_service_are_routed() {
        let routes = [weighted(&[("web", Some(95)), ("web-canary", Some(0))])];
        let mut c = Cluster::default();
        let sel = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        c.services.insert(
            ("shop".into(), "web".into()),
            sel(&[("app", "web"), ("pod-template-hash", "111")]),
        );
        c.services.insert(
            ("shop".into(), "web-canary".into()),
            sel(&[("app", "web"), ("budgetgate.dev/track", "canary")]),
        );
        c.services
            .insert(("shop".into(), "unrouted".into()), sel(&[("app", "api")]));
        c.services
            .insert(("shop".into(), "empty".into()), Labels::new());
        let stable = sel(&[("app", "web"), ("pod-template-hash", "111")]);
        let canary = sel(&[
            ("app", "web"),
            ("pod-template-hash", "222"),
            ("budgetgate.dev/track", "canary"),
        ]);
        let other = sel(&[("app", "web"), ("pod-template-hash", "333")]);
        let api = sel(&[("app", "api")]);
        let pods = [
            ("shop", "web-stable", &stable),
            ("shop", "web-canary", &canary),
            ("shop", "web-other", &other),
            ("shop", "api", &api),
            ("elsewhere", "web-stable", &stable),
        ];
        assert_eq!(
            routed(&routes, &c, pods),
            BTreeSet::from([
                ("shop".into(), "web-canary".into()),
                ("shop".into(), "web-stable".into())
            ])
        );
        assert!(!selects(&Labels::new(), &stable));
        assert!(selects(&sel(&[("app", "web")]), &stable));
        assert!(!selects(&sel(&[("app", "api")]), &stable));
    }

    #[test]
    fn slices_give_the_ready_pod_endpoints_of_their_service() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x1", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                 "targetRef": {"kind": "Pod", "name": "web-b"}},
                {"addresses": ["10.0.0.2"], "targetRef": {"kind": "Pod", "name": "web-a"}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false},
                 "targetRef": {"kind": "Pod", "name": "web-unready"}},
                {"addresses": ["10.0.0.4"], "conditions": {"ready": true, "terminating": true},
                 "targetRef": {"kind": "Pod", "name": "web-going"}},
                {"addresses": ["10.0.0.5"], "conditions": {"ready": true}}
            ]
        }))
        .unwrap();
        let mut c = Cluster::default();
        c.add_slice(&slice);
        c.add_slice(&slice); // a dual-stack pair lists the pods twice
        assert_eq!(
            c.endpoints[&("shop".to_owned(), "web".to_owned())],
            ["web-a", "web-b"]
        );
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"app": "web"}}
        }))
        .unwrap();
        c.add_service(&service);
        assert!(c.has_service("shop", "web"));
        assert!(!c.has_service("other", "web"));
    }

    #[test]
    fn status_accepts_each_parent_and_names_a_missing_service() {
        let mut r = weighted(&[("web", Some(95)), ("web-canary", Some(5))]);
        r.parent_refs = vec![
            json!({"name": "gw"}),
            json!({"name": "gw", "sectionName": "https"}),
        ];
        r.parents = vec![json!({"controllerName": "example.com/gw", "parentRef": {"name": "x"}})];
        let c = cluster(&[("web", &["web-a"])]);
        let missing = missing_services(&r, &c);
        assert_eq!(missing, ["web-canary"]);
        let now = "2026-01-02T03:04:05Z";
        let patch = status_patch(&r, &missing, now).unwrap();
        let entry = |parent: Value| {
            json!({
                "parentRef": parent,
                "controllerName": "budgetgate.dev/traffic-sim",
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted",
                     "message": "Accepted by the traffic simulator",
                     "observedGeneration": 3, "lastTransitionTime": now},
                    {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
                     "message": "Service \"web-canary\" not found",
                     "observedGeneration": 3, "lastTransitionTime": now}
                ]
            })
        };
        assert_eq!(
            patch,
            json!({"status": {"parents": [
                {"controllerName": "example.com/gw", "parentRef": {"name": "x"}},
                entry(json!({"name": "gw"})),
                entry(json!({"name": "gw", "sectionName": "https"}))
            ]}})
        );
        // Written: nothing more to write, whatever the time.
        r.parents = patch["status"]["parents"].as_array().unwrap().clone();
        assert_eq!(status_patch(&r, &missing, "2026-01-02T03:09:00Z"), None);
        // The Service appears: ResolvedRefs turns True now, Accepted keeps its time.
        let later = "2026-01-02T03:10:00Z";
        let patch = status_patch(&r, &[], later).unwrap();
        let ours = &patch["status"]["parents"][1];
        assert_eq!(ours["conditions"][0]["lastTransitionTime"], now);
        assert_eq!(ours["conditions"][1]["status"], "True");
        assert_eq!(ours["conditions"][1]["reason"], "ResolvedRefs");
        assert_eq!(ours["conditions"][1]["lastTransitionTime"], later);
        // A new generation is written again.
        r.parents = patch["status"]["parents"].as_array().unwrap().clone();
        assert_eq!(status_patch(&r, &[], later), None);
        r.generation = Some(4);
        let patch = status_patch(&r, &[], "2026-01-02T03:11:00Z").unwrap();
        assert_eq!(
            patch["status"]["parents"][1]["conditions"][1]["observedGeneration"],
            4
        );
        assert_eq!(
            patch["status"]["parents"][1]["conditions"][1]["lastTransitionTime"],
            later
        );
        // Several missing Services are all named.
        let patch = status_patch(&r, &["a".into(), "b".into()], now).unwrap();
        assert_eq!(
            patch["status"]["parents"][1]["conditions"][1]["message"],
            "Services \"a\", \"b\" not found"
        );
    }

    #[test]
    fn a_route_without_parents_has_no_status_to_write() {
        let mut r = weighted(&[("web", None)]);
        r.parent_refs.clear();
        assert_eq!(status_patch(&r, &[], "2026-01-02T03:04:05Z"), None);
    }
}
