//! The Grafana dashboard (`manifests/grafana/budgetgate-overview.json`) reads only series
//! budgetgate produces: the recording rules of `budgetgate rules` (on the samples) and the
//! webhook's and controller's own metrics, with the labels those series carry; and every
//! template variable an expression uses is defined.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const DASHBOARD: &str = include_str!("../manifests/grafana/budgetgate-overview.json");

/// Grafana's own variables (`$__rate_interval`, `$__range`, …) need no definition.
fn is_builtin(variable: &str) -> bool {
    variable.starts_with("__")
}

/// Recorded series of `budgetgate rules --policy manifests/samples`, with the labels the
/// rules attach.
fn recorded() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_budgetgate"))
        .args(["rules", "--policy", "manifests/samples"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("BUDGETGATE_POLICY")
        .output()
        .expect("the budgetgate binary runs");
    assert_eq!(out.status.code(), Some(0));
    let file: Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in file["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if let Some(name) = rule["record"].as_str() {
                let labels = series.entry(name.to_owned()).or_default();
                for label in rule["labels"].as_object().unwrap().keys() {
                    labels.insert(label.clone());
                }
            }
        }
    }
    assert!(series.contains_key("budgetgate:slo_budget_remaining:ratio"));
    series
}

/// Series names of the webhook's and controller's registry, from its exposition's
/// `# TYPE` lines: counters end in `_total`, histograms have `_bucket`, `_sum` and
/// `_count`. A family without samples is not exposed, so each gets one.
fn exported() -> BTreeSet<String> {
    use budgetgate::webhook::metrics::*;
    let metrics = Metrics::default();
    let labels = RequestLabels {
        webhook: "validate",
        operation: "UPDATE",
        decision: "allow",
        reason: "within_budget",
    };
    metrics.requests.get_or_create(&labels).inc();
    let webhook = WebhookLabel {
        webhook: "validate",
    };
    metrics.duration.get_or_create(&webhook).observe(0.001);
    metrics.state_age.set(1.0);
    let namespace = NamespaceLabel {
        namespace: "shop".into(),
    };
    metrics.would_deny.get_or_create(&namespace).inc();
    let source = SourceLabel { source: "watch" };
    metrics.rejected.get_or_create(&source).inc();
    metrics.reload_errors.get_or_create(&source).inc();
    let outcome = OutcomeLabels {
        team: "payments".into(),
        outcome: "promoted",
    };
    metrics.rollouts.get_or_create(&outcome).inc();
    let deployment = DeploymentLabels {
        namespace: "shop".into(),
        deployment: "checkout".into(),
    };
    metrics.rollout_stage.get_or_create(&deployment).set(1);
    metrics.rollback_seconds.observe(3.0);
    let text = metrics.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    assert!(names.contains("budgetgate_admission_requests_total"));
    assert!(names.contains("budgetgate_rollback_seconds_bucket"));
    names
}

const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
];

/// The metric selectors of a PromQL expression: (metric name, label names matched).
/// Label matcher values, ranges and the label lists of `by (…)` / `on (…)` are skipped;
/// a name followed by `(` is a function.
fn selectors(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '(' && skip_list {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            i += 1;
            skip_list = false;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':' | '$'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            let next = chars.get(j).copied();
            if PROMQL_WORDS.contains(&word.to_lowercase().as_str()) {
                skip_list = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                continue;
            }
            if next == Some('(') || word.starts_with('$') {
                continue;
            }
            let mut labels = BTreeSet::new();
            if next == Some('{') {
                // label names: the words outside quotes.
                let mut k = j + 1;
                while k < chars.len() && chars[k] != '}' {
                    if chars[k] == '"' {
                        k += 1;
                        while k < chars.len() && chars[k] != '"' {
                            k += if chars[k] == '\\' { 2 } else { 1 };
                        }
                        k += 1;
                    } else if chars[k].is_ascii_alphabetic() || chars[k] == '_' {
                        let start = k;
                        while k < chars.len()
                            && (chars[k].is_ascii_alphanumeric() || chars[k] == '_')
                        {
                            k += 1;
                        }
                        labels.insert(chars[start..k].iter().collect());
                    } else {
                        k += 1;
                    }
                }
                i = k + 1;
            }
            out.push((word, labels));
        } else {
            i += 1;
        }
    }
    out
}

/// `$name` and `${name}` references in a text.
fn variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

struct Variables {
    defined: BTreeSet<String>,
    /// Options of custom variables, for names built with them (`increase$period`).
    options: BTreeMap<String, Vec<String>>,
}

