//! The admission decision table (DESIGN §6), one test per rule, on builder fixtures.
//!
//! Budgets go through the real arithmetic (`index::evaluate_budgets`) from event counts at
//! a 99.9% objective over 2,000,000 requests, so the remaining budget of each fixture is
//! known exactly: 400 bad → 80% (healthy), 1,200 → 40% (caution), 1,600 → 20% (critical),
//! 2,200 → −10% (exhausted).

use super::*;
use crate::api::{
    Duration, LabelSelector, ReliabilityPolicySpec, ServiceLevelObjectiveSpec, TierSpec, Time,
};
use crate::budget::{Counts, Signals, budget_ratio};
use crate::index::{NamespaceMeta, ReleaseEntry, SloSignals, evaluate_budgets};
use base64::Engine;
use serde_json::json;
use std::collections::BTreeSet;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// The ReliabilityPolicy of DESIGN Appendix A (its `spec`).
const APPENDIX_A_POLICY: &str = r#"
defaultTier: production
controllerUsers: ["system:serviceaccount:budgetgate-system:budgetgate"]
exceptions: {maxDuration: 7d}
platformFreeze: false
tiers:
  production:
    enforcement: enforce          # enforce | warn | dryrun
    window: 30d                   # or  calendar: month | quarter
    staleAfter: 5m
    onStale: allow                # allow | deny
    freezeOnPageBurn: true
    recoveryTarget: 1h
    bands:                        # first band with remaining > minRemaining; none = exhausted
      - {name: healthy,  minRemaining: 0.5,  plan: {steps: [20, 50, 100], pause: 2m}}
      - {name: caution,  minRemaining: 0.25, plan: {steps: [10, 25, 50, 100], pause: 5m}, maxConcurrentRollouts: 3}
      - {name: critical, minRemaining: 0,    plan: {steps: [5, 10, 25, 50, 100], pause: 10m}, maxConcurrentRollouts: 1, minInterval: 1h}
    alertWindows:                 # optional; this is the default
      - {name: page-fast,   severity: page,   long: 1h, short: 5m,  budgetPercent: 2}
      - {name: page-slow,   severity: page,   long: 6h, short: 30m, budgetPercent: 5}
      - {name: ticket-fast, severity: ticket, long: 1d, short: 2h,  budgetPercent: 10}
      - {name: ticket-slow, severity: ticket, long: 3d, short: 6h,  budgetPercent: 10}
    canary: {analysisWindow: 5m, abortBurnRate: 14.4, consecutiveFailures: 2, progressDeadline: 10m}
  staging:
    enforcement: warn
    window: 7d
    bands:
      - {name: healthy, minRemaining: 0.25, plan: {steps: [50, 100], pause: 1m}}
      - {name: critical, minRemaining: 0, plan: {steps: [25, 100], pause: 2m}}
"#;

const CONTROLLER: &str = "system:serviceaccount:budgetgate-system:budgetgate";
const DEVELOPER: &str = "jane@example.com";
const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";
/// `workload_revision` of `mk_deployment("checkout").image("v2")` (pinned in classify.rs).
const CHECKOUT_V2: &str = "abe6038a51";
/// The tail every denial ends with for a Deployment in namespace `shop`.
const SHOP_TAIL: &str = "Still allowed: rolling back to a previous revision, and scaling. \
     To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace shop.";

fn ts(text: &str) -> Timestamp {
    text.parse().expect("fixture timestamp")
}

fn now() -> Timestamp {
    ts("2026-11-29T10:00:00Z")
}

fn policy_spec() -> ReliabilityPolicySpec {
    serde_yaml_ng::from_str(APPENDIX_A_POLICY).expect("Appendix A policy parses")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn app_selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(&[("app", app)])),
        ..Default::default()
    }
}

/// An apps/v1 Deployment as the apiserver sends it.
#[derive(Clone, Debug)]
struct DeploymentBuilder {
    name: String,
    namespace: String,
    image: String,
    replicas: u32,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    template_labels: BTreeMap<String, String>,
    template_annotations: BTreeMap<String, String>,
    paused: Option<bool>,
}

/// `mk_deployment("checkout")`: namespace `shop`, image `shop/checkout:v1`, 3 replicas,
/// label and pod label `app: checkout`, no annotations.
fn mk_deployment(name: &str) -> DeploymentBuilder {
    DeploymentBuilder {
        name: name.into(),
        namespace: "shop".into(),
        image: "v1".into(),
        replicas: 3,
        labels: labels(&[("app", name)]),
        annotations: BTreeMap::new(),
        template_labels: labels(&[("app", name)]),
        template_annotations: BTreeMap::new(),
        paused: None,
    }
}

impl DeploymentBuilder {
    fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The image tag: `shop/<name>:<tag>`.
    fn image(mut self, tag: &str) -> Self {
        self.image = tag.into();
        self
    }

    fn replicas(mut self, replicas: u32) -> Self {
        self.replicas = replicas;
        self
    }

    fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    fn template_label(mut self, key: &str, value: &str) -> Self {
        self.template_labels.insert(key.into(), value.into());
        self
    }

    /// `kubectl rollout restart` at `at`: the pod template's restartedAt annotation.
    fn restarted_at(mut self, at: &str) -> Self {
        self.template_annotations
            .insert(keys::RESTARTED_AT.into(), at.into());
        self
    }

    fn paused(mut self, paused: bool) -> Self {
        self.paused = Some(paused);
        self
    }

    fn build(self) -> Value {
        let mut metadata = json!({
            "name": self.name,
            "namespace": self.namespace,
            "labels": self.labels,
        });
        if !self.annotations.is_empty() {
            metadata["annotations"] = json!(self.annotations);
        }
        let mut spec = json!({
            "replicas": self.replicas,
            "selector": {"matchLabels": {"app": self.name}},
            "template": {
                "metadata": {"labels": self.template_labels},
                "spec": {"containers": [{
                    "name": "app",
                    "image": format!("shop/{}:{}", self.name, self.image),
                }]}
            }
        });
        if !self.template_annotations.is_empty() {
            spec["template"]["metadata"]["annotations"] = json!(self.template_annotations);
        }
        if let Some(paused) = self.paused {
            spec["paused"] = json!(paused);
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": spec,
        })
    }
}

impl From<DeploymentBuilder> for Value {
    fn from(d: DeploymentBuilder) -> Value {
        d.build()
    }
}

/// An AdmissionReview request.
#[derive(Clone, Debug)]
struct RequestBuilder {
    request: AdmissionRequest,
}

fn mk_request(operation: Operation, object: Option<Value>, old: Option<Value>) -> RequestBuilder {
    let meta = |field: &str| {
        object
            .as_ref()
            .or(old.as_ref())
            .and_then(|o| o.pointer(&format!("/metadata/{field}")))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    RequestBuilder {
        request: AdmissionRequest {
            uid: UID.into(),
            kind: review::GroupVersionKind {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
            },
            name: meta("name").unwrap_or_default(),
            namespace: meta("namespace"),
            sub_resource: None,
            operation,
            user_info: review::UserInfo {
                username: DEVELOPER.into(),
                groups: vec!["system:authenticated".into()],
            },
            object: object.map(Object::new),
            old_object: old.map(Object::new),
            dry_run: Some(false),
        },
    }
}

/// `kubectl apply` of a changed Deployment.
fn mk_update(old: impl Into<Value>, new: impl Into<Value>) -> RequestBuilder {
    mk_request(Operation::Update, Some(new.into()), Some(old.into()))
}

/// `kubectl create` of a new Deployment.
fn mk_create(new: impl Into<Value>) -> RequestBuilder {
    mk_request(Operation::Create, Some(new.into()), None)
}

impl RequestBuilder {
    fn user(mut self, username: &str) -> Self {
        self.request.user_info.username = username.into();
        self
    }

    /// `kubectl apply --dry-run=server`.
    fn dry_run(mut self) -> Self {
        self.request.dry_run = Some(true);
        self
    }

    fn kind(mut self, group: &str, version: &str, kind: &str) -> Self {
        self.request.kind = review::GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        };
        self
    }

    fn operation(mut self, operation: Operation) -> Self {
        self.request.operation = operation;
        self
    }

    fn sub_resource(mut self, sub_resource: &str) -> Self {
        self.request.sub_resource = Some(sub_resource.into());
        self
    }

    fn build(self) -> AdmissionRequest {
        self.request
    }
}

/// Event counts of one SLO: the period and every window the production tier needs.
#[derive(Clone, Debug)]
struct Budget {
    period: Option<Counts>,
    windows: BTreeMap<&'static str, Option<Counts>>,
}

/// `bad` of `total` events over the period; every window quiet (0 bad of 1,000).
fn mk_budget(bad: f64, total: f64) -> Budget {
    Budget {
        period: Some(Counts { bad, total }),
        windows: ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
            .into_iter()
            .map(|w| {
                (
                    w,
                    Some(Counts {
                        bad: 0.0,
                        total: 1000.0,
                    }),
                )
            })
            .collect(),
    }
}

/// 80% remaining: band healthy.
fn healthy() -> Budget {
    mk_budget(400.0, 2_000_000.0)
}

/// 40% remaining: band caution.
fn caution() -> Budget {
    mk_budget(1200.0, 2_000_000.0)
}

/// 20% remaining: band critical.
fn critical() -> Budget {
    mk_budget(1600.0, 2_000_000.0)
}

/// −10% remaining, burning at 2.5x (5m), 3x (1h), 1.2x (6h): no alert pair fires.
fn exhausted() -> Budget {
    mk_budget(2200.0, 2_000_000.0)
        .window("5m", 2.5, 1000.0)
        .window("1h", 3.0, 1000.0)
        .window("6h", 1.2, 1000.0)
}

impl Budget {
    fn window(mut self, window: &'static str, bad: f64, total: f64) -> Self {
        self.windows.insert(window, Some(Counts { bad, total }));
        self
    }

    /// Burn 20x over 5m and 1h: the page-fast pair (14.4x) fires.
    fn paging(self) -> Self {
        self.window("5m", 20.0, 1000.0).window("1h", 20.0, 1000.0)
    }

    /// The window's counts missing (its series absent in Prometheus).
    fn missing_window(mut self, window: &'static str) -> Self {
        self.windows.insert(window, None);
        self
    }

    fn missing_period(mut self) -> Self {
        self.period = None;
        self
    }

    fn signals(&self) -> Signals {
        Signals::from_counts(
            budget_ratio(99.9),
            self.period,
            self.windows
                .iter()
                .map(|(w, c)| (Duration::parse(w).expect("fixture window"), *c)),
        )
    }
}

/// A BudgetException; by default the `hotfix-4411` of Appendix A.
#[derive(Clone, Debug)]
struct ExceptionBuilder {
    name: String,
    spec: BudgetExceptionSpec,
}

fn mk_exception(name: &str) -> ExceptionBuilder {
    ExceptionBuilder {
        name: name.into(),
        spec: BudgetExceptionSpec {
            kind: ExceptionKind::Override,
            selector: app_selector("checkout"),
            extra_budget: None,
            reason: "P0 fix for double charge, INC-4411".into(),
            approved_by: "platform-oncall".into(),
            expires_at: Time(ts("2026-12-01T00:00:00Z")),
            max_rollouts: Some(2),
        },
    }
}

impl ExceptionBuilder {
    fn offset(mut self, extra_budget: f64) -> Self {
        self.spec.kind = ExceptionKind::Offset;
        self.spec.extra_budget = Some(extra_budget);
        self
    }

    fn expires_at(mut self, at: &str) -> Self {
        self.spec.expires_at = Time(ts(at));
        self
    }

    fn max_rollouts(mut self, max: Option<u32>) -> Self {
        self.spec.max_rollouts = max;
        self
    }

    fn reason(mut self, reason: &str) -> Self {
        self.spec.reason = reason.into();
        self
    }

    fn selects(mut self, app: &str) -> Self {
        self.spec.selector = app_selector(app);
        self
    }

    /// The object as a validating webhook receives it.
    fn object(&self, namespace: &str) -> Value {
        json!({
            "apiVersion": "budgetgate.dev/v1alpha1",
            "kind": "BudgetException",
            "metadata": {"name": self.name, "namespace": namespace},
            "spec": serde_json::to_value(&self.spec).expect("spec serializes"),
        })
    }
}

/// A Release the controller wrote; by default Progressing, created at 09:00.
#[derive(Clone, Debug)]
struct ReleaseBuilder {
    name: String,
    entry: ReleaseEntry,
}

fn mk_release(deployment: &str, revision: &str) -> ReleaseBuilder {
    ReleaseBuilder {
        name: format!("{deployment}-{revision}"),
        entry: ReleaseEntry {
            deployment: deployment.into(),
            revision: revision.into(),
            created: Some(ts("2026-11-29T09:00:00Z")),
            phase: Some(ReleasePhase::Progressing),
            ..ReleaseEntry::default()
        },
    }
}

impl ReleaseBuilder {
    fn created(mut self, at: &str) -> Self {
        self.entry.created = Some(ts(at));
        self
    }

    fn phase(mut self, phase: ReleasePhase) -> Self {
        self.entry.phase = Some(phase);
        self
    }

    fn exception(mut self, name: &str) -> Self {
        self.entry.exception = Some(name.into());
        self
    }

    /// Queued (in the team's queue since `at`).
    fn queued(mut self, at: &str) -> Self {
        self.entry.phase = Some(ReleasePhase::Queued);
        self.entry.queued_since = Some(ts(at));
        self
    }
}

/// The watched state: Appendix A policy and namespace `shop` (team payments, production,
/// progressive), budgets evaluated a minute before `now`.
struct IndexBuilder {
    policy: Option<ReliabilityPolicySpec>,
    namespaces: BTreeMap<String, NamespaceMeta>,
    slos: BTreeMap<ObjectKey, ServiceLevelObjectiveSpec>,
    signals: Vec<SloSignals>,
    exceptions: BTreeMap<ObjectKey, BudgetExceptionSpec>,
    releases: BTreeMap<ObjectKey, ReleaseEntry>,
    revisions: BTreeMap<ObjectKey, BTreeSet<String>>,
    evaluated_at: Option<Timestamp>,
}

