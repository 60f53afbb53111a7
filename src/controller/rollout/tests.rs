//! Tests of the rollout controller against a mock apiserver: one look at Deployment
//! `shop/web` (team `payments`, tier `production`: plan `20,50,100` every 2m, abort above
//! 14.4x, 2 consecutive failures, progressDeadline 10m) and the exact requests it sends,
//! in order. The mock answers only what a scenario expects; any other request fails it.

use super::{Ctx, RolloutError, reconcile};
use crate::api::{BudgetState, Duration as Span, ReliabilityPolicy, Timestamp, keys};
use crate::budget::Assessment;
use crate::clock::Clock;
use crate::index::{Budgets, Index, NamespaceMeta};
use crate::policy::Policy;
use crate::rollout::objects::template_revision;
use crate::webhook::Shared;
use hyper::{Method, Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower_test::mock::{self, Handle, SendResponse};

const NS: &str = "shop";
const UID: &str = "0b6a1c52-web";
const CANARY_UID: &str = "7d1e40aa-canary";
const T0: &str = "2026-11-29T10:00:00Z";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/shop/deployments";
const RELEASES: &str = "/apis/budgetgate.dev/v1alpha1/namespaces/shop/releases";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";
const QUOTA: &str = "deployments.apps \"web-canary\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10";

fn at(seconds: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + jiff::SignedDuration::from_secs(seconds)
}

// ------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------

fn pod_template(image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]},
    })
}

/// `shop/web` at `web:2`, 4 replicas, paused in a canary of plan `20,50,100` every 2m.
struct DeploymentBuilder {
    replicas: i32,
    stage: String,
    started: Option<Timestamp>,
    action: Option<(&'static str, &'static str)>,
}

fn mk_deployment() -> DeploymentBuilder {
    DeploymentBuilder {
        replicas: 4,
        stage: "0".into(),
        started: Some(at(-30)),
        action: None,
    }
}

impl DeploymentBuilder {
    fn stage(mut self, stage: &str) -> Self {
        self.stage = stage.into();
        self
    }

    fn started(mut self, seconds: i64) -> Self {
        self.started = Some(at(seconds));
        self
    }

    /// `budgetgate.dev/action` set, by `by` (as the webhook stamps it).
    fn action(mut self, action: &'static str, by: &'static str) -> Self {
        self.action = Some((action, by));
        self
    }

    fn build(self) -> Deployment {
        let mut annotations = json!({
            keys::REVISION: revision(),
            keys::PLAN: "20,50,100",
            keys::PAUSE: "2m",
            keys::BAND: "healthy",
            keys::STAGE: self.stage,
        });
        if let Some(t) = self.started {
            annotations[keys::STAGE_STARTED_AT] = json!(t.to_string());
        }
        if let Some((action, by)) = self.action {
            annotations[keys::ACTION] = json!(action);
            annotations[keys::ACTION_BY] = json!(by);
        }
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": NS,
                "uid": UID,
                "generation": 2,
                "creationTimestamp": "2026-11-01T00:00:00Z",
                "labels": {"app": "web"},
                "annotations": annotations,
            },
            "spec": {
                "replicas": self.replicas,
                "paused": true,
                "selector": {"matchLabels": {"app": "web"}},
                "template": pod_template("web:2"),
            },
            "status": {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 0, "availableReplicas": 4},
        }))
        .unwrap()
    }
}

/// What a rollback of `web` leaves: `web:1` restored, unpaused, the canary annotations
/// gone.
fn mk_rolled_back_deployment() -> Deployment {
    let mut d = mk_deployment().build();
    let spec = d.spec.as_mut().unwrap();
    spec.template = serde_json::from_value(pod_template("web:1")).unwrap();
    spec.paused = Some(false);
    d.metadata.generation = Some(3);
    d.metadata.annotations = Some(
        [
            (keys::REVISION.to_owned(), stable_revision()),
            (keys::ROLLED_BACK_REVISION.to_owned(), revision()),
        ]
        .into(),
    );
    d
}

/// The revision of the new template (`web:2`).
fn revision() -> String {
    template_revision(&serde_json::from_value(pod_template("web:2")).unwrap())
}

fn release_name() -> String {
    format!("web-{}-2", &revision()[..8])
}

/// The revision of the serving template (`web:1`).
fn stable_revision() -> String {
    template_revision(&serde_json::from_value(pod_template("web:1")).unwrap())
}