fn template_variables(dashboard: &Value) -> Variables {
    let mut defined = BTreeSet::new();
    let mut options = BTreeMap::new();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap().to_owned();
        if variable["type"] == "custom" {
            let values = variable["query"]
                .as_str()
                .unwrap()
                .split(',')
                .map(|v| v.trim().to_owned())
                .collect();
            options.insert(name.clone(), values);
        }
        defined.insert(name);
    }
    Variables { defined, options }
}

/// Each PromQL text of the dashboard (panel targets and variable queries), with where it is.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            out.push((format!("panel {:?}", panel["title"]), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"].as_str().unwrap();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _)| selector)
            .unwrap_or(query);
        out.push((format!("variable {:?}", variable["name"]), inner.to_owned()));
    }
    out
}

/// Expands custom variables inside metric names into each of their options.
fn expand(name: &str, variables: &Variables) -> Vec<String> {
    let mut names = vec![name.to_owned()];
    for (variable, options) in &variables.options {
        let token = format!("${variable}");
        names = names
            .into_iter()
            .flat_map(|n| {
                if n.contains(&token) {
                    options.iter().map(|o| n.replace(&token, o)).collect()
                } else {
                    vec![n]
                }
            })
            .collect();
    }
    names
}

#[test]
fn the_expression_reader_finds_metrics_and_their_labels() {
    let found = selectors(
        r#"max by (team, tier) (a:b:c{team=~"$team",tier="x,y"} / on (slo) rate(d_total[$__rate_interval])) * increase$period{slo=~"$slo"}"#,
    );
    let names: Vec<(&str, Vec<&str>)> = found
        .iter()
        .map(|(n, l)| (n.as_str(), l.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        names,
        [
            ("a:b:c", vec!["team", "tier"]),
            ("d_total", vec![]),
            ("increase$period", vec!["slo"]),
        ]
    );
    assert_eq!(
        variables("x{a=~\"$team\"}[${__range}] $period"),
        ["__range", "period", "team"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
}

#[test]
fn every_expression_reads_only_series_budgetgate_produces() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let variables = template_variables(&dashboard);
    let recorded = recorded();
    let exported = exported();
    let mut checked = 0;
    for (place, expr) in expressions(&dashboard) {
        let found = selectors(&expr);
        assert!(!found.is_empty(), "{place}: no metric in {expr}");
        for (name, labels) in found {
            for name in expand(&name, &variables) {
                checked += 1;
                if let Some(rule_labels) = recorded.get(&name) {
                    assert!(
                        labels.is_subset(rule_labels),
                        "{place}: {name} is recorded with labels {rule_labels:?}, not {labels:?}"
                    );
                } else {
                    assert!(
                        exported.contains(&name),
                        "{place}: {name} is neither recorded by `budgetgate rules` nor exported by budgetgate"
                    );
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} metric references");
}

#[test]
fn every_variable_used_is_defined() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let variables = template_variables(&dashboard);
    for wanted in ["datasource", "team", "tier", "namespace", "slo"] {
        assert!(
            variables.defined.contains(wanted),
            "{wanted} is not defined"
        );
    }
    for panel in panels(&dashboard) {
        let mut used = variables_of(&panel["title"]);
        used.extend(variables_of(&panel["datasource"]));
        for target in panel["targets"].as_array().into_iter().flatten() {
            used.extend(variables_of(target));
        }
        for name in used.iter().filter(|n| !is_builtin(n)) {
            assert!(
                variables.defined.contains(name),
                "panel {:?} uses ${name}, which the dashboard does not define",
                panel["title"]
            );
        }
    }
}

fn variables_of(value: &Value) -> BTreeSet<String> {
    variables(&value.to_string())
}

#[test]
fn panels_have_unique_ids_and_the_promised_views() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let all = panels(&dashboard);
    let ids: BTreeSet<u64> = all.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "panel ids repeat");
    let titles: Vec<&str> = all.iter().map(|p| p["title"].as_str().unwrap()).collect();
    for want in [
        "Platform overview",
        "Remaining error budget per team (worst SLO)",
        "Burn rate 1h / 6h per team (highest SLO)",
        "Remaining budget over time per team (worst SLO)",
        "Admission decisions by reason",
        "Rollouts by outcome",
        "Canary stage",
        "Time to roll back (p50 / p90)",
        "Team drill-down: $team",
    ] {
        assert!(titles.contains(&want), "no panel {want:?}");
    }
}
