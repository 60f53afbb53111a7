//! Shared by the integration tests (and `benches/prom.rs`, which includes `prometheus.rs`).
pub mod prometheus;
