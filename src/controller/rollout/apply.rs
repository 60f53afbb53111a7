//! Carrying out one action of the state machine: the writes (canary Deployment, the
//! Deployment's annotations, Releases), the Events and the metrics. Nothing here decides:
//! every name, uid, revision and reason comes in the action or in what was gathered.
//! Writes to objects budgetgate owns carry the owner's uid as a precondition.

use super::RolloutError;
use super::op::Op;
use crate::api::{ReleasePhase, ReleaseStatus, keys};
use crate::controller::FIELD_MANAGER;
use crate::rollout::{self, Action as Step, RollBack};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::json;

impl Op<'_> {
    pub async fn apply(&self, step: Step) -> Result<(), RolloutError> {
        let release = self.gathered.release.as_ref().map(|r| r.name.clone());
        let closes = matches!(step, Step::RollBack(_) | Step::FinishPromotion { .. });
        let result = self.apply_inner(step).await;
        if let Some(name) = release {
            match &result {
                Err(error @ (RolloutError::Write { .. } | RolloutError::Conflict { .. })) => {
                    self.blocked(&name, error).await
                }
                // The write went through: the error is history (a closing step wrote its
                // own reason).
                Ok(()) if self.gathered.last_error.is_some() && !closes => {
                    self.ctx.remember(&name, |m| m.last_error = None);
                    let _ = self
                        .release_status(&name, json!({"status": {"reason": null}}))
                        .await;
                }
                Ok(()) => {}
                Err(_) => {}
            }
        }
        result
    }

    async fn apply_inner(&self, step: Step) -> Result<(), RolloutError> {
        let key = &self.key;
        match step {
            Step::Idle | Step::Wait { .. } | Step::Hold { .. } => Ok(()),
            Step::Invalid { reason } => {
                tracing::warn!(deployment = %key, %reason, "cannot read the canary annotations; leaving the Deployment alone");
                Ok(())
            }
            Step::RemoveCanary { canary } => self.delete_canary(&canary).await,
            Step::OpenRelease { revision, plan, band, supersedes } => {
                if let Some(old) = supersedes {
                    self.finish(&old, ReleasePhase::Superseded, format!("superseded by revision {revision}"), None)
                        .await?;
                    self.event(
                        EventType::Normal,
                        "Superseded",
                        format!("release {old} superseded by revision {revision}; the canary restarts at stage 0"),
                    )
                    .await;
                }
                let remaining = self.team_remaining();
                let summary = format!(
                    "revision {revision}: canary plan {} every {} (band {band}, team {} {} remaining)",
                    plan.steps_annotation(),
                    plan.pause,
                    self.team,
                    remaining.map_or("unknown".into(), crate::decision::text_pct)
                );
                self.open_release(&revision, Some(plan), Some(band), remaining, ReleasePhase::Progressing, None)
                    .await?;
                self.event(EventType::Normal, "CanaryStarted", summary).await;
                Ok(())
            }
            Step::StartStage { stage } => {
                self.annotate(json!({ keys::STAGE: stage.to_string(), keys::STAGE_STARTED_AT: self.gathered.now.to_string() }), false)
                    .await
            }
            Step::SyncCanary { release, stage, revision, replicas, weight, canary_uid } => {
                let object = rollout::objects::canary_object(self.deployment, &revision, replicas, canary_uid.as_deref());
                let name = rollout::objects::canary_name(&key.name);
                let what = format!("applying the canary {}/{name}", key.namespace);
                match &canary_uid {
                    // Create, never apply over: an object that appeared under the name
                    // since it was read makes this fail instead of being taken over.
                    None => {
                        self.deployments
                            .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &object)
                            .await
                            .map_err(RolloutError::write(what))?;
                    }
                    Some(_) => {
                        self.deployments
                            .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
                            .await
                            .map_err(RolloutError::write(what))?;
                    }
                }
                self.set_stage_metric(stage as i64 + 1);
                self.release_status(
                    &release,
                    json!({"status": ReleaseStatus {
                        stage: Some(stage as u32),
                        weight: Some(weight.round() as u32),
                        stage_started_at: self.stage_started_at(),
                        ..ReleaseStatus::default()
                    }}),
                )
                .await?;
                self.event(
                    EventType::Normal,
                    if canary_uid.is_none() { "CanaryCreated" } else { "CanaryScaled" },
                    format!(
                        "stage {stage}: {name} runs revision {revision} with {replicas} pod(s) next to {} stable ({weight:.0}% of pods)",
                        self.gathered.view.replicas
                    ),
                )
                .await;
                Ok(())
            }
            Step::RecordCheck { release, failed_checks, reason } => {
                let patch = if failed_checks == 0 {
                    self.ctx.remember(&release, |m| m.last_failure = None);
                    json!({"status": {"failedChecks": null, "failingSince": null}})
                } else {
                    self.ctx.remember(&release, |m| m.last_failure = Some(self.gathered.now));
                    self.event(
                        EventType::Warning,
                        "CanaryUnhealthy",
                        format!("check {failed_checks} of {} failed: {reason}", self.tier.canary.consecutive_failures),
                    )
                    .await;
                    let since = if failed_checks == 1 { Some(self.now()) } else { None };
                    match since {
                        Some(t) => json!({"status": {"failedChecks": failed_checks, "failingSince": t}}),
                        None => json!({"status": {"failedChecks": failed_checks}}),
                    }
                };
                self.release_status(&release, patch).await
            }
            Step::Advance { stage, weight, replicas, by_hand } => {
                self.record_by_hand(by_hand.as_ref()).await?;
                self.annotate(json!({ keys::STAGE: stage.to_string(), keys::STAGE_STARTED_AT: self.gathered.now.to_string() }), by_hand.is_some())
                    .await?;
                self.event(
                    EventType::Normal,
                    "StageAdvanced",
                    format!(
                        "stage {stage}: {weight}% ({replicas} canary pod(s) next to {} stable){}",
                        self.gathered.view.replicas,
                        by_hand.as_ref().map_or("; the previous stage held healthy for its pause".to_owned(), |b| format!(", resumed {}", b.text()))
                    ),
                )
                .await;
                Ok(())
            }
            Step::Promote { release, revision, last_stage, by_hand } => {
                self.record_by_hand(by_hand.as_ref()).await?;
                self.traffic_to_the_promoted().await?;
                self.patch_deployment(&json!({
                    "metadata": {"annotations": {
                        keys::STAGE: rollout::PROMOTING,
                        keys::STAGE_STARTED_AT: self.gathered.now.to_string(),
                        keys::ACTION: null,
                        keys::ACTION_BY: null,
                    }},
                    "spec": {"paused": false},
                }))
                .await?;
                self.release_status(
                    &release,
                    json!({"status": ReleaseStatus {
                        stage: Some(last_stage),
                        weight: Some(100),
                        traffic: self.promoted_traffic_text(),
                        stage_started_at: Some(self.now()),
                        ..ReleaseStatus::default()
                    }}),
                )
                .await?;
                self.event(
                    EventType::Normal,
                    "Promoting",
                    format!(
                        "{}: unpaused; the Deployment rolls out revision {revision}",
                        by_hand.as_ref().map_or("every stage held healthy".to_owned(), |b| format!("promoted {}", b.text()))
                    ),
                )
                .await;
                Ok(())
            }
            Step::FinishPromotion { release, revision, history, reason, canary } => {
                // The promoted pods serve through the stable Service: the canary's backendRefs
                // and Service go before the canary.
                self.remove_traffic(None, true).await?;
                if let Some(c) = &canary {
                    self.delete_canary(c).await?;
                }
                self.patch_deployment(&json!({"metadata": {"annotations": {
                    keys::PLAN: null, keys::PAUSE: null, keys::BAND: null, keys::STAGE: null,
                    keys::STAGE_STARTED_AT: null, keys::HISTORY: history,
                }}}))
                .await?;
                let consumed = self.consumed();
                self.finish(&release, ReleasePhase::Promoted, reason, consumed).await?;
                self.event(
                    EventType::Normal,
                    "Promoted",
                    format!(
                        "revision {revision} promoted and rolled out; canary removed{}",
                        consumed.map_or(String::new(), |c| format!(
                            ", {} of the team's budget consumed during the release",
                            crate::decision::text_pct(c)
                        ))
                    ),
                )
                .await;
                Ok(())
            }
            Step::RollBack(r) => self.roll_back(r).await,
            Step::SyncTraffic { release, stage, weight } => self.sync_traffic(&release, stage, weight).await,
            Step::RemoveTraffic => self.remove_traffic(None, false).await,
        }
    }

    async fn roll_back(&self, r: RollBack) -> Result<(), RolloutError> {
        let key = &self.key;
        // Traffic leaves the canary before anything else changes.
        let route = self.traffic_off_the_canary().await?;
        self.record_by_hand(r.by_hand.as_ref()).await?;
        let uid = self.gathered.view.uid.clone();
        let sets = Api::<ReplicaSet>::namespaced(self.ctx.client.clone(), &key.namespace)
            .list(&ListParams::default())
            .await
            .map_err(RolloutError::read(format!(
                "the ReplicaSets of {}",
                key.namespace
            )))?;
        let mut ran = self.index.ran_before(key);
        ran.extend(self.gathered.view.history.iter().cloned());
        let serving = rollout::objects::serving_template(&sets.items, &uid, &r.revision, &ran);
        let (patch, outcome, reason, restored) = match &serving {
            Some((stable, template)) => (
                rollout::objects::rollback_patch(self.deployment, stable, template, &r.revision),
                r.outcome,
                r.reason.clone(),
                Some(stable.clone()),
            ),
            None => (
                // Nothing older to go back to: stop driving it, keep it paused.
                rollout::objects::release_patch(self.deployment, false),
                ReleasePhase::Failed,
                format!(
                    "{}; no earlier ReplicaSet to restore, the Deployment stays paused",
                    r.reason
                ),
                None,
            ),
        };
        let patch: json_patch::Patch =
            serde_json::from_value(patch).map_err(|source| RolloutError::Encode {
                what: format!("the rollback of {key}"),
                source,
            })?;
        self.deployments
            .patch(
                &key.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(RolloutError::write(format!("rolling back {key}")))?;
        // The restored Deployment has no stage any more, so no later look would close the
        // Release: a failed delete must not keep it open. The next look removes the canary.
        let mut canary_gone = true;
        if let Some(c) = &r.canary
            && let Err(error) = self.delete_canary(c).await
        {
            canary_gone = false;
            tracing::warn!(deployment = %key, %error, "canary left after the rollback; removing it on the next look");
        }
        if let Err(error) = self.remove_traffic(route, canary_gone).await {
            tracing::warn!(deployment = %key, %error, "canary routing left after the rollback; removing it on the next look");
        }
        let consumed = self.consumed();
        if let Some(release) = &r.release {
            if let Some(since) = self.failing_since(release).await {
                let seconds = self
                    .gathered
                    .now
                    .duration_since(since)
                    .as_secs_f64()
                    .max(0.0);
                self.ctx.shared.metrics.rollback_seconds.observe(seconds);
            }
            self.finish(release, outcome, reason.clone(), consumed)
                .await?;
            self.ctx.forget(release);
        }
        let (kind, what) = if outcome == ReleasePhase::Failed {
            ("RolloutFailed", "failed")
        } else {
            ("RolledBack", "rolled back")
        };
        let restored = restored.map(|s| {
            if outcome == ReleasePhase::Failed {
                format!("; the Deployment was restored to {s}")
            } else {
                format!(" to {s}")
            }
        });
        self.event(
            EventType::Warning,
            kind,
            format!(
                "revision {} {what}{}: {reason}",
                r.revision,
                restored.unwrap_or_default(),
            ),
        )
        .await;
        Ok(())
    }
}
