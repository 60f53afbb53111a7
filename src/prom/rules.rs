//! `budgetgate rules`: Prometheus recording rules and multi-window multi-burn-rate alerts
//! generated from the ServiceLevelObjectives (DESIGN §4, §8). Pure.
//!
//! Per SLO, one group records the bad and total event counts (`increase`) over each burn
//! window of its tier and holds the tier's alert pairs; a second group, evaluated less
//! often, records the counts over the period (the full rolling window: event-weighted, by
//! summing counts, never by averaging ratios over time), the remaining budget, and alerts
//! when it is exhausted. Every series carries the labels `team`, `tier`, `namespace`, `slo`.
//! The evaluator (`status --prometheus --use-recording-rules`) reads the same series.

use super::query::{self, Count, Events};
use crate::api::{CalendarPeriod, Duration, Severity, Window};
use crate::budget::{alert_factor, budget_ratio};
use crate::index::{Index, ObjectKey};
use serde::Serialize;
use std::collections::BTreeMap;

pub const TEAM_LABEL: &str = "team";
pub const TIER_LABEL: &str = "tier";
pub const NAMESPACE_LABEL: &str = "namespace";
pub const SLO_LABEL: &str = "slo";

/// Remaining budget over the period: `1 − bad / (b · total)`, 1 without traffic.
pub const REMAINING_METRIC: &str = "budgetgate:slo_budget_remaining:ratio";
pub const BURN_ALERT: &str = "BudgetgateErrorBudgetBurn";
pub const EXHAUSTED_ALERT: &str = "BudgetgateErrorBudgetExhausted";
/// Interval of the period groups: a 30-day `increase` is costly, and a budget moves slowly.
/// Below Prometheus's 5m lookback, so the recorded series never look stale.
pub const PERIOD_INTERVAL: &str = "2m";

/// The recorded counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    BadEvents,
    Events,
}

