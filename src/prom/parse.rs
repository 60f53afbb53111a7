//! Query answers back into per-SLO counts, and counts into the signals the budget arithmetic
//! judges. Pure.
//!
//! A count Prometheus did not return is missing (`None`: the SLO or window is Unknown),
//! never zero: an outage of the metrics is not an absence of errors. Zero traffic is a
//! count of 0 and is known.
//!
//! A canary check's answer is different: the query ran, so a track without series has had
//! no traffic yet and reads 0 ([`split_tracks`]).

use super::query::{
    Batch, Count, Plan, SERIES_LABEL, SLO_LABEL, Source, TRACK_SERIES, Track, TrackCounts,
    TrackQuery, series_name,
};
use super::rules;
use crate::budget::{Counts, Signals, budget_ratio};
use crate::index::{ObjectKey, SloSignals};
use prometheus_http_query::response::{Data, InstantVector};
use std::collections::{BTreeMap, HashMap};

/// How far below zero a count may come out and still read as 0: a latency `+Inf − le`
/// difference summed over several series can land a rounding error below zero.
const ROUNDING: f64 = 0.5;

/// Values read per (range in seconds, count), per SLO.
pub type Readings = BTreeMap<(u64, Count), BTreeMap<ObjectKey, f64>>;

/// An answer that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("a {0} instead of an instant vector")]
    NotAVector(&'static str),
}

/// One batch's answer, split by SLO. Series of SLOs the batch did not ask for are ignored
/// (recorded series of SLOs no longer in the policy); values that are not numbers
/// (`NaN`, `±Inf`, from a raw query dividing by zero) are left out, so they read as missing.
/// Tiny negative counts (a latency `+Inf − le` difference extrapolated apart) read as 0.
/// An SLO whose query answers several series (a raw query that keeps a label) reads as
/// missing, with a note: it goes Unknown alone, the others are read.
pub fn split(
    batch: &Batch,
    data: &Data,
) -> Result<(BTreeMap<ObjectKey, f64>, Vec<String>), ParseError> {
    let vector = instant_vector(data)?;
    let mut values = BTreeMap::new();
    let mut notes = Vec::new();
    let mut several = std::collections::BTreeSet::new();
    for series in vector {
        let labels = series.metric();
        let key = match batch.source {
            Source::Direct => tagged_slo(labels),
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
            several.insert(key);
        }
    }
    for key in several {
        values.remove(&key);
        notes.push(format!(
            "{key}: {} over {} answered several series, read as missing (the query must sum to one)",
            batch.count.as_str(),
            batch.range()
        ));
    }
    Ok((values, notes))
}

/// The samples of an instant-vector answer.
fn instant_vector(data: &Data) -> Result<&[InstantVector], ParseError> {
    match data {
        Data::Vector(v) => Ok(v),
        Data::Matrix(_) => Err(ParseError::NotAVector("range vector")),
        Data::Scalar(_) => Err(ParseError::NotAVector("scalar")),
    }
}

/// The SLO a sample of a union is tagged with ([`SLO_LABEL`] = `namespace/name`).
fn tagged_slo(labels: &HashMap<String, String>) -> Option<ObjectKey> {
    labels
        .get(SLO_LABEL)
        .and_then(|v| v.split_once('/'))
        .map(|(ns, name)| ObjectKey::new(ns, name))
}

/// A canary check's answer, split by SLO and by [`SERIES_LABEL`]. Every member of the query
/// gets an entry: a track without series reads 0. A sample that is not a count (`NaN`,
/// `±Inf`, below zero by more than a rounding error) or a second sample of the same count
/// makes that SLO's entry an `Err` saying so; the other SLOs are unaffected. Samples of SLOs
/// the query did not ask for are ignored.
/// Per SLO, per cluster (the value of the policy's `clusterLabel`): bad and total events.
pub type ClusterSplit = BTreeMap<ObjectKey, BTreeMap<String, (f64, f64)>>;

/// A cluster split's answer ([`super::query::cluster_split_query`]): per SLO, per value of
/// `label` (empty for series without it), bad and total events. Samples that are not
/// counts are left out.
pub fn split_clusters(data: &Data, label: &str) -> Result<ClusterSplit, ParseError> {
    let mut out = ClusterSplit::new();
    for series in instant_vector(data)? {
        let labels = series.metric();
        let Some(key) = tagged_slo(labels) else {
            continue;
        };
        let value = series.sample().value();
        if !value.is_finite() || value < -ROUNDING {
            continue;
        }
        let cluster = labels.get(label).cloned().unwrap_or_default();
        let entry = out.entry(key).or_default().entry(cluster).or_default();
        match labels.get(SERIES_LABEL).map(String::as_str) {
            Some("bad") => entry.0 += value.max(0.0),
            Some("total") => entry.1 += value.max(0.0),
            _ => {}
        }
    }
    Ok(out)
}

