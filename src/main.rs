#![forbid(unsafe_code)]

use clap::Parser;

// Admission reviews are parsed into many small allocations; mimalloc serves them faster
// than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // One process-wide TLS provider for the webhook server and the kube client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Installed as kubectl-budgetgate, the binary is the kubectl plugin.
    let invoked_as = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if invoked_as.starts_with("kubectl-budgetgate") {
        return budgetgate::cli::plugin::main();
    }
    budgetgate::cli::run(budgetgate::cli::Cli::parse())
}
