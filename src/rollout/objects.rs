//! The Kubernetes objects of a canary, read and built as typed `k8s_openapi` values: the
//! state machine's view of the user's Deployment and of `<name>-canary`, the canary
//! Deployment to apply, and the rollback patch. Pure: the controller fetches the objects
//! and sends what these functions build.
//!
//! **Ownership** (DESIGN §7.2): a `<name>-canary` is the canary only when its controller
//! ownerReference is the Deployment, by uid. Anything else under that name is the user's
//! and is reported as [`CanaryState::Foreign`]; nothing here builds a write to it.

use super::{
    ACTION, CANARY_SUFFIX, CANARY_TRACK, DeploymentView, ManualAction, PROMOTING, Progress, Stage,
};
use crate::api::{Duration, Plan, keys};
use crate::decision as classify;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The canary Deployment `<name>-canary` as the state machine sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum CanaryState {
    Absent,
    /// Owned by the Deployment (controller ownerReference with its uid).
    Owned(CanaryView),
    /// An object of that name budgetgate does not own: never written, never deleted.
    Foreign {
        name: String,
        owner: Option<String>,
    },
}

impl CanaryState {
    pub fn owned(&self) -> Option<&CanaryView> {
        match self {
            CanaryState::Owned(c) => Some(c),
            _ => None,
        }
    }
}

/// An owned canary Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryView {
    pub name: String,
    /// Its uid: every write and delete of it carries it as a precondition.
    pub uid: String,
    pub revision: String,
    pub replicas: u32,
    pub available: u32,
}

/// Name of the canary Deployment of `deployment`.
pub fn canary_name(deployment: &str) -> String {
    format!("{deployment}{CANARY_SUFFIX}")
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The uid of the Deployment that controls `meta`, when a Deployment does.
pub fn controlling_deployment(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|o| {
        o.controller == Some(true) && o.kind == "Deployment" && o.api_version == "apps/v1"
    })
}

/// The revision hash of a pod template (DESIGN Appendix A; `pod-template-hash` left out).
pub fn template_revision(template: &PodTemplateSpec) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    classify::workload_revision(&json!({ "spec": { "template": value } }))
}

