//! The review as a Markdown document a planning meeting can use as it is, as CSV (one row
//! per team and tier) and as JSON (the [`Report`] itself).

use super::{Activity, DEFINITIONS, Report, TeamRow};
use crate::api::{ReleasePhase, Timestamp};
use crate::decision::text_pct as pct;
use std::fmt::Write;

fn date(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

fn minute(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

fn opt_pct(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "-".to_owned(), pct)
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A table cell: pipes escaped, line breaks flattened.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn table_row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

fn table_head(names: &[&str]) -> String {
    let mut out = table_row(&names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>());
    out.push_str(&table_row(&vec!["---".to_owned(); names.len()]));
    out
}

const TEAM_COLUMNS: &[&str] = &[
    "Team",
    "Remaining",
    "Band",
    "State",
    "Releases",
    "Promoted",
    "Direct",
    "Rolled back",
    "Failed",
    "Observed",
    "Change failure rate",
    "Deploys/week",
    "Budget consumed by releases",
    "Incidents",
    "Incident budget consumed",
    "Overage",
    "Overdue",
    "Exception releases",
];

fn activity_cells(a: &Activity) -> Vec<String> {
    vec![
        a.releases.to_string(),
        a.phases.promoted.to_string(),
        a.phases.direct.to_string(),
        a.phases.rolled_back.to_string(),
        a.phases.failed.to_string(),
        a.phases.observed.to_string(),
        opt_pct(a.change_failure_rate),
        format!("{:.2}", a.deployment_frequency),
    ]
}

/// The row of one team in its tier's table.
pub fn team_row(t: &TeamRow) -> String {
    let mut cells = vec![
        cell(&t.team),
        opt_pct(t.remaining),
        cell(t.band.as_deref().unwrap_or("-")),
        t.state.map_or("-", |s| s.as_str()).to_owned(),
    ];
    cells.extend(activity_cells(&t.activity));
    cells.extend([
        pct(t.budget_consumed),
        t.activity.incidents.to_string(),
        pct(t.incident_budget_consumed),
        pct(t.incident_overage),
        t.activity.incidents_overdue.to_string(),
        t.activity.exception_releases.to_string(),
    ]);
    table_row(&cells)
}

fn summary(report: &Report) -> String {
    let p = &report.platform;
    let teams = report.teams.len() as u32;
    let shipping = report
        .teams
        .iter()
        .filter(|t| t.activity.releases + t.activity.phases.superseded > 0)
        .count() as u32;
    let mut out = format!(
        "From {} to {} ({}), {shipping} of {} shipped {}: {} promoted, {} direct, {} rolled back or failed",
        date(report.from),
        date(report.to),
        report.since,
        plural(teams, "team", "teams"),
        plural(p.releases, "release", "releases"),
        p.phases.promoted,
        p.phases.direct,
        p.rollbacks,
    );
    match p.change_failure_rate {
        Some(rate) => {
            let _ = write!(out, " (change failure rate {})", pct(rate));
        }
        None => out.push_str(" (no change failure rate: nothing completed)"),
    }
    let _ = write!(
        out,
        ", {:.2} deployments per week. ",
        p.deployment_frequency
    );
    let over = p.incidents_over_budget;
    let _ = write!(
        out,
        "{} overlapped the range; {} ran over the budget that was left and {} overdue. ",
        plural(p.incidents, "incident", "incidents"),
        over,
        if p.incidents_overdue == 1 {
            "1 was".to_owned()
        } else {
            format!("{} were", p.incidents_overdue)
        },
    );
    let _ = write!(
        out,
        "{} went through on a BudgetException; {} active now.",
        plural(p.exception_releases, "release", "releases"),
        if report.active_exceptions.len() == 1 {
            "1 exception is".to_owned()
        } else {
            format!("{} exceptions are", report.active_exceptions.len())
        },
    );
    let exhausted: Vec<String> = report
        .teams
        .iter()
        .filter(|t| t.state == Some(crate::api::BudgetState::Exhausted))
        .map(|t| format!("{} ({})", t.team, t.tier))
        .collect();
    if !exhausted.is_empty() {
        let _ = write!(out, " Budget exhausted now: {}.", exhausted.join(", "));
    }
    out.push('\n');
    out
}

/// The review as Markdown.
pub fn markdown(report: &Report) -> String {
    let mut out = format!(
        "# budgetgate review: {} – {}\n\n",
        date(report.from),
        date(report.to)
    );
    out.push_str(&summary(report));
    if report.unmanaged_releases > 0 {
        let _ = writeln!(
            out,
            "\n{} in namespaces without a team {} not counted.",
            plural(report.unmanaged_releases, "release", "releases"),
            if report.unmanaged_releases == 1 {
                "is"
            } else {
                "are"
            }
        );
    }
    for (tier, totals) in &report.tiers {
        let _ = write!(out, "\n## Tier {tier}\n\n");
        out.push_str(&table_head(TEAM_COLUMNS));
        for t in report.teams.iter().filter(|t| &t.tier == tier) {
            out.push_str(&team_row(t));
        }
        let mut cells = vec![
            "**total**".to_owned(),
            opt_pct(totals.remaining),
            cell(totals.band.as_deref().unwrap_or("-")),
            String::new(),
        ];
        cells.extend(activity_cells(&totals.activity));
        cells.extend([
            String::new(),
            totals.activity.incidents.to_string(),
            String::new(),
            String::new(),
            totals.activity.incidents_overdue.to_string(),
            totals.activity.exception_releases.to_string(),
        ]);
        out.push_str(&table_row(&cells));
    }
    if report.tiers.is_empty() {
        out.push_str("\nNo team had a budget or a release in the range.\n");
    }

    if report.teams.iter().any(|t| t.events_total.is_some()) {
        let _ = write!(
            out,
            "\n## Events over the range (Prometheus)\n\n{}",
            table_head(&[
                "Team",
                "Tier",
                "Bad events",
                "Events",
                "Error ratio",
                "Burn over the range",
            ])
        );
        for t in report.teams.iter().filter(|t| t.events_total.is_some()) {
            let bad = t.events_bad.unwrap_or(0.0);
            let total = t.events_total.unwrap_or(0.0);
            out.push_str(&table_row(&[
                cell(&t.team),
                cell(&t.tier),
                format!("{bad:.0}"),
                format!("{total:.0}"),
                if total > 0.0 {
                    format!("{:.3}%", bad / total * 100.0)
                } else {
                    "-".into()
                },
                t.range_burn_rate
                    .map_or_else(|| "-".to_owned(), |b| format!("{b:.2}x")),
            ]));
        }
    }

    out.push_str("\n## Rollbacks\n\n");
    if report.rollbacks.is_empty() {
        out.push_str("None in the range.\n");
    } else {
        out.push_str(&table_head(&[
            "Date",
            "Team",
            "Namespace",
            "Deployment",
            "Revision",
            "Outcome",
            "Budget consumed",
            "Reason",
        ]));
        for r in &report.rollbacks {
            out.push_str(&table_row(&[
                minute(r.completed_at.unwrap_or(r.created)),
                cell(&r.team),
                cell(&r.namespace),
                cell(&r.deployment),
                cell(&r.revision),
                ReleasePhase::as_str(r.phase).to_owned(),
                opt_pct(r.budget_consumed),
                cell(r.reason.as_deref().unwrap_or("-")),
            ]));
        }
    }

    out.push_str("\n## Incidents\n\n");
    if report.incidents.is_empty() {
        out.push_str("None in the range.\n");
    } else {
        out.push_str(&table_head(&[
            "Start",
            "End",
            "Team",
            "Tier",
            "Peak burn",
            "Remaining at start",
            "Budget consumed",
            "Overage",
            "Within budget",
            "Overdue",
        ]));
        for i in &report.incidents {
            out.push_str(&table_row(&[
                minute(i.start),
                i.end.map_or_else(|| "open".to_owned(), minute),
                cell(&i.team),
                cell(&i.tier),
                format!("{:.1}x", i.peak_burn),
                opt_pct(i.remaining_at_start),
                pct(i.budget_consumed),
                opt_pct(i.overage),
                if i.within_budget { "yes" } else { "no" }.to_owned(),
                if i.overdue { "yes" } else { "no" }.to_owned(),
            ]));
        }
    }

    out.push_str("\n## Exceptions\n\n### Used in the range\n\n");
    if report.exceptions_used.is_empty() {
        out.push_str("No release named a BudgetException.\n");
    } else {
        out.push_str(&table_head(&[
            "Namespace",
            "Exception",
            "Team",
            "Releases",
            "Kind",
            "Approved by",
            "Reason",
        ]));
        for x in &report.exceptions_used {
            out.push_str(&table_row(&[
                cell(&x.namespace),
                cell(&x.exception),
                cell(x.team.as_deref().unwrap_or("-")),
                x.releases.to_string(),
                x.kind.map_or("(deleted)", |k| k.as_str()).to_owned(),
                cell(x.approved_by.as_deref().unwrap_or("-")),
                cell(x.reason.as_deref().unwrap_or("-")),
            ]));
        }
    }
    out.push_str("\n### Active now\n\n");
    if report.active_exceptions.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str(&table_head(&[
            "Namespace",
            "Exception",
            "Team",
            "Kind",
            "Approved by",
            "Expires",
            "Rollouts used",
            "Reason",
        ]));
        for x in &report.active_exceptions {
            out.push_str(&table_row(&[
                cell(&x.namespace),
                cell(&x.exception),
                cell(x.team.as_deref().unwrap_or("-")),
                x.kind.as_str().to_owned(),
                cell(&x.approved_by),
                minute(x.expires_at),
                match x.max_rollouts {
                    Some(max) => format!("{} of {max}", x.rollouts_used),
                    None => x.rollouts_used.to_string(),
                },
                cell(&x.reason),
            ]));
        }
    }

    out.push_str("\n## Definitions\n\n");
    for (name, text) in DEFINITIONS {
        let _ = writeln!(out, "- **{name}**: {text}");
    }
    out
}

const CSV_COLUMNS: &[&str] = &[
    "team",
    "tier",
    "remaining",
    "band",
    "state",
    "releases",
    "promoted",
    "direct",
    "rolledBack",
    "failed",
    "observed",
    "progressing",
    "superseded",
    "rollbacks",
    "changeFailureRate",
    "deploymentFrequency",
    "budgetConsumed",
    "incidents",
    "incidentBudgetConsumed",
    "incidentOverage",
    "incidentsOverBudget",
    "incidentsOverdue",
    "exceptionReleases",
    "eventsBad",
    "eventsTotal",
    "rangeBurnRate",
];

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One line per team and tier, after a header line. Fractions stay fractions; an unknown
/// value is an empty field.
pub fn csv(report: &Report) -> String {
    let num = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for t in &report.teams {
        let a = &t.activity;
        let fields = [
            csv_field(&t.team),
            csv_field(&t.tier),
            num(t.remaining),
            csv_field(t.band.as_deref().unwrap_or("")),
            t.state.map_or("", |s| s.as_str()).to_owned(),
            a.releases.to_string(),
            a.phases.promoted.to_string(),
            a.phases.direct.to_string(),
            a.phases.rolled_back.to_string(),
            a.phases.failed.to_string(),
            a.phases.observed.to_string(),
            a.phases.progressing.to_string(),
            a.phases.superseded.to_string(),
            a.rollbacks.to_string(),
            num(a.change_failure_rate),
            num(Some(a.deployment_frequency)),
            num(Some(t.budget_consumed)),
            a.incidents.to_string(),
            num(Some(t.incident_budget_consumed)),
            num(Some(t.incident_overage)),
            a.incidents_over_budget.to_string(),
            a.incidents_overdue.to_string(),
            a.exception_releases.to_string(),
            num(t.events_bad),
            num(t.events_total),
            num(t.range_burn_rate),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The report as pretty JSON.
pub fn json(report: &Report) -> String {
    // Serializing our own plain data cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}