/// `web-canary` with `replicas` (all available), controlled by `owner_uid`, or by nothing.
fn mk_canary(owner_uid: Option<&str>, replicas: i32) -> Value {
    let mut canary = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web-canary",
            "namespace": NS,
            "uid": CANARY_UID,
            "labels": {"app": "web", keys::TRACK: "canary"},
            "annotations": {keys::REVISION: revision()},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", keys::TRACK: "canary"}},
            "template": pod_template("web:2"),
        },
        "status": {"replicas": replicas, "availableReplicas": replicas},
    });
    if let Some(uid) = owner_uid {
        canary["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    canary
}

/// The Progressing Release of the canary, with `status` fields.
fn mk_release(status: Value) -> Value {
    let mut status = status;
    status["phase"] = json!("Progressing");
    json!({
        "apiVersion": "budgetgate.dev/v1alpha1",
        "kind": "Release",
        "metadata": {
            "name": release_name(),
            "namespace": NS,
            "uid": "c0ffee00-release",
            "creationTimestamp": "2026-11-29T09:59:00Z",
            "labels": {super::RELEASE_DEPLOYMENT: "web"},
        },
        "spec": {
            "deployment": "web",
            "revision": revision(),
            "plan": {"steps": [20, 50, 100], "pause": "2m"},
            "band": "healthy",
            "remainingAtStart": 0.8,
        },
        "status": status,
    })
}

/// The canary's Release after its rollback.
fn mk_rolled_back_release() -> Value {
    let mut release = mk_release(json!({"completedAt": at(0).to_string()}));
    release["status"]["phase"] = json!("RolledBack");
    release
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

/// The conditions of a Release whose canary is judged without SLOs of its own.
fn no_slo_conditions(at_: Timestamp) -> Value {
    json!([{
        "type": "CanaryAnalysis", "status": "False", "reason": "NoSLO",
        "message": "no SLO selects the Deployment: judged on the team's whole-service burn",
        "lastTransitionTime": at_.to_string(),
    }])
}

/// The ReplicaSets of the namespace: web's serving one (`web:1`, its revision 1) and one of
/// another Deployment.
fn replica_sets() -> Value {
    let rs = |name: &str, owner: &str, owner_uid: &str, image: &str| {
        let mut template = pod_template(image);
        template["metadata"]["labels"][keys::POD_TEMPLATE_HASH] = json!("5d8f7c");
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": format!("{name}-uid"),
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": owner,
                    "uid": owner_uid, "controller": true,
                }],
            },
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template,
            },
        })
    };
    list(
        "ReplicaSetList",
        vec![
            rs("web-5d8f7c", "web", UID, "web:1"),
            rs("api-6c9b", "api", "uid-api", "api:7"),
        ],
    )
}

fn not_found(what: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{what} not found"), "reason": "NotFound", "code": 404,
    })
}

fn quota_exceeded() -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": QUOTA, "reason": "Forbidden", "code": 403,
        "details": {"name": "web-canary", "group": "apps", "kind": "deployments"},
    })
}

fn assessment(remaining: f64, burn: f64) -> Assessment {
    Assessment {
        remaining: Some(remaining),
        burn_rates: [("5m", burn), ("1h", burn), ("30m", 1.0), ("6h", 1.0)]
            .iter()
            .map(|(w, b)| (Span::parse(w).unwrap(), Some(*b)))
            .collect(),
        alerts: vec![],
        paging: false,
        band: Some("healthy".into()),
        state: BudgetState::Healthy,
        exhausts_at: None,
        lacking: 0,
    }
}

/// The sample policy, namespace `shop` of team `payments` in `production`, and the team's
/// budget (70% remaining, `burn` over 5m) evaluated 30s before `T0`.
fn mk_index(team_burn: f64) -> Index {
    let policy: ReliabilityPolicy = crate::policy::sample_policy();
    let mut index = Index {
        policy: Some(Policy::from_spec(&policy.spec).unwrap()),
        ..Index::default()
    };
    // web:1, the template of web's serving ReplicaSet, ran before the canary.
    index.revisions.insert(
        crate::index::ObjectKey::new(NS, "web"),
        [crate::decision::revision_hash(&pod_template("web:1"))].into(),
    );
    index.namespaces.insert(
        NS.into(),
        NamespaceMeta {
            team: Some("payments".into()),
            tier: Some("production".into()),
            ..NamespaceMeta::default()
        },
    );
    index.budgets = Budgets {
        evaluated_at: Some(at(-30)),
        teams: [(
            ("payments".to_owned(), "production".to_owned()),
            assessment(0.7, team_burn),
        )]
        .into(),
        ..Budgets::default()
    };
    index
}

