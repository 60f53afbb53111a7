//! The admission decision (DESIGN §6): one pure function from (request, index, now) to
//! both webhooks' answers. `evaluate`, `/validate` and `/mutate` all call [`decide`].
//!
//! Owns change classification, the budget rules, modes, denial texts and the mutating
//! patch. Reads only the [`Index`]; never does I/O.

mod canonical;
mod classify;
mod exception;
mod patch;
pub mod queue;
pub mod review;
mod text;
pub use text::factor as text_factor;
pub use text::firing as text_firing;
pub use text::pct as text_pct;

pub use classify::{
    ChangeClass, annotation, classify, classify_revision, comparable_template, history,
    parse_history, revision_hash, workload_revision,
};
pub use review::{
    AdmissionRequest, AdmissionResponse, Object, Operation, ReviewError, parse_review,
};

use crate::api::{
    BudgetExceptionSpec, Enforcement, ExceptionKind, OnExhausted, OnStale, Plan, ReleasePhase,
    Timestamp, keys,
};
use crate::budget::Assessment;
use crate::index::{Index, ObjectKey};
use crate::policy::{BandLookup, Policy, Tier};
use crate::selector;
use serde_json::Value;
use std::collections::BTreeMap;
use text::{pct, short};

/// Why the decision came out as it did; also the `reason` label of the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not an apps/v1 Deployment CREATE or UPDATE (or a BudgetException).
    NotApplicable,
    /// No ReliabilityPolicy is loaded: budgetgate fails open.
    NoPolicy,
    Unmanaged,
    ControllerUser,
    /// The namespace names a tier the policy does not define: fails open with a warning.
    UnknownTier,
    /// Scale, metadata and rollback changes always pass.
    NotGated,
    /// An override BudgetException let the rollout through.
    Exception,
    /// The team has no ServiceLevelObjective in its tier: nothing to gate on.
    NoObjectives,
    Stale,
    Exhausted,
    Burning,
    PlatformFreeze,
    Concurrency,
    MinInterval,
    WithinBudget,
    /// BudgetException validation.
    ExceptionValid,
    ExceptionInvalid,
}

/// What the mutating patch does with the queue annotation (DESIGN §7.10).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QueueOp {
    /// Leave it as it was: a queued Deployment stays queued and paused.
    Keep,
    /// Queue the rollout: paused, `queued-since` = this time unless already queued.
    Enter(Timestamp),
    /// The queue entry ends (the change is a rollback, or a rollout now admitted): the
    /// annotation goes, and without a canary plan the Deployment is unpaused.
    Leave,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotApplicable => "not_applicable",
            Reason::NoPolicy => "no_policy",
            Reason::Unmanaged => "unmanaged",
            Reason::ControllerUser => "controller_user",
            Reason::UnknownTier => "unknown_tier",
            Reason::NotGated => "not_gated",
            Reason::Exception => "exception",
            Reason::NoObjectives => "no_objectives",
            Reason::Stale => "stale",
            Reason::Exhausted => "exhausted",
            Reason::Burning => "burning",
            Reason::PlatformFreeze => "platform_freeze",
            Reason::Concurrency => "concurrency",
            Reason::MinInterval => "min_interval",
            Reason::WithinBudget => "within_budget",
            Reason::ExceptionValid => "exception_valid",
            Reason::ExceptionInvalid => "exception_invalid",
        }
    }
}

/// The canary plan the mutating webhook writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    pub band: String,
    pub plan: Plan,
    /// Revision hash of the new template.
    pub revision: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub team: Option<String>,
    pub tier: Option<String>,
    pub class: Option<ChangeClass>,
    pub mode: Enforcement,
    pub reason: Reason,
    /// The budget rules say no (before the mode is applied).
    pub would_deny: bool,
    /// The full denial text when `would_deny`.
    pub message: Option<String>,
    pub warnings: Vec<String>,
    /// Remaining budget the band was chosen from (with any offset).
    pub remaining: Option<f64>,
    pub band: Option<String>,
    pub canary: Option<Canary>,
    /// The BudgetException that let it through or offset its budget.
    pub exception: Option<String>,
    pub patch: json_patch::Patch,
    pub dry_run: bool,
    /// The rollout was admitted paused into the team's queue instead of denied
    /// (`onExhausted: queue`); `reason` says which freeze holds it.
    pub queued: bool,
    /// Why the budget rules refuse, in the denial's own words without its frame (who, and
    /// what is still allowed): what a queued rollout waits for.
    pub refusal: Option<String>,
}

