//! The release ledger's rules (DESIGN §2 Release, §7.8): which Release a canary reports
//! to, whether a template change without a canary is a release (`Direct`, `Observed`) or
//! a rollback, what a dry-run namespace's rollout would have met under enforcement, how
//! Releases are named, and the budget a release consumed. Pure.

use crate::api::{Enforcement, ManualActionRecord, Release, ReleasePhase, Timestamp};
use crate::policy::{BandLookup, Tier};

/// A Release as the rules read it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseView {
    pub name: String,
    pub revision: String,
    pub phase: ReleasePhase,
    pub failed_checks: u32,
    /// Creation time, and the generation suffix of the name (orders Releases created
    /// within the same second).
    pub created: Option<Timestamp>,
    pub generation: i64,
    /// The team's remaining budget when it was opened.
    pub remaining_at_start: Option<f64>,
    /// `status.reason`: while a write keeps failing, `retrying: <error>`.
    pub reason: Option<String>,
    /// `status.actions`: the manual actions taken, oldest first.
    pub actions: Vec<ManualActionRecord>,
}

/// Prefix of a running Release's reason while the apiserver refuses a write of it.
pub const RETRYING: &str = "retrying: ";

impl ReleaseView {
    /// The error a write of this rollout last met, as written on the Release.
    pub fn last_error(&self) -> Option<&str> {
        self.reason.as_deref()?.strip_prefix(RETRYING)
    }
}

impl ReleaseView {
    pub fn of(r: &Release) -> ReleaseView {
        let name = r.metadata.name.clone().unwrap_or_default();
        ReleaseView {
            generation: name
                .rsplit('-')
                .next()
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
            name,
            revision: r.spec.revision.clone(),
            phase: r
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(ReleasePhase::Progressing),
            failed_checks: r.status.as_ref().map_or(0, |s| s.failed_checks),
            created: r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            remaining_at_start: r.spec.remaining_at_start,
            reason: r.status.as_ref().and_then(|s| s.reason.clone()),
            actions: r
                .status
                .as_ref()
                .map(|s| s.actions.clone())
                .unwrap_or_default(),
        }
    }
}

/// The manual actions of a Release for its final reason: `"; by hand: resume at stage 0
/// (alice), promote at stage 1 (bob)"`, or nothing.
pub fn actions_text(actions: &[ManualActionRecord]) -> String {
    if actions.is_empty() {
        return String::new();
    }
    let list: Vec<String> = actions
        .iter()
        .map(|a| match a.by.as_deref().filter(|b| !b.is_empty()) {
            Some(by) => format!("{} at stage {} ({by})", a.action, a.stage),
            None => format!("{} at stage {}", a.action, a.stage),
        })
        .collect();
    format!("; by hand: {}", list.join(", "))
}

/// The newest of `releases`.
pub fn newest<'a>(releases: impl IntoIterator<Item = &'a ReleaseView>) -> Option<&'a ReleaseView> {
    releases
        .into_iter()
        .max_by_key(|r| (r.created, r.generation))
}

/// The Release a canary of `revision` reports to: the newest of its revision, else the
/// one still progressing or queued (which the new revision supersedes).
pub fn current<'a>(releases: &'a [ReleaseView], revision: &str) -> Option<&'a ReleaseView> {
    newest(releases.iter().filter(|r| r.revision == revision)).or_else(|| {
        newest(
            releases
                .iter()
                .filter(|r| matches!(r.phase, ReleasePhase::Progressing | ReleasePhase::Queued)),
        )
    })
}

/// Name of the Release for `deployment` at `revision`, opened when the Deployment had
/// `generation`: the same observation always names the same Release, so a restarted
/// leader cannot open two.
pub fn release_name(deployment: &str, revision: &str, generation: i64) -> String {
    let short: String = revision.chars().take(8).collect();
    format!("{deployment}-{short}-{generation}")
}

