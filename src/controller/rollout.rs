//! The rollout controller (DESIGN §7): for every managed Deployment, read the Deployment,
//! its canary, its newest Release and the budget signals, ask the pure
//! [`crate::rollout::next`] for the one next action, carry it out, and come back. Only the
//! lease holder acts. Every stage change, promotion and rollback becomes an Event on the
//! Deployment and a line in its `Release`; non-progressive rollouts get a `Direct` Release,
//! dry-run namespaces an `Observed` one.

use super::FIELD_MANAGER;
use crate::api::{
    Enforcement, Release, ReleasePhase, ReleaseSpec, ReleaseStatus, Time, Timestamp, keys,
};
use crate::index::{Index, ObjectKey};
use crate::policy::{BandLookup, Tier};
use crate::rollout::{self, Action as Step, CANARY_SUFFIX, Health, ReleaseView, Stage};
use crate::webhook::Shared;
use crate::webhook::metrics::{DeploymentLabels, OutcomeLabels};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Label on every Release naming its Deployment (for listing a Deployment's ledger).
pub const RELEASE_DEPLOYMENT: &str = "budgetgate.dev/deployment";
/// Releases kept per Deployment; older finished ones are deleted.
pub const LEDGER_LIMIT: usize = 20;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(String);

fn failed(what: impl std::fmt::Display) -> impl FnOnce(kube::Error) -> Failed {
    move |e| Failed(format!("{what}: {e}"))
}

struct Ctx {
    client: Client,
    shared: Arc<Shared>,
    leader: tokio::sync::watch::Receiver<bool>,
    interval: Duration,
    recorder: Recorder,
    /// Last counted failed health check per Release: failures count once per interval.
    last_failure: Mutex<BTreeMap<String, Timestamp>>,
    /// Deployments created before this start that have no Release yet are not given one
    /// (installing budgetgate is not a release of everything).
    started: Timestamp,
}

/// Runs until `shutdown`.
pub async fn run(
    client: Client,
    shared: Arc<Shared>,
    leader: tokio::sync::watch::Receiver<bool>,
    interval: Duration,
    instance: Option<String>,
    shutdown: crate::source::Shutdown,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "budgetgate".into(),
            instance,
        },
    );
    let ctx = Arc::new(Ctx {
        started: shared.clock.now(),
        client: client.clone(),
        shared,
        leader,
        interval,
        recorder,
        last_failure: Mutex::new(BTreeMap::new()),
    });
    tracing::info!(interval = ?interval, "rollout controller started");
    let deployments = Api::<Deployment>::all(client);
    Controller::new(deployments.clone(), watcher::Config::default())
        .owns(deployments, watcher::Config::default().labels(keys::TRACK))
        .graceful_shutdown_on(crate::source::stopped(shutdown))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(d: Arc<Deployment>, error: &Failed, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = d.namespace().unwrap_or_default(), deployment = %d.name_any(), %error, "rollout step failed; retrying");
    Action::requeue(ctx.interval)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Failed> {
    let idle = Action::requeue(ctx.interval);
    if !*ctx.leader.borrow() || ctx.shared.not_ready().is_some() {
        return Ok(idle);
    }
    let namespace = d.namespace().unwrap_or_default();
    let name = d.name_any();
    // Canaries are driven through their Deployment.
    if d.labels().get(keys::TRACK).map(String::as_str) == Some(rollout::CANARY_TRACK) {
        return Ok(Action::await_change());
    }
    let index = ctx.shared.index.load_full();
    let Some((team, tier_name)) = index.team_of(&namespace) else {
        return Ok(Action::await_change());
    };
    let Some(tier) = index
        .policy
        .as_ref()
        .and_then(|p| p.tier(&tier_name))
        .cloned()
    else {
        return Ok(idle);
    };
    let now = ctx.shared.clock.now();
    let value = serde_json::to_value(d.as_ref()).map_err(|e| Failed(e.to_string()))?;
    let view = rollout::deployment_view(&value);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace);
    let releases_api = Api::<Release>::namespaced(ctx.client.clone(), &namespace);
    let releases = releases_api
        .list(&ListParams::default().labels(&format!("{RELEASE_DEPLOYMENT}={name}")))
        .await
        .map_err(failed(format_args!(
            "listing the Releases of {namespace}/{name}"
        )))?
        .items;
    let canary_name = format!("{name}{CANARY_SUFFIX}");
    let canary = deployments
        .get_opt(&canary_name)
        .await
        .map_err(failed(format_args!("reading {namespace}/{canary_name}")))?;
    let canary_value = canary
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Failed(e.to_string()))?;
    let canary_view = canary_value.as_ref().map(rollout::canary_view);

    let op = Op {
        ctx: &ctx,
        index: &index,
        tier: &tier,
        team: &team,
        deployment: &d,
        value: &value,
        deployments: &deployments,
        releases: &releases_api,
        now,
        related: Mutex::new(None),
        release_count: releases.len(),
    };

    let progress = match &view.progress {
        Some(Ok(p)) => p.clone(),
        Some(Err(_)) | None => {
            if view.progress.is_none() {
                op.ledger_without_canary(&view.template_revision, &releases)
                    .await?;
            }
            let step = rollout::next(&rollout::Input {
                deployment: &view,
                canary: canary_view.as_ref(),
                release: None,
                health: &Health::Unknown {
                    reason: String::new(),
                },
                canary_spec: &tier.canary,
                check_due: false,
                now,
            });
            op.execute(step, None, &view).await?;
            // Nothing runs on a timer here: the next template change, canary event or
            // leadership change brings it back.
            return Ok(Action::await_change());
        }
    };

    // The Release this canary reports to: the newest of its revision, else the running one.
    let release = newest(
        releases
            .iter()
            .filter(|r| r.spec.revision == progress.revision),
    )
    .or_else(|| {
        newest(
            releases
                .iter()
                .filter(|r| phase(r) == ReleasePhase::Progressing),
        )
    });
    let release_view = release.map(|r| ReleaseView {
        name: r.name_any(),
        revision: r.spec.revision.clone(),
        phase: phase(r),
        failed_checks: r.status.as_ref().map_or(0, |s| s.failed_checks),
    });
    let exhausted_at_start = release
        .and_then(|r| r.spec.remaining_at_start)
        .is_some_and(|r| tier.band_for(r) == BandLookup::Exhausted);
    let labels: BTreeMap<String, String> = d.labels().clone();
    let health = rollout::health(
        &index,
        &tier,
        &team,
        &namespace,
        &labels,
        exhausted_at_start,
        now,
    );
    let check_due = release_view.as_ref().is_none_or(|r| {
        ctx.last_failure
            .lock()
            .expect("not poisoned")
            .get(&r.name)
            .is_none_or(|at| now.duration_since(*at).as_secs() >= ctx.interval.as_secs() as i64)
    });
    let step = rollout::next(&rollout::Input {
        deployment: &view,
        canary: canary_view.as_ref(),
        release: release_view.as_ref(),
        health: &health,
        canary_spec: &tier.canary,
        check_due,
        now,
    });
    tracing::debug!(%namespace, deployment = %name, ?step, "rollout step");
    if let Some(r) = release {
        *op.related.lock().expect("not poisoned") = Some(r.object_ref(&()));
        op.track_release(r, &step, &health, &progress).await?;
    }
    let again = matches!(
        step,
        Step::Idle | Step::Wait { .. } | Step::Hold { .. } | Step::Invalid { .. }
    );
    op.execute(step, release, &view).await?;
    Ok(if again {
        idle
    } else {
        Action::requeue(Duration::from_millis(200))
    })
}