impl Decision {
    fn new(req: &AdmissionRequest, reason: Reason) -> Decision {
        let object = req.object.as_ref().or(req.old_object.as_ref());
        let meta = |field: &str| {
            object
                .map(Object::value)
                .and_then(|o| o.pointer(&format!("/metadata/{field}")))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let namespace = req.namespace.clone().unwrap_or_else(|| meta("namespace"));
        let name = if req.name.is_empty() {
            meta("name")
        } else {
            req.name.clone()
        };
        Decision {
            uid: req.uid.clone(),
            dry_run: req.dry_run.unwrap_or(false),
            ..Decision::blank(namespace, name, reason)
        }
    }

    /// A decision about `namespace/name` with nothing decided yet.
    fn blank(namespace: String, name: String, reason: Reason) -> Decision {
        Decision {
            uid: String::new(),
            namespace,
            name,
            team: None,
            tier: None,
            class: None,
            mode: Enforcement::Enforce,
            reason,
            would_deny: false,
            message: None,
            warnings: Vec::new(),
            remaining: None,
            band: None,
            canary: None,
            exception: None,
            patch: json_patch::Patch(Vec::new()),
            dry_run: false,
            queued: false,
            refusal: None,
        }
    }

    /// What the validating webhook answers: denies only under `enforce`.
    pub fn allowed(&self) -> bool {
        !(self.would_deny && self.mode == Enforcement::Enforce)
    }

    /// Short verdict for tables, logs and metrics: `allow`, `deny`, `warn`, `dryrun-deny`,
    /// `queue`.
    pub fn verdict(&self) -> &'static str {
        if self.queued {
            return "queue";
        }
        match (self.would_deny, self.mode) {
            (false, _) => "allow",
            (true, Enforcement::Enforce) => "deny",
            (true, Enforcement::Warn) => "warn",
            (true, Enforcement::Dryrun) => "dryrun-deny",
        }
    }

    pub fn validate_response(&self) -> AdmissionResponse {
        let mut response = match (&self.message, self.allowed()) {
            (Some(message), false) => AdmissionResponse::deny(&self.uid, message.clone()),
            _ => AdmissionResponse::allow(&self.uid),
        };
        response.warnings = self.warnings.clone();
        if self.would_deny
            && self.mode != Enforcement::Enforce
            && let Some(message) = &self.message
        {
            response
                .audit_annotations
                .insert("would-deny".into(), message.clone());
        }
        response
    }

    /// The mutating webhook always allows; it carries the patch.
    pub fn mutate_response(&self) -> AdmissionResponse {
        AdmissionResponse::allow(&self.uid).with_patch(&self.patch)
    }
}

fn is_deployment(req: &AdmissionRequest) -> bool {
    req.kind.group == "apps" && req.kind.version == "v1" && req.kind.kind == "Deployment"
}

