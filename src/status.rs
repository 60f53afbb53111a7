//! The budget report people read: `budgetgate status` as JSON (DESIGN §5) or a table.
//! Pure: built from the index's evaluated budgets.

use crate::api::{BudgetState, Duration, Timestamp};
use crate::budget::Assessment;
use crate::decision::text_pct as pct;
use crate::index::Index;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub evaluated_at: Option<Timestamp>,
    pub teams: Vec<TeamRow>,
    pub platform: BTreeMap<String, PlatformRow>,
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamRow {
    pub team: String,
    pub tier: String,
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub state: BudgetState,
    pub burn_rates: BTreeMap<String, Option<f64>>,
    pub slos: Vec<SloRow>,
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloRow {
    pub namespace: String,
    pub name: String,
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub state: BudgetState,
    pub burn_rates: BTreeMap<String, Option<f64>>,
    pub alerts: Vec<String>,
    pub exhausts_at: Option<Timestamp>,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct PlatformRow {
    pub remaining: Option<f64>,
    pub band: Option<String>,
}

/// Burn rates by window label (`5m`, `1h`, …); `None` = no data for the window.
pub fn burn_rates(a: &Assessment) -> BTreeMap<String, Option<f64>> {
    // Keys in window order (5m, 30m, 1h, …) would be nicer, but JSON objects are maps;
    // the table orders them.
    a.burn_rates
        .iter()
        .map(|(w, b)| (w.as_str().to_owned(), *b))
        .collect()
}

pub fn report(index: &Index) -> StatusReport {
    let budgets = &index.budgets;
    let teams = budgets
        .teams
        .iter()
        .map(|((team, tier), a)| TeamRow {
            team: team.clone(),
            tier: tier.clone(),
            remaining: a.remaining,
            band: a.band.clone(),
            state: a.state,
            burn_rates: burn_rates(a),
            slos: budgets
                .slos
                .iter()
                .filter(|(k, _)| {
                    index.team_of(&k.namespace).as_ref() == Some(&(team.clone(), tier.clone()))
                })
                .map(|(k, s)| SloRow {
                    namespace: k.namespace.clone(),
                    name: k.name.clone(),
                    remaining: s.remaining,
                    band: s.band.clone(),
                    state: s.state,
                    burn_rates: burn_rates(s),
                    alerts: s.alerts.clone(),
                    exhausts_at: s.exhausts_at,
                })
                .collect(),
        })
        .collect();
    let platform = budgets
        .platform
        .iter()
        .map(|(tier, a)| {
            (
                tier.clone(),
                PlatformRow {
                    remaining: a.remaining,
                    band: a.band.clone(),
                },
            )
        })
        .collect();
    StatusReport {
        evaluated_at: budgets.evaluated_at,
        teams,
        platform,
    }
}

fn burn(rates: &BTreeMap<String, Option<f64>>, window: &str) -> String {
    let want = Duration::parse(window)
        .map(|d| d.seconds())
        .unwrap_or_default();
    rates
        .iter()
        .find(|(k, _)| Duration::parse(k).is_ok_and(|d| d.seconds() == want))
        .and_then(|(_, b)| *b)
        .map_or_else(|| "-".to_owned(), |b| format!("{b:.2}x"))
}

/// A table for people: one row per team and tier, its SLOs indented below, then the
/// platform aggregates.
pub fn table(report: &StatusReport) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "TEAM / SLO".into(),
        "TIER".into(),
        "REMAINING".into(),
        "BAND".into(),
        "BURN 1H".into(),
        "BURN 6H".into(),
        "STATE".into(),
    ]];
    let opt = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), pct);
    for t in &report.teams {
        rows.push([
            t.team.clone(),
            t.tier.clone(),
            opt(t.remaining),
            t.band.clone().unwrap_or_else(|| "-".into()),
            burn(&t.burn_rates, "1h"),
            burn(&t.burn_rates, "6h"),
            t.state.as_str().into(),
        ]);
        for s in &t.slos {
            let mut state = s.state.as_str().to_owned();
            if !s.alerts.is_empty() {
                state = format!("{state} ({})", s.alerts.join(","));
            }
            rows.push([
                format!("  {}/{}", s.namespace, s.name),
                String::new(),
                opt(s.remaining),
                s.band.clone().unwrap_or_else(|| "-".into()),
                burn(&s.burn_rates, "1h"),
                burn(&s.burn_rates, "6h"),
                state,
            ]);
        }
    }
    for (tier, p) in &report.platform {
        rows.push([
            "(platform)".into(),
            tier.clone(),
            opt(p.remaining),
            p.band.clone().unwrap_or_else(|| "-".into()),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    let mut out = String::new();
    if let Some(at) = report.evaluated_at {
        let _ = writeln!(out, "budgets evaluated at {at}");
    }
    out.push_str(&crate::table::render(&rows));
    out
}
