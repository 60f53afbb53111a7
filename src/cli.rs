//! The command line: argument parsing and the wiring of the offline commands. Exit codes:
//! 0 ok, 1 denied / falls short, 2 bad input.

use crate::api::Timestamp;
use crate::decision::{self, AdmissionRequest, Decision, Operation, parse_review};
use crate::index::{Index, ObjectKey};
use crate::load::{self, LoadError};
use crate::{api, status, table};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "budgetgate",
    version,
    about = "Error budgets decide how fast each team may ship on Kubernetes.",
    long_about = "budgetgate turns ServiceLevelObjectives into per-team error budgets and gates \
                  Deployment rollouts on them: healthy budgets ship as fast canaries, thin budgets \
                  as slow ones, spent budgets not at all (rollbacks and scaling always pass)."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "BUDGETGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Webhook {
    Validate,
    Mutate,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Answer an admission review, or judge Deployment manifests, offline.
    #[command(after_help = "Examples:\n  \
        budgetgate evaluate --policy manifests/samples --budgets manifests/samples/budgets.json \\\n      \
        --review manifests/samples/reviews/rollout-image-change.json --webhook mutate\n  \
        budgetgate evaluate --policy manifests/samples --budgets manifests/samples/budgets.json \\\n      \
        -f manifests/samples/deployments/\n\n\
        With --review it prints the AdmissionReview response the webhook would return; exit 1 when\n\
        it denies. With -f every Deployment is treated as a rollout (against the live copy when\n\
        --policy holds one) and a table of verdicts is printed; exit 1 when any would be denied under\n\
        enforce, so it works as a CI gate.")]
    Evaluate(EvaluateArgs),
    /// Show every team's and SLO's error budget.
    #[command(after_help = "Example:\n  \
        budgetgate status --policy manifests/samples --budgets manifests/samples/budgets.json -o table")]
    Status(StatusArgs),
    /// Print the CustomResourceDefinitions of the budgetgate.dev resources as YAML.
    #[command(
        after_help = "Example:\n  budgetgate crds > manifests/crds/crds.yaml\n  budgetgate crds | kubectl apply -f -"
    )]
    Crds,
}

#[derive(clap::Args, Debug)]
pub struct StateArgs {
    /// ReliabilityPolicy, Namespaces, SLOs, exceptions, Releases, ReplicaSets: a YAML file or a directory of them.
    #[arg(long, env = "BUDGETGATE_POLICY")]
    pub policy: PathBuf,
    /// BudgetSnapshot JSON file with the SLO counts.
    #[arg(long, env = "BUDGETGATE_BUDGETS")]
    pub budgets: PathBuf,
    /// Evaluate as of this RFC 3339 time instead of the clock.
    #[arg(long, env = "BUDGETGATE_NOW")]
    pub now: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// AdmissionReview JSON file (`-` for stdin).
    #[arg(
        long,
        conflicts_with = "filename",
        required_unless_present = "filename"
    )]
    pub review: Option<PathBuf>,
    /// Which webhook's answer to print for --review.
    #[arg(long, value_enum, default_value_t = Webhook::Validate)]
    pub webhook: Webhook,
    /// Deployment manifests (files or directories) to judge as rollouts.
    #[arg(short = 'f', long = "filename", num_args = 1..)]
    pub filename: Vec<PathBuf>,
    /// Namespace for manifests that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The requester the manifests are judged for.
    #[arg(long, default_value = "budgetgate-evaluate")]
    pub user: String,
    /// Output of -f.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// A failure of the command: bad input (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(String);

