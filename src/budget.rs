//! Budget arithmetic (DESIGN §4): event-weighted error budgets, burn rates, alert pairs,
//! bands, states and forecasts. Pure functions of counts, the tier and `now`.
//!
//! Everything is computed in *budget events*: `allowed = (1 − objective) · total` is how
//! many bad events the objective permits. A single SLO and an aggregate of many are then the
//! same arithmetic (`burn = Σ bad / Σ allowed`, `remaining = 1 − burn over the period`),
//! which is what makes a team's budget the sum of its services' budgets. Counts are summed
//! before dividing; ratios are never averaged.

use crate::api::{BudgetState, CalendarPeriod, Duration, Severity, Timestamp, Window};
use crate::policy::{BandLookup, Tier};
use jiff::{Span, ToSpan, tz::TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Event counts over one window (increase of the counters), as Prometheus reports them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub bad: f64,
    pub total: f64,
}

impl Counts {
    /// `bad / total`, 0 without traffic.
    pub fn error_ratio(self) -> f64 {
        if self.total > 0.0 {
            self.bad / self.total
        } else {
            0.0
        }
    }
}

/// The budget ratio `b = 1 − objective` of an objective given in percent.
///
/// Rounded to nine decimals of a percent so that `99.9` gives exactly the f64 nearest to
/// 0.001 (plain `100 − 99.9` is 0.0999999999999943): spending exactly the budget must
/// leave exactly 0.
pub fn budget_ratio(objective_percent: f64) -> f64 {
    ((100.0 - objective_percent) * 1e9).round() / 1e11
}

/// Bad events against the bad events the objective allows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spend {
    pub bad: f64,
    pub allowed: f64,
}

impl Spend {
    pub fn of(counts: Counts, budget_ratio: f64) -> Spend {
        Spend {
            bad: counts.bad,
            allowed: budget_ratio * counts.total,
        }
    }

    /// `e / b`: 1 spends the budget exactly over the period. 0 without traffic.
    pub fn burn_rate(self) -> f64 {
        if self.allowed > 0.0 {
            self.bad / self.allowed
        } else {
            0.0
        }
    }

    /// Fraction of the budget left when this is the whole period's spend (may be negative).
    pub fn remaining(self) -> f64 {
        1.0 - self.burn_rate()
    }

    fn add(self, other: Spend) -> Spend {
        Spend {
            bad: self.bad + other.bad,
            allowed: self.allowed + other.allowed,
        }
    }
}

/// What is known of one SLO (or an aggregate) at one instant. `None` = missing data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    pub period: Option<Spend>,
    pub windows: BTreeMap<Duration, Option<Spend>>,
    /// Of an aggregate: how many members had no period data and are not in its sums.
    pub lacking: usize,
}

impl Signals {
    pub fn from_counts(
        budget_ratio: f64,
        period: Option<Counts>,
        windows: impl IntoIterator<Item = (Duration, Option<Counts>)>,
    ) -> Signals {
        Signals {
            period: period.map(|c| Spend::of(c, budget_ratio)),
            windows: windows
                .into_iter()
                .map(|(w, c)| (w, c.map(|c| Spend::of(c, budget_ratio))))
                .collect(),
            lacking: 0,
        }
    }

    pub fn burn_rate(&self, window: &Duration) -> Option<f64> {
        self.windows
            .get(window)
            .copied()
            .flatten()
            .map(Spend::burn_rate)
    }
}

/// Event-weighted aggregate: counts are summed over the members that have them. A member
/// without period data is left out and counted in `lacking` (DESIGN §6 step 4: an SLO
/// without data is Unknown on its own and does not make its team Unknown); a window is
/// summed over the members that report it. The aggregate is missing only where no member
/// has data.
pub fn aggregate<'a>(members: impl IntoIterator<Item = &'a Signals>) -> Signals {
    let all: Vec<&Signals> = members.into_iter().collect();
    let members: Vec<&Signals> = all.iter().copied().filter(|m| m.period.is_some()).collect();
    let lacking = all.len() - members.len();
    let sum = |spends: Vec<Spend>| {
        (!spends.is_empty()).then(|| {
            spends
                .into_iter()
                .fold(Spend::default(), |sum, s| sum.add(s))
        })
    };
    let period = sum(members.iter().filter_map(|m| m.period).collect());
    let mut keys: Vec<&Duration> = all.iter().flat_map(|m| m.windows.keys()).collect();
    keys.sort();
    keys.dedup();
    let windows = keys
        .into_iter()
        .map(|key| {
            let spends = members
                .iter()
                .filter_map(|m| m.windows.get(key).copied().flatten())
                .collect();
            (key.clone(), sum(spends))
        })
        .collect();
    Signals {
        period,
        windows,
        lacking,
    }
}

