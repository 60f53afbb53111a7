//! Server-rendered HTML of the scoreboard views: no scripts, no external resources, plain
//! links. Every number a test or a script may want is also in a `data-` attribute, in
//! the same form the JSON API gives it.

use super::{Adoption, DecisionRow, Platform, ReleaseRow, Team, TeamRow, svg};
use crate::api::{BudgetState, Timestamp};
use crate::decision::text_pct;
use std::fmt::Write;

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (team names are label values: `[A-Za-z0-9._-]`).
fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:baseline}
header a{color:#cfd6e4;text-decoration:none}header a.here{color:#fff;font-weight:600}
header .brand{font-weight:700;color:#fff}
main{padding:16px 24px;max-width:1280px}
h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:24px 0 8px}h3{font-size:14px;margin:16px 0 6px}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:8px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e6eb;vertical-align:middle}
th{font-weight:600;color:#5a6272;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.platform{background:#eef1f6;font-weight:600}
table.teams{table-layout:fixed}table.teams th:nth-child(1){width:13%}table.teams th:nth-child(2){width:12%}
table.teams th:nth-child(3){width:6%}table.teams th:nth-child(n+4):nth-child(-n+6){width:6%}table.teams th:nth-child(7){width:8%}
table.teams th:nth-child(8){width:5%}table.teams th:nth-child(9){width:14%}
tr.frozen{background:#fdecec}tr.would-freeze{background:#fff8e1}
.badge{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600}
.frozen-badge{background:#c62828;color:#fff}.would-freeze-badge{background:#f9a825;color:#1d2330}
.state-healthy{color:#2e7d32}.state-caution{color:#b26a00}.state-critical{color:#d84315}
.state-exhausted,.state-burning{color:#c62828}.state-unknown{color:#6b7280}
svg.bar rect.track{fill:#e3e6eb}svg.bar rect.fill-healthy{fill:#43a047}svg.bar rect.fill-caution{fill:#f9a825}
svg.bar rect.fill-critical{fill:#ef6c00}svg.bar rect.fill-exhausted,svg.bar rect.fill-burning{fill:#c62828}svg.bar rect.fill-unknown{fill:#9ca3af}
.muted{color:#6b7280}.reason{color:#5a6272;font-size:12px}
section.slo{background:#fff;border:1px solid #e3e6eb;padding:8px 12px;margin:12px 0}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;max-width:100%;height:auto}
svg.chart rect.plot{fill:#fbfcfd;stroke:#d5d9e0}svg.chart line.grid{stroke:#e8ebf0}
svg.chart text{font-size:10px;fill:#6b7280}svg.chart text.nodata{font-size:12px;fill:#9a3412}
svg.chart polyline{fill:none;stroke-width:2}
svg.chart polyline.remaining{stroke:#1565c0}svg.chart polyline.ideal{stroke:#9ca3af;stroke-dasharray:4 3;stroke-width:1}
svg.chart polyline.burn{stroke:#6a1b9a}
svg.chart line.threshold{stroke-dasharray:6 3}svg.chart line.page{stroke:#c62828}svg.chart line.ticket{stroke:#ef6c00}
div.decision{background:#fff;border-left:4px solid #9ca3af;padding:6px 10px;margin:6px 0}
div.decision[data-verdict=allow]{border-color:#43a047}div.decision[data-verdict=deny]{border-color:#c62828}
div.decision[data-verdict=warn],div.decision[data-verdict=dryrun-deny]{border-color:#f9a825}
";

fn page(title: &str, kind: &str, evaluated_at: Option<Timestamp>, body: &str) -> String {
    let nav = |href: &str, label: &str, here: bool| {
        format!(
            "<a href=\"{href}\"{}>{label}</a>",
            if here { " class=\"here\"" } else { "" }
        )
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · budgetgate</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head>\
         <body data-page=\"{kind}\" data-evaluated-at=\"{}\"><header><span class=\"brand\">budgetgate</span>{}{}\
         <span class=\"muted\">{}</span></header><main>{body}</main></body></html>\n",
        escape(title),
        evaluated_at.map(|t| t.to_string()).unwrap_or_default(),
        nav("/", "Platform", kind == "platform"),
        nav("/adoption", "Adoption", kind == "adoption"),
        match evaluated_at {
            Some(at) => format!("budgets evaluated at {}", time(at)),
            None => "no budget data yet".to_owned(),
        }
    )
}

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn opt_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "—".to_owned(), time)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), text_pct)
}

fn num(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn burn(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |b| format!("{b:.2}x"))
}

fn state_class(state: BudgetState) -> String {
    format!("state-{}", state.as_str().to_ascii_lowercase())
}

/// Remaining budget as a bar coloured by state.
fn bar(remaining: Option<f64>, state: BudgetState) -> String {
    let width = remaining.map_or(0.0, |r| (r.clamp(0.0, 1.0) * 100.0).round());
    format!(
        "<svg class=\"bar\" width=\"100\" height=\"10\" aria-hidden=\"true\"><rect class=\"track\" width=\"100\" height=\"10\"/>\
         <rect class=\"fill-{}\" width=\"{width}\" height=\"10\"/></svg>",
        state.as_str().to_ascii_lowercase()
    )
}

fn release_cell(r: Option<&ReleaseRow>) -> String {
    match r {
        None => "<span class=\"muted\">none</span>".to_owned(),
        Some(r) => format!(
            "{}/{} <span class=\"muted\">{}</span> {}",
            escape(&r.namespace),
            escape(&r.deployment),
            escape(&r.revision.chars().take(10).collect::<String>()),
            r.phase.map(|p| format!("{p:?}")).unwrap_or_default()
        ),
    }
}

fn team_cells(row: &TeamRow, link: bool) -> String {
    let name = if link {
        format!(
            "<a href=\"/teams/{}\">{}</a>",
            segment(&row.team),
            escape(&row.team)
        )
    } else {
        escape(&row.team)
    };
    let frozen = match (&row.frozen, &row.would_freeze) {
        (Some(why), _) => format!(
            " <span class=\"badge frozen-badge\" title=\"{}\">FROZEN</span><div class=\"reason\">{}</div>",
            escape(why),
            escape(why)
        ),
        (None, Some(why)) => format!(
            " <span class=\"badge would-freeze-badge\" title=\"not enforced\">WOULD FREEZE</span><div class=\"reason\">{} (not enforced here)</div>",
            escape(why)
        ),
        (None, None) => String::new(),
    };
    let b = |w: &str| burn(row.burn_rates.get(w).copied().flatten());
    format!(
        "<td>{name}{frozen}</td><td>{} {}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"{}\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>",
        bar(row.remaining, row.state),
        pct(row.remaining),
        escape(row.band.as_deref().unwrap_or("—")),
        b("1h"),
        b("6h"),
        b("1d"),
        state_class(row.state),
        row.state.as_str(),
        match row.queued {
            0 => row.rollouts_in_flight.to_string(),
            n => format!(
                "{} <span class=\"muted\">+{n} queued</span>",
                row.rollouts_in_flight
            ),
        },
        release_cell(row.last_release.as_ref()),
        opt_time(row.exhausts_at),
    )
}

fn team_attrs(row: &TeamRow) -> String {
    format!(
        "class=\"team{}\" data-team=\"{}\" data-tier=\"{}\" data-remaining=\"{}\" data-band=\"{}\" data-state=\"{}\" data-frozen=\"{}\" data-would-freeze=\"{}\" data-in-flight=\"{}\" data-queued=\"{}\"",
        match (&row.frozen, &row.would_freeze) {
            (Some(_), _) => " frozen",
            (None, Some(_)) => " would-freeze",
            (None, None) => "",
        },
        escape(&row.team),
        escape(&row.tier),
        num(row.remaining),
        escape(row.band.as_deref().unwrap_or("")),
        row.state.as_str(),
        row.frozen.is_some(),
        row.would_freeze.is_some(),
        row.rollouts_in_flight,
        row.queued
    )
}

const TEAM_HEAD: &str = "<thead><tr><th>Team</th><th>Remaining</th><th>Band</th><th>Burn 1h</th><th>Burn 6h</th><th>Burn 1d</th>\
     <th>State</th><th>In flight</th><th>Last release</th><th>Exhausts</th></tr></thead>";

pub fn platform(view: &Platform) -> String {
    let mut body = String::from("<h1>Error budgets by tier</h1>");
    if view.tiers.is_empty() {
        body.push_str("<p class=\"muted\">No ReliabilityPolicy or no teams yet.</p>");
    }
    for tier in &view.tiers {
        let frozen = tier.teams.iter().filter(|t| t.frozen.is_some()).count();
        let _ = write!(
            body,
            "<h2>Tier {} <span class=\"muted\">{} · {} team(s){}</span></h2><table class=\"teams\" data-tier=\"{}\">{TEAM_HEAD}<tbody>\
             <tr class=\"platform\" data-tier=\"{}\" data-remaining=\"{}\" data-band=\"{}\" data-state=\"{}\"><td>all teams (platform)</td><td>{} {}</td><td>{}</td>\
             <td colspan=\"3\"></td><td class=\"{}\">{}</td><td colspan=\"3\"></td></tr>",
            escape(&tier.tier),
            tier.enforcement
                .map(|e| e.as_str())
                .unwrap_or("unknown tier"),
            tier.teams.len(),
            if frozen > 0 {
                format!(", <span class=\"state-exhausted\">{frozen} frozen</span>")
            } else {
                String::new()
            },
            escape(&tier.tier),
            escape(&tier.tier),
            num(tier.remaining),
            escape(tier.band.as_deref().unwrap_or("")),
            tier.state.as_str(),
            bar(tier.remaining, tier.state),
            pct(tier.remaining),
            escape(tier.band.as_deref().unwrap_or("—")),
            state_class(tier.state),
            tier.state.as_str(),
        );
        for row in &tier.teams {
            let _ = write!(
                body,
                "<tr {}>{}</tr>",
                team_attrs(row),
                team_cells(row, true)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(
        "<p class=\"muted\">Worst first: frozen teams, teams that would be frozen if their namespaces enforced, teams without budget data, then the least remaining. \
         Exhausts = now + remaining × period ÷ 1d burn. JSON: <a href=\"/api/v1/platform\">/api/v1/platform</a></p>",
    );
    page("Platform", "platform", view.evaluated_at, &body)
}

fn decision(d: &DecisionRow) -> String {
    format!(
        "<div class=\"decision\" data-namespace=\"{}\" data-verdict=\"{}\" data-reason=\"{}\" data-band=\"{}\">\
         <b>{}</b> a new rollout in <b>{}</b> ({} mode){}{}</div>",
        escape(&d.namespace),
        d.verdict,
        d.reason,
        escape(d.band.as_deref().unwrap_or("")),
        match d.verdict {
            "allow" => "Allows",
            "deny" => "Denies",
            "warn" => "Warns about",
            _ => "Would deny (dry-run)",
        },
        escape(&d.namespace),
        d.mode.as_str(),
        d.plan
            .as_ref()
            .map(|p| format!(
                ": canary {} in band {}",
                escape(p),
                escape(d.band.as_deref().unwrap_or(""))
            ))
            .unwrap_or_default(),
        d.message
            .as_ref()
            .map(|m| format!("<div class=\"reason\">{}</div>", escape(m)))
            .unwrap_or_default()
    )
}

fn releases_table(rows: &[ReleaseRow]) -> String {
    let mut out = String::from(
        "<table class=\"releases\"><thead><tr><th>Release</th><th>Deployment</th><th>Revision</th><th>Phase</th><th>Band</th>\
         <th>Plan</th><th>Remaining at start</th><th>Budget consumed</th><th>Started</th><th>Reason</th></tr></thead><tbody>",
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"10\" class=\"muted\">no releases recorded</td></tr>");
    }
    for r in rows {
        let phase = r.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        let _ = write!(
            out,
            "<tr data-release=\"{}/{}\" data-phase=\"{phase}\" data-band=\"{}\" data-budget-consumed=\"{}\"><td>{}</td><td>{}/{}</td>\
             <td>{}</td><td>{phase}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"reason\">{}</td></tr>",
            escape(&r.namespace),
            escape(&r.name),
            escape(r.band.as_deref().unwrap_or("")),
            num(r.budget_consumed),
            escape(&r.name),
            escape(&r.namespace),
            escape(&r.deployment),
            escape(&r.revision.chars().take(10).collect::<String>()),
            escape(r.band.as_deref().unwrap_or("—")),
            escape(r.plan.as_deref().unwrap_or("—")),
            pct(r.remaining_at_start),
            pct(r.budget_consumed),
            opt_time(r.created),
            escape(r.reason.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

pub fn team(view: &Team) -> String {
    let mut body = format!("<h1>Team {}</h1>", escape(&view.team));
    for t in &view.tiers {
        let _ = write!(
            body,
            "<h2>Tier {} <span class=\"muted\">namespaces {}</span></h2><table class=\"teams\" data-tier=\"{}\">{TEAM_HEAD}<tbody><tr {}>{}</tr></tbody></table>",
            escape(&t.tier),
            escape(&t.namespaces.join(", ")),
            escape(&t.tier),
            team_attrs(&t.row),
            team_cells(&t.row, false)
        );
        body.push_str("<h3>What the webhook would decide for a rollout now</h3>");
        for d in &t.decisions {
            body.push_str(&decision(d));
        }
        body.push_str("<h3>Service level objectives</h3>");
        if t.slos.is_empty() {
            body.push_str(
                "<p class=\"muted\">no ServiceLevelObjectives in this team's namespaces</p>",
            );
        }
        for s in &t.slos {
            let label = format!("{}/{}", s.namespace, s.name);
            let b = |w: &str| burn(s.burn_rates.get(w).copied().flatten());
            let _ = write!(
                body,
                "<section class=\"slo\" data-slo=\"{}\" data-remaining=\"{}\" data-state=\"{}\"><h3>{} <span class=\"muted\">{} · {}% over {}</span></h3>\
                 <p><span class=\"{}\">{}</span> · {} remaining · band {} · burn 5m {} · 1h {} · 6h {} · 1d {}{} · exhausts {}</p><div class=\"charts\">{}{}</div></section>",
                escape(&label),
                num(s.remaining),
                s.state.as_str(),
                escape(&label),
                escape(&s.service),
                s.objective,
                escape(&s.window),
                state_class(s.state),
                s.state.as_str(),
                pct(s.remaining),
                escape(s.band.as_deref().unwrap_or("—")),
                b("5m"),
                b("1h"),
                b("6h"),
                b("1d"),
                if s.alerts.is_empty() {
                    String::new()
                } else {
                    format!(
                        " · <b class=\"state-burning\">alerts {}</b>",
                        escape(&s.alerts.join(", "))
                    )
                },
                opt_time(s.exhausts_at),
                svg::burndown(
                    &s.charts.burndown,
                    &format!("{label}: remaining budget over the period")
                ),
                svg::burn(
                    &s.charts.burn,
                    &s.thresholds,
                    &format!("{label}: burn rate over 1h windows")
                ),
            );
        }
        if !t.clusters.is_empty() {
            let all: f64 = t.clusters.iter().map(|c| c.total).sum();
            body.push_str(
                "<h3>Events by cluster</h3><table class=\"clusters\"><thead><tr><th>Cluster</th><th>Bad</th>\
                 <th>Total</th><th>Error ratio</th><th>Share of traffic</th></tr></thead><tbody>",
            );
            for c in &t.clusters {
                let ratio = if c.total > 0.0 {
                    c.bad / c.total * 100.0
                } else {
                    0.0
                };
                let share = if all > 0.0 {
                    c.total / all * 100.0
                } else {
                    0.0
                };
                let _ = write!(
                    body,
                    "<tr data-cluster=\"{}\"><td>{}</td><td class=\"num\">{:.0}</td><td class=\"num\">{:.0}</td><td class=\"num\">{ratio:.3}%</td><td class=\"num\">{share:.1}%</td></tr>",
                    escape(&c.cluster),
                    escape(if c.cluster.is_empty() {
                        "(no cluster label)"
                    } else {
                        &c.cluster
                    }),
                    c.bad,
                    c.total,
                );
            }
            body.push_str("</tbody></table>");
        }
        if !t.queue.is_empty() {
            body.push_str(
                "<h3>Queued rollouts</h3><table class=\"queue\"><thead><tr><th>#</th><th>Deployment</th><th>Revision</th>\
                 <th>Queued since</th><th>Waiting for</th></tr></thead><tbody>",
            );
            for q in &t.queue {
                let _ = write!(
                    body,
                    "<tr data-deployment=\"{}/{}\" data-position=\"{}\"><td class=\"num\">{}</td><td>{}/{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    escape(&q.namespace),
                    escape(&q.deployment),
                    q.position,
                    q.position,
                    escape(&q.namespace),
                    escape(&q.deployment),
                    escape(&q.revision),
                    time(q.queued_since),
                    escape(q.reason.as_deref().unwrap_or("")),
                );
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("<h3>Releases</h3>");
        body.push_str(&releases_table(&t.releases));
        body.push_str(
            "<h3>Incidents</h3><table class=\"incidents\"><thead><tr><th>Start</th><th>End</th><th>Peak burn</th>\
             <th>Remaining at start</th><th>Budget consumed</th><th>Verdict</th></tr></thead><tbody>",
        );
        if t.incidents.is_empty() {
            body.push_str("<tr><td colspan=\"6\" class=\"muted\">no incidents recorded</td></tr>");
        }
        for i in &t.incidents {
            let _ = write!(
                body,
                "<tr data-verdict=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                i.verdict,
                time(i.incident.start.0),
                opt_time(i.incident.end.as_ref().map(|t| t.0)),
                burn(Some(i.incident.peak_burn)),
                pct(i.incident.remaining_at_start),
                pct(Some(i.incident.budget_consumed)),
                i.verdict
            );
        }
        body.push_str(
            "</tbody></table><h3>Active exceptions</h3><table class=\"exceptions\"><thead><tr><th>Exception</th><th>Kind</th>\
             <th>Extra budget</th><th>Approved by</th><th>Expires</th><th>Reason</th></tr></thead><tbody>",
        );
        if t.exceptions.is_empty() {
            body.push_str("<tr><td colspan=\"6\" class=\"muted\">none</td></tr>");
        }
        for x in &t.exceptions {
            let _ = write!(
                body,
                "<tr data-exception=\"{}/{}\"><td>{}/{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"reason\">{}</td></tr>",
                escape(&x.namespace),
                escape(&x.name),
                escape(&x.namespace),
                escape(&x.name),
                escape(&x.kind),
                pct(x.extra_budget),
                escape(&x.approved_by),
                time(x.expires_at),
                escape(&x.reason)
            );
        }
        body.push_str("</tbody></table>");
    }
    let _ = write!(
        body,
        "<p class=\"muted\">Burn-down: budget spent since the period began against the period's events so far; the dashed line spends it evenly. \
         JSON: <a href=\"/api/v1/teams/{0}\">/api/v1/teams/{0}</a></p>",
        segment(&view.team)
    );
    page(
        &format!("Team {}", view.team),
        "team",
        view.evaluated_at,
        &body,
    )
}

pub fn adoption(view: &Adoption) -> String {
    let mut body = format!(
        "<h1>Adoption: what enforcement would have done</h1><p>Dry-run and warn namespaces, releases since {}. \
         A release <b>would have been denied</b> when the team's budget was exhausted as it started, and <b>slowed</b> when it started \
         below the tier's first band (a slower canary plan).</p>\
         <table class=\"adoption\"><thead><tr><th>Namespace</th><th>Team</th><th>Tier</th><th>Mode</th><th>Releases</th>\
         <th>Would deny</th><th>Would slow</th><th>No data</th><th>Enforce now</th></tr></thead><tbody>",
        time(view.since)
    );
    if view.namespaces.is_empty() {
        body.push_str(
            "<tr><td colspan=\"9\" class=\"muted\">every managed namespace enforces</td></tr>",
        );
    }
    for r in &view.namespaces {
        let _ = write!(
            body,
            "<tr data-namespace=\"{}\" data-team=\"{}\" data-mode=\"{}\" data-releases=\"{}\" data-would-deny=\"{}\" data-would-slow=\"{}\">\
             <td>{}</td><td><a href=\"/teams/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&r.namespace),
            escape(&r.team),
            r.mode.as_str(),
            r.releases,
            r.would_deny,
            r.would_slow,
            escape(&r.namespace),
            segment(&r.team),
            escape(&r.team),
            escape(&r.tier),
            r.mode.as_str(),
            r.releases,
            r.would_deny,
            r.would_slow,
            r.unknown,
            match r.now.verdict {
                "allow" => "allow".to_owned(),
                _ => "<b class=\"state-exhausted\">deny</b>".to_owned(),
            }
        );
    }
    body.push_str("</tbody></table>");
    for r in view.namespaces.iter().filter(|r| !r.evidence.is_empty()) {
        let _ = write!(
            body,
            "<h3>{} — releases enforcement would have stopped or slowed</h3>",
            escape(&r.namespace)
        );
        let rows: Vec<ReleaseRow> = r.evidence.iter().map(|e| e.release.clone()).collect();
        body.push_str(&releases_table(&rows));
    }
    body.push_str("<p class=\"muted\">JSON: <a href=\"/api/v1/adoption\">/api/v1/adoption</a></p>");
    page("Adoption", "adoption", view.evaluated_at, &body)
}

/// A page for an unknown team or path.
pub fn not_found(what: &str) -> String {
    page(
        "Not found",
        "not-found",
        None,
        &format!(
            "<h1>Not found</h1><p>{}</p><p><a href=\"/\">Back to the platform page</a></p>",
            escape(what)
        ),
    )
}
