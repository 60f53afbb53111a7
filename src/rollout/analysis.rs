//! The judgement of one canary check (DESIGN §7.4, §7.5): from the bad and total events of
//! the canary's and the stable pods' tracks, per SLO selecting the Deployment, and the
//! whole-service health floor, to pass, fail, hold for traffic or hold for metrics, with
//! the numbers behind it.
//!
//! Pure: the controller reads Prometheus and the budgets, calls [`judge`] and acts on the
//! verdict. Queries, consecutive-failure counting and the Release live elsewhere.

use super::Health;
use crate::api::CanarySpec;
use crate::budget::{Spend, budget_ratio};

/// Bad and total events of one track over the check window. Absent series = zeros.
pub use crate::budget::Counts;

/// z at or above this is 99% one-sided confidence.
pub const Z_CRITICAL: f64 = 2.326;
/// Canary errors needed before the relative rule can fail a check.
pub const MIN_RELATIVE_BAD: f64 = 5.0;

/// What one check read for one SLO selecting the Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct SloReading {
    /// `namespace/name`.
    pub slo: String,
    /// Percent, e.g. 99.9.
    pub objective: f64,
    pub tracks: Tracks,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Tracks {
    /// Canary (`track="canary"`) and stable (`track!="canary"`) counts over the check window.
    Split { canary: Counts, stable: Counts },
    /// Only whole-service burn can judge this SLO (a raw indicator without `{{track}}`, or
    /// no Prometheus to read tracks from); `why` says which, for the Release condition.
    WholeService { why: String },
    /// Its track query failed or answered nonsense: unknown, never bad.
    Unavailable { reason: String },
}

