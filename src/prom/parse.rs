//! Query answers back into per-SLO counts, and counts into the signals the budget arithmetic
//! judges. Pure.
//!
//! A count Prometheus did not return is missing (`None`: the SLO or window is Unknown),
//! never zero: an outage of the metrics is not an absence of errors. Zero traffic is a
//! count of 0 and is known.

use super::query::{Batch, Count, Plan, SLO_LABEL, Source};
use super::rules;
use crate::budget::{Counts, Signals, budget_ratio};
use crate::index::{ObjectKey, SloSignals};
use prometheus_http_query::response::Data;
use std::collections::BTreeMap;

/// Values read per (range in seconds, count), per SLO.
pub type Readings = BTreeMap<(u64, Count), BTreeMap<ObjectKey, f64>>;

/// An answer that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("a {0} instead of an instant vector")]
    NotAVector(&'static str),
    #[error("two series for SLO {0}")]
    Duplicate(ObjectKey),
}

/// One batch's answer, split by SLO. Series of SLOs the batch did not ask for are ignored
/// (recorded series of SLOs no longer in the policy); values that are not numbers
/// (`NaN`, `±Inf`, from a raw query dividing by zero) are left out, so they read as missing.
/// Tiny negative counts (a latency `+Inf − le` difference extrapolated apart) read as 0.
pub fn split(
    batch: &Batch,
    data: &Data,
) -> Result<(BTreeMap<ObjectKey, f64>, Vec<String>), ParseError> {
    let vector = match data {
        Data::Vector(v) => v,
        Data::Matrix(_) => return Err(ParseError::NotAVector("range vector")),
        Data::Scalar(_) => return Err(ParseError::NotAVector("scalar")),
    };
    let mut values = BTreeMap::new();
    let mut notes = Vec::new();
    for series in vector {
        let labels = series.metric();
        let key = match batch.source {
            Source::Direct => labels
                .get(SLO_LABEL)
                .and_then(|v| v.split_once('/'))
                .map(|(ns, name)| ObjectKey::new(ns, name)),
            Source::Recorded => labels
                .get(rules::NAMESPACE_LABEL)
                .zip(labels.get(rules::SLO_LABEL))
                .map(|(ns, name)| ObjectKey::new(ns, name)),
        };
        let Some(key) = key.filter(|k| batch.members.iter().any(|(m, _)| m == k)) else {
            continue;
        };
        let value = series.sample().value();
        if !value.is_finite() {
            notes.push(format!(
                "{key}: {} over {} is {value}, read as missing",
                batch.count.as_str(),
                batch.range()
            ));
            continue;
        }
        if values.insert(key.clone(), value.max(0.0)).is_some() {
            return Err(ParseError::Duplicate(key));
        }
    }
    Ok((values, notes))
}

