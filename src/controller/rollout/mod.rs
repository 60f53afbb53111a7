//! The rollout controller (DESIGN §7): for every managed Deployment it gathers the inputs
//! of the pure [`crate::rollout::next`] — the Deployment, `<name>-canary`, the Release
//! ledger, the whole-service floor and, while a canary serves, one Prometheus query of the
//! canary's and the stable pods' own traffic ([`tracks`]) — and carries the one next action
//! out ([`apply`]). Only the lease holder acts.
//!
//! Errors are [`RolloutError`]: every variant labels `budgetgate_reconcile_errors_total`.
//! A write the apiserver keeps refusing is retried every interval; its error is kept per
//! Release, written on the Release and into one Event series (a count, not a line per
//! interval), and counts against `progressDeadline` in the state machine.

mod apply;
mod op;
mod queue;
mod releases;
#[cfg(test)]
mod tests;
mod tracks;
mod traffic;

use crate::api::{Release, Timestamp, keys};
use crate::index::Index;
use crate::policy::Tier;
use crate::rollout::{self, CanaryState, DeploymentView, ReleaseView, Stage, analysis, ledger};
use crate::webhook::Shared;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use tracks::TrackReader;

/// Label on every Release naming its Deployment (for listing a Deployment's ledger).
pub const RELEASE_DEPLOYMENT: &str = "budgetgate.dev/deployment";
/// Releases kept per Deployment; older finished ones are deleted.
pub const LEDGER_LIMIT: usize = 20;