fn shared(index: Index, now: Timestamp) -> Arc<Shared> {
    let shared = Shared::new(false, Clock::Fixed(now));
    shared.publish(index);
    shared
}

/// A leading controller at `T0` whose client talks to the returned mock apiserver.
fn mk_ctx(index: Index) -> (Arc<Ctx>, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (_, leader) = tokio::sync::watch::channel(true);
    let ctx = Ctx::new(
        client,
        shared(index, at(0)),
        leader,
        Duration::from_secs(30),
        None,
        None,
    );
    (
        Arc::new(ctx),
        ApiServer {
            handle,
            seen: Vec::new(),
        },
    )
}

/// The same controller (its memory and its Event series) with the clock at `now`.
fn later(ctx: Arc<Ctx>, now: Timestamp) -> Arc<Ctx> {
    let ctx = Arc::into_inner(ctx).expect("no look in flight");
    let index = (*ctx.shared.index.load_full()).clone();
    Arc::new(Ctx {
        shared: shared(index, now),
        ..ctx
    })
}

// ------------------------------------------------------------------------------------
// The mock apiserver
// ------------------------------------------------------------------------------------

struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
    /// Every request answered so far, as `METHOD path?query`.
    seen: Vec<String>,
}

/// One request the controller sent, waiting for its answer.
struct Call {
    content_type: Option<String>,
    body: Value,
    send: SendResponse<Response<Body>>,
}

