//! `budgetgate report`: the planning review from a cluster or from files.

use super::{BadInput, ClusterArgs, clock, parse_duration};
use crate::api::{self, BudgetException, Release, TeamBudget};
use crate::load;
use crate::report::{self, ReportInput, render};
use clap::ValueEnum;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const AFTER_HELP: &str = "Examples:\n  \
    budgetgate report --kubeconfig ~/.kube/config --since 90d > review.md\n  \
    budgetgate report --cluster --since 30d -o csv\n  \
    budgetgate report --kubeconfig ~/.kube/config --prometheus http://127.0.0.1:9090\n  \
    budgetgate report --policy manifests/samples --since 90d --now 2026-11-29T12:00:00Z -o json\n\n\
    Per team and tier over the range ending at --now (default: the clock): the budget now, releases\n\
    by outcome, rollbacks, change failure rate, deployments per week, budget consumed by releases,\n\
    incidents with their overage, and exception use; per-tier and platform totals. Computed from\n\
    Releases, TeamBudgets (their incidents), BudgetExceptions and the Namespaces' team labels. The\n\
    Markdown ends with the definition of every number. With --prometheus it adds each team's bad and\n\
    total events over the range and its burn over the range (event-weighted). Exit 2 on bad input,\n\
    an unreachable cluster or an unreadable Prometheus.";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Markdown,
    Csv,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// File mode: ReliabilityPolicy, Namespaces, Releases, TeamBudgets, BudgetExceptions (a
    /// YAML file or a directory of them).
    #[arg(long, env = "BUDGETGATE_POLICY", required_unless_present_any = ["kubeconfig", "cluster"],
          conflicts_with_all = ["kubeconfig", "cluster"])]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Length of the range, ending now (Prometheus duration syntax: 30d, 12w, 2160h).
    #[arg(long, env = "BUDGETGATE_REPORT_SINCE", default_value = "90d", value_parser = parse_duration)]
    pub since: api::Duration,
    /// End of the range, RFC 3339 (default: the clock).
    #[arg(long, env = "BUDGETGATE_NOW")]
    pub now: Option<String>,
    /// Also read each SLO's bad and total events over the range from this Prometheus
    /// (e.g. http://prometheus:9090), summed per team.
    #[arg(long, env = "BUDGETGATE_PROMETHEUS")]
    pub prometheus: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = ReportFormat::Markdown)]
    pub output: ReportFormat,
}

/// The objects the report reads.
struct Ledger {
    index: crate::index::Index,
    releases: Vec<Release>,
    team_budgets: Vec<TeamBudget>,
    exceptions: Vec<BudgetException>,
}

pub fn run(args: &ReportArgs) -> Result<bool, BadInput> {
    let now = clock(args.now.as_ref())?;
    if args.since.seconds() == 0 {
        return Err(BadInput("--since must be longer than 0s".into()));
    }
    let ledger = match &args.policy {
        Some(path) => from_files(path)?,
        None => {
            let listing = args.cluster.load()?;
            let index = listing.index();
            if index.policy.is_none() {
                tracing::warn!(
                    "no valid ReliabilityPolicy in the cluster: namespaces without a tier label \
                     have no tier and their releases are not counted"
                );
            }
            Ledger {
                index,
                releases: listing.releases,
                team_budgets: listing.team_budgets,
                exceptions: listing.exceptions,
            }
        }
    };
    let events = match &args.prometheus {
        Some(url) => Some(range_events(&ledger.index, url, &args.since, now)?),
        None => None,
    };
    let report = report::build(&ReportInput {
        releases: &ledger.releases,
        team_budgets: &ledger.team_budgets,
        exceptions: &ledger.exceptions,
        index: &ledger.index,
        since: &args.since,
        now,
        events: events.as_deref(),
    });
    let text = match args.output {
        ReportFormat::Markdown => render::markdown(&report),
        ReportFormat::Csv => render::csv(&report),
        ReportFormat::Json => render::json(&report),
    };
    super::emit(&text);
    Ok(true)
}

/// Every SLO's counts over the range: the evaluator's own batched queries, with each SLO's
/// period set to the range.
fn range_events(
    index: &crate::index::Index,
    url: &str,
    since: &api::Duration,
    now: api::Timestamp,
) -> Result<Vec<crate::index::SloSignals>, BadInput> {
    let mut index = index.clone();
    for spec in index.slos.values_mut() {
        spec.window = Some(api::Window::Rolling(since.clone()));
    }
    let evaluation =
        crate::prom::evaluate_blocking(&index, now, &crate::prom::PromConfig::new(url))
            .map_err(|e| BadInput(e.to_string()))?;
    for note in &evaluation.notes {
        tracing::warn!("{note}");
    }
    tracing::info!(
        prometheus = url,
        slos = evaluation.slos.len(),
        requests = evaluation.requests,
        "read the SLOs' events over the range"
    );
    Ok(evaluation.slos)
}

/// File mode: the policy's index, plus the whole Release, TeamBudget and BudgetException
/// objects of the same files.
fn from_files(path: &Path) -> Result<Ledger, BadInput> {
    let (index, _notes) = load::load_policy(path)?;
    let mut ledger = Ledger {
        index,
        releases: Vec::new(),
        team_budgets: Vec::new(),
        exceptions: Vec::new(),
    };
    let ours = format!("{}/{}", api::GROUP, api::VERSION);
    for file in load::yaml_files(path)? {
        for (number, value) in load::documents(&file)? {
            if value.get("apiVersion").and_then(Value::as_str) != Some(ours.as_str()) {
                continue;
            }
            let fail = |e: serde_json::Error| {
                BadInput(format!("{}: document {number}: {e}", file.display()))
            };
            match value.get("kind").and_then(Value::as_str) {
                Some("Release") => ledger
                    .releases
                    .push(serde_json::from_value(value).map_err(fail)?),
                Some("TeamBudget") => ledger
                    .team_budgets
                    .push(serde_json::from_value(value).map_err(fail)?),
                Some("BudgetException") => ledger
                    .exceptions
                    .push(serde_json::from_value(value).map_err(fail)?),
                _ => {}
            }
        }
    }
    Ok(ledger)
}
