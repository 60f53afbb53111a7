use super::*;
use crate::api::{BudgetState, ReliabilityPolicy, TeamBudgetSpec, TeamBudgetStatus, TierBudget};
use crate::budget::Assessment;
use crate::index::{NamespaceMeta, SloSignals};
use crate::policy::Policy;
use serde_json::json;

const NOW: &str = "2026-11-29T12:00:00Z";

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A Release builder: `release("shop", "r1", "2026-11-10T00:00:00Z").phase("Promoted")`.
struct ReleaseBuilder(serde_json::Value);

fn release(namespace: &str, name: &str, created: &str) -> ReleaseBuilder {
    ReleaseBuilder(json!({
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"deployment": format!("{name}-app"), "revision": format!("{name}rev")},
        "status": {}
    }))
}

impl ReleaseBuilder {
    fn phase(mut self, phase: &str) -> Self {
        self.0["status"]["phase"] = json!(phase);
        self
    }
    fn consumed(mut self, fraction: f64) -> Self {
        self.0["status"]["budgetConsumed"] = json!(fraction);
        self
    }
    fn reason(mut self, reason: &str, completed: &str) -> Self {
        self.0["status"]["reason"] = json!(reason);
        self.0["status"]["completedAt"] = json!(completed);
        self
    }
    fn exception(mut self, name: &str) -> Self {
        self.0["spec"]["exception"] = json!(name);
        self
    }
    fn build(self) -> Release {
        serde_json::from_value(self.0).unwrap()
    }
}

fn incident(
    start: &str,
    end: Option<&str>,
    remaining_at_start: Option<f64>,
    consumed: f64,
    within_budget: bool,
    overdue: bool,
) -> crate::api::Incident {
    serde_json::from_value(json!({
        "start": start, "end": end, "peakBurn": 20.0, "remainingAtStart": remaining_at_start,
        "budgetConsumed": consumed, "withinBudget": within_budget, "overdue": overdue
    }))
    .unwrap()
}

fn team_budget(team: &str, tiers: Vec<TierBudget>) -> TeamBudget {
    let mut object = TeamBudget::new(team, TeamBudgetSpec { team: team.into() });
    object.status = Some(TeamBudgetStatus {
        tiers,
        ..Default::default()
    });
    object
}

fn tier(
    name: &str,
    remaining: Option<f64>,
    band: Option<&str>,
    state: BudgetState,
    incidents: Vec<crate::api::Incident>,
) -> TierBudget {
    TierBudget {
        tier: name.into(),
        remaining,
        band: band.map(str::to_owned),
        state: Some(state),
        incidents,
        ..Default::default()
    }
}

fn exception(namespace: &str, name: &str, expires: &str) -> BudgetException {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"kind": "override", "selector": {}, "reason": "INC-1 | double charge",
                 "approvedBy": "platform-oncall", "expiresAt": expires, "maxRollouts": 2}
    }))
    .unwrap()
}

fn index() -> Index {
    let object: ReliabilityPolicy = crate::policy::sample_policy();
    let meta = |team: Option<&str>, tier: Option<&str>| NamespaceMeta {
        team: team.map(str::to_owned),
        tier: tier.map(str::to_owned),
        ..Default::default()
    };
    let mut index = Index {
        policy: Some(Policy::from_spec(&object.spec).unwrap()),
        ..Default::default()
    };
    // `shop` has no tier label: the policy's default tier (production).
    index
        .namespaces
        .insert("shop".into(), meta(Some("payments"), None));
    index
        .namespaces
        .insert("cart".into(), meta(Some("payments"), Some("production")));
    index
        .namespaces
        .insert("search".into(), meta(Some("discovery"), Some("production")));
    index
        .namespaces
        .insert("web-stg".into(), meta(Some("payments"), Some("staging")));
    index.namespaces.insert("sandbox".into(), meta(None, None));
    index.budgets.platform.insert(
        "production".into(),
        Assessment {
            remaining: Some(0.3),
            burn_rates: BTreeMap::new(),
            alerts: Vec::new(),
            paging: false,
            band: Some("caution".into()),
            state: BudgetState::Caution,
            exhausts_at: None,
            lacking: 0,
        },
    );
    index
}

struct Fixture {
    releases: Vec<Release>,
    team_budgets: Vec<TeamBudget>,
    exceptions: Vec<BudgetException>,
    index: Index,
}