fn mk_index() -> IndexBuilder {
    IndexBuilder {
        policy: Some(policy_spec()),
        namespaces: BTreeMap::new(),
        slos: BTreeMap::new(),
        signals: Vec::new(),
        exceptions: BTreeMap::new(),
        releases: BTreeMap::new(),
        revisions: BTreeMap::new(),
        evaluated_at: Some(ts("2026-11-29T09:59:00Z")),
    }
    .namespace(
        "shop",
        &[
            (keys::TEAM, "payments"),
            (keys::TIER, "production"),
            (keys::PROGRESSIVE, "true"),
        ],
    )
}

impl IndexBuilder {
    fn policy(mut self, edit: impl FnOnce(&mut ReliabilityPolicySpec)) -> Self {
        if let Some(policy) = self.policy.as_mut() {
            edit(policy);
        }
        self
    }

    fn tier(self, tier: &str, edit: impl FnOnce(&mut TierSpec)) -> Self {
        self.policy(|p| edit(p.tiers.get_mut(tier).expect("tier in the fixture policy")))
    }

    fn no_policy(mut self) -> Self {
        self.policy = None;
        self
    }

    /// A Namespace and its labels (replacing any earlier one of that name).
    fn namespace(mut self, name: &str, pairs: &[(&str, &str)]) -> Self {
        self.namespaces
            .insert(name.into(), NamespaceMeta::from_labels(&labels(pairs)));
        self
    }

    /// A 99.9% ratio SLO `namespace/name` over service `app`, selecting Deployments
    /// labelled `app: <app>`, with the budget's counts.
    fn slo(self, namespace: &str, name: &str, app: &str, budget: Budget) -> Self {
        self.slo_selecting(namespace, name, app, Some(app_selector(app)), Some(budget))
    }

    /// An SLO the evaluator has no counts for yet (created after the last evaluation).
    fn slo_without_data(self, namespace: &str, name: &str, app: &str) -> Self {
        self.slo_selecting(namespace, name, app, Some(app_selector(app)), None)
    }

    fn slo_selecting(
        mut self,
        namespace: &str,
        name: &str,
        app: &str,
        selector: Option<LabelSelector>,
        budget: Option<Budget>,
    ) -> Self {
        let key = ObjectKey::new(namespace, name);
        let spec = serde_json::from_value::<ServiceLevelObjectiveSpec>(json!({
            "service": app,
            "objective": 99.9,
            "indicator": {"ratio": {
                "errors": format!("http_requests_total{{namespace=\"{namespace}\",service=\"{app}\",code=~\"5..\"}}"),
                "total": format!("http_requests_total{{namespace=\"{namespace}\",service=\"{app}\"}}"),
            }},
        }))
        .map(|spec| ServiceLevelObjectiveSpec {
            deployment_selector: selector,
            ..spec
        })
        .expect("fixture SLO");
        self.slos.insert(key.clone(), spec);
        if let Some(budget) = budget {
            self.signals.push(SloSignals {
                key,
                objective: 99.9,
                window: None,
                signals: budget.signals(),
            });
        }
        self
    }

    fn exception(mut self, namespace: &str, exception: ExceptionBuilder) -> Self {
        self.exceptions
            .insert(ObjectKey::new(namespace, exception.name), exception.spec);
        self
    }

    fn release(mut self, namespace: &str, release: ReleaseBuilder) -> Self {
        self.releases
            .insert(ObjectKey::new(namespace, release.name), release.entry);
        self
    }

    /// A ReplicaSet `replica_set` (a Deployment-shaped object) owned by the Deployment.
    fn owned_replica_set(mut self, namespace: &str, deployment: &str, replica_set: Value) -> Self {
        self.revisions
            .entry(ObjectKey::new(namespace, deployment))
            .or_default()
            .insert(workload_revision(&replica_set));
        self
    }

    fn evaluated_at(mut self, at: &str) -> Self {
        self.evaluated_at = Some(ts(at));
        self
    }

    /// No BudgetSnapshot has been read yet.
    fn no_budget_data(mut self) -> Self {
        self.evaluated_at = None;
        self
    }

    fn build(self) -> Index {
        let policy = self
            .policy
            .map(|spec| Policy::from_spec(&spec).expect("fixture policy is valid"));
        let budgets = match (&policy, self.evaluated_at) {
            (Some(policy), Some(at)) => {
                evaluate_budgets(policy, &self.namespaces, &self.signals, at)
            }
            _ => Default::default(),
        };
        Index {
            policy,
            policy_name: None,
            namespaces: self.namespaces,
            slos: self.slos,
            exceptions: self.exceptions,
            releases: self.releases,
            revisions: self.revisions,
            deployments: BTreeMap::new(),
            budgets,
            team_budgets: BTreeMap::new(),
        }
    }
}

/// `shop` with the Appendix A SLO `checkout-availability` at the given budget.
fn shop_with(budget: Budget) -> IndexBuilder {
    mk_index().slo("shop", "checkout-availability", "checkout", budget)
}

/// The everyday rollout: checkout from v1 to v2.
fn checkout_rollout() -> RequestBuilder {
    mk_update(
        mk_deployment("checkout").image("v1"),
        mk_deployment("checkout").image("v2"),
    )
}

fn decide_now(request: RequestBuilder, index: IndexBuilder) -> Decision {
    decide(&request.build(), &index.build(), now()).expect("a decidable review")
}

fn patch_of(d: &Decision) -> Value {
    serde_json::to_value(&d.patch).expect("patch serializes")
}

/// The mutating webhook's patch as the apiserver decodes it.
fn decoded_patch(response: &AdmissionResponse) -> Option<Value> {
    let encoded = response.patch.as_ref()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("patch is base64");
    Some(serde_json::from_slice(&bytes).expect("patch is JSON"))
}

fn assert_remaining(d: &Decision, expected: f64) {
    let remaining = d.remaining.expect("a remaining budget");
    assert!(
        (remaining - expected).abs() < 1e-9,
        "remaining {remaining} != {expected}"
    );
}

fn assert_warnings(d: &Decision, expected: &[&str]) {
    assert_eq!(d.warnings, expected);
    for w in &d.warnings {
        assert!(w.chars().count() <= 120, "warning over 120 characters: {w}");
    }
}

/// The patch writing a canary plan on a Deployment without annotations.
fn plan_patch(band: &str, steps: &str, pause: &str, revision: &str) -> Value {
    json!([
        {"op": "add", "path": "/spec/paused", "value": true},
        {"op": "add", "path": "/metadata/annotations", "value": {
            "budgetgate.dev/band": band,
            "budgetgate.dev/pause": pause,
            "budgetgate.dev/plan": steps,
            "budgetgate.dev/revision": revision,
            "budgetgate.dev/stage": "0",
        }},
    ])
}

// ---------------------------------------------------------------------------------------
// Step 0: what the webhook looks at
// ---------------------------------------------------------------------------------------

#[test]
fn non_deployment_kinds_are_not_applicable() {
    let index = || shop_with(exhausted());
    let statefulset = checkout_rollout().kind("apps", "v1", "StatefulSet");
    let beta = checkout_rollout().kind("extensions", "v1beta1", "Deployment");
    let scale = checkout_rollout().sub_resource("scale");
    let delete = checkout_rollout().operation(Operation::Delete);
    for request in [statefulset, beta, scale, delete] {
        let d = decide_now(request.clone(), index());
        assert_eq!(d.reason, Reason::NotApplicable, "{request:?}");
        assert!(d.allowed());
        assert!(!d.would_deny);
        assert_eq!(d.class, None);
        assert!(d.warnings.is_empty());
        assert!(d.patch.0.is_empty());
        assert_eq!(d.mutate_response(), AdmissionResponse::allow(UID));
        assert_eq!(d.validate_response(), AdmissionResponse::allow(UID));
    }
}

#[test]
fn update_without_old_object_is_malformed_not_a_panic() {
    let mut request = checkout_rollout().build();
    request.old_object = None;
    assert_eq!(
        decide(&request, &shop_with(healthy()).build(), now()),
        Err(ReviewError::Malformed(
            "request.oldObject: missing for a Deployment UPDATE".into()
        ))
    );
    request.object = None;
    assert_eq!(
        decide(&request, &shop_with(healthy()).build(), now()),
        Err(ReviewError::Malformed(
            "request.object: missing for a Deployment CREATE or UPDATE".into()
        ))
    );
}

#[test]
fn missing_policy_fails_open() {
    let d = decide_now(checkout_rollout(), shop_with(exhausted()).no_policy());
    assert_eq!(d.reason, Reason::NoPolicy);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert!(d.patch.0.is_empty());
}

// ---------------------------------------------------------------------------------------
// Step 1: unmanaged namespaces and controller users
// ---------------------------------------------------------------------------------------

#[test]
fn unmanaged_namespace_is_allowed_without_patch() {
    let old = || mk_deployment("checkout").namespace("legacy");
    for index in [
        shop_with(exhausted()),
        shop_with(exhausted()).namespace("legacy", &[(keys::TIER, "production")]),
    ] {
        let d = decide_now(mk_update(old(), old().image("v2")), index);
        assert_eq!(d.reason, Reason::Unmanaged);
        assert_eq!(d.namespace, "legacy");
        assert_eq!(d.team, None);
        assert!(d.allowed());
        assert!(!d.would_deny);
        assert!(d.warnings.is_empty());
        assert!(d.patch.0.is_empty());
        assert_eq!(d.mutate_response(), AdmissionResponse::allow(UID));
    }
}

#[test]
fn forged_system_annotations_are_restored_in_an_unmanaged_namespace() {
    // A history forged while the namespace is unmanaged would make a rollout a rollback the
    // day it is managed. The pause of what looks like a canary is left alone there.
    let old = || {
        mk_deployment("checkout")
            .namespace("legacy")
            .annotation(keys::HISTORY, "1111111111")
            .annotation(keys::STAGE, "1")
            .paused(true)
    };
    let forged = old()
        .image("v2")
        .paused(false)
        .annotation(keys::HISTORY, &format!("{CHECKOUT_V2},1111111111"))
        .annotation(keys::STAGE, "4");
    let d = decide_now(mk_update(old(), forged.clone()), shop_with(exhausted()));
    assert_eq!(d.reason, Reason::Unmanaged);
    assert!(d.allowed());
    assert!(d.warnings.is_empty());
    assert_eq!(
        patch_of(&d),
        json!([
            {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1stage", "value": "1"},
            {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1history", "value": "1111111111"},
        ])
    );
    // budgetgate's own writes are not reverted.
    let own = decide_now(
        mk_update(old(), forged).user(CONTROLLER),
        shop_with(exhausted()),
    );
    assert!(own.patch.0.is_empty());
}

#[test]
fn forged_system_annotations_are_restored_on_the_status_subresource() {
    let old = || mk_deployment("checkout").annotation(keys::REVISION, "1111111111");
    let forged = old()
        .annotation(keys::REVISION, CHECKOUT_V2)
        .annotation(keys::HISTORY, CHECKOUT_V2);
    for namespace in ["shop", "legacy"] {
        let d = decide_now(
            mk_update(
                old().namespace(namespace),
                forged.clone().namespace(namespace),
            )
            .sub_resource("status"),
            shop_with(exhausted()),
        );
        assert_eq!(d.reason, Reason::NotApplicable, "{namespace}");
        assert!(d.allowed());
        assert_eq!(d.class, None);
        assert_eq!(
            patch_of(&d),
            json!([
                {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1revision", "value": "1111111111"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1history"},
            ]),
            "{namespace}"
        );
    }
    // A status write that leaves them alone gets no patch; nor does the scale subresource.
    let d = decide_now(
        mk_update(old(), old().replicas(5)).sub_resource("status"),
        shop_with(exhausted()),
    );
    assert!(d.patch.0.is_empty());
    let d = decide_now(
        mk_update(old(), forged).sub_resource("scale"),
        shop_with(exhausted()),
    );
    assert!(d.patch.0.is_empty());
}

#[test]
fn controller_user_is_never_gated() {
    // The controller pauses, stages and promotes: it writes system annotations itself.
    let old = mk_deployment("checkout").image("v1");
    let new = mk_deployment("checkout")
        .image("v2")
        .paused(true)
        .annotation(keys::STAGE, "2")
        .annotation(keys::STAGE_STARTED_AT, "2026-11-29T09:58:00Z");
    let d = decide_now(
        mk_update(old, new).user(CONTROLLER),
        shop_with(exhausted().paging()),
    );
    assert_eq!(d.reason, Reason::ControllerUser);
    assert_eq!(d.team.as_deref(), Some("payments"));
    assert_eq!(d.tier.as_deref(), Some("production"));
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert!(d.warnings.is_empty());
    assert!(d.patch.0.is_empty());
}

#[test]
fn unknown_tier_fails_open_with_a_warning() {
    let index =
        shop_with(exhausted()).namespace("shop", &[(keys::TEAM, "payments"), (keys::TIER, "gold")]);
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::UnknownTier);
    assert_eq!(d.tier.as_deref(), Some("gold"));
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_warnings(
        &d,
        &["budgetgate: namespace shop names tier \"gold\", which the policy lacks; not gated"],
    );
    assert!(d.patch.0.is_empty());
}

#[test]
fn namespace_without_tier_label_uses_the_default_tier() {
    let index = shop_with(exhausted()).namespace("shop", &[(keys::TEAM, "payments")]);
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.tier.as_deref(), Some("production"));
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
}

// ---------------------------------------------------------------------------------------
// Step 2: classification; only rollouts and creations are gated
// ---------------------------------------------------------------------------------------