/// What the Deployment is when no canary runs, for the ledger.
pub struct Unpaced<'a> {
    /// Revision of the template it runs now.
    pub revision: &'a str,
    pub history: &'a [String],
    /// The revision budgetgate restored when it last rolled a canary back
    /// ([`super::objects::restored_revision`]): it served before the canary.
    pub restored: Option<&'a str>,
    pub releases: &'a [ReleaseView],
    /// Created before the controller started and never changed since (generation ≤ 1):
    /// installing budgetgate is not a release of everything.
    pub predates_controller: bool,
    pub enforcement: Enforcement,
    pub tier: &'a Tier,
    /// The team's remaining budget now.
    pub remaining: Option<f64>,
    /// The team's firing alert pairs ([`crate::decision::text_firing`]) when it burns at
    /// page level now.
    pub paging: Option<String>,
}

/// A Release to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub phase: ReleasePhase,
    pub reason: String,
    pub band: Option<String>,
    pub remaining: Option<f64>,
}

/// A template change that no canary paced: `None` when it is no release (already
/// recorded, a rollback to a revision the Deployment ran or budgetgate restored, or there
/// before budgetgate);
/// else a `Direct` Release, or in a dry-run namespace an `Observed` one that says what
/// enforcement would have done.
pub fn unpaced_release(u: &Unpaced) -> Option<Record> {
    if newest(u.releases).is_some_and(|r| r.revision == u.revision) {
        return None;
    }
    let earlier = u.releases.iter().any(|r| {
        r.revision == u.revision
            && matches!(
                r.phase,
                ReleasePhase::Promoted | ReleasePhase::Direct | ReleasePhase::Observed
            )
    });
    if earlier || u.history.iter().any(|h| h == u.revision) || u.restored == Some(u.revision) {
        return None; // a rollback
    }
    if u.releases.is_empty() && u.predates_controller {
        return None;
    }
    let band = u.remaining.and_then(|r| match u.tier.band_for(r) {
        BandLookup::Band(_, b) => Some(b.name.clone()),
        BandLookup::Exhausted => None,
    });
    let (phase, reason) = match u.enforcement {
        Enforcement::Dryrun => (
            ReleasePhase::Observed,
            observed_reason(u.tier, u.remaining, u.paging.as_deref()),
        ),
        mode => (
            ReleasePhase::Direct,
            format!("applied directly ({} namespace, no canary)", mode.as_str()),
        ),
    };
    Some(Record {
        phase,
        reason,
        band,
        remaining: u.remaining,
    })
}

/// How an `Observed` Release's reason starts when enforcement would have denied it.
pub const WOULD_DENY: &str = "dry-run: enforce would have denied it";

/// What an enforcing tier would have done with a rollout in a dry-run namespace, from the
/// team's budget: exhausted, burning at page level (`paging`: the firing alerts) where the
/// tier freezes on it, or the band's plan. (Cadence and concurrency limits, and a platform
/// freeze, are the webhook's to judge: `budgetgate_would_deny_total` counts them.)
pub fn observed_reason(tier: &Tier, remaining: Option<f64>, paging: Option<&str>) -> String {
    match remaining.map(|r| (r, tier.band_for(r))) {
        None => "dry-run: no budget data; enforcement would have followed onStale".into(),
        Some((r, BandLookup::Exhausted)) => format!(
            "{WOULD_DENY}: the error budget is exhausted ({} remaining)",
            crate::decision::text_pct(r)
        ),
        Some((r, _)) if tier.freeze_on_page_burn && paging.is_some() => format!(
            "{WOULD_DENY}: the team burns its error budget at page level ({} firing; {} remaining)",
            paging.unwrap_or_default(),
            crate::decision::text_pct(r)
        ),
        Some((r, BandLookup::Band(_, band))) => format!(
            "dry-run: enforce would have let it through in band {} ({} remaining; canary plan {} every {})",
            band.name,
            crate::decision::text_pct(r),
            band.plan.steps_annotation(),
            band.plan.pause
        ),
    }
}

/// Team budget spent since the release started (never negative, 4 decimals).
pub fn consumed(remaining_at_start: Option<f64>, remaining_now: Option<f64>) -> Option<f64> {
    let spent = (remaining_at_start? - remaining_now?).max(0.0);
    Some((spent * 10_000.0).round() / 10_000.0)
}

/// Whether the rollout began with the budget already spent (an override let it through):
/// exhaustion during it is then no news.
pub fn exhausted_at_start(tier: &Tier, release: Option<&ReleaseView>) -> bool {
    release
        .and_then(|r| r.remaining_at_start)
        .is_some_and(|r| tier.band_for(r) == BandLookup::Exhausted)
}

