//! Cluster mode for the one-shot commands (`status`, `report`): one list of every kind,
//! no watch.

use super::BadInput;
use crate::source::cluster::{self, Listing};
use std::path::PathBuf;

/// Where a one-shot command reads the cluster from.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Cluster mode: read the cluster through this kubeconfig.
    #[arg(long, env = "BUDGETGATE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Cluster mode with the in-cluster configuration (outside a cluster: $KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long, env = "BUDGETGATE_CLUSTER", conflicts_with = "kubeconfig")]
    pub cluster: bool,
}

impl ClusterArgs {
    pub fn enabled(&self) -> bool {
        self.kubeconfig.is_some() || self.cluster
    }

    /// Lists every kind once. An unreachable cluster or a refused list is bad input.
    pub fn load(&self) -> Result<Listing, BadInput> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BadInput(format!("cannot start the runtime: {e}")))?;
        let kubeconfig = self.kubeconfig.as_deref();
        let where_ = kubeconfig.map_or_else(
            || "the cluster".to_owned(),
            |p| format!("the cluster of {}", p.display()),
        );
        runtime.block_on(async {
            let client = cluster::client(kubeconfig)
                .await
                .map_err(|e| BadInput(format!("cannot connect to {where_}: {e}")))?;
            let listing = Listing::list(&client)
                .await
                .map_err(|e| BadInput(format!("cannot read {where_}: {e}")))?;
            tracing::info!(
                namespaces = listing.namespaces.len(),
                slos = listing.slos.len(),
                team_budgets = listing.team_budgets.len(),
                releases = listing.releases.len(),
                "listed the cluster"
            );
            Ok(listing)
        })
    }
}
