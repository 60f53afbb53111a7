#![forbid(unsafe_code)]

use clap::Parser;

// Admission reviews are parsed into many small allocations; mimalloc serves them faster
// than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // One process-wide TLS provider for the webhook server and the kube client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    budgetgate::cli::run(budgetgate::cli::Cli::parse())
}
