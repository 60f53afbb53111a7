//! Which counts each SLO needs at one instant, and the PromQL that reads them. Pure.
//!
//! Every SLO needs `bad` and `total` over its period and over each burn window of its tier.
//! Instead of one request per SLO, window and count, the SLOs' expressions for one
//! (window, count) are joined into one union (`or`), each tagged with the label
//! [`SLO_LABEL`] = `namespace/name` by `label_replace`, and the answer is split by that label
//! ([`super::parse`]). Unions are cut into chunks of `batch_size` SLOs to keep request
//! bodies small, so one evaluation sends
//!
//! ```text
//! requests = distinct windows × 2 × ceil(SLOs / batch_size)
//! ```
//!
//! (distinct windows = the tiers' burn windows plus the SLOs' period ranges). With the
//! recording rules of [`super::rules`] each (window, count) is a single query for every SLO:
//! `requests = distinct windows × 2` (a calendar period still reads the raw series, because
//! the elapsed part of a month is not a fixed range a rule can record).
//!
//! A canary check (DESIGN §7.4) reads, for every SLO selecting the Deployment, bad and total
//! events of the canary track and of the stable track over the check window: four counts
//! per SLO, each tagged with [`SLO_LABEL`] and [`SERIES_LABEL`], all in one union
//! ([`track_query`]), so
//!
//! ```text
//! requests per check = 1
//! ```
//!
//! whatever the number of SLOs. Only when Prometheus rejects the union (one SLO's PromQL is
//! wrong) is it cut in halves to find that SLO: 2 more requests per halving.

use super::rules::{self, Metric};
use crate::api::{Duration, Indicator, Timestamp, Window};
use crate::budget::Period;
use crate::index::{Index, ObjectKey};
use std::collections::BTreeMap;

/// Label that tags each SLO's sample in a batched union: `namespace/name`.
pub const SLO_LABEL: &str = "budgetgate_slo";
/// Label that tags each of the four counts of a canary check: see [`series_name`].
pub const SERIES_LABEL: &str = "budgetgate_series";
/// Placeholder of a raw query for the range of the count.
pub const WINDOW_PLACEHOLDER: &str = "{{window}}";
/// Placeholder of a raw query for the track matcher ([`track_matcher`]).
pub const TRACK_PLACEHOLDER: &str = "{{track}}";
/// What [`TRACK_PLACEHOLDER`] becomes in a whole-service count (budgets, rules): a matcher
/// every series passes, labelled or not, so the query stays valid PromQL.
pub const ANY_TRACK: &str = r#"track=~".*""#;

/// One of the two counts of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Count {
    Bad,
    Total,
}

impl Count {
    pub fn as_str(self) -> &'static str {
        match self {
            Count::Bad => "bad",
            Count::Total => "total",
        }
    }
}

/// Where a count is read: the SLO's own series, or the series `budgetgate rules` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Direct,
    Recorded,
}

/// An SLO's indicator as event counts over a range.
#[derive(Clone, Debug, PartialEq)]
pub enum Events {
    /// Selectors of the bad-event and all-event counters.
    Ratio { errors: String, total: String },
    /// Selectors of the `+Inf` bucket and of the threshold's bucket; bad = total − good.
    Latency { total: String, good: String },
    /// PromQL templates with `{{window}}` (and, to be split by track, `{{track}}`).
    Raw { errors: String, total: String },
}

/// Where an SLO's queries may read (DESIGN §9): its namespace, by the label the policy
/// names; raw PromQL only where the policy allows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Confinement<'a> {
    pub namespace: &'a str,
    /// The series label naming a namespace (`sloNamespaceLabel`).
    pub label: &'a str,
    /// The namespace is in `crossNamespaceSLOs`: its selectors are not confined.
    pub cross_namespace: bool,
    /// The namespace is in `rawQueryNamespaces`.
    pub raw: bool,
}

