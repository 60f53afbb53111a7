//! Canary health on the samples (`manifests/samples/`, budgets evaluated at
//! 2026-11-29T09:59:30Z): the burn over the production tier's analysis window (5m) of the
//! SLOs selecting the Deployment and of the team, against abortBurnRate 14.4.

use budgetgate::api::{Duration, Timestamp};
use budgetgate::index::{Index, ObjectKey};
use budgetgate::rollout::analysis::{Counts, SloReading, Tracks};
use budgetgate::rollout::{Health, health, health_in_cluster};
use std::collections::BTreeMap;
use std::path::Path;

fn samples() -> Index {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/samples");
    budgetgate::load::load_state(&root, &root.join("budgets.json"))
        .expect("the samples load")
        .0
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), app.to_owned())])
}

/// Sets the 5m burn of SLO shop/checkout-availability (`None` = no data for the window).
fn with_checkout_burn(index: &mut Index, burn: Option<f64>) {
    let key = ObjectKey::new("shop", "checkout-availability");
    let slo = index.budgets.slos.get_mut(&key).unwrap();
    slo.burn_rates.insert(Duration::parse("5m").unwrap(), burn);
}

fn check(
    index: &Index,
    team: &str,
    ns: &str,
    app: &str,
    exhausted_at_start: bool,
    now: &str,
) -> Health {
    let tier = index.policy.as_ref().unwrap().tier("production").unwrap();
    health(
        index,
        tier,
        team,
        ns,
        &labels(app),
        exhausted_at_start,
        at(now),
    )
}

