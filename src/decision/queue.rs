//! When a queued rollout starts (DESIGN §7.10). A Deployment the webhook admitted paused
//! into its team's queue starts when admission would now let its rollout through — the
//! budget regained a band, the page burn stopped, the platform freeze lifted, or a
//! BudgetException applies — and its turn has come: queued rollouts of a team start
//! oldest first, no more at once than the band's `maxConcurrentRollouts` leaves room for.
//! The same rules as [`super::decide`] (one budget view, one gate), so a queue never starts
//! what an apply would be refused. Pure, like the decision.

use super::{Context, Decision, Reason};
use crate::api::{Plan, ReleasePhase, Timestamp};
use crate::index::{Index, ObjectKey};
use std::collections::BTreeMap;

/// What the queue says about one queued Deployment now.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueVerdict {
    /// Start it: on `plan` of `band` as a canary when it is progressive, else directly.
    Start {
        band: Option<String>,
        plan: Option<Plan>,
        remaining: Option<f64>,
        /// The BudgetException that lets it start, if one does.
        exception: Option<String>,
        /// Why it starts now, for the Release and the Event.
        why: String,
    },
    /// Keep waiting: its place in the team's queue (1 = next) and why.
    Wait { position: u32, reason: String },
}

/// A queued rollout of the team, as the Release ledger shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub since: Timestamp,
    pub key: ObjectKey,
}

/// The team's queue in the tier, oldest first: every `Queued` Release's Deployment (once,
/// at its oldest queued time).
pub fn team_queue(index: &Index, team: &str, tier: &str) -> Vec<Entry> {
    let mut oldest: BTreeMap<ObjectKey, Timestamp> = BTreeMap::new();
    for (k, r) in index.team_releases(team, tier) {
        if r.phase != Some(ReleasePhase::Queued) {
            continue;
        }
        let Some(since) = r.queued_since.or(r.created) else {
            continue;
        };
        let key = ObjectKey::new(&k.namespace, &r.deployment);
        let at = oldest.entry(key).or_insert(since);
        *at = (*at).min(since);
    }
    let mut queue: Vec<Entry> = oldest
        .into_iter()
        .map(|(key, since)| Entry { since, key })
        .collect();
    queue.sort();
    queue
}

