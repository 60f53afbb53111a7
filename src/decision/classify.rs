//! What kind of change a Deployment write is, and the one template hash (DESIGN §6 step 2,
//! Appendix A "Revision hash").

use crate::api::keys;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeClass {
    /// A new Deployment.
    Create,
    /// The pod template changed to something not served before.
    Rollout,
    /// The pod template went back to one a ReplicaSet of the Deployment has, or one in
    /// its `history`.
    Rollback,
    /// Only `spec.replicas` changed.
    Scale,
    /// Anything else that leaves the pod template alone.
    Metadata,
}

impl ChangeClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeClass::Create => "create",
            ChangeClass::Rollout => "rollout",
            ChangeClass::Rollback => "rollback",
            ChangeClass::Scale => "scale",
            ChangeClass::Metadata => "metadata",
        }
    }

    /// Only these spend budget and go through the budget rules.
    pub fn is_gated(self) -> bool {
        matches!(self, ChangeClass::Create | ChangeClass::Rollout)
    }
}

/// `spec.template` without the `pod-template-hash` label (ReplicaSets carry it,
/// Deployments do not).
pub fn comparable_template(workload: &Value) -> Value {
    let mut template = workload
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(keys::POD_TEMPLATE_HASH);
    }
    template
}

/// First 10 hex digits of the SHA-256 of the template serialized with keys sorted
/// recursively, no whitespace, UTF-8 unescaped.
pub fn revision_hash(template: &Value) -> String {
    let canonical = serde_json::to_string(&sorted(template)).unwrap_or_default();
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

/// The revision hash of a Deployment's or ReplicaSet's pod template.
pub fn workload_revision(workload: &Value) -> String {
    revision_hash(&comparable_template(workload))
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Revision hashes in a Deployment's `budgetgate.dev/history` annotation.
pub fn history(workload: &Value) -> Vec<String> {
    annotation(workload, keys::HISTORY)
        .map(|h| {
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub fn annotation<'a>(workload: &'a Value, key: &str) -> Option<&'a str> {
    workload
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Classifies a write. `old` is `None` on CREATE; `served` holds the revisions of the
/// ReplicaSets the Deployment owns.
pub fn classify(old: Option<&Value>, new: &Value, served: &BTreeSet<String>) -> ChangeClass {
    let Some(old) = old else {
        return ChangeClass::Create;
    };
    let new_template = comparable_template(new);
    if comparable_template(old) != new_template {
        let revision = revision_hash(&new_template);
        if served.contains(&revision) || history(old).contains(&revision) {
            return ChangeClass::Rollback;
        }
        return ChangeClass::Rollout;
    }
    let spec_without = |w: &Value, field: &str| {
        let mut spec = w.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            map.remove("template");
            map.remove(field);
        }
        spec
    };
    let replicas_changed = old.pointer("/spec/replicas") != new.pointer("/spec/replicas");
    if replicas_changed && spec_without(old, "replicas") == spec_without(new, "replicas") {
        ChangeClass::Scale
    } else {
        ChangeClass::Metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, replicas: u32) -> Value {
        json!({
            "metadata": {"name": "checkout", "labels": {"app": "checkout"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "checkout"}},
                "template": {
                    "metadata": {"labels": {"app": "checkout"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}
                }
            }
        })
    }

    #[test]
    fn revision_hash_is_pinned() {
        // sha256 of {"metadata":{"labels":{"app":"checkout"}},"spec":{"containers":[{"image":"shop/checkout:v2","name":"app"}]}}
        let d = deployment("shop/checkout:v2", 3);
        assert_eq!(workload_revision(&d), "abe6038a51");
    }

    #[test]
    fn revision_hash_ignores_key_order_and_pod_template_hash() {
        let a = json!({"spec": {"template": {"spec": {"b": 1, "a": "é"}, "metadata": {"labels": {"x": "1"}}}}});
        let b = json!({"spec": {"template": {"metadata": {"labels": {"pod-template-hash": "abc", "x": "1"}}, "spec": {"a": "é", "b": 1}}}});
        assert_eq!(workload_revision(&a), workload_revision(&b));
        assert_eq!(workload_revision(&a).len(), 10);
    }

    #[test]
    fn image_change_is_a_rollout() {
        let class = classify(
            Some(&deployment("v1", 3)),
            &deployment("v2", 3),
            &BTreeSet::new(),
        );
        assert_eq!(class, ChangeClass::Rollout);
    }

    #[test]
    fn going_back_to_an_owned_replica_set_template_is_a_rollback() {
        let served = BTreeSet::from([workload_revision(&deployment("v1", 3))]);
        let class = classify(Some(&deployment("v2", 3)), &deployment("v1", 3), &served);
        assert_eq!(class, ChangeClass::Rollback);
    }

    #[test]
    fn going_back_to_a_revision_in_history_is_a_rollback() {
        let mut old = deployment("v2", 3);
        old["metadata"]["annotations"] = json!({
            keys::HISTORY: format!("aaaaaaaaaa, {}", workload_revision(&deployment("v1", 3)))
        });
        let class = classify(Some(&old), &deployment("v1", 3), &BTreeSet::new());
        assert_eq!(class, ChangeClass::Rollback);
    }

    #[test]
    fn replicas_only_is_scale_and_other_spec_changes_are_metadata() {
        let none = BTreeSet::new();
        assert_eq!(
            classify(Some(&deployment("v1", 3)), &deployment("v1", 5), &none),
            ChangeClass::Scale
        );
        let mut labelled = deployment("v1", 3);
        labelled["metadata"]["labels"]["owner"] = json!("x");
        assert_eq!(
            classify(Some(&deployment("v1", 3)), &labelled, &none),
            ChangeClass::Metadata
        );
        let mut strategy = deployment("v1", 5);
        strategy["spec"]["minReadySeconds"] = json!(10);
        assert_eq!(
            classify(Some(&deployment("v1", 3)), &strategy, &none),
            ChangeClass::Metadata
        );
    }

    #[test]
    fn create_is_create() {
        assert_eq!(
            classify(None, &deployment("v1", 3), &BTreeSet::new()),
            ChangeClass::Create
        );
    }
}
