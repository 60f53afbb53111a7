//! `kubectl budgetgate`: the kubectl plugin. The same binary, installed (or linked) as
//! `kubectl-budgetgate` on the PATH, where kubectl's plugin discovery finds it. It reads the
//! cluster through the user's kubeconfig (`--kubeconfig`, `--context`, `-n` as kubectl) and
//! answers from the same code as the webhook: `why` runs the webhook's `decide` on a
//! hypothetical rollout of the live Deployment.

use super::{BadInput, Output, emit, print_json};
use crate::api::{BudgetException, Duration, Release, ReleasePhase, keys};
use crate::decision::{self, Decision, Operation, review::AdmissionRequest};
use crate::source::cluster::Listing;
use clap::{Args, Parser, Subcommand};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Pod-template annotation of the hypothetical rollout `why` asks about (never written).
const PROBE: &str = "budgetgate.dev/why";
/// The requester `why` asks as: no one in `controllerUsers`.
const PROBE_USER: &str = "kubectl-budgetgate";

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-budgetgate",
    bin_name = "kubectl budgetgate",
    version,
    about = "budgetgate from kubectl: budgets, why a rollout would be refused, releases, manual canary actions, exceptions.",
    after_help = "Examples:\n  \
        kubectl budgetgate status payments\n  \
        kubectl budgetgate -n shop why checkout\n  \
        kubectl budgetgate -n shop releases checkout\n  \
        kubectl budgetgate -n shop promote checkout\n  \
        kubectl budgetgate -n shop exception create checkout --reason 'INC-4411 hotfix' \\\n      \
        --approved-by alice --expires 4h\n\n\
        Install: put the budgetgate binary on the PATH as kubectl-budgetgate (a copy or a link).\n\
        Exit codes: 0 ok, 1 denied (why) or refused (an action with no canary to act on), 2 bad\n\
        input or the cluster could not be read."
)]
pub struct PluginCli {
    /// The kubeconfig to use (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    context: Option<String>,
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Every team's budget (or one team's), as the controller last published it.
    Status {
        team: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// What the webhook would answer now for a rollout of this Deployment, and why.
    Why {
        deployment: String,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Rollouts waiting in their team's queue for the budget (every team's, or one's),
    /// in the order they start.
    Queue {
        team: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The release ledger of the namespace (or of one Deployment), oldest first.
    Releases {
        deployment: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Promote the running canary now (skips the remaining pauses, never the judgement).
    Promote { deployment: String },
    /// Roll the running canary back now.
    Abort { deployment: String },
    /// Advance the running canary to its next stage now (the health check still runs).
    Resume { deployment: String },
    /// BudgetExceptions (for holders of budgetgate-exception-approver).
    #[command(subcommand)]
    Exception(ExceptionCommand),
}

#[derive(Subcommand, Debug)]
enum ExceptionCommand {
    /// Let a Deployment ship despite its budget: an override, or with --offset an offset.
    Create(ExceptionArgs),
}

#[derive(Args, Debug)]
struct ExceptionArgs {
    deployment: String,
    /// Why (an incident, a ticket): shown in every decision it lets through.
    #[arg(long)]
    reason: String,
    /// Who approved it.
    #[arg(long)]
    approved_by: String,
    /// When it ends: a duration from now (`4h`, `1d`) or an RFC 3339 time.
    #[arg(long)]
    expires: String,
    /// An offset instead of an override: this budget fraction (0–1) is added to the
    /// remaining budget.
    #[arg(long)]
    offset: Option<f64>,
    /// Rollouts it may let through.
    #[arg(long)]
    max_rollouts: Option<u32>,
}

/// Runs the plugin with the process arguments.
pub fn main() -> ExitCode {
    let cli = PluginCli::parse();
    // Quiet unless asked: the plugin's errors are its own one-line messages.
    if std::env::var_os("BUDGETGATE_LOG").is_some() {
        super::init_logging(super::LogFormat::Plain);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: PluginCli) -> Result<bool, BadInput> {
    let (client, default_namespace) = connect(&cli).await?;
    let namespace = cli.namespace.clone().unwrap_or(default_namespace);
    let now = Timestamp::now();
    match cli.command {
        PluginCommand::Status { team, output } => {
            let listing = list(&client).await?;
            let mut report = crate::status::report(&listing.index());
            if let Some(team) = &team {
                report.teams.retain(|t| &t.team == team);
                report.platform.clear();
                if report.teams.is_empty() {
                    return Err(BadInput(format!(
                        "no budget for team {team:?} (kubectl get teambudgets lists the teams)"
                    )));
                }
            }
            match output {
                Output::Json => print_json(&report),
                Output::Table => emit(&crate::status::table(&report)),
            }
            Ok(true)
        }
        PluginCommand::Why { deployment, output } => {
            let live = get_deployment(&client, &namespace, &deployment).await?;
            let listing = list(&client).await?;
            let request = probe(&live, &namespace, &deployment, now);
            let d = decision::decide(&request, &listing.index(), now)
                .map_err(|e| BadInput(format!("deployment {namespace}/{deployment}: {e}")))?;
            match output {
                Output::Json => print_json(&super::decision_json(&d)),
                Output::Table => emit(&why_text(&d)),
            }
            Ok(d.allowed())
        }
        PluginCommand::Queue { team, output } => {
            let listing = list(&client).await?;
            let mut queued = decision::queue::queues(&listing.index());
            if let Some(team) = &team {
                queued.retain(|q| &q.team == team);
            }
            match output {
                Output::Json => print_json(&queued),
                Output::Table if queued.is_empty() => eprintln!(
                    "no queued rollouts{}",
                    team.map_or(String::new(), |t| format!(" for team {t}"))
                ),
                Output::Table => emit(&queue_table(&queued, now)),
            }
            Ok(true)
        }
        PluginCommand::Releases { deployment, output } => {
            let api = Api::<Release>::namespaced(client, &namespace);
            let mut params = ListParams::default();
            let selector = deployment
                .as_ref()
                .map(|d| format!("{}={d}", crate::controller::rollout::RELEASE_DEPLOYMENT));
            if let Some(s) = &selector {
                params = params.labels(s);
            }
            let mut releases = api
                .list(&params)
                .await
                .map_err(|e| BadInput(format!("cannot list the Releases of {namespace}: {e}")))?
                .items;
            releases.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
            match output {
                Output::Json => print_json(&releases),
                Output::Table if releases.is_empty() => {
                    eprintln!("no Releases in namespace {namespace}")
                }
                Output::Table => emit(&releases_table(&releases, now)),
            }
            Ok(true)
        }
        PluginCommand::Promote { deployment } => {
            act(&client, &namespace, &deployment, "promote").await
        }
        PluginCommand::Abort { deployment } => act(&client, &namespace, &deployment, "abort").await,
        PluginCommand::Resume { deployment } => {
            act(&client, &namespace, &deployment, "resume").await
        }
        PluginCommand::Exception(ExceptionCommand::Create(args)) => {
            let live = get_deployment(&client, &namespace, &args.deployment).await?;
            let expires = expires_at(&args.expires, now)?;
            let object = exception_object(&live, &args, expires)?;
            let created = Api::<BudgetException>::namespaced(client, &namespace)
                .create(&PostParams::default(), &object)
                .await
                .map_err(|e| {
                    BadInput(format!(
                        "cannot create the BudgetException: {}",
                        api_error(&e)
                    ))
                })?;
            emit(&format!(
                "budgetexception.budgetgate.dev/{} created: {} for deployment {namespace}/{}, expires {expires}\n",
                created.name_any(),
                created.spec.kind.as_str(),
                args.deployment
            ));
            Ok(true)
        }
    }
}

async fn connect(cli: &PluginCli) -> Result<(Client, String), BadInput> {
    let options = kube::config::KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| BadInput(format!("cannot read the kubeconfig: {e}")))?;
    let namespace = config.default_namespace.clone();
    let client =
        Client::try_from(config).map_err(|e| BadInput(format!("cannot build a client: {e}")))?;
    Ok((client, namespace))
}

async fn list(client: &Client) -> Result<Listing, BadInput> {
    Listing::list(client).await.map_err(|e| {
        BadInput(format!(
            "cannot read budgetgate's state: {} (status and why read policies, Namespaces, SLOs, TeamBudgets, BudgetExceptions, Releases and ReplicaSets across the cluster: the ClusterRole budgetgate-viewer plus list on namespaces and replicasets)",
            api_error(&e)
        ))
    })
}

async fn get_deployment(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Deployment, BadInput> {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| BadInput(format!("deployment {namespace}/{name}: {}", api_error(&e))))
}

fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => format!("cannot reach the cluster: {other}"),
    }
}

/// Sets `budgetgate.dev/action` on a Deployment whose canary is running.
async fn act(client: &Client, namespace: &str, name: &str, action: &str) -> Result<bool, BadInput> {
    let live = get_deployment(client, namespace, name).await?;
    if let Err(why) = can_act(&live, action) {
        eprintln!("deployment {namespace}/{name}: {why}");
        return Ok(false);
    }
    let patch = json!({"metadata": {"annotations": {keys::ACTION: action}}});
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| BadInput(format!("deployment {namespace}/{name}: {}", api_error(&e))))?;
    emit(&format!(
        "deployment.apps/{name}: {action} requested; budgetgate acts on its next look and records it on the Release with your name\n"
    ));
    Ok(true)
}