/// Decides a review. Errors only when the review lacks what its operation needs.
pub fn decide(
    req: &AdmissionRequest,
    index: &Index,
    now: Timestamp,
) -> Result<Decision, ReviewError> {
    if req.kind.group == crate::api::GROUP && req.kind.kind == "BudgetException" {
        return exception::validate(req, index.policy.as_ref(), now);
    }
    let gated_op = matches!(req.operation, Operation::Create | Operation::Update);
    // A status write can carry metadata changes: the system annotations are guarded there too.
    let status_update =
        req.operation == Operation::Update && req.sub_resource.as_deref() == Some("status");
    if !is_deployment(req) || !gated_op || (req.sub_resource.is_some() && !status_update) {
        return Ok(Decision::new(req, Reason::NotApplicable));
    }
    let new = req.object.as_ref().ok_or_else(|| {
        ReviewError::Malformed("request.object: missing for a Deployment CREATE or UPDATE".into())
    })?;
    let old = match req.operation {
        Operation::Update => Some(req.old_object.as_ref().ok_or_else(|| {
            ReviewError::Malformed("request.oldObject: missing for a Deployment UPDATE".into())
        })?),
        _ => None,
    };
    let mut d = Decision::new(req, Reason::NotApplicable);
    let Some(policy) = &index.policy else {
        d.reason = Reason::NoPolicy;
        return Ok(d);
    };
    let controller = policy.controller_users.contains(&req.user_info.username);
    // System annotations are budgetgate's in every namespace, managed or not, and on the
    // status subresource (DESIGN §9): a value forged where nothing is gated would count
    // once the namespace is managed. Only the annotations: nothing else is touched there.
    let restore_annotations = |d: &mut Decision| {
        if !controller {
            d.patch = patch::annotations_only(patch::build(
                old.map(Object::value),
                new.value(),
                &req.user_info.username,
                None,
                None,
                QueueOp::Keep,
            ));
        }
    };
    if status_update {
        restore_annotations(&mut d);
        return Ok(d);
    }
    let Some((team, tier_name)) = index.team_of(&d.namespace) else {
        d.reason = Reason::Unmanaged;
        restore_annotations(&mut d);
        return Ok(d);
    };
    d.team = Some(team.clone());
    d.tier = Some(tier_name.clone());
    if controller {
        d.reason = Reason::ControllerUser;
        return Ok(d);
    }
    let Some(tier) = policy.tier(&tier_name) else {
        d.reason = Reason::UnknownTier;
        d.warnings.push(short(format!(
            "budgetgate: namespace {} names tier {tier_name:?}, which the policy lacks; not gated",
            d.namespace
        )));
        restore_annotations(&mut d);
        return Ok(d);
    };
    d.mode = index.enforcement(&d.namespace, tier);
    let key = ObjectKey::new(&d.namespace, &d.name);
    let (class, revision) = classify_revision(old, new, |r| index.has_run(&key, r));
    d.class = Some(class);
    let labels = labels_of(new.value());
    let old_labels = old.map(|o| labels_of(o.value()));
    let progressive = index
        .namespaces
        .get(&d.namespace)
        .is_some_and(|m| m.progressive)
        || labels.get(keys::PROGRESSIVE).is_some_and(|v| v == "true");
    let queued_before = old.is_some_and(|o| annotation(o.value(), keys::QUEUED_SINCE).is_some());
    // A new template while a canary runs is denied as before, never queued: the running
    // canary's plan annotations describe another revision.
    let mid_canary = old.is_some_and(|o| annotation(o.value(), keys::STAGE).is_some());
    let ctx = Context {
        index,
        policy,
        tier,
        team: &team,
        key: &key,
        labels: &labels,
        old_labels: old_labels.as_ref(),
        now,
        queueable: matches!(class, ChangeClass::Rollout | ChangeClass::Create)
            && d.mode == Enforcement::Enforce
            && !mid_canary,
    };
    let view = ctx.budget_view();
    let mut canary = None;
    if !class.is_gated() {
        d.reason = Reason::NotGated;
        // Only enforce freezes anything; elsewhere the warning would be news of nothing.
        if matches!(class, ChangeClass::Rollback | ChangeClass::Restart)
            && d.mode == Enforcement::Enforce
            && let Some(freeze) = view.freeze(tier, policy)
        {
            d.warnings.push(short(format!(
                "budgetgate: {} of {key} let through despite the freeze ({})",
                class.as_str(),
                freeze.short
            )));
        }
    } else {
        let revision = revision.clone().unwrap_or_else(|| new.revision());
        canary = ctx.gate(&mut d, &view, progressive, &revision);
    }
    // Creation has no serving version to compare a canary against: it rolls out directly.
    // Warn and dry-run write no plan; every mode protects budgetgate's own state (system
    // annotations, the pause of a running canary), or a forged `history` written in dry-run
    // would pass as a rollback once the namespace enforces.
    let canary = canary
        .filter(|_| class == ChangeClass::Rollout && d.allowed() && d.mode == Enforcement::Enforce);
    // A restart outside a canary runs the revision it restarts: recorded in `history`, it
    // is no release (no cadence spent) and a later return to it is a rollback. Mid-canary,
    // or on a paused Deployment, the new revision does not run yet: history is untouched.
    let ran = revision.as_deref().filter(|_| {
        class == ChangeClass::Restart
            && old.is_some_and(|o| {
                annotation(o.value(), keys::STAGE).is_none()
                    && o.value().pointer("/spec/paused") != Some(&Value::Bool(true))
            })
    });
    let queue = if d.queued {
        QueueOp::Enter(now)
    } else if queued_before
        && matches!(
            class,
            ChangeClass::Rollout | ChangeClass::Create | ChangeClass::Rollback
        )
        && d.allowed()
    {
        QueueOp::Leave
    } else {
        QueueOp::Keep
    };
    d.patch = patch::build(
        old.map(Object::value),
        new.value(),
        &req.user_info.username,
        canary.as_ref(),
        ran,
        queue,
    );
    d.canary = canary;
    Ok(d)
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

struct Context<'a> {
    index: &'a Index,
    policy: &'a Policy,
    tier: &'a Tier,
    team: &'a str,
    key: &'a ObjectKey,
    /// The Deployment's labels after the change, and before it on an UPDATE: relabelling
    /// cannot move a Deployment to a laxer SLO or onto someone else's exception (DESIGN §6
    /// step 2).
    labels: &'a BTreeMap<String, String>,
    old_labels: Option<&'a BTreeMap<String, String>>,
    now: Timestamp,
    /// A freeze queues this change instead of denying it when the tier says so: a rollout
    /// or creation under `enforce`, not while a canary runs.
    queueable: bool,
}