impl From<LoadError> for BadInput {
    fn from(e: LoadError) -> Self {
        BadInput(e.to_string())
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUDGETGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Plain => builder.without_time().with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Evaluate(args) => evaluate(&args),
        Command::Status(args) => status_cmd(&args),
        Command::Crds => crds().map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn now(state: &StateArgs) -> Result<Timestamp, BadInput> {
    match &state.now {
        Some(text) => load::parse_now(text).map_err(BadInput),
        None => Ok(Timestamp::now()),
    }
}

fn load_state(state: &StateArgs) -> Result<Index, BadInput> {
    let (index, notes) = load::load_state(&state.policy, &state.budgets)?;
    for note in notes {
        tracing::info!("{note}");
    }
    Ok(index)
}

fn print_json(value: &impl serde::Serialize) {
    // Serializing our own plain data cannot fail.
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Returns whether everything was allowed.
fn evaluate(args: &EvaluateArgs) -> Result<bool, BadInput> {
    let now = now(&args.state)?;
    let index = load_state(&args.state)?;
    if let Some(path) = &args.review {
        let bytes = read_input(path)?;
        let request =
            parse_review(&bytes).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        let decision = decision::decide(&request, &index, now)
            .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        log_decision(&decision);
        let response = match args.webhook {
            Webhook::Validate => decision.validate_response(),
            Webhook::Mutate => decision.mutate_response(),
        };
        let allowed = response.allowed;
        print_json(&response.into_review());
        return Ok(allowed);
    }
    let mut decisions = Vec::new();
    for path in &args.filename {
        for file in load::yaml_files(path)? {
            for (number, object) in load::documents(&file)? {
                if object.get("kind").and_then(Value::as_str) != Some("Deployment") {
                    continue;
                }
                let request = rollout_request(&object, &index, &args.namespace, &args.user)
                    .map_err(|e| BadInput(format!("{}: document {number}: {e}", file.display())))?;
                let decision = decision::decide(&request, &index, now)
                    .map_err(|e| BadInput(format!("{}: document {number}: {e}", file.display())))?;
                log_decision(&decision);
                decisions.push(decision);
            }
        }
    }
    if decisions.is_empty() {
        return Err(BadInput(
            "no Deployment found in the given manifests".into(),
        ));
    }
    match args.output {
        Output::Json => print_json(&decisions.iter().map(decision_json).collect::<Vec<_>>()),
        Output::Table => print!("{}", verdict_table(&decisions)),
    }
    Ok(decisions.iter().all(Decision::allowed))
}

fn read_input(path: &Path) -> Result<Vec<u8>, BadInput> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| BadInput(format!("stdin: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| BadInput(format!("{}: {e}", path.display())))
}

/// A manifest as a rollout: an UPDATE from the live copy in `--policy` when there is one,
/// otherwise from a copy of itself without a pod template (so it is judged as a rollout,
/// not as a creation).
fn rollout_request(
    object: &Value,
    index: &Index,
    namespace: &str,
    user: &str,
) -> Result<AdmissionRequest, String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("Deployment without metadata.name")?;
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(namespace)
        .to_owned();
    let old = index
        .deployments
        .get(&ObjectKey::new(&namespace, name))
        .cloned()
        .unwrap_or_else(|| {
            let mut old = object.clone();
            if let Some(spec) = old.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("template".into(), json!({}));
            }
            if let Some(annotations) = old
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                for key in api::keys::SYSTEM_ANNOTATIONS {
                    annotations.remove(key);
                }
            }
            old
        });
    Ok(AdmissionRequest {
        uid: format!("evaluate-{namespace}-{name}"),
        kind: decision::review::GroupVersionKind {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
        },
        name: name.to_owned(),
        namespace: Some(namespace),
        sub_resource: None,
        operation: Operation::Update,
        user_info: decision::review::UserInfo {
            username: user.to_owned(),
            groups: Vec::new(),
        },
        object: Some(object.clone()),
        old_object: Some(old),
        dry_run: Some(true),
    })
}

fn log_decision(d: &Decision) {
    tracing::debug!(
        namespace = %d.namespace,
        deployment = %d.name,
        team = d.team.as_deref().unwrap_or("-"),
        class = d.class.map_or("-", |c| c.as_str()),
        verdict = d.verdict(),
        reason = d.reason.as_str(),
        "admission decision"
    );
}

fn plan_text(d: &Decision) -> String {
    match (&d.canary, d.allowed()) {
        (Some(c), _) => format!("{} every {}", c.plan.steps_annotation(), c.plan.pause),
        (None, true) => "direct".into(),
        (None, false) => "-".into(),
    }
}

fn decision_json(d: &Decision) -> Value {
    json!({
        "deployment": format!("{}/{}", d.namespace, d.name),
        "team": d.team,
        "tier": d.tier,
        "class": d.class.map(|c| c.as_str()),
        "band": d.band,
        "remaining": d.remaining,
        "verdict": d.verdict(),
        "allowed": d.allowed(),
        "mode": d.mode.as_str(),
        "plan": d.canary.as_ref().map(|c| json!({"steps": c.plan.steps, "pause": c.plan.pause.as_str()})),
        "reason": d.reason.as_str(),
        "message": d.message,
        "warnings": d.warnings,
    })
}

fn verdict_table(decisions: &[Decision]) -> String {
    let mut rows = vec![[
        "DEPLOYMENT".to_owned(),
        "TEAM".into(),
        "BAND".into(),
        "VERDICT".into(),
        "PLAN".into(),
        "REASON".into(),
    ]];
    for d in decisions {
        let why = d
            .message
            .as_deref()
            .map(|m| m.split_once(": ").map_or(m, |(_, why)| why))
            .map(|m| m.split(". Still allowed").next().unwrap_or(m).to_owned())
            .or_else(|| d.warnings.first().cloned())
            .unwrap_or_else(|| d.reason.as_str().replace('_', " "));
        rows.push([
            format!("{}/{}", d.namespace, d.name),
            d.team.clone().unwrap_or_else(|| "-".into()),
            d.band.clone().unwrap_or_else(|| "-".into()),
            d.verdict().into(),
            plan_text(d),
            why,
        ]);
    }
    table::render(&rows)
}

fn status_cmd(args: &StatusArgs) -> Result<bool, BadInput> {
    let _ = now(&args.state)?;
    let index = load_state(&args.state)?;
    let report = status::report(&index);
    match args.output {
        Output::Json => print_json(&report),
        Output::Table => print!("{}", status::table(&report)),
    }
    Ok(true)
}

/// The CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> String {
    api::crds()
        .iter()
        .map(|crd| serde_yaml_ng::to_string(crd).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn crds() -> Result<(), BadInput> {
    print!("{}", crds_yaml());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
