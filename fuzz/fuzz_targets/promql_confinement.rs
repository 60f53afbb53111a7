//! SLO query confinement on any indicator (see `checks::promql_confinement`).
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses one of the shared checks
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::promql_confinement(data));
