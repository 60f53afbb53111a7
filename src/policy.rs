//! The policy as the decision uses it: tiers with their defaults applied, validated, with
//! band and plan lookup. Built from a `ReliabilityPolicySpec`; pure.

use crate::api::{
    AlertWindow, Band, CanarySpec, Duration, Enforcement, OnExhausted, OnStale,
    ReliabilityPolicySpec, Severity, TierSpec, Window,
};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub default_tier: String,
    pub controller_users: BTreeSet<String>,
    pub max_exception: Duration,
    pub platform_freeze: bool,
    /// Where SLO queries may read (DESIGN §9).
    pub slo_namespace_label: String,
    /// The series label that names the cluster (DESIGN §8).
    pub cluster_label: String,
    pub cross_namespace_slos: BTreeSet<String>,
    pub raw_query_namespaces: BTreeSet<String>,
    pub tiers: BTreeMap<String, Tier>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    pub name: String,
    pub enforcement: Enforcement,
    pub window: Window,
    pub stale_after: Duration,
    pub on_stale: OnStale,
    pub on_exhausted: OnExhausted,
    pub freeze_on_page_burn: bool,
    pub recovery_target: Duration,
    pub bands: Vec<Band>,
    pub alert_windows: Vec<AlertWindow>,
    pub canary: CanarySpec,
}