#[test]
fn scale_only_change_is_never_denied() {
    let d = decide_now(
        mk_update(
            mk_deployment("checkout").replicas(3),
            mk_deployment("checkout").replicas(12),
        ),
        shop_with(exhausted().paging()),
    );
    assert_eq!(d.class, Some(ChangeClass::Scale));
    assert_eq!(d.reason, Reason::NotGated);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_eq!(d.message, None);
    assert!(d.warnings.is_empty());
    assert!(d.patch.0.is_empty());
    assert_eq!(d.canary, None);
}

#[test]
fn metadata_change_passes() {
    let d = decide_now(
        mk_update(
            mk_deployment("checkout"),
            mk_deployment("checkout")
                .label("owner", "payments-oncall")
                .annotation("kubernetes.io/change-cause", "relabel"),
        ),
        shop_with(exhausted()),
    );
    assert_eq!(d.class, Some(ChangeClass::Metadata));
    assert_eq!(d.reason, Reason::NotGated);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert!(d.warnings.is_empty());
    assert!(d.patch.0.is_empty());
}

#[test]
fn rollback_to_owned_replica_set_passes_during_a_freeze_with_a_warning() {
    // The serving ReplicaSet carries pod-template-hash; the comparison ignores it.
    let replica_set = mk_deployment("checkout")
        .image("v1")
        .template_label(keys::POD_TEMPLATE_HASH, "5d8f7c9b6")
        .build();
    let d = decide_now(
        mk_update(
            mk_deployment("checkout").image("v2"),
            mk_deployment("checkout").image("v1"),
        ),
        shop_with(exhausted()).owned_replica_set("shop", "checkout", replica_set),
    );
    assert_eq!(d.class, Some(ChangeClass::Rollback));
    assert_eq!(d.reason, Reason::NotGated);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_eq!(d.message, None);
    assert_warnings(
        &d,
        &[
            "budgetgate: rollback of shop/checkout let through despite the freeze (budget exhausted, -10.0% left)",
        ],
    );
    assert!(d.patch.0.is_empty());
    assert_eq!(d.canary, None);
    let response = d.validate_response();
    assert!(response.allowed);
    assert_eq!(response.warnings, d.warnings);
}

#[test]
fn rollback_to_revision_in_history_passes() {
    let v1 = workload_revision(&mk_deployment("checkout").image("v1").build());
    let history = format!("{CHECKOUT_V2},{v1}");
    let d = decide_now(
        mk_update(
            mk_deployment("checkout")
                .image("v2")
                .annotation(keys::HISTORY, &history),
            mk_deployment("checkout")
                .image("v1")
                .annotation(keys::HISTORY, &history),
        ),
        shop_with(healthy().paging()),
    );
    assert_eq!(d.class, Some(ChangeClass::Rollback));
    assert_eq!(d.reason, Reason::NotGated);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_warnings(
        &d,
        &[
            "budgetgate: rollback of shop/checkout let through despite the freeze (team payments burning (page-fast))",
        ],
    );
    assert!(d.patch.0.is_empty());
}

#[test]
fn rollback_outside_a_freeze_passes_without_a_warning() {
    let replica_set = mk_deployment("checkout").image("v1").build();
    let d = decide_now(
        mk_update(
            mk_deployment("checkout").image("v2"),
            mk_deployment("checkout").image("v1"),
        ),
        shop_with(caution()).owned_replica_set("shop", "checkout", replica_set),
    );
    assert_eq!(d.class, Some(ChangeClass::Rollback));
    assert!(d.allowed());
    assert!(d.warnings.is_empty());
}

#[test]
fn restart_passes_during_a_freeze_with_a_warning_and_records_the_revision_in_history() {
    let restarted = mk_deployment("checkout").restarted_at("2026-11-29T09:58:00Z");
    let revision = workload_revision(&restarted.clone().build());
    let d = decide_now(
        mk_update(mk_deployment("checkout"), restarted),
        shop_with(exhausted()),
    );
    assert_eq!(d.class, Some(ChangeClass::Restart));
    assert_eq!(d.reason, Reason::NotGated);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_eq!(d.message, None);
    assert_warnings(
        &d,
        &[
            "budgetgate: restart of shop/checkout let through despite the freeze (budget exhausted, -10.0% left)",
        ],
    );
    assert_eq!(d.canary, None);
    assert_eq!(
        patch_of(&d),
        json!([{"op": "add", "path": "/metadata/annotations", "value": {
            "budgetgate.dev/history": revision,
        }}])
    );
}

#[test]
fn restart_again_pushes_onto_history_and_is_not_gated_under_page_burn() {
    let first = mk_deployment("checkout")
        .restarted_at("2026-11-29T09:00:00Z")
        .annotation(keys::HISTORY, "1111111111,2222222222");
    let second = mk_deployment("checkout")
        .restarted_at("2026-11-29T09:59:30Z")
        .annotation(keys::HISTORY, "1111111111,2222222222");
    let revision = workload_revision(&second.clone().build());
    let d = decide_now(mk_update(first, second), shop_with(healthy().paging()));
    assert_eq!(d.class, Some(ChangeClass::Restart));
    assert!(d.allowed());
    assert_warnings(
        &d,
        &[
            "budgetgate: restart of shop/checkout let through despite the freeze (team payments burning (page-fast))",
        ],
    );
    assert_eq!(
        patch_of(&d),
        json!([{"op": "add", "path": "/metadata/annotations/budgetgate.dev~1history",
                "value": format!("{revision},1111111111,2222222222")}])
    );
}

#[test]
fn restart_of_a_paused_deployment_or_mid_canary_leaves_history_untouched() {
    let canary = |d: DeploymentBuilder| {
        d.image("v2")
            .paused(true)
            .annotation(keys::STAGE, "1")
            .annotation(keys::REVISION, CHECKOUT_V2)
    };
    let d = decide_now(
        mk_update(
            canary(mk_deployment("checkout")),
            canary(mk_deployment("checkout")).restarted_at("2026-11-29T09:59:30Z"),
        ),
        shop_with(healthy()),
    );
    assert_eq!(d.class, Some(ChangeClass::Restart));
    assert!(d.allowed());
    assert!(d.patch.0.is_empty());
    // Paused by hand: the restarted pods do not run yet either.
    let d = decide_now(
        mk_update(
            mk_deployment("checkout").paused(true),
            mk_deployment("checkout")
                .paused(true)
                .restarted_at("2026-11-29T09:59:30Z"),
        ),
        shop_with(healthy()),
    );
    assert_eq!(d.class, Some(ChangeClass::Restart));
    assert!(d.patch.0.is_empty());
}

#[test]
fn restart_annotation_with_another_change_is_a_rollout() {
    let d = decide_now(
        mk_update(
            mk_deployment("checkout"),
            mk_deployment("checkout")
                .image("v2")
                .restarted_at("2026-11-29T09:58:00Z"),
        ),
        shop_with(exhausted()),
    );
    assert_eq!(d.class, Some(ChangeClass::Rollout));
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
}

#[test]
fn rollback_is_only_to_a_revision_an_earlier_release_ran() {
    let v1 = workload_revision(&mk_deployment("checkout").image("v1").build());
    let back_to_v1 = || {
        mk_update(
            mk_deployment("checkout").image("v2"),
            mk_deployment("checkout").image("v1"),
        )
    };
    for (phase, class) in [
        (ReleasePhase::Promoted, ChangeClass::Rollback),
        (ReleasePhase::Direct, ChangeClass::Rollback),
        (ReleasePhase::Observed, ChangeClass::Rollback),
        (ReleasePhase::RolledBack, ChangeClass::Rollout),
        (ReleasePhase::Superseded, ChangeClass::Rollout),
        (ReleasePhase::Failed, ChangeClass::Rollout),
    ] {
        let index = shop_with(exhausted()).release("shop", {
            let mut release = mk_release("checkout", &v1).phase(phase);
            release.entry.revision = v1.clone();
            release
        });
        let d = decide_now(back_to_v1(), index);
        assert_eq!(d.class, Some(class), "{phase:?}");
        assert_eq!(d.allowed(), class == ChangeClass::Rollback, "{phase:?}");
    }
    // Another Deployment's release of the same template is not this one's.
    let mut other = mk_release("cart", &v1).phase(ReleasePhase::Promoted);
    other.entry.revision = v1.clone();
    let d = decide_now(back_to_v1(), shop_with(exhausted()).release("shop", other));
    assert_eq!(d.class, Some(ChangeClass::Rollout));
}

#[test]
fn template_not_served_before_is_a_gated_rollout() {
    // A ReplicaSet of another template does not make v2 a rollback.
    let replica_set = mk_deployment("checkout").image("v0").build();
    let d = decide_now(
        checkout_rollout(),
        shop_with(exhausted()).owned_replica_set("shop", "checkout", replica_set),
    );
    assert_eq!(d.class, Some(ChangeClass::Rollout));
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
}

// ---------------------------------------------------------------------------------------
// Step 5: remaining budget, freezes
// ---------------------------------------------------------------------------------------

#[test]
fn rollout_is_denied_when_team_budget_is_exhausted() {
    let d = decide_now(checkout_rollout(), shop_with(exhausted()));
    let message = format!(
        "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
         the error budget is exhausted: team payments has -10.0% remaining (burn 5m 2.5x, 1h 3.0x, 6h 1.2x). {SHOP_TAIL}"
    );
    assert_eq!(d.class, Some(ChangeClass::Rollout));
    assert_eq!(d.mode, Enforcement::Enforce);
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(d.would_deny);
    assert!(!d.allowed());
    assert_eq!(d.verdict(), "deny");
    assert_eq!(d.message.as_deref(), Some(message.as_str()));
    assert_eq!(d.team.as_deref(), Some("payments"));
    assert_eq!(d.tier.as_deref(), Some("production"));
    assert_remaining(&d, -0.1);
    assert_eq!(d.band, None);
    assert_eq!(d.canary, None);
    assert_eq!(d.exception, None);
    assert!(d.warnings.is_empty());
    assert!(d.patch.0.is_empty());

    let response = d.validate_response();
    assert_eq!(
        serde_json::to_value(&response).expect("response serializes"),
        json!({
            "uid": UID,
            "allowed": false,
            "status": {"code": 403, "message": message, "reason": "Forbidden"},
        })
    );
    // The mutating webhook never denies; with nothing to write it sends no patch.
    let mutate = d.mutate_response();
    assert!(mutate.allowed);
    assert_eq!(mutate.status, None);
    assert_eq!(mutate.patch, None);
    assert_eq!(mutate.patch_type, None);
}

#[test]
fn rollout_within_budget_is_allowed_in_its_band() {
    let index = shop_with(caution()).namespace(
        "shop",
        &[(keys::TEAM, "payments"), (keys::TIER, "production")],
    );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_eq!(d.verdict(), "allow");
    assert_eq!(d.message, None);
    assert_eq!(d.band.as_deref(), Some("caution"));
    assert_remaining(&d, 0.4);
    // Not progressive: a direct rolling update, nothing to write.
    assert_eq!(d.canary, None);
    assert!(d.patch.0.is_empty());
    assert!(d.warnings.is_empty());
    assert_eq!(d.validate_response(), AdmissionResponse::allow(UID));
}

#[test]
fn budget_spent_exactly_is_exhausted() {
    // 2,000 bad of 2,000,000 at 99.9% leaves exactly 0: at the lowest minRemaining.
    let d = decide_now(
        checkout_rollout(),
        shop_with(mk_budget(2000.0, 2_000_000.0)),
    );
    assert_eq!(d.reason, Reason::Exhausted);
    assert_remaining(&d, 0.0);
    assert!(
        d.message.as_deref().is_some_and(
            |m| m.contains("team payments has 0.0% remaining (burn 5m 0.0x, 1h 0.0x, 6h 0.0x)")
        ),
        "{:?}",
        d.message
    );
}

#[test]
fn stricter_selecting_slo_decides_the_band() {
    // checkout-availability is critical (20%); cart's traffic keeps the team healthy:
    // 1 − (1,600 + 0) / (2,000 + 8,000) = 84%.
    let index = shop_with(critical()).slo(
        "shop",
        "cart-availability",
        "cart",
        mk_budget(0.0, 8_000_000.0),
    );
    let built = index.build();
    let team = &built.budgets.teams[&("payments".to_owned(), "production".to_owned())];
    assert!((team.remaining.expect("team remaining") - 0.84).abs() < 1e-9);

    let index = shop_with(critical()).slo(
        "shop",
        "cart-availability",
        "cart",
        mk_budget(0.0, 8_000_000.0),
    );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
    assert_eq!(d.band.as_deref(), Some("critical"));
    assert_remaining(&d, 0.2);
    assert_eq!(
        patch_of(&d),
        plan_patch("critical", "5,10,25,50,100", "10m", CHECKOUT_V2)
    );
}

#[test]
fn slo_selecting_other_deployments_does_not_limit_this_one() {
    // cart is in the team budget (84%) but checkout-availability does not select it.
    let index = shop_with(critical()).slo(
        "shop",
        "cart-availability",
        "cart",
        mk_budget(0.0, 8_000_000.0),
    );
    let d = decide_now(
        mk_update(
            mk_deployment("cart").image("v1"),
            mk_deployment("cart").image("v2"),
        ),
        index,
    );
    assert_eq!(d.reason, Reason::WithinBudget);
    assert_eq!(d.band.as_deref(), Some("healthy"));
    assert_remaining(&d, 0.84);
}

#[test]
fn relabelling_cannot_move_a_deployment_to_a_laxer_slo() {
    // checkout's own SLO is spent; promo's is healthy and ten times busier (team: 88%).
    let index = shop_with(exhausted()).slo(
        "shop",
        "promo-availability",
        "promo",
        mk_budget(400.0, 20_000_000.0),
    );
    let request = || {
        mk_update(
            mk_deployment("checkout").image("v1"),
            mk_deployment("checkout").image("v2").label("app", "promo"),
        )
    };
    let d = decide_now(request(), index);
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 the error budget is exhausted: SLO shop/checkout-availability has -10.0% remaining \
                 (burn 5m 2.5x, 1h 3.0x, 6h 1.2x). {SHOP_TAIL}"
            )
            .as_str()
        )
    );
    // Created with promo's labels, the same Deployment is promo's to judge.
    let created = decide_now(
        mk_create(mk_deployment("checkout").image("v2").label("app", "promo")),
        shop_with(exhausted()).slo(
            "shop",
            "promo-availability",
            "promo",
            mk_budget(400.0, 20_000_000.0),
        ),
    );
    assert_eq!(created.reason, Reason::WithinBudget);
    assert_eq!(created.band.as_deref(), Some("healthy"));
}