/// An exception in force: its name and spec.
type ActiveException<'a> = Option<(String, &'a BudgetExceptionSpec)>;

/// A reason to refuse, in a long form (denial message) and a short one (warnings).
struct Refusal {
    reason: Reason,
    long: String,
    short: String,
    /// For a freeze (exhaustion, page burn, platform freeze): what holds a queued rollout
    /// and what lifts it, for the queue warning. Cadence and stale data never queue.
    queue: Option<(String, &'static str)>,
}

/// What the budgets say about one Deployment.
struct BudgetView<'a> {
    /// Why the data cannot be trusted (stale or unknown); `None` = fresh and known.
    untrusted: Option<String>,
    /// The team has no objectives in the tier (and none select the Deployment).
    no_objectives: bool,
    /// The stricter of the team's and every selecting SLO's remaining budget.
    remaining: Option<f64>,
    /// Who holds that remaining budget: `team payments` or `SLO shop/checkout-availability`.
    limiting: String,
    limiting_assessment: Option<&'a Assessment>,
    /// A page alert firing on the team or a selecting SLO: who, which alert, its burn.
    paging: Option<(String, &'a Assessment)>,
    platform: Option<&'a Assessment>,
}

impl BudgetView<'_> {
    /// The freeze in force, if any: exhaustion, page burn or platform freeze.
    fn freeze(&self, tier: &Tier, policy: &Policy) -> Option<Refusal> {
        self.freeze_with(tier, policy, self.remaining)
    }

    /// Only what is known freezes: stale data leaves nothing known, an Unknown member
    /// leaves the others' exhaustion and page burn in force.
    fn freeze_with(&self, tier: &Tier, policy: &Policy, remaining: Option<f64>) -> Option<Refusal> {
        // A team without objectives has no budget of its own to exhaust, but the platform
        // freeze still covers it: it freezes every team of the tier.
        if let Some(remaining) =
            remaining.filter(|r| !self.no_objectives && tier.band_for(*r) == BandLookup::Exhausted)
        {
            let burn = self
                .limiting_assessment
                .map(text::burns)
                .unwrap_or_default();
            let lacking = match self.limiting_assessment.map_or(0, |a| a.lacking) {
                0 => String::new(),
                1 => "; 1 SLO without data is not counted".to_owned(),
                n => format!("; {n} SLOs without data are not counted"),
            };
            return Some(Refusal {
                reason: Reason::Exhausted,
                long: format!(
                    "the error budget is exhausted: {} has {} remaining{burn}{lacking}",
                    self.limiting,
                    pct(remaining)
                ),
                short: format!("budget exhausted, {} left", pct(remaining)),
                queue: Some((
                    format!("{} has {} budget left", self.limiting, pct(remaining)),
                    "it recovers",
                )),
            });
        }
        let left = remaining.map_or_else(String::new, |r| {
            format!("; {} has {} remaining", self.limiting, pct(r))
        });
        if tier.freeze_on_page_burn
            && let Some((who, a)) = &self.paging
        {
            return Some(Refusal {
                reason: Reason::Burning,
                long: format!(
                    "{who} is burning its error budget at page level ({} firing{}{left}), and the tier freezes on page burn",
                    text::firing(a),
                    text::burn_list(a, tier)
                ),
                short: format!("{who} burning ({})", text::firing(a)),
                queue: Some((
                    format!("{who} burns at page level ({})", text::firing(a)),
                    "it stops",
                )),
            });
        }
        if policy.platform_freeze
            && let Some(r) = self
                .platform
                .and_then(|p| p.remaining)
                .filter(|r| tier.band_for(*r) == BandLookup::Exhausted)
        {
            return Some(Refusal {
                reason: Reason::PlatformFreeze,
                long: format!(
                    "the platform budget of tier {} is exhausted ({} remaining{left}), and platformFreeze is on",
                    tier.name,
                    pct(r)
                ),
                short: format!("platform {} budget exhausted", tier.name),
                queue: Some((
                    format!("platform {} budget exhausted", tier.name),
                    "it recovers",
                )),
            });
        }
        None
    }
}