/// Burn-rate threshold of an alert pair: `budgetPercent/100 · period / long`.
pub fn alert_factor(budget_percent: f64, period_seconds: f64, long_seconds: f64) -> f64 {
    budget_percent / 100.0 * period_seconds / long_seconds
}

/// The SLO period in force at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: Timestamp,
    /// Full length of the period (a calendar month's days, not the elapsed part).
    pub length_seconds: i64,
}

impl Period {
    /// Rolling windows end at `now`; calendar periods start at the first instant of the
    /// current UTC month or quarter.
    pub fn at(window: &Window, now: Timestamp) -> Period {
        match window {
            Window::Rolling(d) => Period {
                start: now.saturating_sub(d.signed()).unwrap_or(now),
                length_seconds: d.seconds() as i64,
            },
            Window::Calendar(calendar) => {
                let date = now.to_zoned(TimeZone::UTC).date();
                let (first_month, months): (i8, i32) = match calendar {
                    CalendarPeriod::Month => (date.month(), 1),
                    CalendarPeriod::Quarter => ((date.month() - 1) / 3 * 3 + 1, 3),
                };
                let start = jiff::civil::date(date.year(), first_month, 1);
                let end = start.checked_add(months.months()).unwrap_or(start);
                let ts = |d: jiff::civil::Date| {
                    d.to_zoned(TimeZone::UTC)
                        .map(|z| z.timestamp())
                        .unwrap_or(now)
                };
                let (start, end) = (ts(start), ts(end));
                Period {
                    start,
                    length_seconds: end.as_second() - start.as_second(),
                }
            }
        }
    }

    /// The elapsed part of the period as a query window (whole seconds, at least 1s).
    pub fn elapsed(&self, now: Timestamp) -> Duration {
        Duration::from_seconds((now.as_second() - self.start.as_second()).max(1) as u64)
    }
}

/// Everything budgetgate says about one SLO or aggregate at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    pub remaining: Option<f64>,
    /// Every window the tier uses (and any other the data had); `None` = no data.
    pub burn_rates: BTreeMap<Duration, Option<f64>>,
    /// Names of the alert pairs firing.
    pub alerts: Vec<String>,
    /// Firing pairs of severity `page`.
    pub paging: bool,
    pub band: Option<String>,
    pub state: BudgetState,
    pub exhausts_at: Option<Timestamp>,
    /// Of an aggregate: members without data, not counted in `remaining` and burn.
    pub lacking: usize,
}

impl Assessment {
    pub fn burn_rate(&self, window_seconds: u64) -> Option<f64> {
        self.burn_rates
            .iter()
            .find(|(w, _)| w.seconds() == window_seconds)
            .and_then(|(_, b)| *b)
    }

    pub fn is_exhausted(&self) -> bool {
        self.state == BudgetState::Exhausted
    }
}

