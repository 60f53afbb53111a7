//! The command line: argument parsing and the wiring of the offline commands. Exit codes:
//! 0 ok, 1 denied / falls short, 2 bad input.

use crate::api::Timestamp;
use crate::decision::{self, AdmissionRequest, Decision, Operation, parse_review};
use crate::index::{Index, ObjectKey};
use crate::load::{self, LoadError};
use crate::{api, index, prom, status, table};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod cluster;
pub mod plugin;
mod report;
mod serve;

pub use cluster::ClusterArgs;
pub use report::{ReportArgs, ReportFormat};

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
    #[command(after_help = "Examples:\n  \
        budgetgate status --policy manifests/samples --budgets manifests/samples/budgets.json -o table\n  \
        budgetgate status --policy manifests/samples --prometheus http://127.0.0.1:9090 -o json\n  \
        budgetgate status --policy manifests/samples --prometheus http://127.0.0.1:9090 --use-recording-rules\n  \
        budgetgate status --kubeconfig ~/.kube/config -o json\n  \
        budgetgate status --cluster\n\n\
        With --kubeconfig (or --cluster: the in-cluster configuration, else $KUBECONFIG) it lists the\n\
        policy, Namespaces, SLOs, TeamBudgets, BudgetExceptions and Releases once and shows the\n\
        budgets the controller last published: exactly what the webhook answers from. Exit 2 when the\n\
        cluster cannot be read.\n\n\
        With --prometheus the counts are read at --now (default: the clock) in batched queries:\n\
        requests = distinct windows x 2 x ceil(SLOs / --prometheus-batch-size), or distinct windows x 2\n\
        with --use-recording-rules (the rules of `budgetgate rules`). Exit 2 when Prometheus cannot\n\
        be read after the retries.")]
    Status(StatusArgs),
    /// The planning review per team and tier: budget, releases, rollbacks, incidents, exceptions.
    #[command(after_help = report::AFTER_HELP)]
    Report(ReportArgs),
    /// Serve the admission webhook over TLS (file mode or cluster mode).
    #[command(after_help = "Examples:\n  \
        budgetgate certs --out /tmp/bg-certs --dns localhost --ip 127.0.0.1\n  \
        budgetgate webhook --policy manifests/samples --budgets manifests/samples/budgets.json \\\n      \
        --tls-cert-file /tmp/bg-certs/tls.crt --tls-key-file /tmp/bg-certs/tls.key \\\n      \
        --listen 127.0.0.1:8443 --metrics-listen 127.0.0.1:9090\n\n\
        With --policy and --budgets it answers from those files and re-reads them when they\n\
        change; without them it watches the cluster (in-cluster or --kubeconfig). POST /validate\n\
        and /mutate take AdmissionReview v1; GET /healthz, /readyz; GET /metrics on --metrics-listen.")]
    Webhook(WebhookArgs),
    /// Evaluate budgets every interval and publish them (leader-elected; cluster mode).
    #[command(after_help = "Example:\n  \
        budgetgate controller --kubeconfig e2e/.run/kubeconfig --prometheus http://127.0.0.1:9090 --interval 5s\n\n\
        Reads ServiceLevelObjectives, Namespaces and the ReliabilityPolicy from the cluster, evaluates\n\
        every SLO, and writes ServiceLevelObjective.status, TeamBudget objects and\n\
        ReliabilityPolicy.status.platform (field manager budgetgate) when they change. Only the holder\n\
        of the Lease writes; band changes are recorded as Events on the TeamBudget.\n\n\
        --budgets FILE with --prometheus URL layers a BudgetSnapshot over Prometheus: the SLOs the\n\
        snapshot lists take its counts, every other SLO is read from Prometheus (what-if, tests).")]
    Controller(ControllerArgs),
    /// The webhook and the controller in one process (small clusters, demos).
    #[command(after_help = "Example:\n  \
        budgetgate serve --kubeconfig e2e/.run/kubeconfig --prometheus http://127.0.0.1:9090 --interval 5s \\\n      \
        --tls-cert-file certs/tls.crt --tls-key-file certs/tls.key --listen 127.0.0.1:8443\n\n\
        Counts come from --prometheus, --budgets (a BudgetSnapshot), or both: then the SLOs the\n\
        snapshot lists take its counts and every other SLO is read from Prometheus (what-if, tests).")]
    Serve(ServeArgs),
    /// Make a CA and a serving certificate for the webhook, and print the caBundle.
    #[command(after_help = "Example:\n  \
        budgetgate certs --out certs/dev --dns budgetgate.budgetgate-system.svc --ip 127.0.0.1\n\n\
        Writes ca.crt, tls.crt (with the CA appended) and tls.key (mode 0600) into --out and prints\n\
        the base64 caBundle for the webhook configurations.")]
    Certs(CertsArgs),
    /// Print Prometheus recording rules and burn-rate alerts for the SLOs.
    #[command(after_help = "Examples:\n  \
        budgetgate rules --policy manifests/samples > budgetgate-rules.yaml && promtool check rules budgetgate-rules.yaml\n  \
        budgetgate rules --policy manifests/samples --format prometheusrule | kubectl apply -n monitoring -f -\n\n\
        Per SLO: bad and total event counts over each window of its tier and over its period\n\
        (budgetgate:slo_bad_events:increase<w>, budgetgate:slo_events:increase<w>), the remaining\n\
        budget (budgetgate:slo_budget_remaining:ratio), the tier's multi-window burn-rate alerts and\n\
        a budget-exhausted alert, labelled team, tier, namespace and slo.")]
    Rules(RulesArgs),
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
pub struct WebhookArgs {
    /// File mode: the policy file or directory (with --budgets). Without it: cluster mode.
    #[arg(long, env = "BUDGETGATE_POLICY", requires = "budgets")]
    pub policy: Option<PathBuf>,
    /// File mode: the BudgetSnapshot file (with --policy).
    #[arg(long, env = "BUDGETGATE_BUDGETS", requires = "policy")]
    pub budgets: Option<PathBuf>,
    /// Cluster mode: kubeconfig to use instead of the in-cluster configuration.
    #[arg(long, env = "KUBECONFIG", conflicts_with = "policy")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub process: ProcessArgs,
}