impl Context<'_> {
    fn budget_view(&self) -> BudgetView<'_> {
        let budgets = &self.index.budgets;
        let team_key = (self.team.to_owned(), self.tier.name.clone());
        let team = budgets.teams.get(&team_key);
        // Keys sort by namespace first: the namespace's SLOs are one contiguous range.
        let selecting: Vec<&ObjectKey> = self
            .index
            .slos
            .range(ObjectKey::new(&self.key.namespace, "")..)
            .take_while(|(k, _)| k.namespace == self.key.namespace)
            .filter(|(_, spec)| {
                spec.deployment_selector.as_ref().is_none_or(|s| {
                    selector::matches(s, self.labels)
                        || self.old_labels.is_some_and(|old| selector::matches(s, old))
                })
            })
            .map(|(k, _)| k)
            .collect();
        let mut view = BudgetView {
            untrusted: None,
            no_objectives: false,
            remaining: None,
            limiting: format!("team {}", self.team),
            limiting_assessment: None,
            paging: None,
            platform: budgets.platform.get(&self.tier.name),
        };
        let Some(evaluated_at) = budgets.evaluated_at else {
            view.untrusted = Some("no budget data has been loaded".into());
            view.platform = None;
            return view;
        };
        let age = self.now.duration_since(evaluated_at);
        if age > self.tier.stale_after.signed() {
            view.untrusted = Some(format!(
                "budget data is stale (evaluated at {evaluated_at}, older than staleAfter {})",
                self.tier.stale_after
            ));
            // Stale data is known of nothing, the platform's included.
            view.platform = None;
            return view;
        }
        if team.is_none() && selecting.is_empty() {
            view.no_objectives = true;
            return view;
        }
        let mut members: Vec<(String, Option<&Assessment>)> =
            vec![(format!("team {}", self.team), team)];
        members.extend(
            selecting
                .into_iter()
                .map(|k| (format!("SLO {k}"), budgets.slos.get(k))),
        );
        // Every member with a known remaining budget counts, whatever else is missing: an
        // Unknown member sends the change to onStale, but never hides a known exhaustion or
        // page burn of another (DESIGN §6 step 4).
        for (who, assessment) in members {
            let known = assessment.filter(|a| a.state != crate::api::BudgetState::Unknown);
            if known.is_none() && view.untrusted.is_none() {
                view.untrusted = Some(format!("the budget of {who} is unknown (metrics missing)"));
            }
            let Some(a) = assessment else {
                continue;
            };
            if let Some(r) = a.remaining
                && view.remaining.is_none_or(|min| r < min)
            {
                view.remaining = Some(r);
                view.limiting = who.clone();
                view.limiting_assessment = Some(a);
            }
            if a.paging && view.paging.is_none() {
                view.paging = Some((who, a));
            }
        }
        view
    }

    /// Steps 3–7 for a gated change. Returns the canary plan when one applies.
    fn gate(
        &self,
        d: &mut Decision,
        view: &BudgetView,
        progressive: bool,
        revision: &str,
    ) -> Option<Canary> {
        let (override_, offset) = self.active_exceptions(d);
        let band_plan = |remaining: Option<f64>| -> (String, Plan) {
            let band = match remaining.map(|r| self.tier.band_for(r)) {
                Some(BandLookup::Band(_, b)) => b,
                _ => self.tier.most_cautious_band(),
            };
            (band.name.clone(), band.plan.clone())
        };
        let canary = |band: (String, Plan)| {
            progressive.then(|| Canary {
                band: band.0,
                plan: band.1,
                revision: revision.to_owned(),
            })
        };
        // 3. An approved override beats stale data and an empty budget.
        if let Some((name, spec)) = override_ {
            d.reason = Reason::Exception;
            d.exception = Some(name.clone());
            d.warnings.push(short(format!(
                "budgetgate: exception {name} (approved by {}) lets this through until {}",
                spec.approved_by, spec.expires_at.0
            )));
            let remaining = view.remaining.filter(|_| view.untrusted.is_none());
            d.remaining = remaining;
            let band = band_plan(remaining);
            d.band = Some(band.0.clone());
            return canary(band);
        }
        // 4. Data we cannot trust: onStale decides, unless what is known already freezes
        // (step 5 then denies, saying what is missing).
        let extra = offset
            .as_ref()
            .map_or(0.0, |(_, spec)| spec.extra_budget.unwrap_or_default());
        let known_freeze = view.untrusted.is_some()
            && !view.no_objectives
            && view
                .freeze_with(self.tier, self.policy, view.remaining.map(|r| r + extra))
                .is_some();
        if let Some(why) = view.untrusted.as_ref().filter(|_| !known_freeze) {
            d.reason = Reason::Stale;
            match self.tier.on_stale {
                OnStale::Allow => {
                    d.warnings.push(short(format!(
                        "budgetgate: budget of team {} unknown or stale; allowed by onStale=allow",
                        self.team
                    )));
                    let band = band_plan(None);
                    d.band = Some(band.0.clone());
                    return canary(band);
                }
                OnStale::Deny => {
                    self.refuse(d, Refusal {
                        reason: Reason::Stale,
                        long: format!("budget data cannot be trusted: {why}, and the tier's onStale is deny"),
                        short: "budget data stale or unknown (onStale=deny)".into(),
                        queue: None,
                    });
                    return None;
                }
            }
        }
        if view.no_objectives {
            if let Some(refusal) = view.freeze_with(self.tier, self.policy, None) {
                self.refuse(d, refusal);
                return None;
            }
            d.reason = Reason::NoObjectives;
            d.warnings.push(short(format!(
                "budgetgate: team {} has no ServiceLevelObjective in tier {}; not gated",
                self.team, self.tier.name
            )));
            let first = &self.tier.bands[0];
            d.band = Some(first.name.clone());
            return canary((first.name.clone(), first.plan.clone()));
        }
        // 5. Remaining budget, with any offset exception.
        let mut remaining = view.remaining;
        if let Some((name, spec)) = offset {
            let extra = spec.extra_budget.unwrap_or_default();
            remaining = remaining.map(|r| r + extra);
            d.exception = Some(name.clone());
            d.warnings.push(short(format!(
                "budgetgate: exception {name} (approved by {}) adds {} budget until {}",
                spec.approved_by,
                pct(extra),
                spec.expires_at.0
            )));
        }
        d.remaining = remaining;
        if let Some(mut refusal) = view.freeze_with(self.tier, self.policy, remaining) {
            if let Some(why) = &view.untrusted {
                refusal.long = format!("{}; {why}, which does not lift the freeze", refusal.long);
            }
            self.refuse(d, refusal);
            return None;
        }
        let Some((r, BandLookup::Band(_, band))) = remaining.map(|r| (r, self.tier.band_for(r)))
        else {
            return None;
        };
        d.band = Some(band.name.clone());
        // 6. Cadence.
        if let Some(refusal) = self.cadence(band, r) {
            self.refuse(d, refusal);
            return None;
        }
        // 7. Allowed.
        d.reason = Reason::WithinBudget;
        canary((band.name.clone(), band.plan.clone()))
    }

    fn cadence(&self, band: &crate::api::Band, remaining: f64) -> Option<Refusal> {
        let releases: Vec<_> = self
            .index
            .team_releases(self.team, &self.tier.name)
            .collect();
        if let Some(max) = band.max_concurrent_rollouts {
            let in_flight = releases
                .iter()
                .filter(|(k, r)| {
                    r.phase == Some(ReleasePhase::Progressing)
                        && !(k.namespace == self.key.namespace && r.deployment == self.key.name)
                })
                .count();
            if in_flight >= max as usize {
                return Some(Refusal {
                    reason: Reason::Concurrency,
                    long: format!(
                        "team {} already has {in_flight} rollouts in flight in tier {}, and band {} ({} budget remaining) allows {max} at a time; retry when one of them finishes",
                        self.team,
                        self.tier.name,
                        band.name,
                        pct(remaining)
                    ),
                    short: format!(
                        "{in_flight} rollouts in flight, band {} allows {max}",
                        band.name
                    ),
                    queue: None,
                });
            }
        }
        if let Some(min_interval) = &band.min_interval {
            let newest = releases
                .iter()
                .filter_map(|(k, r)| Some((r.created?, *k)))
                .max_by_key(|(t, _)| *t);
            if let Some((created, release)) = newest {
                let retry = created
                    .saturating_add(min_interval.signed())
                    .unwrap_or(created);
                if retry > self.now {
                    return Some(Refusal {
                        reason: Reason::MinInterval,
                        long: format!(
                            "the last release of team {}, {release}, started at {created}, and band {} ({} budget remaining) allows one release per {min_interval}; retry after {retry}",
                            self.team,
                            band.name,
                            pct(remaining)
                        ),
                        short: format!(
                            "band {} allows one release per {min_interval}; retry after {retry}",
                            band.name
                        ),
                        queue: None,
                    });
                }
            }
        }
        None
    }

    fn refuse(&self, d: &mut Decision, refusal: Refusal) {
        if let Some((holds, lifts)) = &refusal.queue
            && self.queueable
            && self.tier.on_exhausted == OnExhausted::Queue
        {
            d.reason = refusal.reason;
            d.queued = true;
            d.warnings.push(short(format!(
                "budgetgate: queued: {holds}; starts when {lifts} or an exception is approved"
            )));
            return;
        }
        d.reason = refusal.reason;
        d.would_deny = true;
        d.refusal = Some(refusal.long.clone());
        let what = match d.class {
            Some(ChangeClass::Create) => "creation",
            _ => "rollout",
        };
        d.message = Some(text::denial(
            what,
            self.key,
            self.team,
            &self.tier.name,
            &refusal.long,
        ));
        if d.mode == Enforcement::Warn {
            d.warnings.push(short(format!(
                "budgetgate (warn mode) would deny {}: {}",
                self.key, refusal.short
            )));
        }
    }

    /// The active exceptions matching the Deployment (before and after the change): the
    /// first override and the largest offset, by name. Expired ones, ones that do not match, and ones whose `maxRollouts`
    /// are used up are skipped (the last with a warning).
    fn active_exceptions(&self, d: &mut Decision) -> (ActiveException<'_>, ActiveException<'_>) {
        let mut override_ = None;
        let mut offset: ActiveException<'_> = None;
        for (k, spec) in &self.index.exceptions {
            if k.namespace != self.key.namespace
                || spec.expires_at.0 <= self.now
                || spec.reason.trim().is_empty()
                || spec.approved_by.trim().is_empty()
                || !selector::matches(&spec.selector, self.labels)
                || self
                    .old_labels
                    .is_some_and(|old| !selector::matches(&spec.selector, old))
            {
                continue;
            }
            if let Some(max) = spec.max_rollouts {
                let used = self
                    .index
                    .releases
                    .iter()
                    .filter(|(rk, r)| {
                        rk.namespace == k.namespace && r.exception.as_deref() == Some(&k.name)
                    })
                    .count();
                if used >= max as usize {
                    d.warnings.push(short(format!(
                        "budgetgate: exception {} has used all {max} of its rollouts",
                        k.name
                    )));
                    continue;
                }
            }
            match spec.kind {
                ExceptionKind::Override if override_.is_none() => {
                    override_ = Some((k.name.clone(), spec))
                }
                ExceptionKind::Offset
                    if offset
                        .as_ref()
                        .is_none_or(|(_, o)| spec.extra_budget > o.extra_budget) =>
                {
                    offset = Some((k.name.clone(), spec))
                }
                _ => {}
            }
        }
        (override_, offset)
    }
}

#[cfg(test)]
mod tests;