impl Events {
    /// Checks the indicator and prepares its selectors, confined to the SLO's namespace:
    /// every `ratio` and `latency` selector must parse as a PromQL vector selector and gets
    /// the matcher `<label>="<namespace>"` (added, never replacing: a selector that named
    /// another namespace then matches nothing); `raw` needs the namespace to be allowed.
    pub fn from_indicator(
        indicator: &Indicator,
        confinement: &Confinement,
    ) -> Result<Events, String> {
        indicator.validate()?;
        if let Some(ratio) = &indicator.ratio {
            return Ok(Events::Ratio {
                errors: confined_selector("ratio.errors", &ratio.errors, confinement)?,
                total: confined_selector("ratio.total", &ratio.total, confinement)?,
            });
        }
        if let Some(latency) = &indicator.latency {
            let histogram =
                confined_selector("latency.histogram", &latency.histogram, confinement)?;
            if plain_selector(&histogram)
                .is_some_and(|v| v.matchers.matchers.iter().any(|m| m.name == "le"))
            {
                return Err(
                    "latency.histogram must not match on le: budgetgate adds the bucket matchers"
                        .into(),
                );
            }
            let le = le_regex(&latency.threshold)?;
            return Ok(Events::Latency {
                total: with_matcher(&histogram, r#"le="+Inf""#),
                good: with_matcher(&histogram, &format!("le=~\"{le}\"")),
            });
        }
        match &indicator.raw {
            Some(raw) if raw.error_query.trim().is_empty() || raw.total_query.trim().is_empty() => {
                Err("raw.errorQuery and raw.totalQuery must not be empty".into())
            }
            Some(_) if !confinement.raw => Err(format!(
                "raw indicators are accepted only from namespaces the policy lists in rawQueryNamespaces; {} is not one",
                confinement.namespace
            )),
            Some(raw) => {
                for (field, query) in [
                    ("raw.errorQuery", &raw.error_query),
                    ("raw.totalQuery", &raw.total_query),
                ] {
                    check_raw_query(field, query.trim())?;
                }
                Ok(Events::Raw {
                    errors: raw.error_query.trim().to_owned(),
                    total: raw.total_query.trim().to_owned(),
                })
            }
            None => Err("one of ratio, latency or raw is required".into()),
        }
    }

    /// The PromQL of one count over `range` (Prometheus duration syntax): one sample without
    /// labels, or nothing when the series are missing.
    pub fn expr(&self, count: Count, range: &str) -> String {
        self.count_expr(count, range, None)
    }

    /// The PromQL of one count of one track over `range`, or `None` when the indicator
    /// cannot be split by track: a raw indicator whose two queries do not both contain
    /// [`TRACK_PLACEHOLDER`]. Ratio and latency selectors get the track's matcher
    /// ([`with_matcher`]); a raw query gets it in place of `{{track}}`. Latency keeps
    /// bad = `+Inf` bucket − threshold bucket, within the track.
    pub fn track_expr(
        &self,
        count: Count,
        track: Track,
        label: &str,
        cluster: Option<&str>,
        range: &str,
    ) -> Option<String> {
        if let Events::Raw { errors, total } = self
            && !(errors.contains(TRACK_PLACEHOLDER) && total.contains(TRACK_PLACEHOLDER))
        {
            return None;
        }
        let mut matcher = track_matcher(label, track);
        if let Some(cluster) = cluster {
            matcher = format!("{matcher},{cluster}");
        }
        Some(self.count_expr(count, range, Some(&matcher)))
    }

    /// One count over `range` summed by the series label `label` (one sample per cluster of a
    /// global view), or `None` for a raw indicator (free PromQL cannot be regrouped).
    pub fn by_expr(&self, count: Count, range: &str, label: &str) -> Option<String> {
        let sum = |selector: &str| format!("sum by ({label}) (increase({selector}[{range}]))");
        match (self, count) {
            (Events::Ratio { errors, .. }, Count::Bad) => Some(sum(errors)),
            (Events::Ratio { total, .. }, Count::Total) => Some(sum(total)),
            (Events::Latency { total, good }, Count::Bad) => {
                Some(format!("{} - {}", sum(total), sum(good)))
            }
            (Events::Latency { total, .. }, Count::Total) => Some(sum(total)),
            (Events::Raw { .. }, _) => None,
        }
    }

    /// One count, with `matcher` (if any) added to every selector or put in `{{track}}`.
    fn count_expr(&self, count: Count, range: &str, matcher: Option<&str>) -> String {
        let increase = |selector: &str| match matcher {
            Some(m) => format!("sum(increase({}[{range}]))", with_matcher(selector, m)),
            None => format!("sum(increase({selector}[{range}]))"),
        };
        let raw = |template: &str| raw_count(template, range, matcher.unwrap_or(ANY_TRACK));
        match (self, count) {
            (Events::Ratio { errors, .. }, Count::Bad) => increase(errors),
            (Events::Ratio { total, .. }, Count::Total) => increase(total),
            (Events::Latency { total, good }, Count::Bad) => {
                format!("{} - {}", increase(total), increase(good))
            }
            (Events::Latency { total, .. }, Count::Total) => increase(total),
            (Events::Raw { errors, .. }, Count::Bad) => raw(errors),
            (Events::Raw { total, .. }, Count::Total) => raw(total),
        }
    }
}

/// The count of a raw query template: `sum(<query>)` with `{{window}}` = `range` and
/// `{{track}}` = `track`.
fn raw_count(template: &str, range: &str, track: &str) -> String {
    let query = template.replace(WINDOW_PLACEHOLDER, range);
    let query = query.replace(TRACK_PLACEHOLDER, track);
    // A `# comment` on the query's last line would swallow the closing parenthesis.
    let end = if query.contains('#') { "\n" } else { "" };
    format!("sum({query}{end})")
}

/// A raw query is accepted only if every count built from it parses: `{{track}}` takes
/// three forms (a canary's count, the stable count, and [`ANY_TRACK`] in whole-service
/// counts), and a form can be invalid where another is not: `{{{track}}}` is a selector
/// with a non-empty matcher as `{track="canary"}` but none as `{track=~".*"}`, which
/// Prometheus refuses. Its count is `sum(<query>)`, so the query must be an instant vector.
fn check_raw_query(field: &str, query: &str) -> Result<(), String> {
    use promql_parser::parser::value::ValueType;
    let parse = parse_promql;
    let canary = track_matcher("track", Track::Canary);
    let stable = track_matcher("track", Track::Stable);
    // With `--cluster-name` a check's matcher is two: the track and the cluster.
    let in_cluster = format!("{canary},{}", cluster_matcher("cluster", "a"));
    let forms: &[(&str, &str)] = match query.contains(TRACK_PLACEHOLDER) {
        true => &[
            ("a whole-service count", ANY_TRACK),
            ("a canary's count", &canary),
            ("the stable count", &stable),
            ("a canary's count in one cluster", &in_cluster),
        ],
        false => &[("", ANY_TRACK)],
    };
    for (form, track) in forms {
        let within = match form.is_empty() {
            true => String::new(),
            false => format!(" in {form}, where {TRACK_PLACEHOLDER} is {track}"),
        };
        let sample = query
            .replace(WINDOW_PLACEHOLDER, "5m")
            .replace(TRACK_PLACEHOLDER, track);
        let kind = parse(&sample)
            .map_err(|e| format!("{field}: {query:?} is not a PromQL expression{within}: {e}"))?
            .value_type();
        if kind != ValueType::Vector {
            return Err(format!(
                "{field}: {query:?} is a {kind}, not an instant vector of counts"
            ));
        }
        let count = raw_count(query, "5m", track);
        parse(&count).map_err(|e| {
            format!(
                "{field}: {query:?} does not parse as budgetgate's count {count:?}{within}: {e}"
            )
        })?;
    }
    Ok(())
}

thread_local! {
    static PARSING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True while [`parse_promql`] runs on this thread: a panic hook that aborts (a fuzzer's)
/// can let the parser's panics unwind to it.
pub fn parsing_promql() -> bool {
    PARSING.with(std::cell::Cell::get)
}

/// PromQL parsed by promql-parser, whose panics are errors here. Version 0.11 panics on a
/// range or offset written as a number of seconds that no `Duration` holds (`e[1e30]`,
/// `e[33333333333333333333333]`: `Duration::from_secs_f64`), and an SLO a team writes must
/// not stop the webhook or the controller.
pub fn parse_promql(text: &str) -> Result<promql_parser::parser::Expr, String> {
    PARSING.with(|p| p.set(true));
    let parsed = std::panic::catch_unwind(|| promql_parser::parser::parse(text));
    PARSING.with(|p| p.set(false));
    parsed.unwrap_or_else(|_| {
        Err("the PromQL parser failed on it (a duration out of range?)".to_owned())
    })
}

/// A plain vector selector (`name`, `name{…}` or `{…}`: something `[range]` can follow,
/// without offset, `@` or `or`), parsed by a PromQL parser.
fn plain_selector(selector: &str) -> Option<promql_parser::parser::VectorSelector> {
    use promql_parser::parser::Expr;
    match parse_promql(selector.trim()) {
        Ok(Expr::VectorSelector(v))
            if v.offset.is_none() && v.at.is_none() && v.matchers.or_matchers.is_empty() =>
        {
            Some(v)
        }
        _ => None,
    }
}

/// A selector checked and confined to the namespace (unless it may read across them), as
/// the parser's rendering of it: the text the user wrote never reaches a query, so nothing
/// in it (a `#` comment, odd spacing) can hide the added matcher or what follows it.
fn confined_selector(field: &str, selector: &str, c: &Confinement) -> Result<String, String> {
    use promql_parser::label::{MatchOp, Matcher};
    let mut parsed = plain_selector(selector).ok_or_else(|| {
        format!(
            "{field}: {selector:?} is not a series selector such as http_requests_total{{code=~\"5..\"}}"
        )
    })?;
    let matchers = &mut parsed.matchers.matchers;
    let own = matchers
        .iter()
        .any(|m| m.name == c.label && m.value == c.namespace && matches!(m.op, MatchOp::Equal));
    if !c.cross_namespace && !own {
        matchers.push(Matcher::new(MatchOp::Equal, c.label, c.namespace));
    }
    // The parser's rendering of each matcher, in the order written (its rendering of the
    // whole selector sorts them).
    let name = parsed.name.as_deref().unwrap_or("");
    let body: Vec<String> = matchers.iter().map(ToString::to_string).collect();
    Ok(match body.is_empty() {
        true => name.to_owned(),
        false => format!("{name}{{{}}}", body.join(",")),
    })
}

/// Adds a label matcher to a selector: `m{a="b"}` → `m{a="b",le="+Inf"}`, `m` → `m{le="+Inf"}`.
pub fn with_matcher(selector: &str, matcher: &str) -> String {
    let s = selector.trim();
    match s.strip_suffix('}') {
        Some(open) => {
            let body = open.trim_end();
            if body.ends_with('{') || body.ends_with(',') {
                format!("{body}{matcher}}}")
            } else {
                format!("{body},{matcher}}}")
            }
        }
        None => format!("{s}{{{matcher}}}"),
    }
}

/// A regex on `le` matching the ways exporters write a bucket bound: `0.3`, `0.30`, `0.300`,
/// `1` and `1.0`, and Go's exponent form (`1e+06`, `5e-05`) where Go's `%g` uses it.
pub fn le_regex(threshold: &str) -> Result<String, String> {
    let value: f64 = threshold
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| {
            format!("latency.threshold: {threshold:?} is not a bucket bound such as \"0.3\"")
        })?;
    let decimal = format!("{value}");
    let mut forms = vec![match decimal.split_once('.') {
        Some((int, frac)) => format!("{int}[.]{frac}0*"),
        None => format!("{decimal}([.]0*)?"),
    }];
    if let Some(g) = go_exponent_form(value) {
        forms.push(g.replace('.', "[.]").replace('+', "[+]"));
    }
    Ok(forms.join("|"))
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` where it differs from the plain decimal:
/// exponents below −4 or from 6 up, written `1.5e+06`.
fn go_exponent_form(value: f64) -> Option<String> {
    if value == 0.0 {
        return None;
    }
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    if (-4..6).contains(&exp) {
        return None;
    }
    let sign = if exp < 0 { '-' } else { '+' };
    Some(format!("{mantissa}e{sign}{:02}", exp.abs()))
}

/// Escapes text for a double-quoted PromQL string.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Everything one evaluation reads for one SLO.
#[derive(Clone, Debug, PartialEq)]
pub struct SloQuery {
    pub key: ObjectKey,
    pub objective: f64,
    /// The SLO's own window override (handed on to the evaluation).
    pub window: Option<Window>,
    /// The range the period's counts cover: the rolling window, or the elapsed part of a
    /// calendar period.
    pub period: Duration,
    /// Whether the period is a calendar month or quarter (never recorded by a rule).
    pub calendar: bool,
    /// The tier's burn windows, as written in the policy.
    pub windows: Vec<Duration>,
    /// The indicator as PromQL, or why it cannot be queried (the SLO stays Unknown).
    pub events: Result<Events, String>,
}

/// What one evaluation reads, at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Evaluation instant, whole seconds (Prometheus `time` parameter).
    pub at: Timestamp,
    pub slos: Vec<SloQuery>,
}

/// The SLOs of the index, with their tier's windows and their period at `at` (truncated to
/// the second). SLOs whose tier the policy lacks are left out, as `evaluate_budgets` does.
pub fn plan(index: &Index, at: Timestamp) -> Plan {
    let at = Timestamp::from_second(at.as_second()).unwrap_or(at);
    let mut slos = Vec::new();
    let Some(policy) = &index.policy else {
        return Plan { at, slos };
    };
    for (key, spec) in &index.slos {
        let tier_name = index
            .namespaces
            .get(&key.namespace)
            .and_then(|m| m.tier.clone())
            .unwrap_or_else(|| policy.default_tier.clone());
        let Some(tier) = policy.tier(&tier_name) else {
            continue;
        };
        let window = spec.window.as_ref().unwrap_or(&tier.window);
        let period = match window {
            Window::Rolling(d) => d.clone(),
            Window::Calendar(_) => Period::at(window, at).elapsed(at),
        };
        slos.push(SloQuery {
            key: key.clone(),
            objective: spec.objective,
            window: spec.window.clone(),
            period,
            calendar: matches!(window, Window::Calendar(_)),
            windows: tier.burn_windows().into_iter().collect(),
            events: Events::from_indicator(&spec.indicator, &policy.confinement(&key.namespace)),
        });
    }
    Plan { at, slos }
}

/// One request: one count over one range, for a set of SLOs.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Range length in seconds (`60m` and `1h` are one range).
    pub range_seconds: u64,
    pub count: Count,
    pub source: Source,
    /// SLOs whose count this answers, with their tagged expression (direct batches).
    pub members: Vec<(ObjectKey, String)>,
    pub promql: String,
}

impl Batch {
    fn direct(range_seconds: u64, count: Count, members: Vec<(ObjectKey, String)>) -> Batch {
        let promql = union_of(&members);
        Batch {
            range_seconds,
            count,
            source: Source::Direct,
            members,
            promql,
        }
    }

    /// The range as Prometheus writes it (`5m`, `30d`, `682h`).
    pub fn range(&self) -> Duration {
        Duration::from_seconds(self.range_seconds)
    }

    /// A short description for logs and errors: `bad 5m (120 SLOs)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {}{} ({} SLOs)",
            self.count.as_str(),
            self.range(),
            match self.source {
                Source::Direct => "",
                Source::Recorded => " recorded",
            },
            self.members.len()
        )
    }

