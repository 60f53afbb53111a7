//! State sources: what keeps the webhook's index current. File mode polls `--policy` and
//! `--budgets`; cluster mode watches the apiserver. Each publishes complete, consistent
//! snapshots into [`crate::webhook::Shared`]; readers never wait on them.

pub mod cluster;
pub mod file;

/// A future that resolves when the process is asked to stop.
pub type Shutdown = tokio::sync::watch::Receiver<bool>;

/// Resolves once shutdown was requested.
pub async fn stopped(mut shutdown: Shutdown) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
