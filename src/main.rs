#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    budgetgate::cli::run(budgetgate::cli::Cli::parse())
}