/// `history` after promoting `revision`: newest first, no repeats, at most
/// [`crate::api::keys::HISTORY_LIMIT`] entries.
pub fn push_history(history: &[String], revision: &str) -> String {
    let mut out = vec![revision.to_owned()];
    out.extend(history.iter().filter(|h| *h != revision).cloned());
    out.truncate(crate::api::keys::HISTORY_LIMIT);
    out.join(",")
}

/// Finished Releases to delete so that at most `limit` remain (oldest first; a Release
/// still progressing is never pruned).
pub fn prune(releases: &[ReleaseView], limit: usize) -> Vec<String> {
    if releases.len() <= limit {
        return Vec::new();
    }
    let mut sorted: Vec<&ReleaseView> = releases.iter().collect();
    sorted.sort_by_key(|r| (r.created, r.generation));
    sorted
        .into_iter()
        .filter(|r| r.phase != ReleasePhase::Progressing)
        .take(releases.len() - limit)
        .map(|r| r.name.clone())
        .collect()
}

/// A condition the running Release should show.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
    /// A hold condition: it appears only once it has been true.
    pub hold: bool,
}

/// The conditions of a Progressing Release after a check: `MetricsUnavailable` and
/// `InsufficientTraffic` (true while the canary holds for that reason), and
/// `CanaryAnalysis` (false, reason `WholeService`, when an SLO can only be judged on
/// whole-service burn; reason `NoSLO` when none selects the Deployment).
pub fn conditions(
    check: &super::analysis::Check,
    hold: Option<&(super::HoldKind, String)>,
) -> Vec<WantedCondition> {
    use super::HoldKind;
    let holding = |kind: HoldKind| hold.filter(|(k, _)| *k == kind).map(|(_, m)| m.clone());
    let metrics = holding(HoldKind::MetricsUnavailable);
    let traffic = holding(HoldKind::InsufficientTraffic);
    let analysis = if !check.whole_service.is_empty() {
        WantedCondition {
            type_: "CanaryAnalysis",
            status: false,
            reason: "WholeService",
            message: format!(
                "judged on whole-service burn: {}",
                check.whole_service.join("; ")
            ),
            hold: false,
        }
    } else if check.slos.is_empty() {
        WantedCondition {
            type_: "CanaryAnalysis",
            status: false,
            reason: "NoSLO",
            message: "no SLO selects the Deployment: judged on the team's whole-service burn"
                .into(),
            hold: false,
        }
    } else {
        WantedCondition {
            type_: "CanaryAnalysis",
            status: true,
            reason: "CanaryTraffic",
            message: "judged on the canary's own traffic against the stable pods'".into(),
            hold: false,
        }
    };
    vec![
        WantedCondition {
            type_: "MetricsUnavailable",
            status: metrics.is_some(),
            reason: if metrics.is_some() {
                "MetricsUnavailable"
            } else {
                "MetricsAvailable"
            },
            message: metrics.unwrap_or_else(|| "budget signals are current".into()),
            hold: true,
        },
        WantedCondition {
            type_: "InsufficientTraffic",
            status: traffic.is_some(),
            reason: if traffic.is_some() {
                "InsufficientTraffic"
            } else {
                "EnoughTraffic"
            },
            message: traffic
                .unwrap_or_else(|| "the canary has minCanaryEvents in the check window".into()),
            hold: true,
        },
        analysis,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::HoldKind;
    use crate::rollout::analysis::{Check, Verdict};

    fn tier() -> Tier {
        crate::policy::sample_tier("production")
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn release(name: &str, revision: &str, phase: ReleasePhase, created: i64) -> ReleaseView {
        ReleaseView {
            name: name.into(),
            revision: revision.into(),
            phase,
            failed_checks: 0,
            created: Some(at(created)),
            generation: name.rsplit('-').next().unwrap().parse().unwrap(),
            remaining_at_start: None,
            reason: None,
            actions: vec![],
        }
    }

    fn unpaced<'a>(
        tier: &'a Tier,
        revision: &'a str,
        releases: &'a [ReleaseView],
        history: &'a [String],
        enforcement: Enforcement,
        remaining: Option<f64>,
    ) -> Unpaced<'a> {
        Unpaced {
            revision,
            history,
            restored: None,
            releases,
            predates_controller: false,
            enforcement,
            tier,
            remaining,
            paging: None,
        }
    }

    #[test]
    fn a_template_change_without_canary_is_a_direct_release_with_the_band() {
        let t = tier();
        assert_eq!(
            unpaced_release(&unpaced(
                &t,
                "r2",
                &[],
                &[],
                Enforcement::Enforce,
                Some(0.8)
            )),
            Some(Record {
                phase: ReleasePhase::Direct,
                reason: "applied directly (enforce namespace, no canary)".into(),
                band: Some("healthy".into()),
                remaining: Some(0.8),
            })
        );
    }

    #[test]
    fn a_dry_run_namespace_records_what_enforcement_would_have_done() {
        let t = tier();
        let record = unpaced_release(&unpaced(
            &t,
            "r2",
            &[],
            &[],
            Enforcement::Dryrun,
            Some(-0.2),
        ))
        .unwrap();
        assert_eq!(record.phase, ReleasePhase::Observed);
        assert_eq!(
            record.reason,
            "dry-run: enforce would have denied it: the error budget is exhausted (-20.0% remaining)"
        );
        assert_eq!(record.band, None);
        assert_eq!(
            observed_reason(&t, Some(0.4), None),
            "dry-run: enforce would have let it through in band caution (40.0% remaining; canary plan 10,25,50,100 every 5m)"
        );
        assert_eq!(
            observed_reason(&t, None, None),
            "dry-run: no budget data; enforcement would have followed onStale"
        );
        // Burning at page level with budget left: a tier that freezes on page burn denies.
        let mut dry = unpaced(&t, "r2", &[], &[], Enforcement::Dryrun, Some(0.85));
        dry.paging = Some("page-fast".into());
        assert_eq!(
            unpaced_release(&dry).unwrap().reason,
            "dry-run: enforce would have denied it: the team burns its error budget at page level (page-fast firing; 85.0% remaining)"
        );
        let mut lax = t.clone();
        lax.freeze_on_page_burn = false;
        assert_eq!(
            observed_reason(&lax, Some(0.85), Some("page-fast")),
            "dry-run: enforce would have let it through in band healthy (85.0% remaining; canary plan 20,50,100 every 2m)"
        );
    }

    #[test]
    fn rollbacks_recorded_revisions_and_untouched_old_deployments_are_no_release() {
        let t = tier();
        let promoted = [release("web-r1-1", "r1", ReleasePhase::Promoted, 0)];
        let newest_is_it = [release("web-r2-2", "r2", ReleasePhase::RolledBack, 0)];
        let history = ["r2".to_owned()];
        // Back to a revision a Release promoted, or one in history: a rollback.
        let u = unpaced(
            &t,
            "r1",
            &promoted[..],
            &[],
            Enforcement::Enforce,
            Some(0.8),
        );
        let with_newer = [
            promoted[0].clone(),
            release("web-r3-3", "r3", ReleasePhase::Direct, 5),
        ];
        assert_eq!(
            unpaced_release(&Unpaced {
                releases: &with_newer,
                ..u
            }),
            None
        );
        assert_eq!(
            unpaced_release(&unpaced(
                &t,
                "r2",
                &[],
                &history,
                Enforcement::Enforce,
                None
            )),
            None
        );
        // Already the newest Release's revision.
        assert_eq!(
            unpaced_release(&unpaced(
                &t,
                "r2",
                &newest_is_it,
                &[],
                Enforcement::Enforce,
                None
            )),
            None
        );
        // There before budgetgate and never changed: installing it is no release.
        let mut old = unpaced(&t, "r9", &[], &[], Enforcement::Enforce, None);
        old.predates_controller = true;
        assert_eq!(unpaced_release(&old), None);
        // A revision that was only rolled back before is a release again.
        let rolled = [
            release("web-r5-4", "r5", ReleasePhase::RolledBack, 0),
            release("web-r6-5", "r6", ReleasePhase::Direct, 1),
        ];
        assert!(
            unpaced_release(&unpaced(&t, "r5", &rolled, &[], Enforcement::Enforce, None)).is_some()
        );
    }

    #[test]
    fn the_template_a_rollback_restored_is_no_release() {
        let t = tier();
        // The first canary of a Deployment older than budgetgate, rolled back to r1: r1 is
        // in no Release and not in history, yet it is what served before.
        let rolled = [release("web-r2-2", "r2", ReleasePhase::RolledBack, 0)];
        let restored = Unpaced {
            restored: Some("r1"),
            ..unpaced(&t, "r1", &rolled, &[], Enforcement::Enforce, Some(0.7))
        };
        assert_eq!(unpaced_release(&restored), None);
        // A later template change is a release again.
        assert!(
            unpaced_release(&Unpaced {
                revision: "r3",
                ..restored
            })
            .is_some()
        );
    }

    #[test]
    fn a_canary_reports_to_the_newest_release_of_its_revision_else_the_running_one() {
        let releases = [
            release("web-aaaa-1", "aaaa", ReleasePhase::RolledBack, 0),
            release("web-aaaa-3", "aaaa", ReleasePhase::Progressing, 10),
            release("web-bbbb-2", "bbbb", ReleasePhase::Progressing, 10),
        ];
        assert_eq!(current(&releases, "aaaa").unwrap().name, "web-aaaa-3");
        assert_eq!(current(&releases, "cccc").unwrap().name, "web-aaaa-3");
        assert_eq!(current(&releases[..1], "cccc"), None);
        // Same second: the generation orders them.
        assert_eq!(newest(&releases[1..]).unwrap().name, "web-aaaa-3");
    }

    #[test]
    fn pruning_keeps_the_newest_and_never_a_running_release() {
        let releases: Vec<ReleaseView> = (0..5)
            .map(|i| {
                let phase = if i == 0 {
                    ReleasePhase::Progressing
                } else {
                    ReleasePhase::Promoted
                };
                release(&format!("web-r{i}-{i}"), &format!("r{i}"), phase, i)
            })
            .collect();
        assert_eq!(
            prune(&releases, 3),
            vec!["web-r1-1".to_owned(), "web-r2-2".to_owned()]
        );
        assert!(prune(&releases, 5).is_empty());
    }

    #[test]
    fn consumed_budget_is_never_negative_and_needs_both_ends() {
        assert_eq!(consumed(Some(0.8), Some(0.55)), Some(0.25));
        assert_eq!(consumed(Some(0.5), Some(0.7)), Some(0.0));
        assert_eq!(consumed(None, Some(0.7)), None);
        assert_eq!(consumed(Some(0.5), None), None);
        let t = tier();
        let mut r = release("web-r1-1", "r1", ReleasePhase::Progressing, 0);
        assert!(!exhausted_at_start(&t, Some(&r)));
        r.remaining_at_start = Some(-0.1);
        assert!(exhausted_at_start(&t, Some(&r)));
    }

    #[test]
    fn release_conditions_say_how_the_canary_is_judged_and_why_it_holds() {
        let check = |whole: Vec<String>, slos: usize| Check {
            verdict: Verdict::Pass,
            slos: vec![
                crate::rollout::analysis::SloJudgement {
                    slo: "shop/avail".into(),
                    canary: Default::default(),
                    stable: Default::default(),
                    canary_burn: 0.0,
                    z: None,
                    judged: true,
                };
                slos
            ],
            whole_service: whole,
            burn: Some(0.1),
        };
        let got = conditions(&check(vec![], 1), None);
        assert_eq!(
            got.iter()
                .map(|c| (c.type_, c.status, c.reason))
                .collect::<Vec<_>>(),
            vec![
                ("MetricsUnavailable", false, "MetricsAvailable"),
                ("InsufficientTraffic", false, "EnoughTraffic"),
                ("CanaryAnalysis", true, "CanaryTraffic"),
            ]
        );
        let hold = (
            HoldKind::InsufficientTraffic,
            "canary has 3 events".to_owned(),
        );
        let got = conditions(
            &check(vec!["shop/raw: raw indicator without {{track}}".into()], 0),
            Some(&hold),
        );
        assert_eq!(
            (got[1].status, got[1].message.as_str()),
            (true, "canary has 3 events")
        );
        assert_eq!(
            (got[2].status, got[2].reason, got[2].message.as_str()),
            (
                false,
                "WholeService",
                "judged on whole-service burn: shop/raw: raw indicator without {{track}}"
            )
        );
        assert_eq!(conditions(&check(vec![], 0), None)[2].reason, "NoSLO");
    }
}