/// Per-SLO numbers of a check (for reasons, Events, logs).
#[derive(Clone, Debug, PartialEq)]
pub struct SloJudgement {
    pub slo: String,
    pub canary: Counts,
    pub stable: Counts,
    /// Canary error ratio over the SLO's budget ratio `1 − objective`.
    pub canary_burn: f64,
    /// [`z_score`] of canary vs stable; `None` when either track saw no events.
    pub z: Option<f64>,
    /// The canary saw at least `minCanaryEvents` (and some) events: the rules apply.
    pub judged: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// `reason` is the full human text: SLO, both tracks' ratios and counts, burn, z.
    Fail {
        reason: String,
    },
    /// No split SLO had `minCanaryEvents` canary events: hold, do not advance.
    InsufficientTraffic {
        reason: String,
    },
    /// Metrics missing or stale: hold.
    Unknown {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub verdict: Verdict,
    /// One per `Split` reading, judged or not, in readings order.
    pub slos: Vec<SloJudgement>,
    /// SLOs judged on whole-service burn only, with why
    /// (`shop/x: raw indicator without {{track}}`).
    pub whole_service: Vec<String>,
    /// The highest burn seen: judged canary burns and the floor's (for Release `maxBurn`).
    pub burn: Option<f64>,
}

/// One-sided two-proportion z statistic (pooled) of canary vs stable error ratios:
/// `(p_c − p_s) / sqrt(p(1−p)(1/n_c + 1/n_s))`, `p = (x_c+x_s)/(n_c+n_s)`. 0.0 when the
/// denominator is 0 (then `p_c == p_s`); `None` when either total is 0.
pub fn z_score(canary: Counts, stable: Counts) -> Option<f64> {
    if !(canary.total > 0.0 && stable.total > 0.0) {
        return None;
    }
    let pooled = (canary.bad + stable.bad) / (canary.total + stable.total);
    let se = (pooled * (1.0 - pooled) * (1.0 / canary.total + 1.0 / stable.total)).sqrt();
    let difference = canary.error_ratio() - stable.error_ratio();
    Some(if se > 0.0 { difference / se } else { 0.0 })
}

/// The judgement of one check (DESIGN §7.4, §7.5). `floor` is the whole-service health
/// ([`super::health`]: team and SLO burn over `analysisWindow`, newly exhausted budget).
///
/// In order: an unknown floor holds; a judged SLO whose canary burns above
/// `abortBurnRate`, or is significantly worse than stable, fails (the first in readings
/// order names the reason); an unhealthy floor fails; an unavailable track holds; split
/// SLOs with too few canary events hold for traffic; otherwise the check passes.
pub fn judge(readings: &[SloReading], floor: &Health, spec: &CanarySpec) -> Check {
    let mut slos = Vec::new();
    let mut whole_service = Vec::new();
    let mut failure = None;
    let mut unavailable = None;
    for reading in readings {
        match &reading.tracks {
            Tracks::Split { canary, stable } => {
                let judgement = judge_slo(reading, *canary, *stable, spec);
                if failure.is_none() {
                    failure = failure_reason(&judgement, spec);
                }
                slos.push(judgement);
            }
            Tracks::WholeService { why } => whole_service.push(format!("{}: {why}", reading.slo)),
            Tracks::Unavailable { reason } => {
                unavailable.get_or_insert_with(|| format!("SLO {}: {reason}", reading.slo));
            }
        }
    }
    let verdict = match (floor, failure) {
        (Health::Unknown { reason }, _) => Verdict::Unknown {
            reason: reason.clone(),
        },
        (_, Some(reason)) => Verdict::Fail { reason },
        (Health::Unhealthy { reason, .. }, None) => Verdict::Fail {
            reason: reason.clone(),
        },
        (Health::Healthy { .. }, None) => match unavailable {
            Some(reason) => Verdict::Unknown { reason },
            None => too_little_traffic(&slos, spec).map_or(Verdict::Pass, |reason| {
                Verdict::InsufficientTraffic { reason }
            }),
        },
    };
    let burn = slos
        .iter()
        .filter(|j| j.judged)
        .map(|j| j.canary_burn)
        .chain(floor.burn())
        .reduce(f64::max);
    Check {
        verdict,
        slos,
        whole_service,
        burn,
    }
}

fn judge_slo(
    reading: &SloReading,
    canary: Counts,
    stable: Counts,
    spec: &CanarySpec,
) -> SloJudgement {
    SloJudgement {
        slo: reading.slo.clone(),
        canary,
        stable,
        canary_burn: Spend::of(canary, budget_ratio(reading.objective)).burn_rate(),
        z: z_score(canary, stable),
        judged: canary.total > 0.0 && canary.total >= spec.min_canary_events as f64,
    }
}

/// Why a judged SLO fails this check, `None` when it does not (or is not judged).
fn failure_reason(j: &SloJudgement, spec: &CanarySpec) -> Option<String> {
    if !j.judged {
        return None;
    }
    let z = j.z.map_or_else(|| "n/a".to_owned(), |z| format!("{z:.2}"));
    let rule = if j.canary_burn > spec.abort_burn_rate {
        format!("above abortBurnRate {}x (z {z})", spec.abort_burn_rate)
    } else if j.canary.error_ratio() > spec.max_relative_error_rate * j.stable.error_ratio()
        && j.canary.bad >= MIN_RELATIVE_BAD
        && j.z.is_some_and(|z| z >= Z_CRITICAL)
    {
        format!(
            "more than maxRelativeErrorRate {}x stable with z {z} >= {Z_CRITICAL}",
            spec.max_relative_error_rate
        )
    } else {
        return None;
    };
    let (c, s) = (j.canary, j.stable);
    Some(format!(
        "SLO {}: canary {:.2}% errors ({:.0}/{:.0}) vs stable {:.2}% ({:.0}/{:.0}), \
         canary burn {:.1}x; {rule}",
        j.slo,
        c.error_ratio() * 100.0,
        c.bad,
        c.total,
        s.error_ratio() * 100.0,
        s.bad,
        s.total,
        j.canary_burn,
    ))
}

/// The hold reason when split SLOs exist and none saw enough canary events to be judged.
fn too_little_traffic(slos: &[SloJudgement], spec: &CanarySpec) -> Option<String> {
    if slos.iter().any(|j| j.judged) {
        return None;
    }
    let busiest = slos.iter().reduce(|a, b| {
        if b.canary.total > a.canary.total {
            b
        } else {
            a
        }
    })?;
    Some(format!(
        "canary has {:.0} events in the check window, fewer than minCanaryEvents {} (SLO {})",
        busiest.canary.total, spec.min_canary_events, busiest.slo
    ))
}

#[cfg(test)]
mod tests {
    //! Counts are (bad, total) over the check window; the tier's canary settings are the
    //! defaults (abortBurnRate 14.4, minCanaryEvents 100, maxRelativeErrorRate 2) unless a
    //! test says otherwise.