    /// A direct batch cut in two, to find the one SLO whose PromQL Prometheus rejects.
    pub fn halves(&self) -> Option<(Batch, Batch)> {
        if self.source != Source::Direct || self.members.len() < 2 {
            return None;
        }
        let mut first = self.members.clone();
        let second = first.split_off(first.len() / 2);
        Some((
            Batch::direct(self.range_seconds, self.count, first),
            Batch::direct(self.range_seconds, self.count, second),
        ))
    }
}

/// `a or b or c …` as a balanced tree, `((a) or (b)) or ((c) or (d))`: Prometheus copies the
/// left side of every `or`, so a flat chain of n terms costs n²/2 (measured: a 500-SLO union
/// answers ~35% faster balanced).
pub fn union(exprs: &[&str]) -> String {
    match exprs {
        [] => String::new(),
        [one] => (*one).to_owned(),
        _ => {
            let (left, right) = exprs.split_at(exprs.len() / 2);
            format!("({}) or ({})", union(left), union(right))
        }
    }
}

/// The union of the members' tagged expressions.
fn union_of(members: &[(ObjectKey, String)]) -> String {
    let exprs: Vec<&str> = members.iter().map(|(_, expr)| expr.as_str()).collect();
    union(&exprs)
}

/// `label_replace(<expr>, "budgetgate_slo", "<namespace>/<name>", "", "")`.
pub fn tagged(key: &ObjectKey, expr: &str) -> String {
    labelled(expr, SLO_LABEL, &key.to_string())
}

/// `label_replace(<expr>, "<label>", "<value>", "", "")`: every sample gets the label.
pub fn labelled(expr: &str, label: &str, value: &str) -> String {
    // `$` would be a capture reference in the replacement.
    let value = value.replace('$', "$$");
    format!(
        "label_replace({expr}, {}, {}, \"\", \"\")",
        quote(label),
        quote(&value)
    )
}

/// The requests of one evaluation. Direct counts are grouped by (range, count) and cut
/// into unions of at most `batch_size` SLOs; recorded counts are one query per (range,
/// count). Batches come out ordered by range, count and source.
pub fn batches(plan: &Plan, recorded: bool, batch_size: usize) -> Vec<Batch> {
    let batch_size = batch_size.max(1);
    type Members = Vec<(ObjectKey, String)>;
    let mut groups: BTreeMap<(u64, Count, Source), Members> = BTreeMap::new();
    for slo in &plan.slos {
        let Ok(events) = &slo.events else { continue };
        let mut ranges: Vec<(u64, bool)> = slo
            .windows
            .iter()
            .map(|w| (w.seconds(), !recorded))
            .collect();
        ranges.push((slo.period.seconds(), !recorded || slo.calendar));
        ranges.sort_unstable();
        ranges.dedup_by_key(|(seconds, _)| *seconds);
        for (seconds, direct) in ranges {
            let range = Duration::from_seconds(seconds);
            for count in [Count::Bad, Count::Total] {
                let (source, expr) = if direct {
                    (
                        Source::Direct,
                        tagged(&slo.key, &events.expr(count, range.as_str())),
                    )
                } else {
                    (Source::Recorded, String::new())
                };
                groups
                    .entry((seconds, count, source))
                    .or_default()
                    .push((slo.key.clone(), expr));
            }
        }
    }
    let mut out = Vec::new();
    for ((seconds, count, source), members) in groups {
        match source {
            Source::Direct => {
                for chunk in members.chunks(batch_size) {
                    out.push(Batch::direct(seconds, count, chunk.to_vec()));
                }
            }
            Source::Recorded => {
                let metric = match count {
                    Count::Bad => Metric::BadEvents,
                    Count::Total => Metric::Events,
                };
                let name = rules::increase_metric(metric, &Duration::from_seconds(seconds));
                out.push(Batch {
                    range_seconds: seconds,
                    count,
                    source,
                    members,
                    promql: format!(
                        "sum by ({}, {}) ({name})",
                        rules::NAMESPACE_LABEL,
                        rules::SLO_LABEL
                    ),
                });
            }
        }
    }
    out
}

/// The two tracks a canary check compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Track {
    /// Pods of the `<name>-canary` Deployment: series labelled `<trackLabel>="canary"`.
    Canary,
    /// Every other series of the SLO, including series without the label.
    Stable,
}

