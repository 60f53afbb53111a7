//! The views on the samples (`manifests/samples/`, budgets evaluated 2026-11-29T09:59:30Z):
//! payments healthy (89.2%), discovery, billing (dry-run) and growth (staging, warn)
//! exhausted.

use super::*;
use crate::api::{Plan, ReleasePhase, Timestamp};
use crate::index::ReleaseEntry;
use std::path::Path;

fn samples() -> Index {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/samples");
    crate::load::load_state(&root, &root.join("budgets.json"))
        .expect("the samples load")
        .0
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

const NOW: &str = "2026-11-29T10:00:00Z";

fn release(
    index: &mut Index,
    ns: &str,
    name: &str,
    created: &str,
    phase: ReleasePhase,
    remaining: Option<f64>,
) {
    index.releases.insert(
        ObjectKey::new(ns, name),
        ReleaseEntry {
            deployment: name.split('-').next().unwrap().into(),
            created: Some(ts(created)),
            phase: Some(phase),
            revision: format!("{name}-rev"),
            remaining_at_start: remaining,
            ..ReleaseEntry::default()
        },
    );
}

#[test]
fn platform_rows_carry_the_status_numbers_worst_first() {
    let index = samples();
    let view = platform(&index, ts(NOW));
    let status = crate::status::report(&index);
    assert_eq!(view.evaluated_at, status.evaluated_at);
    let tiers: Vec<&str> = view.tiers.iter().map(|t| t.tier.as_str()).collect();
    assert_eq!(tiers, ["production", "staging"]);
    let production = &view.tiers[0];
    let order: Vec<&str> = production.teams.iter().map(|t| t.team.as_str()).collect();
    // Frozen first, least remaining first among them; then the healthy team.
    assert_eq!(order, ["discovery", "billing", "payments"]);
    for row in view.tiers.iter().flat_map(|t| &t.teams) {
        let s = status
            .teams
            .iter()
            .find(|s| s.team == row.team && s.tier == row.tier)
            .unwrap();
        assert_eq!(
            (row.remaining, &row.band, row.state),
            (s.remaining, &s.band, s.state),
            "{}",
            row.team
        );
        assert_eq!(
            row.burn_rates.get("1h").copied().flatten(),
            s.burn_rates.get("1h").copied().flatten()
        );
    }
    assert_eq!(
        production.teams[0].frozen.as_deref(),
        Some("error budget exhausted")
    );
    assert_eq!(production.teams[2].frozen, None);
    assert_eq!(
        production.remaining,
        status.platform["production"].remaining
    );
    assert_eq!(production.enforcement, Some(Enforcement::Enforce));
    assert_eq!(view.tiers[1].enforcement, Some(Enforcement::Warn));
}

#[test]
fn in_flight_counts_progressing_releases_and_the_last_release_is_the_newest() {
    let mut index = samples();
    release(
        &mut index,
        "shop",
        "web-a",
        "2026-11-29T09:00:00Z",
        ReleasePhase::Progressing,
        Some(0.9),
    );
    release(
        &mut index,
        "shop",
        "web-b",
        "2026-11-29T09:30:00Z",
        ReleasePhase::RolledBack,
        Some(0.9),
    );
    let view = platform(&index, ts(NOW));
    let payments = view.tiers[0]
        .teams
        .iter()
        .find(|t| t.team == "payments")
        .unwrap();
    assert_eq!(payments.rollouts_in_flight, 1);
    let last = payments.last_release.as_ref().unwrap();
    assert_eq!(
        (last.name.as_str(), last.phase),
        ("web-b", Some(ReleasePhase::RolledBack))
    );
}

#[test]
fn a_page_burn_freezes_only_where_the_tier_says_so() {
    let mut index = samples();
    let key = ("payments".to_owned(), "production".to_owned());
    let team = index.budgets.teams.get_mut(&key).unwrap();
    team.state = BudgetState::Burning;
    team.alerts = vec!["page-fast".into()];
    let view = platform(&index, ts(NOW));
    let payments = view.tiers[0]
        .teams
        .iter()
        .find(|t| t.team == "payments")
        .unwrap();
    assert_eq!(
        payments.frozen.as_deref(),
        Some("burning at page rate (page-fast)")
    );
    // Frozen teams first (least remaining first), then billing, which only would be.
    let order: Vec<&str> = view.tiers[0]
        .teams
        .iter()
        .map(|t| t.team.as_str())
        .collect();
    assert_eq!(order, ["discovery", "payments", "billing"]);
}

#[test]
fn team_page_lists_slos_with_alert_thresholds_releases_and_the_decision_now() {
    let mut index = samples();
    release(
        &mut index,
        "shop",
        "web-a",
        "2026-11-29T09:00:00Z",
        ReleasePhase::Promoted,
        Some(0.9),
    );
    let view = team(&index, "payments", &BTreeMap::new(), ts(NOW)).unwrap();
    assert_eq!(view.tiers.len(), 1);
    let t = &view.tiers[0];
    assert_eq!(t.namespaces, ["shop"]);
    let slos: Vec<String> = t
        .slos
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    assert_eq!(slos, ["shop/cart-latency", "shop/checkout-availability"]);
    let checkout = &t.slos[1];
    assert_eq!(
        checkout.remaining,
        index.budgets.slos[&ObjectKey::new("shop", "checkout-availability")].remaining
    );
    assert_eq!(checkout.window, "30d");
    let factors: Vec<(&str, f64)> = checkout
        .thresholds
        .iter()
        .map(|t| (t.name.as_str(), t.factor))
        .collect();
    assert_eq!(
        factors,
        [
            ("page-fast", 14.4),
            ("page-slow", 6.0),
            ("ticket-fast", 3.0),
            ("ticket-slow", 1.0)
        ]
    );
    // Newest first: the sample's promoted release of 08:00, then web-a of 09:00 before it.
    let names: Vec<&str> = t.releases.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["web-a", "checkout-3f9a1c0b2d"]);
    assert_eq!(t.releases[1].plan.as_deref(), Some("10,25,50,100 every 5m"));
    // A new Deployment in shop is covered by no SLO's selector: the team's 89.2% decides.
    let d = &t.decisions[0];
    assert_eq!(
        (d.namespace.as_str(), d.verdict, d.reason),
        ("shop", "allow", "within_budget")
    );
    assert_eq!(d.band.as_deref(), Some("healthy"));
    assert_eq!(d.plan.as_deref(), Some("20,50,100 every 2m"));
}

