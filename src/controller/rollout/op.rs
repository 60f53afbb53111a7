//! The writer every action goes through: the Deployment and Release APIs of one look, the
//! writes to the Deployment and its canary (each with a uid precondition), Events and
//! metrics. [`super::apply`] carries the actions out, [`super::releases`] keeps the ledger.

use super::{Ctx, Gathered, RolloutError};
use crate::api::{Release, ReleasePhase, Time, keys};
use crate::controller::FIELD_MANAGER;
use crate::index::{Index, ObjectKey};
use crate::policy::Tier;
use crate::rollout::{OwnedCanary, ledger};
use crate::webhook::metrics::{DeploymentLabels, OutcomeLabels};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

pub(super) struct Op<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) index: &'a Index,
    pub(super) tier: &'a Tier,
    pub(super) team: &'a str,
    pub(super) deployment: &'a Deployment,
    pub(super) gathered: &'a Gathered,
    pub(super) key: ObjectKey,
    pub(super) deployments: Api<Deployment>,
    pub(super) releases: Api<Release>,
}

impl<'a> Op<'a> {
    pub fn new(
        ctx: &'a Ctx,
        index: &'a Index,
        tier: &'a Tier,
        team: &'a str,
        deployment: &'a Deployment,
        gathered: &'a Gathered,
    ) -> Op<'a> {
        let key = ObjectKey::new(
            deployment.namespace().unwrap_or_default(),
            deployment.name_any(),
        );
        Op {
            deployments: Api::namespaced(ctx.client.clone(), &key.namespace),
            releases: Api::namespaced(ctx.client.clone(), &key.namespace),
            ctx,
            index,
            tier,
            team,
            deployment,
            gathered,
            key,
        }
    }

    pub(super) fn now(&self) -> Time {
        Time(self.gathered.now)
    }

    pub(super) fn team_remaining(&self) -> Option<f64> {
        self.index
            .budgets
            .teams
            .get(&(self.team.to_owned(), self.tier.name.clone()))
            .and_then(|a| a.remaining)
    }

    /// The team's firing alert pairs when it burns at page level now.
    pub(super) fn team_paging(&self) -> Option<String> {
        self.index
            .budgets
            .teams
            .get(&(self.team.to_owned(), self.tier.name.clone()))
            .filter(|a| a.paging)
            .map(crate::decision::text_firing)
    }

    pub(super) fn active_exception(&self) -> Option<String> {
        let labels = self.deployment.labels();
        self.index
            .exceptions
            .iter()
            .filter(|(k, spec)| {
                k.namespace == self.key.namespace
                    && spec.expires_at.0 > self.gathered.now
                    && crate::selector::matches(&spec.selector, labels)
            })
            .map(|(k, _)| k.name.clone())
            .next()
    }

    pub(super) fn stage_started_at(&self) -> Option<Time> {
        match &self.gathered.view.progress {
            Some(Ok(p)) => p.stage_started_at.map(Time),
            _ => None,
        }
    }

    pub(super) fn consumed(&self) -> Option<f64> {
        let start = self
            .gathered
            .release
            .as_ref()
            .and_then(|r| r.remaining_at_start);
        ledger::consumed(start, self.team_remaining())
    }

    /// Deletes the owned canary, its uid as precondition (a replaced object survives).
    pub(super) async fn delete_canary(&self, canary: &OwnedCanary) -> Result<(), RolloutError> {
        delete_owned(
            &self.deployments,
            &canary.name,
            &canary.uid,
            DeleteParams::foreground(),
            format!("deleting the canary {}/{}", self.key.namespace, canary.name),
        )
        .await
    }

    /// Sets canary annotations on the Deployment (and clears a handled manual action).
    pub(super) async fn annotate(
        &self,
        mut annotations: Value,
        clear_action: bool,
    ) -> Result<(), RolloutError> {
        if clear_action && let Some(a) = annotations.as_object_mut() {
            a.insert(keys::ACTION.into(), Value::Null);
            a.insert(keys::ACTION_BY.into(), Value::Null);
        }
        self.patch_deployment(&json!({"metadata": {"annotations": annotations}}))
            .await
    }

    /// A merge patch of the Deployment, its uid as precondition.
    pub(super) async fn patch_deployment(&self, patch: &Value) -> Result<(), RolloutError> {
        let mut patch = patch.clone();
        patch["metadata"]["uid"] = json!(self.gathered.view.uid);
        self.deployments
            .patch(&self.key.name, &merge_params(), &Patch::Merge(&patch))
            .await
            .map_err(RolloutError::write(format!("updating {}", self.key)))?;
        Ok(())
    }

    pub(super) fn count(&self, phase: ReleasePhase) {
        let outcome = match phase {
            ReleasePhase::Queued => "queued",
            ReleasePhase::Progressing => "progressing",
            ReleasePhase::Promoted => "promoted",
            ReleasePhase::RolledBack => "rolled_back",
            ReleasePhase::Superseded => "superseded",
            ReleasePhase::Direct => "direct",
            ReleasePhase::Observed => "observed",
            ReleasePhase::Failed => "failed",
        };
        self.ctx
            .shared
            .metrics
            .rollouts
            .get_or_create(&OutcomeLabels {
                team: self.team.to_owned(),
                outcome,
            })
            .inc();
    }

    pub(super) fn stage_labels(&self) -> DeploymentLabels {
        DeploymentLabels {
            namespace: self.key.namespace.clone(),
            deployment: self.key.name.clone(),
        }
    }

    pub(super) fn set_stage_metric(&self, stage: i64) {
        self.ctx
            .shared
            .metrics
            .rollout_stage
            .get_or_create(&self.stage_labels())
            .set(stage);
    }

    pub(super) fn remove_stage_metric(&self) {
        self.ctx
            .shared
            .metrics
            .rollout_stage
            .remove(&self.stage_labels());
    }

    pub(super) async fn event(&self, type_: EventType, reason: &str, note: String) {
        let reference = self.deployment.object_ref(&());
        tracing::info!(deployment = %self.key, reason, "{note}");
        let secondary =
            self.gathered
                .release
                .as_ref()
                .map(|r| k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some(Release::api_version(&()).into_owned()),
                    kind: Some("Release".into()),
                    name: Some(r.name.clone()),
                    namespace: Some(self.key.namespace.clone()),
                    ..Default::default()
                });
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Rollout".into(),
            secondary,
        };
        if let Err(e) = self.ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(deployment = %self.key, error = %e, "could not record an event");
        }
    }
}

/// Deletes an object budgetgate owns, its uid as precondition (a replaced object survives);
/// one already gone is fine.
pub(super) async fn delete_owned<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    params: DeleteParams,
    what: String,
) -> Result<(), RolloutError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..params
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(RolloutError::write(what)(e)),
    }
}

pub(super) fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}
