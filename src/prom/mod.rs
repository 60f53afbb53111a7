//! Prometheus as the source of SLO counts (DESIGN §4, §8), and the rules budgetgate
//! generates for it.
//!
//! - [`query`]: which counts each SLO needs and the PromQL that reads them, batched so the
//!   number of requests grows with the number of distinct windows, not of SLOs. Pure.
//! - [`parse`]: answers back into per-SLO counts and [`crate::index::SloSignals`]. Pure.
//! - [`rules`]: recording rules and burn-rate alerts (`budgetgate rules`). Pure.
//! - [`client`]: the only I/O: HTTP to Prometheus with timeouts, retries and backoff.
//!
//! It hands `SloSignals` to `index::evaluate_budgets` and touches neither the index nor the
//! decision; writing budgets to the cluster is the controller's job.

pub mod client;
pub mod parse;
pub mod query;
pub mod rules;

pub use client::{Evaluation, PromConfig, PromError, evaluate, evaluate_blocking};