/// Four weeks ending at NOW (the range starts 2026-11-01T12:00:00Z).
fn fixture() -> Fixture {
    let releases = vec![
        release("shop", "r1", "2026-11-10T00:00:00Z")
            .phase("Promoted")
            .consumed(0.02)
            .build(),
        release("shop", "r2", "2026-11-12T00:00:00Z")
            .phase("Promoted")
            .consumed(0.01)
            .build(),
        release("shop", "r3", "2026-11-15T10:00:00Z")
            .phase("RolledBack")
            .consumed(0.05)
            .reason("burn 20.0x above 14.4x", "2026-11-15T10:30:00Z")
            .build(),
        release("cart", "r4", "2026-11-20T00:00:00Z")
            .phase("Direct")
            .build(),
        release("shop", "r5", "2026-11-21T00:00:00Z")
            .phase("Superseded")
            .build(),
        release("cart", "r6", "2026-11-22T00:00:00Z")
            .phase("Failed")
            .reason("canary not available within 10m", "2026-11-22T00:10:00Z")
            .exception("hotfix-1")
            .build(),
        // Before the range: counts only towards the exception's rollouts used.
        release("cart", "r7", "2026-10-01T00:00:00Z")
            .phase("Promoted")
            .consumed(0.5)
            .exception("hotfix-1")
            .build(),
        // No phase yet: progressing.
        release("shop", "r8", "2026-11-29T11:00:00Z").build(),
        release("search", "d1", "2026-11-05T00:00:00Z")
            .phase("Observed")
            .build(),
        release("search", "d2", "2026-11-06T00:00:00Z")
            .phase("Direct")
            .exception("hotfix-9")
            .build(),
        release("web-stg", "s1", "2026-11-07T00:00:00Z")
            .phase("Promoted")
            .consumed(0.1)
            .build(),
        release("sandbox", "u1", "2026-11-08T00:00:00Z")
            .phase("Promoted")
            .build(),
        // After `now`.
        release("shop", "r9", "2026-11-29T12:00:01Z")
            .phase("Promoted")
            .build(),
    ];
    let team_budgets = vec![
        team_budget(
            "payments",
            vec![
                tier(
                    "production",
                    Some(0.12),
                    Some("critical"),
                    BudgetState::Critical,
                    vec![
                        incident(
                            "2026-11-14T09:00:00Z",
                            Some("2026-11-14T11:00:00Z"),
                            Some(0.3),
                            0.2,
                            true,
                            true,
                        ),
                        // Opened before the range, ended in it: counted.
                        incident(
                            "2026-10-31T23:00:00Z",
                            Some("2026-11-02T00:00:00Z"),
                            Some(0.05),
                            0.15,
                            false,
                            false,
                        ),
                        // Over before the range: not counted.
                        incident(
                            "2026-10-01T00:00:00Z",
                            Some("2026-10-02T00:00:00Z"),
                            Some(0.9),
                            0.4,
                            true,
                            true,
                        ),
                        // Still open, opened on an exhausted budget: all overage.
                        incident("2026-11-28T00:00:00Z", None, Some(-0.1), 0.03, false, false),
                    ],
                ),
                tier(
                    "staging",
                    Some(0.6),
                    Some("healthy"),
                    BudgetState::Healthy,
                    vec![],
                ),
            ],
        ),
        team_budget(
            "discovery",
            vec![tier(
                "production",
                Some(0.45),
                Some("caution"),
                BudgetState::Caution,
                vec![],
            )],
        ),
        team_budget(
            "ledger",
            vec![tier(
                "production",
                Some(-0.05),
                None,
                BudgetState::Exhausted,
                vec![],
            )],
        ),
    ];
    let exceptions = vec![
        exception("cart", "hotfix-1", "2026-12-01T00:00:00Z"),
        exception("shop", "old-1", "2026-11-20T00:00:00Z"),
    ];
    Fixture {
        releases,
        team_budgets,
        exceptions,
        index: index(),
    }
}