fn phase(r: &Release) -> ReleasePhase {
    r.status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(ReleasePhase::Progressing)
}

fn newest<'a>(releases: impl Iterator<Item = &'a Release>) -> Option<&'a Release> {
    releases.max_by_key(|r| (r.creation_timestamp(), generation_of(r)))
}

/// The generation suffix of a Release name (`web-1a2b3c4d-7` → 7): orders Releases
/// created within the same second.
fn generation_of(r: &Release) -> i64 {
    r.name_any()
        .rsplit('-')
        .next()
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

struct Op<'a> {
    ctx: &'a Ctx,
    index: &'a Index,
    tier: &'a Tier,
    team: &'a str,
    deployment: &'a Deployment,
    value: &'a Value,
    deployments: &'a Api<Deployment>,
    releases: &'a Api<Release>,
    now: Timestamp,
    /// The Release the Events are about (their `related` object): without it the event
    /// recorder would fold the next rollout's "CanaryStarted" into the last one's series.
    related: Mutex<Option<k8s_openapi::api::core::v1::ObjectReference>>,
    /// How many Releases the Deployment had when this look began (prune only past the limit).
    release_count: usize,
}

impl Op<'_> {
    fn key(&self) -> ObjectKey {
        ObjectKey::new(
            self.deployment.namespace().unwrap_or_default(),
            self.deployment.name_any(),
        )
    }

    fn team_remaining(&self) -> Option<f64> {
        self.index
            .budgets
            .teams
            .get(&(self.team.to_owned(), self.tier.name.clone()))
            .and_then(|a| a.remaining)
    }

    fn enforcement(&self) -> Enforcement {
        self.index.enforcement(&self.key().namespace, self.tier)
    }

    /// A managed Deployment without a canary: the template it runs now is a release when
    /// no Release has that revision yet and it is not a rollback to a promoted one.
    async fn ledger_without_canary(
        &self,
        revision: &str,
        releases: &[Release],
    ) -> Result<(), Failed> {
        if newest(releases.iter()).is_some_and(|r| r.spec.revision == revision) {
            return Ok(());
        }
        let history = crate::decision::history(self.value);
        let earlier = releases.iter().any(|r| {
            r.spec.revision == revision
                && matches!(
                    phase(r),
                    ReleasePhase::Promoted | ReleasePhase::Direct | ReleasePhase::Observed
                )
        });
        if earlier || history.iter().any(|h| h == revision) {
            return Ok(()); // a rollback
        }
        if releases.is_empty()
            && self
                .deployment
                .creation_timestamp()
                .is_some_and(|c| c.0 < self.ctx.started)
            && self.deployment.metadata.generation.unwrap_or(1) <= 1
        {
            return Ok(()); // there before budgetgate, never changed since
        }
        let remaining = self.team_remaining();
        let band = remaining.and_then(|r| match self.tier.band_for(r) {
            BandLookup::Band(_, b) => Some(b.name.clone()),
            BandLookup::Exhausted => None,
        });
        let (phase, reason) = match self.enforcement() {
            Enforcement::Dryrun => (
                ReleasePhase::Observed,
                observed_reason(self.tier, remaining),
            ),
            mode => (
                ReleasePhase::Direct,
                format!("applied directly ({} namespace, no canary)", mode.as_str()),
            ),
        };
        self.open_release(revision, None, band, remaining, phase, Some(reason))
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

    async fn open_release(
        &self,
        revision: &str,
        plan: Option<crate::api::Plan>,
        band: Option<String>,
        remaining: Option<f64>,
        phase: ReleasePhase,
        reason: Option<String>,
    ) -> Result<Release, Failed> {
        let key = self.key();
        let name = rollout::release_name(
            &key.name,
            revision,
            self.deployment.metadata.generation.unwrap_or(0),
        );
        let exception = self.active_exception();
        let mut release = Release::new(
            &name,
            ReleaseSpec {
                deployment: key.name.clone(),
                revision: revision.to_owned(),
                plan,
                band,
                remaining_at_start: remaining,
                exception,
            },
        );
        release.metadata.namespace = Some(key.namespace.clone());
        release.metadata.labels = Some(BTreeMap::from([(
            RELEASE_DEPLOYMENT.to_owned(),
            key.name.clone(),
        )]));
        release.metadata.owner_references =
            self.deployment.controller_owner_ref(&()).map(|mut o| {
                o.controller = Some(false);
                vec![o]
            });
        let created = match self.releases.create(&PostParams::default(), &release).await {
            Ok(r) => r,
            Err(kube::Error::Api(e)) if e.code == 409 => self
                .releases
                .get(&name)
                .await
                .map_err(failed(format_args!("reading Release {name}")))?,
            Err(e) => return Err(Failed(format!("creating Release {name}: {e}"))),
        };
        let terminal = !matches!(phase, ReleasePhase::Progressing);
        let status = ReleaseStatus {
            phase: Some(phase),
            reason,
            completed_at: terminal.then(|| time(self.now)),
            ..ReleaseStatus::default()
        };
        self.release_status(&name, &status).await?;
        if terminal {
            self.count(phase);
        }
        if self.release_count >= LEDGER_LIMIT {
            self.prune().await;
        }
        *self.related.lock().expect("not poisoned") = Some(created.object_ref(&()));
        Ok(created)
    }

    fn active_exception(&self) -> Option<String> {
        let key = self.key();
        let labels = self.deployment.labels();
        self.index
            .exceptions
            .iter()
            .filter(|(k, spec)| {
                k.namespace == key.namespace
                    && spec.expires_at.0 > self.now
                    && crate::selector::matches(&spec.selector, labels)
            })
            .map(|(k, _)| k.name.clone())
            .next()
    }

    /// Keeps the newest [`LEDGER_LIMIT`] Releases of the Deployment.
    async fn prune(&self) {
        let key = self.key();
        let Ok(list) = self
            .releases
            .list(&ListParams::default().labels(&format!("{RELEASE_DEPLOYMENT}={}", key.name)))
            .await
        else {
            return;
        };
        let mut items = list.items;
        if items.len() <= LEDGER_LIMIT {
            return;
        }
        items.sort_by_key(|r| (r.creation_timestamp(), generation_of(r)));
        let excess = items.len() - LEDGER_LIMIT;
        for r in items
            .iter()
            .filter(|r| phase(r) != ReleasePhase::Progressing)
            .take(excess)
        {
            let _ = self
                .releases
                .delete(&r.name_any(), &DeleteParams::default())
                .await;
        }
    }

    async fn release_status(&self, name: &str, status: &ReleaseStatus) -> Result<(), Failed> {
        let patch = json!({"status": status});
        self.releases
            .patch_status(name, &merge_params(), &Patch::Merge(&patch))
            .await
            .map_err(failed(format_args!("writing the status of Release {name}")))?;
        Ok(())
    }

    /// Keeps `maxBurn` and the `MetricsUnavailable` condition of the running Release current.
    async fn track_release(
        &self,
        release: &Release,
        step: &Step,
        health: &Health,
        progress: &rollout::Progress,
    ) -> Result<(), Failed> {
        if phase(release) != ReleasePhase::Progressing || progress.stage == Stage::Promoting {
            return Ok(());
        }
        let status = release.status.clone().unwrap_or_default();
        let mut patch = serde_json::Map::new();
        if let Some(burn) = health.burn()
            && status.max_burn.is_none_or(|m| burn > m)
        {
            patch.insert("maxBurn".into(), json!(round(burn)));
        }
        let holding = matches!(step, Step::Hold { .. });
        let was = status
            .conditions
            .iter()
            .find(|c| c.type_ == "MetricsUnavailable")
            .map(|c| c.status == "True");
        if was != Some(holding) && (holding || was.is_some()) {
            let (reason, message) = match step {
                Step::Hold { reason } => ("MetricsUnavailable", reason.clone()),
                _ => ("MetricsAvailable", "budget signals are current".to_owned()),
            };
            patch.insert(
                "conditions".into(),
                json!([{
                    "type": "MetricsUnavailable",
                    "status": if holding { "True" } else { "False" },
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": time(self.now),
                }]),
            );
            if holding {
                self.event(
                    EventType::Warning,
                    "MetricsUnavailable",
                    format!("holding the canary at its stage: {message}"),
                )
                .await;
            }
        }
        if patch.is_empty() {
            return Ok(());
        }
        let name = release.name_any();
        self.releases
            .patch_status(
                &name,
                &merge_params(),
                &Patch::Merge(&json!({"status": patch})),
            )
            .await
            .map_err(failed(format_args!("writing the status of Release {name}")))?;
        Ok(())
    }

    async fn execute(
        &self,
        step: Step,
        release: Option<&Release>,
        view: &rollout::DeploymentView,
    ) -> Result<(), Failed> {
        let key = self.key();
        let progress = match &view.progress {
            Some(Ok(p)) => Some(p),
            _ => None,
        };
        match step {
            Step::Idle | Step::Wait { .. } | Step::Hold { .. } => Ok(()),
            Step::Invalid { reason } => {
                tracing::warn!(deployment = %key, %reason, "cannot read the canary annotations; leaving the Deployment alone");
                Ok(())
            }
            Step::RemoveCanary => self.delete_canary().await,
            Step::OpenRelease {
                revision,
                supersedes,
            } => {
                let p = progress.expect("a canary in progress");
                if let Some(old) = supersedes {
                    self.finish(
                        Some(&old),
                        ReleasePhase::Superseded,
                        format!("superseded by revision {revision}"),
                        None,
                    )
                    .await?;
                    self.event(
                        EventType::Normal,
                        "Superseded",
                        format!("release {old} superseded by revision {revision}; the canary restarts at stage 0"),
                    )
                    .await;
                }
                let remaining = self.team_remaining();
                self.open_release(
                    &revision,
                    Some(p.plan.clone()),
                    Some(p.band.clone()),
                    remaining,
                    ReleasePhase::Progressing,
                    None,
                )
                .await?;
                self.event(
                    EventType::Normal,
                    "CanaryStarted",
                    format!(
                        "revision {revision}: canary plan {} every {} (band {}, team {} {} remaining)",
                        p.plan.steps_annotation(),
                        p.plan.pause,
                        p.band,
                        self.team,
                        remaining.map_or("unknown".into(), crate::decision::text_pct)
                    ),
                )
                .await;
                Ok(())
            }
            Step::StartStage { stage } => {
                self.annotate(json!({ keys::STAGE: stage.to_string(), keys::STAGE_STARTED_AT: self.now.to_string() }), None)
                    .await
            }
            Step::SyncCanary {
                create,
                revision,
                replicas,
                weight,
            } => {
                let object = rollout::canary_object(self.value, &revision, replicas);
                let name = format!("{}{CANARY_SUFFIX}", key.name);
                self.deployments
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&object),
                    )
                    .await
                    .map_err(failed(format_args!("applying {}/{name}", key.namespace)))?;
                let stage = match progress.map(|p| &p.stage) {
                    Some(Stage::Canary(s)) => *s,
                    _ => 0,
                };
                self.set_stage_metric(stage as i64 + 1);
                if let Some(r) = release {
                    self.release_status(
                        &r.name_any(),
                        &ReleaseStatus {
                            stage: Some(stage as u32),
                            weight: Some(weight.round() as u32),
                            stage_started_at: progress
                                .and_then(|p| p.stage_started_at)
                                .map(time),
                            ..ReleaseStatus::default()
                        },
                    )
                    .await?;
                }
                self.event(
                    EventType::Normal,
                    if create { "CanaryCreated" } else { "CanaryScaled" },
                    format!(
                        "stage {stage}: {name} runs revision {revision} with {replicas} pod(s) next to {} stable ({weight:.0}% of pods)",
                        view.replicas
                    ),
                )
                .await;
                Ok(())
            }
            Step::RecordCheck {
                failed_checks,
                reason,
            } => {
                let r = release.expect("a Release");
                let name = r.name_any();
                let since = r.status.as_ref().and_then(|s| s.failing_since.clone());
                let patch = if failed_checks == 0 {
                    self.ctx.last_failure.lock().expect("not poisoned").remove(&name);
                    json!({"status": {"failedChecks": null, "failingSince": null}})
                } else {
                    self.ctx
                        .last_failure
                        .lock()
                        .expect("not poisoned")
                        .insert(name.clone(), self.now);
                    self.event(
                        EventType::Warning,
                        "CanaryUnhealthy",
                        format!(
                            "check {failed_checks} of {} failed: {reason}",
                            self.tier.canary.consecutive_failures
                        ),
                    )
                    .await;
                    json!({"status": {"failedChecks": failed_checks,
                        "failingSince": since.unwrap_or_else(|| time(self.now))}})
                };
                self.releases
                    .patch_status(&name, &merge_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(failed(format_args!("writing the status of Release {name}")))?;
                Ok(())
            }
            Step::Advance {
                stage,
                weight,
                manual,
            } => {
                self.annotate(
                    json!({ keys::STAGE: stage.to_string(), keys::STAGE_STARTED_AT: self.now.to_string() }),
                    manual.then_some(()),
                )
                .await?;
                let replicas = rollout::canary_replicas(view.replicas, weight);
                self.event(
                    EventType::Normal,
                    "StageAdvanced",
                    format!(
                        "stage {stage}: {weight}% ({replicas} canary pod(s) next to {} stable){}",
                        view.replicas,
                        if manual { ", resumed by hand" } else { "; the previous stage held healthy for its pause" }
                    ),
                )
                .await;
                Ok(())
            }
            Step::Promote { manual } => {
                let patch = json!({
                    "metadata": {"annotations": {
                        keys::STAGE: rollout::PROMOTING,
                        keys::STAGE_STARTED_AT: self.now.to_string(),
                        rollout::ACTION: null,
                    }},
                    "spec": {"paused": false},
                });
                self.patch_deployment(&patch).await?;
                if let Some(r) = release {
                    let steps = progress.map_or(0, |p| p.plan.steps.len());
                    self.release_status(
                        &r.name_any(),
                        &ReleaseStatus {
                            stage: Some(steps.saturating_sub(1) as u32),
                            weight: Some(100),
                            stage_started_at: Some(time(self.now)),
                            ..ReleaseStatus::default()
                        },
                    )
                    .await?;
                }
                self.event(
                    EventType::Normal,
                    "Promoting",
                    format!(
                        "{}: unpaused; the Deployment rolls out revision {}",
                        if manual { "promoted by hand" } else { "every stage held healthy" },
                        progress.map_or("", |p| p.revision.as_str())
                    ),
                )
                .await;
                Ok(())
            }
            Step::FinishPromotion => {
                let p = progress.expect("a canary in progress");
                self.delete_canary().await?;
                let history = rollout::push_history(&crate::decision::history(self.value), &p.revision);
                let patch = json!({"metadata": {"annotations": {
                    keys::PLAN: null, keys::PAUSE: null, keys::BAND: null, keys::STAGE: null,
                    keys::STAGE_STARTED_AT: null, keys::HISTORY: history,
                }}});
                self.patch_deployment(&patch).await?;
                let consumed = self.consumed(release);
                let reason = format!(
                    "promoted after {} stage(s) of plan {} every {}",
                    p.plan.steps.iter().filter(|w| **w < 100).count(),
                    p.plan.steps_annotation(),
                    p.plan.pause
                );
                let name = release.map(|r| r.name_any());
                self.finish(name.as_deref(), ReleasePhase::Promoted, reason, consumed)
                    .await?;
                self.event(
                    EventType::Normal,
                    "Promoted",
                    format!(
                        "revision {} promoted and rolled out; canary removed{}",
                        p.revision,
                        consumed.map_or(String::new(), |c| format!(
                            ", {} of the team's budget consumed during the release",
                            crate::decision::text_pct(c)
                        ))
                    ),
                )
                .await;
                Ok(())
            }
            Step::RollBack { reason, manual } => {
                self.roll_back(&reason, manual, release, progress).await
            }
        }
    }

    async fn roll_back(
        &self,
        reason: &str,
        manual: bool,
        release: Option<&Release>,
        progress: Option<&rollout::Progress>,
    ) -> Result<(), Failed> {
        let key = self.key();
        let revision = progress.map_or(String::new(), |p| p.revision.clone());
        let uid = self.deployment.uid().unwrap_or_default();
        let sets = Api::<ReplicaSet>::namespaced(self.ctx.client.clone(), &key.namespace)
            .list(&ListParams::default())
            .await
            .map_err(failed(format_args!(
                "listing the ReplicaSets of {}",
                key.namespace
            )))?;
        let owned: Vec<Value> = sets
            .items
            .iter()
            .filter(|rs| rs.owner_references().iter().any(|o| o.uid == uid))
            .filter_map(|rs| serde_json::to_value(rs).ok())
            .collect();
        let Some((stable, template)) = rollout::serving_template(&owned, &revision) else {
            // Nothing older to go back to: stop the canary, keep the Deployment paused.
            self.delete_canary().await?;
            let name = release.map(|r| r.name_any());
            let why =
                format!("{reason}; no earlier ReplicaSet to restore, the Deployment stays paused");
            return self
                .finish(name.as_deref(), ReleasePhase::Failed, why, None)
                .await;
        };
        let pointer = |k: &str| {
            format!(
                "/metadata/annotations/{}",
                k.replace('~', "~0").replace('/', "~1")
            )
        };
        let annotations = self.deployment.annotations();
        let mut ops = vec![
            json!({"op": "replace", "path": "/spec/template", "value": template}),
            json!({"op": "add", "path": "/spec/paused", "value": false}),
            json!({"op": "add", "path": pointer(keys::REVISION), "value": stable}),
            json!({"op": "add", "path": pointer(keys::ROLLED_BACK_REVISION), "value": revision}),
        ];
        for k in [
            keys::PLAN,
            keys::PAUSE,
            keys::BAND,
            keys::STAGE,
            keys::STAGE_STARTED_AT,
            rollout::ACTION,
        ] {
            if annotations.contains_key(k) {
                ops.push(json!({"op": "remove", "path": pointer(k)}));
            }
        }
        let patch: json_patch::Patch =
            serde_json::from_value(Value::Array(ops)).map_err(|e| Failed(e.to_string()))?;
        self.deployments
            .patch(
                &key.name,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(failed(format_args!("rolling back {key}")))?;
        self.delete_canary().await?;
        let consumed = self.consumed(release);
        if let Some(r) = release {
            let since = r
                .status
                .as_ref()
                .and_then(|s| s.failing_since.as_ref())
                .map(|t| t.0);
            if let Some(since) = since {
                let seconds = self.now.duration_since(since).as_secs_f64().max(0.0);
                self.ctx.shared.metrics.rollback_seconds.observe(seconds);
            }
            self.ctx
                .last_failure
                .lock()
                .expect("not poisoned")
                .remove(&r.name_any());
        }
        let name = release.map(|r| r.name_any());
        self.finish(
            name.as_deref(),
            ReleasePhase::RolledBack,
            reason.to_owned(),
            consumed,
        )
        .await?;
        self.event(
            EventType::Warning,
            "RolledBack",
            format!(
                "revision {revision} rolled back to {stable}{}: {reason}",
                if manual { " by hand" } else { "" }
            ),
        )
        .await;
        Ok(())
    }

    /// Closes Release `name` (when there is one) in a final `phase`, clears its failed
    /// checks, counts the outcome and drops the stage gauge.
    async fn finish(
        &self,
        name: Option<&str>,
        phase: ReleasePhase,
        reason: String,
        consumed: Option<f64>,
    ) -> Result<(), Failed> {
        if let Some(name) = name {
            let status = ReleaseStatus {
                phase: Some(phase),
                budget_consumed: consumed,
                reason: Some(reason),
                completed_at: Some(time(self.now)),
                ..ReleaseStatus::default()
            };
            let mut patch = json!({ "status": status });
            patch["status"]["failedChecks"] = Value::Null;
            self.releases
                .patch_status(name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(failed(format_args!("writing the status of Release {name}")))?;
        }
        self.count(phase);
        if phase != ReleasePhase::Superseded {
            self.remove_stage_metric();
        }
        Ok(())
    }

    /// Team budget spent since the release started (never negative).
    fn consumed(&self, release: Option<&Release>) -> Option<f64> {
        let start = release?.spec.remaining_at_start?;
        let now = self.team_remaining()?;
        Some(round((start - now).max(0.0)))
    }

    async fn delete_canary(&self) -> Result<(), Failed> {
        let key = self.key();
        let name = format!("{}{CANARY_SUFFIX}", key.name);
        match self
            .deployments
            .delete(&name, &DeleteParams::foreground())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(Failed(format!("deleting {}/{name}: {e}", key.namespace))),
        }
    }

    /// Sets canary annotations on the Deployment (and clears a handled manual action).
    async fn annotate(
        &self,
        mut annotations: Value,
        clear_action: Option<()>,
    ) -> Result<(), Failed> {
        if clear_action.is_some()
            && let Some(a) = annotations.as_object_mut()
        {
            a.insert(rollout::ACTION.into(), Value::Null);
        }
        self.patch_deployment(&json!({"metadata": {"annotations": annotations}}))
            .await
    }

    async fn patch_deployment(&self, patch: &Value) -> Result<(), Failed> {
        let key = self.key();
        self.deployments
            .patch(&key.name, &merge_params(), &Patch::Merge(patch))
            .await
            .map_err(failed(format_args!("updating {key}")))?;
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

    fn set_stage_metric(&self, stage: i64) {
        let key = self.key();
        self.ctx
            .shared
            .metrics
            .rollout_stage
            .get_or_create(&DeploymentLabels {
                namespace: key.namespace,
                deployment: key.name,
            })
            .set(stage);
    }

    fn remove_stage_metric(&self) {
        let key = self.key();
        self.ctx
            .shared
            .metrics
            .rollout_stage
            .remove(&DeploymentLabels {
                namespace: key.namespace,
                deployment: key.name,
            });
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        let reference = self.deployment.object_ref(&());
        tracing::info!(deployment = %self.key(), reason, "{note}");
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Rollout".into(),
            secondary: self.related.lock().expect("not poisoned").clone(),
        };
        if let Err(e) = self.ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(deployment = %self.key(), error = %e, "could not record an event");
        }
    }
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// What an enforcing tier would have done with a rollout in a dry-run namespace.
fn observed_reason(tier: &Tier, remaining: Option<f64>) -> String {
    match remaining.map(|r| (r, tier.band_for(r))) {
        None => "dry-run: no budget data; enforcement would have followed onStale".into(),
        Some((r, BandLookup::Exhausted)) => format!(
            "dry-run: enforce would have denied it: the error budget is exhausted ({} remaining)",
            crate::decision::text_pct(r)
        ),
        Some((r, BandLookup::Band(_, band))) => format!(
            "dry-run: enforce would have let it through in band {} ({} remaining; canary plan {} every {})",
            band.name,
            crate::decision::text_pct(r),
            band.plan.steps_annotation(),
            band.plan.pause
        ),
    }
}