#[test]
fn relabelling_onto_another_deployments_exception_does_not_apply_it() {
    let index =
        || shop_with(exhausted()).exception("shop", mk_exception("promo-hotfix").selects("promo"));
    let d = decide_now(
        mk_update(
            mk_deployment("checkout").image("v1"),
            mk_deployment("checkout").image("v2").label("app", "promo"),
        ),
        index(),
    );
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
    assert_eq!(d.exception, None);
    assert!(d.warnings.is_empty());
    // Nor does dropping the label an exception selects keep it: it must select both.
    let kept = decide_now(
        mk_update(
            mk_deployment("checkout").image("v1").label("app", "promo"),
            mk_deployment("checkout").image("v2"),
        ),
        index(),
    );
    assert_eq!(kept.reason, Reason::Exhausted);
    assert_eq!(kept.exception, None);
    // Unchanged labels it selects: the exception applies.
    let own = decide_now(
        mk_update(
            mk_deployment("checkout").image("v1").label("app", "promo"),
            mk_deployment("checkout").image("v2").label("app", "promo"),
        ),
        index(),
    );
    assert_eq!(own.reason, Reason::Exception);
    assert_eq!(own.exception.as_deref(), Some("promo-hotfix"));
}

#[test]
fn slo_without_deployment_selector_selects_every_deployment() {
    let index = mk_index()
        .slo(
            "shop",
            "cart-availability",
            "cart",
            mk_budget(0.0, 8_000_000.0),
        )
        .slo_selecting("shop", "shop-latency", "shop", None, Some(critical()));
    let d = decide_now(
        mk_update(
            mk_deployment("cart").image("v1"),
            mk_deployment("cart").image("v2"),
        ),
        index,
    );
    assert_eq!(d.band.as_deref(), Some("critical"));
    assert_remaining(&d, 0.2);
}

#[test]
fn page_burn_freezes_when_freeze_on_page_burn() {
    let d = decide_now(checkout_rollout(), shop_with(healthy().paging()));
    assert_eq!(d.reason, Reason::Burning);
    assert!(d.would_deny);
    assert!(!d.allowed());
    assert_remaining(&d, 0.8);
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 team payments is burning its error budget at page level (page-fast firing, burn 5m 20.0x, 1h 20.0x, 6h 0.0x; \
                 team payments has 80.0% remaining), \
                 and the tier freezes on page burn. {SHOP_TAIL}"
            )
            .as_str()
        )
    );
    assert_eq!(d.validate_response().status.map(|s| s.code), Some(403));
}

#[test]
fn a_page_denial_shows_the_burn_of_the_windows_that_fired() {
    // page-fast compressed 50x (as the demo does): 72s/6s at 0.04% is still 14.4x.
    let windows = serde_yaml_ng::from_str(
        "[{name: page-fast, severity: page, long: 72s, short: 6s, budgetPercent: 0.04}]",
    )
    .unwrap();
    let budget = healthy()
        .window("6s", 20.0, 1000.0)
        .window("72s", 20.0, 1000.0)
        .window("5m", 0.7, 1000.0);
    let index = shop_with(budget).tier("production", |t| t.alert_windows = Some(windows));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Burning);
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 team payments is burning its error budget at page level (page-fast firing, burn 6s 20.0x, 72s 20.0x, 5m 0.7x, 1h 0.0x, 6h 0.0x; \
                 team payments has 80.0% remaining), \
                 and the tier freezes on page burn. {SHOP_TAIL}"
            )
            .as_str()
        )
    );
}

#[test]
fn page_burn_of_a_selecting_slo_freezes_the_deployment() {
    // checkout burns at 20x; cart's 100x larger traffic keeps the team's burn at 0.2x.
    let cart = mk_budget(0.0, 8_000_000.0)
        .window("5m", 0.0, 100_000.0)
        .window("1h", 0.0, 100_000.0);
    let index = shop_with(healthy().paging()).slo("shop", "cart-availability", "cart", cart);
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Burning);
    assert!(!d.allowed());
    let message = d.message.expect("a denial");
    assert!(
        message.contains(
            "SLO shop/checkout-availability is burning its error budget at page level (page-fast firing"
        ),
        "{message}"
    );
}

#[test]
fn page_burn_does_not_freeze_when_disabled() {
    let index =
        shop_with(healthy().paging()).tier("production", |t| t.freeze_on_page_burn = Some(false));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_eq!(d.band.as_deref(), Some("healthy"));
    assert_eq!(
        patch_of(&d),
        plan_patch("healthy", "20,50,100", "2m", CHECKOUT_V2)
    );
}

#[test]
fn platform_freeze_denies_every_team_of_the_tier() {
    // Team discovery spends 30,000 of its 20,000 allowed bad events; the platform's
    // production budget is 1 − 30,400 / 22,000 = −38.2% while payments has 80% left.
    let world = |freeze: bool| {
        shop_with(healthy())
            .namespace(
                "search",
                &[(keys::TEAM, "discovery"), (keys::TIER, "production")],
            )
            .slo(
                "search",
                "search-availability",
                "search",
                mk_budget(30_000.0, 20_000_000.0),
            )
            .namespace("docs", &[(keys::TEAM, "docs"), (keys::TIER, "production")])
            .policy(|p| p.platform_freeze = freeze)
    };
    let d = decide_now(checkout_rollout(), world(true));
    assert_eq!(d.reason, Reason::PlatformFreeze);
    assert!(!d.allowed());
    assert_remaining(&d, 0.8);
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 the platform budget of tier production is exhausted (-38.2% remaining; team payments has 80.0% remaining), and platformFreeze is on. {SHOP_TAIL}"
            )
            .as_str()
        )
    );

    // Every team: one without objectives of its own too.
    let docs = || {
        mk_update(
            mk_deployment("site").namespace("docs").image("v1"),
            mk_deployment("site").namespace("docs").image("v2"),
        )
    };
    let d = decide_now(docs(), world(true));
    assert_eq!(d.reason, Reason::PlatformFreeze);
    assert!(!d.allowed());
    assert!(
        d.message.as_deref().is_some_and(|m| m.starts_with(
            "budgetgate denied the rollout of deployment docs/site (team docs, tier production): \
             the platform budget of tier production is exhausted (-38.2% remaining)"
        )),
        "{:?}",
        d.message
    );

    // Without platformFreeze both ship.
    assert_eq!(
        decide_now(checkout_rollout(), world(false)).reason,
        Reason::WithinBudget
    );
    assert_eq!(
        decide_now(docs(), world(false)).reason,
        Reason::NoObjectives
    );
}

#[test]
fn platform_freeze_ignores_other_tiers() {
    let d = decide_now(
        checkout_rollout(),
        shop_with(healthy())
            .namespace(
                "search",
                &[(keys::TEAM, "discovery"), (keys::TIER, "staging")],
            )
            .slo(
                "search",
                "search-availability",
                "search",
                mk_budget(30_000.0, 20_000_000.0),
            )
            .policy(|p| p.platform_freeze = true),
    );
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
}

#[test]
fn team_without_objectives_is_not_gated() {
    let index = shop_with(exhausted()).namespace(
        "docs",
        &[
            (keys::TEAM, "docs"),
            (keys::TIER, "production"),
            (keys::PROGRESSIVE, "true"),
        ],
    );
    let d = decide_now(
        mk_update(
            mk_deployment("site").namespace("docs").image("v1"),
            mk_deployment("site").namespace("docs").image("v2"),
        ),
        index,
    );
    assert_eq!(d.reason, Reason::NoObjectives);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_warnings(
        &d,
        &["budgetgate: team docs has no ServiceLevelObjective in tier production; not gated"],
    );
    // Progressive namespaces still get canaries, at the healthiest band's pace.
    assert_eq!(d.band.as_deref(), Some("healthy"));
    let revision = workload_revision(&mk_deployment("site").namespace("docs").image("v2").build());
    assert_eq!(
        patch_of(&d),
        plan_patch("healthy", "20,50,100", "2m", &revision)
    );
}

// ---------------------------------------------------------------------------------------
// Step 3 and 5: exceptions
// ---------------------------------------------------------------------------------------

#[test]
fn override_exception_lets_an_exhausted_rollout_through_with_most_cautious_plan() {
    // One of its two rollouts is used.
    let index = shop_with(exhausted())
        .exception("shop", mk_exception("hotfix-4411"))
        .release(
            "shop",
            mk_release("checkout", "0a1b2c3d4e")
                .phase(ReleasePhase::Promoted)
                .exception("hotfix-4411"),
        );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exception);
    assert_eq!(d.exception.as_deref(), Some("hotfix-4411"));
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_eq!(d.message, None);
    assert_warnings(
        &d,
        &[
            "budgetgate: exception hotfix-4411 (approved by platform-oncall) lets this through until 2026-12-01T00:00:00Z",
        ],
    );
    assert_remaining(&d, -0.1);
    assert_eq!(d.band.as_deref(), Some("critical"));
    let plan = plan_patch("critical", "5,10,25,50,100", "10m", CHECKOUT_V2);
    assert_eq!(patch_of(&d), plan);
    assert_eq!(
        d.canary
            .as_ref()
            .map(|c| (c.band.as_str(), c.revision.as_str())),
        Some(("critical", CHECKOUT_V2))
    );

    let mutate = d.mutate_response();
    assert!(mutate.allowed);
    assert_eq!(mutate.patch_type, Some("JSONPatch"));
    assert_eq!(decoded_patch(&mutate), Some(plan));
    let validate = d.validate_response();
    assert!(validate.allowed);
    assert_eq!(validate.warnings, d.warnings);
    assert_eq!(validate.patch, None);
}

#[test]
fn override_exception_keeps_the_band_plan_of_a_budget_that_is_not_exhausted() {
    let index = shop_with(caution().paging()).exception("shop", mk_exception("hotfix-4411"));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exception);
    assert_eq!(d.band.as_deref(), Some("caution"));
    assert_eq!(
        patch_of(&d),
        plan_patch("caution", "10,25,50,100", "5m", CHECKOUT_V2)
    );
}

#[test]
fn override_exception_beats_stale_budget_data() {
    let index = shop_with(healthy())
        .evaluated_at("2026-11-29T09:00:00Z")
        .tier("production", |t| t.on_stale = Some(OnStale::Deny))
        .exception("shop", mk_exception("hotfix-4411"));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exception);
    assert!(d.allowed());
    // Stale numbers are not shown as if they were current; the plan is the most cautious.
    assert_eq!(d.remaining, None);
    assert_eq!(d.band.as_deref(), Some("critical"));
}

#[test]
fn expired_exception_is_ignored() {
    let index = shop_with(exhausted()).exception(
        "shop",
        mk_exception("hotfix-4411").expires_at("2026-11-29T10:00:00Z"),
    );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exhausted);
    assert_eq!(d.exception, None);
    assert!(!d.allowed());
    assert!(d.warnings.is_empty());
}

#[test]
fn exception_only_applies_to_the_deployments_it_selects_in_its_namespace() {
    let index = shop_with(exhausted())
        .namespace(
            "shop-api",
            &[(keys::TEAM, "payments"), (keys::TIER, "production")],
        )
        .exception("shop", mk_exception("cart-hotfix").selects("cart"))
        .exception("shop-api", mk_exception("api-hotfix"));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exhausted);
    assert_eq!(d.exception, None);
    assert!(!d.allowed());
}

#[test]
fn exception_with_used_up_max_rollouts_is_ignored_with_a_warning() {
    let index = shop_with(exhausted())
        .exception("shop", mk_exception("hotfix-4411"))
        .release(
            "shop",
            mk_release("checkout", "0a1b2c3d4e")
                .phase(ReleasePhase::Promoted)
                .exception("hotfix-4411"),
        )
        .release(
            "shop",
            mk_release("checkout", "1b2c3d4e5f")
                .phase(ReleasePhase::RolledBack)
                .exception("hotfix-4411"),
        );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exhausted);
    assert_eq!(d.exception, None);
    assert!(!d.allowed());
    assert_warnings(
        &d,
        &["budgetgate: exception hotfix-4411 has used all 2 of its rollouts"],
    );
    assert_eq!(d.validate_response().warnings, d.warnings);
}

#[test]
fn offset_exception_adds_extra_budget() {
    // −10% + 20% = 10%: band critical instead of exhausted.
    let index = shop_with(exhausted()).exception(
        "shop",
        mk_exception("launch-buffer").offset(0.2).max_rollouts(None),
    );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::WithinBudget);
    assert_eq!(d.exception.as_deref(), Some("launch-buffer"));
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_remaining(&d, 0.1);
    assert_eq!(d.band.as_deref(), Some("critical"));
    assert_warnings(
        &d,
        &[
            "budgetgate: exception launch-buffer (approved by platform-oncall) adds 20.0% budget until 2026-12-01T00:00:00Z",
        ],
    );
    assert_eq!(
        patch_of(&d),
        plan_patch("critical", "5,10,25,50,100", "10m", CHECKOUT_V2)
    );
}

#[test]
fn offset_exception_too_small_still_denies_with_the_offset_counted() {
    let index = shop_with(exhausted()).exception(
        "shop",
        mk_exception("launch-buffer")
            .offset(0.05)
            .max_rollouts(None),
    );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
    assert_remaining(&d, -0.05);
    assert!(
        d.message
            .as_deref()
            .is_some_and(|m| m.contains("team payments has -5.0% remaining")),
        "{:?}",
        d.message
    );
}