/// The matcher of a track on label `label`: `track="canary"` or `track!="canary"`. Stable is
/// "not canary" so that series scraped without the label (pods from before the rollout,
/// exporters that drop it) count as stable.
pub fn track_matcher(label: &str, track: Track) -> String {
    let op = match track {
        Track::Canary => "=",
        Track::Stable => "!=",
    };
    format!("{label}{op}{}", quote(crate::rollout::CANARY_TRACK))
}

/// Every SLO's period counts cluster by cluster, as one union (DESIGN §8): the one extra
/// query per evaluation of a controller that names its cluster in a global view.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSplitQuery {
    /// Empty when no SLO can be split (then nothing is sent).
    pub promql: String,
    pub members: Vec<ObjectKey>,
}

/// The split of every SLO of `plan` that can be regrouped, by the series label `label`,
/// each count tagged with [`SLO_LABEL`] and [`SERIES_LABEL`] `bad` or `total`.
pub fn cluster_split_query(plan: &Plan, label: &str) -> ClusterSplitQuery {
    let mut terms = Vec::new();
    let mut members = Vec::new();
    if !is_label_name(label) {
        return ClusterSplitQuery {
            promql: String::new(),
            members,
        };
    }
    for slo in &plan.slos {
        let Ok(events) = &slo.events else { continue };
        let range = slo.period.as_str();
        let (Some(bad), Some(total)) = (
            events.by_expr(Count::Bad, range, label),
            events.by_expr(Count::Total, range, label),
        ) else {
            continue;
        };
        terms.push(labelled(&tagged(&slo.key, &bad), SERIES_LABEL, "bad"));
        terms.push(labelled(&tagged(&slo.key, &total), SERIES_LABEL, "total"));
        members.push(slo.key.clone());
    }
    let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
    ClusterSplitQuery {
        promql: if terms.is_empty() {
            String::new()
        } else {
            union(&terms)
        },
        members,
    }
}

/// The matcher that confines a canary check to one cluster of a global view:
/// `cluster="a"` (DESIGN §8).
pub fn cluster_matcher(label: &str, cluster: &str) -> String {
    format!("{label}={}", quote(cluster))
}

/// The four counts of a canary check, in the order each SLO's union lists them.
pub const TRACK_SERIES: [(Count, Track); 4] = [
    (Count::Bad, Track::Canary),
    (Count::Total, Track::Canary),
    (Count::Bad, Track::Stable),
    (Count::Total, Track::Stable),
];

/// The value of [`SERIES_LABEL`] for one count of one track: `bad_canary`, `total_stable`….
pub fn series_name(count: Count, track: Track) -> &'static str {
    match (count, track) {
        (Count::Bad, Track::Canary) => "bad_canary",
        (Count::Total, Track::Canary) => "total_canary",
        (Count::Bad, Track::Stable) => "bad_stable",
        (Count::Total, Track::Stable) => "total_stable",
    }
}

/// One canary check's request: for every SLO that can be split by track, bad and total of
/// both tracks, as one union tagged with [`SLO_LABEL`] and [`SERIES_LABEL`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrackQuery {
    /// The union; empty when no SLO can be split by track (then nothing is sent).
    pub promql: String,
    /// SLOs the union reads, each with the union of its four tagged counts (what a
    /// rejected query is cut into, see [`TrackQuery::halves`]).
    pub members: Vec<(ObjectKey, String)>,
    /// Raw indicators without `{{track}}`: judged on whole-service burn, not read here.
    pub whole_service: Vec<ObjectKey>,
    /// SLOs that cannot be queried, with why: their indicator does not parse
    /// ([`Events::from_indicator`]), or the track label is not a label name.
    pub invalid: Vec<(ObjectKey, String)>,
}

impl TrackQuery {
    fn of(members: Vec<(ObjectKey, String)>) -> TrackQuery {
        TrackQuery {
            promql: union_of(&members),
            members,
            whole_service: Vec::new(),
            invalid: Vec::new(),
        }
    }

    /// A short description for logs and errors: `canary check (3 SLOs)`.
    pub fn describe(&self) -> String {
        format!("canary check ({} SLOs)", self.members.len())
    }

    /// The members cut in two, to find the one SLO whose PromQL Prometheus rejects. The
    /// halves read members only (their `whole_service` and `invalid` are empty).
    pub fn halves(&self) -> Option<(TrackQuery, TrackQuery)> {
        if self.members.len() < 2 {
            return None;
        }
        let mut first = self.members.clone();
        let second = first.split_off(first.len() / 2);
        Some((TrackQuery::of(first), TrackQuery::of(second)))
    }
}