/// The machine's view of the user's Deployment.
pub fn deployment_view(d: &Deployment) -> DeploymentView {
    let spec = d.spec.as_ref();
    let status = d.status.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32;
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
    let count = |v: Option<i32>| v.unwrap_or(0).max(0) as u32;
    let rolled_out = observed >= generation
        && count(status.and_then(|s| s.updated_replicas)) == replicas
        && count(status.and_then(|s| s.available_replicas)) >= replicas
        && count(status.and_then(|s| s.replicas)) == replicas;
    DeploymentView {
        name: d.metadata.name.clone().unwrap_or_default(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        replicas,
        paused: spec.and_then(|s| s.paused) == Some(true),
        template_revision: spec.map_or_else(String::new, |s| template_revision(&s.template)),
        progress: progress(&d.metadata),
        action: annotation(&d.metadata, ACTION).and_then(ManualAction::parse),
        action_by: annotation(&d.metadata, keys::ACTION_BY).map(str::to_owned),
        rolled_out,
        history: history(&d.metadata),
    }
}

/// Revisions in the `history` annotation, newest first.
pub fn history(meta: &ObjectMeta) -> Vec<String> {
    annotation(meta, keys::HISTORY)
        .map(classify::parse_history)
        .unwrap_or_default()
}

/// The revision budgetgate restored when it last rolled a canary back: the `revision`
/// annotation while `rolled-back-revision` is set ([`rollback_patch`] writes both; a new
/// canary removes `rolled-back-revision`).
pub fn restored_revision(meta: &ObjectMeta) -> Option<&str> {
    annotation(meta, keys::ROLLED_BACK_REVISION)?;
    annotation(meta, keys::REVISION)
}

/// `Ok` when the Deployment with uid `owner_uid` controls `meta` (DESIGN §7.2 ownership);
/// otherwise who does (`Kind name (uid …)`), `None` when nothing does.
pub fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> Result<(), Option<String>> {
    match controlling_deployment(meta) {
        Some(o) if !owner_uid.is_empty() && o.uid == owner_uid => Ok(()),
        other => Err(other.map(|o| format!("{} {} (uid {})", o.kind, o.name, o.uid))),
    }
}

/// "it has no controller" / "its controller is Deployment x (uid …)", for refusals that
/// name an object budgetgate does not own.
pub fn owner_text(owner: Option<&str>) -> String {
    owner.map_or("it has no controller".to_owned(), |o| {
        format!("its controller is {o}")
    })
}

/// The controller ownerReference to `deployment` that budgetgate's own objects carry.
pub fn controller_reference(deployment: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: deployment.metadata.name.clone().unwrap_or_default(),
        uid: deployment.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What `<name>-canary` is to the Deployment with uid `owner_uid`.
pub fn canary_state(canary: Option<&Deployment>, owner_uid: &str) -> CanaryState {
    let Some(c) = canary else {
        return CanaryState::Absent;
    };
    let name = c.metadata.name.clone().unwrap_or_default();
    match owned_by(&c.metadata, owner_uid) {
        Ok(()) => CanaryState::Owned(CanaryView {
            name,
            uid: c.metadata.uid.clone().unwrap_or_default(),
            revision: annotation(&c.metadata, keys::REVISION)
                .unwrap_or_default()
                .to_owned(),
            replicas: c.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as u32,
            available: c
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                .max(0) as u32,
        }),
        Err(owner) => CanaryState::Foreign { name, owner },
    }
}

/// Reads the canary annotations. `None` = no canary in progress (no `stage`).
pub fn progress(meta: &ObjectMeta) -> Option<Result<Progress, String>> {
    let stage = annotation(meta, keys::STAGE)?;
    Some(parse_progress(meta, stage))
}

fn parse_progress(meta: &ObjectMeta, stage: &str) -> Result<Progress, String> {
    let get =
        |key: &str| annotation(meta, key).ok_or_else(|| format!("annotation {key} is missing"));
    let revision = get(keys::REVISION)?.to_owned();
    let steps = get(keys::PLAN)?
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=100).contains(w))
                .ok_or_else(|| format!("annotation {}: {s:?} is not a weight 1-100", keys::PLAN))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pause = Duration::parse(get(keys::PAUSE)?)
        .map_err(|e| format!("annotation {}: {e}", keys::PAUSE))?;
    let band = annotation(meta, keys::BAND).unwrap_or_default().to_owned();
    let stage = if stage == PROMOTING {
        Stage::Promoting
    } else {
        Stage::Canary(
            stage
                .parse()
                .map_err(|_| format!("annotation {}: {stage:?} is not a stage", keys::STAGE))?,
        )
    };
    let stage_started_at = match annotation(meta, keys::STAGE_STARTED_AT) {
        None | Some("") => None,
        Some(t) => Some(
            t.parse()
                .map_err(|e| format!("annotation {}: {e}", keys::STAGE_STARTED_AT))?,
        ),
    };
    Ok(Progress {
        revision,
        plan: Plan { steps, pause },
        band,
        stage,
        stage_started_at,
    })
}

/// The canary Deployment of `deployment` at `revision` with `replicas`: the Deployment's
/// template plus the track label, a selector that also requires it (so it never adopts
/// the stable ReplicaSet), controlled by the Deployment. `canary_uid`, when the canary
/// exists, goes into the object as a precondition: the apiserver refuses the write if
/// the object under that name is no longer the one that was judged owned.
pub fn canary_object(
    deployment: &Deployment,
    revision: &str,
    replicas: u32,
    canary_uid: Option<&str>,
) -> Deployment {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let spec = deployment.spec.clone().unwrap_or_default();
    let mut template = spec.template;
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(keys::TRACK.into(), CANARY_TRACK.into());
    let mut selector: LabelSelector = spec.selector;
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(keys::TRACK.into(), CANARY_TRACK.into());
    let mut labels = deployment.metadata.labels.clone().unwrap_or_default();
    labels.insert(keys::TRACK.into(), CANARY_TRACK.into());
    Deployment {
        metadata: ObjectMeta {
            name: Some(canary_name(&name)),
            namespace: deployment.metadata.namespace.clone(),
            uid: canary_uid.map(str::to_owned),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(keys::REVISION.into(), revision.into())])),
            owner_references: Some(vec![controller_reference(deployment)]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas.min(i32::MAX as u32) as i32),
            selector,
            template,
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The template to restore on roll back: among the ReplicaSets the Deployment controls
/// (by uid) whose template is a revision the Deployment `ran` before (its `history` and
/// [`crate::index::Index::ran_before`]: the rule admission applies to rollbacks, so a
/// ReplicaSet a team planted is never restored), the newest (by the Deployment
/// controller's `deployment.kubernetes.io/revision`) that is not the canary's revision,
/// without its `pod-template-hash` label. `None` when there is none (a Deployment created
/// with a canary plan has nothing older).
pub fn serving_template(
    replica_sets: &[ReplicaSet],
    owner_uid: &str,
    canary_revision: &str,
    ran: &BTreeSet<String>,
) -> Option<(String, Value)> {
    owned_replica_sets(replica_sets, owner_uid)
        .filter(|(_, revision, _)| revision != canary_revision && ran.contains(revision))
        .max_by_key(|(number, _, _)| *number)
        .map(|(_, revision, value)| (revision, classify::comparable_template(&value)))
}