#[test]
fn an_exhausted_team_page_shows_the_denial() {
    let index = samples();
    let view = team(&index, "discovery", &BTreeMap::new(), ts(NOW)).unwrap();
    let d = &view.tiers[0].decisions[0];
    assert_eq!((d.verdict, d.reason), ("deny", "exhausted"));
    assert!(
        d.message.as_deref().unwrap().contains("error budget"),
        "{d:?}"
    );
    assert!(view.tiers[0].row.frozen.is_some());
}

#[test]
fn unknown_teams_have_no_page() {
    assert_eq!(team(&samples(), "nobody", &BTreeMap::new(), ts(NOW)), None);
}

#[test]
fn adoption_counts_what_enforce_would_have_denied_or_slowed() {
    let mut index = samples();
    // ledger: dry-run, production bands (healthy > 0.5, caution > 0.25, critical > 0).
    release(
        &mut index,
        "ledger",
        "pay-1",
        "2026-11-28T10:00:00Z",
        ReleasePhase::Observed,
        Some(-0.2),
    );
    release(
        &mut index,
        "ledger",
        "pay-2",
        "2026-11-27T10:00:00Z",
        ReleasePhase::Observed,
        Some(0.3),
    );
    release(
        &mut index,
        "ledger",
        "pay-3",
        "2026-11-26T10:00:00Z",
        ReleasePhase::Observed,
        Some(0.8),
    );
    release(
        &mut index,
        "ledger",
        "pay-4",
        "2026-11-25T10:00:00Z",
        ReleasePhase::Observed,
        None,
    );
    release(
        &mut index,
        "ledger",
        "pay-5",
        "2026-11-25T11:00:00Z",
        ReleasePhase::Superseded,
        Some(-0.2),
    );
    release(
        &mut index,
        "ledger",
        "pay-6",
        "2026-10-01T10:00:00Z",
        ReleasePhase::Observed,
        Some(-0.2),
    );
    // ads-staging: the staging tier warns (healthy > 0.25, critical > 0).
    release(
        &mut index,
        "ads-staging",
        "banner-1",
        "2026-11-29T08:00:00Z",
        ReleasePhase::Direct,
        Some(0.1),
    );
    // pay-3 had a healthy band but its team burned at page level: the ledger said deny.
    index
        .releases
        .get_mut(&crate::index::ObjectKey::new("ledger", "pay-3"))
        .unwrap()
        .reason = Some(
        "dry-run: enforce would have denied it: the team burns its error budget at page level (page-fast firing; 80.0% remaining)".into(),
    );
    let view = adoption(&index, ts(NOW));
    assert_eq!(view.since, ts("2026-10-30T10:00:00Z"));
    let rows: Vec<(&str, Enforcement, u32, u32, u32, u32)> = view
        .namespaces
        .iter()
        .map(|r| {
            (
                r.namespace.as_str(),
                r.mode,
                r.releases,
                r.would_deny,
                r.would_slow,
                r.unknown,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("ads-staging", Enforcement::Warn, 1, 0, 1, 0),
            ("ledger", Enforcement::Dryrun, 4, 2, 1, 1),
        ]
    );
    let ledger = &view.namespaces[1];
    let evidence: Vec<(&str, &str)> = ledger
        .evidence
        .iter()
        .map(|e| (e.release.name.as_str(), e.outcome))
        .collect();
    assert_eq!(
        evidence,
        [("pay-1", "deny"), ("pay-2", "slow"), ("pay-3", "deny")]
    );
    assert_eq!(ledger.now.verdict, "dryrun-deny");
    assert_eq!(view.namespaces[0].now.verdict, "warn");
}

#[test]
fn html_pages_mark_rows_for_machines_and_frozen_teams_for_people() {
    let mut index = samples();
    let plan = Plan {
        steps: vec![20, 50, 100],
        pause: crate::api::Duration::parse("2m").unwrap(),
    };
    index.releases.insert(
        ObjectKey::new("shop", "web-<1>"),
        ReleaseEntry {
            deployment: "web".into(),
            created: Some(ts("2026-11-29T09:00:00Z")),
            phase: Some(ReleasePhase::RolledBack),
            plan: Some(plan),
            reason: Some("burns \"fast\" & <hot>".into()),
            ..ReleaseEntry::default()
        },
    );
    let page = html::platform(&platform(&index, ts(NOW)));
    assert!(page.contains(
        "<tr class=\"team frozen\" data-team=\"discovery\" data-tier=\"production\" data-remaining=\"-0.5\" data-band=\"\" data-state=\"Exhausted\" data-frozen=\"true\" data-would-freeze=\"false\" data-in-flight=\"0\" data-queued=\"0\">"
    ), "{page}");
    assert!(page.contains("<tr class=\"team\" data-team=\"payments\" data-tier=\"production\""));
    assert!(page.contains("data-frozen=\"false\""));
    assert!(page.contains("FROZEN"));
    assert!(page.contains("<tr class=\"team would-freeze\" data-team=\"billing\""));
    assert!(page.contains(
        "WOULD FREEZE</span><div class=\"reason\">error budget exhausted (not enforced here)</div>"
    ));
    assert!(page.contains("<a href=\"/teams/payments\">payments</a>"));
    assert!(page.contains("data-evaluated-at=\"2026-11-29T09:59:30Z\""));
    assert!(!page.contains("<script"));
    let team_page = html::team(&team(&index, "payments", &BTreeMap::new(), ts(NOW)).unwrap());
    assert!(
        team_page.contains("data-release=\"shop/web-&lt;1&gt;\" data-phase=\"RolledBack\""),
        "{team_page}"
    );
    assert!(team_page.contains("burns &quot;fast&quot; &amp; &lt;hot&gt;"));
    assert!(team_page.contains("<section class=\"slo\" data-slo=\"shop/checkout-availability\""));
    assert!(team_page.contains("data-chart=\"burndown\""));
    assert!(team_page.contains("data-threshold=\"page-fast\" data-factor=\"14.4\""));
    // No chart data was given: each chart says so.
    assert!(team_page.contains("<text class=\"nodata\""));
    assert!(
        team_page
            .contains("<div class=\"decision\" data-namespace=\"shop\" data-verdict=\"allow\"")
    );
}

#[test]
fn queued_rollouts_show_on_the_platform_row_and_the_team_page_in_order() {
    let mut index = samples();
    for (name, since) in [
        ("cart-b", "2026-11-29T09:40:00Z"),
        ("web-q", "2026-11-29T09:20:00Z"),
    ] {
        release(
            &mut index,
            "shop",
            name,
            since,
            ReleasePhase::Queued,
            Some(-0.1),
        );
        let entry = index
            .releases
            .get_mut(&ObjectKey::new("shop", name))
            .unwrap();
        entry.queued_since = Some(ts(since));
        entry.reason = Some(format!(
            "queued at position 9: the error budget is exhausted ({name})"
        ));
    }
    let view = platform(&index, ts(NOW));
    let payments = view.tiers[0]
        .teams
        .iter()
        .find(|t| t.team == "payments")
        .unwrap();
    assert_eq!((payments.queued, payments.rollouts_in_flight), (2, 0));
    let page = team(&index, "payments", &BTreeMap::new(), ts(NOW)).unwrap();
    let queue: Vec<(u32, &str, Option<&str>)> = page.tiers[0]
        .queue
        .iter()
        .map(|q| (q.position, q.deployment.as_str(), q.reason.as_deref()))
        .collect();
    assert_eq!(
        queue,
        [
            (1, "web", Some("the error budget is exhausted (web-q)")),
            (2, "cart", Some("the error budget is exhausted (cart-b)"))
        ]
    );
    let html = super::html::team(&page);
    assert!(html.contains("<h3>Queued rollouts</h3>"), "{html}");
    assert!(html.contains("data-deployment=\"shop/web\" data-position=\"1\""));
    assert!(super::html::platform(&view).contains("0 <span class=\"muted\">+2 queued</span>"));
}