/// Where a remaining budget falls among a tier's bands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BandLookup<'a> {
    /// Index into `Tier::bands` and the band.
    Band(usize, &'a Band),
    /// At or below the lowest band's `minRemaining`.
    Exhausted,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct PolicyError {
    /// Field path inside the policy object, e.g. `spec.tiers.production.bands[1].plan.steps`.
    pub path: String,
    pub message: String,
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError {
        path: path.into(),
        message: message.into(),
    }
}

/// The alert window pairs used when a tier names none (Google SRE Workbook, ch. 5).
pub fn default_alert_windows() -> Vec<AlertWindow> {
    let pair = |name: &str, severity, long: u64, short: u64, budget_percent| AlertWindow {
        name: name.into(),
        severity,
        long: Duration::from_seconds(long),
        short: Duration::from_seconds(short),
        budget_percent,
    };
    vec![
        pair("page-fast", Severity::Page, 3_600, 300, 2.0),
        pair("page-slow", Severity::Page, 6 * 3_600, 1_800, 5.0),
        pair("ticket-fast", Severity::Ticket, 86_400, 2 * 3_600, 10.0),
        pair("ticket-slow", Severity::Ticket, 3 * 86_400, 6 * 3_600, 10.0),
    ]
}

impl Policy {
    pub fn from_spec(spec: &ReliabilityPolicySpec) -> Result<Policy, PolicyError> {
        if spec.tiers.is_empty() {
            return Err(invalid("spec.tiers", "at least one tier is required"));
        }
        if !spec.tiers.contains_key(&spec.default_tier) {
            return Err(invalid(
                "spec.defaultTier",
                format!(
                    "names tier {:?}, which spec.tiers does not define",
                    spec.default_tier
                ),
            ));
        }
        let tiers = spec
            .tiers
            .iter()
            .map(|(name, tier)| Tier::from_spec(name, tier).map(|t| (name.clone(), t)))
            .collect::<Result<_, _>>()?;
        if !is_label_name(&spec.slo_namespace_label) || spec.slo_namespace_label.starts_with("__") {
            return Err(invalid(
                "spec.sloNamespaceLabel",
                "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*) not starting with __",
            ));
        }
        let cluster_label = spec
            .cluster_label
            .clone()
            .unwrap_or_else(|| "cluster".into());
        if !is_label_name(&cluster_label) || cluster_label.starts_with("__") {
            return Err(invalid(
                "spec.clusterLabel",
                "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*) not starting with __",
            ));
        }
        Ok(Policy {
            cluster_label,
            default_tier: spec.default_tier.clone(),
            controller_users: spec.controller_users.iter().cloned().collect(),
            max_exception: spec.exceptions.max_duration.clone(),
            platform_freeze: spec.platform_freeze,
            slo_namespace_label: spec.slo_namespace_label.clone(),
            cross_namespace_slos: spec.cross_namespace_slos.iter().cloned().collect(),
            raw_query_namespaces: spec.raw_query_namespaces.iter().cloned().collect(),
            tiers,
        })
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.get(name)
    }

    /// Where the SLOs of `namespace` may read.
    pub fn confinement<'a>(&'a self, namespace: &'a str) -> crate::prom::query::Confinement<'a> {
        crate::prom::query::Confinement {
            namespace,
            label: &self.slo_namespace_label,
            cross_namespace: self.cross_namespace_slos.contains(namespace),
            raw: self.raw_query_namespaces.contains(namespace),
        }
    }
}

impl Tier {
    fn from_spec(name: &str, spec: &TierSpec) -> Result<Tier, PolicyError> {
        let at = |field: &str| format!("spec.tiers.{name}.{field}");
        if spec.bands.is_empty() {
            return Err(invalid(at("bands"), "at least one band is required"));
        }
        let mut seen = BTreeSet::new();
        for (i, band) in spec.bands.iter().enumerate() {
            let path = |field: &str| at(&format!("bands[{i}].{field}"));
            if band.name.is_empty() || !seen.insert(band.name.as_str()) {
                return Err(invalid(
                    path("name"),
                    "band names must be non-empty and unique",
                ));
            }
            if !band.min_remaining.is_finite() || band.min_remaining >= 1.0 {
                return Err(invalid(path("minRemaining"), "must be a number below 1"));
            }
            if i > 0 && band.min_remaining >= spec.bands[i - 1].min_remaining {
                return Err(invalid(
                    path("minRemaining"),
                    "bands are ordered: each minRemaining must be below the previous band's",
                ));
            }
            let steps = &band.plan.steps;
            if steps.is_empty()
                || steps.iter().any(|s| *s == 0 || *s > 100)
                || steps.windows(2).any(|w| w[0] >= w[1])
                || steps.last() != Some(&100)
            {
                return Err(invalid(
                    path("plan.steps"),
                    "steps are increasing percentages from 1 to 100 ending at 100",
                ));
            }
            if band.max_concurrent_rollouts == Some(0) {
                return Err(invalid(path("maxConcurrentRollouts"), "must be at least 1"));
            }
        }
        let alert_windows = spec
            .alert_windows
            .clone()
            .unwrap_or_else(default_alert_windows);
        for (i, w) in alert_windows.iter().enumerate() {
            if w.short.seconds() >= w.long.seconds() {
                return Err(invalid(
                    at(&format!("alertWindows[{i}].short")),
                    "the short window must be shorter than the long one",
                ));
            }
            if !(w.budget_percent > 0.0 && w.budget_percent <= 100.0) {
                return Err(invalid(
                    at(&format!("alertWindows[{i}].budgetPercent")),
                    "must be above 0 and at most 100",
                ));
            }
        }
        let canary = spec.canary.clone().unwrap_or_default();
        if !(canary.abort_burn_rate > 0.0 && canary.abort_burn_rate.is_finite()) {
            return Err(invalid(
                at("canary.abortBurnRate"),
                "must be a positive number",
            ));
        }
        if canary.consecutive_failures == 0 {
            return Err(invalid(
                at("canary.consecutiveFailures"),
                "must be at least 1",
            ));
        }
        if !is_label_name(&canary.track_label) || canary.track_label.starts_with("__") {
            return Err(invalid(
                at("canary.trackLabel"),
                "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*) not starting with __",
            ));
        }
        if !(canary.max_relative_error_rate >= 1.0 && canary.max_relative_error_rate.is_finite()) {
            return Err(invalid(
                at("canary.maxRelativeErrorRate"),
                "must be a number of at least 1",
            ));
        }
        Ok(Tier {
            name: name.to_owned(),
            enforcement: spec.enforcement.unwrap_or(Enforcement::Enforce),
            window: spec
                .window
                .clone()
                .unwrap_or_else(|| Window::Rolling(Duration::from_seconds(30 * 86_400))),
            stale_after: spec
                .stale_after
                .clone()
                .unwrap_or_else(|| Duration::from_seconds(300)),
            on_stale: spec.on_stale.unwrap_or(OnStale::Allow),
            on_exhausted: spec.on_exhausted.unwrap_or(OnExhausted::Deny),
            freeze_on_page_burn: spec.freeze_on_page_burn.unwrap_or(true),
            recovery_target: spec
                .recovery_target
                .clone()
                .unwrap_or_else(|| Duration::from_seconds(3_600)),
            bands: spec.bands.clone(),
            alert_windows,
            canary,
        })
    }

    /// The first band whose `minRemaining` is strictly below `remaining`.
    pub fn band_for(&self, remaining: f64) -> BandLookup<'_> {
        self.bands
            .iter()
            .enumerate()
            .find(|(_, band)| remaining > band.min_remaining)
            .map_or(BandLookup::Exhausted, |(i, band)| BandLookup::Band(i, band))
    }

    /// The band with the smallest steps: used when a rollout is let through without a
    /// trustworthy budget (override exception on an exhausted budget, stale data).
    pub fn most_cautious_band(&self) -> &Band {
        // from_spec guarantees at least one band.
        &self.bands[self.bands.len() - 1]
    }

    /// Every window key whose burn rate the tier needs: alert pairs and canary analysis.
    pub fn burn_windows(&self) -> BTreeSet<Duration> {
        let mut windows: BTreeSet<Duration> = self
            .alert_windows
            .iter()
            .flat_map(|w| [w.long.clone(), w.short.clone()])
            .collect();
        windows.insert(self.canary.analysis_window.clone());
        windows
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: the Prometheus data model's label names.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The sample policy of `manifests/samples/policy.yaml`: the fixture of the unit tests.
#[cfg(test)]
pub(crate) fn sample_policy() -> crate::api::ReliabilityPolicy {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/samples/policy.yaml"
    ))
    .expect("the sample policy is in the repository");
    serde_yaml_ng::from_str(&text).expect("the sample policy parses")
}

