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

use super::rules::{self, Metric};
use crate::api::{Duration, Indicator, Timestamp, Window};
use crate::budget::Period;
use crate::index::{Index, ObjectKey};
use std::collections::BTreeMap;

/// Label that tags each SLO's sample in a batched union: `namespace/name`.
pub const SLO_LABEL: &str = "budgetgate_slo";

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
    /// PromQL templates with `{{window}}`.
    Raw { errors: String, total: String },
}

impl Events {
    /// Checks the indicator and prepares its selectors.
    pub fn from_indicator(indicator: &Indicator) -> Result<Events, String> {
        indicator.validate()?;
        if let Some(ratio) = &indicator.ratio {
            check_selector("ratio.errors", &ratio.errors)?;
            check_selector("ratio.total", &ratio.total)?;
            return Ok(Events::Ratio {
                errors: ratio.errors.trim().to_owned(),
                total: ratio.total.trim().to_owned(),
            });
        }
        if let Some(latency) = &indicator.latency {
            check_selector("latency.histogram", &latency.histogram)?;
            if matches_on_le(&latency.histogram) {
                return Err(
                    "latency.histogram must not match on le: budgetgate adds the bucket matchers"
                        .into(),
                );
            }
            let le = le_regex(&latency.threshold)?;
            return Ok(Events::Latency {
                total: with_matcher(&latency.histogram, r#"le="+Inf""#),
                good: with_matcher(&latency.histogram, &format!("le=~\"{le}\"")),
            });
        }
        match &indicator.raw {
            Some(raw) if raw.error_query.trim().is_empty() || raw.total_query.trim().is_empty() => {
                Err("raw.errorQuery and raw.totalQuery must not be empty".into())
            }
            Some(raw) => Ok(Events::Raw {
                errors: raw.error_query.trim().to_owned(),
                total: raw.total_query.trim().to_owned(),
            }),
            None => Err("one of ratio, latency or raw is required".into()),
        }
    }

    /// The PromQL of one count over `range` (Prometheus duration syntax): one sample without
    /// labels, or nothing when the series are missing.
    pub fn expr(&self, count: Count, range: &str) -> String {
        let increase = |selector: &str| format!("sum(increase({selector}[{range}]))");
        match (self, count) {
            (Events::Ratio { errors, .. }, Count::Bad) => increase(errors),
            (Events::Ratio { total, .. }, Count::Total) => increase(total),
            (Events::Latency { total, good }, Count::Bad) => {
                format!("{} - {}", increase(total), increase(good))
            }
            (Events::Latency { total, .. }, Count::Total) => increase(total),
            (Events::Raw { errors, .. }, Count::Bad) => {
                format!("sum({})", errors.replace("{{window}}", range))
            }
            (Events::Raw { total, .. }, Count::Total) => {
                format!("sum({})", total.replace("{{window}}", range))
            }
        }
    }
}

/// A metric selector: `name`, `name{…}` or `{…}` — something `[range]` can follow.
fn check_selector(field: &str, selector: &str) -> Result<(), String> {
    let s = selector.trim();
    let name_len = s
        .char_indices()
        .take_while(|(i, c)| {
            c.is_ascii_alphabetic() || *c == '_' || *c == ':' || (*i > 0 && c.is_ascii_digit())
        })
        .count();
    let rest = s[name_len..].trim_start();
    let ok = match rest {
        "" => name_len > 0,
        r => r.starts_with('{') && r.ends_with('}'),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field}: {selector:?} is not a series selector such as http_requests_total{{code=~\"5..\"}}"
        ))
    }
}

/// Whether a selector already has a matcher on `le`.
fn matches_on_le(selector: &str) -> bool {
    let Some(open) = selector.find('{') else {
        return false;
    };
    let inner = &selector[open + 1..];
    let mut in_string: Option<char> = None;
    let mut escaped = false;
    let mut token_start = true;
    let chars: Vec<char> = inner.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if let Some(quote) = in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == quote {
                in_string = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_string = Some(c),
            ',' | '{' => token_start = true,
            c if c.is_whitespace() => {}
            'l' if token_start => {
                let after: String = chars[i + 1..].iter().collect();
                if let Some(rest) = after.strip_prefix('e')
                    && rest.trim_start().starts_with(['=', '!'])
                {
                    return true;
                }
                token_start = false;
            }
            _ => token_start = false,
        }
    }
    false
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
            events: Events::from_indicator(&spec.indicator),
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
        let exprs: Vec<&str> = members.iter().map(|(_, expr)| expr.as_str()).collect();
        let promql = union(&exprs);
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

/// `label_replace(<expr>, "budgetgate_slo", "<namespace>/<name>", "", "")`.
pub fn tagged(key: &ObjectKey, expr: &str) -> String {
    // `$` would be a capture reference in the replacement.
    let value = key.to_string().replace('$', "$$");
    format!(
        "label_replace({expr}, {}, {}, \"\", \"\")",
        quote(SLO_LABEL),
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

#[cfg(test)]
mod tests {
    use super::*;
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
        let events = Events::from_indicator(&ratio(
            r#"http_requests_total{service="checkout",code=~"5.."}"#,
            r#" http_requests_total{service="checkout"} "#,
        ))
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
        let events = Events::from_indicator(&latency(
            r#"http_request_duration_seconds_bucket{service="cart"}"#,
            "0.3",
        ))
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
        let e = Events::from_indicator(&latency(r#"h_bucket{le="0.3"}"#, "0.3")).unwrap_err();
        assert_eq!(
            e,
            "latency.histogram must not match on le: budgetgate adds the bucket matchers"
        );
        assert!(
            Events::from_indicator(&latency(r#"h_bucket{handle="x", le !~ "1"}"#, "1")).is_err()
        );
        assert!(Events::from_indicator(&latency(r#"h_bucket{file="le=1"}"#, "1")).is_ok());
        assert!(Events::from_indicator(&latency(r#"h_bucket{lease="1"}"#, "1")).is_ok());
    }

    #[test]
    fn non_selectors_are_refused_with_the_field() {
        let e = Events::from_indicator(&ratio("rate(x[5m])", "y")).unwrap_err();
        assert_eq!(
            e,
            "ratio.errors: \"rate(x[5m])\" is not a series selector such as http_requests_total{code=~\"5..\"}"
        );
        assert!(Events::from_indicator(&ratio("", "y")).is_err());
        assert!(Events::from_indicator(&ratio("{job=\"a\"}", "y:recorded")).is_ok());
    }

    #[test]
    fn raw_templates_get_the_window_and_one_sum() {
        let events = Events::from_indicator(&Indicator {
            raw: Some(RawIndicator {
                error_query: "sum(increase(x_errors_total[{{window}}]))".into(),
                total_query: "increase(x_total[{{window}}]) * 2".into(),
            }),
            ..Indicator::default()
        })
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

    #[test]
    fn a_union_tags_every_slo() {
        let plan = plan(&index(2, 0), at());
        let b = &batches(&plan, false, 500)[0];
        assert_eq!(
            (b.range_seconds, b.count, b.source),
            (300, Count::Bad, Source::Direct)
        );
        let one = r#"label_replace(sum(increase(e{i="0"}[5m])), "budgetgate_slo", "shop/slo-0000", "", "")"#;
        let two = r#"label_replace(sum(increase(e{i="1"}[5m])), "budgetgate_slo", "shop/slo-0001", "", "")"#;
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
}