/// Whether `action` can apply to the Deployment: a canary must be running.
fn can_act(live: &Deployment, action: &str) -> Result<(), String> {
    let annotations = live.metadata.annotations.as_ref();
    let stage = annotations.and_then(|a| a.get(keys::STAGE));
    match stage.map(String::as_str) {
        None => Err(format!("no canary in progress; nothing to {action}")),
        Some(crate::rollout::PROMOTING) if action != "abort" => {
            Err(format!("already promoting; nothing to {action}"))
        }
        Some(_) => Ok(()),
    }
}

/// The UPDATE a rollout of the live Deployment would be: its pod template with one more
/// annotation, so a new revision that has never run.
fn probe(live: &Deployment, namespace: &str, name: &str, now: Timestamp) -> AdmissionRequest {
    let old = serde_json::to_value(live).unwrap_or(Value::Null);
    let mut new = old.clone();
    if let Some(template) = new
        .pointer_mut("/spec/template")
        .and_then(Value::as_object_mut)
    {
        let metadata = template.entry("metadata").or_insert_with(|| json!({}));
        if let Some(metadata) = metadata.as_object_mut() {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(PROBE.into(), Value::String(now.to_string()));
            }
        }
    }
    AdmissionRequest {
        uid: format!("why-{namespace}-{name}"),
        kind: decision::review::GroupVersionKind {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
        },
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        sub_resource: None,
        operation: Operation::Update,
        user_info: decision::review::UserInfo {
            username: PROBE_USER.into(),
            groups: Vec::new(),
        },
        object: Some(new.into()),
        old_object: Some(old.into()),
        dry_run: Some(true),
    }
}