/// `budgetgate:slo_bad_events:increase5m`: the name of a recorded count over `range`
/// (written in its largest exact unit, so `60m` and `1h` record one series).
pub fn increase_metric(metric: Metric, range: &Duration) -> String {
    let kind = match metric {
        Metric::BadEvents => "slo_bad_events",
        Metric::Events => "slo_events",
    };
    format!(
        "budgetgate:{kind}:increase{}",
        Duration::from_seconds(range.seconds())
    )
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    pub rules: Vec<Rule>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum Rule {
    Record {
        record: String,
        expr: String,
        labels: BTreeMap<String, String>,
    },
    Alert {
        alert: String,
        expr: String,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
}

/// The `monitoring.coreos.com/v1` PrometheusRule of the Prometheus Operator.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRule {
    pub api_version: String,
    pub kind: String,
    pub metadata: PrometheusRuleMeta,
    pub spec: RuleFile,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PrometheusRuleMeta {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl RuleFile {
    pub fn into_prometheus_rule(self) -> PrometheusRule {
        PrometheusRule {
            api_version: "monitoring.coreos.com/v1".into(),
            kind: "PrometheusRule".into(),
            metadata: PrometheusRuleMeta {
                name: "budgetgate-slos".into(),
                labels: BTreeMap::from([(
                    "app.kubernetes.io/managed-by".into(),
                    "budgetgate".into(),
                )]),
            },
            spec: self,
        }
    }
}

/// A float for PromQL and people: at most 9 decimals, no trailing zeros (`14.4`, `0.001`).
fn number(value: f64) -> String {
    let text = format!("{value:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Seconds of a period for alert factors. A calendar period's length changes from month to
/// month; static rules use 30 days for a month and 91 for a quarter.
fn nominal_period_seconds(window: &Window) -> u64 {
    match window {
        Window::Rolling(d) => d.seconds(),
        Window::Calendar(CalendarPeriod::Month) => 30 * 86_400,
        Window::Calendar(CalendarPeriod::Quarter) => 91 * 86_400,
    }
}

/// The rules for every SLO of the index whose tier the policy defines, ordered by SLO, and
/// notes on what was left out.
pub fn rule_file(index: &Index) -> (RuleFile, Vec<String>) {
    let mut groups = Vec::new();
    let mut notes = Vec::new();
    let Some(policy) = &index.policy else {
        return (RuleFile { groups }, notes);
    };
    for (key, spec) in &index.slos {
        let meta = index.namespaces.get(&key.namespace);
        let tier_name = meta
            .and_then(|m| m.tier.clone())
            .unwrap_or_else(|| policy.default_tier.clone());
        let Some(tier) = policy.tier(&tier_name) else {
            notes.push(format!(
                "{key}: tier {tier_name:?} is not in the policy; no rules"
            ));
            continue;
        };
        let events =
            match Events::from_indicator(&spec.indicator, &policy.confinement(&key.namespace)) {
                Ok(events) => events,
                Err(why) => {
                    notes.push(format!("{key}: no rules: {why}"));
                    continue;
                }
            };
        let mut labels = BTreeMap::from([
            (TIER_LABEL.to_owned(), tier_name.clone()),
            (NAMESPACE_LABEL.to_owned(), key.namespace.clone()),
            (SLO_LABEL.to_owned(), key.name.clone()),
        ]);
        if let Some(team) = meta.and_then(|m| m.team.clone()) {
            labels.insert(TEAM_LABEL.to_owned(), team);
        }
        let window = spec.window.as_ref().unwrap_or(&tier.window);
        let b = budget_ratio(spec.objective);
        let selector = format!(
            "{{{NAMESPACE_LABEL}={},{SLO_LABEL}={}}}",
            query::quote(&key.namespace),
            query::quote(&key.name)
        );
        let recorded =
            |metric, range: &Duration| format!("{}{selector}", increase_metric(metric, range));
        let record = |metric, range: &Duration, count| Rule::Record {
            record: increase_metric(metric, range),
            expr: events.expr(count, Duration::from_seconds(range.seconds()).as_str()),
            labels: labels.clone(),
        };

        let mut windows: Vec<Duration> = tier.burn_windows().into_iter().collect();
        windows.dedup_by_key(|w| w.seconds());
        let mut rules = Vec::new();
        for w in &windows {
            rules.push(record(Metric::BadEvents, w, Count::Bad));
            rules.push(record(Metric::Events, w, Count::Total));
        }
        let period_seconds = nominal_period_seconds(window) as f64;
        for pair in &tier.alert_windows {
            let factor = alert_factor(pair.budget_percent, period_seconds, pair.long.as_secs_f64());
            // bad > factor · b · total, on both windows: no division, so no NaN without traffic.
            let over = |w: &Duration| {
                format!(
                    "{} > {} * {} * {}",
                    recorded(Metric::BadEvents, w),
                    number(factor),
                    number(b),
                    recorded(Metric::Events, w)
                )
            };
            let severity = match pair.severity {
                Severity::Page => "page",
                Severity::Ticket => "ticket",
            };
            let mut alert_labels = labels.clone();
            alert_labels.insert("severity".into(), severity.into());
            alert_labels.insert("alert_window".into(), pair.name.clone());
            rules.push(Rule::Alert {
                alert: BURN_ALERT.into(),
                expr: format!("({}) and ({})", over(&pair.long), over(&pair.short)),
                labels: alert_labels,
                annotations: BTreeMap::from([
                    (
                        "summary".into(),
                        format!(
                            "SLO {key} burns its error budget faster than {}x over {} and {}",
                            number(factor),
                            pair.long,
                            pair.short
                        ),
                    ),
                    (
                        "description".into(),
                        format!(
                            "At this rate {}% of the {} error budget of {key} (objective {}%) is spent within {}. Alert pair {} ({}).",
                            number(pair.budget_percent),
                            window.label(),
                            number(spec.objective),
                            pair.long,
                            pair.name,
                            severity
                        ),
                    ),
                ]),
            });
        }
        groups.push(RuleGroup {
            name: format!("budgetgate.{}.{}", key.namespace, key.name),
            interval: None,
            rules,
        });

        let Window::Rolling(period) = window else {
            notes.push(format!(
                "{key}: {} period: no period rules or exhaustion alert (a rule cannot record \
                 the elapsed part of a calendar period; the evaluator reads it directly)",
                window.label()
            ));
            continue;
        };
        let exhausted_at = tier.bands.last().map_or(0.0, |band| band.min_remaining);
        // A period as long as a burn window is already recorded by the first group.
        let counts = (!windows.iter().any(|w| w.seconds() == period.seconds())).then_some(&events);
        groups.push(period_group(
            key,
            period,
            b,
            exhausted_at,
            &labels,
            counts,
            &selector,
        ));
    }
    (RuleFile { groups }, notes)
}

fn period_group(
    key: &ObjectKey,
    period: &Duration,
    b: f64,
    exhausted_at: f64,
    labels: &BTreeMap<String, String>,
    counts: Option<&Events>,
    selector: &str,
) -> RuleGroup {
    let range = Duration::from_seconds(period.seconds());
    let bad = format!("{}{selector}", increase_metric(Metric::BadEvents, period));
    let total = format!("{}{selector}", increase_metric(Metric::Events, period));
    let mut alert_labels = labels.clone();
    alert_labels.insert("severity".into(), "ticket".into());
    let mut rules = Vec::new();
    if let Some(events) = counts {
        for (metric, count) in [
            (Metric::BadEvents, Count::Bad),
            (Metric::Events, Count::Total),
        ] {
            rules.push(Rule::Record {
                record: increase_metric(metric, period),
                expr: events.expr(count, range.as_str()),
                labels: labels.clone(),
            });
        }
    }
    rules.extend([
            Rule::Record {
                record: REMAINING_METRIC.into(),
                // The `> 0` filter drops the division without traffic; `or` then says 1.
                expr: format!(
                    "1 - {bad} / ({} * {total} > 0) or 0 * {total} + 1",
                    number(b)
                ),
                labels: labels.clone(),
            },
            Rule::Alert {
                alert: EXHAUSTED_ALERT.into(),
                expr: format!("{REMAINING_METRIC}{selector} <= {}", number(exhausted_at)),
                labels: alert_labels,
                annotations: BTreeMap::from([(
                    "summary".into(),
                    format!(
                        "SLO {key} has spent its {period} error budget: rollouts of the Deployments it covers are frozen"
                    ),
                )]),
            },
    ]);
    RuleGroup {
        name: format!("budgetgate.{}.{}.period", key.namespace, key.name),
        interval: Some(PERIOD_INTERVAL.into()),
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_exact_enough() {
        assert_eq!(number(alert_factor(2.0, 2_592_000.0, 3_600.0)), "14.4");
        assert_eq!(number(budget_ratio(99.9)), "0.001");
        assert_eq!(
            number(alert_factor(10.0, 2_419_200.0, 259_200.0)),
            "0.933333333"
        );
        assert_eq!(number(0.0), "0");
        assert_eq!(number(-0.0), "0");
    }

    #[test]
    fn recorded_names_use_the_largest_exact_unit() {
        assert_eq!(
            increase_metric(Metric::BadEvents, &Duration::parse("60m").unwrap()),
            "budgetgate:slo_bad_events:increase1h"
        );
        assert_eq!(
            increase_metric(Metric::Events, &Duration::parse("30d").unwrap()),
            "budgetgate:slo_events:increase30d"
        );
    }

    fn index(window: &str) -> Index {
        let policy: crate::api::ReliabilityPolicySpec = serde_yaml_ng::from_str(
            r#"
tiers:
  production:
    bands:
      - {name: healthy, minRemaining: 0.5, plan: {steps: [100], pause: 1m}}
      - {name: critical, minRemaining: 0.1, plan: {steps: [100], pause: 1m}}
    alertWindows:
      - {name: page-fast, severity: page, long: 1h, short: 5m, budgetPercent: 2}
"#,
        )
        .unwrap();
        let slo: crate::api::ServiceLevelObjectiveSpec = serde_yaml_ng::from_str(&format!(
            r#"
service: checkout
objective: 99.9
window: {window}
indicator: {{ratio: {{errors: 'e{{code="500"}}', total: 'e'}}}}
"#
        ))
        .unwrap();
        let mut index = Index {
            policy: Some(crate::policy::Policy::from_spec(&policy).unwrap()),
            ..Index::default()
        };
        index.namespaces.insert(
            "shop".into(),
            crate::index::NamespaceMeta {
                team: Some("payments".into()),
                ..Default::default()
            },
        );
        index.slos.insert(ObjectKey::new("shop", "checkout"), slo);
        index
    }

    #[test]
    fn an_slo_gets_window_counts_alerts_and_a_period_group() {
        let (file, notes) = rule_file(&index("30d"));
        assert!(notes.is_empty());
        let names: Vec<_> = file
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.rules.len()))
            .collect();
        // 2 windows × 2 counts + 1 alert; period counts, remaining and exhaustion.
        assert_eq!(
            names,
            [
                ("budgetgate.shop.checkout", 5),
                ("budgetgate.shop.checkout.period", 4)
            ]
        );
        let labels = BTreeMap::from([
            ("namespace".to_owned(), "shop".to_owned()),
            ("slo".into(), "checkout".into()),
            ("team".into(), "payments".into()),
            ("tier".into(), "production".into()),
        ]);
        assert_eq!(
            file.groups[0].rules[0],
            Rule::Record {
                record: "budgetgate:slo_bad_events:increase5m".into(),
                // Confined to the SLO's namespace by the parser-checked selector.
                expr: r#"sum(increase(e{code="500",namespace="shop"}[5m]))"#.into(),
                labels: labels.clone(),
            }
        );
        let Rule::Alert {
            expr,
            labels: alert_labels,
            ..
        } = &file.groups[0].rules[4]
        else {
            panic!("the fifth rule is the alert");
        };
        let s = r#"{namespace="shop",slo="checkout"}"#;
        assert_eq!(
            *expr,
            format!(
                "(budgetgate:slo_bad_events:increase1h{s} > 14.4 * 0.001 * budgetgate:slo_events:increase1h{s}) \
                 and (budgetgate:slo_bad_events:increase5m{s} > 14.4 * 0.001 * budgetgate:slo_events:increase5m{s})"
            )
        );
        assert_eq!(alert_labels["severity"], "page");
        assert_eq!(alert_labels["alert_window"], "page-fast");
        let period = &file.groups[1];
        assert_eq!(period.interval.as_deref(), Some("2m"));
        let Rule::Record { expr, .. } = &period.rules[2] else {
            panic!("the third rule records the remaining budget");
        };
        assert_eq!(
            *expr,
            format!(
                "1 - budgetgate:slo_bad_events:increase30d{s} / (0.001 * budgetgate:slo_events:increase30d{s} > 0) \
                 or 0 * budgetgate:slo_events:increase30d{s} + 1"
            )
        );
        let Rule::Alert { expr, .. } = &period.rules[3] else {
            panic!("the last rule is the exhaustion alert");
        };
        // Exhausted at or below the lowest band's minRemaining.
        assert_eq!(
            *expr,
            format!("budgetgate:slo_budget_remaining:ratio{s} <= 0.1")
        );
    }

    #[test]
    fn a_calendar_period_gets_no_period_group() {
        let (file, notes) = rule_file(&index("{calendar: month}"));
        assert_eq!(file.groups.len(), 1);
        assert_eq!(
            notes,
            [
                "shop/checkout: calendar:month period: no period rules or exhaustion alert (a rule \
              cannot record the elapsed part of a calendar period; the evaluator reads it directly)"
            ]
        );
    }

    #[test]
    fn a_period_as_long_as_a_window_is_recorded_once() {
        let (file, _) = rule_file(&index("1h"));
        assert_eq!(
            file.groups[1].rules.len(),
            2,
            "remaining and exhaustion only"
        );
    }
}