impl Call {
    fn reply(self, status: u16, body: &Value) {
        self.send.send_response(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    fn ok(self, body: &Value) {
        self.reply(200, body);
    }

    /// Answers a write with the object it sent.
    fn echo(self) {
        let body = self.body.clone();
        self.reply(200, &body);
    }

    fn assert_merge_patch(&self) {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
    }
}

impl ApiServer {
    /// The next request: it must be `method uri` (path and query, exactly).
    async fn expect(&mut self, method: Method, uri: &str) -> Call {
        let (request, send) = self
            .handle
            .next_request()
            .await
            .unwrap_or_else(|| panic!("the client went away; expected {method} {uri}"));
        let (parts, body) = request.into_parts();
        let got = parts.uri.to_string();
        self.seen.push(format!("{} {got}", parts.method));
        assert_eq!(
            (&parts.method, got.as_str()),
            (&method, uri),
            "unexpected request"
        );
        let bytes = body.collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Call {
            content_type: parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body,
            send,
        }
    }

    /// Lists web's Releases, answered with `releases`.
    async fn list_releases(&mut self, releases: Vec<Value>) {
        self.expect(
            Method::GET,
            &format!("{RELEASES}?&labelSelector=budgetgate.dev%2Fdeployment%3Dweb"),
        )
        .await
        .ok(&list("ReleaseList", releases));
    }

    /// Reads `web-canary`, answered with `canary` or 404.
    async fn get_canary(&mut self, canary: Option<Value>) {
        let call = self
            .expect(Method::GET, &format!("{DEPLOYMENTS}/web-canary"))
            .await;
        match canary {
            Some(c) => call.ok(&c),
            None => call.reply(404, &not_found("deployments.apps \"web-canary\"")),
        }
    }

    /// Reads the Release's status, answered with `release`.
    async fn get_release_status(&mut self, release: &Value) {
        self.expect(
            Method::GET,
            &format!("{RELEASES}/{}/status", release_name()),
        )
        .await
        .ok(release);
    }

    /// A merge patch of the Release's status; returns its body.
    async fn patch_release_status(&mut self) -> Value {
        let call = self
            .expect(
                Method::PATCH,
                &format!(
                    "{RELEASES}/{}/status?&fieldManager=budgetgate",
                    release_name()
                ),
            )
            .await;
        call.assert_merge_patch();
        let body = call.body.clone();
        call.ok(&mk_release(json!({})));
        body
    }

    /// A patch of the Deployment `web`; returns its content type and body.
    async fn patch_deployment(&mut self) -> (String, Value) {
        let call = self
            .expect(
                Method::PATCH,
                &format!("{DEPLOYMENTS}/web?&fieldManager=budgetgate"),
            )
            .await;
        let seen = (
            call.content_type.clone().unwrap_or_default(),
            call.body.clone(),
        );
        call.ok(&serde_json::to_value(mk_deployment().build()).unwrap());
        seen
    }

    async fn list_replica_sets(&mut self) {
        self.expect(Method::GET, "/apis/apps/v1/namespaces/shop/replicasets?")
            .await
            .ok(&replica_sets());
    }

    /// A new Event about `web` (the Recorder's create); returns it.
    async fn event_created(&mut self, type_: &str, reason: &str) -> Value {
        let call = self.expect(Method::POST, &format!("{EVENTS}?")).await;
        let event = call.body.clone();
        assert_eq!(
            (event["type"].as_str(), event["reason"].as_str()),
            (Some(type_), Some(reason)),
            "event {event}"
        );
        assert_eq!(event["regarding"]["kind"], "Deployment");
        assert_eq!(event["regarding"]["name"], "web");
        assert_eq!(event["regarding"]["uid"], UID);
        assert_eq!(event["reportingController"], "budgetgate");
        assert_eq!(event["action"], "Rollout");
        call.echo();
        event
    }

    /// The Recorder counting a repeat of Event `name` in its series (a merge patch of it).
    async fn event_repeated(&mut self, name: &str) -> Value {
        let call = self
            .expect(Method::PATCH, &format!("{EVENTS}/{name}?"))
            .await;
        call.assert_merge_patch();
        let event = call.body.clone();
        call.echo();
        event
    }
}

/// The requests of a look that write `web-canary` or create a Deployment.
fn canary_writes(seen: &[String]) -> Vec<&String> {
    seen.iter()
        .filter(|r| {
            r.contains("/web-canary") && !r.starts_with("GET ")
                || r.starts_with(&format!("POST {DEPLOYMENTS}"))
        })
        .collect()
}

/// One look at `d`: runs `reconcile` while `apiserver` answers the requests it expects, in
/// order. Fails on a request after the last expected one, and on a look that ends while
/// the apiserver still expects one.
async fn look(
    ctx: &Arc<Ctx>,
    d: &Deployment,
    server: &mut ApiServer,
    apiserver: impl AsyncFnOnce(&mut ApiServer),
) -> Result<Action, RolloutError> {
    let work = reconcile(Arc::new(d.clone()), ctx.clone());
    tokio::pin!(work);
    let expected = apiserver(server);
    tokio::select! {
        biased;
        () = expected => {}
        result = &mut work => panic!("the look ended ({result:?}) before every expected request"),
    }
    tokio::select! {
        biased;
        result = &mut work => result,
        request = server.handle.next_request() => {
            let request = request.map(|(r, _)| format!("{} {}", r.method(), r.uri()));
            panic!("unexpected request after the scenario: {request:?}")
        }
    }
}

// ------------------------------------------------------------------------------------
// Scenarios
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_paused_rollout_without_canary_gets_an_owned_canary_at_the_first_stage() {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    let d = mk_deployment().build();
    let result = look(&ctx, &d, &mut server, async |api| {
        api.list_releases(vec![mk_release(json!({}))]).await;
        api.get_canary(None).await;
        let call = api
            .expect(
                Method::POST,
                &format!("{DEPLOYMENTS}?&fieldManager=budgetgate"),
            )
            .await;
        assert_eq!(
            call.body,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web-canary",
                    "namespace": NS,
                    "labels": {"app": "web", keys::TRACK: "canary"},
                    "annotations": {keys::REVISION: revision()},
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                        "uid": UID, "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": {
                    // 20% next to 4 stable pods: max(1, round(4·20/80)) = 1.
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web", keys::TRACK: "canary"}},
                    "template": {
                        "metadata": {"labels": {"app": "web", keys::TRACK: "canary"}},
                        "spec": {"containers": [{"name": "web", "image": "web:2"}]},
                    },
                },
            })
        );
        let mut created = call.body.clone();
        created["metadata"]["uid"] = json!(CANARY_UID);
        call.reply(201, &created);
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {"stage": 0, "weight": 20, "stageStartedAt": at(-30).to_string()}})
        );
        let event = api.event_created("Normal", "CanaryCreated").await;
        assert_eq!(
            event["note"],
            format!(
                "stage 0: web-canary runs revision {} with 1 pod(s) next to 4 stable (20% of pods)",
                revision()
            )
        );
        assert_eq!(event["related"]["name"], release_name());
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
}

