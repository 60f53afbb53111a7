//! Exact canary traffic weights on the user's own HTTPRoute (DESIGN §7.9). Pure: reads the
//! route, the stable Service and `<service>-canary` as the controller fetched them, and
//! builds the writes — the canary Service, the stable Service's selector change and the
//! JSON patches of the route — that the controller sends.
//!
//! **What is touched.** In the route, only the `backendRefs` of the rules that name the
//! stable Service (kind Service, core group, the route's namespace), and in those only the
//! stable reference's `weight` and the canary reference next to it; every other rule,
//! match, filter, hostname and backend stays as it was. Rules and backendRefs are atomic
//! lists in the Gateway API schema, so a server-side apply would take ownership of every
//! rule of the route: the writes are JSON patches of exactly those lists, the first
//! operation a test of the `resourceVersion` the patch was computed from. The stable
//! reference's weight before the rollout is kept in an annotation of the canary Service
//! and restored when the canary's reference is removed.
//!
//! **The stable Service** keeps the canary's pods out for the rollout: its selector gets
//! the stable ReplicaSet's `pod-template-hash`, marked by an annotation naming the
//! Deployment, and loses both when the rollout ends (never a `pod-template-hash` the user
//! set).

use super::CANARY_TRACK;
use super::objects::{controller_reference, owned_by};
use crate::api::keys;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Deployment annotation: the HTTPRoute (same namespace) whose weights carry the canary.
pub const HTTP_ROUTE: &str = "budgetgate.dev/http-route";
/// Deployment annotation: the stable Service the route sends the Deployment's traffic to.
pub const SERVICE: &str = "budgetgate.dev/service";
/// Annotation on a stable Service while budgetgate keeps a canary's pods out of it: the
/// Deployment whose stable ReplicaSet hash was added to the selector.
pub const RESTRICTED_FOR: &str = "budgetgate.dev/restricted-for";
/// Annotation on the canary Service: the stable reference's weight in each managed rule
/// before the rollout (`{"0": null, "2": 3}`, rule index to weight, null = unset).
pub const STABLE_WEIGHTS: &str = "budgetgate.dev/stable-weights";
/// Suffix of the canary Service's name.
pub const SERVICE_SUFFIX: &str = "-canary";

/// The routing a Deployment asks for with its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRef {
    pub route: String,
    pub service: String,
}

/// `None` without the annotations; `Err` when only one of them is set or one is empty.
pub fn route_ref(meta: &ObjectMeta) -> Option<Result<RouteRef, String>> {
    let get = |k: &str| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .map(|v| v.trim().to_owned())
    };
    match (get(HTTP_ROUTE), get(SERVICE)) {
        (None, None) => None,
        (Some(route), Some(service)) if !route.is_empty() && !service.is_empty() => {
            Some(Ok(RouteRef { route, service }))
        }
        _ => Some(Err(format!(
            "traffic routing needs both annotations {HTTP_ROUTE} and {SERVICE} (non-empty)"
        ))),
    }
}

/// Name of the canary Service of stable Service `service`.
pub fn canary_service_name(service: &str) -> String {
    format!("{service}{SERVICE_SUFFIX}")
}

/// Canary replicas for an exact traffic weight `w` with `n` stable replicas:
/// `max(1, ceil(N·w/100))` — the canary's pods carry `w` percent of the requests.
pub fn canary_replicas(stable: u32, weight: u32) -> u32 {
    let w = u64::from(weight.min(100));
    (u64::from(stable) * w).div_ceil(100).max(1) as u32
}