// ---------------------------------------------------------------------------------------
// Step 4: stale and unknown budgets
// ---------------------------------------------------------------------------------------

#[test]
fn stale_budget_follows_on_stale_allow_with_warning() {
    let index = shop_with(exhausted()).evaluated_at("2026-11-29T09:50:00Z");
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Stale);
    assert!(d.allowed());
    assert!(!d.would_deny);
    assert_eq!(d.message, None);
    assert_warnings(
        &d,
        &["budgetgate: budget of team payments unknown or stale; allowed by onStale=allow"],
    );
    // Without trustworthy numbers a progressive rollout takes the most cautious plan.
    assert_eq!(d.remaining, None);
    assert_eq!(d.band.as_deref(), Some("critical"));
    assert_eq!(
        patch_of(&d),
        plan_patch("critical", "5,10,25,50,100", "10m", CHECKOUT_V2)
    );
}

#[test]
fn budget_exactly_stale_after_old_is_still_fresh() {
    let index = shop_with(caution()).evaluated_at("2026-11-29T09:55:00Z");
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::WithinBudget);
    assert_eq!(d.band.as_deref(), Some("caution"));
}

#[test]
fn stale_budget_is_denied_when_on_stale_is_deny() {
    let index = shop_with(healthy())
        .evaluated_at("2026-11-29T09:50:00Z")
        .tier("production", |t| t.on_stale = Some(OnStale::Deny));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Stale);
    assert!(d.would_deny);
    assert!(!d.allowed());
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 budget data cannot be trusted: budget data is stale (evaluated at 2026-11-29T09:50:00Z, older than staleAfter 5m), \
                 and the tier's onStale is deny. {SHOP_TAIL}"
            )
            .as_str()
        )
    );
    assert!(d.warnings.is_empty());
    assert!(d.patch.0.is_empty());
}

#[test]
fn unknown_slo_budget_counts_as_stale() {
    // checkout-availability was created after the last evaluation; cart keeps the team known.
    let index = mk_index()
        .slo("shop", "cart-availability", "cart", healthy())
        .slo_without_data("shop", "checkout-availability", "checkout")
        .tier("production", |t| t.on_stale = Some(OnStale::Deny));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Stale);
    assert!(!d.allowed());
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 budget data cannot be trusted: the budget of SLO shop/checkout-availability is unknown (metrics missing), \
                 and the tier's onStale is deny. {SHOP_TAIL}"
            )
            .as_str()
        )
    );
}

#[test]
fn missing_period_counts_makes_the_team_budget_unknown() {
    let index = shop_with(healthy().missing_period());
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Stale);
    assert!(d.allowed());
    assert_warnings(
        &d,
        &["budgetgate: budget of team payments unknown or stale; allowed by onStale=allow"],
    );
    assert_eq!(d.band.as_deref(), Some("critical"));
}

#[test]
fn slo_without_data_does_not_make_its_team_unknown() {
    // cart-latency was added after the last evaluation; it selects only cart.
    let index = shop_with(caution())
        .slo_without_data("shop", "cart-latency", "cart")
        .tier("production", |t| t.on_stale = Some(OnStale::Deny));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
    assert_remaining(&d, 0.4);
    assert_eq!(d.band.as_deref(), Some("caution"));
}

#[test]
fn known_exhaustion_denies_whatever_slo_lacks_data() {
    // The team's budget is known exhausted; a new SLO of checkout has no data yet, and the
    // tier would allow on stale data.
    let index = shop_with(exhausted()).slo_without_data("shop", "checkout-latency", "checkout");
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 the error budget is exhausted: team payments has -10.0% remaining \
                 (burn 5m 2.5x, 1h 3.0x, 6h 1.2x); the budget of SLO shop/checkout-latency is unknown (metrics missing), \
                 which does not lift the freeze. {SHOP_TAIL}"
            )
            .as_str()
        )
    );
    assert!(d.warnings.is_empty());
}

#[test]
fn team_exhaustion_names_the_slos_left_out_for_lack_of_data() {
    // cart-latency's period series is missing and it selects cart only; the team total is
    // checkout's and cart-availability's.
    let index = shop_with(exhausted())
        .slo("shop", "cart-availability", "cart", exhausted())
        .slo("shop", "cart-latency", "cart", healthy().missing_period());
    let d = decide_now(
        mk_update(
            mk_deployment("search").image("v1"),
            mk_deployment("search").image("v2"),
        ),
        index,
    );
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(
        d.message.as_deref().is_some_and(|m| m.contains(
            "the error budget is exhausted: team payments has -10.0% remaining (burn 5m 2.5x, 1h 3.0x, 6h 1.2x); \
             1 SLO without data is not counted. "
        )),
        "{:?}",
        d.message
    );
}

#[test]
fn missing_page_window_does_not_hide_an_exhausted_budget() {
    let d = decide_now(
        checkout_rollout(),
        shop_with(exhausted().missing_window("30m")),
    );
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());
    assert!(
        d.message.as_deref().is_some_and(|m| m.contains(
            "the error budget is exhausted: team payments has -10.0% remaining (burn 5m 2.5x, 1h 3.0x, 6h 1.2x). "
        )),
        "{:?}",
        d.message
    );
}

#[test]
fn known_page_burn_denies_whatever_else_is_missing() {
    // page-fast fires on checkout's SLO; its 6h window is missing (page-slow unknown).
    let d = decide_now(
        checkout_rollout(),
        shop_with(healthy().paging().missing_window("6h")),
    );
    assert_eq!(d.reason, Reason::Burning);
    assert!(!d.allowed());
    assert!(
        d.message.as_deref().is_some_and(|m| m.starts_with(
            "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
             team payments is burning its error budget at page level (page-fast firing"
        )),
        "{:?}",
        d.message
    );
}

#[test]
fn no_budget_data_counts_as_stale() {
    let index = shop_with(healthy())
        .no_budget_data()
        .tier("production", |t| t.on_stale = Some(OnStale::Deny));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Stale);
    assert!(
        d.message.as_deref().is_some_and(|m| m.contains(
            "budget data cannot be trusted: no budget data has been loaded, and the tier's onStale is deny"
        )),
        "{:?}",
        d.message
    );
}

// ---------------------------------------------------------------------------------------
// Step 6: cadence
// ---------------------------------------------------------------------------------------

/// Team payments (shop, shop-api) with three rollouts of other Deployments in flight, plus
/// releases that must not count: finished ones and another team's.
fn busy_team(budget: Budget) -> IndexBuilder {
    shop_with(budget)
        .namespace(
            "shop-api",
            &[(keys::TEAM, "payments"), (keys::TIER, "production")],
        )
        .namespace(
            "search",
            &[(keys::TEAM, "discovery"), (keys::TIER, "production")],
        )
        .release("shop", mk_release("cart", "1111111111"))
        .release("shop-api", mk_release("gateway", "2222222222"))
        .release("shop", mk_release("frontend", "3333333333"))
        .release(
            "shop",
            mk_release("cart", "0000000000").phase(ReleasePhase::Promoted),
        )
        .release(
            "shop",
            mk_release("ledger", "4444444444").phase(ReleasePhase::RolledBack),
        )
        .release("search", mk_release("search", "5555555555"))
}

#[test]
fn max_concurrent_rollouts_denies_with_retry_text() {
    let d = decide_now(checkout_rollout(), busy_team(caution()));
    assert_eq!(d.reason, Reason::Concurrency);
    assert!(d.would_deny);
    assert!(!d.allowed());
    assert_eq!(d.band.as_deref(), Some("caution"));
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 team payments already has 3 rollouts in flight in tier production, and band caution \
                 (40.0% budget remaining) allows 3 at a time; retry when one of them finishes. {SHOP_TAIL}"
            )
            .as_str()
        )
    );
    assert!(d.patch.0.is_empty());
}

#[test]
fn healthy_band_without_concurrency_limit_is_not_held_back() {
    let d = decide_now(checkout_rollout(), busy_team(healthy()));
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
}

#[test]
fn rollouts_of_the_same_deployment_do_not_count_against_concurrency() {
    // A new template mid-canary supersedes the checkout canary rather than adding one.
    let world = |third: &str| {
        shop_with(caution())
            .namespace(
                "shop-api",
                &[(keys::TEAM, "payments"), (keys::TIER, "production")],
            )
            .release("shop", mk_release("cart", "1111111111"))
            .release("shop-api", mk_release("gateway", "2222222222"))
            .release("shop", mk_release(third, "3333333333"))
    };
    let d = decide_now(checkout_rollout(), world("checkout"));
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
    assert_eq!(
        patch_of(&d),
        plan_patch("caution", "10,25,50,100", "5m", CHECKOUT_V2)
    );
    // The same Deployment name in another namespace is another Deployment.
    let other_checkout = world("cart").release("shop-api", mk_release("checkout", "6666666666"));
    assert_eq!(
        decide_now(checkout_rollout(), other_checkout).reason,
        Reason::Concurrency
    );
    assert_eq!(
        decide_now(checkout_rollout(), world("frontend")).reason,
        Reason::Concurrency
    );
}

#[test]
fn min_interval_denies_until_retry_time() {
    let world = || {
        shop_with(critical()).release(
            "shop",
            mk_release("cart", "1111111111")
                .phase(ReleasePhase::Promoted)
                .created("2026-11-29T09:30:00Z"),
        )
    };
    let d = decide_now(checkout_rollout(), world());
    assert_eq!(d.reason, Reason::MinInterval);
    assert!(!d.allowed());
    assert_eq!(d.band.as_deref(), Some("critical"));
    assert_eq!(
        d.message.as_deref(),
        Some(
            format!(
                "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
                 the last release of team payments, shop/cart-1111111111, started at 2026-11-29T09:30:00Z, and band critical \
                 (20.0% budget remaining) allows one release per 1h; retry after 2026-11-29T10:30:00Z. {SHOP_TAIL}"
            )
            .as_str()
        )
    );
    // Later, with budgets evaluated since: held until the retry time, allowed from it.
    let later = |at: &str| {
        decide(
            &checkout_rollout().build(),
            &world().evaluated_at("2026-11-29T10:29:00Z").build(),
            ts(at),
        )
        .expect("decidable")
    };
    assert_eq!(later("2026-11-29T10:29:59Z").reason, Reason::MinInterval);
    let at_retry = later("2026-11-29T10:30:00Z");
    assert_eq!(at_retry.reason, Reason::WithinBudget);
    assert!(at_retry.allowed());
}

// ---------------------------------------------------------------------------------------
// Modes and dry runs
// ---------------------------------------------------------------------------------------

#[test]
fn warn_mode_allows_with_a_warning_and_no_patch() {
    let index = mk_index()
        .namespace(
            "shop-staging",
            &[
                (keys::TEAM, "payments"),
                (keys::TIER, "staging"),
                (keys::PROGRESSIVE, "true"),
            ],
        )
        .slo(
            "shop-staging",
            "checkout-availability",
            "checkout",
            exhausted(),
        );
    let request = mk_update(
        mk_deployment("checkout")
            .namespace("shop-staging")
            .image("v1"),
        mk_deployment("checkout")
            .namespace("shop-staging")
            .image("v2")
            .annotation(keys::STAGE, "3"),
    );
    let d = decide_now(request, index);
    let message = "budgetgate denied the rollout of deployment shop-staging/checkout (team payments, tier staging): \
                   the error budget is exhausted: team payments has -10.0% remaining (burn 5m 2.5x, 1h 3.0x, 6h 1.2x). \
                   Still allowed: rolling back to a previous revision, and scaling. \
                   To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace shop-staging.";
    assert_eq!(d.mode, Enforcement::Warn);
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(d.would_deny);
    assert!(d.allowed());
    assert_eq!(d.verdict(), "warn");
    assert_eq!(d.message.as_deref(), Some(message));
    assert_warnings(
        &d,
        &["budgetgate (warn mode) would deny shop-staging/checkout: budget exhausted, -10.0% left"],
    );
    // No plan in warn mode; the forged system annotation is still put back.
    assert_eq!(
        serde_json::to_value(&d.patch).expect("patch serializes"),
        json!([{"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"}])
    );
    assert_eq!(d.canary, None);
    let response = d.validate_response();
    assert_eq!(
        serde_json::to_value(&response).expect("response serializes"),
        json!({
            "uid": UID,
            "allowed": true,
            "warnings": d.warnings,
            "auditAnnotations": {"would-deny": message},
        })
    );
    assert_eq!(
        d.mutate_response(),
        AdmissionResponse::allow(UID).with_patch(&d.patch)
    );
}

#[test]
fn warn_mode_rollout_within_budget_gets_no_canary() {
    let index = mk_index()
        .namespace(
            "shop-staging",
            &[
                (keys::TEAM, "payments"),
                (keys::TIER, "staging"),
                (keys::PROGRESSIVE, "true"),
            ],
        )
        .slo(
            "shop-staging",
            "checkout-availability",
            "checkout",
            healthy(),
        );
    let d = decide_now(
        mk_update(
            mk_deployment("checkout")
                .namespace("shop-staging")
                .image("v1"),
            mk_deployment("checkout")
                .namespace("shop-staging")
                .image("v2"),
        ),
        index,
    );
    assert_eq!(d.reason, Reason::WithinBudget);
    assert_eq!(d.band.as_deref(), Some("healthy"));
    assert!(d.warnings.is_empty());
    assert!(d.patch.0.is_empty());
    assert_eq!(d.canary, None);
}