#[tokio::test]
async fn a_healthy_stage_whose_pause_elapsed_advances_with_the_deployment_uid_as_precondition() {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    // Stage 0 began 3m ago; the pause is 2m.
    let d = mk_deployment().started(-180).build();
    let result = look(&ctx, &d, &mut server, async |api| {
        let release = mk_release(json!({"stage": 0, "weight": 20}));
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(Some(mk_canary(Some(UID), 1))).await;
        api.get_release_status(&release).await;
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {"maxBurn": 1.0, "conditions": no_slo_conditions(at(0))}})
        );
        let (content_type, patch) = api.patch_deployment().await;
        assert_eq!(content_type, "application/merge-patch+json");
        assert_eq!(
            patch,
            json!({"metadata": {
                "uid": UID,
                "annotations": {keys::STAGE: "1", keys::STAGE_STARTED_AT: at(0).to_string()},
            }})
        );
        let event = api.event_created("Normal", "StageAdvanced").await;
        assert_eq!(
            event["note"],
            "stage 1: 50% (4 canary pod(s) next to 4 stable); the previous stage held healthy for its pause"
        );
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
}

#[tokio::test]
async fn a_burn_above_abort_rate_on_the_last_allowed_failure_rolls_back_to_the_serving_replica_set()
{
    // The team burns 20x over the analysis window; one failed check is already counted.
    let (ctx, mut server) = mk_ctx(mk_index(20.0));
    let d = mk_deployment().started(-60).build();
    let reason = "team payments burns 20.0x over 5m, above abortBurnRate 14.4x (2 checks in a row)";
    let result = look(&ctx, &d, &mut server, async |api| {
        let release = mk_release(json!({
            "stage": 0, "weight": 20, "failedChecks": 1,
            "failingSince": at(-30).to_string(), "maxBurn": 18.0,
            "conditions": no_slo_conditions(at(-60)),
        }));
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(Some(mk_canary(Some(UID), 1))).await;
        api.get_release_status(&release).await;
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {"maxBurn": 20.0}})
        );
        api.list_replica_sets().await;
        let (content_type, patch) = api.patch_deployment().await;
        assert_eq!(content_type, "application/json-patch+json");
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/uid", "value": UID},
                {"op": "replace", "path": "/spec/template", "value": pod_template("web:1")},
                {"op": "add", "path": "/spec/paused", "value": false},
                {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1revision", "value": stable_revision()},
                {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1rolled-back-revision", "value": revision()},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1plan"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1pause"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1band"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage-started-at"},
            ])
        );
        let delete = api
            .expect(Method::DELETE, &format!("{DEPLOYMENTS}/web-canary?"))
            .await;
        assert_eq!(delete.body["preconditions"], json!({"uid": CANARY_UID}));
        assert_eq!(delete.body["propagationPolicy"], "Foreground");
        delete.ok(&mk_canary(Some(UID), 1));
        api.get_release_status(&release).await;
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {
                "phase": "RolledBack",
                "reason": reason,
                "budgetConsumed": 0.1,
                "budgetConsumedText": "10.0%",
                "completedAt": at(0).to_string(),
                "failedChecks": null,
            }})
        );
        let event = api.event_created("Warning", "RolledBack").await;
        assert_eq!(
            event["note"],
            format!("revision {} rolled back to {}: {reason}", revision(), stable_revision())
        );
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
}