/// Judges signals against a tier. State precedence: Unknown (no period data), Exhausted,
/// Burning (a page pair fires), Unknown (a page pair cannot be evaluated: missing data
/// never hides a known exhaustion or page burn), then the band's position: first band
/// Healthy, last band Critical, bands between Caution.
pub fn assess(signals: &Signals, tier: &Tier, period: &Period, now: Timestamp) -> Assessment {
    let mut burn_rates: BTreeMap<Duration, Option<f64>> = signals
        .windows
        .iter()
        .map(|(w, s)| (w.clone(), s.map(Spend::burn_rate)))
        .collect();
    for w in tier.burn_windows() {
        burn_rates.entry(w).or_insert(None);
    }
    let period_seconds = period.length_seconds as f64;
    let mut alerts = Vec::new();
    let mut paging = false;
    let mut page_unknown = false;
    for pair in &tier.alert_windows {
        let factor = alert_factor(pair.budget_percent, period_seconds, pair.long.as_secs_f64());
        match (
            signals.burn_rate(&pair.long),
            signals.burn_rate(&pair.short),
        ) {
            (Some(long), Some(short)) => {
                if long > factor && short > factor {
                    alerts.push(pair.name.clone());
                    paging |= pair.severity == Severity::Page;
                }
            }
            _ => page_unknown |= pair.severity == Severity::Page,
        }
    }
    let remaining = signals.period.map(Spend::remaining);
    let lookup = remaining.map(|r| tier.band_for(r));
    let band = match lookup {
        Some(BandLookup::Band(_, b)) => Some(b.name.clone()),
        _ => None,
    };
    let state = match lookup {
        None => BudgetState::Unknown,
        Some(BandLookup::Exhausted) => BudgetState::Exhausted,
        Some(_) if paging => BudgetState::Burning,
        Some(_) if page_unknown => BudgetState::Unknown,
        Some(BandLookup::Band(0, _)) => BudgetState::Healthy,
        Some(BandLookup::Band(i, _)) if i + 1 == tier.bands.len() => BudgetState::Critical,
        Some(BandLookup::Band(..)) => BudgetState::Caution,
    };
    let burn_1d = burn_rates
        .iter()
        .find(|(w, _)| w.seconds() == 86_400)
        .and_then(|(_, b)| *b);
    let exhausts_at = match (remaining, burn_1d) {
        (Some(r), Some(burn)) => forecast(r, burn, period_seconds, now),
        _ => None,
    };
    Assessment {
        remaining,
        burn_rates,
        alerts,
        paging,
        band,
        state,
        exhausts_at,
        lacking: signals.lacking,
    }
}