    use super::*;

    const SLO: &str = "shop/avail";

    fn counts((bad, total): (f64, f64)) -> Counts {
        Counts { bad, total }
    }

    fn split(slo: &str, objective: f64, canary: (f64, f64), stable: (f64, f64)) -> SloReading {
        SloReading {
            slo: slo.into(),
            objective,
            tracks: Tracks::Split {
                canary: counts(canary),
                stable: counts(stable),
            },
        }
    }

    fn whole_service(slo: &str, why: &str) -> SloReading {
        SloReading {
            slo: slo.into(),
            objective: 99.9,
            tracks: Tracks::WholeService { why: why.into() },
        }
    }

    fn unavailable(slo: &str, reason: &str) -> SloReading {
        SloReading {
            slo: slo.into(),
            objective: 99.9,
            tracks: Tracks::Unavailable {
                reason: reason.into(),
            },
        }
    }

    fn healthy(burn: f64) -> Health {
        Health::Healthy { burn }
    }

    fn unhealthy(reason: &str) -> Health {
        Health::Unhealthy {
            burn: Some(20.0),
            reason: reason.into(),
        }
    }

    fn check(readings: &[SloReading]) -> Check {
        judge(readings, &healthy(1.0), &CanarySpec::default())
    }

    fn verdict(readings: &[SloReading]) -> Verdict {
        check(readings).verdict
    }

    fn fail(reason: &str) -> Verdict {
        Verdict::Fail {
            reason: reason.into(),
        }
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-4,
            "{actual} is not {expected}"
        );
    }

    #[test]
    fn z_score_of_known_counts() {
        // 30/100 vs 10/100: p = 40/200 = 0.2, p(1−p) = 0.16, 1/100 + 1/100 = 0.02,
        // sqrt(0.0032) = 0.04·√2, z = (0.3 − 0.1) / (0.04·√2) = 5/√2.
        let z = |c, s| z_score(counts(c), counts(s)).unwrap();
        assert_close(z((30.0, 100.0), (10.0, 100.0)), 5.0 / 2f64.sqrt());
        // The other way round: the canary is better, z is negative.
        assert_close(z((10.0, 100.0), (30.0, 100.0)), -5.0 / 2f64.sqrt());
        // 10/100 vs 5/100: p = 0.075, p(1−p) = 0.069375, ·0.02 = 0.0013875,
        // sqrt = 0.0372492, z = 0.05 / 0.0372492 = 1.34231.
        assert_close(z((10.0, 100.0), (5.0, 100.0)), 1.34231);
        // 60/1200 vs 0/10800: p = 0.005, p(1−p) = 0.004975, 1/1200 + 1/10800 = 1/1080,
        // sqrt(0.004975/1080) = 0.00214627, z = 0.05 / 0.00214627 = 23.2962.
        assert_close(z((60.0, 1200.0), (0.0, 10800.0)), 23.2962);
    }

    #[test]
    fn z_score_is_zero_when_neither_or_every_event_is_bad() {
        let z = |c, s| z_score(counts(c), counts(s));
        assert_eq!(z((0.0, 100.0), (0.0, 50.0)), Some(0.0));
        assert_eq!(z((100.0, 100.0), (50.0, 50.0)), Some(0.0));
    }

    #[test]
    fn z_score_is_none_without_events_on_either_track() {
        let z = |c, s| z_score(counts(c), counts(s));
        assert_eq!(z((0.0, 0.0), (5.0, 100.0)), None);
        assert_eq!(z((5.0, 100.0), (0.0, 0.0)), None);
        assert_eq!(z((0.0, 0.0), (0.0, 0.0)), None);
    }

