//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager), with a handover
//! that does not wait for the lease to run out.
//!
//! kube-lease-manager acquires, renews and releases the Lease. Two things are added here:
//! - **Release on a graceful stop**: [`Election::release`] clears the holder (the controller's
//!   work is stopped first, so nothing is written after the release).
//! - **A standby that notices a release**: a manager that does not hold the Lease sleeps
//!   until the holder's lease would run out (up to the lease duration) and trusts its cached
//!   copy until then. A standby here asks again every `poll` with a fresh manager (two GETs
//!   of the Lease), so a released Lease is taken within about `poll`, not the lease duration.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Which Lease, and who this replica is in it.
#[derive(Clone, Debug)]
pub struct LeaseParams {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// Seconds a holder that stopped renewing keeps the Lease.
    pub duration: u64,
    /// How often a standby looks at the Lease again.
    pub poll: Duration,
}

/// A running election: `leader` says whether this replica holds the Lease now.
pub struct Election {
    pub leader: watch::Receiver<bool>,
    release: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Election {
    /// Joins the election; fails when the Lease cannot be read or created at all.
    pub async fn start(client: Client, params: LeaseParams) -> anyhow::Result<Election> {
        let manager = build(&client, &params).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot use the Lease {}/{}: {e}",
                params.namespace,
                params.name
            )
        })?;
        let (tx, leader) = watch::channel(false);
        let (release, released) = oneshot::channel();
        let task = tokio::spawn(run(client, params, manager, tx, released));
        Ok(Election {
            leader,
            release,
            task,
        })
    }

    /// Gives the Lease up (when held) and ends the election. Call after the work that the
    /// leadership guards has stopped. Bounded by `timeout`: an unreachable apiserver leaves
    /// the Lease to run out as before.
    pub async fn release(self, timeout: Duration) {
        let _ = self.release.send(());
        match tokio::time::timeout(timeout, self.task).await {
            Ok(_) => {}
            Err(_) => tracing::warn!(
                ?timeout,
                "the Lease was not released in time; a standby takes over when it runs out"
            ),
        }
    }
}

async fn build(client: &Client, params: &LeaseParams) -> kube_lease_manager::Result<LeaseManager> {
    LeaseManagerBuilder::new(client.clone(), &params.name)
        .with_namespace(&params.namespace)
        .with_identity(&params.identity)
        .with_duration(params.duration)
        .with_grace((params.duration / 3).max(1))
        .build()
        .await
}

async fn run(
    client: Client,
    params: LeaseParams,
    mut manager: LeaseManager,
    tx: watch::Sender<bool>,
    mut released: oneshot::Receiver<()>,
) {
    let backoff = Duration::from_secs(1);
    loop {
        let leading = *tx.borrow();
        if leading {
            // Holding: the manager renews before the lease runs out and says when it is lost.
            tokio::select! {
                changed = manager.changed() => match changed {
                    Ok(now) => set(&tx, &params, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the Lease; retrying");
                        tokio::time::sleep(backoff).await;
                    }
                },
                _ = &mut released => {
                    // Nothing the leadership guards runs any more: say so first, then let go.
                    set(&tx, &params, false);
                    match manager.release().await {
                        Ok(()) => tracing::info!(identity = %params.identity, "released the Lease"),
                        Err(e) => tracing::warn!(error = %e, "cannot release the Lease; it runs out after its duration"),
                    }
                    return;
                }
            }
        } else {
            tokio::select! {
                changed = tokio::time::timeout(params.poll, manager.changed()) => match changed {
                    Ok(Ok(now)) => set(&tx, &params, now),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot read the Lease; retrying");
                        tokio::time::sleep(backoff).await;
                    }
                    // Still held by another replica as far as the cached copy says: look again
                    // with a fresh manager, which reads the Lease (a released Lease is free now).
                    Err(_) => match build(&client, &params).await {
                        Ok(fresh) => manager = fresh,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the Lease; retrying");
                            tokio::time::sleep(backoff).await;
                        }
                    },
                },
                _ = &mut released => return,
            }
        }
    }
}

fn set(tx: &watch::Sender<bool>, params: &LeaseParams, leading: bool) {
    if tx.send_replace(leading) != leading {
        tracing::info!(identity = %params.identity, leading, "leadership changed");
    }
}