/// A tier of [`sample_policy`].
#[cfg(test)]
pub(crate) fn sample_tier(name: &str) -> Tier {
    Policy::from_spec(&sample_policy().spec)
        .expect("the sample policy is valid")
        .tiers[name]
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(yaml: &str) -> Result<Tier, PolicyError> {
        let spec: TierSpec = serde_yaml_ng::from_str(yaml).unwrap();
        Tier::from_spec("production", &spec)
    }

    const BANDS: &str = r#"
bands:
  - {name: healthy,  minRemaining: 0.5,  plan: {steps: [20, 50, 100], pause: 2m}}
  - {name: caution,  minRemaining: 0.25, plan: {steps: [10, 25, 50, 100], pause: 5m}, maxConcurrentRollouts: 3}
  - {name: critical, minRemaining: 0,    plan: {steps: [5, 10, 25, 50, 100], pause: 10m}, maxConcurrentRollouts: 1, minInterval: 1h}
"#;

    #[test]
    fn band_is_the_first_whose_min_remaining_is_strictly_below() {
        let t = tier(BANDS).unwrap();
        let name = |r| match t.band_for(r) {
            BandLookup::Band(_, b) => b.name.clone(),
            BandLookup::Exhausted => "exhausted".into(),
        };
        assert_eq!(name(0.9), "healthy");
        assert_eq!(name(0.5), "caution", "exactly minRemaining is not above it");
        assert_eq!(name(0.26), "caution");
        assert_eq!(name(0.25), "critical");
        assert_eq!(name(0.0001), "critical");
        assert_eq!(name(0.0), "exhausted");
        assert_eq!(name(-0.3), "exhausted");
    }

    #[test]
    fn omitted_tier_fields_take_the_documented_defaults() {
        let t = tier(BANDS).unwrap();
        assert_eq!(t.enforcement, Enforcement::Enforce);
        assert_eq!(t.window, Window::Rolling(Duration::parse("30d").unwrap()));
        assert_eq!(t.stale_after.seconds(), 300);
        assert_eq!(t.on_stale, OnStale::Allow);
        assert!(t.freeze_on_page_burn);
        assert_eq!(t.recovery_target.seconds(), 3_600);
        assert_eq!(t.alert_windows, default_alert_windows());
        assert_eq!(t.canary, CanarySpec::default());
        assert_eq!(t.most_cautious_band().name, "critical");
        let windows: Vec<_> = t.burn_windows().iter().map(|d| d.seconds()).collect();
        assert_eq!(windows, [300, 1_800, 3_600, 7_200, 21_600, 86_400, 259_200]);
    }

    #[test]
    fn canary_analysis_fields_default_to_track_100_events_and_twice_stable() {
        let t = tier(&format!("{BANDS}canary: {{abortBurnRate: 10}}")).unwrap();
        assert_eq!(t.canary.abort_burn_rate, 10.0);
        assert_eq!(t.canary.track_label, "track");
        assert_eq!(t.canary.min_canary_events, 100);
        assert_eq!(t.canary.max_relative_error_rate, 2.0);
        let set = tier(&format!(
            "{BANDS}canary: {{trackLabel: rollout_track, minCanaryEvents: 500, maxRelativeErrorRate: 1}}"
        ))
        .unwrap();
        assert_eq!(set.canary.track_label, "rollout_track");
        assert_eq!(set.canary.min_canary_events, 500);
        assert_eq!(set.canary.max_relative_error_rate, 1.0);
    }

    #[test]
    fn track_label_must_be_a_prometheus_label_name_not_reserved() {
        for ok in ["track", "_track", "Track_2", "t"] {
            let t = tier(&format!("{BANDS}canary: {{trackLabel: {ok}}}"));
            assert!(t.is_ok(), "{ok}: {t:?}");
        }
        for bad in ["''", "2track", "track-id", "app.track", "__track", "__"] {
            let e = tier(&format!("{BANDS}canary: {{trackLabel: {bad}}}")).unwrap_err();
            assert_eq!(
                e.to_string(),
                "spec.tiers.production.canary.trackLabel: must be a Prometheus label name \
                 ([a-zA-Z_][a-zA-Z0-9_]*) not starting with __",
                "{bad}"
            );
        }
    }

    #[test]
    fn max_relative_error_rate_must_be_finite_and_at_least_one() {
        for bad in ["0.99", "0", "-2", ".inf", ".nan"] {
            let e = tier(&format!("{BANDS}canary: {{maxRelativeErrorRate: {bad}}}")).unwrap_err();
            assert_eq!(
                e.to_string(),
                "spec.tiers.production.canary.maxRelativeErrorRate: must be a number of at least 1",
                "{bad}"
            );
        }
    }

    #[test]
    fn unordered_bands_are_rejected_with_their_path() {
        let e = tier(
            "bands: [{name: a, minRemaining: 0.2, plan: {steps: [100], pause: 1m}}, {name: b, minRemaining: 0.4, plan: {steps: [100], pause: 1m}}]",
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.tiers.production.bands[1].minRemaining");
    }

    #[test]
    fn plan_steps_must_climb_to_100() {
        for steps in ["[50, 20, 100]", "[10, 50]", "[0, 100]", "[]", "[50, 150]"] {
            let e = tier(&format!(
                "bands: [{{name: a, plan: {{steps: {steps}, pause: 1m}}}}]"
            ))
            .unwrap_err();
            assert_eq!(
                e.path, "spec.tiers.production.bands[0].plan.steps",
                "{steps}"
            );
        }
    }
}
