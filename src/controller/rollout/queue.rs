//! Queued rollouts (DESIGN §7.10): a Deployment the webhook admitted paused with
//! `budgetgate.dev/queued-since` gets a `Queued` Release (its place in the team's queue and
//! why it waits, kept current), and starts when [`crate::decision::queue::judge`] says so —
//! as a canary on the plan of the band the budget recovered to, or directly (unpaused) when
//! it is not progressive or has nothing serving yet. The Release turns `Progressing` (or
//! `Direct`) before the Deployment is touched, so another look counts it as in flight at
//! once; a start interrupted between the two writes is finished by the next look. Every
//! bit of state is on the Deployment and its Releases: a restarted controller keeps the
//! queue.

use super::RolloutError;
use super::op::{Op, merge_params};
use crate::api::{ReleasePhase, Time, Timestamp, keys};
use crate::decision::queue::{QueueVerdict, judge};
use crate::rollout::ledger;
use kube::ResourceExt;
use kube::api::Patch;
use kube::runtime::events::EventType;
use serde_json::json;

/// When the Deployment was queued: its `queued-since` annotation (written only by the
/// mutating webhook; an unreadable value queues it first, so it is not starved).
pub fn queued_since(d: &k8s_openapi::api::apps::v1::Deployment) -> Option<Timestamp> {
    let value = d.annotations().get(keys::QUEUED_SINCE)?;
    Some(value.parse().unwrap_or(Timestamp::UNIX_EPOCH))
}

impl Op<'_> {
    /// One look at a queued Deployment.
    pub async fn queued(&self, since: Timestamp) -> Result<(), RolloutError> {
        let g = self.gathered;
        let revision = g.view.template_revision.clone();
        let labels = self.deployment.labels();
        let progressive = self
            .index
            .namespaces
            .get(&self.key.namespace)
            .is_some_and(|m| m.progressive)
            || labels.get(keys::PROGRESSIVE).is_some_and(|v| v == "true");
        let verdict = judge(
            self.index,
            &self.key,
            labels,
            &revision,
            progressive,
            since,
            g.now,
        );
        let mine = ledger::newest(g.releases.iter().filter(|r| r.revision == revision));
        match mine {
            Some(r) if r.phase == ReleasePhase::Queued => match verdict {
                QueueVerdict::Wait { position, reason } => {
                    let reason = waiting(position, &reason);
                    if r.reason.as_deref() != Some(reason.as_str()) {
                        self.release_status(
                            &r.name,
                            json!({"status": {"queuePosition": position, "reason": reason}}),
                        )
                        .await?;
                    }
                    Ok(())
                }
                QueueVerdict::Start {
                    band,
                    plan,
                    remaining,
                    exception,
                    why,
                } => {
                    let serving = self
                        .deployment
                        .status
                        .as_ref()
                        .and_then(|s| s.replicas)
                        .unwrap_or(0)
                        > 0;
                    let canary = plan.filter(|_| serving).zip(band.clone());
                    let phase = if canary.is_some() {
                        ReleasePhase::Progressing
                    } else {
                        ReleasePhase::Direct
                    };
                    let mut spec = json!({
                        "band": band,
                        "remainingAtStart": remaining,
                        "exception": exception,
                    });
                    if let Some((plan, _)) = &canary {
                        spec["plan"] = json!(plan);
                    }
                    self.releases
                        .patch(
                            &r.name,
                            &merge_params(),
                            &Patch::Merge(json!({"spec": spec})),
                        )
                        .await
                        .map_err(RolloutError::write(format!("updating Release {}", r.name)))?;
                    let waited = g.now.duration_since(since).as_secs().max(0);
                    let reason = match &canary {
                        Some((plan, band)) => format!(
                            "started from the queue after {waited}s: {why}; canary plan {} every {} (band {band})",
                            plan.steps_annotation(),
                            plan.pause
                        ),
                        None => format!(
                            "started from the queue after {waited}s: {why}; applied directly (no canary)"
                        ),
                    };
                    let mut status = json!({"status": {
                        "phase": phase,
                        "reason": reason,
                        "queuePosition": null,
                    }});
                    if phase == ReleasePhase::Direct {
                        status["status"]["completedAt"] = json!(Time(g.now));
                    }
                    self.release_status(&r.name, status).await?;
                    if phase == ReleasePhase::Direct {
                        self.count(phase);
                    }
                    self.start_queued(canary.as_ref().map(|(p, b)| (p, b.as_str())), &revision)
                        .await?;
                    self.event(EventType::Normal, "QueueStarted", reason).await;
                    Ok(())
                }
            },
            // Started by an earlier look whose write of the Deployment did not land.
            Some(r) if matches!(r.phase, ReleasePhase::Progressing | ReleasePhase::Direct) => {
                let entry = self
                    .index
                    .releases
                    .get(&crate::index::ObjectKey::new(&self.key.namespace, &r.name));
                let plan = entry.and_then(|e| e.plan.clone());
                let band = entry.and_then(|e| e.band.clone());
                let canary = plan.as_ref().zip(band.as_deref());
                if r.phase == ReleasePhase::Progressing && canary.is_none() {
                    // The ledger has not caught up yet: look again next interval.
                    return Ok(());
                }
                self.start_queued(canary, &revision).await
            }
            // No Release of this template yet: it enters the queue (superseding any
            // queued Release of an older template of this Deployment).
            _ => {
                for old in g
                    .releases
                    .iter()
                    .filter(|r| r.phase == ReleasePhase::Queued && r.revision != revision)
                {
                    self.finish(
                        &old.name,
                        ReleasePhase::Superseded,
                        format!("superseded in the queue by revision {revision}"),
                        None,
                    )
                    .await?;
                }
                let (position, why) = match &verdict {
                    QueueVerdict::Wait { position, reason } => (*position, reason.clone()),
                    QueueVerdict::Start { .. } => (1, "starts at the next look".to_owned()),
                };
                let reason = waiting(position, &why);
                self.open_release(
                    &revision,
                    None,
                    None,
                    self.team_remaining(),
                    ReleasePhase::Queued,
                    Some(reason.clone()),
                )
                .await?;
                let name = ledger::release_name(
                    &self.key.name,
                    &revision,
                    self.deployment.metadata.generation.unwrap_or(0),
                );
                self.release_status(
                    &name,
                    json!({"status": {"queuePosition": position, "queuedSince": Time(since)}}),
                )
                .await?;
                self.event(
                    EventType::Normal,
                    "Queued",
                    format!(
                        "revision {revision} queued at position {position} of team {}: {why}",
                        self.team
                    ),
                )
                .await;
                Ok(())
            }
        }
    }

    /// The Deployment leaves the queue: the canary plan's annotations (stage 0, still
    /// paused) or, without a canary, unpaused.
    async fn start_queued(
        &self,
        canary: Option<(&crate::api::Plan, &str)>,
        revision: &str,
    ) -> Result<(), RolloutError> {
        let patch = match canary {
            Some((plan, band)) => json!({"metadata": {"annotations": {
                keys::QUEUED_SINCE: null,
                keys::REVISION: revision,
                keys::PLAN: plan.steps_annotation(),
                keys::PAUSE: plan.pause.as_str(),
                keys::BAND: band,
                keys::STAGE: "0",
                keys::STAGE_STARTED_AT: null,
                keys::ROLLED_BACK_REVISION: null,
            }}, "spec": {"paused": true}}),
            None => json!({"metadata": {"annotations": {keys::QUEUED_SINCE: null}},
                "spec": {"paused": false}}),
        };
        self.patch_deployment(&patch).await
    }
}