/// `why`'s answer: the verdict, the plan, and the webhook's own message and warnings.
fn why_text(d: &Decision) -> String {
    let mut out = format!("deployment {}/{}", d.namespace, d.name);
    match (&d.team, &d.tier) {
        (Some(team), Some(tier)) => out.push_str(&format!(
            " (team {team}, tier {tier}, {} mode)\n",
            d.mode.as_str()
        )),
        _ => out.push_str(" (not managed by budgetgate)\n"),
    }
    let budget = match (&d.band, d.remaining) {
        (Some(band), Some(r)) => format!(" (band {band}, {} remaining)", decision::text_pct(r)),
        (None, Some(r)) => format!(" ({} remaining)", decision::text_pct(r)),
        _ => String::new(),
    };
    let verdict = if !d.allowed() {
        "DENIED".to_owned()
    } else if d.queued {
        format!("QUEUED: admitted paused; it starts when the budget allows{budget}")
    } else if let Some(c) = &d.canary {
        format!(
            "ALLOWED as a canary: {} every {}{budget}",
            c.plan.steps_annotation(),
            c.plan.pause
        )
    } else {
        format!("ALLOWED{budget}")
    };
    out.push_str(&format!("a rollout now: {verdict}\n"));
    if let Some(message) = &d.message {
        out.push_str(message);
        out.push('\n');
    }
    for w in &d.warnings {
        out.push_str(w);
        out.push('\n');
    }
    out
}

/// `--expires`: a duration from `now` or an RFC 3339 time, in the future.
fn expires_at(text: &str, now: Timestamp) -> Result<Timestamp, BadInput> {
    let at = match Duration::parse(text) {
        Ok(d) => now
            .checked_add(jiff::SignedDuration::from_secs(d.seconds() as i64))
            .map_err(|e| BadInput(format!("--expires {text}: {e}")))?,
        Err(_) => text.parse::<Timestamp>().map_err(|_| {
            BadInput(format!(
                "--expires {text:?}: neither a duration (4h, 1d) nor an RFC 3339 time"
            ))
        })?,
    };
    if at <= now {
        return Err(BadInput(format!(
            "--expires {text}: {at} is not in the future"
        )));
    }
    Ok(at)
}

