//! Is a canary healthy right now? Burn over the tier's `analysisWindow` for the SLOs
//! selecting the Deployment and for the team, against `abortBurnRate`; a budget newly
//! exhausted counts as unhealthy; missing or stale numbers are unknown, never bad
//! (DESIGN §7.4, §7.5).

use crate::api::Timestamp;
use crate::budget::Assessment;
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
    let abort = tier.canary.abort_burn_rate;
    if burn > abort {
        return Health::Unhealthy {
            burn: Some(burn),
            reason: format!("{who} burns {burn:.1}x over {window}, above abortBurnRate {abort}x"),
        };
    }
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
