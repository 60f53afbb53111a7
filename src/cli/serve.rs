//! Wiring of the long-running commands: `webhook`, `controller` and `serve` share one
//! runtime setup, one state source, one metrics listener and one shutdown signal.

use super::{ControllerOpts, ProcessArgs, ServeArgs, TlsArgs, WebhookArgs};
use crate::clock::Clock;
use crate::controller::{AnySource, Controller, Layered, PrometheusSource, SnapshotFile};
use crate::source::{self, Shutdown};
use crate::webhook::metrics::SourceLabel;
use crate::webhook::{Shared, server, tls};
use crate::{load, scoreboard};
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

pub enum Role {
    Webhook(WebhookArgs),
    Controller(super::ControllerArgs),
    Serve(ServeArgs),
}

impl Role {
    fn process(&self) -> &ProcessArgs {
        match self {
            Role::Webhook(a) => &a.process,
            Role::Controller(a) => &a.process,
            Role::Serve(a) => &a.process,
        }
    }
}

/// Runs until SIGTERM or SIGINT. Exit 2 when it cannot start.
pub fn run(role: Role) -> ExitCode {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = role.process().workers {
        runtime.worker_threads(workers.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(role)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(role: Role) -> anyhow::Result<()> {
    let process = role.process();
    let clock = match &process.now {
        Some(text) => Clock::Fixed(load::parse_now(text).map_err(anyhow::Error::msg)?),
        None => Clock::System,
    };
    let bare = matches!(&role, Role::Webhook(a) if a.tls.bare_endpoint)
        || matches!(&role, Role::Serve(a) if a.tls.bare_endpoint);
    let review_limits = match &role {
        Role::Webhook(a) => a.tls.review_limits(),
        Role::Serve(a) => a.tls.review_limits(),
        Role::Controller(_) => crate::webhook::intake::ReviewLimits::default(),
    };
    let shared = Shared::with_limits(bare, clock, review_limits);
    let listeners = &process.listeners;
    let small_limits = listeners.limits(listeners.metrics_max_connections);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_listen = process.metrics_listen;
    let mut tasks = Vec::new();

    // State: files or the cluster.
    let client = match &role {
        Role::Webhook(WebhookArgs {
            policy: Some(policy),
            budgets: Some(budgets),
            tls,
            ..
        }) => {
            start_files(policy, budgets, tls, &shared, &stop_rx)?;
            None
        }
        Role::Webhook(WebhookArgs { kubeconfig, .. })
        | Role::Controller(super::ControllerArgs { kubeconfig, .. })
        | Role::Serve(ServeArgs { kubeconfig, .. }) => {
            let client = source::cluster::client(kubeconfig.as_deref())
                .await
                .context("cannot reach the cluster (set --kubeconfig, or give the webhook --policy and --budgets for file mode)")?;
            tasks.push(tokio::spawn(source::cluster::watch(
                client.clone(),
                shared.clone(),
                stop_rx.clone(),
            )));
            tracing::info!("cluster mode: watching the apiserver");
            Some(client)
        }
    };

    // The controller, leader-elected.
    let mut leadership = None;
    if let (
        Role::Controller(super::ControllerArgs { controller, .. })
        | Role::Serve(ServeArgs { controller, .. }),
        Some(client),
    ) = (&role, &client)
    {
        leadership = Some(start_controller(client.clone(), controller, &shared, &stop_rx).await?);
    }

    let metrics_listener = tokio::net::TcpListener::bind(metrics_listen)
        .await
        .with_context(|| format!("cannot listen on {metrics_listen}"))?;
    let metrics_addr = metrics_listener.local_addr()?;
    tasks.push(tokio::spawn(server::serve_metrics(
        metrics_listener,
        small_limits.clone(),
        shared.clone(),
        source::stopped(stop_rx.clone()),
    )));

    // The scoreboard (controller and serve; every replica, leader or not).
    if let Role::Controller(super::ControllerArgs { controller, .. })
    | Role::Serve(ServeArgs { controller, .. }) = &role
        && let super::Listen(Some(listen)) = controller.dashboard_listen
    {
        let prometheus = controller
            .source
            .prometheus
            .as_ref()
            .map(|url| controller.prometheus_options.config(url));
        let scoreboard = scoreboard::http::Scoreboard::new(shared.clone(), prometheus)
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (--dashboard-listen)"))?;
        tracing::info!(listen = %listener.local_addr()?, "serving the scoreboard");
        tasks.push(tokio::spawn(scoreboard::http::serve(
            listener,
            small_limits.clone(),
            Arc::new(scoreboard),
            source::stopped(stop_rx.clone()),
        )));
    }

    // The admission server.
    let tls_args = match &role {
        Role::Webhook(a) => Some(&a.tls),
        Role::Serve(a) => Some(&a.tls),
        Role::Controller(_) => None,
    };
    let admission = match tls_args {
        Some(tls_args) => {
            let cert = Arc::new(tls::ReloadingCert::load(tls::CertFiles {
                cert: tls_args.tls_cert_file.clone(),
                key: tls_args.tls_key_file.clone(),
            })?);
            let config = Arc::new(tls::server_config(cert.clone())?);
            watch_certificate(
                cert,
                reload_interval(tls_args),
                shared.clone(),
                stop_rx.clone(),
            );
            let listener = tokio::net::TcpListener::bind(tls_args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", tls_args.listen))?;
            tracing::info!(listen = %listener.local_addr()?, metrics = %metrics_addr, "serving admission reviews");
            Some(tokio::spawn(server::serve_tls(
                listener,
                config,
                listeners.limits(tls_args.max_connections),
                shared.clone(),
                source::stopped(stop_rx.clone()),
            )))
        }
        None => {
            tracing::info!(metrics = %metrics_addr, "serving metrics");
            None
        }
    };

    // The controller's work and the admission server run until the stop signal: one that
    // ends before it has panicked, and a process that kept running without it would hold the
    // Lease (or keep answering from budgets no one updates) with no one the wiser. Stop
    // instead, so the Lease goes to a standby and the kubelet restarts this one.
    let mut essential: Vec<(&str, &tokio::task::JoinHandle<()>)> = Vec::new();
    if let Some(l) = &leadership {
        essential.extend(l.work.iter().map(|t| ("the controller", t)));
    }
    if let Some(a) = &admission {
        essential.push(("the admission server", a));
    }
    let ended = tokio::select! {
        () = wait_for_signal() => None,
        which = first_finished(&essential) => Some(essential[which].0),
    };
    drop(essential);
    match ended {
        None => tracing::info!("stop requested"),
        Some(which) => tracing::error!(
            "{which} stopped unexpectedly (see the panic above); stopping so that a standby or a restart takes over"
        ),
    }
    let _ = stop_tx.send(true);
    if let Some(leadership) = leadership {
        leadership.stop().await;
    }
    if let Some(admission) = admission {
        let _ = admission.await;
    }
    for task in tasks {
        task.abort();
    }
    match ended {
        None => Ok(()),
        Some(which) => anyhow::bail!("{which} stopped unexpectedly"),
    }
}

/// The index of the first of `tasks` to finish (never, when there are none), looked at once
/// a second: a task that should run until the stop signal has ended.
async fn first_finished(tasks: &[(&str, &tokio::task::JoinHandle<()>)]) -> usize {
    loop {
        if let Some(i) = tasks.iter().position(|(_, t)| t.is_finished()) {
            return i;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn reload_interval(tls: &TlsArgs) -> Duration {
    Duration::from_secs(tls.reload_interval.seconds())
}

fn start_files(
    policy: &Path,
    budgets: &Path,
    tls: &TlsArgs,
    shared: &Arc<Shared>,
    stop: &Shutdown,
) -> anyhow::Result<()> {
    // Fail fast on a bad start: there is no last good state to keep.
    let mut files = source::file::FileSource::new(policy.to_owned(), budgets.to_owned());
    let index = files.reload()?.context("no state loaded")?;
    shared.publish(index);
    tokio::spawn(source::file::watch(
        files,
        shared.clone(),
        reload_interval(tls),
        stop.clone(),
    ));
    tracing::info!(policy = %policy.display(), budgets = %budgets.display(), "file mode");
    Ok(())
}

/// Certificates: re-read every interval; a bad new pair keeps the old one.
fn watch_certificate(
    cert: Arc<tls::ReloadingCert>,
    interval: Duration,
    shared: Arc<Shared>,
    stop: Shutdown,
) {
    tokio::spawn(async move {
        let stop = source::stopped(stop);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = &mut stop => return,
            }
            match cert.reload() {
                Ok(true) => tracing::info!("serving a new TLS certificate"),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "certificate reload failed; still serving the previous one");
                    shared
                        .metrics
                        .reload_errors
                        .get_or_create(&SourceLabel {
                            source: "certificate",
                        })
                        .inc();
                }
            }
        }
    });
}

async fn start_controller(
    client: kube::Client,
    opts: &ControllerOpts,
    shared: &Arc<Shared>,
    stop: &Shutdown,
) -> anyhow::Result<Leadership> {
    let identity = opts.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let election = crate::controller::lease::Election::start(
        client.clone(),
        crate::controller::lease::LeaseParams {
            namespace: opts.lease_namespace.clone(),
            name: opts.lease_name.clone(),
            identity: identity.clone(),
            duration: opts.lease_duration.seconds().max(2),
            poll: STANDBY_POLL,
        },
    )
    .await?;
    let leader = election.leader.clone();
    let tracks =
        opts.source
            .prometheus
            .as_ref()
            .map(|url| crate::controller::rollout::TrackReader {
                config: opts.prometheus_options.config(url),
                cluster: opts.cluster_name.clone(),
            });
    let rollouts = tokio::spawn(
        crate::controller::rollout::run(
            client.clone(),
            shared.clone(),
            leader.clone(),
            Duration::from_secs(opts.interval.seconds()),
            Some(identity.clone()),
            tracks,
            stop.clone(),
        )
        .instrument(tracing::info_span!("rollout_controller")),
    );
    let mut controller = Controller::new(
        client,
        shared.clone(),
        match (&opts.source.prometheus, &opts.source.budgets) {
            (Some(url), Some(file)) => AnySource::Layered(Layered {
                snapshot: SnapshotFile(file.clone()),
                prometheus: PrometheusSource(opts.prometheus_options.config(url)),
            }),
            (Some(url), None) => {
                AnySource::Prometheus(PrometheusSource(opts.prometheus_options.config(url)))
            }
            (None, Some(file)) => AnySource::Snapshot(SnapshotFile(file.clone())),
            (None, None) => anyhow::bail!("--prometheus or --budgets is required"),
        },
        Duration::from_secs(opts.interval.seconds()),
        leader,
        Some(identity),
    );
    // Named in a global view: one more query per evaluation, each team's events by cluster.
    if let (Some(_), Some(url)) = (&opts.cluster_name, &opts.source.prometheus) {
        controller.cluster_split = Some(opts.prometheus_options.config(url));
    }
    Ok(Leadership {
        election,
        work: vec![rollouts, tokio::spawn(controller.run(stop.clone()))],
    })
}

/// How often a standby looks at the Lease: the handover after a graceful stop of the leader.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// The leader-elected work and its election.
struct Leadership {
    election: crate::controller::lease::Election,
    work: Vec<tokio::task::JoinHandle<()>>,
}

impl Leadership {
    /// After the stop signal: lets the work finish what it is writing (bounded), then gives
    /// the Lease up so a standby takes over at once rather than after the lease duration.
    async fn stop(self) {
        for task in self.work {
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                tracing::warn!("the controller did not stop within 10 s");
            }
        }
        self.election.release(Duration::from_secs(5)).await;
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_found_among_those_that_run_on() {
        let forever = tokio::spawn(std::future::pending::<()>());
        let panics = tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            panic!("an evaluation went wrong");
        });
        let tasks = [("runs", &forever), ("panics", &panics)];
        assert_eq!(first_finished(&tasks).await, 1);
        assert!(panics.await.unwrap_err().is_panic());
        assert!(!forever.is_finished());
        forever.abort();
    }
}
