//! Carrying out one action of the state machine: the writes (canary Deployment, the
//! Deployment's annotations, Releases), the Events and the metrics. Nothing here decides:
//! every name, uid, revision and reason comes in the action or in what was gathered.
//! Writes to objects budgetgate owns carry the owner's uid as a precondition.

use super::{Ctx, Gathered, LEDGER_LIMIT, RELEASE_DEPLOYMENT, RolloutError};
use crate::api::{Condition, Release, ReleasePhase, ReleaseSpec, ReleaseStatus, Time, keys};
use crate::controller::FIELD_MANAGER;
use crate::index::{Index, ObjectKey};
use crate::policy::Tier;
use crate::rollout::{self, Action as Step, OwnedCanary, RollBack, ledger};
use crate::webhook::metrics::{DeploymentLabels, OutcomeLabels};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(super) struct Op<'a> {
    ctx: &'a Ctx,
    index: &'a Index,
    tier: &'a Tier,
    team: &'a str,
    deployment: &'a Deployment,
    gathered: &'a Gathered,
    key: ObjectKey,
    deployments: Api<Deployment>,
    releases: Api<Release>,
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

    fn now(&self) -> Time {
        Time(self.gathered.now)
    }

    fn team_remaining(&self) -> Option<f64> {
        self.index
            .budgets
            .teams
            .get(&(self.team.to_owned(), self.tier.name.clone()))
            .and_then(|a| a.remaining)
    }

    fn active_exception(&self) -> Option<String> {
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

    /// A managed Deployment without a canary: record its template as a release when the
    /// ledger rules say it is one.
    pub async fn ledger_without_canary(&self) -> Result<(), RolloutError> {
        let g = self.gathered;
        let predates = g.releases.is_empty()
            && self
                .deployment
                .creation_timestamp()
                .is_some_and(|c| c.0 < self.ctx.started)
            && self.deployment.metadata.generation.unwrap_or(1) <= 1;
        let remaining = self.team_remaining();
        let Some(record) = ledger::unpaced_release(&ledger::Unpaced {
            revision: &g.view.template_revision,
            history: &g.view.history,
            restored: rollout::objects::restored_revision(&self.deployment.metadata),
            releases: &g.releases,
            predates_controller: predates,
            enforcement: self.index.enforcement(&self.key.namespace, self.tier),
            tier: self.tier,
            remaining,
        }) else {
            return Ok(());
        };
        let revision = g.view.template_revision.clone();
        let phase = record.phase;
        self.open_release(
            &revision,
            None,
            record.band,
            record.remaining,
            phase,
            Some(record.reason),
        )
        .await?;
        self.event(
            EventType::Normal,
            if phase == ReleasePhase::Observed {
                "ReleaseObserved"
            } else {
                "ReleaseRecorded"
            },
            format!(
                "revision {revision} recorded as a {phase:?} release (team {} {} remaining)",
                self.team,
                remaining.map_or("unknown".into(), crate::decision::text_pct)
            ),
            None,
        )
        .await;
        Ok(())
    }

    async fn open_release(
        &self,
        revision: &str,
        plan: Option<crate::api::Plan>,
        band: Option<String>,
        remaining: Option<f64>,
        phase: ReleasePhase,
        reason: Option<String>,
    ) -> Result<(), RolloutError> {
        let name = ledger::release_name(
            &self.key.name,
            revision,
            self.deployment.metadata.generation.unwrap_or(0),
        );
        let mut release = Release::new(
            &name,
            ReleaseSpec {
                deployment: self.key.name.clone(),
                revision: revision.to_owned(),
                plan,
                band,
                remaining_at_start: remaining,
                exception: self.active_exception(),
            },
        );
        release.metadata.namespace = Some(self.key.namespace.clone());
        release.metadata.labels = Some(BTreeMap::from([(
            RELEASE_DEPLOYMENT.to_owned(),
            self.key.name.clone(),
        )]));
        release.metadata.owner_references =
            self.deployment.controller_owner_ref(&()).map(|mut o| {
                o.controller = Some(false);
                vec![o]
            });
        match self.releases.create(&PostParams::default(), &release).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {} // opened by an earlier look
            Err(e) => return Err(RolloutError::write(format!("creating Release {name}"))(e)),
        }
        let terminal = phase != ReleasePhase::Progressing;
        self.release_status(
            &name,
            json!({"status": ReleaseStatus {
                phase: Some(phase),
                reason,
                completed_at: terminal.then(|| self.now()),
                ..ReleaseStatus::default()
            }}),
        )
        .await?;
        if terminal {
            self.count(phase);
        }
        if self.gathered.releases.len() >= LEDGER_LIMIT {
            for old in ledger::prune(&self.gathered.releases, LEDGER_LIMIT - 1) {
                let _ = self.releases.delete(&old, &DeleteParams::default()).await;
            }
        }
        Ok(())
    }

    async fn release_status(&self, name: &str, patch: Value) -> Result<(), RolloutError> {
        self.releases
            .patch_status(name, &merge_params(), &Patch::Merge(&patch))
            .await
            .map_err(RolloutError::write(format!(
                "writing the status of Release {name}"
            )))?;
        Ok(())
    }

    /// Keeps the running Release's `maxBurn` and its conditions (`MetricsUnavailable`,
    /// `InsufficientTraffic`, `CanaryAnalysis`) current; an Event when a hold begins.
    pub async fn track_release(&self, step: &Step) -> Result<(), RolloutError> {
        let g = self.gathered;
        let Some(release) = &g.release else {
            return Ok(());
        };
        let serving =
            matches!(&g.view.progress, Some(Ok(p)) if matches!(p.stage, rollout::Stage::Canary(_)));
        if release.phase != ReleasePhase::Progressing
            || !serving
            || g.check.slos.is_empty() && g.check.whole_service.is_empty() && g.check.burn.is_none()
        {
            return Ok(());
        }
        let current = self
            .releases
            .get_status(&release.name)
            .await
            .map_err(RolloutError::read(format!("Release {}", release.name)))?;
        let status = current.status.unwrap_or_default();
        let mut patch = serde_json::Map::new();
        if let Some(burn) = g.check.burn
            && status.max_burn.is_none_or(|m| burn > m)
        {
            patch.insert(
                "maxBurn".into(),
                json!((burn * 10_000.0).round() / 10_000.0),
            );
        }
        let hold = match step {
            Step::Hold { kind, reason } => Some((*kind, reason.clone())),
            _ => None,
        };
        let wanted = rollout::ledger::conditions(&g.check, hold.as_ref());
        let (conditions, began) = merge_conditions(&status.conditions, &wanted, self.now());
        if let Some(conditions) = conditions {
            patch.insert("conditions".into(), json!(conditions));
        }
        for (kind, message) in began {
            self.event(
                EventType::Warning,
                kind,
                format!("holding the canary at its stage: {message}"),
                None,
            )
            .await;
        }
        if patch.is_empty() {
            return Ok(());
        }
        self.release_status(&release.name, json!({ "status": patch }))
            .await
    }

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

    /// A write of the rollout failed: remember the error (the state machine's deadline
    /// names it), put it on the Release, and record it as one Event series.
    async fn blocked(&self, release: &str, error: &RolloutError) {
        let text = error.to_string();
        let repeated = self.gathered.last_error.as_deref() == Some(text.as_str());
        self.ctx
            .remember(release, |m| m.last_error = Some(text.clone()));
        if repeated {
            tracing::debug!(%release, error = %text, "rollout write still failing");
        } else {
            tracing::warn!(%release, error = %text, "rollout write failed; retrying until progressDeadline");
            let _ = self
                .release_status(
                    release,
                    json!({"status": {"reason": format!("{}{text}", ledger::RETRYING)}}),
                )
                .await;
        }
        self.event(
            EventType::Warning,
            "RolloutBlocked",
            format!(
                "retrying until progressDeadline {}: {text}",
                self.tier.canary.progress_deadline
            ),
            None,
        )
        .await;
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
                        None,
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
                self.event(EventType::Normal, "CanaryStarted", summary, None).await;
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
                    None,
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
                        None,
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
            Step::Advance { stage, weight, replicas, manual } => {
                self.annotate(json!({ keys::STAGE: stage.to_string(), keys::STAGE_STARTED_AT: self.gathered.now.to_string() }), manual)
                    .await?;
                self.event(
                    EventType::Normal,
                    "StageAdvanced",
                    format!(
                        "stage {stage}: {weight}% ({replicas} canary pod(s) next to {} stable){}",
                        self.gathered.view.replicas,
                        if manual { ", resumed by hand" } else { "; the previous stage held healthy for its pause" }
                    ),
                    None,
                )
                .await;
                Ok(())
            }
            Step::Promote { release, revision, last_stage, manual } => {
                self.patch_deployment(&json!({
                    "metadata": {"annotations": {
                        keys::STAGE: rollout::PROMOTING,
                        keys::STAGE_STARTED_AT: self.gathered.now.to_string(),
                        rollout::ACTION: null,
                    }},
                    "spec": {"paused": false},
                }))
                .await?;
                self.release_status(
                    &release,
                    json!({"status": ReleaseStatus {
                        stage: Some(last_stage),
                        weight: Some(100),
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
                        if manual { "promoted by hand" } else { "every stage held healthy" }
                    ),
                    None,
                )
                .await;
                Ok(())
            }
            Step::FinishPromotion { release, revision, history, reason, canary } => {
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
                    None,
                )
                .await;
                Ok(())
            }
            Step::RollBack(r) => self.roll_back(r).await,
        }
    }

    fn stage_started_at(&self) -> Option<Time> {
        match &self.gathered.view.progress {
            Some(Ok(p)) => p.stage_started_at.map(Time),
            _ => None,
        }
    }

    async fn roll_back(&self, r: RollBack) -> Result<(), RolloutError> {
        let key = &self.key;
        let uid = self.gathered.view.uid.clone();
        let sets = Api::<ReplicaSet>::namespaced(self.ctx.client.clone(), &key.namespace)
            .list(&ListParams::default())
            .await
            .map_err(RolloutError::read(format!(
                "the ReplicaSets of {}",
                key.namespace
            )))?;
        let serving = rollout::objects::serving_template(&sets.items, &uid, &r.revision);
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
        if let Some(c) = &r.canary
            && let Err(error) = self.delete_canary(c).await
        {
            tracing::warn!(deployment = %key, %error, "canary left after the rollback; removing it on the next look");
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
                "revision {} {what}{}{}: {reason}",
                r.revision,
                restored.unwrap_or_default(),
                if r.manual { " by hand" } else { "" }
            ),
            None,
        )
        .await;
        Ok(())
    }

    async fn failing_since(&self, release: &str) -> Option<jiff::Timestamp> {
        let r = self.releases.get_status(release).await.ok()?;
        r.status?.failing_since.map(|t| t.0)
    }

    /// Closes Release `name` in a final `phase`, clears its failed checks, counts the
    /// outcome and drops the stage gauge.
    async fn finish(
        &self,
        name: &str,
        phase: ReleasePhase,
        reason: String,
        consumed: Option<f64>,
    ) -> Result<(), RolloutError> {
        let mut patch = json!({ "status": ReleaseStatus {
            phase: Some(phase),
            budget_consumed: consumed,
            reason: Some(reason),
            completed_at: Some(self.now()),
            ..ReleaseStatus::default()
        }});
        patch["status"]["failedChecks"] = Value::Null;
        self.release_status(name, patch).await?;
        self.count(phase);
        if phase != ReleasePhase::Superseded {
            self.remove_stage_metric();
        }
        Ok(())
    }

    fn consumed(&self) -> Option<f64> {
        let start = self
            .gathered
            .release
            .as_ref()
            .and_then(|r| r.remaining_at_start);
        ledger::consumed(start, self.team_remaining())
    }

    /// Deletes the owned canary, its uid as precondition (a replaced object survives).
    async fn delete_canary(&self, canary: &OwnedCanary) -> Result<(), RolloutError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(canary.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::foreground()
        };
        match self.deployments.delete(&canary.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(RolloutError::write(format!(
                "deleting the canary {}/{}",
                self.key.namespace, canary.name
            ))(e)),
        }
    }

    /// Sets canary annotations on the Deployment (and clears a handled manual action).
    async fn annotate(
        &self,
        mut annotations: Value,
        clear_action: bool,
    ) -> Result<(), RolloutError> {
        if clear_action && let Some(a) = annotations.as_object_mut() {
            a.insert(rollout::ACTION.into(), Value::Null);
        }
        self.patch_deployment(&json!({"metadata": {"annotations": annotations}}))
            .await
    }

    /// A merge patch of the Deployment, its uid as precondition.
    async fn patch_deployment(&self, patch: &Value) -> Result<(), RolloutError> {
        let mut patch = patch.clone();
        patch["metadata"]["uid"] = json!(self.gathered.view.uid);
        self.deployments
            .patch(&self.key.name, &merge_params(), &Patch::Merge(&patch))
            .await
            .map_err(RolloutError::write(format!("updating {}", self.key)))?;
        Ok(())
    }

    fn count(&self, phase: ReleasePhase) {
        let outcome = match phase {
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

    fn stage_labels(&self) -> DeploymentLabels {
        DeploymentLabels {
            namespace: self.key.namespace.clone(),
            deployment: self.key.name.clone(),
        }
    }

    fn set_stage_metric(&self, stage: i64) {
        self.ctx
            .shared
            .metrics
            .rollout_stage
            .get_or_create(&self.stage_labels())
            .set(stage);
    }

    fn remove_stage_metric(&self) {
        self.ctx
            .shared
            .metrics
            .rollout_stage
            .remove(&self.stage_labels());
    }

    async fn event(&self, type_: EventType, reason: &str, note: String, _: Option<()>) {
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

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// The Release's conditions with `wanted` applied: `None` when nothing changed; the kinds
/// of hold that began (for their Event).
fn merge_conditions(
    existing: &[Condition],
    wanted: &[rollout::ledger::WantedCondition],
    now: Time,
) -> (Option<Vec<Condition>>, Vec<(&'static str, String)>) {
    let mut out: Vec<Condition> = existing.to_vec();
    let mut changed = false;
    let mut began = Vec::new();
    for w in wanted {
        let status = if w.status { "True" } else { "False" };
        match out.iter_mut().find(|c| c.type_ == w.type_) {
            Some(c) if c.status == status && c.reason == w.reason && c.message == w.message => {}
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now.clone();
                    if w.status && w.hold {
                        began.push((w.type_, w.message.clone()));
                    }
                }
                c.status = status.into();
                c.reason = w.reason.into();
                c.message = w.message.clone();
                changed = true;
            }
            None if !w.status && w.hold => {} // never held: no condition yet
            None => {
                if w.status && w.hold {
                    began.push((w.type_, w.message.clone()));
                }
                out.push(Condition {
                    type_: w.type_.into(),
                    status: status.into(),
                    reason: w.reason.into(),
                    message: w.message.clone(),
                    last_transition_time: now.clone(),
                    observed_generation: None,
                });
                changed = true;
            }
        }
    }
    (changed.then_some(out), began)
}
