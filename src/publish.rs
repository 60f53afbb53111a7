//! What the budget controller publishes, computed from evaluated budgets: SLO statuses,
//! TeamBudget statuses (release cadence and incidents) and the platform aggregates. Pure:
//! the controller gathers the inputs and writes the outputs.

use crate::api::{
    BudgetState, Condition, Incident, LastRelease, PlatformBudget, ReleasePhase,
    ServiceLevelObjectiveStatus, Severity, SloSummary, TeamBudgetStatus, TierBudget, Time,
    Timestamp,
};
use crate::budget::Assessment;
use crate::decision::{text_factor, text_pct};
use crate::index::{Budgets, Index, ObjectKey};
use crate::policy::Tier;
use std::collections::BTreeMap;

/// How many closed incidents a TeamBudget keeps per tier.
pub const INCIDENT_HISTORY: usize = 20;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Published {
    pub slos: BTreeMap<ObjectKey, ServiceLevelObjectiveStatus>,
    /// Keyed by team.
    pub teams: BTreeMap<String, TeamBudgetStatus>,
    pub platform: Vec<PlatformBudget>,
}

/// What is in the cluster now, for conditions' transition times and incident history.
#[derive(Clone, Debug, Default)]
pub struct Previous {
    pub slos: BTreeMap<ObjectKey, ServiceLevelObjectiveStatus>,
    pub teams: BTreeMap<String, TeamBudgetStatus>,
}

fn burn_rates(a: &Assessment) -> BTreeMap<String, f64> {
    a.burn_rates
        .iter()
        .filter_map(|(w, b)| Some((w.as_str().to_owned(), (*b)?)))
        .collect()
}

/// A `Ready` condition whose transition time only moves when its status does.
fn ready(a: &Assessment, previous: &[Condition], now: Timestamp) -> Vec<Condition> {
    let (status, reason, message) = match a.state {
        BudgetState::Unknown => (
            "False",
            "MetricsMissing",
            "some of the counts this budget needs are missing; admission follows onStale",
        ),
        _ => ("True", "Evaluated", "budget evaluated from current counts"),
    };
    let since = previous
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    vec![Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: None,
    }]
}