/// Whether a backendRef names Service `name` of the route's own namespace.
fn names_service(r: &Value, name: &str) -> bool {
    r.get("name").and_then(Value::as_str) == Some(name)
        && r.get("kind").and_then(Value::as_str).unwrap_or("Service") == "Service"
        && r.get("group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        && r.get("namespace").is_none()
}

fn rules(route: &Value) -> &[Value] {
    route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn backend_refs(rule: &Value) -> &[Value] {
    rule.get("backendRefs")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn weight_of(r: &Value) -> Option<u64> {
    r.get("weight").and_then(Value::as_u64)
}

/// Indices of the rules whose backendRefs name the stable Service.
pub fn managed_rules(route: &Value, stable: &str) -> Vec<usize> {
    rules(route)
        .iter()
        .enumerate()
        .filter(|(_, rule)| backend_refs(rule).iter().any(|r| names_service(r, stable)))
        .map(|(i, _)| i)
        .collect()
}

/// The route's `Accepted` condition over its parents, as gateways report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Every parent that reported accepted the route.
    Accepted,
    /// A parent refused it: its reason and message.
    Refused(String),
    /// No gateway has reported on the route.
    Unreported,
}

impl Acceptance {
    pub fn text(&self) -> String {
        match self {
            Acceptance::Accepted => "accepted by its gateway".into(),
            Acceptance::Refused(why) => format!("not accepted by its gateway: {why}"),
            Acceptance::Unreported => "no gateway has reported on it yet".into(),
        }
    }
}

pub fn acceptance(route: &Value) -> Acceptance {
    let parents = route
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut seen = false;
    for parent in parents {
        let conditions = parent
            .get("conditions")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        if let Some(c) = conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("Accepted"))
        {
            seen = true;
            if c.get("status").and_then(Value::as_str) != Some("True") {
                let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
                return Acceptance::Refused(format!("{}: {}", text("reason"), text("message")));
            }
        }
    }
    if seen {
        Acceptance::Accepted
    } else {
        Acceptance::Unreported
    }
}

/// The canary's weight as the route carries it: `Some(w)` when every managed rule has the
/// stable reference at `100−w` and the canary reference at `w`; `Some(0)` also when no rule
/// has a canary reference yet and none is wanted. `None` when the rules disagree or do not
/// carry the split.
pub fn canary_weight(route: &Value, stable: &str, canary: &str) -> Option<u32> {
    let mut found: Option<u32> = None;
    for i in managed_rules(route, stable) {
        let refs = backend_refs(&rules(route)[i]);
        let s = refs.iter().find(|r| names_service(r, stable))?;
        let c = refs.iter().find(|r| names_service(r, canary))?;
        let (ws, wc) = (weight_of(s)?, weight_of(c)?);
        if ws + wc != 100 {
            return None;
        }
        let w = wc as u32;
        if found.is_some_and(|f| f != w) {
            return None;
        }
        found = Some(w);
    }
    found
}

/// Whether any rule still names the canary Service.
pub fn has_canary_refs(route: &Value, canary: &str) -> bool {
    rules(route)
        .iter()
        .any(|rule| backend_refs(rule).iter().any(|r| names_service(r, canary)))
}

/// The stable reference's weight in each managed rule, for [`STABLE_WEIGHTS`].
pub fn stable_weights(route: &Value, stable: &str) -> BTreeMap<usize, Option<u64>> {
    managed_rules(route, stable)
        .into_iter()
        .map(|i| {
            let w = backend_refs(&rules(route)[i])
                .iter()
                .find(|r| names_service(r, stable))
                .and_then(weight_of);
            (i, w)
        })
        .collect()
}

pub fn parse_stable_weights(text: &str) -> BTreeMap<usize, Option<u64>> {
    serde_json::from_str::<BTreeMap<String, Option<u64>>>(text)
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect()
        })
        .unwrap_or_default()
}

fn stable_weights_text(weights: &BTreeMap<usize, Option<u64>>) -> String {
    let map: BTreeMap<String, Option<u64>> =
        weights.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    serde_json::to_string(&map).unwrap_or_default()
}

fn test_version(route: &Value) -> Value {
    json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": route.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
    })
}