/// Judges the queued Deployment `key` (labels `labels`, template `revision`, queued since
/// `since`) at `now`.
pub fn judge(
    index: &Index,
    key: &ObjectKey,
    labels: &BTreeMap<String, String>,
    revision: &str,
    progressive: bool,
    since: Timestamp,
    now: Timestamp,
) -> QueueVerdict {
    let start_direct = |why: &str| QueueVerdict::Start {
        band: None,
        plan: None,
        remaining: None,
        exception: None,
        why: why.to_owned(),
    };
    let (Some(policy), Some((team, tier_name))) = (&index.policy, index.team_of(&key.namespace))
    else {
        return start_direct("its namespace is no longer managed");
    };
    let Some(tier) = policy.tier(&tier_name) else {
        return start_direct("its namespace names a tier the policy lacks");
    };
    let queue = team_queue(index, &team, &tier_name);
    let me = Entry {
        since,
        key: key.clone(),
    };
    // Not in the ledger yet (its Release is being written): behind every one that is.
    let ahead = queue.iter().filter(|e| **e < me && e.key != *key).count();
    let position = ahead as u32 + 1;
    let ctx = Context {
        index,
        policy,
        tier,
        team: &team,
        key,
        labels,
        old_labels: None,
        now,
        queueable: false,
    };
    let view = ctx.budget_view();
    let mut d = Decision {
        team: Some(team.clone()),
        tier: Some(tier_name.clone()),
        class: Some(super::ChangeClass::Rollout),
        ..Decision::blank(
            key.namespace.clone(),
            key.name.clone(),
            Reason::NotApplicable,
        )
    };
    let canary = ctx.gate(&mut d, &view, progressive, revision);
    if d.would_deny {
        let why = d.refusal.clone().unwrap_or_else(|| "frozen".to_owned());
        return QueueVerdict::Wait {
            position,
            reason: why,
        };
    }
    // Room for how many at once: the band's cap less what runs (the gate let this one
    // through, so there is room for at least one); only the oldest that fit start.
    let room = d
        .band
        .as_deref()
        .and_then(|b| tier.bands.iter().find(|band| band.name == b))
        .and_then(|b| b.max_concurrent_rollouts)
        .map(|max| {
            let running = index
                .team_releases(&team, &tier_name)
                .filter(|(k, r)| {
                    r.phase == Some(ReleasePhase::Progressing)
                        && !(k.namespace == key.namespace && r.deployment == key.name)
                })
                .count();
            (max as usize).saturating_sub(running)
        });
    if let Some(room) = room
        && ahead >= room
    {
        return QueueVerdict::Wait {
            position,
            reason: format!(
                "{ahead} older queued rollout(s) of team {team} go first, and band {} allows {room} more at a time",
                d.band.as_deref().unwrap_or_default()
            ),
        };
    }
    let why = match (&d.exception, d.reason) {
        (Some(name), Reason::Exception) => format!("exception {name} lets it through"),
        (Some(name), _) => format!(
            "exception {name} adds budget: {} remaining",
            super::text::pct(d.remaining.unwrap_or_default())
        ),
        (None, Reason::WithinBudget) => format!(
            "the budget recovered to band {} ({} remaining)",
            d.band.as_deref().unwrap_or_default(),
            super::text::pct(d.remaining.unwrap_or_default())
        ),
        (None, Reason::NoObjectives) => format!("team {team} has no objectives in the tier"),
        (None, Reason::Stale) => "budget data unknown or stale; onStale=allow".to_owned(),
        (None, other) => other.as_str().to_owned(),
    };
    QueueVerdict::Start {
        band: d.band.clone(),
        plan: canary.map(|c| c.plan),
        remaining: d.remaining,
        exception: d.exception.clone(),
        why,
    }
}

/// One queued rollout, for the plugin's `queue` and the scoreboard.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub team: String,
    pub tier: String,
    /// 1 = next to start.
    pub position: u32,
    pub namespace: String,
    pub deployment: String,
    pub release: String,
    pub revision: String,
    pub queued_since: Timestamp,
    /// What it waits for, as the controller last wrote it on the Release.
    pub reason: Option<String>,
}

/// Every team's queue, team by team and oldest first within a team and tier.
pub fn queues(index: &Index) -> Vec<Queued> {
    let mut teams: Vec<(String, String)> = index
        .releases
        .iter()
        .filter(|(_, r)| r.phase == Some(ReleasePhase::Queued))
        .filter_map(|(k, _)| index.team_of(&k.namespace))
        .collect();
    teams.sort();
    teams.dedup();
    let mut out = Vec::new();
    for (team, tier) in teams {
        for (i, entry) in team_queue(index, &team, &tier).into_iter().enumerate() {
            // The newest Queued Release of the Deployment names what waits.
            let release = index
                .namespace_releases(&entry.key.namespace)
                .filter(|(_, r)| {
                    r.phase == Some(ReleasePhase::Queued) && r.deployment == entry.key.name
                })
                .max_by_key(|(_, r)| r.created);
            let Some((k, r)) = release else { continue };
            out.push(Queued {
                team: team.clone(),
                tier: tier.clone(),
                position: i as u32 + 1,
                namespace: entry.key.namespace.clone(),
                deployment: entry.key.name.clone(),
                release: k.name.clone(),
                revision: r.revision.clone(),
                queued_since: entry.since,
                reason: r.reason.as_ref().map(|why| {
                    why.split_once(": ")
                        .filter(|(head, _)| head.starts_with("queued at position"))
                        .map_or(why.clone(), |(_, rest)| rest.to_owned())
                }),
            });
        }
    }
    out
}