    #[test]
    fn canary_burn_exactly_at_abort_burn_rate_passes_and_just_above_fails() {
        // Objective 99.9: 144 bad of 10000 is 1.44%, burn 14.4; stable the same, so z ~ 0.
        let at = check(&[split(SLO, 99.9, (144.0, 10000.0), (144.0, 10000.0))]);
        assert_eq!(at.slos[0].canary_burn, 14.4);
        assert_eq!(at.verdict, Verdict::Pass);
        assert_eq!(
            verdict(&[split(SLO, 99.9, (145.0, 10000.0), (144.0, 10000.0))]),
            fail(
                "SLO shop/avail: canary 1.45% errors (145/10000) vs stable 1.44% (144/10000), \
                 canary burn 14.5x; above abortBurnRate 14.4x (z 0.06)"
            )
        );
    }

    #[test]
    fn canary_ratio_exactly_twice_stable_passes_and_just_above_fails() {
        // Objective 99: canary burn 2, far below abortBurnRate; z is large either way.
        let at = check(&[split(SLO, 99.0, (200.0, 10000.0), (1000.0, 100000.0))]);
        assert_close(at.slos[0].z.unwrap(), 9.1789);
        assert_eq!(at.verdict, Verdict::Pass);
        assert_eq!(
            verdict(&[split(SLO, 99.0, (201.0, 10000.0), (1000.0, 100000.0))]),
            fail(
                "SLO shop/avail: canary 2.01% errors (201/10000) vs stable 1.00% (1000/100000), \
                 canary burn 2.0x; more than maxRelativeErrorRate 2x stable with z 9.27 >= 2.326"
            )
        );
    }

    #[test]
    fn relative_rule_needs_five_canary_errors() {
        let four = check(&[split(SLO, 99.0, (4.0, 100.0), (0.0, 100000.0))]);
        assert_close(four.slos[0].z.unwrap(), 63.2468);
        assert_eq!(four.verdict, Verdict::Pass);
        assert_eq!(
            verdict(&[split(SLO, 99.0, (5.0, 100.0), (0.0, 100000.0))]),
            fail(
                "SLO shop/avail: canary 5.00% errors (5/100) vs stable 0.00% (0/100000), \
                 canary burn 5.0x; more than maxRelativeErrorRate 2x stable with z 70.71 >= 2.326"
            )
        );
    }

    #[test]
    fn relative_rule_needs_z_of_at_least_2_326() {
        // Canary 1% against stable 0.485% / 0.484%: more than twice either way.
        let below = check(&[split(SLO, 99.0, (10.0, 1000.0), (485.0, 100000.0))]);
        assert_close(below.slos[0].z.unwrap(), 2.32045);
        assert_eq!(below.verdict, Verdict::Pass);
        let above = check(&[split(SLO, 99.0, (10.0, 1000.0), (484.0, 100000.0))]);
        assert_close(above.slos[0].z.unwrap(), 2.32729);
        assert_eq!(
            above.verdict,
            fail(
                "SLO shop/avail: canary 1.00% errors (10/1000) vs stable 0.48% (484/100000), \
                 canary burn 1.0x; more than maxRelativeErrorRate 2x stable with z 2.33 >= 2.326"
            )
        );
    }

    #[test]
    fn without_stable_traffic_only_the_burn_rule_applies() {
        // 5% against nothing: no z, so the relative rule cannot fire; burn 5 passes.
        let some = check(&[split(SLO, 99.0, (5.0, 100.0), (0.0, 0.0))]);
        assert_eq!(some.slos[0].z, None);
        assert!(some.slos[0].judged);
        assert_eq!(some.verdict, Verdict::Pass);
        assert_eq!(
            verdict(&[split(SLO, 99.0, (50.0, 100.0), (0.0, 0.0))]),
            fail(
                "SLO shop/avail: canary 50.00% errors (50/100) vs stable 0.00% (0/0), \
                 canary burn 50.0x; above abortBurnRate 14.4x (z n/a)"
            )
        );
    }

    #[test]
    fn a_canary_without_events_is_never_judged() {
        let spec = CanarySpec {
            min_canary_events: 0,
            ..CanarySpec::default()
        };
        let c = judge(
            &[split(SLO, 99.9, (0.0, 0.0), (10.0, 1000.0))],
            &healthy(1.0),
            &spec,
        );
        assert!(!c.slos[0].judged);
        assert_eq!(c.slos[0].z, None);
        assert_eq!(
            c.verdict,
            Verdict::InsufficientTraffic {
                reason: "canary has 0 events in the check window, fewer than minCanaryEvents 0 \
                         (SLO shop/avail)"
                    .into()
            }
        );
    }