/// The query of one canary check over `range`, for the SLOs selecting the Deployment, the
/// tracks told apart by the series label `label` (the tier's `canary.trackLabel`).
pub fn track_query(
    slos: &[(ObjectKey, Result<Events, String>)],
    label: &str,
    cluster: Option<&str>,
    range: &Duration,
) -> TrackQuery {
    let mut members = Vec::new();
    let mut whole_service = Vec::new();
    let mut invalid = Vec::new();
    // Sent anyway, a bad label name would be rejected and bisected down to every SLO.
    let bad_label = (!is_label_name(label))
        .then(|| format!("canary.trackLabel {label:?} is not a Prometheus label name"));
    for (key, events) in slos {
        let events = match (events, &bad_label) {
            (Err(why), _) | (Ok(_), Some(why)) => {
                invalid.push((key.clone(), why.clone()));
                continue;
            }
            (Ok(events), None) => events,
        };
        let terms: Option<Vec<String>> = TRACK_SERIES
            .iter()
            .map(|&(count, track)| {
                let expr = events.track_expr(count, track, label, cluster, range.as_str())?;
                Some(labelled(
                    &tagged(key, &expr),
                    SERIES_LABEL,
                    series_name(count, track),
                ))
            })
            .collect();
        match terms {
            Some(terms) => {
                let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
                members.push((key.clone(), union(&terms)));
            }
            None => whole_service.push(key.clone()),
        }
    }
    TrackQuery {
        whole_service,
        invalid,
        ..TrackQuery::of(members)
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Counts of one SLO's two tracks over a check window. A track without series reads 0: the
/// query ran, the canary has had no traffic yet.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrackCounts {
    pub canary_bad: f64,
    pub canary_total: f64,
    pub stable_bad: f64,
    pub stable_total: f64,
}

impl TrackCounts {
    /// The counts `count_of` gives for each (count, track).
    pub fn from_fn(mut count_of: impl FnMut(Count, Track) -> f64) -> TrackCounts {
        TrackCounts {
            canary_bad: count_of(Count::Bad, Track::Canary),
            canary_total: count_of(Count::Total, Track::Canary),
            stable_bad: count_of(Count::Bad, Track::Stable),
            stable_total: count_of(Count::Total, Track::Stable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No confinement: the tests of query shapes.
    const OPEN: Confinement = Confinement {
        namespace: "shop",
        label: "namespace",
        cross_namespace: true,
        raw: true,
    };
    use crate::api::{LatencyIndicator, RatioIndicator, RawIndicator};

    fn ratio(errors: &str, total: &str) -> Indicator {
        Indicator {
            ratio: Some(RatioIndicator {
                errors: errors.into(),
                total: total.into(),
            }),
            ..Indicator::default()
        }
    }

    fn latency(histogram: &str, threshold: &str) -> Indicator {
        Indicator {
            latency: Some(LatencyIndicator {
                histogram: histogram.into(),
                threshold: threshold.into(),
            }),
            ..Indicator::default()
        }
    }

    #[test]
    fn ratio_counts_are_summed_increases_of_the_selectors() {
        let events = Events::from_indicator(
            &ratio(
                r#"http_requests_total{service="checkout",code=~"5.."}"#,
                r#" http_requests_total{service="checkout"} "#,
            ),
            &OPEN,
        )
        .unwrap();
        assert_eq!(
            events.expr(Count::Bad, "5m"),
            r#"sum(increase(http_requests_total{service="checkout",code=~"5.."}[5m]))"#
        );
        assert_eq!(
            events.expr(Count::Total, "30d"),
            r#"sum(increase(http_requests_total{service="checkout"}[30d]))"#
        );
    }

    #[test]
    fn latency_bad_is_the_inf_bucket_minus_the_threshold_bucket() {
        let events = Events::from_indicator(
            &latency(
                r#"http_request_duration_seconds_bucket{service="cart"}"#,
                "0.3",
            ),
            &OPEN,
        )
        .unwrap();
        assert_eq!(
            events.expr(Count::Total, "1h"),
            r#"sum(increase(http_request_duration_seconds_bucket{service="cart",le="+Inf"}[1h]))"#
        );
        assert_eq!(
            events.expr(Count::Bad, "1h"),
            r#"sum(increase(http_request_duration_seconds_bucket{service="cart",le="+Inf"}[1h])) - sum(increase(http_request_duration_seconds_bucket{service="cart",le=~"0[.]30*"}[1h]))"#
        );
    }

    #[test]
    fn le_regex_accepts_every_spelling_of_the_bound() {
        assert_eq!(le_regex("0.3").unwrap(), "0[.]30*");
        assert_eq!(le_regex("0.30").unwrap(), "0[.]30*");
        assert_eq!(le_regex("1").unwrap(), "1([.]0*)?");
        assert_eq!(le_regex("2.5").unwrap(), "2[.]50*");
        assert_eq!(le_regex("1e6").unwrap(), "1000000([.]0*)?|1e[+]06");
        assert_eq!(le_regex("0.00005").unwrap(), "0[.]000050*|5e-05");
        assert_eq!(le_regex("0.0001").unwrap(), "0[.]00010*");
        for bad in ["fast", "+Inf", "-1", ""] {
            assert!(le_regex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matchers_are_added_inside_the_braces() {
        assert_eq!(with_matcher("m", "le=\"1\""), "m{le=\"1\"}");
        assert_eq!(with_matcher("m{}", "le=\"1\""), "m{le=\"1\"}");
        assert_eq!(
            with_matcher("m{a=\"b\",}", "le=\"1\""),
            "m{a=\"b\",le=\"1\"}"
        );
        assert_eq!(
            with_matcher("{__name__=\"m\", a=\"}\"} ", "le=\"1\""),
            "{__name__=\"m\", a=\"}\",le=\"1\"}"
        );
    }

    #[test]
    fn a_histogram_selector_matching_on_le_is_refused() {
        let e =
            Events::from_indicator(&latency(r#"h_bucket{le="0.3"}"#, "0.3"), &OPEN).unwrap_err();
        assert_eq!(
            e,
            "latency.histogram must not match on le: budgetgate adds the bucket matchers"
        );
        assert!(
            Events::from_indicator(&latency(r#"h_bucket{handle="x", le !~ "1"}"#, "1"), &OPEN)
                .is_err()
        );
        assert!(Events::from_indicator(&latency(r#"h_bucket{file="le=1"}"#, "1"), &OPEN).is_ok());
        assert!(Events::from_indicator(&latency(r#"h_bucket{lease="1"}"#, "1"), &OPEN).is_ok());
    }

    #[test]
    fn non_selectors_are_refused_with_the_field() {
        let e = Events::from_indicator(&ratio("rate(x[5m])", "y"), &OPEN).unwrap_err();
        assert_eq!(
            e,
            "ratio.errors: \"rate(x[5m])\" is not a series selector such as http_requests_total{code=~\"5..\"}"
        );
        assert!(Events::from_indicator(&ratio("", "y"), &OPEN).is_err());
        assert!(Events::from_indicator(&ratio("{job=\"a\"}", "y:recorded"), &OPEN).is_ok());
    }

    #[test]
    fn raw_templates_get_the_window_and_one_sum() {
        let events = Events::from_indicator(
            &Indicator {
                raw: Some(RawIndicator {
                    error_query: "sum(increase(x_errors_total[{{window}}]))".into(),
                    total_query: "increase(x_total[{{window}}]) * 2".into(),
                }),
                ..Indicator::default()
            },
            &OPEN,
        )
        .unwrap();
        assert_eq!(
            events.expr(Count::Bad, "6h"),
            "sum(sum(increase(x_errors_total[6h])))"
        );
        assert_eq!(
            events.expr(Count::Total, "6h"),
            "sum(increase(x_total[6h]) * 2)"
        );
    }

    #[test]
    fn tags_quote_and_escape_the_key() {
        assert_eq!(
            tagged(&ObjectKey::new("shop", "a$1"), "sum(x)"),
            r#"label_replace(sum(x), "budgetgate_slo", "shop/a$$1", "", "")"#
        );
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
    }

    fn index(slos: usize, calendar: usize) -> Index {
        let spec: crate::api::ReliabilityPolicySpec = serde_yaml_ng::from_str(
            r#"
tiers:
  production:
    bands: [{name: healthy, plan: {steps: [100], pause: 1m}}]
"#,
        )
        .unwrap();
        let mut index = Index {
            policy: Some(crate::policy::Policy::from_spec(&spec).unwrap()),
            ..Index::default()
        };
        for i in 0..slos + calendar {
            let window = (i >= slos).then_some(Window::Calendar(crate::api::CalendarPeriod::Month));
            index.slos.insert(
                ObjectKey::new("shop", format!("slo-{i:04}")),
                crate::api::ServiceLevelObjectiveSpec {
                    service: "s".into(),
                    objective: 99.9,
                    window,
                    indicator: ratio(&format!("e{{i=\"{i}\"}}"), &format!("t{{i=\"{i}\"}}")),
                    deployment_selector: None,
                },
            );
        }
        index
    }

    fn at() -> Timestamp {
        "2026-11-29T10:00:00.750Z".parse().unwrap()
    }

    #[test]
    fn the_cluster_split_is_one_union_of_every_slo_summed_by_cluster() {
        let mut idx = index(2, 0);
        idx.slos.insert(
            ObjectKey::new("search", "free"),
            crate::api::ServiceLevelObjectiveSpec {
                service: "s".into(),
                objective: 99.0,
                window: None,
                indicator: serde_yaml_ng::from_str("raw: {errorQuery: e, totalQuery: t}").unwrap(),
                deployment_selector: None,
            },
        );
        let split = cluster_split_query(&plan(&idx, at()), "cluster");
        // Raw PromQL cannot be regrouped; an SLO that cannot be queried is left out too.
        assert_eq!(
            split.members,
            [
                ObjectKey::new("shop", "slo-0000"),
                ObjectKey::new("shop", "slo-0001")
            ]
        );
        assert_eq!(
            split.promql.matches("sum by (cluster) (increase(").count(),
            4
        );
        assert!(
            split
                .promql
                .contains(r#"sum by (cluster) (increase(e{i="0",namespace="shop"}[30d]))"#),
            "{}",
            split.promql
        );
        assert!(
            split.promql.contains(r#""budgetgate_series", "total""#),
            "{}",
            split.promql
        );
        parse_promql(&split.promql).expect("the union parses");
        // A label that is not a label name sends nothing.
        assert!(
            cluster_split_query(&plan(&idx, at()), "a-b")
                .promql
                .is_empty()
        );
        let latency = Events::from_indicator(&latency("h_bucket", "0.3"), &OPEN).unwrap();
        assert_eq!(
            latency.by_expr(Count::Bad, "1h", "cluster").unwrap(),
            r#"sum by (cluster) (increase(h_bucket{le="+Inf"}[1h])) - sum by (cluster) (increase(h_bucket{le=~"0[.]30*"}[1h]))"#
        );
    }

    #[test]
    fn requests_grow_with_windows_not_with_slos() {
        let plan = plan(&index(1000, 0), at());
        assert_eq!(
            plan.at,
            "2026-11-29T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        // 7 burn windows + the 30d period, bad and total, ceil(1000 / batch) unions each.
        assert_eq!(batches(&plan, false, 500).len(), 8 * 2 * 2);
        assert_eq!(batches(&plan, false, 300).len(), 8 * 2 * 4);
        assert_eq!(batches(&plan, false, 1000).len(), 8 * 2);
        assert_eq!(batches(&plan, true, 1).len(), 8 * 2);
        let small = crate::prom::query::plan(&index(10, 0), at());
        assert_eq!(batches(&small, false, 500).len(), 8 * 2);
    }

    fn confined(namespace: &str, cross: bool, raw_ok: bool) -> Confinement<'_> {
        Confinement {
            namespace,
            label: "namespace",
            cross_namespace: cross,
            raw: raw_ok,
        }
    }

    #[test]
    fn selectors_are_confined_to_the_slos_namespace() {
        let shop = confined("shop", false, false);
        let errors = |selector: &str, c: &Confinement| match Events::from_indicator(
            &ratio(selector, "t"),
            c,
        ) {
            Ok(Events::Ratio { errors, .. }) => errors,
            other => panic!("{other:?}"),
        };
        // No namespace: confined by an added matcher.
        assert_eq!(errors("e", &shop), r#"e{namespace="shop"}"#);
        assert_eq!(
            errors(r#"e{code="500"}"#, &shop),
            r#"e{code="500",namespace="shop"}"#
        );
        // Its own namespace already: unchanged.
        assert_eq!(
            errors(r#"e{namespace="shop"}"#, &shop),
            r#"e{namespace="shop"}"#
        );
        // Another team's namespace, or all of them: the added matcher makes it read only
        // its own (and nothing when it named another).
        assert_eq!(
            errors(r#"e{namespace="payments"}"#, &shop),
            r#"e{namespace="payments",namespace="shop"}"#
        );
        assert_eq!(
            errors(r#"e{namespace=~".+"}"#, &shop),
            r#"e{namespace=~".+",namespace="shop"}"#
        );
        // A platform-listed namespace reads across namespaces.
        assert_eq!(
            errors(r#"e{namespace=~".+"}"#, &confined("shop", true, false)),
            r#"e{namespace=~".+"}"#
        );
        // The policy's label, whatever it is called.
        let k8s = Confinement {
            label: "k8s_namespace",
            ..shop
        };
        assert_eq!(errors("e", &k8s), r#"e{k8s_namespace="shop"}"#);
        // Latency: the histogram is confined, then the bucket matchers follow.
        match Events::from_indicator(&latency("h_bucket", "0.3"), &shop).unwrap() {
            Events::Latency { total, .. } => {
                assert_eq!(total, r#"h_bucket{namespace="shop",le="+Inf"}"#)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_selectors_text_never_reaches_the_query_only_its_parse() {
        let shop = confined("shop", false, false);
        let errors = |selector: &str| match Events::from_indicator(&ratio(selector, "t"), &shop) {
            Ok(Events::Ratio { errors, .. }) => errors,
            other => panic!("{other:?}"),
        };
        // A comment ending in a brace would have swallowed the added matcher (and the rest
        // of the query's line): rendered from the parse, the comment is gone.
        assert_eq!(
            errors(r#"e{namespace="payments"} # }"#),
            r#"e{namespace="payments",namespace="shop"}"#
        );
        assert_eq!(
            errors("e # {namespace=\"payments\"}\n"),
            r#"e{namespace="shop"}"#
        );
        // Spacing and quoting come out canonical; escapes survive.
        assert_eq!(
            errors(" e { code = '5..' , } "),
            r#"e{code="5..",namespace="shop"}"#
        );
        assert_eq!(
            errors(r#"e{path="a\"b\\c"}"#),
            r#"e{path="a\"b\\c",namespace="shop"}"#
        );
        // Every rendered query parses, with the confinement in every selector.
        for selector in [
            r#"e{namespace="payments"} # }"#,
            "{__name__=\"e\"}",
            "e{a=~\"x|y\"}",
        ] {
            let events = Events::from_indicator(&ratio(selector, "t"), &shop).unwrap();
            for track in [Track::Canary, Track::Stable] {
                let query = events
                    .track_expr(Count::Bad, track, "track", None, "5m")
                    .unwrap();
                let parsed =
                    promql_parser::parser::parse(&query).unwrap_or_else(|e| panic!("{query}: {e}"));
                assert!(
                    format!("{parsed}").contains(r#"namespace="shop""#),
                    "{query}"
                );
            }
        }
    }

    #[test]
    fn anything_but_a_plain_selector_is_refused_by_the_parser() {
        let shop = confined("shop", false, false);
        for bad in [
            "rate(e[5m])",
            "e[5m]",
            "e offset 1h",
            "e @ 1700000000",
            "sum(e) by (pod)",
            r#"e{code="5"}) by (pod"#,
            "e or f",
        ] {
            let got = Events::from_indicator(&ratio(bad, "t"), &shop).unwrap_err();
            assert_eq!(
                got,
                format!(
                    r#"ratio.errors: {bad:?} is not a series selector such as http_requests_total{{code=~"5.."}}"#
                )
            );
        }
    }

    #[test]
    fn raw_queries_only_from_listed_namespaces_and_only_whole_expressions() {
        let q = "sum(increase(e[{{window}}]))";
        assert_eq!(
            Events::from_indicator(&raw(q, q), &confined("shop", false, false)).unwrap_err(),
            "raw indicators are accepted only from namespaces the policy lists in rawQueryNamespaces; shop is not one"
        );
        assert!(Events::from_indicator(&raw(q, q), &confined("shop", false, true)).is_ok());
        // A fragment that would break out of budgetgate's sum(...) is not an expression.
        let injected = "increase(e[{{window}}])) by (pod";
        let e =
            Events::from_indicator(&raw(injected, q), &confined("shop", false, true)).unwrap_err();
        assert!(
            e.starts_with(
                "raw.errorQuery: \"increase(e[{{window}}])) by (pod\" is not a PromQL expression"
            ),
            "{e}"
        );
        // A trailing comment ends before budgetgate's closing parenthesis.
        let commented = Events::from_indicator(
            &raw("sum(increase(e[{{window}}])) # errors", q),
            &confined("shop", false, true),
        )
        .unwrap();
        let expr = commented.expr(Count::Bad, "5m");
        assert_eq!(expr, "sum(sum(increase(e[5m])) # errors\n)");
        assert!(promql_parser::parser::parse(&expr).is_ok());
        // Its count is sum(<query>): a scalar or a range vector cannot be summed.
        for (query, kind) in [("5", "scalar"), ("e[{{window}}]", "matrix")] {
            assert_eq!(
                Events::from_indicator(&raw(query, q), &confined("shop", false, true)).unwrap_err(),
                format!("raw.errorQuery: {query:?} is a {kind}, not an instant vector of counts")
            );
        }
    }

    #[test]
    fn a_raw_query_must_parse_in_every_form_the_track_placeholder_takes() {
        let q = "sum(increase(e[{{window}}]))";
        // `{track="canary"}` has a non-empty matcher, `{track=~".*"}` (every whole-service
        // count) and `{track!="canary"}` have none: Prometheus refuses both.
        let e = Events::from_indicator(&raw("{{{track}}}", q), &confined("shop", false, true))
            .unwrap_err();
        assert_eq!(
            e,
            r#"raw.errorQuery: "{{{track}}}" is not a PromQL expression in a whole-service count, where {{track}} is track=~".*": vector selector must contain at least one non-empty matcher"#
        );
        // The form the old check tried (a canary's) is valid: the budget query was not.
        assert!(promql_parser::parser::parse(r#"{track="canary"}"#).is_ok());
        // With a metric name, every form is a valid selector.
        let ok = Events::from_indicator(
            &raw("e{{{track}}}", "t{{{track}}}"),
            &confined("shop", false, true),
        )
        .unwrap();
        assert_eq!(ok.expr(Count::Bad, "5m"), r#"sum(e{track=~".*"})"#);
        assert_eq!(
            ok.track_expr(Count::Total, Track::Stable, "track", None, "5m")
                .unwrap(),
            r#"sum(t{track!="canary"})"#
        );
    }

    #[test]
    fn a_duration_no_duration_holds_is_an_error_not_a_panic() {
        let huge = "e[33333333333333333333333]";
        let e =
            Events::from_indicator(&raw(huge, huge), &confined("shop", false, true)).unwrap_err();
        assert_eq!(
            e,
            format!(
                "raw.errorQuery: {huge:?} is not a PromQL expression: the PromQL parser failed on it (a duration out of range?)"
            )
        );
        let e = Events::from_indicator(&ratio(huge, "t"), &OPEN).unwrap_err();
        assert!(e.starts_with("ratio.errors: \"e[3333"), "{e}");
        assert!(!parsing_promql());
    }

    #[test]
    fn a_union_tags_every_slo() {
        let plan = plan(&index(2, 0), at());
        let b = &batches(&plan, false, 500)[0];
        assert_eq!(
            (b.range_seconds, b.count, b.source),
            (300, Count::Bad, Source::Direct)
        );
        // Each selector confined to its SLO's namespace.
        let one = r#"label_replace(sum(increase(e{i="0",namespace="shop"}[5m])), "budgetgate_slo", "shop/slo-0000", "", "")"#;
        let two = r#"label_replace(sum(increase(e{i="1",namespace="shop"}[5m])), "budgetgate_slo", "shop/slo-0001", "", "")"#;
        assert_eq!(b.promql, format!("({one}) or ({two})"));
        let (first, second) = b.halves().unwrap();
        assert_eq!(first.members.len(), 1);
        assert_eq!((first.promql.as_str(), second.promql.as_str()), (one, two));
        assert_eq!(first.halves(), None);
    }

    #[test]
    fn unions_are_balanced_trees() {
        assert_eq!(union(&["a"]), "a");
        assert_eq!(union(&["a", "b", "c"]), "(a) or ((b) or (c))");
        assert_eq!(union(&["a", "b", "c", "d"]), "((a) or (b)) or ((c) or (d))");
    }

    #[test]
    fn recorded_batches_read_every_slo_at_once_but_calendar_periods_directly() {
        let plan = plan(&index(3, 2), at());
        // The month so far: 2026-11-01 → 10:00 on the 29th.
        assert_eq!(plan.slos[4].period.as_str(), "682h");
        assert!(plan.slos[4].calendar);
        let recorded = batches(&plan, true, 500);
        // 7 windows + 30d recorded, plus the month read directly: 9 ranges × 2.
        assert_eq!(recorded.len(), 9 * 2);
        let month: Vec<_> = recorded
            .iter()
            .filter(|b| b.range_seconds == 682 * 3_600)
            .collect();
        assert_eq!(month.len(), 2);
        assert!(
            month
                .iter()
                .all(|b| b.source == Source::Direct && b.members.len() == 2)
        );
        let window = recorded
            .iter()
            .find(|b| b.range_seconds == 3_600 && b.count == Count::Total)
            .unwrap();
        assert_eq!(window.source, Source::Recorded);
        assert_eq!(window.members.len(), 5);
        assert_eq!(
            window.promql,
            "sum by (namespace, slo) (budgetgate:slo_events:increase1h)"
        );
    }

    #[test]
    fn an_slo_with_an_unusable_indicator_is_planned_but_not_queried() {
        let mut index = index(1, 0);
        let spec = index.slos.values_mut().next().unwrap();
        spec.indicator = latency("h_bucket", "soon");
        let plan = plan(&index, at());
        assert_eq!(
            plan.slos[0].events,
            Err("latency.threshold: \"soon\" is not a bucket bound such as \"0.3\"".into())
        );
        assert!(batches(&plan, false, 500).is_empty());
    }

    fn raw(errors: &str, total: &str) -> Indicator {
        Indicator {
            raw: Some(RawIndicator {
                error_query: errors.into(),
                total_query: total.into(),
            }),
            ..Indicator::default()
        }
    }

    fn five_minutes() -> Duration {
        Duration::parse("5m").unwrap()
    }

    #[test]
    fn stable_is_every_series_not_labelled_canary() {
        assert_eq!(track_matcher("track", Track::Canary), r#"track="canary""#);
        assert_eq!(track_matcher("track", Track::Stable), r#"track!="canary""#);
        assert_eq!(
            track_matcher("rollout_track", Track::Stable),
            r#"rollout_track!="canary""#
        );
    }

    #[test]
    fn ratio_tracks_add_the_matcher_to_both_selectors() {
        let events = Events::from_indicator(
            &ratio(
                r#"http_requests_total{service="checkout",code=~"5.."}"#,
                r#"http_requests_total{service="checkout"}"#,
            ),
            &OPEN,
        )
        .unwrap();
        let expr = |count, track| {
            events
                .track_expr(count, track, "track", None, "5m")
                .unwrap()
        };
        assert_eq!(
            expr(Count::Bad, Track::Canary),
            r#"sum(increase(http_requests_total{service="checkout",code=~"5..",track="canary"}[5m]))"#
        );
        assert_eq!(
            expr(Count::Total, Track::Canary),
            r#"sum(increase(http_requests_total{service="checkout",track="canary"}[5m]))"#
        );
        assert_eq!(
            expr(Count::Bad, Track::Stable),
            r#"sum(increase(http_requests_total{service="checkout",code=~"5..",track!="canary"}[5m]))"#
        );
        assert_eq!(
            expr(Count::Total, Track::Stable),
            r#"sum(increase(http_requests_total{service="checkout",track!="canary"}[5m]))"#
        );
    }

    #[test]
    fn a_check_in_one_cluster_adds_the_cluster_matcher_to_both_tracks_and_raw_queries() {
        let cluster = cluster_matcher("k8s_cluster", "eu-1");
        assert_eq!(cluster, r#"k8s_cluster="eu-1""#);
        let events =
            Events::from_indicator(&ratio("errors_total", "requests_total{}"), &OPEN).unwrap();
        assert_eq!(
            events
                .track_expr(Count::Bad, Track::Canary, "track", Some(&cluster), "90s")
                .unwrap(),
            r#"sum(increase(errors_total{track="canary",k8s_cluster="eu-1"}[90s]))"#
        );
        assert_eq!(
            events
                .track_expr(Count::Total, Track::Stable, "track", Some(&cluster), "90s")
                .unwrap(),
            r#"sum(increase(requests_total{track!="canary",k8s_cluster="eu-1"}[90s]))"#
        );
        // Budgets (no track) never carry it: they sum over every cluster.
        assert_eq!(
            events.expr(Count::Bad, "30d"),
            "sum(increase(errors_total[30d]))"
        );
        let raw = Events::from_indicator(
            &raw(
                "sum(rate(e{ {{track}} }[{{window}}]))",
                "sum(rate(t{ {{track}} }[{{window}}]))",
            ),
            &OPEN,
        )
        .unwrap();
        assert_eq!(
            raw.track_expr(Count::Bad, Track::Canary, "track", Some(&cluster), "1m")
                .unwrap(),
            r#"sum(sum(rate(e{ track="canary",k8s_cluster="eu-1" }[1m])))"#
        );
    }

    #[test]
    fn track_matchers_fit_selectors_without_braces_or_with_empty_ones() {
        let events =
            Events::from_indicator(&ratio("errors_total", "requests_total{}"), &OPEN).unwrap();
        assert_eq!(
            events
                .track_expr(Count::Bad, Track::Canary, "rollout_track", None, "90s")
                .unwrap(),
            r#"sum(increase(errors_total{rollout_track="canary"}[90s]))"#
        );
        assert_eq!(
            events
                .track_expr(Count::Total, Track::Stable, "rollout_track", None, "90s")
                .unwrap(),
            r#"sum(increase(requests_total{rollout_track!="canary"}[90s]))"#
        );
    }

    #[test]
    fn latency_tracks_keep_bad_as_inf_bucket_minus_threshold_bucket_within_the_track() {
        let events = Events::from_indicator(
            &latency(
                r#"http_request_duration_seconds_bucket{service="cart"}"#,
                "0.3",
            ),
            &OPEN,
        )
        .unwrap();
        assert_eq!(
            events
                .track_expr(Count::Bad, Track::Canary, "rollout_track", None, "4m")
                .unwrap(),
            r#"sum(increase(http_request_duration_seconds_bucket{service="cart",le="+Inf",rollout_track="canary"}[4m])) - sum(increase(http_request_duration_seconds_bucket{service="cart",le=~"0[.]30*",rollout_track="canary"}[4m]))"#
        );
        assert_eq!(
            events
                .track_expr(Count::Total, Track::Stable, "rollout_track", None, "4m")
                .unwrap(),
            r#"sum(increase(http_request_duration_seconds_bucket{service="cart",le="+Inf",rollout_track!="canary"}[4m]))"#
        );
    }

    #[test]
    fn raw_tracks_expand_the_track_placeholder_to_the_matcher() {
        let events = Events::from_indicator(
            &raw(
                r#"sum(rate(x_errors_total{job="x",{{track}}}[{{window}}])) * 60"#,
                r#"sum(increase(x_total{ {{track}} }[{{window}}]))"#,
            ),
            &OPEN,
        )
        .unwrap();
        assert_eq!(
            events
                .track_expr(Count::Bad, Track::Canary, "track", None, "5m")
                .unwrap(),
            r#"sum(sum(rate(x_errors_total{job="x",track="canary"}[5m])) * 60)"#
        );
        assert_eq!(
            events
                .track_expr(Count::Total, Track::Stable, "track", None, "5m")
                .unwrap(),
            r#"sum(sum(increase(x_total{ track!="canary" }[5m])))"#
        );
        // Budgets read the whole service: `{{track}}` becomes a matcher every series
        // passes (left as it was, it made the budget's query invalid PromQL).
        assert_eq!(
            events.expr(Count::Total, "1h"),
            r#"sum(sum(increase(x_total{ track=~".*" }[1h])))"#
        );
        assert_eq!(
            events.expr(Count::Bad, "1h"),
            r#"sum(sum(rate(x_errors_total{job="x",track=~".*"}[1h])) * 60)"#
        );
    }

    #[test]
    fn a_raw_indicator_without_the_track_placeholder_in_both_queries_cannot_be_split() {
        let neither = Events::from_indicator(
            &raw(
                "sum(increase(x_errors_total[{{window}}]))",
                "sum(increase(x_total[{{window}}]))",
            ),
            &OPEN,
        )
        .unwrap();
        let one = Events::from_indicator(
            &raw(
                "sum(increase(x_errors_total{ {{track}} }[{{window}}]))",
                "sum(increase(x_total[{{window}}]))",
            ),
            &OPEN,
        )
        .unwrap();
        for events in [&neither, &one] {
            for (count, track) in TRACK_SERIES {
                assert_eq!(events.track_expr(count, track, "track", None, "5m"), None);
            }
        }
    }

    #[test]
    fn a_canary_check_is_one_union_tagged_by_slo_and_series() {
        let checkout = ObjectKey::new("shop", "checkout");
        let search = ObjectKey::new("search", "query");
        let whole = ObjectKey::new("search", "whole");
        let broken = ObjectKey::new("shop", "broken");
        let slos = [
            (
                checkout.clone(),
                Events::from_indicator(&ratio("e", "t"), &OPEN),
            ),
            (
                whole.clone(),
                Events::from_indicator(
                    &raw(
                        "sum(increase(e[{{window}}]))",
                        "sum(increase(t[{{window}}]))",
                    ),
                    &OPEN,
                ),
            ),
            (broken.clone(), Err("ratio.errors: nonsense".to_owned())),
            (
                search.clone(),
                Events::from_indicator(&raw("e{ {{track}} }", "t{ {{track}} }"), &OPEN),
            ),
        ];
        let query = track_query(&slos, "track", None, &five_minutes());
        assert_eq!(query.whole_service, [whole]);
        assert_eq!(
            query.invalid,
            [(broken, "ratio.errors: nonsense".to_owned())]
        );
        let term = |slo: &str, series: &str, expr: &str| {
            format!(
                r#"label_replace(label_replace({expr}, "budgetgate_slo", "{slo}", "", ""), "budgetgate_series", "{series}", "", "")"#
            )
        };
        let shop = [
            term(
                "shop/checkout",
                "bad_canary",
                r#"sum(increase(e{track="canary"}[5m]))"#,
            ),
            term(
                "shop/checkout",
                "total_canary",
                r#"sum(increase(t{track="canary"}[5m]))"#,
            ),
            term(
                "shop/checkout",
                "bad_stable",
                r#"sum(increase(e{track!="canary"}[5m]))"#,
            ),
            term(
                "shop/checkout",
                "total_stable",
                r#"sum(increase(t{track!="canary"}[5m]))"#,
            ),
        ];
        let shop = format!(
            "(({}) or ({})) or (({}) or ({}))",
            shop[0], shop[1], shop[2], shop[3]
        );
        let search_terms = [
            term("search/query", "bad_canary", r#"sum(e{ track="canary" })"#),
            term(
                "search/query",
                "total_canary",
                r#"sum(t{ track="canary" })"#,
            ),
            term("search/query", "bad_stable", r#"sum(e{ track!="canary" })"#),
            term(
                "search/query",
                "total_stable",
                r#"sum(t{ track!="canary" })"#,
            ),
        ];
        let search_union = format!(
            "(({}) or ({})) or (({}) or ({}))",
            search_terms[0], search_terms[1], search_terms[2], search_terms[3]
        );
        assert_eq!(
            query.members,
            [
                (checkout.clone(), shop.clone()),
                (search.clone(), search_union.clone())
            ]
        );
        assert_eq!(query.promql, format!("({shop}) or ({search_union})"));
        assert_eq!(query.describe(), "canary check (2 SLOs)");

        let (first, second) = query.halves().unwrap();
        assert_eq!(first.promql, shop);
        assert_eq!(second.promql, search_union);
        assert_eq!(second.members, [(search, search_union.clone())]);
        assert!(first.whole_service.is_empty() && first.invalid.is_empty());
        assert_eq!(second.halves(), None);
    }

    #[test]
    fn a_track_label_that_is_not_a_label_name_queries_nothing() {
        let key = ObjectKey::new("shop", "checkout");
        let slos = [(key.clone(), Events::from_indicator(&ratio("e", "t"), &OPEN))];
        for label in ["", "1track", "track\"}", "rollout-track"] {
            let query = track_query(&slos, label, None, &five_minutes());
            assert_eq!(query.promql, "", "{label}");
            assert_eq!(
                query.invalid,
                [(
                    key.clone(),
                    format!("canary.trackLabel {label:?} is not a Prometheus label name")
                )]
            );
        }
        assert_eq!(
            track_query(&slos, "_track2", None, &five_minutes())
                .members
                .len(),
            1
        );
    }

    #[test]
    fn a_check_with_nothing_to_split_sends_nothing() {
        let key = ObjectKey::new("search", "whole");
        let query = track_query(
            &[(key.clone(), Events::from_indicator(&raw("e", "t"), &OPEN))],
            "track",
            None,
            &five_minutes(),
        );
        assert_eq!(
            query,
            TrackQuery {
                promql: String::new(),
                members: Vec::new(),
                whole_service: vec![key],
                invalid: Vec::new(),
            }
        );
        assert_eq!(query.halves(), None);
    }

    #[test]
    fn track_series_names_are_distinct_and_in_union_order() {
        let names: Vec<&str> = TRACK_SERIES
            .iter()
            .map(|&(count, track)| series_name(count, track))
            .collect();
        assert_eq!(
            names,
            ["bad_canary", "total_canary", "bad_stable", "total_stable"]
        );
        let counts = TrackCounts::from_fn(|count, track| match (count, track) {
            (Count::Bad, Track::Canary) => 1.0,
            (Count::Total, Track::Canary) => 2.0,
            (Count::Bad, Track::Stable) => 3.0,
            (Count::Total, Track::Stable) => 4.0,
        });
        assert_eq!(
            counts,
            TrackCounts {
                canary_bad: 1.0,
                canary_total: 2.0,
                stable_bad: 3.0,
                stable_total: 4.0,
            }
        );
    }
}
