//! budgetgate: error budgets decide how fast each team may ship.
//!
//! Pure core, no I/O: [`api`] (resource shapes), [`budget`] (arithmetic), [`policy`]
//! (tiers, bands, plans), [`decision`] (change classification and the admission answer),
//! [`index`] (the state the decision reads), [`publish`] (the statuses the controller
//! writes), [`rollout`] (the canary state machine), [`scoreboard`]'s views and HTML,
//! [`snapshot`], [`status`], [`report`] (the planning review), [`selector`], and [`prom`]'s
//! query building and parsing.
//!
//! Thin I/O shells: [`load`] (file mode), [`source`] (file polling and cluster watches),
//! [`prom`]'s client (Prometheus),
//! [`listener`] (accepting connections within limits, for every server),
//! [`webhook`] (the TLS server), [`controller`] (budget evaluation, status writes and
//! canaries), the scoreboard's HTTP server ([`scoreboard::http`]),
//! [`certs`], and [`cli`].
#![forbid(unsafe_code)]

pub mod api;
pub mod budget;
pub mod certs;
pub mod cli;
pub mod clock;
pub mod controller;
pub mod decision;
pub mod index;
pub mod listener;
pub mod load;
pub mod policy;
pub mod prom;
pub mod publish;
pub mod report;
pub mod rollout;
pub mod scoreboard;
pub mod selector;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod table;
pub mod webhook;
