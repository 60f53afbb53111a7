//! Is a canary healthy right now? Burn over the tier's `analysisWindow` for the SLOs
//! selecting the Deployment and for the team, against `abortBurnRate`; a budget newly
//! exhausted counts as unhealthy; missing or stale numbers are unknown, never bad
//! (DESIGN §7.4, §7.5).

use super::analysis::{SloReading, Tracks};
use crate::api::Timestamp;
use crate::budget::Assessment;
use crate::budget::budget_ratio;
use crate::index::Index;
use crate::policy::{BandLookup, Tier};
use crate::selector;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Health {
    /// Every burn at or below the abort rate. `burn` is the highest seen.
    Healthy {
        burn: f64,
    },
    Unhealthy {
        burn: Option<f64>,
        reason: String,
    },
    /// Metrics missing or stale: hold.
    Unknown {
        reason: String,
    },
}

impl Health {
    /// The highest burn this check saw, when it saw one.
    pub fn burn(&self) -> Option<f64> {
        match self {
            Health::Healthy { burn } => Some(*burn),
            Health::Unhealthy { burn, .. } => *burn,
            Health::Unknown { .. } => None,
        }
    }
}

/// Judges the budgets in `index` for Deployment `name` (with pod-template `labels`) in
/// `namespace`, owned by `team` in `tier`. `exhausted_at_start`: the rollout began with
/// the budget already spent (an override let it through), so exhaustion is not news.
pub fn health(
    index: &Index,
    tier: &Tier,
    team: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    exhausted_at_start: bool,
    now: Timestamp,
) -> Health {
    floor(
        index,
        tier,
        team,
        namespace,
        labels,
        exhausted_at_start,
        now,
        None,
    )
}

/// [`health`] for a controller that names its cluster in a global view (DESIGN §8): the
/// floor's burn is the whole service **in this cluster** over the check window — the
/// canary's and stable counts of `readings` (the check's own query) added up — so another
/// cluster's errors never roll this cluster's canary back; staleness and a budget newly
/// exhausted stay global (a team has one budget). SLOs without split counts fall back to
/// the global burn over `analysisWindow`.
#[allow(clippy::too_many_arguments)]
pub fn health_in_cluster(
    index: &Index,
    tier: &Tier,
    team: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    exhausted_at_start: bool,
    now: Timestamp,
    cluster: &str,
    readings: &[SloReading],
) -> Health {
    floor(
        index,
        tier,
        team,
        namespace,
        labels,
        exhausted_at_start,
        now,
        Some((cluster, readings)),
    )
}

/// The burn of each SLO's whole service in one cluster: its canary and stable counts added.
/// (An aggregate over these SLOs is a weighted mean of them: never the worst.)
fn local_burns(readings: &[SloReading]) -> Vec<(String, f64)> {
    readings
        .iter()
        .filter_map(|r| match &r.tracks {
            Tracks::Split { canary, stable } => {
                let bad = canary.bad + stable.bad;
                let total = canary.total + stable.total;
                let burn = if total > 0.0 {
                    bad / total / budget_ratio(r.objective)
                } else {
                    0.0
                };
                Some((format!("SLO {}", r.slo), burn))
            }
            _ => None,
        })
        .collect()
}

/// [`health`], or with `local` = (this cluster, the check's readings) [`health_in_cluster`].
#[allow(clippy::too_many_arguments)]
pub fn floor(
    index: &Index,
    tier: &Tier,
    team: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    exhausted_at_start: bool,
    now: Timestamp,
    local: Option<(&str, &[SloReading])>,
) -> Health {
    let budgets = &index.budgets;
    let window = &tier.canary.analysis_window;
    let Some(at) = budgets.evaluated_at else {
        return Health::Unknown {
            reason: "no budget evaluation yet".into(),
        };
    };
    let age = now.duration_since(at).as_secs();
    if age > tier.stale_after.seconds() as i64 {
        return Health::Unknown {
            reason: format!(
                "budgets were last evaluated {age}s ago, older than staleAfter {}",
                tier.stale_after
            ),
        };
    }
    let mut judged: Vec<(String, &Assessment)> = index
        .slos
        .iter()
        .filter(|(k, spec)| {
            k.namespace == namespace
                && spec
                    .deployment_selector
                    .as_ref()
                    .is_none_or(|s| selector::matches(s, labels))
        })
        .filter_map(|(k, _)| Some((format!("SLO {k}"), budgets.slos.get(k)?)))
        .collect();
    match budgets.teams.get(&(team.to_owned(), tier.name.clone())) {
        Some(a) => judged.push((format!("team {team}"), a)),
        None => {
            return Health::Unknown {
                reason: format!("no budget for team {team} in tier {}", tier.name),
            };
        }
    }
    let abort = tier.canary.abort_burn_rate;
    let in_cluster = local
        .map(|(cluster, readings)| (cluster, local_burns(readings)))
        .filter(|(_, burns)| !burns.is_empty());
    let burn = match &in_cluster {
        Some((cluster, burns)) => {
            let (who, burn) = burns.iter().fold(("", 0.0), |(w, b), (who, burn)| {
                if *burn > b {
                    (who.as_str(), *burn)
                } else {
                    (w, b)
                }
            });
            if burn > abort {
                return Health::Unhealthy {
                    burn: Some(burn),
                    reason: format!(
                        "{who} burns {burn:.1}x in cluster {cluster} over the check window, above abortBurnRate {abort}x"
                    ),
                };
            }
            burn
        }
        None => {
            let mut worst: Option<(f64, &str)> = None;
            for (who, assessment) in &judged {
                let Some(burn) = assessment.burn_rate(window.seconds()) else {
                    return Health::Unknown {
                        reason: format!("no burn rate over {window} for {who}"),
                    };
                };
                if worst.is_none_or(|(w, _)| burn > w) {
                    worst = Some((burn, who));
                }
            }
            let (burn, who) = worst.unwrap_or((0.0, ""));
            if burn > abort {
                return Health::Unhealthy {
                    burn: Some(burn),
                    reason: format!(
                        "{who} burns {burn:.1}x over {window}, above abortBurnRate {abort}x"
                    ),
                };
            }
            burn
        }
    };
    if !exhausted_at_start {
        for (who, assessment) in &judged {
            if let Some(remaining) = assessment.remaining
                && tier.band_for(remaining) == BandLookup::Exhausted
            {
                return Health::Unhealthy {
                    burn: Some(burn),
                    reason: format!(
                        "the error budget of {who} is exhausted ({} remaining)",
                        crate::decision::text_pct(remaining)
                    ),
                };
            }
        }
    }
    Health::Healthy { burn }
}