#[test]
fn dryrun_mode_allows_silently_with_audit_annotation_and_no_patch() {
    let index = shop_with(exhausted()).namespace(
        "shop",
        &[
            (keys::TEAM, "payments"),
            (keys::TIER, "production"),
            (keys::PROGRESSIVE, "true"),
            (keys::ENFORCEMENT, "dryrun"),
        ],
    );
    let d = decide_now(checkout_rollout(), index);
    let message = format!(
        "budgetgate denied the rollout of deployment shop/checkout (team payments, tier production): \
         the error budget is exhausted: team payments has -10.0% remaining (burn 5m 2.5x, 1h 3.0x, 6h 1.2x). {SHOP_TAIL}"
    );
    assert_eq!(d.mode, Enforcement::Dryrun);
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(d.would_deny);
    assert!(d.allowed());
    assert_eq!(d.verdict(), "dryrun-deny");
    assert_eq!(d.message.as_deref(), Some(message.as_str()));
    assert!(d.warnings.is_empty());
    assert!(d.patch.0.is_empty());
    assert_eq!(d.canary, None);
    assert_eq!(
        serde_json::to_value(d.validate_response()).expect("response serializes"),
        json!({
            "uid": UID,
            "allowed": true,
            "auditAnnotations": {"would-deny": message},
        })
    );
    assert_eq!(d.mutate_response(), AdmissionResponse::allow(UID));
}

#[test]
fn namespace_enforcement_label_overrides_tier() {
    let with_mode = |mode: &str| {
        shop_with(exhausted()).namespace(
            "shop",
            &[
                (keys::TEAM, "payments"),
                (keys::TIER, "production"),
                (keys::ENFORCEMENT, mode),
            ],
        )
    };
    // production enforces; the label relaxes it to warn.
    let d = decide_now(checkout_rollout(), with_mode("warn"));
    assert_eq!(d.mode, Enforcement::Warn);
    assert!(d.would_deny);
    assert!(d.allowed());
    assert_warnings(
        &d,
        &["budgetgate (warn mode) would deny shop/checkout: budget exhausted, -10.0% left"],
    );
    // staging warns; the label tightens it to enforce.
    let staging = mk_index()
        .namespace(
            "shop-staging",
            &[
                (keys::TEAM, "payments"),
                (keys::TIER, "staging"),
                (keys::ENFORCEMENT, "enforce"),
            ],
        )
        .slo(
            "shop-staging",
            "checkout-availability",
            "checkout",
            exhausted(),
        );
    let d = decide_now(
        mk_update(
            mk_deployment("checkout")
                .namespace("shop-staging")
                .image("v1"),
            mk_deployment("checkout")
                .namespace("shop-staging")
                .image("v2"),
        ),
        staging,
    );
    assert_eq!(d.mode, Enforcement::Enforce);
    assert!(!d.allowed());
    // A value budgetgate does not know leaves the tier's mode in force.
    let d = decide_now(checkout_rollout(), with_mode("off"));
    assert_eq!(d.mode, Enforcement::Enforce);
    assert!(!d.allowed());
}

#[test]
fn server_dry_run_is_answered_like_a_real_request() {
    // Denied and admitted with a plan alike.
    for budget in [exhausted as fn() -> Budget, caution] {
        let real = decide_now(checkout_rollout(), shop_with(budget()));
        let dry = decide_now(checkout_rollout().dry_run(), shop_with(budget()));
        assert!(dry.dry_run);
        assert!(!real.dry_run);
        assert_eq!(
            Decision {
                dry_run: false,
                ..dry.clone()
            },
            real
        );
        assert_eq!(dry.validate_response(), real.validate_response());
        assert_eq!(dry.mutate_response(), real.mutate_response());
    }
}

// ---------------------------------------------------------------------------------------
// Step 7: the mutating patch
// ---------------------------------------------------------------------------------------

#[test]
fn progressive_rollout_gets_pause_and_plan_annotations() {
    // A Deployment mid-life: promoted before (history), and still marked with the revision
    // of an earlier canary that was rolled back, which must not carry over to this one.
    let old = mk_deployment("checkout")
        .image("v1")
        .annotation("deployment.kubernetes.io/revision", "7")
        .annotation(keys::HISTORY, "0f0f0f0f0f")
        .annotation(keys::ROLLED_BACK_REVISION, "1e1e1e1e1e");
    let new = old.clone().image("v2");
    let d = decide_now(mk_update(old, new), shop_with(caution()));
    assert_eq!(d.reason, Reason::WithinBudget);
    assert_eq!(d.band.as_deref(), Some("caution"));
    assert_eq!(
        d.canary,
        Some(Canary {
            band: "caution".into(),
            plan: Plan {
                steps: vec![10, 25, 50, 100],
                pause: Duration::parse("5m").expect("duration"),
            },
            revision: CHECKOUT_V2.into(),
        })
    );
    let expected = json!([
        {"op": "add", "path": "/spec/paused", "value": true},
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1revision", "value": CHECKOUT_V2},
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1plan", "value": "10,25,50,100"},
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1pause", "value": "5m"},
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1band", "value": "caution"},
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1stage", "value": "0"},
        {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1rolled-back-revision"},
    ]);
    assert_eq!(patch_of(&d), expected);
    // The patch applies to the object as sent and leaves history alone.
    let mut patched = mk_deployment("checkout")
        .image("v2")
        .annotation("deployment.kubernetes.io/revision", "7")
        .annotation(keys::HISTORY, "0f0f0f0f0f")
        .annotation(keys::ROLLED_BACK_REVISION, "1e1e1e1e1e")
        .build();
    json_patch::patch(&mut patched, &d.patch).expect("patch applies");
    assert_eq!(patched["spec"]["paused"], json!(true));
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({
            "deployment.kubernetes.io/revision": "7",
            "budgetgate.dev/band": "caution",
            "budgetgate.dev/history": "0f0f0f0f0f",
            "budgetgate.dev/pause": "5m",
            "budgetgate.dev/plan": "10,25,50,100",
            "budgetgate.dev/revision": CHECKOUT_V2,
            "budgetgate.dev/stage": "0",
        })
    );
    let mutate = d.mutate_response();
    assert_eq!(mutate.patch_type, Some("JSONPatch"));
    assert_eq!(decoded_patch(&mutate), Some(expected));
}

#[test]
fn deployment_label_opts_in_to_canary() {
    let index = shop_with(healthy()).namespace(
        "shop",
        &[(keys::TEAM, "payments"), (keys::TIER, "production")],
    );
    let opted_in = || mk_deployment("checkout").label(keys::PROGRESSIVE, "true");
    let d = decide_now(
        mk_update(opted_in().image("v1"), opted_in().image("v2")),
        index,
    );
    assert_eq!(d.reason, Reason::WithinBudget);
    let revision = workload_revision(&opted_in().image("v2").build());
    assert_eq!(
        patch_of(&d),
        plan_patch("healthy", "20,50,100", "2m", &revision)
    );
}

#[test]
fn deployment_label_cannot_opt_out_of_namespace_canaries() {
    let opted_out = || mk_deployment("checkout").label(keys::PROGRESSIVE, "false");
    let d = decide_now(
        mk_update(opted_out().image("v1"), opted_out().image("v2")),
        shop_with(healthy()),
    );
    let revision = workload_revision(&opted_out().image("v2").build());
    assert_eq!(
        patch_of(&d),
        plan_patch("healthy", "20,50,100", "2m", &revision)
    );
}

#[test]
fn create_is_gated_but_gets_no_canary() {
    let d = decide_now(
        mk_create(mk_deployment("checkout").image("v2")),
        shop_with(exhausted()),
    );
    assert_eq!(d.class, Some(ChangeClass::Create));
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(!d.allowed());

    // Within budget a new Deployment rolls out directly: nothing serves yet to compare a
    // canary against. System annotations copied into the manifest are dropped.
    let d = decide_now(
        mk_create(
            mk_deployment("checkout")
                .image("v2")
                .annotation(keys::STAGE, "2")
                .annotation("team/owner", "payments"),
        ),
        shop_with(caution()),
    );
    assert_eq!(d.class, Some(ChangeClass::Create));
    assert_eq!(d.reason, Reason::WithinBudget);
    assert!(d.allowed());
    assert_eq!(d.band.as_deref(), Some("caution"));
    assert_eq!(d.canary, None);
    assert_eq!(
        patch_of(&d),
        json!([{"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"}])
    );
}