/// The BudgetException selecting the Deployment by all of its labels.
fn exception_object(
    live: &Deployment,
    args: &ExceptionArgs,
    expires: Timestamp,
) -> Result<BudgetException, BadInput> {
    let name = live.name_any();
    let labels = live.metadata.labels.clone().unwrap_or_default();
    if labels.is_empty() {
        return Err(BadInput(format!(
            "deployment {name} has no labels: an exception selects Deployments by label; label it first"
        )));
    }
    if let Some(f) = args.offset
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(BadInput(format!(
            "--offset {f}: a budget fraction in (0, 1]"
        )));
    }
    let value = json!({
        "apiVersion": "budgetgate.dev/v1alpha1",
        "kind": "BudgetException",
        "metadata": {"generateName": format!("{name}-"), "namespace": live.namespace()},
        "spec": {
            "kind": if args.offset.is_some() { "offset" } else { "override" },
            "selector": {"matchLabels": labels},
            "extraBudget": args.offset,
            "reason": args.reason,
            "approvedBy": args.approved_by,
            "expiresAt": expires.to_string(),
            "maxRollouts": args.max_rollouts,
        },
    });
    serde_json::from_value(strip_nulls(value))
        .map_err(|e| BadInput(format!("building the BudgetException: {e}")))
}

fn strip_nulls(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
        for v in map.values_mut() {
            *v = strip_nulls(v.take());
        }
    }
    value
}

fn releases_table(releases: &[Release], now: Timestamp) -> String {
    let mut rows = vec![
        [
            "NAME",
            "DEPLOYMENT",
            "REVISION",
            "PHASE",
            "STAGE",
            "CONSUMED",
            "BY HAND",
            "AGE",
            "REASON",
        ]
        .map(str::to_owned),
    ];
    for r in releases {
        let status = r.status.clone().unwrap_or_default();
        let stage = match (status.stage, status.weight) {
            (Some(s), Some(w)) => format!("{s} ({w}%)"),
            _ => "-".into(),
        };
        let by_hand: Vec<String> = status
            .actions
            .iter()
            .map(|a| match &a.by {
                Some(by) => format!("{}@{} ({by})", a.action, a.stage),
                None => format!("{}@{}", a.action, a.stage),
            })
            .collect();
        rows.push([
            r.name_any(),
            r.spec.deployment.clone(),
            r.spec.revision.clone(),
            status.phase.map_or("-", ReleasePhase::as_str).to_owned(),
            stage,
            status
                .budget_consumed
                .map_or("-".into(), decision::text_pct),
            if by_hand.is_empty() {
                "-".into()
            } else {
                by_hand.join(", ")
            },
            r.creation_timestamp()
                .map_or("-".into(), |t| age(now.duration_since(t.0).as_secs())),
            status.reason.unwrap_or_default(),
        ]);
    }
    crate::table::render(&rows)
}

/// `queue`'s table: one row per queued rollout, in the order they start.
fn queue_table(queued: &[decision::queue::Queued], now: Timestamp) -> String {
    let mut rows = vec![
        [
            "TEAM",
            "TIER",
            "POSITION",
            "DEPLOYMENT",
            "REVISION",
            "WAITING",
            "REASON",
        ]
        .map(str::to_owned),
    ];
    for q in queued {
        rows.push([
            q.team.clone(),
            q.tier.clone(),
            q.position.to_string(),
            format!("{}/{}", q.namespace, q.deployment),
            q.revision.clone(),
            age(now.duration_since(q.queued_since).as_secs()),
            q.reason.clone().unwrap_or_default(),
        ]);
    }
    crate::table::render(&rows)
}