#[tokio::test]
async fn the_last_stage_held_healthy_for_its_pause_promotes_by_unpausing() {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    // Stage 1 (50%, 4 canary pods) began 3m ago; stage 2 is 100%.
    let d = mk_deployment().stage("1").started(-180).build();
    let result = look(&ctx, &d, &mut server, async |api| {
        let release = mk_release(json!({
            "stage": 1, "weight": 50, "maxBurn": 1.0,
            "conditions": no_slo_conditions(at(-180)),
        }));
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(Some(mk_canary(Some(UID), 4))).await;
        // maxBurn and conditions are current: no status write for them.
        api.get_release_status(&release).await;
        let (content_type, patch) = api.patch_deployment().await;
        assert_eq!(content_type, "application/merge-patch+json");
        assert_eq!(
            patch,
            json!({
                "metadata": {
                    "uid": UID,
                    "annotations": {
                        keys::STAGE: "promoting",
                        keys::STAGE_STARTED_AT: at(0).to_string(),
                        "budgetgate.dev/action": null,
                        "budgetgate.dev/action-by": null,
                    },
                },
                "spec": {"paused": false},
            })
        );
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {"stage": 2, "weight": 100, "stageStartedAt": at(0).to_string()}})
        );
        let event = api.event_created("Normal", "Promoting").await;
        assert_eq!(
            event["note"],
            format!(
                "every stage held healthy: unpaused; the Deployment rolls out revision {}",
                revision()
            )
        );
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
}

#[tokio::test]
async fn a_promote_by_hand_is_recorded_with_its_requester_before_it_is_carried_out() {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    // Stage 0 (20%) began 30s ago, 90s of its pause left: alice promotes now.
    let d = mk_deployment().action("promote", "alice").build();
    let result = look(&ctx, &d, &mut server, async |api| {
        let earlier =
            json!({"action": "resume", "by": "bob", "stage": 0, "at": at(-60).to_string()});
        let release = mk_release(json!({
            "stage": 0, "weight": 20, "maxBurn": 1.0,
            "conditions": no_slo_conditions(at(-30)),
            "actions": [earlier],
        }));
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(Some(mk_canary(Some(UID), 1))).await;
        api.get_release_status(&release).await;
        // First the record (kept with the earlier one), then the action.
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {"actions": [
                earlier,
                {"action": "promote", "by": "alice", "stage": 0, "at": at(0).to_string()},
            ]}})
        );
        let (_, patch) = api.patch_deployment().await;
        assert_eq!(
            patch["metadata"]["annotations"],
            json!({
                keys::STAGE: "promoting",
                keys::STAGE_STARTED_AT: at(0).to_string(),
                "budgetgate.dev/action": null,
                "budgetgate.dev/action-by": null,
            })
        );
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {"stage": 2, "weight": 100, "stageStartedAt": at(0).to_string()}})
        );
        let event = api.event_created("Normal", "Promoting").await;
        assert_eq!(
            event["note"],
            format!(
                "promoted by hand (alice): unpaused; the Deployment rolls out revision {}",
                revision()
            )
        );
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
}

#[tokio::test]
async fn a_canary_name_taken_by_an_unowned_deployment_fails_the_rollout_without_touching_it() {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    let d = mk_deployment().build();
    let reason = "the canary's name is taken: Deployment web-canary exists and is not controlled by web (it has no controller); budgetgate never changes or deletes it. Rename it or delete it, then apply the rollout again";
    let result = look(&ctx, &d, &mut server, async |api| {
        let release = mk_release(json!({"stage": 0, "weight": 20}));
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(Some(mk_canary(None, 1))).await;
        api.list_replica_sets().await;
        let (content_type, patch) = api.patch_deployment().await;
        assert_eq!(content_type, "application/json-patch+json");
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/uid", "value": UID},
                {"op": "replace", "path": "/spec/template", "value": pod_template("web:1")},
                {"op": "add", "path": "/spec/paused", "value": false},
                {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1revision", "value": stable_revision()},
                {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1rolled-back-revision", "value": revision()},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1plan"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1pause"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1band"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage-started-at"},
            ])
        );
        api.get_release_status(&release).await;
        assert_eq!(
            api.patch_release_status().await,
            json!({"status": {
                "phase": "Failed",
                "reason": reason,
                "budgetConsumed": 0.1,
                "budgetConsumedText": "10.0%",
                "completedAt": at(0).to_string(),
                "failedChecks": null,
            }})
        );
        let event = api.event_created("Warning", "RolloutFailed").await;
        assert_eq!(
            event["note"],
            format!("revision {} failed; the Deployment was restored to {}: {reason}", revision(), stable_revision())
        );
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
    assert_eq!(canary_writes(&server.seen), Vec::<&String>::new());
}

#[tokio::test]
async fn a_canary_name_controlled_by_another_deployment_fails_the_rollout_and_keeps_it_paused_without_an_earlier_replica_set()
 {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    let d = mk_deployment().build();
    let reason = "the canary's name is taken: Deployment web-canary exists and is not controlled by web (its controller is Deployment web (uid 3e5f9a01-old-web)); budgetgate never changes or deletes it. Rename it or delete it, then apply the rollout again; no earlier ReplicaSet to restore, the Deployment stays paused";
    let result = look(&ctx, &d, &mut server, async |api| {
        let release = mk_release(json!({"stage": 0, "weight": 20}));
        api.list_releases(vec![release.clone()]).await;
        // Left over from an earlier Deployment of the same name.
        api.get_canary(Some(mk_canary(Some("3e5f9a01-old-web"), 1)))
            .await;
        api.expect(Method::GET, "/apis/apps/v1/namespaces/shop/replicasets?")
            .await
            .ok(&list("ReplicaSetList", vec![]));
        let (content_type, patch) = api.patch_deployment().await;
        assert_eq!(content_type, "application/json-patch+json");
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/uid", "value": UID},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1plan"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1pause"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1band"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage-started-at"},
            ])
        );
        api.get_release_status(&release).await;
        let status = api.patch_release_status().await;
        assert_eq!(status["status"]["phase"], "Failed");
        assert_eq!(status["status"]["reason"], reason);
        let event = api.event_created("Warning", "RolloutFailed").await;
        assert_eq!(
            event["note"],
            format!("revision {} failed: {reason}", revision())
        );
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
    assert_eq!(canary_writes(&server.seen), Vec::<&String>::new());
}

