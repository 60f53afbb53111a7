//! The scoreboard's HTTP server on the samples (no Prometheus): routes, methods, status
//! codes, and the same numbers in the HTML, the JSON and `budgetgate status -o json`.

mod common;

use budgetgate::clock::Clock;
use budgetgate::prom::client::PromConfig;
use budgetgate::scoreboard::http::{Scoreboard, serve};
use budgetgate::webhook::Shared;
use common::{NOW, SAMPLES, plain};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

async fn start() -> SocketAddr {
    start_with(None).await
}

async fn start_with(prometheus: Option<PromConfig>) -> SocketAddr {
    let root = Path::new(SAMPLES);
    let (index, _) = budgetgate::load::load_state(root, &root.join("budgets.json")).unwrap();
    let shared = Shared::new(false, Clock::Fixed(NOW.parse().unwrap()));
    shared.publish(index);
    let scoreboard = Arc::new(Scoreboard::new(shared, prometheus).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        budgetgate::listener::Limits::default(),
        scoreboard,
        std::future::pending(),
    ));
    addr
}

fn status_json() -> Value {
    let out = common::bin()
        .args(["status", "--policy", SAMPLES, "--budgets"])
        .arg(Path::new(SAMPLES).join("budgets.json"))
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn platform_page_and_json_carry_the_numbers_status_prints() {
    let addr = start().await;
    let (code, page) = plain(addr, "GET", "/").await;
    assert_eq!(code, 200);
    let (code, api) = plain(addr, "GET", "/api/v1/platform").await;
    assert_eq!(code, 200);
    let api: Value = serde_json::from_str(&api).unwrap();
    let status = status_json();
    assert_eq!(api["evaluatedAt"], status["evaluatedAt"]);
    let teams = status["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 4);
    for team in teams {
        let (name, tier) = (
            team["team"].as_str().unwrap(),
            team["tier"].as_str().unwrap(),
        );
        let row = api["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["teams"].as_array().unwrap())
            .find(|r| r["team"] == name && r["tier"] == tier)
            .unwrap();
        assert_eq!(row["remaining"], team["remaining"], "{name}");
        assert_eq!(row["band"], team["band"], "{name}");
        assert_eq!(row["state"], team["state"], "{name}");
        let attrs = format!(
            "data-team=\"{name}\" data-tier=\"{tier}\" data-remaining=\"{}\" data-band=\"{}\" data-state=\"{}\" data-frozen=\"{}\"",
            team["remaining"].as_f64().unwrap(),
            team["band"].as_str().unwrap_or(""),
            team["state"].as_str().unwrap(),
            // Only discovery enforces: billing's namespace dry-runs, growth's staging warns.
            name == "discovery",
        );
        assert!(page.contains(&attrs), "{attrs} not in the page");
    }
}

#[tokio::test]
async fn team_and_adoption_pages_and_their_json() {
    let addr = start().await;
    let (code, page) = plain(addr, "GET", "/teams/payments").await;
    assert_eq!(code, 200);
    assert!(page.contains("<body data-page=\"team\" data-evaluated-at=\"2026-11-29T09:59:30Z\">"));
    assert!(page.contains("data-slo=\"shop/checkout-availability\""));
    let (_, api) = plain(addr, "GET", "/api/v1/teams/payments").await;
    let api: Value = serde_json::from_str(&api).unwrap();
    let slo = &api["tiers"][0]["slos"][1];
    assert_eq!(slo["name"], "checkout-availability");
    assert_eq!(
        slo["charts"]["burndown"]["missing"],
        "no Prometheus configured"
    );
    assert_eq!(api["tiers"][0]["decisions"][0]["verdict"], "allow");
    let (code, page) = plain(addr, "GET", "/adoption").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("<tr data-namespace=\"ledger\" data-team=\"billing\" data-mode=\"dryrun\""),
        "{page}"
    );
    let (_, api) = plain(addr, "GET", "/api/v1/adoption").await;
    let api: Value = serde_json::from_str(&api).unwrap();
    let modes: Vec<(&str, &str)> = api["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["namespace"].as_str().unwrap(),
                r["mode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(modes, [("ads-staging", "warn"), ("ledger", "dryrun")]);
}

#[tokio::test]
async fn unknown_paths_and_teams_are_404_and_writes_are_405() {
    let addr = start().await;
    let (code, page) = plain(addr, "GET", "/teams/nobody").await;
    assert_eq!(code, 404);
    assert!(page.contains("budgetgate knows no team &quot;nobody&quot;"));
    assert_eq!(plain(addr, "GET", "/api/v1/teams/nobody").await.0, 404);
    assert_eq!(plain(addr, "GET", "/nothing").await.0, 404);
    let (code, body) = plain(addr, "POST", "/").await;
    assert_eq!(
        (code, body.as_str()),
        (405, "the scoreboard is read-only: use GET\n")
    );
    assert_eq!(
        plain(addr, "GET", "/healthz").await,
        (200, "ok\n".to_owned())
    );
}

#[tokio::test]
async fn prometheus_down_leaves_the_page_up_and_says_why_the_charts_are_empty() {
    // A port nothing listens on: connection refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let addr = start_with(Some(PromConfig::new(format!("http://{closed}")))).await;
    let (code, page) = plain(addr, "GET", "/teams/payments").await;
    assert_eq!(code, 200);
    assert!(page.contains("<text class=\"nodata\""), "{page}");
    let (_, api) = plain(addr, "GET", "/api/v1/teams/payments").await;
    let api: Value = serde_json::from_str(&api).unwrap();
    for slo in api["tiers"][0]["slos"].as_array().unwrap() {
        for chart in ["burndown", "burn"] {
            let why = slo["charts"][chart]["missing"].as_str().unwrap();
            assert!(
                why.starts_with(&format!(
                    "Prometheus at http://{closed} did not answer the "
                )),
                "{chart}: {why}"
            );
            assert!(
                slo["charts"][chart]["points"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            );
        }
    }
    // Budgets are the published ones, not Prometheus's: they are still there.
    assert_eq!(
        api["tiers"][0]["row"]["remaining"].as_f64(),
        Some(0.8916666666666666)
    );
}
