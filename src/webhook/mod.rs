//! `budgetgate webhook`: the TLS admission server (hyper + rustls). Owns the listener,
//! TLS, routing, metrics and graceful shutdown. Answers from the in-memory [`Index`] that
//! a state source keeps current; it never calls Prometheus or the apiserver while
//! answering.

pub mod http;
pub mod intake;
pub mod metrics;
pub mod server;
pub mod tls;

use crate::index::Index;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the handlers read and the state sources write.
pub struct Shared {
    pub index: ArcSwap<Index>,
    ready: AtomicBool,
    pub metrics: metrics::Metrics,
    /// Serve `POST /bare` (reads the body, returns a fixed answer): the floor of this
    /// server stack, for load benchmarks only.
    pub bare_endpoint: bool,
    pub clock: crate::clock::Clock,
    /// In-flight reviews and the byte budget of their bodies.
    pub intake: intake::Intake,
}

impl Shared {
    pub fn new(bare_endpoint: bool, clock: crate::clock::Clock) -> Arc<Self> {
        Self::with_limits(bare_endpoint, clock, intake::ReviewLimits::default())
    }

    pub fn with_limits(
        bare_endpoint: bool,
        clock: crate::clock::Clock,
        limits: intake::ReviewLimits,
    ) -> Arc<Self> {
        Arc::new(Shared {
            index: ArcSwap::from_pointee(Index::default()),
            ready: AtomicBool::new(false),
            metrics: metrics::Metrics::default(),
            bare_endpoint,
            clock,
            intake: intake::Intake::new(limits),
        })
    }

    /// Publishes a complete new state and marks the server ready.
    pub fn publish(&self, index: Index) {
        self.index.store(Arc::new(index));
        self.ready.store(true, Ordering::Release);
    }

    /// Why the server is not ready, or `None`.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.ready.load(Ordering::Acquire) {
            return Some("policy and budget state not loaded yet");
        }
        None
    }

    /// Refreshes the state-age gauge (called when metrics are scraped).
    pub fn observe_state_age(&self) {
        let now = self.clock.now();
        let index = self.index.load();
        let age = index
            .budgets
            .evaluated_at
            .map_or(f64::NAN, |at| now.duration_since(at).as_secs_f64());
        self.metrics.state_age.set(age);
        // Queued rollouts per team, from the Release ledger: every managed team, 0 when its
        // queue is empty.
        let mut queued: std::collections::BTreeMap<&str, i64> = index
            .namespaces
            .values()
            .filter_map(|m| m.team.as_deref())
            .map(|t| (t, 0))
            .collect();
        for (k, r) in &index.releases {
            if r.phase == Some(crate::api::ReleasePhase::Queued)
                && let Some(meta) = index.namespaces.get(&k.namespace)
                && let Some(team) = meta.team.as_deref()
            {
                *queued.entry(team).or_default() += 1;
            }
        }
        for (team, n) in queued {
            self.metrics
                .queued_rollouts
                .get_or_create(&metrics::TeamLabel {
                    team: team.to_owned(),
                })
                .set(n);
        }
    }
}