#[tokio::test]
async fn a_refused_canary_write_is_retried_as_one_event_series_and_rolls_back_at_the_deadline() {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    let d = mk_deployment().build();
    let release = mk_release(json!({"stage": 0, "weight": 20}));
    let create = format!("{DEPLOYMENTS}?&fieldManager=budgetgate");

    // First refusal: the Release says why, and a Warning Event starts a series.
    let mut reason = Value::Null;
    let mut blocked = Value::Null;
    let first = look(&ctx, &d, &mut server, async |api| {
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(None).await;
        api.expect(Method::POST, &create)
            .await
            .reply(403, &quota_exceeded());
        reason = api.patch_release_status().await;
        blocked = api.event_created("Warning", "RolloutBlocked").await;
    })
    .await;
    let error = first.unwrap_err();
    assert!(matches!(error, RolloutError::Write { .. }), "{error:?}");
    assert_eq!(error.label(), "write");
    let text = format!("applying the canary shop/web-canary: {QUOTA} (403 Forbidden)");
    assert_eq!(error.to_string(), text);
    assert_eq!(
        reason,
        json!({"status": {"reason": format!("retrying: {text}")}})
    );
    assert_eq!(
        blocked["note"],
        format!("retrying until progressDeadline 10m: {text}")
    );

    // The same refusal again: no second Release write, the Event's series counts it.
    let name = blocked["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("web."), "{name}");
    let again = look(&ctx, &d, &mut server, async |api| {
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(None).await;
        api.expect(Method::POST, &create)
            .await
            .reply(403, &quota_exceeded());
        let repeated = api.event_repeated(&name).await;
        assert_eq!(repeated["reason"], "RolloutBlocked");
        assert_eq!(repeated["series"]["count"], 2);
    })
    .await;
    assert_eq!(again.unwrap_err().to_string(), text);

    // progressDeadline (10m) after the stage began: roll back, naming the last error.
    let ctx = later(ctx, at(600));
    let result = look(&ctx, &d, &mut server, async |api| {
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(None).await;
        api.list_replica_sets().await;
        let (content_type, patch) = api.patch_deployment().await;
        assert_eq!(content_type, "application/json-patch+json");
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/uid", "value": UID})
        );
        assert_eq!(patch[1]["value"], pod_template("web:1"));
        api.get_release_status(&release).await;
        let status = api.patch_release_status().await;
        assert_eq!(status["status"]["phase"], "RolledBack");
        assert_eq!(
            status["status"]["reason"],
            format!(
                "the canary was not available within progressDeadline 10m (last error: {text})"
            )
        );
        api.event_created("Warning", "RolledBack").await;
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));
    assert_eq!(ctx.memory(&release_name()).last_error, None);
    assert_eq!(
        canary_writes(&server.seen),
        vec![&format!("POST {create}"), &format!("POST {create}")]
    );
}

fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
    kube::Error::Api(
        kube::core::Status::failure(message, reason)
            .with_code(code)
            .boxed(),
    )
}

#[test]
fn errors_label_the_failure_metric_and_a_failed_uid_precondition_is_a_conflict() {
    let read = RolloutError::read("the Releases of shop/web")(api_error(
        500,
        "InternalError",
        "etcd timeout",
    ));
    let write = RolloutError::write("applying the canary shop/web-canary")(api_error(
        403,
        "Forbidden",
        QUOTA,
    ));
    let uid = RolloutError::write("deleting the canary shop/web-canary")(api_error(
        409,
        "Conflict",
        "Operation cannot be fulfilled on deployments.apps \"web-canary\": Precondition failed: UID in precondition: 7d1e40aa-canary, UID in object meta: 1f0e2d3c",
    ));
    let test_op = RolloutError::write("rolling back shop/web")(api_error(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request: testing value /metadata/uid failed",
    ));
    let exists = RolloutError::write("creating Release web-1")(api_error(
        409,
        "AlreadyExists",
        "releases \"web-1\" already exists",
    ));
    let encode = RolloutError::Encode {
        what: "the rollback of shop/web".into(),
        source: serde_json::from_str::<Value>("[").unwrap_err(),
    };
    let labels: Vec<&str> = [&read, &write, &uid, &test_op, &exists, &encode]
        .iter()
        .map(|e| e.label())
        .collect();
    assert_eq!(
        labels,
        ["read", "write", "conflict", "conflict", "write", "encode"]
    );
    assert_eq!(
        uid.to_string(),
        "deleting the canary shop/web-canary: the object changed identity (uid precondition failed): Operation cannot be fulfilled on deployments.apps \"web-canary\": Precondition failed: UID in precondition: 7d1e40aa-canary, UID in object meta: 1f0e2d3c (409 Conflict)"
    );
    assert_eq!(
        read.to_string(),
        "reading the Releases of shop/web: etcd timeout (500 InternalError)"
    );
}

#[tokio::test]
async fn the_look_after_a_rollback_records_no_release() {
    let (ctx, mut server) = mk_ctx(mk_index(1.0));
    let d = mk_rolled_back_deployment();
    let result = look(&ctx, &d, &mut server, async |api| {
        api.list_releases(vec![mk_rolled_back_release()]).await;
        api.get_canary(None).await;
    })
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_rollback_whose_canary_delete_fails_still_closes_the_release_and_the_next_look_removes_the_canary()
 {
    let (ctx, mut server) = mk_ctx(mk_index(20.0));
    let d = mk_deployment().started(-60).build();
    let release = mk_release(json!({
        "stage": 0, "weight": 20, "failedChecks": 1, "maxBurn": 20.0,
        "conditions": no_slo_conditions(at(-60)),
    }));
    let result = look(&ctx, &d, &mut server, async |api| {
        api.list_releases(vec![release.clone()]).await;
        api.get_canary(Some(mk_canary(Some(UID), 1))).await;
        api.get_release_status(&release).await;
        api.list_replica_sets().await;
        let (_, patch) = api.patch_deployment().await;
        assert_eq!(patch[1]["value"], pod_template("web:1"));
        api.expect(Method::DELETE, &format!("{DEPLOYMENTS}/web-canary?"))
            .await
            .reply(
                500,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500}),
            );
        api.get_release_status(&release).await;
        let status = api.patch_release_status().await;
        assert_eq!(status["status"]["phase"], "RolledBack");
        assert_eq!(
            status["status"]["reason"],
            "team payments burns 20.0x over 5m, above abortBurnRate 14.4x (2 checks in a row)"
        );
        api.event_created("Warning", "RolledBack").await;
    })
    .await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_millis(200)));

    // The rolled-back Deployment still has its owned canary: it is removed, nothing else.
    let result = look(
        &ctx,
        &mk_rolled_back_deployment(),
        &mut server,
        async |api| {
            api.list_releases(vec![mk_rolled_back_release()]).await;
            api.get_canary(Some(mk_canary(Some(UID), 1))).await;
            let delete = api
                .expect(Method::DELETE, &format!("{DEPLOYMENTS}/web-canary?"))
                .await;
            assert_eq!(delete.body["preconditions"], json!({"uid": CANARY_UID}));
            delete.ok(&mk_canary(Some(UID), 1));
        },
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
}
