//! The I/O of a canary check (DESIGN §7.4): for every SLO selecting the Deployment, bad
//! and total events of the canary track and of the stable track over the check window
//! (the stage's start to now, at most `analysisWindow`), in one batched Prometheus query.
//! What Prometheus cannot answer is `Unavailable` (hold), never bad.

use crate::api::{Duration, Timestamp};
use crate::index::{Index, ObjectKey};
use crate::policy::Tier;
use crate::prom::{self, PromConfig, query::Events};
use crate::rollout::analysis::{Counts, SloReading, Tracks};
use crate::selector;
use std::collections::BTreeMap;

/// Reads canary and stable counts from Prometheus.
pub struct TrackReader {
    pub config: PromConfig,
    /// `--cluster-name`: read only this cluster's series (the policy's `clusterLabel`).
    pub cluster: Option<String>,
}

/// The SLOs of `namespace` that select a Deployment with `labels`, with their objective.
fn selecting<'a>(
    index: &'a Index,
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (&'a ObjectKey, &'a crate::api::ServiceLevelObjectiveSpec)> + 'a {
    index.slos.iter().filter(move |(k, spec)| {
        k.namespace == namespace
            && spec
                .deployment_selector
                .as_ref()
                .is_none_or(|s| selector::matches(s, labels))
    })
}

/// Without Prometheus every selecting SLO is judged on whole-service burn.
pub fn without_prometheus(
    index: &Index,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<SloReading> {
    selecting(index, namespace, labels)
        .map(|(k, spec)| SloReading {
            slo: k.to_string(),
            objective: spec.objective,
            tracks: Tracks::WholeService {
                why: "no Prometheus to read the canary's own series from (budgets from a snapshot)"
                    .into(),
            },
        })
        .collect()
}

/// The check window: from the stage's start to `now`, at most `analysisWindow`, at least
/// one second.
pub fn check_window(tier: &Tier, stage_started_at: Option<Timestamp>, now: Timestamp) -> Duration {
    let window = tier.canary.analysis_window.seconds();
    let since = stage_started_at
        .map(|s| now.duration_since(s).as_secs().max(0) as u64)
        .unwrap_or(window);
    Duration::from_seconds(since.clamp(1, window.max(1)))
}

impl TrackReader {
    pub async fn read(
        &self,
        index: &Index,
        tier: &Tier,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        stage_started_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Vec<SloReading> {
        let slos: Vec<(ObjectKey, f64, Result<Events, String>)> =
            selecting(index, namespace, labels)
                .map(|(k, spec)| {
                    (
                        k.clone(),
                        spec.objective,
                        match &index.policy {
                            Some(policy) => Events::from_indicator(
                                &spec.indicator,
                                &policy.confinement(&k.namespace),
                            ),
                            None => Err("no policy".to_owned()),
                        },
                    )
                })
                .collect();
        if slos.is_empty() {
            return Vec::new();
        }
        let range = check_window(tier, stage_started_at, now);
        let members: Vec<(ObjectKey, Result<Events, String>)> = slos
            .iter()
            .map(|(k, _, e)| (k.clone(), e.clone()))
            .collect();
        let cluster = match (&self.cluster, &index.policy) {
            (Some(name), Some(policy)) => {
                Some(prom::query::cluster_matcher(&policy.cluster_label, name))
            }
            _ => None,
        };
        let query = prom::query::track_query(
            &members,
            &tier.canary.track_label,
            cluster.as_deref(),
            &range,
        );
        let answer = if query.promql.is_empty() {
            Ok(BTreeMap::new())
        } else {
            prom::read_tracks(&self.config, &query, now).await.map(|r| {
                tracing::debug!(
                    requests = r.requests,
                    "Prometheus requests of the canary check"
                );
                r.counts
            })
        };
        tracing::debug!(window = %range, slos = slos.len(), ok = answer.is_ok(), "canary check read");
        slos.into_iter()
            .map(|(key, objective, _)| {
                let tracks = if query.whole_service.contains(&key) {
                    Tracks::WholeService {
                        why: "raw indicator without {{track}}".into(),
                    }
                } else if let Some((_, why)) = query.invalid.iter().find(|(k, _)| *k == key) {
                    Tracks::Unavailable {
                        reason: why.clone(),
                    }
                } else {
                    match &answer {
                        Err(e) => Tracks::Unavailable {
                            reason: e.to_string(),
                        },
                        Ok(counts) => match counts.get(&key) {
                            Some(Ok(c)) => Tracks::Split {
                                canary: Counts {
                                    bad: c.canary_bad,
                                    total: c.canary_total,
                                },
                                stable: Counts {
                                    bad: c.stable_bad,
                                    total: c.stable_total,
                                },
                            },
                            Some(Err(reason)) => Tracks::Unavailable {
                                reason: reason.clone(),
                            },
                            None => Tracks::Split {
                                canary: Counts::default(),
                                stable: Counts::default(),
                            },
                        },
                    }
                };
                SloReading {
                    slo: key.to_string(),
                    objective,
                    tracks,
                }
            })
            .collect()
    }
}