pub fn publish(index: &Index, budgets: &Budgets, previous: &Previous, now: Timestamp) -> Published {
    let mut out = Published::default();
    let evaluated_at = budgets.evaluated_at.map(Time);
    for (key, a) in &budgets.slos {
        // A snapshot entry without a ServiceLevelObjective object still counts toward its
        // team, but has no object to carry a status (writing one would fail the evaluation).
        if !index.slos.contains_key(key) {
            continue;
        }
        let before = previous
            .slos
            .get(key)
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        out.slos.insert(
            key.clone(),
            ServiceLevelObjectiveStatus {
                remaining: a.remaining,
                remaining_text: a.remaining.map(text_pct),
                burn_rate1h_text: a.burn_rate(3_600).map(text_factor),
                burn_rates: burn_rates(a),
                band: a.band.clone(),
                state: Some(a.state),
                alerts: a.alerts.clone(),
                exhausts_at: a.exhausts_at.map(Time),
                evaluated_at: evaluated_at.clone(),
                conditions: ready(a, before, now),
            },
        );
    }
    let Some(policy) = &index.policy else {
        return out;
    };
    let mut teams: BTreeMap<String, Vec<TierBudget>> = BTreeMap::new();
    for ((team, tier_name), a) in &budgets.teams {
        let Some(tier) = policy.tier(tier_name) else {
            continue;
        };
        let releases: Vec<_> = index.team_releases(team, tier_name).collect();
        let last = releases
            .iter()
            .filter_map(|(k, r)| Some((r.created?, *k, *r)))
            .max_by_key(|(at, ..)| *at)
            .map(|(at, k, r)| LastRelease {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                deployment: r.deployment.clone(),
                at: Time(at),
                phase: r.phase,
            });
        let previous_incidents = previous
            .teams
            .get(team)
            .and_then(|s| s.tiers.iter().find(|t| &t.tier == tier_name))
            .map(|t| t.incidents.as_slice())
            .unwrap_or_default();
        let slos = budgets
            .slos
            .iter()
            .filter(|(k, _)| {
                index.team_of(&k.namespace).as_ref() == Some(&(team.clone(), tier_name.clone()))
            })
            .map(|(k, s)| SloSummary {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                remaining: s.remaining,
                band: s.band.clone(),
                state: Some(s.state),
            })
            .collect();
        teams.entry(team.clone()).or_default().push(TierBudget {
            tier: tier_name.clone(),
            remaining: a.remaining,
            remaining_text: a.remaining.map(text_pct),
            band: a.band.clone(),
            state: Some(a.state),
            burn_rates: burn_rates(a),
            burn_rate1h: a.burn_rate(3_600),
            burn_rate1h_text: a.burn_rate(3_600).map(text_factor),
            alerts: a.alerts.clone(),
            slos_without_data: a.lacking.min(u32::MAX as usize) as u32,
            slos,
            rollouts_in_flight: releases
                .iter()
                .filter(|(_, r)| r.phase == Some(ReleasePhase::Progressing))
                .count() as u32,
            last_release: last,
            incidents: track_incidents(previous_incidents, a, tier, now),
            clusters: Vec::new(),
        });
    }
    for (team, mut tiers) in teams {
        // Worst first: the printer columns show tiers[0].
        tiers.sort_by(|a, b| {
            severity(b).cmp(&severity(a)).then(
                a.remaining
                    .partial_cmp(&b.remaining)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        });
        let before = previous
            .teams
            .get(&team)
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let worst = budgets.teams.get(&(team.clone(), tiers[0].tier.clone()));
        let conditions = worst.map(|a| ready(a, before, now)).unwrap_or_default();
        out.teams.insert(
            team,
            TeamBudgetStatus {
                tiers,
                evaluated_at: evaluated_at.clone(),
                conditions,
            },
        );
    }
    out.platform = budgets
        .platform
        .iter()
        .map(|(tier, a)| PlatformBudget {
            tier: tier.clone(),
            remaining: a.remaining,
            band: a.band.clone(),
            state: Some(a.state),
        })
        .collect();
    out
}

/// Each team's events by cluster, per tier: the split of every SLO of the team in the tier
/// ([`crate::prom::read_cluster_split`]) summed, clusters by name.
pub fn attach_clusters(
    published: &mut Published,
    index: &Index,
    split: &crate::prom::parse::ClusterSplit,
) {
    let mut sums: BTreeMap<(String, String), BTreeMap<String, (f64, f64)>> = BTreeMap::new();
    for (key, clusters) in split {
        let Some(team) = index.team_of(&key.namespace) else {
            continue;
        };
        let entry = sums.entry(team).or_default();
        for (cluster, (bad, total)) in clusters {
            let e = entry.entry(cluster.clone()).or_default();
            e.0 += bad;
            e.1 += total;
        }
    }
    for (team, status) in &mut published.teams {
        for tier in &mut status.tiers {
            tier.clusters = sums
                .get(&(team.clone(), tier.tier.clone()))
                .map(|c| {
                    c.iter()
                        .map(|(cluster, (bad, total))| crate::api::ClusterEvents {
                            cluster: cluster.clone(),
                            bad: *bad,
                            total: *total,
                        })
                        .collect()
                })
                .unwrap_or_default();
        }
    }
}

fn severity(t: &TierBudget) -> u8 {
    match t.state {
        Some(BudgetState::Unknown) | None => 5,
        Some(BudgetState::Exhausted) => 4,
        Some(BudgetState::Burning) => 3,
        Some(BudgetState::Critical) => 2,
        Some(BudgetState::Caution) => 1,
        Some(BudgetState::Healthy) => 0,
    }
}

/// The highest burn among the windows of the tier's page pairs.
fn page_burn(a: &Assessment, tier: &Tier) -> f64 {
    tier.alert_windows
        .iter()
        .filter(|w| w.severity == Severity::Page)
        .flat_map(|w| {
            [
                a.burn_rate(w.long.seconds()),
                a.burn_rate(w.short.seconds()),
            ]
        })
        .flatten()
        .fold(0.0, f64::max)
}

/// Incidents are page-burn episodes: one opens when a page pair starts firing and closes
/// when none does. `budgetConsumed` is the remaining budget lost since it opened;
/// `withinBudget` whether budget was left; `overdue` whether it outlasted
/// `recoveryTarget`. Unknown data neither opens nor closes one.
pub fn track_incidents(
    previous: &[Incident],
    a: &Assessment,
    tier: &Tier,
    now: Timestamp,
) -> Vec<Incident> {
    let mut incidents = previous.to_vec();
    if a.state == BudgetState::Unknown {
        return incidents;
    }
    let remaining = a.remaining.unwrap_or_default();
    let burn = page_burn(a, tier);
    let open = incidents.last_mut().filter(|i| i.end.is_none());
    match (open, a.paging) {
        (Some(incident), paging) => {
            incident.peak_burn = incident.peak_burn.max(burn);
            incident.budget_consumed =
                (incident.remaining_at_start.unwrap_or(remaining) - remaining).max(0.0);
            incident.within_budget = remaining > 0.0;
            incident.overdue = now.duration_since(incident.start.0) > tier.recovery_target.signed();
            if !paging {
                incident.end = Some(Time(now));
            }
        }
        (None, true) => incidents.push(Incident {
            start: Time(now),
            end: None,
            peak_burn: burn,
            remaining_at_start: Some(remaining),
            budget_consumed: 0.0,
            within_budget: remaining > 0.0,
            overdue: false,
        }),
        (None, false) => {}
    }
    let excess = incidents.len().saturating_sub(INCIDENT_HISTORY);
    incidents.drain(..excess);
    incidents
}

/// Conditions saying budgets could not be evaluated: `Ready` False and `Stale` True with
/// the reason, so `kubectl describe` shows why budgets stopped moving.
pub fn stale_conditions(error: &str, now: Timestamp) -> Vec<Condition> {
    let message: String = error.chars().take(1_000).collect();
    ["Ready", "Stale"]
        .iter()
        .map(|type_| Condition {
            type_: (*type_).into(),
            status: if *type_ == "Stale" { "True" } else { "False" }.into(),
            reason: "EvaluationFailed".into(),
            message: format!("budgets are not being updated: {message}; admission follows onStale once they are older than staleAfter"),
            last_transition_time: Time(now),
            observed_generation: None,
        })
        .collect()
}

/// Whether a status must be written: its content changed (evaluation times and condition
/// transition times aside), or it carries a newer evaluation and the one in the cluster is
/// `heartbeat` old — so readers can tell live budgets from a stopped controller.
pub fn needs_write<T: serde::Serialize>(
    before: Option<&T>,
    after: &T,
    heartbeat: jiff::SignedDuration,
    now: Timestamp,
) -> bool {
    let Some(before) = before else {
        return true;
    };
    let (mut before, mut after) = (
        serde_json::to_value(before).unwrap_or_default(),
        serde_json::to_value(after).unwrap_or_default(),
    );
    let evaluated = |v: &serde_json::Value| {
        v.get("evaluatedAt")
            .and_then(|t| t.as_str())
            .and_then(|t| t.parse::<Timestamp>().ok())
    };
    let (was, is) = (evaluated(&before), evaluated(&after));
    strip_times(&mut before);
    strip_times(&mut after);
    if before != after {
        return true;
    }
    match (was, is) {
        (Some(was), Some(is)) => is != was && now.duration_since(was) >= heartbeat,
        (None, Some(_)) => true,
        _ => false,
    }
}

fn strip_times(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("evaluatedAt");
            map.remove("lastTransitionTime");
            map.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// A team's band moving in one tier, worded for `kubectl describe` and the log.
#[derive(Clone, Debug, PartialEq)]
pub struct BandChange {
    pub note: String,
    /// Less budget than before.
    pub worse: bool,
}

pub fn band_changes(
    team: &str,
    before: Option<&TeamBudgetStatus>,
    after: &TeamBudgetStatus,
) -> Vec<BandChange> {
    let name = |band: &Option<String>, state: Option<BudgetState>| match (band, state) {
        (Some(b), _) => b.clone(),
        (None, Some(BudgetState::Exhausted)) => "exhausted".into(),
        (None, _) => "unknown".into(),
    };
    after
        .tiers
        .iter()
        .filter_map(|now| {
            let was = before?.tiers.iter().find(|t| t.tier == now.tier)?;
            let (from, to) = (name(&was.band, was.state), name(&now.band, now.state));
            (from != to).then(|| BandChange {
                note: format!(
                    "{team} moved from {from} to {to} in tier {} ({} budget remaining)",
                    now.tier,
                    now.remaining.map_or_else(|| "unknown".to_owned(), text_pct)
                ),
                worse: now.remaining.unwrap_or(f64::NEG_INFINITY)
                    < was.remaining.unwrap_or(f64::NEG_INFINITY),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Duration;

    fn tier() -> Tier {
        crate::policy::sample_tier("production")
    }

    fn at(minute: i64) -> Timestamp {
        let start: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
        start
            .checked_add(jiff::SignedDuration::from_mins(minute))
            .unwrap()
    }

    fn assessment(remaining: f64, burn: f64, paging: bool) -> Assessment {
        Assessment {
            remaining: Some(remaining),
            burn_rates: [("5m", burn), ("1h", burn), ("30m", 1.0), ("6h", 1.0)]
                .iter()
                .map(|(w, b)| (Duration::parse(w).unwrap(), Some(*b)))
                .collect(),
            alerts: if paging {
                vec!["page-fast".into()]
            } else {
                vec![]
            },
            paging,
            band: Some("caution".into()),
            state: if paging {
                BudgetState::Burning
            } else {
                BudgetState::Caution
            },
            exhausts_at: None,
            lacking: 0,
        }
    }

    #[test]
    fn a_page_burn_episode_opens_grows_and_closes_one_incident() {
        let t = tier();
        let opened = track_incidents(&[], &assessment(0.40, 20.0, true), &t, at(0));
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].remaining_at_start, Some(0.40));
        assert_eq!(opened[0].peak_burn, 20.0);
        let grown = track_incidents(&opened, &assessment(0.30, 31.0, true), &t, at(30));
        assert_eq!(grown.len(), 1);
        assert_eq!(grown[0].peak_burn, 31.0);
        assert!((grown[0].budget_consumed - 0.10).abs() < 1e-12);
        assert!(!grown[0].overdue);
        assert_eq!(grown[0].end, None);
        // 70 minutes in, past the 1h recovery target: overdue; then it closes.
        let late = track_incidents(&grown, &assessment(0.25, 15.0, true), &t, at(70));
        assert!(late[0].overdue);
        let closed = track_incidents(&late, &assessment(0.24, 0.5, false), &t, at(75));
        assert_eq!(closed[0].end, Some(Time(at(75))));
        assert!((closed[0].budget_consumed - 0.16).abs() < 1e-12);
        assert!(closed[0].within_budget);
        // Quiet afterwards: nothing new.
        assert_eq!(
            track_incidents(&closed, &assessment(0.24, 0.5, false), &t, at(80)),
            closed
        );
    }

    #[test]
    fn an_incident_that_spends_the_whole_budget_is_not_within_budget() {
        let t = tier();
        let opened = track_incidents(&[], &assessment(0.05, 40.0, true), &t, at(0));
        let spent = track_incidents(&opened, &assessment(-0.02, 40.0, true), &t, at(10));
        assert!(!spent[0].within_budget);
    }

    #[test]
    fn unknown_data_neither_opens_nor_closes_an_incident() {
        let t = tier();
        let opened = track_incidents(&[], &assessment(0.40, 20.0, true), &t, at(0));
        let mut unknown = assessment(0.40, 0.0, false);
        unknown.state = BudgetState::Unknown;
        assert_eq!(track_incidents(&opened, &unknown, &t, at(5)), opened);
        assert!(track_incidents(&[], &unknown, &t, at(5)).is_empty());
    }

    #[test]
    fn history_keeps_the_last_twenty() {
        let t = tier();
        let mut incidents = Vec::new();
        for i in 0..25 {
            incidents = track_incidents(&incidents, &assessment(0.4, 20.0, true), &t, at(i * 10));
            incidents =
                track_incidents(&incidents, &assessment(0.4, 0.1, false), &t, at(i * 10 + 5));
        }
        assert_eq!(incidents.len(), INCIDENT_HISTORY);
        assert_eq!(incidents[0].start, Time(at(50)));
    }

    #[test]
    fn statuses_are_published_only_for_slos_that_exist() {
        let (mut index, _) = crate::load::load_state(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples")),
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/manifests/samples/budgets.json"
            )),
        )
        .unwrap();
        let deleted = ObjectKey::new("shop", "checkout-availability");
        assert!(index.budgets.slos.contains_key(&deleted));
        index.slos.remove(&deleted);
        let published = publish(&index, &index.budgets, &Previous::default(), at(0));
        assert!(!published.slos.contains_key(&deleted));
        assert!(
            published
                .slos
                .contains_key(&ObjectKey::new("shop", "cart-latency"))
        );
    }

    #[test]
    fn team_status_carries_the_firing_alerts_and_the_slos_without_data() {
        let (mut index, _) = crate::load::load_state(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples")),
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/manifests/samples/budgets.json"
            )),
        )
        .unwrap();
        let key = ("payments".to_owned(), "production".to_owned());
        let team = index.budgets.teams.get_mut(&key).unwrap();
        team.alerts = vec!["page-fast".into(), "ticket-fast".into()];
        team.paging = true;
        team.lacking = 1;
        let budgets = index.budgets.clone();
        let published = publish(&index, &budgets, &Previous::default(), at(0));
        let production = &published.teams["payments"].tiers[0];
        assert_eq!(production.alerts, ["page-fast", "ticket-fast"]);
        assert_eq!(production.slos_without_data, 1);
        let json = serde_json::to_value(production).unwrap();
        assert_eq!(
            json["alerts"],
            serde_json::json!(["page-fast", "ticket-fast"])
        );
        assert_eq!(json["slosWithoutData"], 1);
        // The printer columns' texts say what the numbers say.
        let (remaining, burn) = (
            production.remaining.unwrap(),
            production.burn_rate1h.unwrap(),
        );
        assert_eq!(json["remainingText"], crate::decision::text_pct(remaining));
        assert_eq!(json["burnRate1hText"], format!("{burn:.2}x"));
        // discovery: its ticket-slow pair fires, every SLO reports.
        let discovery =
            &publish(&index, &index.budgets, &Previous::default(), at(0)).teams["discovery"];
        let json = serde_json::to_value(&discovery.tiers[0]).unwrap();
        assert_eq!(json["alerts"], serde_json::json!(["ticket-slow"]));
        assert_eq!(json.get("slosWithoutData"), None);
    }

    #[test]
    fn printer_column_texts_are_percentages_and_factors() {
        assert_eq!(text_pct(-5.483061586550647), "-548.3%");
        assert_eq!(text_pct(0.62), "62.0%");
        assert_eq!(text_factor(6.483061586550647), "6.48x");
        assert_eq!(text_factor(0.0), "0.00x");
    }

    #[test]
    fn team_status_lists_tiers_worst_first_with_cadence_and_slo_summaries() {
        let (index, _) = crate::load::load_state(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/samples")),
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/manifests/samples/budgets.json"
            )),
        )
        .unwrap();
        let published = publish(&index, &index.budgets, &Previous::default(), at(0));
        let payments = &published.teams["payments"];
        assert_eq!(payments.tiers.len(), 1);
        let production = &payments.tiers[0];
        assert_eq!(production.band.as_deref(), Some("healthy"));
        assert_eq!(production.rollouts_in_flight, 0);
        assert_eq!(
            production.last_release.as_ref().map(|r| r.name.as_str()),
            Some("checkout-3f9a1c0b2d")
        );
        let names: Vec<_> = production.slos.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cart-latency", "checkout-availability"]);
        assert_eq!(
            production.burn_rate1h,
            production.burn_rates.get("1h").copied()
        );
        assert_eq!(payments.conditions[0].type_, "Ready");
        assert_eq!(payments.conditions[0].status, "True");
        let checkout = &published.slos[&ObjectKey::new("shop", "checkout-availability")];
        assert_eq!(checkout.band.as_deref(), Some("caution"));
        assert_eq!(
            checkout.evaluated_at,
            Some(Time("2026-11-29T09:59:30Z".parse().unwrap()))
        );
        let tiers: Vec<_> = published
            .platform
            .iter()
            .map(|p| (p.tier.as_str(), p.band.clone()))
            .collect();
        assert_eq!(
            tiers,
            [
                ("production", Some("healthy".to_owned())),
                ("staging", None)
            ]
        );
    }

    #[test]
    fn statuses_are_rewritten_on_change_or_when_their_evaluation_gets_old() {
        let status = |remaining: f64, at: i64| ServiceLevelObjectiveStatus {
            remaining: Some(remaining),
            evaluated_at: Some(Time(at_minute(at))),
            ..Default::default()
        };
        let beat = jiff::SignedDuration::from_mins(2);
        assert!(needs_write(None, &status(0.4, 0), beat, at_minute(0)));
        assert!(
            !needs_write(Some(&status(0.4, 0)), &status(0.4, 1), beat, at_minute(1)),
            "same content, fresh enough"
        );
        assert!(
            needs_write(Some(&status(0.4, 0)), &status(0.4, 2), beat, at_minute(2)),
            "heartbeat"
        );
        assert!(
            needs_write(Some(&status(0.4, 0)), &status(0.3, 1), beat, at_minute(1)),
            "content changed"
        );
        assert!(
            !needs_write(Some(&status(0.4, 0)), &status(0.4, 0), beat, at_minute(9)),
            "nothing newer to say"
        );
    }

    fn at_minute(m: i64) -> Timestamp {
        at(m)
    }

    #[test]
    fn a_failed_evaluation_is_ready_false_and_stale_true_with_the_reason() {
        let c = stale_conditions(
            "Prometheus http://p:9090 unavailable after 3 attempts: connection refused",
            at(0),
        );
        let summary: Vec<_> = c
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("Ready", "False", "EvaluationFailed"),
                ("Stale", "True", "EvaluationFailed")
            ]
        );
        assert_eq!(
            c[1].message,
            "budgets are not being updated: Prometheus http://p:9090 unavailable after 3 attempts: connection refused; admission follows onStale once they are older than staleAfter"
        );
    }

    #[test]
    fn band_changes_are_worded_for_people() {
        let tier = |band: Option<&str>, state, remaining| TierBudget {
            tier: "production".into(),
            band: band.map(str::to_owned),
            state: Some(state),
            remaining: Some(remaining),
            ..Default::default()
        };
        let status = |t| TeamBudgetStatus {
            tiers: vec![t],
            ..Default::default()
        };
        let before = status(tier(Some("caution"), BudgetState::Caution, 0.3));
        let after = status(tier(Some("critical"), BudgetState::Critical, 0.18));
        assert_eq!(
            band_changes("payments", Some(&before), &after),
            [BandChange { note: "payments moved from caution to critical in tier production (18.0% budget remaining)".into(), worse: true }]
        );
        let spent = status(tier(None, BudgetState::Exhausted, -0.01));
        assert_eq!(
            band_changes("payments", Some(&after), &spent)[0].note,
            "payments moved from critical to exhausted in tier production (-1.0% budget remaining)"
        );
        assert!(band_changes("payments", Some(&after), &after).is_empty());
        assert!(band_changes("payments", None, &after).is_empty());
    }

    #[test]
    fn ready_condition_keeps_its_transition_time_while_unchanged() {
        let a = assessment(0.4, 1.0, false);
        let first = ready(&a, &[], at(0));
        assert_eq!(ready(&a, &first, at(10)), first);
        let mut unknown = a.clone();
        unknown.state = BudgetState::Unknown;
        let flipped = ready(&unknown, &first, at(20));
        assert_eq!(flipped[0].status, "False");
        assert_eq!(flipped[0].last_transition_time, Time(at(20)));
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;
    use crate::index::NamespaceMeta;

    #[test]
    fn a_teams_events_by_cluster_sum_its_slos_in_the_tier() {
        let mut index = Index::default();
        for (ns, tier) in [
            ("shop", "production"),
            ("cart", "production"),
            ("lab", "staging"),
        ] {
            index.namespaces.insert(
                ns.into(),
                NamespaceMeta {
                    team: Some("payments".into()),
                    tier: Some(tier.into()),
                    ..NamespaceMeta::default()
                },
            );
        }
        let mut published = Published::default();
        published.teams.insert(
            "payments".into(),
            TeamBudgetStatus {
                tiers: vec![
                    TierBudget {
                        tier: "production".into(),
                        ..TierBudget::default()
                    },
                    TierBudget {
                        tier: "staging".into(),
                        ..TierBudget::default()
                    },
                ],
                ..TeamBudgetStatus::default()
            },
        );
        let split = BTreeMap::from([
            (
                ObjectKey::new("shop", "avail"),
                BTreeMap::from([
                    ("a".to_owned(), (3.0, 100.0)),
                    ("b".to_owned(), (0.0, 50.0)),
                ]),
            ),
            (
                ObjectKey::new("cart", "avail"),
                BTreeMap::from([("a".to_owned(), (1.0, 10.0))]),
            ),
            // Another tier's SLO, and a namespace without a team, count elsewhere or nowhere.
            (
                ObjectKey::new("lab", "avail"),
                BTreeMap::from([("a".to_owned(), (7.0, 7.0))]),
            ),
            (
                ObjectKey::new("nobody", "avail"),
                BTreeMap::from([("a".to_owned(), (9.0, 9.0))]),
            ),
        ]);
        attach_clusters(&mut published, &index, &split);
        let tiers = &published.teams["payments"].tiers;
        let events = |t: &TierBudget| {
            t.clusters
                .iter()
                .map(|c| (c.cluster.clone(), c.bad, c.total))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            events(&tiers[0]),
            [("a".to_owned(), 4.0, 110.0), ("b".to_owned(), 0.0, 50.0)]
        );
        assert_eq!(events(&tiers[1]), [("a".to_owned(), 7.0, 7.0)]);
    }
}