#[test]
fn forged_system_annotations_are_restored() {
    let old = || {
        mk_deployment("checkout")
            .paused(true)
            .annotation(keys::REVISION, CHECKOUT_V2)
            .annotation(keys::PLAN, "10,25,50,100")
            .annotation(keys::PAUSE, "5m")
            .annotation(keys::BAND, "caution")
            .annotation(keys::STAGE, "1")
            .annotation(keys::STAGE_STARTED_AT, "2026-11-29T09:55:00Z")
    };
    // Someone skips to the last stage and forges a history entry.
    let forged = old()
        .annotation(keys::STAGE, "3")
        .annotation(keys::HISTORY, "0123456789")
        .annotation("team/note", "kept");
    let d = decide_now(mk_update(old(), forged), shop_with(exhausted()));
    assert_eq!(d.class, Some(ChangeClass::Metadata));
    assert!(d.allowed());
    let expected = json!([
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1stage", "value": "1"},
        {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1history"},
    ]);
    assert_eq!(patch_of(&d), expected);
    assert_eq!(decoded_patch(&d.mutate_response()), Some(expected));
}

#[test]
fn a_manual_action_is_stamped_with_its_requester_even_during_a_freeze() {
    let old = || {
        mk_deployment("checkout")
            .paused(true)
            .annotation(keys::REVISION, CHECKOUT_V2)
            .annotation(keys::STAGE, "1")
    };
    // An edit-role user promotes a running canary and names someone else as requester.
    let promoted = old()
        .annotation(keys::ACTION, "promote")
        .annotation(keys::ACTION_BY, "platform-lead");
    let d = decide_now(
        mk_update(old(), promoted.clone()).user("alice"),
        shop_with(exhausted()),
    );
    assert_eq!(d.class, Some(ChangeClass::Metadata));
    assert!(d.allowed());
    let expected = json!([
        {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1action-by", "value": "alice"},
    ]);
    assert_eq!(patch_of(&d), expected);
    assert_eq!(decoded_patch(&d.mutate_response()), Some(expected));
    // While it is pending, another user's edit keeps who asked.
    let stamped = old()
        .annotation(keys::ACTION, "promote")
        .annotation(keys::ACTION_BY, "alice");
    let d = decide_now(
        mk_update(
            stamped.clone(),
            stamped.clone().annotation(keys::ACTION_BY, "bob"),
        )
        .user("bob"),
        shop_with(exhausted()),
    );
    assert_eq!(
        patch_of(&d),
        json!([{"op": "add", "path": "/metadata/annotations/budgetgate.dev~1action-by", "value": "alice"}])
    );
    // budgetgate clears both when it has taken the action: no patch.
    let own = decide_now(
        mk_update(stamped, old()).user(CONTROLLER),
        shop_with(exhausted()),
    );
    assert!(own.patch.0.is_empty());
    // In an unmanaged namespace the name is guarded the same way.
    let d = decide_now(
        mk_update(old().namespace("legacy"), promoted.namespace("legacy")).user("alice"),
        shop_with(exhausted()),
    );
    assert_eq!(d.reason, Reason::Unmanaged);
    assert_eq!(
        patch_of(&d),
        json!([{"op": "add", "path": "/metadata/annotations/budgetgate.dev~1action-by", "value": "alice"}])
    );
}

#[test]
fn long_warnings_are_cut_to_120_characters() {
    let name =
        "emergency-rollback-of-the-payment-provider-integration-approved-in-the-incident-bridge";
    let index = shop_with(exhausted()).exception("shop", mk_exception(name).max_rollouts(None));
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(d.reason, Reason::Exception);
    assert_eq!(d.warnings.len(), 1);
    assert_eq!(d.warnings[0].chars().count(), 120);
    assert!(
        d.warnings[0].starts_with(&format!("budgetgate: exception {name} (approved")),
        "{}",
        d.warnings[0]
    );
    assert!(d.warnings[0].ends_with('…'));
}

// ---------------------------------------------------------------------------------------
// BudgetException validation
// ---------------------------------------------------------------------------------------

fn exception_request(object: Value) -> RequestBuilder {
    mk_request(Operation::Create, Some(object), None)
        .kind("budgetgate.dev", "v1alpha1", "BudgetException")
        .user("platform-oncall@example.com")
}

#[test]
fn valid_budget_exception_is_accepted() {
    for exception in [
        mk_exception("hotfix-4411"),
        mk_exception("launch-buffer").offset(0.2),
        // Exactly maxDuration away is allowed.
        mk_exception("hotfix-4411").expires_at("2026-12-06T10:00:00Z"),
    ] {
        let d = decide_now(exception_request(exception.object("shop")), mk_index());
        assert_eq!(d.reason, Reason::ExceptionValid, "{exception:?}");
        assert!(d.allowed());
        assert!(!d.would_deny);
        assert_eq!(d.message, None);
        assert_eq!(d.validate_response(), AdmissionResponse::allow(UID));
    }
}

#[test]
fn budget_exception_without_reason_is_rejected() {
    let blank = mk_exception("hotfix-4411").reason("  ").object("shop");
    let d = decide_now(exception_request(blank), mk_index());
    let message = "budgetgate rejected BudgetException shop/hotfix-4411: spec.reason is required: say why the budget rules should not apply";
    assert_eq!(d.reason, Reason::ExceptionInvalid);
    assert!(d.would_deny);
    assert!(!d.allowed());
    assert_eq!(d.message.as_deref(), Some(message));
    assert_eq!(
        serde_json::to_value(d.validate_response()).expect("response serializes"),
        json!({
            "uid": UID,
            "allowed": false,
            "status": {"code": 403, "message": message, "reason": "Forbidden"},
        })
    );

    let mut missing = mk_exception("hotfix-4411").object("shop");
    missing["spec"]
        .as_object_mut()
        .expect("spec object")
        .remove("reason");
    let d = decide_now(exception_request(missing), mk_index());
    assert_eq!(d.reason, Reason::ExceptionInvalid);
    assert_eq!(
        d.message.as_deref(),
        Some("budgetgate rejected BudgetException shop/hotfix-4411: spec: missing field `reason`")
    );
}

#[test]
fn budget_exception_expiring_beyond_max_duration_is_rejected() {
    let far = mk_exception("hotfix-4411")
        .expires_at("2026-12-07T00:00:00Z")
        .object("shop");
    let d = decide_now(exception_request(far), mk_index());
    assert_eq!(d.reason, Reason::ExceptionInvalid);
    assert!(!d.allowed());
    assert_eq!(
        d.message.as_deref(),
        Some(
            "budgetgate rejected BudgetException shop/hotfix-4411: spec.expiresAt 2026-12-07T00:00:00Z \
             is more than the policy's maxDuration 7d away (latest allowed 2026-12-06T10:00:00Z)"
        )
    );
    // A shorter maxDuration in the policy is the one applied.
    let strict =
        mk_index().policy(|p| p.exceptions.max_duration = Duration::parse("1d").expect("duration"));
    let d = decide_now(
        exception_request(mk_exception("hotfix-4411").object("shop")),
        strict,
    );
    assert_eq!(
        d.message.as_deref(),
        Some(
            "budgetgate rejected BudgetException shop/hotfix-4411: spec.expiresAt 2026-12-01T00:00:00Z \
             is more than the policy's maxDuration 1d away (latest allowed 2026-11-30T10:00:00Z)"
        )
    );
}

#[test]
fn budget_exception_already_expired_or_with_a_bad_offset_is_rejected() {
    let cases = [
        (
            mk_exception("hotfix-4411").expires_at("2026-11-29T09:00:00Z"),
            "spec.expiresAt 2026-11-29T09:00:00Z is already past",
        ),
        (
            mk_exception("launch-buffer").offset(1.5),
            "spec.extraBudget must be above 0 and at most 1 for kind offset",
        ),
        (
            mk_exception("launch-buffer").offset(0.0),
            "spec.extraBudget must be above 0 and at most 1 for kind offset",
        ),
    ];
    for (exception, why) in cases {
        let name = exception.name.clone();
        let d = decide_now(exception_request(exception.object("shop")), mk_index());
        assert_eq!(d.reason, Reason::ExceptionInvalid);
        assert_eq!(
            d.message,
            Some(format!(
                "budgetgate rejected BudgetException shop/{name}: {why}"
            ))
        );
    }
    let mut override_with_extra = mk_exception("hotfix-4411").object("shop");
    override_with_extra["spec"]["extraBudget"] = json!(0.2);
    let d = decide_now(exception_request(override_with_extra), mk_index());
    assert_eq!(
        d.message.as_deref(),
        Some(
            "budgetgate rejected BudgetException shop/hotfix-4411: spec.extraBudget applies only to kind offset"
        )
    );
}

// ---------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Any budget: from untouched to spent three times over, maybe paging.
    fn any_budget() -> impl Strategy<Value = Budget> {
        (0u32..=6_000, any::<bool>()).prop_map(|(bad, paging)| {
            let budget = mk_budget(f64::from(bad), 2_000_000.0);
            if paging { budget.paging() } else { budget }
        })
    }

    /// Everything that could make a rollout fail: budget, staleness, onStale, platform
    /// freeze (team discovery spends its budget twice over), busy cadence.
    fn hostile_world(
        budget: Budget,
        stale: bool,
        deny_on_stale: bool,
        platform_freeze: bool,
    ) -> IndexBuilder {
        let world = shop_with(budget)
            .namespace(
                "search",
                &[(keys::TEAM, "discovery"), (keys::TIER, "production")],
            )
            .slo(
                "search",
                "search-availability",
                "search",
                mk_budget(40_000.0, 20_000_000.0),
            )
            .release(
                "shop",
                mk_release("cart", "1111111111").created("2026-11-29T09:59:00Z"),
            )
            .policy(|p| p.platform_freeze = platform_freeze)
            .tier("production", |t| {
                t.on_stale = Some(if deny_on_stale {
                    OnStale::Deny
                } else {
                    OnStale::Allow
                })
            });
        if stale {
            world.evaluated_at("2026-11-29T08:00:00Z")
        } else {
            world
        }
    }

    fn mode_label(mode: u8) -> &'static str {
        ["enforce", "warn", "dryrun"][usize::from(mode % 3)]
    }

    /// One Deployment write of each class; `forged` adds a system annotation the
    /// requester may not write.
    fn change(namespace: &str, class: u8, forged: bool) -> RequestBuilder {
        let base = || mk_deployment("checkout").namespace(namespace);
        let new = |d: DeploymentBuilder| {
            if forged {
                d.annotation(keys::STAGE, "9")
            } else {
                d
            }
        };
        match class % 5 {
            0 => mk_update(base().image("v1"), new(base().image("v2"))),
            1 => mk_create(new(base().image("v2"))),
            2 => mk_update(base().replicas(3), new(base().replicas(9))),
            // v0 is served by an owned ReplicaSet in every world below.
            3 => mk_update(base().image("v1"), new(base().image("v0"))),
            _ => mk_update(base(), new(base().label("owner", "payments"))),
        }
    }

    proptest! {
        #[test]
        fn scale_and_rollback_are_never_denied_whatever_the_budget(
            budget in any_budget(),
            stale in any::<bool>(),
            deny_on_stale in any::<bool>(),
            platform_freeze in any::<bool>(),
            mode in 0u8..3,
            rollback in any::<bool>(),
            replicas in 0u32..50,
        ) {
            let world = hostile_world(budget, stale, deny_on_stale, platform_freeze)
                .namespace("shop", &[
                    (keys::TEAM, "payments"),
                    (keys::TIER, "production"),
                    (keys::PROGRESSIVE, "true"),
                    (keys::ENFORCEMENT, mode_label(mode)),
                ])
                .owned_replica_set("shop", "checkout", mk_deployment("checkout").image("v0").build());
            let request = if rollback {
                mk_update(
                    mk_deployment("checkout").image("v1"),
                    mk_deployment("checkout").image("v0").replicas(replicas),
                )
            } else {
                mk_update(
                    mk_deployment("checkout").replicas(3),
                    mk_deployment("checkout").replicas(replicas),
                )
            };
            let d = decide_now(request, world);
            prop_assert!(!d.class.is_some_and(ChangeClass::is_gated), "{:?}", d.class);
            prop_assert!(!d.would_deny);
            prop_assert!(d.allowed());
            prop_assert_eq!(d.message.as_deref(), None);
            prop_assert_eq!(d.canary.as_ref(), None);
            prop_assert!(d.validate_response().allowed);
        }

        #[test]
        fn dryrun_mode_never_denies_and_never_writes_a_plan(
            budget in any_budget(),
            stale in any::<bool>(),
            deny_on_stale in any::<bool>(),
            platform_freeze in any::<bool>(),
            class in 0u8..5,
            forged in any::<bool>(),
            exception in any::<bool>(),
        ) {
            let mut world = hostile_world(budget, stale, deny_on_stale, platform_freeze)
                .namespace("shop", &[
                    (keys::TEAM, "payments"),
                    (keys::TIER, "production"),
                    (keys::PROGRESSIVE, "true"),
                    (keys::ENFORCEMENT, "dryrun"),
                ])
                .owned_replica_set("shop", "checkout", mk_deployment("checkout").image("v0").build());
            if exception {
                world = world.exception("shop", mk_exception("hotfix-4411"));
            }
            let request = change("shop", class, forged).build();
            let d = decide(&request, &world.build(), now()).expect("a decision");
            prop_assert_eq!(d.mode, Enforcement::Dryrun);
            prop_assert!(d.allowed());
            // The only patch is the restoring of forged system annotations.
            if forged {
                let restore = super::super::patch::build(request.old_object.as_ref().map(Object::value), request.object.as_ref().expect("object").value(), &request.user_info.username, None, None, QueueOp::Keep);
                prop_assert_eq!(&d.patch, &restore);
                prop_assert!(!d.patch.0.is_empty());
            } else {
                prop_assert!(d.patch.0.is_empty());
            }
            prop_assert_eq!(d.canary.as_ref(), None);
            let validate = d.validate_response();
            prop_assert!(validate.allowed);
            prop_assert_eq!(validate.status, None);
            // Silent: the would-be denial goes to the audit log, never to the user.
            prop_assert!(d.warnings.iter().all(|w| !w.contains("would deny")), "{:?}", d.warnings);
            if d.would_deny {
                prop_assert_eq!(validate.audit_annotations.get("would-deny"), d.message.as_ref());
            }
            let mutate = d.mutate_response();
            prop_assert!(mutate.allowed);
            prop_assert_eq!(mutate.patch.is_some(), forged);
        }

        #[test]
        fn unmanaged_namespaces_are_never_gated(
            budget in any_budget(),
            class in 0u8..5,
            forged in any::<bool>(),
            labelled in any::<bool>(),
            controller in any::<bool>(),
        ) {
            let mut world = hostile_world(budget, false, true, true)
                .slo("legacy", "legacy-availability", "checkout", mk_budget(9_000.0, 2_000_000.0));
            if labelled {
                // Tier and mode labels without a team do not make a namespace managed.
                world = world.namespace("legacy", &[
                    (keys::TIER, "production"),
                    (keys::ENFORCEMENT, "enforce"),
                    (keys::PROGRESSIVE, "true"),
                ]);
            }
            let mut request = change("legacy", class, forged);
            if controller {
                request = request.user(CONTROLLER);
            }
            let d = decide_now(request, world);
            prop_assert_eq!(d.reason, Reason::Unmanaged);
            prop_assert!(d.allowed());
            prop_assert!(!d.would_deny);
            prop_assert!(d.warnings.is_empty());
            // Nothing but a forged system annotation is ever put back.
            let forged_stage = forged && !controller;
            prop_assert_eq!(d.patch.0.is_empty(), !forged_stage);
            if forged_stage {
                prop_assert_eq!(
                    patch_of(&d),
                    json!([{"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"}])
                );
            } else {
                prop_assert_eq!(d.mutate_response(), AdmissionResponse::allow(UID));
            }
            prop_assert_eq!(d.validate_response(), AdmissionResponse::allow(UID));
        }

        #[test]
        fn more_remaining_budget_never_gives_a_stricter_answer(
            bad in (0u32..=3_000, 0u32..=3_000),
            paging in any::<bool>(),
            in_flight in 0usize..5,
            last_release_minutes_ago in proptest::option::of(0i64..180),
            progressive in any::<bool>(),
            offset in proptest::option::of(1u32..=50),
            create in any::<bool>(),
        ) {
            let (more_spent, less_spent) = (bad.0.max(bad.1), bad.0.min(bad.1));
            let world = |spent: u32| {
                let budget = mk_budget(f64::from(spent), 2_000_000.0);
                let mut world = shop_with(if paging { budget.paging() } else { budget })
                    .namespace("shop", &[
                        (keys::TEAM, "payments"),
                        (keys::TIER, "production"),
                        (keys::PROGRESSIVE, if progressive { "true" } else { "false" }),
                    ]);
                for i in 0..in_flight {
                    world = world.release(
                        "shop",
                        mk_release(&format!("svc{i}"), "1111111111").created("2026-11-29T06:00:00Z"),
                    );
                }
                if let Some(minutes) = last_release_minutes_ago {
                    let created = now() - jiff::SignedDuration::from_mins(minutes);
                    world = world.release(
                        "shop",
                        mk_release("cart", "2222222222")
                            .phase(ReleasePhase::Promoted)
                            .created(&created.to_string()),
                    );
                }
                if let Some(percent) = offset {
                    world = world.exception(
                        "shop",
                        mk_exception("buffer").offset(f64::from(percent) / 100.0).max_rollouts(None),
                    );
                }
                world
            };
            let request = || if create {
                mk_create(mk_deployment("checkout").image("v2"))
            } else {
                checkout_rollout()
            };
            let poorer = decide_now(request(), world(more_spent));
            let richer = decide_now(request(), world(less_spent));
            if poorer.allowed() {
                prop_assert!(
                    richer.allowed(),
                    "allowed at {:?} but {:?} at {:?}",
                    poorer.remaining, richer.reason, richer.remaining
                );
            }
            // Nor a more cautious plan.
            let tier = &mk_index().build().policy.expect("policy").tiers["production"];
            let position = |d: &Decision| d.band.as_ref().and_then(|b| tier.bands.iter().position(|x| &x.name == b));
            if let (Some(p), Some(r)) = (position(&poorer), position(&richer)) {
                prop_assert!(r <= p, "band {:?} at more budget, {:?} at less", richer.band, poorer.band);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Queue instead of deny (DESIGN §7.10)
// ---------------------------------------------------------------------------------------

/// `shop` in a production tier with `onExhausted: queue`.
fn queueing(budget: Budget) -> IndexBuilder {
    shop_with(budget).tier("production", |t| t.on_exhausted = Some(OnExhausted::Queue))
}

const QUEUED_AT: &str = "2026-11-29T10:00:00Z";

/// The patch that queues a Deployment without annotations.
fn queue_patch() -> Value {
    json!([
        {"op": "add", "path": "/spec/paused", "value": true},
        {"op": "add", "path": "/metadata/annotations", "value": {"budgetgate.dev/queued-since": QUEUED_AT}},
    ])
}

#[test]
fn queue_mode_admits_an_exhausted_rollout_paused_with_a_warning() {
    let d = decide_now(checkout_rollout(), queueing(exhausted()));
    assert_eq!(d.reason, Reason::Exhausted);
    assert!(d.queued);
    assert!(!d.would_deny);
    assert!(d.allowed());
    assert_eq!(d.verdict(), "queue");
    assert_eq!(d.message, None);
    assert_eq!(d.canary, None);
    assert_remaining(&d, -0.1);
    assert_warnings(
        &d,
        &[
            "budgetgate: queued: team payments has -10.0% budget left; starts when it recovers or an exception is approved",
        ],
    );
    assert_eq!(patch_of(&d), queue_patch());
    let validate = d.validate_response();
    assert!(validate.allowed);
    assert_eq!(validate.status, None);
    assert_eq!(decoded_patch(&d.mutate_response()), Some(queue_patch()));
    // Deny mode (the default) still denies the same change.
    assert!(!decide_now(checkout_rollout(), shop_with(exhausted())).allowed());
}

#[test]
fn queue_mode_queues_page_burn_and_platform_freeze_too() {
    let d = decide_now(checkout_rollout(), queueing(healthy().paging()));
    assert_eq!(
        (d.reason, d.queued, d.allowed()),
        (Reason::Burning, true, true)
    );
    assert_warnings(
        &d,
        &[
            "budgetgate: queued: team payments burns at page level (page-fast); starts when it stops or an exception is approved",
        ],
    );
    assert_eq!(patch_of(&d), queue_patch());
    let frozen = queueing(healthy())
        .namespace(
            "search",
            &[(keys::TEAM, "discovery"), (keys::TIER, "production")],
        )
        .slo(
            "search",
            "search-availability",
            "search",
            mk_budget(30_000.0, 20_000_000.0),
        )
        .policy(|p| p.platform_freeze = true);
    let d = decide_now(checkout_rollout(), frozen);
    assert_eq!((d.reason, d.queued), (Reason::PlatformFreeze, true));
    assert_warnings(
        &d,
        &[
            "budgetgate: queued: platform production budget exhausted; starts when it recovers or an exception is approved",
        ],
    );
    // A creation is queued like a rollout.
    let d = decide_now(mk_create(mk_deployment("checkout")), queueing(exhausted()));
    assert_eq!((d.class, d.queued), (Some(ChangeClass::Create), true));
    assert_eq!(patch_of(&d), queue_patch());
}

#[test]
fn queue_mode_still_denies_cadence_and_stale_data() {
    // Critical band: one rollout at a time, and one is in flight.
    let index = queueing(critical()).release(
        "shop",
        mk_release("cart", "0a1b2c3d4e").created("2026-11-29T08:00:00Z"),
    );
    let d = decide_now(checkout_rollout(), index);
    assert_eq!(
        (d.reason, d.queued, d.allowed()),
        (Reason::Concurrency, false, false)
    );
    let stale = queueing(healthy())
        .evaluated_at("2026-11-29T09:00:00Z")
        .tier("production", |t| t.on_stale = Some(OnStale::Deny));
    let d = decide_now(checkout_rollout(), stale);
    assert_eq!(
        (d.reason, d.queued, d.allowed()),
        (Reason::Stale, false, false)
    );
}

#[test]
fn warn_and_dryrun_never_queue() {
    for mode in ["warn", "dryrun"] {
        let index = queueing(exhausted()).namespace(
            "shop",
            &[
                (keys::TEAM, "payments"),
                (keys::TIER, "production"),
                (keys::ENFORCEMENT, mode),
            ],
        );
        let d = decide_now(checkout_rollout(), index);
        assert!(!d.queued, "{mode}");
        assert!(d.would_deny && d.allowed(), "{mode}");
        assert!(d.patch.0.is_empty(), "{mode}");
    }
}

#[test]
fn a_new_template_mid_canary_is_denied_not_queued() {
    let running = mk_deployment("checkout")
        .image("v2")
        .paused(true)
        .annotation(keys::STAGE, "1");
    let d = decide_now(
        mk_update(running.clone(), running.image("v3")),
        queueing(exhausted()),
    );
    assert_eq!(
        (d.reason, d.queued, d.allowed()),
        (Reason::Exhausted, false, false)
    );
}

/// checkout queued with v2 (paused, queued since 09:30).
fn queued_checkout() -> DeploymentBuilder {
    mk_deployment("checkout")
        .image("v2")
        .paused(true)
        .annotation(keys::QUEUED_SINCE, "2026-11-29T09:30:00Z")
}

#[test]
fn a_newer_template_keeps_the_queued_deployments_place() {
    // kubectl apply leaves spec.paused as it was; queued-since stays the first one.
    let d = decide_now(
        mk_update(queued_checkout(), queued_checkout().image("v3")),
        queueing(exhausted()),
    );
    assert!(d.queued);
    assert_eq!(patch_of(&d), json!([]));
    // A client that sends paused: false and drops the annotation gets both back.
    let mut bare = queued_checkout().image("v3").paused(false);
    bare.annotations.clear();
    let d = decide_now(mk_update(queued_checkout(), bare), queueing(exhausted()));
    assert_eq!(
        patch_of(&d),
        json!([
            {"op": "add", "path": "/spec/paused", "value": true},
            {"op": "add", "path": "/metadata/annotations", "value": {"budgetgate.dev/queued-since": "2026-11-29T09:30:00Z"}},
        ])
    );
}

#[test]
fn scaling_or_unpausing_a_queued_deployment_keeps_it_queued() {
    let d = decide_now(
        mk_update(queued_checkout(), queued_checkout().replicas(5)),
        queueing(exhausted()),
    );
    assert_eq!(d.class, Some(ChangeClass::Scale));
    assert_eq!(patch_of(&d), json!([]));
    // `kubectl rollout resume` would skip the queue: the pause is put back.
    let d = decide_now(
        mk_update(queued_checkout(), queued_checkout().paused(false)),
        queueing(exhausted()),
    );
    assert_eq!(
        patch_of(&d),
        json!([{"op": "add", "path": "/spec/paused", "value": true}])
    );
}

#[test]
fn a_rollback_of_a_queued_deployment_ends_its_queue_entry() {
    // Back to v1, which its ReplicaSet ran: unpaused, no longer queued.
    let index = queueing(exhausted()).owned_replica_set(
        "shop",
        "checkout",
        mk_deployment("checkout").image("v1").build(),
    );
    let d = decide_now(
        mk_update(queued_checkout(), queued_checkout().image("v1")),
        index,
    );
    assert_eq!((d.class, d.queued), (Some(ChangeClass::Rollback), false));
    assert_eq!(
        patch_of(&d),
        json!([
            {"op": "add", "path": "/spec/paused", "value": false},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1queued-since"},
        ])
    );
}

#[test]
fn an_admitted_apply_of_a_queued_deployment_ends_its_queue_entry() {
    // Progressive, budget back in band caution: the plan replaces the queue entry.
    let d = decide_now(
        mk_update(queued_checkout(), queued_checkout().image("v3")),
        queueing(caution()),
    );
    assert_eq!((d.reason, d.queued), (Reason::WithinBudget, false));
    let patch = patch_of(&d);
    assert_eq!(patch[0]["op"], "add");
    assert_eq!(
        patch[0]["path"],
        "/metadata/annotations/budgetgate.dev~1revision"
    );
    assert!(patch.as_array().unwrap().contains(
        &json!({"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1queued-since"})
    ));
    assert!(
        !patch
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["path"] == "/spec/paused")
    );
    // Not progressive: unpaused, a direct rolling update.
    let index = queueing(caution()).namespace(
        "shop",
        &[(keys::TEAM, "payments"), (keys::TIER, "production")],
    );
    let d = decide_now(
        mk_update(queued_checkout(), queued_checkout().image("v3")),
        index,
    );
    assert_eq!(
        patch_of(&d),
        json!([
            {"op": "add", "path": "/spec/paused", "value": false},
            {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1queued-since"},
        ])
    );
}

#[test]
fn server_dry_run_is_answered_like_the_real_request() {
    let real = decide_now(checkout_rollout(), queueing(exhausted()));
    let dry = decide_now(checkout_rollout().dry_run(), queueing(exhausted()));
    assert!(dry.dry_run && dry.queued);
    assert_eq!(dry.warnings, real.warnings);
    assert_eq!(patch_of(&dry), patch_of(&real));
}

// The queue's own judgement: when a queued Deployment starts.

fn judge_checkout(index: IndexBuilder, progressive: bool) -> queue::QueueVerdict {
    let index = index.build();
    let labels = labels(&[("app", "checkout")]);
    queue::judge(
        &index,
        &ObjectKey::new("shop", "checkout"),
        &labels,
        CHECKOUT_V2,
        progressive,
        ts("2026-11-29T09:30:00Z"),
        now(),
    )
}

#[test]
fn a_queued_rollout_waits_while_the_budget_is_frozen() {
    let index = queueing(exhausted()).release(
        "shop",
        mk_release("checkout", CHECKOUT_V2).queued("2026-11-29T09:30:00Z"),
    );
    assert_eq!(
        judge_checkout(index, true),
        queue::QueueVerdict::Wait {
            position: 1,
            reason: "the error budget is exhausted: team payments has -10.0% remaining (burn 5m 2.5x, 1h 3.0x, 6h 1.2x)".into(),
        }
    );
}

#[test]
fn a_queued_rollout_starts_on_the_plan_of_the_recovered_band() {
    let index = queueing(caution()).release(
        "shop",
        mk_release("checkout", CHECKOUT_V2).queued("2026-11-29T09:30:00Z"),
    );
    let verdict = judge_checkout(index, true);
    let queue::QueueVerdict::Start {
        band,
        plan,
        remaining,
        exception,
        why,
    } = verdict
    else {
        panic!("not started: {verdict:?}");
    };
    assert_eq!(band.as_deref(), Some("caution"));
    assert_eq!(
        plan,
        Some(Plan {
            steps: vec![10, 25, 50, 100],
            pause: Duration::parse("5m").unwrap(),
        })
    );
    assert!((remaining.unwrap() - 0.4).abs() < 1e-9);
    assert_eq!(exception, None);
    assert_eq!(
        why,
        "the budget recovered to band caution (40.0% remaining)"
    );
    // Not progressive: no plan, it just starts.
    let index = queueing(healthy());
    assert!(matches!(
        judge_checkout(index, false),
        queue::QueueVerdict::Start { plan: None, band: Some(ref b), .. } if b == "healthy"
    ));
}

#[test]
fn an_exception_starts_a_queued_rollout() {
    let index = queueing(exhausted()).exception("shop", mk_exception("hotfix-4411"));
    let verdict = judge_checkout(index, true);
    let queue::QueueVerdict::Start {
        band,
        exception,
        why,
        ..
    } = verdict
    else {
        panic!("not started: {verdict:?}");
    };
    assert_eq!(band.as_deref(), Some("critical"));
    assert_eq!(exception.as_deref(), Some("hotfix-4411"));
    assert_eq!(why, "exception hotfix-4411 lets it through");
}

#[test]
fn queued_rollouts_start_oldest_first_within_the_cap() {
    // Critical band: one at a time. cart queued at 09:10 goes before checkout (09:30).
    let index = queueing(critical())
        .release(
            "shop",
            mk_release("cart", "1111111111").queued("2026-11-29T09:10:00Z"),
        )
        .release(
            "shop",
            mk_release("checkout", CHECKOUT_V2).queued("2026-11-29T09:30:00Z"),
        );
    assert_eq!(
        judge_checkout(index, true),
        queue::QueueVerdict::Wait {
            position: 2,
            reason: "1 older queued rollout(s) of team payments go first, and band critical allows 1 more at a time".into(),
        }
    );
    // Once cart runs, checkout is first in line but the band's one slot is taken.
    let index = queueing(critical())
        .release("shop", mk_release("cart", "1111111111"))
        .release(
            "shop",
            mk_release("checkout", CHECKOUT_V2).queued("2026-11-29T09:30:00Z"),
        );
    let verdict = judge_checkout(index, true);
    let queue::QueueVerdict::Wait { position, reason } = verdict else {
        panic!("started: {verdict:?}");
    };
    assert_eq!(position, 1);
    assert!(
        reason.starts_with("team payments already has 1 rollouts in flight"),
        "{reason}"
    );
    // Without a cap (band healthy) every queued rollout starts at once.
    let index = queueing(healthy())
        .release(
            "shop",
            mk_release("cart", "1111111111").queued("2026-11-29T09:10:00Z"),
        )
        .release(
            "shop",
            mk_release("checkout", CHECKOUT_V2).queued("2026-11-29T09:30:00Z"),
        );
    assert!(matches!(
        judge_checkout(index, true),
        queue::QueueVerdict::Start { .. }
    ));
}

#[test]
fn queues_lists_every_teams_queue_oldest_first() {
    let mut cart = mk_release("cart", "1111111111").queued("2026-11-29T09:10:00Z");
    cart.entry.reason = Some(
        "queued at position 1: the error budget is exhausted: team payments has -10.0% remaining"
            .into(),
    );
    let index = queueing(exhausted())
        .release(
            "shop",
            mk_release("checkout", CHECKOUT_V2).queued("2026-11-29T09:30:00Z"),
        )
        .release("shop", cart)
        .release("shop", mk_release("search", "2222222222"))
        .build();
    let rows: Vec<(u32, String, String, Option<String>)> = queue::queues(&index)
        .into_iter()
        .map(|q| (q.position, q.deployment, q.revision, q.reason))
        .collect();
    assert_eq!(
        rows,
        [
            (
                1,
                "cart".to_owned(),
                "1111111111".to_owned(),
                Some(
                    "the error budget is exhausted: team payments has -10.0% remaining".to_owned()
                )
            ),
            (2, "checkout".to_owned(), CHECKOUT_V2.to_owned(), None),
        ]
    );
}

#[test]
fn a_team_cannot_forge_its_place_in_the_queue_or_a_queue_entry() {
    // An older queued-since, to jump the queue: the webhook puts the real one back.
    let forged = queued_checkout().annotation(keys::QUEUED_SINCE, "2026-01-01T00:00:00Z");
    let d = decide_now(mk_update(queued_checkout(), forged), queueing(exhausted()));
    assert_eq!(
        patch_of(&d),
        json!([{"op": "add", "path": "/metadata/annotations/budgetgate.dev~1queued-since", "value": "2026-11-29T09:30:00Z"}])
    );
    // queued-since on a Deployment that is not queued (the controller would start it as a
    // queued rollout, skipping admission): removed.
    let running = mk_deployment("checkout").image("v1");
    let d = decide_now(
        mk_update(
            running.clone(),
            running.annotation(keys::QUEUED_SINCE, "2026-01-01T00:00:00Z"),
        ),
        queueing(healthy()),
    );
    assert_eq!(
        patch_of(&d),
        json!([{"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1queued-since"}])
    );
}