/// An age as kubectl prints it: `45s`, `12m`, `5h`, `3d`.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(annotations: Value) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}, "annotations": annotations},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            },
        }))
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn the_probe_is_a_new_revision_of_the_live_template() {
        let live = deployment(json!({}));
        let request = probe(&live, "shop", "web", at("2026-12-02T10:00:00Z"));
        let (old, new) = (
            request.old_object.as_ref().unwrap(),
            request.object.as_ref().unwrap(),
        );
        let template = |o: &decision::Object| -> Value {
            serde_json::from_str(o.template().unwrap()).unwrap()
        };
        assert_eq!(
            template(new)["metadata"]["annotations"],
            json!({"budgetgate.dev/why": "2026-12-02T10:00:00Z"})
        );
        assert_eq!(template(new)["spec"], template(old)["spec"]);
        assert_eq!(
            new.value(),
            old.value(),
            "nothing but the pod template differs"
        );
        let (class, revision) = decision::classify_revision(Some(old), new, |_| false);
        assert_eq!(class, decision::ChangeClass::Rollout);
        assert!(
            revision.is_some_and(|r| r != old.revision()),
            "a revision that never ran"
        );
        assert_eq!(request.operation, Operation::Update);
        assert_eq!(request.dry_run, Some(true));
    }

    #[test]
    fn actions_need_a_running_canary() {
        assert_eq!(
            can_act(&deployment(json!({})), "promote"),
            Err("no canary in progress; nothing to promote".into())
        );
        let running = deployment(json!({"budgetgate.dev/stage": "1"}));
        assert_eq!(can_act(&running, "promote"), Ok(()));
        let promoting = deployment(json!({"budgetgate.dev/stage": "promoting"}));
        assert_eq!(
            can_act(&promoting, "resume"),
            Err("already promoting; nothing to resume".into())
        );
        assert_eq!(can_act(&promoting, "abort"), Ok(()));
    }

    #[test]
    fn expiry_is_a_duration_or_a_time_in_the_future() {
        let now = at("2026-12-02T10:00:00Z");
        assert_eq!(expires_at("4h", now).unwrap(), at("2026-12-02T14:00:00Z"));
        assert_eq!(
            expires_at("2026-12-03T00:00:00Z", now).unwrap(),
            at("2026-12-03T00:00:00Z")
        );
        assert_eq!(
            expires_at("2026-12-01T00:00:00Z", now).unwrap_err().0,
            "--expires 2026-12-01T00:00:00Z: 2026-12-01T00:00:00Z is not in the future"
        );
        assert_eq!(
            expires_at("soon", now).unwrap_err().0,
            "--expires \"soon\": neither a duration (4h, 1d) nor an RFC 3339 time"
        );
    }

    #[test]
    fn an_exception_selects_the_deployment_by_its_labels() {
        let args = |offset, max_rollouts| ExceptionArgs {
            deployment: "web".into(),
            reason: "INC-4411 hotfix".into(),
            approved_by: "alice".into(),
            expires: "4h".into(),
            offset,
            max_rollouts,
        };
        let live = deployment(json!({}));
        let expires = at("2026-12-02T14:00:00Z");
        let object = exception_object(&live, &args(None, Some(1)), expires).unwrap();
        assert_eq!(
            serde_json::to_value(&object).unwrap(),
            json!({
                "apiVersion": "budgetgate.dev/v1alpha1",
                "kind": "BudgetException",
                "metadata": {"generateName": "web-", "namespace": "shop"},
                "spec": {
                    "kind": "override",
                    "selector": {"matchLabels": {"app": "web"}},
                    "reason": "INC-4411 hotfix",
                    "approvedBy": "alice",
                    "expiresAt": "2026-12-02T14:00:00Z",
                    "maxRollouts": 1,
                },
            })
        );
        let offset = exception_object(&live, &args(Some(0.1), None), expires).unwrap();
        assert_eq!(offset.spec.kind, crate::api::ExceptionKind::Offset);
        assert_eq!(offset.spec.extra_budget, Some(0.1));
        assert_eq!(
            exception_object(&live, &args(Some(1.5), None), expires)
                .unwrap_err()
                .0,
            "--offset 1.5: a budget fraction in (0, 1]"
        );
        let mut bare = live.clone();
        bare.metadata.labels = None;
        assert!(
            exception_object(&bare, &args(None, None), expires)
                .unwrap_err()
                .0
                .contains("has no labels")
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(119), "119s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(7_200), "2h");
        assert_eq!(age(3 * 86_400), "3d");
        assert_eq!(age(-3), "0s");
    }

    #[test]
    fn the_release_table_names_manual_actions() {
        let release: Release = serde_json::from_value(json!({
            "apiVersion": "budgetgate.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "web-3f9a1c0b-2", "namespace": "shop", "creationTimestamp": "2026-12-02T09:50:00Z"},
            "spec": {"deployment": "web", "revision": "3f9a1c0b2d"},
            "status": {
                "phase": "Promoted", "stage": 3, "weight": 100, "budgetConsumed": 0.004,
                "reason": "promoted after 3 stage(s) of plan 10,25,50,100 every 5m; by hand: promote at stage 0 (alice)",
                "actions": [{"action": "promote", "by": "alice", "stage": 0, "at": "2026-12-02T09:51:00Z"}],
            },
        }))
        .unwrap();
        assert_eq!(
            releases_table(&[release], at("2026-12-02T10:00:00Z")),
            "NAME            DEPLOYMENT  REVISION    PHASE     STAGE     CONSUMED  BY HAND            AGE  REASON\n\
             web-3f9a1c0b-2  web         3f9a1c0b2d  Promoted  3 (100%)  0.4%      promote@0 (alice)  10m  promoted after 3 stage(s) of plan 10,25,50,100 every 5m; by hand: promote at stage 0 (alice)\n"
        );
    }
}