/// The JSON patch that sets stable `100−w` / canary `w` in every managed rule: the canary
/// reference (the stable one with the canary Service's name) is added right after the
/// stable one when missing. `None` when the route already carries exactly that.
pub fn weights_patch(route: &Value, stable: &str, canary: &str, weight: u32) -> Option<Value> {
    let weight = u64::from(weight.min(100));
    let mut ops = vec![test_version(route)];
    for i in managed_rules(route, stable) {
        let refs = backend_refs(&rules(route)[i]);
        let mut out = Vec::with_capacity(refs.len() + 1);
        let mut wrote_canary = false;
        for r in refs {
            if names_service(r, canary) {
                if !wrote_canary {
                    let mut c = r.clone();
                    c["weight"] = json!(weight);
                    out.push(c);
                    wrote_canary = true;
                }
            } else if names_service(r, stable) {
                let mut s = r.clone();
                s["weight"] = json!(100 - weight);
                out.push(s);
                if !wrote_canary && !refs.iter().any(|o| names_service(o, canary)) {
                    let mut c = r.clone();
                    c["name"] = json!(canary);
                    c["weight"] = json!(weight);
                    out.push(c);
                    wrote_canary = true;
                }
            } else {
                out.push(r.clone());
            }
        }
        if out.as_slice() != refs {
            ops.push(json!({"op": "replace", "path": format!("/spec/rules/{i}/backendRefs"), "value": out}));
        }
    }
    (ops.len() > 1).then_some(Value::Array(ops))
}

/// The JSON patch that removes the canary's references from every rule and gives the stable
/// reference of each managed rule its weight from before the rollout (`before`; unset when
/// it was unset, left as it is when unknown). `None` when there is nothing to remove.
pub fn removal_patch(
    route: &Value,
    stable: &str,
    canary: &str,
    before: &BTreeMap<usize, Option<u64>>,
) -> Option<Value> {
    let mut ops = vec![test_version(route)];
    for (i, rule) in rules(route).iter().enumerate() {
        let refs = backend_refs(rule);
        if !refs.iter().any(|r| names_service(r, canary)) {
            continue;
        }
        let out: Vec<Value> = refs
            .iter()
            .filter(|r| !names_service(r, canary))
            .map(|r| {
                let mut r = r.clone();
                if names_service(&r, stable)
                    && let Some(original) = before.get(&i)
                    && let Some(obj) = r.as_object_mut()
                {
                    match original {
                        Some(w) => {
                            obj.insert("weight".into(), json!(w));
                        }
                        None => {
                            obj.remove("weight");
                        }
                    }
                }
                r
            })
            .collect();
        ops.push(
            json!({"op": "replace", "path": format!("/spec/rules/{i}/backendRefs"), "value": out}),
        );
    }
    (ops.len() > 1).then_some(Value::Array(ops))
}

/// `<service>-canary` as the state machine sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceState {
    Absent,
    /// Controlled by the Deployment (uid): its uid, and the stable weights it recorded.
    Owned {
        uid: String,
        stable_weights: BTreeMap<usize, Option<u64>>,
    },
    /// Someone else's: never written, never deleted.
    Foreign {
        owner: Option<String>,
    },
}

pub fn canary_service_state(service: Option<&Service>, owner_uid: &str) -> ServiceState {
    let Some(s) = service else {
        return ServiceState::Absent;
    };
    match owned_by(&s.metadata, owner_uid) {
        Ok(()) => ServiceState::Owned {
            uid: s.metadata.uid.clone().unwrap_or_default(),
            stable_weights: s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(STABLE_WEIGHTS))
                .map(|t| parse_stable_weights(t))
                .unwrap_or_default(),
        },
        Err(owner) => ServiceState::Foreign { owner },
    }
}

/// The selector of the stable Service without budgetgate's restriction.
fn user_selector(stable: &Service) -> BTreeMap<String, String> {
    let mut selector = stable
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if restricted_for(stable).is_some() {
        selector.remove(keys::POD_TEMPLATE_HASH);
    }
    selector
}