#[test]
fn the_highest_burn_of_the_selecting_slos_and_the_team_is_reported() {
    let index = samples();
    // checkout-availability: 2 bad of 5,000 over 5m at 99.9% = 0.4x; the payments team:
    // (2 + 0) / (0.001·5,000 + 0.01·2,500) = 0.067x. cart-latency does not select app=checkout.
    match check(
        &index,
        "payments",
        "shop",
        "checkout",
        false,
        "2026-11-29T10:00:00Z",
    ) {
        Health::Healthy { burn } => assert!((burn - 0.4).abs() < 1e-9, "burn {burn}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn burn_above_the_abort_rate_is_unhealthy_and_names_who_burns() {
    let mut index = samples();
    with_checkout_burn(&mut index, Some(20.0));
    assert_eq!(
        check(
            &index,
            "payments",
            "shop",
            "checkout",
            false,
            "2026-11-29T10:00:00Z"
        ),
        Health::Unhealthy {
            burn: Some(20.0),
            reason: "SLO shop/checkout-availability burns 20.0x over 5m, above abortBurnRate 14.4x"
                .into()
        }
    );
    // Exactly at the abort rate is still healthy.
    with_checkout_burn(&mut index, Some(14.4));
    assert_eq!(
        check(
            &index,
            "payments",
            "shop",
            "checkout",
            false,
            "2026-11-29T10:00:00Z"
        ),
        Health::Healthy { burn: 14.4 }
    );
}

#[test]
fn a_budget_exhausted_during_the_rollout_is_unhealthy_unless_it_began_exhausted() {
    let index = samples();
    // search/query-availability has -50% left, burning 8 of 5,000 over 5m = 1.6x.
    assert_eq!(
        check(
            &index,
            "discovery",
            "search",
            "query",
            false,
            "2026-11-29T10:00:00Z"
        ),
        Health::Unhealthy {
            burn: Some(1.6),
            reason:
                "the error budget of SLO search/query-availability is exhausted (-50.0% remaining)"
                    .into()
        }
    );
    match check(
        &index,
        "discovery",
        "search",
        "query",
        true,
        "2026-11-29T10:00:00Z",
    ) {
        Health::Healthy { burn } => assert!((burn - 1.6).abs() < 1e-9, "burn {burn}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_missing_or_unknown_numbers_are_unknown_never_bad() {
    let index = samples();
    assert_eq!(
        check(
            &index,
            "payments",
            "shop",
            "checkout",
            false,
            "2026-11-29T10:10:00Z"
        ),
        Health::Unknown {
            reason: "budgets were last evaluated 630s ago, older than staleAfter 5m".into()
        }
    );
    assert_eq!(
        check(
            &index,
            "nobody",
            "shop",
            "checkout",
            false,
            "2026-11-29T10:00:00Z"
        ),
        Health::Unknown {
            reason: "no budget for team nobody in tier production".into()
        }
    );
    let mut missing = samples();
    with_checkout_burn(&mut missing, None);
    assert_eq!(
        check(
            &missing,
            "payments",
            "shop",
            "checkout",
            false,
            "2026-11-29T10:00:00Z"
        ),
        Health::Unknown {
            reason: "no burn rate over 5m for SLO shop/checkout-availability".into()
        }
    );
    let mut none = samples();
    none.budgets.evaluated_at = None;
    assert_eq!(
        check(
            &none,
            "payments",
            "shop",
            "checkout",
            false,
            "2026-11-29T10:00:00Z"
        ),
        Health::Unknown {
            reason: "no budget evaluation yet".into()
        }
    );
}

/// A check's reading of one SLO in this cluster: canary and stable (bad, total).
fn split(slo: &str, canary: (f64, f64), stable: (f64, f64)) -> SloReading {
    SloReading {
        slo: slo.into(),
        objective: 99.9,
        tracks: Tracks::Split {
            canary: Counts {
                bad: canary.0,
                total: canary.1,
            },
            stable: Counts {
                bad: stable.0,
                total: stable.1,
            },
        },
    }
}

fn check_in_cluster(index: &Index, readings: &[SloReading]) -> Health {
    let tier = index.policy.as_ref().unwrap().tier("production").unwrap();
    health_in_cluster(
        index,
        tier,
        "payments",
        "shop",
        &labels("checkout"),
        false,
        at("2026-11-29T10:00:00Z"),
        "a",
        readings,
    )
}

#[test]
fn named_in_a_global_view_the_floor_is_this_clusters_whole_service() {
    // The global view burns 20x (another cluster's errors); this cluster's whole service,
    // 3 bad of 10,000 (canary 1 of 1,000 and stable 2 of 9,000) at 99.9%, burns 0.3x.
    let mut index = samples();
    with_checkout_burn(&mut index, Some(20.0));
    let quiet = [split(
        "shop/checkout-availability",
        (1.0, 1000.0),
        (2.0, 9000.0),
    )];
    match check_in_cluster(&index, &quiet) {
        Health::Healthy { burn } => assert!((burn - 0.3).abs() < 1e-9, "burn {burn}"),
        other => panic!("{other:?}"),
    }
    // This cluster burning 30x fails the floor, named as such.
    let burning = [split(
        "shop/checkout-availability",
        (10.0, 1000.0),
        (290.0, 9000.0),
    )];
    assert_eq!(
        check_in_cluster(&index, &burning),
        Health::Unhealthy {
            burn: Some(30.0),
            reason: "SLO shop/checkout-availability burns 30.0x in cluster a over the check window, above abortBurnRate 14.4x".into()
        }
    );
    // Without split counts (a raw SLO without {{track}}) the global burn is the floor.
    let whole = [SloReading {
        slo: "shop/checkout-availability".into(),
        objective: 99.9,
        tracks: Tracks::WholeService { why: "raw".into() },
    }];
    assert!(matches!(
        check_in_cluster(&index, &whole),
        Health::Unhealthy { burn: Some(b), .. } if (b - 20.0).abs() < 1e-9
    ));
    // A budget exhausted during the rollout stays a global judgement.
    let mut index = samples();
    let team = index
        .budgets
        .teams
        .get_mut(&("payments".to_owned(), "production".to_owned()))
        .unwrap();
    team.remaining = Some(-0.1);
    assert!(matches!(
        check_in_cluster(&index, &quiet),
        Health::Unhealthy { reason, .. } if reason.contains("exhausted")
    ));
}
