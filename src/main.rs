#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    // One process-wide TLS provider for the webhook server and the kube client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    budgetgate::cli::run(budgetgate::cli::Cli::parse())
}