/// The TLS admission server.
#[derive(clap::Args, Debug)]
pub struct TlsArgs {
    /// PEM certificate chain served; re-read when it changes.
    #[arg(long, env = "BUDGETGATE_TLS_CERT_FILE")]
    pub tls_cert_file: PathBuf,
    /// PEM private key of the certificate; re-read when it changes.
    #[arg(long, env = "BUDGETGATE_TLS_KEY_FILE")]
    pub tls_key_file: PathBuf,
    /// Address of the TLS admission server.
    #[arg(long, env = "BUDGETGATE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: std::net::SocketAddr,
    /// How often policy, budget and certificate files are checked for changes.
    #[arg(long, env = "BUDGETGATE_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub reload_interval: api::Duration,
    /// Also serve POST /bare, which reads the body and returns a fixed answer: the floor of
    /// this server stack, for load benchmarks.
    #[arg(long, hide = true)]
    pub bare_endpoint: bool,
    /// Open connections the admission port holds at most (keep it well below the process's
    /// file-descriptor limit); one more is closed at once.
    #[arg(long, env = "BUDGETGATE_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Reviews read or answered at once; one more is answered 503 at once.
    #[arg(long, env = "BUDGETGATE_MAX_INFLIGHT_REVIEWS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inflight_reviews: u32,
    /// Bytes of review bodies held at once over all connections (64Mi, 512Ki, or bytes);
    /// a body that would exceed it is answered 503 at once. Each body is also at most 7 MiB.
    #[arg(long, env = "BUDGETGATE_REVIEW_BODY_BUDGET", default_value = "64Mi", value_parser = parse_bytes)]
    pub review_body_budget: u64,
    /// Time to receive a review's whole body, from its request head; later is answered 408.
    #[arg(long, env = "BUDGETGATE_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub body_read_timeout: std::time::Duration,
}

impl TlsArgs {
    pub fn review_limits(&self) -> crate::webhook::intake::ReviewLimits {
        crate::webhook::intake::ReviewLimits {
            max_in_flight: self.max_inflight_reviews as usize,
            body_budget: usize::try_from(self.review_body_budget).unwrap_or(usize::MAX),
            body_read_timeout: self.body_read_timeout,
        }
    }
}