pub fn split_tracks(
    query: &TrackQuery,
    data: &Data,
) -> Result<BTreeMap<ObjectKey, Result<TrackCounts, String>>, ParseError> {
    type Read = Result<BTreeMap<(Count, Track), f64>, String>;
    let mut read: BTreeMap<ObjectKey, Read> = query
        .members
        .iter()
        .map(|(key, _)| (key.clone(), Ok(BTreeMap::new())))
        .collect();
    for series in instant_vector(data)? {
        let labels = series.metric();
        // Samples of SLOs not asked for are ignored; an unusable SLO stays so.
        let Some(entry) = tagged_slo(labels).and_then(|key| read.get_mut(&key)) else {
            continue;
        };
        let Ok(values) = &mut *entry else {
            continue;
        };
        let name = labels.get(SERIES_LABEL).map_or("", String::as_str);
        let value = series.sample().value();
        let problem = match TRACK_SERIES
            .into_iter()
            .find(|&(count, track)| series_name(count, track) == name)
        {
            None => Some(format!(
                "a sample with {SERIES_LABEL}={name:?}, not asked for"
            )),
            Some(_) if !value.is_finite() || value < -ROUNDING => {
                Some(format!("{name} is {value}, not a count"))
            }
            Some(count) if values.insert(count, value.max(0.0)).is_some() => {
                Some(format!("two series for {name}"))
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            *entry = Err(problem);
        }
    }
    Ok(read
        .into_iter()
        .map(|(key, values)| {
            let counts = values.map(|values| {
                TrackCounts::from_fn(|count, track| {
                    values.get(&(count, track)).copied().unwrap_or(0.0)
                })
            });
            (key, counts)
        })
        .collect())
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
    use crate::prom::query::{Events, SloQuery, TrackCounts, TrackQuery};
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
    fn scalars_are_refused_and_an_slo_with_several_series_alone_reads_as_missing() {
        let scalar = data(r#"{"resultType":"scalar","result":[1764410400,"1"]}"#);
        assert_eq!(
            split(&batch(Source::Direct, &["a"]), &scalar).unwrap_err(),
            ParseError::NotAVector("scalar")
        );
        let twice = data(
            r#"{"resultType":"vector","result":[
                {"metric":{"namespace":"shop","slo":"a","cluster":"x"},"value":[1,"1"]},
                {"metric":{"namespace":"shop","slo":"b"},"value":[1,"3"]},
                {"metric":{"namespace":"shop","slo":"a","cluster":"y"},"value":[1,"2"]}
            ]}"#,
        );
        let (values, notes) = split(&batch(Source::Recorded, &["a", "b"]), &twice).unwrap();
        assert_eq!(values, BTreeMap::from([(key("b"), 3.0)]));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("shop/a: ")
                && notes[0].contains("answered several series, read as missing"),
            "{notes:?}"
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

    fn track_query(names: &[&str]) -> TrackQuery {
        TrackQuery {
            promql: String::new(),
            members: names.iter().map(|n| (key(n), String::new())).collect(),
            whole_service: Vec::new(),
            invalid: Vec::new(),
        }
    }

    fn sample(slo: &str, series: &str, value: &str) -> String {
        format!(
            r#"{{"metric":{{"budgetgate_slo":"shop/{slo}","budgetgate_series":"{series}"}},"value":[1795950000,"{value}"]}}"#
        )
    }

    fn vector(samples: &[String]) -> Data {
        data(&format!(
            r#"{{"resultType":"vector","result":[{}]}}"#,
            samples.join(",")
        ))
    }

    #[test]
    fn a_cluster_split_answer_is_summed_by_slo_and_cluster() {
        let in_cluster = |slo: &str, series: &str, cluster: Option<&str>, value: &str| {
            let label = cluster.map_or(String::new(), |c| format!(r#","k8s":"{c}""#));
            format!(
                r#"{{"metric":{{"budgetgate_slo":"shop/{slo}","budgetgate_series":"{series}"{label}}},"value":[1795950000,"{value}"]}}"#
            )
        };
        let answer = vector(&[
            in_cluster("checkout", "bad", Some("a"), "12"),
            in_cluster("checkout", "total", Some("a"), "4000"),
            in_cluster("checkout", "total", Some("b"), "6000"),
            in_cluster("checkout", "total", None, "10"),
            in_cluster("cart", "bad", Some("a"), "NaN"),
            in_cluster("cart", "total", Some("a"), "-1e-12"),
        ]);
        let split = split_clusters(&answer, "k8s").unwrap();
        assert_eq!(
            split[&key("checkout")],
            BTreeMap::from([
                (String::new(), (0.0, 10.0)),
                ("a".to_owned(), (12.0, 4000.0)),
                ("b".to_owned(), (0.0, 6000.0)),
            ])
        );
        // A NaN is no count; a rounding error below zero reads 0.
        assert_eq!(
            split[&key("cart")],
            BTreeMap::from([("a".to_owned(), (0.0, 0.0))])
        );
    }

    #[test]
    fn a_canary_check_answer_is_split_by_slo_and_series() {
        let answer = vector(&[
            sample("checkout", "bad_canary", "3"),
            sample("checkout", "total_canary", "120"),
            sample("checkout", "bad_stable", "4"),
            sample("checkout", "total_stable", "2400"),
            sample("cart", "total_stable", "900"),
            sample("cart", "bad_stable", "-1e-12"),
        ]);
        let counts = split_tracks(&track_query(&["checkout", "cart", "idle"]), &answer).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([
                (
                    key("checkout"),
                    Ok(TrackCounts {
                        canary_bad: 3.0,
                        canary_total: 120.0,
                        stable_bad: 4.0,
                        stable_total: 2400.0,
                    })
                ),
                // No canary series yet: no canary traffic, 0; a rounding error below zero is 0.
                (
                    key("cart"),
                    Ok(TrackCounts {
                        stable_total: 900.0,
                        ..TrackCounts::default()
                    })
                ),
                // Nothing at all: the query ran, so zeros, not missing.
                (key("idle"), Ok(TrackCounts::default())),
            ])
        );
    }

    #[test]
    fn a_sample_that_is_not_a_count_makes_only_its_slo_unusable() {
        let answer = vector(&[
            sample("nan", "bad_canary", "NaN"),
            sample("nan", "total_canary", "10"),
            sample("inf", "total_stable", "+Inf"),
            sample("negative", "bad_stable", "-3"),
            sample("twice", "total_canary", "5"),
            sample("twice", "total_canary", "6"),
            sample("unnamed", "bad", "1"),
            sample("fine", "total_canary", "7"),
        ]);
        let names = ["nan", "inf", "negative", "twice", "unnamed", "fine"];
        let counts = split_tracks(&track_query(&names), &answer).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([
                (key("nan"), Err("bad_canary is NaN, not a count".to_owned())),
                (
                    key("inf"),
                    Err("total_stable is inf, not a count".to_owned())
                ),
                (
                    key("negative"),
                    Err("bad_stable is -3, not a count".to_owned())
                ),
                (key("twice"), Err("two series for total_canary".to_owned())),
                (
                    key("unnamed"),
                    Err(r#"a sample with budgetgate_series="bad", not asked for"#.to_owned())
                ),
                (
                    key("fine"),
                    Ok(TrackCounts {
                        canary_total: 7.0,
                        ..TrackCounts::default()
                    })
                ),
            ])
        );
    }

    #[test]
    fn samples_of_slos_not_asked_for_are_ignored() {
        let answer = data(
            r#"{"resultType":"vector","result":[
                {"metric":{"budgetgate_slo":"other/stranger","budgetgate_series":"bad_canary"},"value":[1,"NaN"]},
                {"metric":{"budgetgate_slo":"no-slash","budgetgate_series":"bad_canary"},"value":[1,"1"]},
                {"metric":{"budgetgate_series":"bad_canary"},"value":[1,"1"]},
                {"metric":{"budgetgate_slo":"shop/checkout","budgetgate_series":"total_stable"},"value":[1,"8"]}
            ]}"#,
        );
        let counts = split_tracks(&track_query(&["checkout"]), &answer).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([(
                key("checkout"),
                Ok(TrackCounts {
                    stable_total: 8.0,
                    ..TrackCounts::default()
                })
            )])
        );
        let scalar = data(r#"{"resultType":"scalar","result":[1,"1"]}"#);
        assert_eq!(
            split_tracks(&track_query(&["checkout"]), &scalar).unwrap_err(),
            ParseError::NotAVector("scalar")
        );
    }
}