/// A queued Release's reason: its place and what it waits for.
fn waiting(position: u32, why: &str) -> String {
    format!("queued at position {position}: {why}")
}

/// The Releases of a Deployment that is no longer queued but still has `Queued` ones:
/// the apply that ended the queue (a rollback, or a rollout admitted once the budget
/// recovered) closes them — `Direct` when its template is the queued one and it runs
/// without a canary, `Superseded` otherwise.
pub fn closing(
    releases: &[ledger::ReleaseView],
    template: &str,
) -> Vec<(String, ReleasePhase, String)> {
    releases
        .iter()
        .filter(|r| r.phase == ReleasePhase::Queued)
        .map(|r| {
            if r.revision == template {
                (
                    r.name.clone(),
                    ReleasePhase::Direct,
                    "left the queue: an apply admitted once the budget allowed it; applied directly (no canary)".to_owned(),
                )
            } else {
                (
                    r.name.clone(),
                    ReleasePhase::Superseded,
                    format!("left the queue: the Deployment went to revision {template} instead"),
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(name: &str, revision: &str, phase: ReleasePhase) -> ledger::ReleaseView {
        ledger::ReleaseView {
            name: name.into(),
            revision: revision.into(),
            phase,
            failed_checks: 0,
            created: None,
            generation: 0,
            remaining_at_start: None,
            reason: None,
            actions: Vec::new(),
        }
    }

    #[test]
    fn an_apply_that_ends_the_queue_closes_its_queued_releases() {
        let releases = [
            release("web-aaaa-1", "aaaa", ReleasePhase::Direct),
            release("web-bbbb-2", "bbbb", ReleasePhase::Queued),
        ];
        // The queued template now runs without a canary: Direct.
        assert_eq!(
            closing(&releases, "bbbb"),
            [(
                "web-bbbb-2".to_owned(),
                ReleasePhase::Direct,
                "left the queue: an apply admitted once the budget allowed it; applied directly (no canary)".to_owned()
            )]
        );
        // A rollback to aaaa cancels it: Superseded.
        assert_eq!(
            closing(&releases, "aaaa"),
            [(
                "web-bbbb-2".to_owned(),
                ReleasePhase::Superseded,
                "left the queue: the Deployment went to revision aaaa instead".to_owned()
            )]
        );
        // Nothing queued: nothing to close.
        assert!(closing(&releases[..1], "cccc").is_empty());
    }

    #[test]
    fn queued_since_reads_the_annotation() {
        let mut d = k8s_openapi::api::apps::v1::Deployment::default();
        assert_eq!(queued_since(&d), None);
        d.metadata.annotations = Some(
            [(
                keys::QUEUED_SINCE.to_owned(),
                "2026-11-29T10:00:00Z".to_owned(),
            )]
            .into(),
        );
        assert_eq!(
            queued_since(&d),
            Some("2026-11-29T10:00:00Z".parse().unwrap())
        );
        // A value nobody but budgetgate writes, unreadable: first in line, never lost.
        d.metadata.annotations = Some([(keys::QUEUED_SINCE.to_owned(), "soon".to_owned())].into());
        assert_eq!(queued_since(&d), Some(Timestamp::UNIX_EPOCH));
    }
}