/// Connection limits of every listener (admission, metrics, scoreboard).
#[derive(clap::Args, Debug)]
pub struct ListenerArgs {
    /// Deadline for the TLS handshake and HTTP protocol detection of a new connection.
    #[arg(long, env = "BUDGETGATE_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = parse_timeout)]
    pub handshake_timeout: std::time::Duration,
    /// HTTP/1: time to receive each request head (also the wait for the next request on
    /// a keep-alive connection). HTTP/2: time to the first request.
    #[arg(long, env = "BUDGETGATE_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = parse_timeout)]
    pub header_read_timeout: std::time::Duration,
    /// A connection with no request in flight for this long is closed.
    #[arg(long, env = "BUDGETGATE_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub idle_timeout: std::time::Duration,
    /// HTTP/2 streams a client may have open at once on one connection.
    #[arg(long, env = "BUDGETGATE_HTTP2_MAX_CONCURRENT_STREAMS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,
    /// Interval of HTTP/2 keep-alive pings.
    #[arg(long, env = "BUDGETGATE_HTTP2_KEEP_ALIVE_INTERVAL", default_value = "20s", value_parser = parse_timeout)]
    pub http2_keep_alive_interval: std::time::Duration,
    /// An HTTP/2 connection whose ping is not answered within this is closed.
    #[arg(long, env = "BUDGETGATE_HTTP2_KEEP_ALIVE_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub http2_keep_alive_timeout: std::time::Duration,
    /// Open connections the metrics port and the scoreboard each hold at most.
    #[arg(long, env = "BUDGETGATE_METRICS_MAX_CONNECTIONS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub metrics_max_connections: u32,
}

impl ListenerArgs {
    /// The limits of a listener holding at most `max_connections`.
    pub fn limits(&self, max_connections: u32) -> crate::listener::Limits {
        crate::listener::Limits {
            max_connections: max_connections as usize,
            handshake_timeout: self.handshake_timeout,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            http2_keep_alive_interval: self.http2_keep_alive_interval,
            http2_keep_alive_timeout: self.http2_keep_alive_timeout,
        }
    }
}

/// What every long-running command has.
#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// Address of the plain-HTTP metrics server (GET /metrics).
    #[arg(
        long,
        env = "BUDGETGATE_METRICS_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_listen: std::net::SocketAddr,
    /// Answer as of this RFC 3339 time instead of the clock (tests and demos).
    #[arg(long, env = "BUDGETGATE_NOW")]
    pub now: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, env = "BUDGETGATE_WORKERS")]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub listeners: ListenerArgs,
}

/// The budget controller.
#[derive(clap::Args, Debug)]
pub struct ControllerOpts {
    /// Where SLI counts come from: Prometheus (read every evaluation), a BudgetSnapshot
    /// file (re-read every evaluation), or both (the snapshot's SLOs over Prometheus).
    #[command(flatten)]
    pub source: ControllerSource,
    #[command(flatten)]
    pub prometheus_options: PrometheusArgs,
    /// How often budgets are evaluated and published.
    #[arg(long, env = "BUDGETGATE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub interval: api::Duration,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "budgetgate-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "BUDGETGATE_LEASE_NAME",
        default_value = "budgetgate-controller"
    )]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long a lease holder that stopped renewing keeps the lease; a standby takes over
    /// within this time.
    #[arg(long, env = "BUDGETGATE_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: api::Duration,
    /// Where the read-only scoreboard (HTML pages and /api/v1 JSON) listens; `off` turns it
    /// off. Every replica serves it, leader or not.
    #[arg(long, env = "BUDGETGATE_DASHBOARD_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub dashboard_listen: Listen,
    /// This cluster's name in a global Prometheus view (the value of the policy's
    /// `clusterLabel` its series carry): canary checks read only this cluster's series.
    /// Budgets always sum over every cluster.
    #[arg(long, env = "BUDGETGATE_CLUSTER_NAME", value_parser = parse_cluster_name)]
    pub cluster_name: Option<String>,
}

/// A cluster name as a label value: anything but empty, one line.
fn parse_cluster_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(['\n', '\r']) {
        return Err(format!(
            "{text:?}: a cluster name is a non-empty label value on one line"
        ));
    }
    Ok(text.to_owned())
}

/// A listen address, or `off` (`None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub Option<std::net::SocketAddr>);

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen(None));
    }
    text.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{text:?}: {e} (want HOST:PORT or off)"))
}

#[derive(clap::Args, Debug)]
pub struct ControllerArgs {
    /// kubeconfig to use instead of the in-cluster configuration.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub controller: ControllerOpts,
    #[command(flatten)]
    pub process: ProcessArgs,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// kubeconfig to use instead of the in-cluster configuration.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub controller: ControllerOpts,
    #[command(flatten)]
    pub process: ProcessArgs,
}

fn parse_duration(text: &str) -> Result<api::Duration, String> {
    api::Duration::parse(text).map_err(|e| e.to_string())
}

