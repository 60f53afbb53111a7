//! Prometheus as the source of SLO counts (DESIGN §4, §8), and the rules budgetgate
//! generates for it.
//!
//! - [`query`]: which counts each SLO needs and the PromQL that reads them, batched so the
//!   number of requests grows with the number of distinct windows, not of SLOs; and the one
//!   query of a canary check, canary and stable counts of every SLO at once. Pure.
//! - [`parse`]: answers back into per-SLO counts and [`crate::index::SloSignals`], and a
//!   canary check's answer into per-SLO track counts. Pure.
//! - [`rules`]: recording rules and burn-rate alerts (`budgetgate rules`). Pure.
//! - [`client`]: the only I/O: HTTP to Prometheus with timeouts, retries and backoff, for
//!   budget evaluations and canary checks.
//!
//! It hands `SloSignals` to `index::evaluate_budgets` and touches neither the index nor the
//! decision; writing budgets to the cluster is the controller's job.

pub mod client;
pub mod parse;
pub mod query;
pub mod rules;

pub use client::{
    Evaluation, PromConfig, PromError, TrackReading, evaluate, evaluate_blocking,
    read_cluster_split, read_tracks,
};