    #[test]
    fn ninety_nine_canary_events_hold_and_one_hundred_are_judged() {
        let held = check(&[split(SLO, 99.9, (50.0, 99.0), (0.0, 10000.0))]);
        assert!(!held.slos[0].judged);
        assert_eq!(
            held.verdict,
            Verdict::InsufficientTraffic {
                reason: "canary has 99 events in the check window, fewer than minCanaryEvents \
                         100 (SLO shop/avail)"
                    .into()
            }
        );
        assert_eq!(
            held.burn,
            Some(1.0),
            "an unjudged canary burn is not the check's"
        );
        let judged = check(&[split(SLO, 99.9, (50.0, 100.0), (0.0, 10000.0))]);
        assert!(judged.slos[0].judged);
        assert_eq!(
            judged.verdict,
            fail(
                "SLO shop/avail: canary 50.00% errors (50/100) vs stable 0.00% (0/10000), \
                 canary burn 500.0x; above abortBurnRate 14.4x (z 70.89)"
            )
        );
        assert_eq!(judged.burn, Some(500.0));
    }

    #[test]
    fn insufficient_traffic_names_the_busiest_canary() {
        let readings = [
            split("shop/avail", 99.9, (0.0, 12.0), (0.0, 1000.0)),
            split("shop/latency", 99.0, (1.0, 40.0), (3.0, 1000.0)),
            whole_service("shop/raw", "raw indicator without {{track}}"),
        ];
        assert_eq!(
            verdict(&readings),
            Verdict::InsufficientTraffic {
                reason: "canary has 40 events in the check window, fewer than minCanaryEvents \
                         100 (SLO shop/latency)"
                    .into()
            }
        );
    }