/// `now + remaining · P / burn_1d`; none when nothing burns or nothing is left.
pub fn forecast(
    remaining: f64,
    burn: f64,
    period_seconds: f64,
    now: Timestamp,
) -> Option<Timestamp> {
    if !(burn > 0.0 && remaining > 0.0) {
        return None;
    }
    let seconds = remaining * period_seconds / burn;
    // Past ~100 years a forecast says nothing; also keeps the addition in range.
    if !(seconds.is_finite() && seconds < 100.0 * 365.0 * 86_400.0) {
        return None;
    }
    now.checked_add(Span::new().seconds(seconds.round() as i64))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TierSpec;
    use crate::policy::Policy;

    fn d(s: &str) -> Duration {
        Duration::parse(s).unwrap()
    }

    fn production() -> Tier {
        let spec: crate::api::ReliabilityPolicySpec = serde_yaml_ng::from_str(
            r#"
tiers:
  production:
    bands:
      - {name: healthy,  minRemaining: 0.5,  plan: {steps: [20, 50, 100], pause: 2m}}
      - {name: caution,  minRemaining: 0.25, plan: {steps: [10, 25, 50, 100], pause: 5m}}
      - {name: critical, minRemaining: 0,    plan: {steps: [5, 10, 25, 50, 100], pause: 10m}}
"#,
        )
        .unwrap();
        let _: Option<TierSpec> = None;
        Policy::from_spec(&spec).unwrap().tiers["production"].clone()
    }

    fn now() -> Timestamp {
        "2026-11-29T10:00:00Z".parse().unwrap()
    }

    fn signals(period: Counts, windows: &[(&str, f64, f64)]) -> Signals {
        Signals::from_counts(
            budget_ratio(99.9),
            Some(period),
            windows.iter().map(|(w, bad, total)| {
                (
                    d(w),
                    Some(Counts {
                        bad: *bad,
                        total: *total,
                    }),
                )
            }),
        )
    }

    fn quiet_windows() -> Vec<(&'static str, f64, f64)> {
        ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
            .iter()
            .map(|w| (*w, 0.0, 1000.0))
            .collect()
    }

    #[test]
    fn alert_factors_follow_the_period() {
        let f = |pct, period: &str, long: &str| {
            alert_factor(pct, d(period).as_secs_f64(), d(long).as_secs_f64())
        };
        for (got, want) in [
            (f(2.0, "30d", "1h"), 14.4),
            (f(5.0, "30d", "6h"), 6.0),
            (f(10.0, "30d", "1d"), 3.0),
            (f(10.0, "30d", "3d"), 1.0),
            (f(2.0, "28d", "1h"), 13.44),
            (f(5.0, "28d", "6h"), 5.6),
            (f(10.0, "28d", "1d"), 2.8),
            (f(10.0, "28d", "3d"), 28.0 / 30.0),
        ] {
            assert!((got - want).abs() < 1e-9, "{got} != {want}");
        }
    }

    #[test]
    fn remaining_is_one_minus_error_ratio_over_budget() {
        // 1,200 bad of 2,000,000 at 99.9%: e = 0.0006, burn 0.6, remaining 0.4.
        let s = signals(
            Counts {
                bad: 1200.0,
                total: 2_000_000.0,
            },
            &quiet_windows(),
        );
        let r = s.period.unwrap().remaining();
        assert!((r - 0.4).abs() < 1e-9, "{r}");
        let a = assess(
            &s,
            &production(),
            &Period::at(&Window::Rolling(d("30d")), now()),
            now(),
        );
        assert_eq!(a.band.as_deref(), Some("caution"));
        assert_eq!(a.state, BudgetState::Caution);
        assert!(a.alerts.is_empty());
    }

    #[test]
    fn zero_traffic_consumes_nothing() {
        let s = signals(
            Counts {
                bad: 0.0,
                total: 0.0,
            },
            &quiet_windows(),
        );
        assert_eq!(s.period.unwrap().remaining(), 1.0);
        assert_eq!(Counts::default().error_ratio(), 0.0);
        assert_eq!(Spend::default().burn_rate(), 0.0);
    }

    #[test]
    fn missing_period_is_unknown_not_healthy() {
        let mut s = signals(Counts::default(), &quiet_windows());
        s.period = None;
        let a = assess(
            &s,
            &production(),
            &Period::at(&Window::Rolling(d("30d")), now()),
            now(),
        );
        assert_eq!(a.state, BudgetState::Unknown);
        assert_eq!(a.remaining, None);
        assert_eq!(a.band, None);
    }

    #[test]
    fn missing_page_window_is_unknown() {
        let mut w = quiet_windows();
        w.retain(|(k, ..)| *k != "5m");
        let s = signals(
            Counts {
                bad: 0.0,
                total: 100.0,
            },
            &w,
        );
        let a = assess(
            &s,
            &production(),
            &Period::at(&Window::Rolling(d("30d")), now()),
            now(),
        );
        assert_eq!(a.state, BudgetState::Unknown);
        assert_eq!(a.burn_rates[&d("5m")], None);
    }

    #[test]
    fn page_pair_fires_only_when_both_windows_exceed_the_factor() {
        let tier = production();
        let period = Period::at(&Window::Rolling(d("30d")), now());
        let mut w = quiet_windows();
        // 1h burn 20 (> 14.4); 5m burn 10 (< 14.4): not firing.
        w[2] = ("1h", 20.0, 1000.0);
        w[0] = ("5m", 10.0, 1000.0);
        let healthy = Counts {
            bad: 0.0,
            total: 1e6,
        };
        let a = assess(&signals(healthy, &w), &tier, &period, now());
        assert!(a.alerts.is_empty());
        assert_eq!(a.state, BudgetState::Healthy);
        w[0] = ("5m", 15.0, 1000.0);
        let a = assess(&signals(healthy, &w), &tier, &period, now());
        assert_eq!(a.alerts, ["page-fast"]);
        assert!(a.paging);
        assert_eq!(a.state, BudgetState::Burning);
    }

    #[test]
    fn exhausted_outranks_burning() {
        let mut w = quiet_windows();
        w[0] = ("5m", 20.0, 1000.0);
        w[2] = ("1h", 20.0, 1000.0);
        let s = signals(
            Counts {
                bad: 1000.0,
                total: 1e6,
            },
            &w,
        );
        let a = assess(
            &s,
            &production(),
            &Period::at(&Window::Rolling(d("30d")), now()),
            now(),
        );
        assert_eq!(a.remaining, Some(0.0));
        assert_eq!(a.state, BudgetState::Exhausted);
        assert_eq!(a.alerts, ["page-fast"]);
    }

    #[test]
    fn forecast_divides_remaining_budget_by_daily_burn() {
        // remaining 0.5 at burn 2 over 30d lasts 7.5 days.
        let at = forecast(0.5, 2.0, 30.0 * 86_400.0, now()).unwrap();
        assert_eq!(at, "2026-12-06T22:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(forecast(0.5, 0.0, 30.0 * 86_400.0, now()), None);
        assert_eq!(forecast(-0.1, 3.0, 30.0 * 86_400.0, now()), None);
    }

    #[test]
    fn calendar_month_runs_from_the_first_of_the_month_utc() {
        let p = Period::at(&Window::Calendar(CalendarPeriod::Month), now());
        assert_eq!(
            p.start,
            "2026-11-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(p.length_seconds, 30 * 86_400);
        assert_eq!(p.elapsed(now()).seconds(), 28 * 86_400 + 10 * 3_600);
        let feb: Timestamp = "2028-02-10T00:00:00Z".parse().unwrap();
        let p = Period::at(&Window::Calendar(CalendarPeriod::Month), feb);
        assert_eq!(p.length_seconds, 29 * 86_400);
    }

    #[test]
    fn calendar_quarter_runs_from_the_quarter_start_utc() {
        let p = Period::at(&Window::Calendar(CalendarPeriod::Quarter), now());
        assert_eq!(
            p.start,
            "2026-10-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(p.length_seconds, 92 * 86_400);
        let q1: Timestamp = "2027-03-31T23:59:59Z".parse().unwrap();
        let p = Period::at(&Window::Calendar(CalendarPeriod::Quarter), q1);
        assert_eq!(
            p.start,
            "2027-01-01T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(p.length_seconds, 90 * 86_400);
    }

    #[test]
    fn team_aggregate_sums_events_not_ratios() {
        // A busy service with 0.5 remaining and a quiet one with none left: the team has
        // 1 − (1000 + 100) / (0.001·2e6 + 0.001·1e5) = 1 − 1100/2100.
        let busy = signals(
            Counts {
                bad: 1000.0,
                total: 2e6,
            },
            &[],
        );
        let quiet = signals(
            Counts {
                bad: 100.0,
                total: 1e5,
            },
            &[],
        );
        let team = aggregate([&busy, &quiet]);
        let r = team.period.unwrap().remaining();
        assert!((r - (1.0 - 1100.0 / 2100.0)).abs() < 1e-9, "{r}");
    }

    #[test]
    fn aggregate_sums_the_members_with_data_and_counts_the_rest() {
        let known = signals(
            Counts {
                bad: 1.0,
                total: 10.0,
            },
            &[("1h", 1.0, 10.0), ("5m", 2.0, 10.0)],
        );
        let other = signals(
            Counts {
                bad: 3.0,
                total: 30.0,
            },
            &[("1h", 3.0, 30.0)],
        );
        let mut lacking = signals(Counts::default(), &[("1h", 100.0, 100.0)]);
        lacking.period = None;
        let team = aggregate([&known, &other, &lacking]);
        assert_eq!(team.lacking, 1);
        let period = team.period.unwrap();
        assert!((period.bad - 4.0).abs() < 1e-12, "{period:?}");
        assert!((period.allowed - 0.04).abs() < 1e-12, "{period:?}");
        // The member without period data is out of the windows too; a window only one
        // member reports is that member's.
        let hour = team.windows[&d("1h")].unwrap();
        assert!((hour.bad - 4.0).abs() < 1e-12, "{hour:?}");
        let five = team.windows[&d("5m")].unwrap();
        assert!((five.bad - 2.0).abs() < 1e-12, "{five:?}");
        // Nothing known: the aggregate is missing.
        let none = aggregate([&lacking]);
        assert_eq!((none.period, none.lacking), (None, 1));
        assert_eq!(none.windows[&d("1h")], None);
    }

    #[test]
    fn a_known_exhaustion_or_page_burn_wins_over_a_missing_page_window() {
        let period = Period::at(&Window::Rolling(d("30d")), now());
        let mut w = quiet_windows();
        w.retain(|(k, ..)| *k != "30m");
        // 2,200 of 2,000,000: −10% remaining, the page-slow pair unknown.
        let exhausted = signals(
            Counts {
                bad: 2200.0,
                total: 2_000_000.0,
            },
            &w,
        );
        let a = assess(&exhausted, &production(), &period, now());
        assert_eq!(a.state, BudgetState::Exhausted);
        assert_eq!(a.burn_rates[&d("30m")], None);
        // 20x over 5m and 1h: page-fast fires although page-slow cannot be evaluated.
        w.retain(|(k, ..)| *k != "5m" && *k != "1h");
        w.extend([("5m", 20.0, 1000.0), ("1h", 20.0, 1000.0)]);
        let burning = signals(
            Counts {
                bad: 400.0,
                total: 2_000_000.0,
            },
            &w,
        );
        let a = assess(&burning, &production(), &period, now());
        assert_eq!(a.state, BudgetState::Burning);
        assert_eq!(a.alerts, ["page-fast"]);
        assert!(a.paging);
    }
}
