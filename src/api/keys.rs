//! Every label and annotation key budgetgate reads or writes (DESIGN §3).

/// Namespace label: the owning team. A namespace without it is unmanaged.
pub const TEAM: &str = "budgetgate.dev/team";
/// Namespace label: the tier whose policy applies (default: the policy's `defaultTier`).
pub const TIER: &str = "budgetgate.dev/tier";
/// Namespace label: overrides the tier's enforcement mode.
pub const ENFORCEMENT: &str = "budgetgate.dev/enforcement";
/// Namespace or Deployment label `"true"`: rollouts go through canaries.
pub const PROGRESSIVE: &str = "budgetgate.dev/progressive";
/// Pod label on the canary's pods.
pub const TRACK: &str = "budgetgate.dev/track";

/// Label Kubernetes adds to ReplicaSet templates; ignored when comparing templates.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Pod-template annotation `kubectl rollout restart` sets; a change of it alone is a
/// restart, not a rollout.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

pub const REVISION: &str = "budgetgate.dev/revision";
pub const PLAN: &str = "budgetgate.dev/plan";
pub const PAUSE: &str = "budgetgate.dev/pause";
pub const BAND: &str = "budgetgate.dev/band";
pub const STAGE: &str = "budgetgate.dev/stage";
pub const STAGE_STARTED_AT: &str = "budgetgate.dev/stage-started-at";
pub const HISTORY: &str = "budgetgate.dev/history";
pub const ROLLED_BACK_REVISION: &str = "budgetgate.dev/rolled-back-revision";
/// Deployment annotation a user sets to steer a canary by hand (`promote`, `resume`,
/// `abort`); the controller handles it once and removes it.
pub const ACTION: &str = "budgetgate.dev/action";
/// Who set `action`: the mutating webhook writes the requester's username whenever
/// `action` is set or changed, and removes it with `action`. A system annotation, so no
/// one can name someone else.
pub const ACTION_BY: &str = "budgetgate.dev/action-by";

/// When a rollout was admitted paused into the team's queue (RFC 3339): set by the
/// mutating webhook, removed when the rollout starts or the queue entry ends (DESIGN §7.10).
pub const QUEUED_SINCE: &str = "budgetgate.dev/queued-since";

/// System annotations: written only by budgetgate, restored on anyone else's change.
pub const SYSTEM_ANNOTATIONS: [&str; 10] = [
    REVISION,
    PLAN,
    PAUSE,
    BAND,
    STAGE,
    STAGE_STARTED_AT,
    HISTORY,
    ROLLED_BACK_REVISION,
    ACTION_BY,
    QUEUED_SINCE,
];

/// How many revisions `history` keeps.
pub const HISTORY_LIMIT: usize = 10;