/// A server timeout: `250ms`, or a duration such as `5s` or `1m`.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    if let Some(ms) = text.strip_suffix("ms") {
        return match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(std::time::Duration::from_millis(ms)),
            _ => Err(format!("{text:?}: want a positive number of ms, s or m")),
        };
    }
    parse_duration(text).map(|d| std::time::Duration::from_secs(d.seconds()))
}

/// A byte count: plain, or with a `Ki`, `Mi` or `Gi` suffix.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let (digits, unit) = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)]
        .iter()
        .find_map(|(suffix, unit)| text.strip_suffix(suffix).map(|d| (d, *unit)))
        .unwrap_or((text, 1));
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            format!("{text:?}: want a positive byte count such as 64Mi, 512Ki or 1048576")
        })
}

#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Directory for ca.crt, tls.crt and tls.key.
    #[arg(long)]
    pub out: PathBuf,
    /// DNS names of the serving certificate (e.g. budgetgate.budgetgate-system.svc).
    #[arg(long)]
    pub dns: Vec<String>,
    /// IP addresses of the serving certificate (e.g. 127.0.0.1).
    #[arg(long)]
    pub ip: Vec<std::net::IpAddr>,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// ReliabilityPolicy, Namespaces, SLOs: a YAML file or a directory of them.
    #[arg(long, env = "BUDGETGATE_POLICY", required_unless_present_any = ["kubeconfig", "cluster"],
          conflicts_with_all = ["kubeconfig", "cluster"])]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub source: BudgetSource,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub prometheus_options: PrometheusArgs,
    /// Evaluate as of this RFC 3339 time instead of the clock (with --prometheus).
    #[arg(long, env = "BUDGETGATE_NOW")]
    pub now: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Where the counts come from in file mode: exactly one of a snapshot file or Prometheus.
/// Cluster mode reads the budgets the controller published instead.
#[derive(clap::Args, Debug)]
#[group(required = false, multiple = false)]
pub struct BudgetSource {
    /// BudgetSnapshot JSON file with the SLO counts.
    #[arg(long, env = "BUDGETGATE_BUDGETS", required_unless_present_any = ["prometheus", "kubeconfig", "cluster"],
          conflicts_with_all = ["kubeconfig", "cluster"])]
    pub budgets: Option<PathBuf>,
    /// Prometheus base URL to read the SLO counts from, e.g. http://prometheus:9090.
    #[arg(long, env = "BUDGETGATE_PROMETHEUS", conflicts_with_all = ["kubeconfig", "cluster"])]
    pub prometheus: Option<String>,
}