/// Why a reconcile failed. The variant names label `budgetgate_reconcile_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Reading an object or list failed.
    #[error("reading {what}: {}", refusal(.source))]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The apiserver refused a write (a create, patch or delete).
    #[error("{what}: {}", refusal(.source))]
    Write {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// A uid precondition failed: the object under that name is not the one judged.
    #[error(
        "{what}: the object changed identity (uid precondition failed): {}",
        refusal(.source)
    )]
    Conflict {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// An object could not be turned into a request body.
    #[error("encoding {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The apiserver's refusal in its own words (`message (code reason)`): kube's rendering
/// adds the debug form of the whole `Status`, the message twice, which the Release reason
/// and the Event notes carry (an Event note over 1 kB is refused).
fn refusal(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

impl RolloutError {
    /// The metric label of the variant.
    pub fn label(&self) -> &'static str {
        match self {
            RolloutError::Read { .. } => "read",
            RolloutError::Write { .. } => "write",
            RolloutError::Conflict { .. } => "conflict",
            RolloutError::Encode { .. } => "encode",
        }
    }

    /// A write error of `what`: a failed uid precondition (409 with "UID" or a failed JSON
    /// patch test, 422) is a `Conflict`.
    pub fn write(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RolloutError {
        let what = what.into();
        move |source| match &source {
            kube::Error::Api(e)
                if (e.code == 409 && e.message.contains("UID"))
                    || (e.code == 422 && e.message.contains("test")) =>
            {
                RolloutError::Conflict { what, source }
            }
            _ => RolloutError::Write { what, source },
        }
    }

    pub fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RolloutError {
        let what = what.into();
        move |source| RolloutError::Read { what, source }
    }
}

pub(crate) struct Ctx {
    pub client: Client,
    pub shared: Arc<Shared>,
    pub leader: tokio::sync::watch::Receiver<bool>,
    pub interval: Duration,
    pub recorder: Recorder,
    pub tracks: Option<TrackReader>,
    /// Per Release: when its last failed check was counted (failures count once per
    /// interval), and the last write error while it keeps failing.
    pub memory: Mutex<BTreeMap<String, Memory>>,
    /// Deployments created before this start that have no Release yet are not given one
    /// (installing budgetgate is not a release of everything).
    pub started: Timestamp,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Memory {
    pub last_failure: Option<Timestamp>,
    pub last_error: Option<String>,
}

impl Ctx {
    pub fn new(
        client: Client,
        shared: Arc<Shared>,
        leader: tokio::sync::watch::Receiver<bool>,
        interval: Duration,
        instance: Option<String>,
        tracks: Option<TrackReader>,
    ) -> Ctx {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "budgetgate".into(),
                instance,
            },
        );
        Ctx {
            started: shared.clock.now(),
            client,
            shared,
            leader,
            interval,
            recorder,
            tracks,
            memory: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn memory(&self, release: &str) -> Memory {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(release)
            .cloned()
            .unwrap_or_default()
    }

    pub fn remember(&self, release: &str, change: impl FnOnce(&mut Memory)) {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        change(memory.entry(release.to_owned()).or_default());
    }

    pub fn forget(&self, release: &str) {
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(release);
    }
}

/// Runs until `shutdown`. `tracks` reads the canary's own traffic (None without
/// Prometheus: canaries are then judged on whole-service burn, and their Releases say so).
pub async fn run(
    client: Client,
    shared: Arc<Shared>,
    leader: tokio::sync::watch::Receiver<bool>,
    interval: Duration,
    instance: Option<String>,
    tracks: Option<TrackReader>,
    shutdown: crate::source::Shutdown,
) {
    let ctx = Arc::new(Ctx::new(
        client.clone(),
        shared,
        leader,
        interval,
        instance,
        tracks,
    ));
    tracing::info!(interval = ?interval, "rollout controller started");
    let deployments = Api::<Deployment>::all(client);
    Controller::new(deployments.clone(), watcher::Config::default())
        .owns(deployments, watcher::Config::default().labels(keys::TRACK))
        .graceful_shutdown_on(crate::source::stopped(shutdown))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(d: Arc<Deployment>, error: &RolloutError, ctx: Arc<Ctx>) -> Action {
    ctx.shared
        .metrics
        .reconcile_errors
        .get_or_create(&crate::webhook::metrics::ErrorLabel {
            error: error.label(),
        })
        .inc();
    tracing::debug!(namespace = d.namespace().unwrap_or_default(), deployment = %d.name_any(), %error, "rollout step failed; retrying");
    Action::requeue(ctx.interval)
}

/// One look at one Deployment.
#[tracing::instrument(skip_all, fields(namespace = d.namespace().unwrap_or_default(), deployment = %d.name_any(), revision))]
pub(crate) async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, RolloutError> {
    let idle = Action::requeue(ctx.interval);
    if !*ctx.leader.borrow() || ctx.shared.not_ready().is_some() {
        return Ok(idle);
    }
    // A canary (a Deployment another Deployment controls) is driven through its owner.
    if rollout::objects::controlling_deployment(&d.metadata).is_some() {
        return Ok(Action::await_change());
    }
    let namespace = d.namespace().unwrap_or_default();
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
    let gathered = gather(&ctx, &d, &index, &tier, &team).await?;
    let op = op::Op::new(&ctx, &index, &tier, &team, &d, &gathered);
    // A queued rollout waits its turn (DESIGN §7.10); every look re-judges it.
    if gathered.view.progress.is_none()
        && let Some(since) = queue::queued_since(&d)
    {
        op.queued(since).await?;
        return Ok(idle);
    }
    if let Some(Ok(p)) = &gathered.view.progress {
        tracing::Span::current().record("revision", p.revision.as_str());
    }
    let step = rollout::next(&rollout::Input {
        deployment: &gathered.view,
        canary: &gathered.canary,
        release: gathered.release.as_ref(),
        verdict: &gathered.check.verdict,
        canary_spec: &tier.canary,
        check_due: gathered.check_due,
        last_error: gathered.last_error.as_deref(),
        routing: gathered.routing.as_ref().map(|r| &r.view),
        now: gathered.now,
    });
    tracing::debug!(?step, "rollout step");
    if gathered.view.progress.is_none() {
        op.ledger_without_canary().await?;
    }
    op.track_release(&step).await?;
    let again = matches!(
        step,
        rollout::Action::Idle
            | rollout::Action::Wait { .. }
            | rollout::Action::Hold { .. }
            | rollout::Action::Invalid { .. }
    );
    let idle_without_canary = gathered.view.progress.is_none();
    op.apply(step).await?;
    Ok(if idle_without_canary {
        // Nothing runs on a timer without a canary: the next template change, canary
        // event or leadership change brings it back.
        Action::await_change()
    } else if again {
        idle
    } else {
        Action::requeue(Duration::from_millis(200))
    })
}

/// Everything one look reads.
pub(crate) struct Gathered {
    pub now: Timestamp,
    pub view: DeploymentView,
    pub canary: CanaryState,
    pub releases: Vec<ReleaseView>,
    pub release: Option<ReleaseView>,
    pub check: analysis::Check,
    pub check_due: bool,
    pub last_error: Option<String>,
    /// The HTTPRoute routing, when the Deployment asks for one.
    pub routing: Option<traffic::Found>,
}

async fn gather(
    ctx: &Ctx,
    d: &Deployment,
    index: &Index,
    tier: &Tier,
    team: &str,
) -> Result<Gathered, RolloutError> {
    let namespace = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let now = ctx.shared.clock.now();
    let view = rollout::objects::deployment_view(d);
    let releases: Vec<ReleaseView> = Api::<Release>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default().labels(&format!("{RELEASE_DEPLOYMENT}={name}")))
        .await
        .map_err(RolloutError::read(format!(
            "the Releases of {namespace}/{name}"
        )))?
        .items
        .iter()
        .map(ReleaseView::of)
        .collect();
    let canary_name = rollout::objects::canary_name(&name);
    let canary = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&canary_name)
        .await
        .map_err(RolloutError::read(format!("{namespace}/{canary_name}")))?;
    let canary = rollout::objects::canary_state(canary.as_ref(), &view.uid);
    let progress = match &view.progress {
        Some(Ok(p)) => Some(p),
        _ => None,
    };
    let release = progress.and_then(|p| ledger::current(&releases, &p.revision).cloned());
    // The stable ReplicaSet matters only while a canary stage runs.
    let canary_revision = progress
        .filter(|p| matches!(p.stage, Stage::Canary(_)))
        .map(|p| p.revision.as_str());
    let routing = traffic::gather(&ctx.client, d, canary_revision).await?;
    let memory = release
        .as_ref()
        .map(|r| ctx.memory(&r.name))
        .unwrap_or_default();
    // Kept in memory, and on the Release so a new leader knows it too.
    let last_error = memory.last_error.clone().or_else(|| {
        release
            .as_ref()
            .and_then(|r| r.last_error().map(str::to_owned))
    });
    let check_due = memory
        .last_failure
        .is_none_or(|at| now.duration_since(at).as_secs() >= ctx.interval.as_secs() as i64);
    // Judge only a canary that serves at its stage: nothing else is read from Prometheus.
    let serving = progress.is_some_and(|p| matches!(p.stage, Stage::Canary(_)))
        && canary.owned().is_some_and(|c| c.available > 0);
    let check = match progress {
        Some(p) if serving => {
            let readings = match &ctx.tracks {
                Some(reader) => {
                    reader
                        .read(index, tier, &namespace, d.labels(), p.stage_started_at, now)
                        .await
                }
                None => tracks::without_prometheus(index, &namespace, d.labels()),
            };
            let exhausted_at_start = ledger::exhausted_at_start(tier, release.as_ref());
            // Named in a global view: the floor is this cluster's whole service.
            let cluster = ctx.tracks.as_ref().and_then(|t| t.cluster.as_deref());
            let floor = rollout::floor(
                index,
                tier,
                team,
                &namespace,
                d.labels(),
                exhausted_at_start,
                now,
                cluster.map(|c| (c, readings.as_slice())),
            );
            analysis::judge(&readings, &floor, &tier.canary)
        }
        _ => analysis::Check {
            verdict: analysis::Verdict::Pass,
            slos: Vec::new(),
            whole_service: Vec::new(),
            burn: None,
        },
    };
    Ok(Gathered {
        now,
        view,
        canary,
        releases,
        release,
        check,
        check_due,
        last_error,
        routing,
    })
}
