//! budgetgate: error budgets decide how fast each team may ship.
//!
//! Pure core: [`api`] (resource shapes), [`budget`] (arithmetic), [`policy`] (tiers,
//! bands, plans), [`decision`] (change classification and the admission answer),
//! [`index`] (the state the decision reads). Thin I/O shells: [`load`] (file mode),
//! [`prom`]'s client (Prometheus) and the CLI in the binary.
#![forbid(unsafe_code)]

pub mod api;
pub mod budget;
pub mod cli;
pub mod decision;
pub mod index;
pub mod load;
pub mod policy;
pub mod prom;
pub mod selector;
pub mod snapshot;
pub mod status;
pub mod table;