/// Signals for every SLO of the plan from what was read. A window is known only when both
/// its counts are; an SLO whose indicator could not be queried has no data at all.
pub fn signals(plan: &Plan, readings: &Readings) -> (Vec<SloSignals>, Vec<String>) {
    let mut notes = Vec::new();
    let read = |key: &ObjectKey, seconds: u64, count: Count| {
        readings
            .get(&(seconds, count))
            .and_then(|values| values.get(key))
            .copied()
    };
    let slos = plan
        .slos
        .iter()
        .map(|slo| {
            let mut missing = Vec::new();
            let mut counts = |seconds: u64, label: String| {
                let bad = read(&slo.key, seconds, Count::Bad);
                let total = read(&slo.key, seconds, Count::Total);
                match (bad, total) {
                    (Some(bad), Some(total)) => Some(Counts { bad, total }),
                    (None, Some(_)) => {
                        missing.push(format!("{label} (bad events)"));
                        None
                    }
                    (Some(_), None) => {
                        missing.push(format!("{label} (total events)"));
                        None
                    }
                    (None, None) => {
                        missing.push(label);
                        None
                    }
                }
            };
            let period = counts(slo.period.seconds(), format!("period {}", slo.period));
            let windows: Vec<_> = slo
                .windows
                .iter()
                .map(|w| (w.clone(), counts(w.seconds(), w.to_string())))
                .collect();
            match &slo.events {
                Err(why) => notes.push(format!("{}: not queried: {why}", slo.key)),
                Ok(_) if !missing.is_empty() => {
                    notes.push(format!("{}: no data for {}", slo.key, missing.join(", ")))
                }
                Ok(_) => {}
            }
            SloSignals {
                key: slo.key.clone(),
                objective: slo.objective,
                window: slo.window.clone(),
                signals: Signals::from_counts(budget_ratio(slo.objective), period, windows),
            }
        })
        .collect();
    (slos, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Duration;
    use crate::prom::query::{Events, SloQuery};
    use prometheus_http_query::response::PromqlResult;

    fn data(json: &str) -> Data {
        serde_json::from_str::<PromqlResult>(json)
            .unwrap()
            .into_inner()
            .0
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("shop", name)
    }

    fn batch(source: Source, names: &[&str]) -> Batch {
        Batch {
            range_seconds: 300,
            count: Count::Bad,
            source,
            members: names.iter().map(|n| (key(n), String::new())).collect(),
            promql: String::new(),
        }
    }

    #[test]
    fn a_union_answer_is_split_by_the_slo_label() {
        let answer = data(
            r#"{"resultType":"vector","result":[
                {"metric":{"budgetgate_slo":"shop/checkout"},"value":[1764410400,"12"]},
                {"metric":{"budgetgate_slo":"shop/cart"},"value":[1764410400,"0"]},
                {"metric":{"budgetgate_slo":"other/stranger"},"value":[1764410400,"5"]}
            ]}"#,
        );
        let (values, notes) = split(
            &batch(Source::Direct, &["checkout", "cart", "ghost"]),
            &answer,
        )
        .unwrap();
        assert_eq!(
            values,
            BTreeMap::from([(key("cart"), 0.0), (key("checkout"), 12.0)])
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn recorded_series_are_keyed_by_namespace_and_slo() {
        let answer = data(
            r#"{"resultType":"vector","result":[
                {"metric":{"namespace":"shop","slo":"checkout"},"value":[1764410400,"7.5"]}
            ]}"#,
        );
        let (values, _) = split(&batch(Source::Recorded, &["checkout"]), &answer).unwrap();
        assert_eq!(values, BTreeMap::from([(key("checkout"), 7.5)]));
    }

    #[test]
    fn not_a_number_is_missing_and_tiny_negatives_are_zero() {
        let answer = data(
            r#"{"resultType":"vector","result":[
                {"metric":{"budgetgate_slo":"shop/a"},"value":[1764410400,"NaN"]},
                {"metric":{"budgetgate_slo":"shop/b"},"value":[1764410400,"+Inf"]},
                {"metric":{"budgetgate_slo":"shop/c"},"value":[1764410400,"-0.0003"]}
            ]}"#,
        );
        let (values, notes) = split(&batch(Source::Direct, &["a", "b", "c"]), &answer).unwrap();
        assert_eq!(values, BTreeMap::from([(key("c"), 0.0)]));
        assert_eq!(
            notes,
            [
                "shop/a: bad over 5m is NaN, read as missing",
                "shop/b: bad over 5m is inf, read as missing"
            ]
        );
    }

    #[test]
    fn scalars_and_duplicates_are_refused() {
        let scalar = data(r#"{"resultType":"scalar","result":[1764410400,"1"]}"#);
        assert_eq!(
            split(&batch(Source::Direct, &["a"]), &scalar).unwrap_err(),
            ParseError::NotAVector("scalar")
        );
        let twice = data(
            r#"{"resultType":"vector","result":[
                {"metric":{"namespace":"shop","slo":"a","cluster":"x"},"value":[1,"1"]},
                {"metric":{"namespace":"shop","slo":"a","cluster":"y"},"value":[1,"2"]}
            ]}"#,
        );
        assert_eq!(
            split(&batch(Source::Recorded, &["a"]), &twice).unwrap_err(),
            ParseError::Duplicate(key("a"))
        );
    }

    fn slo(name: &str) -> SloQuery {
        SloQuery {
            key: key(name),
            objective: 99.9,
            window: None,
            period: Duration::parse("30d").unwrap(),
            calendar: false,
            windows: vec![
                Duration::parse("5m").unwrap(),
                Duration::parse("60m").unwrap(),
            ],
            events: Ok(Events::Raw {
                errors: "e".into(),
                total: "t".into(),
            }),
        }
    }

    #[test]
    fn a_window_is_known_only_when_both_counts_are() {
        let plan = Plan {
            at: "2026-11-29T10:00:00Z".parse().unwrap(),
            slos: vec![slo("checkout")],
        };
        let k = key("checkout");
        let readings = Readings::from([
            (
                (2_592_000, Count::Bad),
                BTreeMap::from([(k.clone(), 1200.0)]),
            ),
            (
                (2_592_000, Count::Total),
                BTreeMap::from([(k.clone(), 2e6)]),
            ),
            ((300, Count::Total), BTreeMap::from([(k.clone(), 0.0)])),
            ((3_600, Count::Bad), BTreeMap::from([(k.clone(), 0.0)])),
            ((3_600, Count::Total), BTreeMap::from([(k.clone(), 0.0)])),
        ]);
        let (slos, notes) = signals(&plan, &readings);
        let s = &slos[0].signals;
        assert_eq!(s.period.unwrap().remaining(), 1.0 - 1200.0 / 2000.0);
        assert_eq!(s.windows[&Duration::parse("5m").unwrap()], None);
        // Zero traffic is known: burn 0, not Unknown.
        assert_eq!(s.burn_rate(&Duration::parse("60m").unwrap()), Some(0.0));
        assert_eq!(notes, ["shop/checkout: no data for 5m (bad events)"]);
    }

    #[test]
    fn an_unqueryable_indicator_leaves_the_slo_unknown() {
        let mut q = slo("broken");
        q.events = Err("ratio.errors: nonsense".into());
        let plan = Plan {
            at: "2026-11-29T10:00:00Z".parse().unwrap(),
            slos: vec![q],
        };
        let (slos, notes) = signals(&plan, &Readings::new());
        assert_eq!(slos[0].signals.period, None);
        assert_eq!(notes, ["shop/broken: not queried: ratio.errors: nonsense"]);
    }
}