/// The `pod-template-hash` of the ReplicaSet serving next to a canary of `canary_revision`:
/// the newest (by `deployment.kubernetes.io/revision`) of the Deployment's that is of
/// another revision and has replicas.
pub fn stable_hash(
    replica_sets: &[ReplicaSet],
    owner_uid: &str,
    canary_revision: &str,
) -> Option<String> {
    owned_replica_sets(replica_sets, owner_uid)
        .filter(|(_, revision, value)| {
            revision != canary_revision
                && value
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    > 0
        })
        .max_by_key(|(number, _, _)| *number)
        .and_then(|(_, _, value)| {
            value
                .pointer("/metadata/labels")
                .and_then(|l| l.get(keys::POD_TEMPLATE_HASH))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// The ReplicaSets the Deployment with uid `owner_uid` controls, each with the Deployment
/// controller's revision number, its template revision and its JSON.
fn owned_replica_sets<'a>(
    replica_sets: &'a [ReplicaSet],
    owner_uid: &'a str,
) -> impl Iterator<Item = (u64, String, Value)> + 'a {
    replica_sets
        .iter()
        .filter(move |rs| controlling_deployment(&rs.metadata).is_some_and(|o| o.uid == owner_uid))
        .filter_map(|rs| {
            let value = serde_json::to_value(rs).ok()?;
            let number = annotation(&rs.metadata, "deployment.kubernetes.io/revision")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            Some((number, classify::workload_revision(&value), value))
        })
}

/// The JSON patch that rolls `deployment` back to `template` (revision `stable`): the
/// template restored, unpaused, `revision` = stable, `rolled-back-revision` = the canary's,
/// the canary annotations and a pending manual action (and its requester) removed. Its first operation tests
/// the uid, so the patch applies to this Deployment or to none.
pub fn rollback_patch(
    deployment: &Deployment,
    stable: &str,
    template: &Value,
    rolled_back: &str,
) -> Value {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let mut ops = vec![
        json!({"op": "test", "path": "/metadata/uid", "value": uid}),
        json!({"op": "replace", "path": "/spec/template", "value": template}),
        json!({"op": "add", "path": "/spec/paused", "value": false}),
        json!({"op": "add", "path": pointer(keys::REVISION), "value": stable}),
        json!({"op": "add", "path": pointer(keys::ROLLED_BACK_REVISION), "value": rolled_back}),
    ];
    ops.extend(clear_canary_annotations(deployment));
    Value::Array(ops)
}

/// The JSON patch that releases a Deployment whose canary cannot run and that has nothing
/// to roll back to, or whose canary name is taken: unpaused only when `unpause`, the canary
/// annotations removed (so the controller stops driving it), uid tested first.
pub fn release_patch(deployment: &Deployment, unpause: bool) -> Value {
    let uid = deployment.metadata.uid.clone().unwrap_or_default();
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": uid})];
    if unpause {
        ops.push(json!({"op": "add", "path": "/spec/paused", "value": false}));
    }
    ops.extend(clear_canary_annotations(deployment));
    Value::Array(ops)
}

fn clear_canary_annotations(deployment: &Deployment) -> Vec<Value> {
    let present = deployment.metadata.annotations.as_ref();
    [
        keys::PLAN,
        keys::PAUSE,
        keys::BAND,
        keys::STAGE,
        keys::STAGE_STARTED_AT,
        ACTION,
        keys::ACTION_BY,
    ]
    .into_iter()
    .filter(|k| present.is_some_and(|a| a.contains_key(*k)))
    .map(|k| json!({"op": "remove", "path": pointer(k)}))
    .collect()
}

/// JSON pointer of an annotation (`/` and `~` escaped).
fn pointer(key: &str) -> String {
    format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}
