//! The words budgetgate says to people: denial texts and warnings (≤ 120 characters).

use crate::api::Duration;
use crate::budget::Assessment;
use crate::index::ObjectKey;
use crate::policy::Tier;

/// kubectl prints each warning on one line; the API guidance is to stay under 120.
pub const MAX_WARNING: usize = 120;

/// Cuts a warning to 120 characters at a character boundary, marking the cut.
pub fn short(mut text: String) -> String {
    if text.chars().count() > MAX_WARNING {
        text = text.chars().take(MAX_WARNING - 1).collect::<String>() + "…";
    }
    text
}

/// A budget fraction as a percentage with one decimal: `-12.4%`.
pub fn pct(fraction: f64) -> String {
    let value = (fraction * 1000.0).round() / 10.0;
    // Avoid "-0.0%".
    let value = if value == 0.0 { 0.0 } else { value };
    format!("{value:.1}%")
}

/// A burn rate as a factor with two decimals, for printer columns: `6.48x`.
pub fn factor(burn: f64) -> String {
    format!("{burn:.2}x")
}

fn burn_parts(a: &Assessment, also: &[&Duration]) -> Vec<String> {
    let mut windows: Vec<(u64, String)> = [("5m", 300), ("1h", 3_600), ("6h", 21_600)]
        .into_iter()
        .map(|(label, secs)| (secs, label.to_owned()))
        .chain(also.iter().map(|d| (d.seconds(), d.to_string())))
        .collect();
    windows.sort_by_key(|(secs, _)| *secs);
    windows.dedup_by_key(|(secs, _)| *secs);
    windows
        .iter()
        .filter_map(|(secs, label)| a.burn_rate(*secs).map(|b| format!("{label} {b:.1}x")))
        .collect()
}

/// ` (burn 5m 2.1x, 1h 1.5x, 6h 0.9x)` for the windows known, or nothing.
pub fn burns(a: &Assessment) -> String {
    let parts = burn_parts(a, &[]);
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (burn {})", parts.join(", "))
    }
}

/// `, burn 5m 20.0x, 1h 20.0x` for the windows known, or nothing; with the windows of the
/// firing alert pairs of `tier` too, shortest first, so a pair on other windows than the
/// standard 5m, 1h and 6h shows the burn that fired it.
pub fn burn_list(a: &Assessment, tier: &Tier) -> String {
    let firing: Vec<&Duration> = tier
        .alert_windows
        .iter()
        .filter(|w| a.alerts.contains(&w.name))
        .flat_map(|w| [&w.short, &w.long])
        .collect();
    let parts = burn_parts(a, &firing);
    if parts.is_empty() {
        String::new()
    } else {
        format!(", burn {}", parts.join(", "))
    }
}

/// The firing alert pairs by name; a budget known to burn at page level whose alert names
/// were not published still says what fires.
pub fn firing(a: &Assessment) -> String {
    if a.alerts.is_empty() {
        "a page alert".to_owned()
    } else {
        a.alerts.join(", ")
    }
}

/// `what` is `rollout` or `creation`.
pub fn denial(what: &str, key: &ObjectKey, team: &str, tier: &str, why: &str) -> String {
    format!(
        "budgetgate denied the {what} of deployment {key} (team {team}, tier {tier}): {why}. \
         Still allowed: rolling back to a previous revision, and scaling. \
         To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace {}.",
        key.namespace
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_warnings_are_cut_to_120_characters() {
        let w = short("é".repeat(200));
        assert_eq!(w.chars().count(), 120);
        assert!(w.ends_with('…'));
        assert_eq!(short("fine".into()), "fine");
    }

    #[test]
    fn firing_names_the_alerts_or_says_a_page_alert() {
        let mut a = Assessment {
            remaining: Some(0.5),
            burn_rates: Default::default(),
            alerts: vec!["page-fast".into(), "page-slow".into()],
            paging: true,
            band: None,
            state: crate::api::BudgetState::Burning,
            exhausts_at: None,
            lacking: 0,
        };
        assert_eq!(firing(&a), "page-fast, page-slow");
        a.alerts.clear();
        assert_eq!(firing(&a), "a page alert");
    }

    #[test]
    fn percentages_have_one_decimal_and_no_negative_zero() {
        assert_eq!(pct(0.4), "40.0%");
        assert_eq!(pct(-0.1234), "-12.3%");
        assert_eq!(pct(-0.00001), "0.0%");
    }
}