/// Why the stable Service cannot carry a canary split, or `None` when it can: it needs a
/// selector (the canary Service copies it) and ports.
pub fn stable_service_problem(stable: &Service) -> Option<String> {
    let name = stable.metadata.name.as_deref().unwrap_or_default();
    let spec = stable.spec.as_ref();
    if user_selector(stable).is_empty() {
        return Some(format!(
            "Service {name} has no selector; the canary Service copies it"
        ));
    }
    if spec
        .and_then(|s| s.ports.as_ref())
        .is_none_or(|p| p.is_empty())
    {
        return Some(format!("Service {name} has no ports"));
    }
    if restricted_for(stable).is_none()
        && spec
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|s| s.contains_key(keys::POD_TEMPLATE_HASH))
    {
        return Some(format!(
            "Service {name} selects a {} of its own; the canary's pods cannot be kept out of it",
            keys::POD_TEMPLATE_HASH
        ));
    }
    None
}

/// The canary Service: the stable Service's ports and selector plus the track label,
/// controlled by the Deployment, recording the stable weights from before the rollout.
pub fn canary_service(
    stable: &Service,
    deployment: &Deployment,
    stable_weights: &BTreeMap<usize, Option<u64>>,
    canary_uid: Option<&str>,
) -> Service {
    let stable_name = stable.metadata.name.clone().unwrap_or_default();
    let mut selector = user_selector(stable);
    selector.insert(keys::TRACK.into(), CANARY_TRACK.into());
    let ports = stable
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| ServicePort {
            name: p.name,
            port: p.port,
            target_port: p.target_port,
            protocol: p.protocol,
            app_protocol: p.app_protocol,
            ..ServicePort::default()
        })
        .collect();
    Service {
        metadata: ObjectMeta {
            name: Some(canary_service_name(&stable_name)),
            namespace: deployment.metadata.namespace.clone(),
            uid: canary_uid.map(str::to_owned),
            labels: Some(BTreeMap::from([(keys::TRACK.into(), CANARY_TRACK.into())])),
            annotations: Some(BTreeMap::from([(
                STABLE_WEIGHTS.into(),
                stable_weights_text(stable_weights),
            )])),
            owner_references: Some(vec![controller_reference(deployment)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The Deployment whose canary the stable Service is kept from, when budgetgate restricted it.
pub fn restricted_for(stable: &Service) -> Option<&str> {
    stable
        .metadata
        .annotations
        .as_ref()?
        .get(RESTRICTED_FOR)
        .map(String::as_str)
}

/// Whether the stable Service selects only the stable ReplicaSet `hash` for `deployment`.
pub fn is_restricted(stable: &Service, deployment: &str, hash: &str) -> bool {
    restricted_for(stable) == Some(deployment)
        && stable
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(keys::POD_TEMPLATE_HASH))
            .map(String::as_str)
            == Some(hash)
}

/// The merge patch that keeps the canary's pods out of the stable Service: the stable
/// ReplicaSet's hash added to its selector, marked for `deployment`. `None` when the
/// selector already names a `pod-template-hash` budgetgate did not add (the user's).
pub fn restrict_patch(stable: &Service, deployment: &str, hash: &str) -> Option<Value> {
    let user_hash = stable
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| s.contains_key(keys::POD_TEMPLATE_HASH))
        && restricted_for(stable).is_none();
    (!user_hash).then(|| {
        json!({
            "metadata": {"annotations": {RESTRICTED_FOR: deployment}},
            "spec": {"selector": {keys::POD_TEMPLATE_HASH: hash}},
        })
    })
}

/// The merge patch that gives the stable Service its own selector back; `None` when
/// budgetgate did not restrict it for `deployment`.
pub fn unrestrict_patch(stable: &Service, deployment: &str) -> Option<Value> {
    (restricted_for(stable) == Some(deployment)).then(|| {
        json!({
            "metadata": {"annotations": {RESTRICTED_FOR: null}},
            "spec": {"selector": {keys::POD_TEMPLATE_HASH: null}},
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Value {
        json!({
            "metadata": {"name": "web", "resourceVersion": "41"},
            "spec": {
                "hostnames": ["web.example"],
                "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                     "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-admin", "value": "1"}]}}],
                     "backendRefs": [{"name": "admin", "port": 80}]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                     "backendRefs": [{"name": "web", "port": 80}]},
                    {"backendRefs": [{"name": "web", "port": 80, "weight": 3}, {"name": "legacy", "port": 80, "weight": 1}]},
                    {"backendRefs": [{"name": "web", "kind": "ServiceImport", "group": "multicluster.x-k8s.io", "port": 80}]}
                ]
            }
        })
    }

    fn apply(route: &Value, patch: &Value) -> Value {
        let mut r = route.clone();
        let patch: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
        json_patch::patch(&mut r, &patch).unwrap();
        r
    }

    #[test]
    fn replicas_carry_the_weight_rounded_up() {
        assert_eq!(
            [5, 25, 50, 100].map(|w| canary_replicas(10, w)),
            [1, 3, 5, 10]
        );
        assert_eq!(canary_replicas(4, 10), 1);
        assert_eq!(canary_replicas(0, 5), 1);
        assert_eq!(canary_replicas(19, 5), 1);
        assert_eq!(canary_replicas(21, 5), 2);
    }

    #[test]
    fn only_rules_naming_the_stable_service_are_managed() {
        assert_eq!(managed_rules(&route(), "web"), vec![1, 2]);
        assert_eq!(managed_rules(&route(), "nothing"), Vec::<usize>::new());
    }

    #[test]
    fn weights_patch_touches_only_the_managed_backend_refs() {
        let r = route();
        let patch = weights_patch(&r, "web", "web-canary", 5).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
                {"op": "replace", "path": "/spec/rules/1/backendRefs", "value": [
                    {"name": "web", "port": 80, "weight": 95},
                    {"name": "web-canary", "port": 80, "weight": 5}]},
                {"op": "replace", "path": "/spec/rules/2/backendRefs", "value": [
                    {"name": "web", "port": 80, "weight": 95},
                    {"name": "web-canary", "port": 80, "weight": 5},
                    {"name": "legacy", "port": 80, "weight": 1}]},
            ])
        );
        let after = apply(&r, &patch);
        assert_eq!(after["spec"]["rules"][0], r["spec"]["rules"][0]);
        assert_eq!(after["spec"]["rules"][3], r["spec"]["rules"][3]);
        assert_eq!(after["spec"]["hostnames"], r["spec"]["hostnames"]);
        assert_eq!(canary_weight(&after, "web", "web-canary"), Some(5));
        assert_eq!(weights_patch(&after, "web", "web-canary", 5), None);
        let later = apply(
            &after,
            &weights_patch(&after, "web", "web-canary", 25).unwrap(),
        );
        assert_eq!(canary_weight(&later, "web", "web-canary"), Some(25));
        assert_eq!(
            later["spec"]["rules"][2]["backendRefs"],
            json!([{"name": "web", "port": 80, "weight": 75},
                   {"name": "web-canary", "port": 80, "weight": 25},
                   {"name": "legacy", "port": 80, "weight": 1}])
        );
        assert_eq!(canary_weight(&r, "web", "web-canary"), None);
    }

    #[test]
    fn removal_restores_the_stable_weights_from_before() {
        let r = route();
        let before = stable_weights(&r, "web");
        assert_eq!(before, BTreeMap::from([(1, None), (2, Some(3))]));
        let text = stable_weights_text(&before);
        assert_eq!(text, r#"{"1":null,"2":3}"#);
        assert_eq!(parse_stable_weights(&text), before);
        let during = apply(&r, &weights_patch(&r, "web", "web-canary", 50).unwrap());
        assert!(has_canary_refs(&during, "web-canary"));
        let mut during = during;
        during["metadata"]["resourceVersion"] = json!("42");
        let patch = removal_patch(&during, "web", "web-canary", &before).unwrap();
        assert_eq!(patch[0]["value"], "42");
        let after = apply(&during, &patch);
        assert_eq!(after["spec"], r["spec"]);
        assert!(!has_canary_refs(&after, "web-canary"));
        assert_eq!(removal_patch(&after, "web", "web-canary", &before), None);
    }

    #[test]
    fn route_ref_needs_both_annotations() {
        let meta = |pairs: &[(&str, &str)]| ObjectMeta {
            annotations: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        };
        assert_eq!(route_ref(&meta(&[])), None);
        assert_eq!(
            route_ref(&meta(&[(HTTP_ROUTE, "web"), (SERVICE, "web-svc")])),
            Some(Ok(RouteRef {
                route: "web".into(),
                service: "web-svc".into()
            }))
        );
        assert!(route_ref(&meta(&[(HTTP_ROUTE, "web")])).unwrap().is_err());
        assert!(
            route_ref(&meta(&[(HTTP_ROUTE, " "), (SERVICE, "x")]))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn acceptance_reads_every_parent() {
        assert_eq!(acceptance(&route()), Acceptance::Unreported);
        let parents = |conds: Value| json!({"status": {"parents": [{"conditions": conds}]}});
        assert_eq!(
            acceptance(&parents(json!([{"type": "Accepted", "status": "True"}]))),
            Acceptance::Accepted
        );
        assert_eq!(
            acceptance(&parents(
                json!([{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "no listener"}])
            )),
            Acceptance::Refused("NotAllowedByListeners: no listener".into())
        );
    }

    fn service(selector: &[(&str, &str)], annotations: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(
                    selector
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    node_port: Some(30080),
                    ..ServicePort::default()
                }]),
                cluster_ip: Some("10.96.0.10".into()),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn the_stable_service_is_restricted_and_given_back_only_by_budgetgate() {
        let plain = service(&[("app", "web")], &[]);
        assert!(!is_restricted(&plain, "web", "abc"));
        assert_eq!(
            restrict_patch(&plain, "web", "abc"),
            Some(json!({"metadata": {"annotations": {RESTRICTED_FOR: "web"}},
                        "spec": {"selector": {"pod-template-hash": "abc"}}}))
        );
        assert_eq!(unrestrict_patch(&plain, "web"), None);
        let restricted = service(
            &[("app", "web"), ("pod-template-hash", "abc")],
            &[(RESTRICTED_FOR, "web")],
        );
        assert!(is_restricted(&restricted, "web", "abc"));
        assert!(!is_restricted(&restricted, "web", "def"));
        assert!(unrestrict_patch(&restricted, "web").is_some());
        assert_eq!(unrestrict_patch(&restricted, "other"), None);
        // A hash the user put there is theirs.
        let users = service(&[("app", "web"), ("pod-template-hash", "xyz")], &[]);
        assert_eq!(restrict_patch(&users, "web", "abc"), None);
        assert_eq!(unrestrict_patch(&users, "web"), None);
    }

    #[test]
    fn the_canary_service_copies_ports_and_selector_and_is_owned() {
        let restricted = service(
            &[("app", "web"), ("pod-template-hash", "abc")],
            &[(RESTRICTED_FOR, "web")],
        );
        let d = Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        };
        let s = canary_service(&restricted, &d, &BTreeMap::from([(1, None)]), None);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {
                    "name": "web-canary", "namespace": "shop",
                    "labels": {"budgetgate.dev/track": "canary"},
                    "annotations": {STABLE_WEIGHTS: "{\"1\":null}"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                        "uid": "u1", "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {
                    "selector": {"app": "web", "budgetgate.dev/track": "canary"},
                    "ports": [{"name": "http", "port": 80}],
                },
            })
        );
        assert_eq!(
            canary_service_state(Some(&s), "u1"),
            ServiceState::Owned {
                uid: String::new(),
                stable_weights: BTreeMap::from([(1, None)])
            }
        );
        assert_eq!(
            canary_service_state(Some(&s), "u2"),
            ServiceState::Foreign {
                owner: Some("Deployment web (uid u1)".into())
            }
        );
        assert_eq!(canary_service_state(None, "u1"), ServiceState::Absent);
        assert_eq!(stable_service_problem(&restricted), None);
        assert_eq!(
            stable_service_problem(&service(&[], &[])),
            Some("Service web has no selector; the canary Service copies it".into())
        );
        assert_eq!(
            stable_service_problem(&service(&[("app", "web"), ("pod-template-hash", "xyz")], &[])),
            Some("Service web selects a pod-template-hash of its own; the canary's pods cannot be kept out of it".into())
        );
    }
}