fn report_of(f: &Fixture) -> Report {
    build(&ReportInput {
        releases: &f.releases,
        team_budgets: &f.team_budgets,
        exceptions: &f.exceptions,
        index: &f.index,
        since: &Duration::parse("28d").unwrap(),
        now: ts(NOW),
        events: None,
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_range_ends_at_now_and_spans_since() {
    let report = report_of(&fixture());
    assert_eq!(report.from, ts("2026-11-01T12:00:00Z"));
    assert_eq!(report.to, ts(NOW));
    assert_eq!(report.since, "28d");
    assert_eq!(report.unmanaged_releases, 1);
}

#[test]
fn teams_are_grouped_by_tier_worst_first() {
    let report = report_of(&fixture());
    let order: Vec<(&str, &str)> = report
        .teams
        .iter()
        .map(|t| (t.team.as_str(), t.tier.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("ledger", "production"),
            ("payments", "production"),
            ("discovery", "production"),
            ("payments", "staging"),
        ]
    );
}

#[test]
fn a_team_row_counts_its_releases_rollbacks_rates_and_incidents() {
    let report = report_of(&fixture());
    let payments = &report.teams[1];
    assert_eq!(payments.team, "payments");
    assert_eq!(payments.remaining, Some(0.12));
    assert_eq!(payments.band.as_deref(), Some("critical"));
    assert_eq!(payments.state, Some(BudgetState::Critical));
    let a = &payments.activity;
    assert_eq!(
        a.phases,
        PhaseCounts {
            promoted: 2,
            rolled_back: 1,
            direct: 1,
            observed: 0,
            failed: 1,
            progressing: 1,
            superseded: 1,
        }
    );
    assert_eq!(a.releases, 6, "every phase but Superseded");
    assert_eq!(a.rollbacks, 2, "RolledBack + Failed");
    assert_eq!(a.change_failure_rate, Some(0.4), "2 of 5 judged");
    assert_eq!(a.deployment_frequency, 0.75, "3 completed in 4 weeks");
    assert!(close(payments.budget_consumed, 0.08));
    assert_eq!(a.incidents, 3);
    assert_eq!(a.incidents_over_budget, 2);
    assert_eq!(a.incidents_overdue, 1);
    assert!(close(payments.incident_budget_consumed, 0.38));
    assert!(close(payments.incident_overage, 0.13));
    assert_eq!(a.exception_releases, 1);

    let discovery = &report.teams[2];
    assert_eq!(discovery.activity.releases, 2);
    assert_eq!(discovery.activity.phases.observed, 1);
    assert_eq!(discovery.activity.change_failure_rate, Some(0.0));
    assert_eq!(discovery.activity.deployment_frequency, 0.25);

    let ledger = &report.teams[0];
    assert_eq!(
        ledger.activity,
        Activity::default(),
        "a budget, no releases"
    );
    assert_eq!(
        ledger.activity.change_failure_rate, None,
        "nothing completed"
    );
}

#[test]
fn overage_is_what_an_incident_took_beyond_the_budget_left() {
    assert_eq!(overage(0.2, Some(0.3)), Some(0.0));
    assert!(close(overage(0.15, Some(0.05)).unwrap(), 0.10));
    assert_eq!(overage(0.03, Some(-0.1)), Some(0.03));
    assert_eq!(overage(0.03, None), None);
}

#[test]
fn tier_and_platform_totals_are_sums_with_rates_recomputed() {
    let report = report_of(&fixture());
    let production = &report.tiers["production"];
    assert_eq!(production.teams, 3);
    assert_eq!(production.remaining, Some(0.3));
    assert_eq!(production.band.as_deref(), Some("caution"));
    assert_eq!(production.activity.releases, 8);
    assert_eq!(production.activity.rollbacks, 2);
    assert_eq!(production.activity.change_failure_rate, Some(2.0 / 6.0));
    assert_eq!(production.activity.deployment_frequency, 1.0);
    assert_eq!(production.activity.incidents, 3);
    assert_eq!(production.activity.exception_releases, 2);
    let staging = &report.tiers["staging"];
    assert_eq!((staging.teams, staging.remaining), (1, None));
    assert_eq!(staging.activity.releases, 1);
    let p = &report.platform;
    assert_eq!(p.releases, 9);
    assert_eq!(p.phases.promoted, 3);
    assert_eq!(p.phases.superseded, 1);
    assert_eq!(p.change_failure_rate, Some(2.0 / 7.0));
    assert_eq!(p.deployment_frequency, 1.25);
}

#[test]
fn rollbacks_incidents_and_exceptions_are_listed() {
    let report = report_of(&fixture());
    let rollbacks: Vec<(&str, ReleasePhase, Option<&str>)> = report
        .rollbacks
        .iter()
        .map(|r| (r.release.as_str(), r.phase, r.reason.as_deref()))
        .collect();
    assert_eq!(
        rollbacks,
        [
            (
                "r3",
                ReleasePhase::RolledBack,
                Some("burn 20.0x above 14.4x")
            ),
            (
                "r6",
                ReleasePhase::Failed,
                Some("canary not available within 10m")
            ),
        ]
    );
    assert_eq!(report.rollbacks[1].namespace, "cart");
    assert_eq!(report.rollbacks[1].deployment, "r6-app");
    let starts: Vec<Timestamp> = report.incidents.iter().map(|i| i.start).collect();
    assert_eq!(
        starts,
        [
            ts("2026-10-31T23:00:00Z"),
            ts("2026-11-14T09:00:00Z"),
            ts("2026-11-28T00:00:00Z")
        ]
    );
    let used: Vec<(&str, &str, u32, Option<ExceptionKind>)> = report
        .exceptions_used
        .iter()
        .map(|x| {
            (
                x.namespace.as_str(),
                x.exception.as_str(),
                x.releases,
                x.kind,
            )
        })
        .collect();
    assert_eq!(
        used,
        [
            ("cart", "hotfix-1", 1, Some(ExceptionKind::Override)),
            ("search", "hotfix-9", 1, None),
        ]
    );
    assert_eq!(report.active_exceptions.len(), 1, "old-1 has expired");
    let active = &report.active_exceptions[0];
    assert_eq!(
        (
            active.exception.as_str(),
            active.team.as_deref(),
            active.rollouts_used,
            active.max_rollouts
        ),
        ("hotfix-1", Some("payments"), 2, Some(2))
    );
}

#[test]
fn markdown_has_the_title_summary_rows_and_definitions() {
    let text = render::markdown(&report_of(&fixture()));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# budgetgate review: 2026-11-01 – 2026-11-29");
    assert_eq!(
        lines[2],
        "From 2026-11-01 to 2026-11-29 (28d), 3 of 4 teams shipped 9 releases: 3 promoted, 2 direct, \
         2 rolled back or failed (change failure rate 28.6%), 1.25 deployments per week. \
         3 incidents overlapped the range; 2 ran over the budget that was left and 1 was overdue. \
         2 releases went through on a BudgetException; 1 exception is active now. \
         Budget exhausted now: ledger (production)."
    );
    assert_eq!(
        lines[4],
        "1 release in namespaces without a team is not counted."
    );
    let production = lines
        .iter()
        .position(|l| *l == "## Tier production")
        .unwrap();
    assert_eq!(
        &lines[production + 2..production + 8],
        [
            "| Team | Remaining | Band | State | Releases | Promoted | Direct | Rolled back | Failed | Observed | Change failure rate | Deploys/week | Budget consumed by releases | Incidents | Incident budget consumed | Overage | Overdue | Exception releases |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            "| ledger | -5.0% | - | Exhausted | 0 | 0 | 0 | 0 | 0 | 0 | - | 0.00 | 0.0% | 0 | 0.0% | 0.0% | 0 | 0 |",
            "| payments | 12.0% | critical | Critical | 6 | 2 | 1 | 1 | 1 | 0 | 40.0% | 0.75 | 8.0% | 3 | 38.0% | 13.0% | 1 | 1 |",
            "| discovery | 45.0% | caution | Caution | 2 | 0 | 1 | 0 | 0 | 1 | 0.0% | 0.25 | 0.0% | 0 | 0.0% | 0.0% | 0 | 1 |",
            "| **total** | 30.0% | caution |  | 8 | 2 | 2 | 1 | 1 | 1 | 33.3% | 1.00 |  | 3 |  |  | 1 | 2 |",
        ]
    );
    assert!(text.contains(
        "| 2026-11-15 10:30 | payments | shop | r3-app | r3rev | RolledBack | 5.0% | burn 20.0x above 14.4x |\n"
    ));
    assert!(text.contains(
        "| 2026-11-28 00:00 | open | payments | production | 20.0x | -10.0% | 3.0% | 3.0% | no | no |\n"
    ));
    assert!(text.contains(
        "| cart | hotfix-1 | payments | override | platform-oncall | 2026-12-01 00:00 | 2 of 2 | INC-1 \\| double charge |\n"
    ));
    assert!(text.contains("| search | hotfix-9 | discovery | 1 | (deleted) | - | - |\n"));
    for (name, _) in DEFINITIONS {
        assert!(text.contains(&format!("- **{name}**: ")), "{name}");
    }
}

#[test]
fn csv_has_a_header_and_one_line_per_team_and_tier() {
    let text = render::csv(&report_of(&fixture()));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        "team,tier,remaining,band,state,releases,promoted,direct,rolledBack,failed,observed,\
         progressing,superseded,rollbacks,changeFailureRate,deploymentFrequency,budgetConsumed,\
         incidents,incidentBudgetConsumed,incidentOverage,incidentsOverBudget,incidentsOverdue,\
         exceptionReleases,eventsBad,eventsTotal,rangeBurnRate"
    );
    assert_eq!(
        lines[3],
        "discovery,production,0.45,caution,Caution,2,0,1,0,0,1,0,0,0,0,0.25,0,0,0,0,0,0,1,,,"
    );
    assert_eq!(
        lines[1],
        "ledger,production,-0.05,,Exhausted,0,0,0,0,0,0,0,0,0,,0,0,0,0,0,0,0,0,,,"
    );
}

#[test]
fn json_is_the_report_in_camel_case() {
    let report = report_of(&fixture());
    let value: serde_json::Value = serde_json::from_str(&render::json(&report)).unwrap();
    let payments = &value["teams"][1];
    assert_eq!(payments["team"], "payments");
    assert_eq!(payments["releases"], 6);
    assert_eq!(payments["phases"]["rolledBack"], 1);
    assert_eq!(payments["changeFailureRate"], 0.4);
    assert_eq!(payments["deploymentFrequency"], 0.75);
    assert_eq!(payments["incidentsOverBudget"], 2);
    assert_eq!(value["tiers"]["production"]["teams"], 3);
    assert_eq!(value["platform"]["releases"], 9);
    assert_eq!(value["unmanagedReleases"], 1);
    assert_eq!(value["from"], "2026-11-01T12:00:00Z");
}

#[test]
fn the_ledger_definition_names_the_controllers_limit() {
    let (_, text) = DEFINITIONS
        .iter()
        .find(|(name, _)| *name == "Ledger")
        .unwrap();
    assert!(text.contains(&format!(
        "newest {} Releases",
        crate::controller::rollout::LEDGER_LIMIT
    )));
}

fn slo_signals(namespace: &str, objective: f64, counts: Option<(f64, f64)>) -> SloSignals {
    use crate::budget::{Counts, Signals};
    let b = crate::budget::budget_ratio(objective);
    SloSignals {
        key: crate::index::ObjectKey::new(namespace, "avail"),
        objective,
        window: None,
        signals: Signals::from_counts(b, counts.map(|(bad, total)| Counts { bad, total }), []),
    }
}

#[test]
fn prometheus_events_are_summed_per_team_and_burn_is_event_weighted() {
    let f = fixture();
    let events = [
        slo_signals("shop", 99.9, Some((30.0, 20_000.0))),
        slo_signals("cart", 99.0, Some((10.0, 1_000.0))),
        // No data: left out, not zero.
        slo_signals("search", 99.9, None),
        slo_signals("sandbox", 99.9, Some((5.0, 10.0))),
    ];
    let report = build(&ReportInput {
        releases: &f.releases,
        team_budgets: &f.team_budgets,
        exceptions: &f.exceptions,
        index: &f.index,
        since: &Duration::parse("28d").unwrap(),
        now: ts(NOW),
        events: Some(&events),
    });
    let payments = &report.teams[1];
    assert_eq!(payments.team, "payments");
    assert_eq!(payments.events_bad, Some(40.0));
    assert_eq!(payments.events_total, Some(21_000.0));
    // 40 bad events against 20 + 10 allowed.
    assert!(close(payments.range_burn_rate.unwrap(), 40.0 / 30.0));
    let discovery = &report.teams[2];
    assert_eq!(
        (discovery.events_bad, discovery.range_burn_rate),
        (None, None)
    );
    let text = render::markdown(&report);
    assert!(text.contains(
        "\n## Events over the range (Prometheus)\n\n| Team | Tier | Bad events | Events | Error ratio | Burn over the range |\n| --- | --- | --- | --- | --- | --- |\n| payments | production | 40 | 21000 | 0.190% | 1.33x |\n\n## Rollbacks"
    ));
    let csv = render::csv(&report);
    assert!(csv.contains(",1,40,21000,1.3333333333333333\n"), "{csv}");
}
