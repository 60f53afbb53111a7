//! The ledger's writes: Releases opened, kept current (maxBurn, conditions, the error of a
//! write that keeps failing) and closed, by the rules of [`crate::rollout::ledger`].

use super::op::{Op, merge_params};
use super::{LEDGER_LIMIT, RELEASE_DEPLOYMENT, RolloutError};
use crate::api::{
    Condition, ManualActionRecord, Release, ReleasePhase, ReleaseSpec, ReleaseStatus, Time,
};
use crate::rollout::{self, Action as Step, ByHand, ledger};
use kube::api::{DeleteParams, Patch, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;

impl Op<'_> {
    /// A managed Deployment without a canary: record its template as a release when the
    /// ledger rules say it is one.
    pub async fn ledger_without_canary(&self) -> Result<(), RolloutError> {
        let g = self.gathered;
        for (name, phase, reason) in super::queue::closing(&g.releases, &g.view.template_revision) {
            self.finish(&name, phase, reason, None).await?;
        }
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
            paging: self.team_paging(),
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
        )
        .await;
        Ok(())
    }

    pub(super) async fn open_release(
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
            // Opened by an earlier look, or queued before: a queued Release that starts
            // takes the plan it starts on.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                if phase == ReleasePhase::Progressing {
                    self.releases
                        .patch(
                            &name,
                            &merge_params(),
                            &Patch::Merge(json!({"spec": release.spec})),
                        )
                        .await
                        .map_err(RolloutError::write(format!("updating Release {name}")))?;
                }
            }
            Err(e) => return Err(RolloutError::write(format!("creating Release {name}"))(e)),
        }
        let terminal = !matches!(phase, ReleasePhase::Progressing | ReleasePhase::Queued);
        let mut status = json!({"status": ReleaseStatus {
            phase: Some(phase),
            reason,
            completed_at: terminal.then(|| self.now()),
            ..ReleaseStatus::default()
        }});
        // A queued Release that starts leaves its place and its waiting reason behind.
        if phase != ReleasePhase::Queued {
            status["status"]["queuePosition"] = Value::Null;
            if status["status"].get("reason").is_none() {
                status["status"]["reason"] = Value::Null;
            }
        }
        self.release_status(&name, status).await?;
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

    pub(super) async fn release_status(
        &self,
        name: &str,
        patch: Value,
    ) -> Result<(), RolloutError> {
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
            )
            .await;
        }
        if patch.is_empty() {
            return Ok(());
        }
        self.release_status(&release.name, json!({ "status": patch }))
            .await
    }

    /// A write of the rollout failed: remember the error (the state machine's deadline
    /// names it), put it on the Release, and record it as one Event series.
    pub(super) async fn blocked(&self, release: &str, error: &RolloutError) {
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
        )
        .await;
    }

    pub(super) async fn failing_since(&self, release: &str) -> Option<jiff::Timestamp> {
        let r = self.releases.get_status(release).await.ok()?;
        r.status?.failing_since.map(|t| t.0)
    }

    /// Closes Release `name` in a final `phase`, clears its failed checks, counts the
    /// outcome and drops the stage gauge.
    /// Records a manual action on the running Release (`status.actions`) before it is
    /// carried out: a leader that stops in between takes the action again and finds it
    /// recorded, so it is recorded once.
    pub(super) async fn record_by_hand(
        &self,
        by_hand: Option<&ByHand>,
    ) -> Result<(), RolloutError> {
        let (Some(by_hand), Some(release)) = (by_hand, &self.gathered.release) else {
            return Ok(());
        };
        let record = ManualActionRecord {
            action: by_hand.action.as_str().to_owned(),
            by: by_hand.by.clone(),
            stage: by_hand.stage,
            at: self.now(),
        };
        let same = |r: &ManualActionRecord| {
            (r.action.as_str(), &r.by, r.stage)
                == (record.action.as_str(), &record.by, record.stage)
        };
        if release.actions.last().is_some_and(same) {
            return Ok(());
        }
        let mut actions = release.actions.clone();
        actions.push(record);
        self.release_status(&release.name, json!({"status": {"actions": actions}}))
            .await
    }

    pub(super) async fn finish(
        &self,
        name: &str,
        phase: ReleasePhase,
        reason: String,
        consumed: Option<f64>,
    ) -> Result<(), RolloutError> {
        let mut patch = json!({ "status": ReleaseStatus {
            phase: Some(phase),
            budget_consumed: consumed,
            budget_consumed_text: consumed.map(crate::decision::text_pct),
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
