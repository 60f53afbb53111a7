//! Invariants of the budget arithmetic (DESIGN §4), over random counts.

use budgetgate::api::Duration;
use budgetgate::budget::{Counts, Signals, aggregate, budget_ratio};
use proptest::prelude::*;

fn window() -> Duration {
    Duration::parse("1h").unwrap()
}

/// An SLO: objective in (90, 99.999), bad ≤ total.
fn slo() -> impl Strategy<Value = Signals> {
    (
        90_000u32..99_999,
        0u64..10_000_000,
        0.0f64..=1.0,
        0u64..1_000_000,
        0.0f64..=1.0,
    )
        .prop_map(|(objective_milli, total, bad_share, w_total, w_share)| {
            let objective = objective_milli as f64 / 1000.0;
            let counts = |total: u64, share: f64| Counts {
                bad: (total as f64 * share).floor(),
                total: total as f64,
            };
            Signals::from_counts(
                budget_ratio(objective),
                Some(counts(total, bad_share)),
                [(window(), Some(counts(w_total, w_share)))],
            )
        })
}

proptest! {
    #[test]
    fn aggregate_of_one_slo_equals_the_slo(s in slo()) {
        let team = aggregate([&s]);
        prop_assert_eq!(team.period.unwrap().remaining(), s.period.unwrap().remaining());
        prop_assert_eq!(team.burn_rate(&window()), s.burn_rate(&window()));
    }

    #[test]
    fn aggregate_lies_between_its_members_extremes(members in prop::collection::vec(slo(), 1..20)) {
        let team = aggregate(members.iter());
        let remaining: Vec<f64> = members.iter().map(|m| m.period.unwrap().remaining()).collect();
        let (lo, hi) = (remaining.iter().cloned().fold(f64::INFINITY, f64::min), remaining.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        let r = team.period.unwrap().remaining();
        // Members without traffic carry no weight, so only members with traffic bound it.
        let weighted: Vec<f64> = members.iter().filter(|m| m.period.unwrap().allowed > 0.0).map(|m| m.period.unwrap().remaining()).collect();
        if weighted.is_empty() {
            prop_assert_eq!(r, 1.0);
        } else {
            let (wlo, whi) = (weighted.iter().cloned().fold(f64::INFINITY, f64::min), weighted.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
            prop_assert!(r >= wlo - 1e-9 && r <= whi + 1e-9, "{} not in [{}, {}]", r, wlo, whi);
            prop_assert!(r >= lo - 1e-9 && r <= hi + 1e-9);
        }
    }

    #[test]
    fn burn_of_a_window_is_linear_in_bad_events(objective in 90.0f64..99.999, total in 1u64..10_000_000, bad in 0u64..1_000_000, k in 1u64..10) {
        let burn = |bad: u64| {
            Signals::from_counts(budget_ratio(objective), None, [(window(), Some(Counts { bad: bad as f64, total: total as f64 }))])
                .burn_rate(&window())
                .unwrap()
        };
        let (one, many) = (burn(bad), burn(bad * k));
        prop_assert!((many - one * k as f64).abs() <= 1e-9 * many.abs().max(1.0), "{} vs {} × {}", many, one, k);
    }

    #[test]
    fn more_bad_events_never_raise_remaining(objective in 90.0f64..99.999, total in 0u64..10_000_000, bad in 0u64..1_000_000, extra in 0u64..1_000_000) {
        let remaining = |bad: u64| {
            Signals::from_counts(budget_ratio(objective), Some(Counts { bad: bad as f64, total: total as f64 }), [])
                .period
                .unwrap()
                .remaining()
        };
        prop_assert!(remaining(bad + extra) <= remaining(bad));
    }
}