    #[test]
    fn one_judged_slo_is_enough_to_pass() {
        let c = check(&[
            split("shop/avail", 99.9, (0.0, 12.0), (0.0, 1000.0)),
            split("shop/latency", 99.0, (1.0, 400.0), (30.0, 10000.0)),
        ]);
        assert_eq!(
            c.slos.iter().map(|j| j.judged).collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(c.verdict, Verdict::Pass);
    }

    #[test]
    fn unknown_floor_holds_even_when_the_canary_fails() {
        let floor = Health::Unknown {
            reason: "no burn rate over 5m for team shop".into(),
        };
        let c = judge(
            &[split(SLO, 99.9, (60.0, 1200.0), (0.0, 10800.0))],
            &floor,
            &CanarySpec::default(),
        );
        assert_eq!(
            c.verdict,
            Verdict::Unknown {
                reason: "no burn rate over 5m for team shop".into()
            }
        );
        assert_eq!(c.slos.len(), 1, "the numbers are still reported");
    }

    #[test]
    fn a_failing_canary_names_the_failure_before_an_unhealthy_floor() {
        let c = judge(
            &[split(SLO, 99.9, (60.0, 1200.0), (0.0, 10800.0))],
            &unhealthy("team shop burns 20.0x over 5m, above abortBurnRate 14.4x"),
            &CanarySpec::default(),
        );
        assert_eq!(
            c.verdict,
            fail(
                "SLO shop/avail: canary 5.00% errors (60/1200) vs stable 0.00% (0/10800), \
                 canary burn 50.0x; above abortBurnRate 14.4x (z 23.30)"
            )
        );
    }

    #[test]
    fn unhealthy_floor_fails_with_too_little_canary_traffic_or_unavailable_tracks() {
        let floor = unhealthy("the error budget of team shop is exhausted (0% remaining)");
        for readings in [
            vec![split(SLO, 99.9, (3.0, 40.0), (0.0, 1000.0))],
            vec![unavailable(SLO, "Prometheus answered 503")],
            vec![],
        ] {
            let c = judge(&readings, &floor, &CanarySpec::default());
            assert_eq!(
                c.verdict,
                fail("the error budget of team shop is exhausted (0% remaining)"),
                "{readings:?}"
            );
            assert_eq!(c.burn, Some(20.0));
        }
    }

    #[test]
    fn an_unavailable_track_holds_as_unknown_naming_the_slo() {
        let readings = [
            split("shop/avail", 99.9, (0.0, 1200.0), (0.0, 10800.0)),
            unavailable("shop/latency", "Prometheus answered 503"),
        ];
        assert_eq!(
            verdict(&readings),
            Verdict::Unknown {
                reason: "SLO shop/latency: Prometheus answered 503".into()
            }
        );
    }

    #[test]
    fn a_failing_canary_fails_beside_an_unavailable_track() {
        let readings = [
            unavailable("shop/latency", "Prometheus answered 503"),
            split("shop/avail", 99.9, (60.0, 1200.0), (0.0, 10800.0)),
        ];
        assert!(matches!(verdict(&readings), Verdict::Fail { .. }));
    }

    #[test]
    fn whole_service_readings_pass_on_the_floor_and_are_listed() {
        let c = judge(
            &[
                whole_service("shop/raw", "raw indicator without {{track}}"),
                whole_service("shop/avail", "no Prometheus to read tracks from"),
            ],
            &healthy(3.5),
            &CanarySpec::default(),
        );
        assert_eq!(
            c,
            Check {
                verdict: Verdict::Pass,
                slos: vec![],
                whole_service: vec![
                    "shop/raw: raw indicator without {{track}}".into(),
                    "shop/avail: no Prometheus to read tracks from".into(),
                ],
                burn: Some(3.5),
            }
        );
    }

    #[test]
    fn a_diluted_canary_fails_on_its_own_burn_while_the_whole_service_burns_5x() {
        // Objective 99.9, canary at 10% of the traffic with 5% errors, stable clean.
        let canary = counts((60.0, 1200.0));
        let stable = counts((0.0, 10800.0));
        let service = Counts {
            bad: canary.bad + stable.bad,
            total: canary.total + stable.total,
        };
        let service_burn = Spend::of(service, budget_ratio(99.9)).burn_rate();
        assert_close(service_burn, 5.0);
        let c = judge(
            &[split(SLO, 99.9, (60.0, 1200.0), (0.0, 10800.0))],
            &healthy(service_burn),
            &CanarySpec::default(),
        );
        assert_eq!(
            c.verdict,
            fail(
                "SLO shop/avail: canary 5.00% errors (60/1200) vs stable 0.00% (0/10800), \
                 canary burn 50.0x; above abortBurnRate 14.4x (z 23.30)"
            )
        );
        assert_close(c.burn.unwrap(), 50.0);
    }

    #[test]
    fn a_canary_as_noisy_as_a_noisy_stable_passes() {
        // 0.2% errors on both tracks, objective 99.9: burn 2, z 0.
        let c = check(&[split(SLO, 99.9, (20.0, 10000.0), (200.0, 100000.0))]);
        assert_eq!(c.slos[0].z, Some(0.0));
        assert_eq!(c.verdict, Verdict::Pass);
        assert_close(c.burn.unwrap(), 2.0);
    }

    #[test]
    fn the_first_failing_slo_in_readings_order_names_the_failure() {
        let readings = [
            split("shop/avail", 99.9, (1.0, 1000.0), (10.0, 10000.0)),
            split("shop/latency", 99.0, (30.0, 1000.0), (0.0, 9000.0)),
            split("shop/errors", 99.9, (60.0, 1200.0), (0.0, 10800.0)),
        ];
        let c = check(&readings);
        assert_eq!(
            c.verdict,
            fail(
                "SLO shop/latency: canary 3.00% errors (30/1000) vs stable 0.00% (0/9000), \
                 canary burn 3.0x; more than maxRelativeErrorRate 2x stable with z 16.46 >= 2.326"
            )
        );
        assert_eq!(c.slos.len(), 3);
        assert_close(c.burn.unwrap(), 50.0);
    }

    #[test]
    fn a_canary_failing_both_rules_is_reported_above_abort_burn_rate() {
        // 5% against 0% stable at objective 99.9: burn 50 and z 23.30.
        assert_eq!(
            verdict(&[split(SLO, 99.9, (60.0, 1200.0), (0.0, 10800.0))]),
            fail(
                "SLO shop/avail: canary 5.00% errors (60/1200) vs stable 0.00% (0/10800), \
                 canary burn 50.0x; above abortBurnRate 14.4x (z 23.30)"
            )
        );
    }

    #[test]
    fn tier_settings_move_the_thresholds() {
        let readings = [split(SLO, 99.0, (30.0, 1000.0), (100.0, 10000.0))];
        // 3% vs 1%: z 5.58, burn 3.
        assert!(matches!(verdict(&readings), Verdict::Fail { .. }));
        let lenient = CanarySpec {
            max_relative_error_rate: 4.0,
            ..CanarySpec::default()
        };
        assert_eq!(
            judge(&readings, &healthy(1.0), &lenient).verdict,
            Verdict::Pass
        );
        let strict = CanarySpec {
            abort_burn_rate: 2.5,
            max_relative_error_rate: 3.0,
            min_canary_events: 1000,
            ..CanarySpec::default()
        };
        assert!(matches!(
            judge(&readings, &healthy(1.0), &strict).verdict,
            Verdict::Fail { reason } if reason.ends_with("above abortBurnRate 2.5x (z 5.58)")
        ));
        let patient = CanarySpec {
            min_canary_events: 1001,
            ..CanarySpec::default()
        };
        assert!(matches!(
            judge(&readings, &healthy(1.0), &patient).verdict,
            Verdict::InsufficientTraffic { .. }
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// (bad, total) with bad ≤ total, fractional like Prometheus `increase()`.
        fn track() -> impl Strategy<Value = (f64, f64)> {
            (0.0..1e7f64, 0.0..=1.0f64).prop_map(|(total, share)| (total * share, total))
        }

        fn tier() -> impl Strategy<Value = CanarySpec> {
            (0.1..50.0f64, 0u64..2000, 1.0..10.0f64).prop_map(|(abort, min, k)| CanarySpec {
                abort_burn_rate: abort,
                min_canary_events: min,
                max_relative_error_rate: k,
                ..CanarySpec::default()
            })
        }

        fn floor() -> impl Strategy<Value = Health> {
            prop_oneof![
                (0.0..30.0f64).prop_map(|burn| Health::Healthy { burn }),
                (0.0..30.0f64).prop_map(|burn| Health::Unhealthy {
                    burn: Some(burn),
                    reason: "team shop burns".into()
                }),
                Just(Health::Unknown {
                    reason: "stale".into()
                }),
            ]
        }

        proptest! {
            #[test]
            fn more_canary_errors_never_turn_a_failure_into_a_pass(
                canary_total in 0.0..1e6f64,
                shares in (0.0..=1.0f64, 0.0..=1.0f64),
                stable in track(),
                objective in 90.0..99.999f64,
                spec in tier(),
                floor in floor(),
            ) {
                let (low, high) = if shares.0 <= shares.1 { shares } else { (shares.1, shares.0) };
                let at = |share: f64| {
                    let reading = split(SLO, objective, (canary_total * share, canary_total), stable);
                    judge(&[reading], &floor, &spec).verdict
                };
                if matches!(at(low), Verdict::Fail { .. }) {
                    prop_assert!(matches!(at(high), Verdict::Fail { .. }), "{:?}", at(high));
                }
            }

            #[test]
            fn judge_never_panics_or_reports_nan(
                tracks in prop::collection::vec((track(), track(), 0.0..100.0f64), 0..4),
                spec in tier(),
                floor in floor(),
            ) {
                let readings: Vec<_> = tracks
                    .into_iter()
                    .enumerate()
                    .map(|(i, (canary, stable, objective))| {
                        split(&format!("shop/slo-{i}"), objective, canary, stable)
                    })
                    .collect();
                let c = judge(&readings, &floor, &spec);
                prop_assert!(c.burn.is_none_or(f64::is_finite), "{:?}", c.burn);
                for j in &c.slos {
                    prop_assert!(j.canary_burn.is_finite(), "{j:?}");
                    prop_assert!(j.z.is_none_or(f64::is_finite), "{j:?}");
                }
                if let Verdict::Fail { reason }
                | Verdict::InsufficientTraffic { reason }
                | Verdict::Unknown { reason } = &c.verdict
                {
                    prop_assert!(!reason.contains("NaN") && !reason.contains("inf"), "{reason}");
                }
            }
        }
    }
}