/// The controller's counts: Prometheus, a snapshot file, or both layered.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = true)]
pub struct ControllerSource {
    /// BudgetSnapshot JSON file with SLO counts, re-read every evaluation. With
    /// --prometheus too, the SLOs it lists take its counts and all others are read from
    /// Prometheus (a what-if or test override).
    #[arg(long, env = "BUDGETGATE_BUDGETS")]
    pub budgets: Option<PathBuf>,
    /// Prometheus base URL to read the SLO counts from, e.g. http://prometheus:9090.
    #[arg(long, env = "BUDGETGATE_PROMETHEUS")]
    pub prometheus: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PrometheusArgs {
    /// Timeout of each Prometheus request.
    #[arg(long, env = "BUDGETGATE_PROMETHEUS_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub prometheus_timeout: api::Duration,
    /// Retries of a failed Prometheus request, with backoff doubling from 250ms.
    #[arg(long, env = "BUDGETGATE_PROMETHEUS_RETRIES", default_value_t = 2)]
    pub prometheus_retries: u32,
    /// SLOs per batched Prometheus query.
    #[arg(long, env = "BUDGETGATE_PROMETHEUS_BATCH_SIZE", default_value_t = prom::client::DEFAULT_BATCH_SIZE as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub prometheus_batch_size: u32,
    /// Read the series recorded by the rules of `budgetgate rules` instead of the SLOs' own.
    #[arg(long, env = "BUDGETGATE_USE_RECORDING_RULES")]
    pub use_recording_rules: bool,
}

impl PrometheusArgs {
    pub fn config(&self, url: &str) -> prom::PromConfig {
        prom::PromConfig {
            timeout: std::time::Duration::from_secs(self.prometheus_timeout.seconds()),
            retries: self.prometheus_retries,
            batch_size: self.prometheus_batch_size as usize,
            use_recording_rules: self.use_recording_rules,
            ..prom::PromConfig::new(url)
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct RulesArgs {
    /// ReliabilityPolicy, Namespaces, SLOs: a YAML file or a directory of them.
    #[arg(long, env = "BUDGETGATE_POLICY")]
    pub policy: PathBuf,
    /// A Prometheus rule file, or a monitoring.coreos.com/v1 PrometheusRule.
    #[arg(long, env = "BUDGETGATE_RULES_FORMAT", value_enum, default_value_t = RulesFormat::Rules)]
    pub format: RulesFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RulesFormat {
    Rules,
    #[value(name = "prometheusrule")]
    PrometheusRule,
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::Report(args) => report::run(&args),
        Command::Rules(args) => rules_cmd(&args).map(|()| true),
        Command::Crds => crds().map(|()| true),
        Command::Certs(args) => certs(&args).map(|()| true),
        Command::Webhook(args) => return serve::run(serve::Role::Webhook(args)),
        Command::Controller(args) => return serve::run(serve::Role::Controller(args)),
        Command::Serve(args) => return serve::run(serve::Role::Serve(args)),
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
    clock(state.now.as_ref())
}

fn clock(now: Option<&String>) -> Result<Timestamp, BadInput> {
    match now {
        Some(text) => load::parse_now(text).map_err(BadInput),
        None => Ok(crate::clock::Clock::System.now()),
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
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    emit(&text);
}

/// Writes command output to stdout. A reader that went away (`| head`) ends the process
/// quietly with success, as it would a C tool, instead of a panic.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(2);
    }
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
        Output::Table => emit(&verdict_table(&decisions)),
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
        object: Some(object.clone().into()),
        old_object: Some(old.into()),
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
    let now = clock(args.now.as_ref())?;
    let index = match (&args.policy, &args.source.budgets, &args.source.prometheus) {
        (None, _, _) if args.cluster.enabled() => args.cluster.load()?.index(),
        (Some(policy), Some(budgets), _) => load_state(&StateArgs {
            policy: policy.clone(),
            budgets: budgets.clone(),
            now: None,
        })?,
        (Some(policy), None, Some(url)) => {
            prometheus_state(policy, url, &args.prometheus_options, now)?
        }
        _ => {
            return Err(BadInput(
                "--policy with one of --budgets or --prometheus, or --kubeconfig / --cluster, is required".into(),
            ));
        }
    };
    let report = status::report(&index);
    match args.output {
        Output::Json => print_json(&report),
        Output::Table => emit(&status::table(&report)),
    }
    Ok(true)
}

fn certs(args: &CertsArgs) -> Result<(), BadInput> {
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let issued = crate::certs::issue(&args.out, &args.dns, &args.ip, today)
        .map_err(|e| BadInput(e.to_string()))?;
    eprintln!(
        "wrote {}, {} and {}; the caBundle for the webhook configurations:",
        issued.ca_cert.display(),
        issued.cert.display(),
        issued.key.display()
    );
    emit(&format!("{}\n", issued.ca_bundle));
    Ok(())
}

/// File-mode policy plus budgets evaluated from Prometheus counts read at `now`.
fn prometheus_state(
    policy: &Path,
    url: &str,
    options: &PrometheusArgs,
    now: Timestamp,
) -> Result<Index, BadInput> {
    let (mut index, notes) = load::load_policy(policy)?;
    for note in notes {
        tracing::info!("{note}");
    }
    let config = options.config(url);
    let started = std::time::Instant::now();
    let evaluation =
        prom::evaluate_blocking(&index, now, &config).map_err(|e| BadInput(e.to_string()))?;
    for note in &evaluation.notes {
        tracing::warn!("{note}");
    }
    tracing::info!(
        prometheus = url,
        slos = evaluation.slos.len(),
        windows = evaluation.ranges,
        requests = evaluation.requests,
        recording_rules = config.use_recording_rules,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read SLO counts from Prometheus"
    );
    let Some(policy) = &index.policy else {
        return Err(BadInput(
            "no ReliabilityPolicy to judge the budgets against".into(),
        ));
    };
    index.budgets = index::evaluate_budgets(
        policy,
        &index.namespaces,
        &evaluation.slos,
        evaluation.evaluated_at,
    );
    Ok(index)
}

fn rules_cmd(args: &RulesArgs) -> Result<(), BadInput> {
    let (index, notes) = load::load_policy(&args.policy)?;
    for note in notes {
        tracing::info!("{note}");
    }
    let (file, notes) = prom::rules::rule_file(&index);
    for note in notes {
        tracing::warn!("{note}");
    }
    let yaml = match args.format {
        RulesFormat::Rules => serde_yaml_ng::to_string(&file),
        RulesFormat::PrometheusRule => serde_yaml_ng::to_string(&file.into_prometheus_rule()),
    };
    emit(&yaml.map_err(|e| BadInput(format!("cannot write the rules: {e}")))?);
    Ok(())
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
    emit(&crds_yaml());
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

    fn controller_source(args: &[&str]) -> Result<(bool, bool), clap::error::ErrorKind> {
        let argv = ["budgetgate", "controller"].iter().chain(args);
        match Cli::try_parse_from(argv).map_err(|e| e.kind())?.command {
            Command::Controller(a) => Ok((
                a.controller.source.budgets.is_some(),
                a.controller.source.prometheus.is_some(),
            )),
            _ => unreachable!(),
        }
    }

    #[test]
    fn controller_takes_a_snapshot_prometheus_or_both_but_not_neither() {
        let prom = ["--prometheus", "http://127.0.0.1:9090"];
        let snap = ["--budgets", "budgets.json"];
        assert_eq!(controller_source(&prom), Ok((false, true)));
        assert_eq!(controller_source(&snap), Ok((true, false)));
        assert_eq!(controller_source(&[snap, prom].concat()), Ok((true, true)));
        assert_eq!(
            controller_source(&[]),
            Err(clap::error::ErrorKind::MissingRequiredArgument)
        );
    }

    #[test]
    fn the_scoreboard_listens_on_localhost_by_default_and_can_be_turned_off() {
        let listen = |extra: &[&str]| {
            let argv = ["budgetgate", "controller", "--budgets", "b"].into_iter();
            match Cli::try_parse_from(argv.chain(extra.iter().copied()))
                .map_err(|e| e.kind())?
                .command
            {
                Command::Controller(a) => Ok(a.controller.dashboard_listen.0),
                _ => unreachable!(),
            }
        };
        assert_eq!(listen(&[]), Ok(Some("127.0.0.1:8080".parse().unwrap())));
        assert_eq!(
            listen(&["--dashboard-listen", "0.0.0.0:9000"]),
            Ok(Some("0.0.0.0:9000".parse().unwrap()))
        );
        assert_eq!(listen(&["--dashboard-listen", "off"]), Ok(None));
        assert_eq!(
            listen(&["--dashboard-listen", "localhost"]),
            Err(clap::error::ErrorKind::ValueValidation)
        );
    }

    #[test]
    fn server_limits_take_milliseconds_seconds_and_byte_suffixes() {
        use std::time::Duration as Std;
        assert_eq!(parse_timeout("250ms"), Ok(Std::from_millis(250)));
        assert_eq!(parse_timeout("5s"), Ok(Std::from_secs(5)));
        assert_eq!(parse_timeout("1m30s"), Ok(Std::from_secs(90)));
        assert!(parse_timeout("0ms").is_err());
        assert!(parse_timeout("fast").is_err());
        assert_eq!(parse_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_bytes("512Ki"), Ok(512 << 10));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("64MB").is_err());
        assert!(parse_bytes("99999999999Gi").is_err());
    }

    #[test]
    fn the_review_port_defaults_stay_well_below_a_1024_descriptor_limit() {
        let argv = [
            "budgetgate",
            "webhook",
            "--tls-cert-file",
            "c",
            "--tls-key-file",
            "k",
        ];
        let Command::Webhook(a) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        let listeners = &a.process.listeners;
        assert_eq!(a.tls.max_connections, 512);
        assert!(a.tls.max_connections + 2 * listeners.metrics_max_connections < 1024 - 128);
        assert_eq!(listeners.limits(7).max_connections, 7);
        assert_eq!(
            listeners.handshake_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(a.tls.review_limits().body_budget, 64 << 20);
        assert_eq!(a.tls.review_limits().max_in_flight, 64);
    }

    #[test]
    fn status_still_takes_exactly_one_source() {
        let argv = [
            "budgetgate",
            "status",
            "--policy",
            "p",
            "--budgets",
            "b",
            "--prometheus",
            "http://p",
        ];
        assert_eq!(
            Cli::try_parse_from(argv).map(|_| ()).map_err(|e| e.kind()),
            Err(clap::error::ErrorKind::ArgumentConflict)
        );
    }
}
