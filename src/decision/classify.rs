//! What kind of change a Deployment write is, and the one template hash (DESIGN §6 step 2,
//! Appendix A "Revision hash").

use super::canonical::Depth;
use super::review::Object;
use crate::api::keys;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeClass {
    /// A new Deployment.
    Create,
    /// The pod template changed to something not served before.
    Rollout,
    /// The pod template went back to one the Deployment ran before: in its `history`, an
    /// earlier release, or a ReplicaSet from before budgetgate managed the namespace.
    Rollback,
    /// The pod templates differ only in the `kubectl.kubernetes.io/restartedAt`
    /// annotation (`kubectl rollout restart`): the same pods, started again.
    Restart,
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
            ChangeClass::Restart => "restart",
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
    hash_canonical(template, false)
}

/// The revision hash of a Deployment's or ReplicaSet's pod template (the
/// `pod-template-hash` label left out), streamed without copying the template.
pub fn workload_revision(workload: &Value) -> String {
    hash_canonical(
        workload.pointer("/spec/template").unwrap_or(&Value::Null),
        true,
    )
}

fn hash_canonical(template: &Value, skip_pod_template_hash: bool) -> String {
    let mut hasher = HashWriter(Sha256::new());
    let canonical = Canonical {
        value: template,
        depth: Depth::Template,
        skip_pod_template_hash,
    };
    // Writing JSON values into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut hasher, &canonical);
    short_hex(&hasher.0.finalize())
}

/// The first 10 hex digits of a digest.
pub(super) fn short_hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(10);
    for b in &digest[..5] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Feeds what is written into a SHA-256.
pub(super) struct HashWriter(pub(super) Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes a JSON value with object keys sorted, whatever order the map keeps.
struct Canonical<'a> {
    value: &'a Value,
    depth: Depth,
    skip_pod_template_hash: bool,
}

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let child = |value, depth| Canonical {
            value,
            depth,
            skip_pod_template_hash: self.skip_pod_template_hash,
        };
        match self.value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map
                    .iter()
                    .filter(|(k, _)| {
                        !(self.skip_pod_template_hash
                            && self.depth == Depth::Labels
                            && k.as_str() == keys::POD_TEMPLATE_HASH)
                    })
                    .collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    out.serialize_entry(k, &child(v, self.depth.child(k)))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&child(item, Depth::Other))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Revision hashes in a Deployment's `budgetgate.dev/history` annotation.
pub fn history(workload: &Value) -> Vec<String> {
    annotation(workload, keys::HISTORY)
        .map(parse_history)
        .unwrap_or_default()
}

/// The revisions of a `history` annotation value, newest first.
pub fn parse_history(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn annotation<'a>(workload: &'a Value, key: &str) -> Option<&'a str> {
    workload
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Classifies a write. `old` is `None` on CREATE; `served` holds the revisions the
/// Deployment ran before besides its `history` ([`crate::index::Index::ran_before`]);
/// [`classify_revision`] asks about the one revision only ([`crate::index::Index::has_run`]).
pub fn classify(old: Option<&Object>, new: &Object, served: &BTreeSet<String>) -> ChangeClass {
    classify_revision(old, new, |r| served.contains(r)).0
}

/// [`classify`], with the new template's revision hash when the template changed (it is
/// computed once, and the canary plan needs it too).
pub fn classify_revision(
    old: Option<&Object>,
    new: &Object,
    served: impl Fn(&str) -> bool,
) -> (ChangeClass, Option<String>) {
    let Some(old) = old else {
        return (ChangeClass::Create, None);
    };
    // The same text is the same template; other text may still be (key order, escapes,
    // a `pod-template-hash` label): the canonical forms decide.
    if old.template() != new.template() {
        let new_template = new.canonical_template();
        let same = new.template().is_some()
            && old
                .template()
                .is_some_and(|text| new_template.matches(text));
        if !same {
            let revision = new_template.revision();
            if is_restart(old, new) {
                return (ChangeClass::Restart, Some(revision));
            }
            let class = if served(&revision) || history(old.value()).contains(&revision) {
                ChangeClass::Rollback
            } else {
                ChangeClass::Rollout
            };
            return (class, Some(revision));
        }
    }
    let (old, new) = (old.value(), new.value());
    let replicas_changed = old.pointer("/spec/replicas") != new.pointer("/spec/replicas");
    let (empty, old_spec, new_spec) = (
        serde_json::Map::new(),
        old.get("spec").and_then(Value::as_object),
        new.get("spec").and_then(Value::as_object),
    );
    let (old_spec, new_spec) = (old_spec.unwrap_or(&empty), new_spec.unwrap_or(&empty));
    let only_replicas = old_spec
        .keys()
        .chain(new_spec.keys())
        .filter(|k| !matches!(k.as_str(), "template" | "replicas"))
        .all(|k| old_spec.get(k) == new_spec.get(k));
    let class = if replicas_changed && only_replicas {
        ChangeClass::Scale
    } else {
        ChangeClass::Metadata
    };
    (class, None)
}

/// Whether two different templates are the same once the restart annotation (and the
/// `pod-template-hash` label) are left out, an emptied annotation map counting as none.
fn is_restart(old: &Object, new: &Object) -> bool {
    let without_restart = |object: &Object| -> Option<Value> {
        let mut template: Value = serde_json::from_str(object.template()?).ok()?;
        if let Some(metadata) = template.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove(keys::POD_TEMPLATE_HASH);
            }
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(keys::RESTARTED_AT);
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
        }
        Some(template)
    };
    match (without_restart(old), without_restart(new)) {
        (Some(old), Some(new)) => old == new,
        _ => false,
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

    fn object(image: &str, replicas: u32) -> Object {
        Object::new(deployment(image, replicas))
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
        let class = classify(Some(&object("v1", 3)), &object("v2", 3), &BTreeSet::new());
        assert_eq!(class, ChangeClass::Rollout);
    }

    #[test]
    fn going_back_to_an_owned_replica_set_template_is_a_rollback() {
        let served = BTreeSet::from([workload_revision(&deployment("v1", 3))]);
        let class = classify(Some(&object("v2", 3)), &object("v1", 3), &served);
        assert_eq!(class, ChangeClass::Rollback);
    }

    #[test]
    fn going_back_to_a_revision_in_history_is_a_rollback() {
        let mut old = deployment("v2", 3);
        old["metadata"]["annotations"] = json!({
            keys::HISTORY: format!("aaaaaaaaaa, {}", workload_revision(&deployment("v1", 3)))
        });
        let class = classify(Some(&Object::new(old)), &object("v1", 3), &BTreeSet::new());
        assert_eq!(class, ChangeClass::Rollback);
    }

    #[test]
    fn replicas_only_is_scale_and_other_spec_changes_are_metadata() {
        let none = BTreeSet::new();
        assert_eq!(
            classify(Some(&object("v1", 3)), &object("v1", 5), &none),
            ChangeClass::Scale
        );
        let mut labelled = deployment("v1", 3);
        labelled["metadata"]["labels"]["owner"] = json!("x");
        assert_eq!(
            classify(Some(&object("v1", 3)), &Object::new(labelled), &none),
            ChangeClass::Metadata
        );
        let mut strategy = deployment("v1", 5);
        strategy["spec"]["minReadySeconds"] = json!(10);
        assert_eq!(
            classify(Some(&object("v1", 3)), &Object::new(strategy), &none),
            ChangeClass::Metadata
        );
    }

    #[test]
    fn the_same_template_in_other_text_is_not_a_rollout() {
        let old = object("v1", 3);
        let reordered = r#"{"metadata":{"name":"checkout","labels":{"app":"checkout"}},"spec":{"replicas":5,"selector":{"matchLabels":{"app":"checkout"}},
            "template":{"spec":{"containers":[{"image":"v1","name":"app"}]},"metadata":{"labels":{"pod-template-hash":"7c9f","app":"checkout"}}}}}"#;
        let new: Object = serde_json::from_str(reordered).unwrap();
        assert_ne!(old.template(), new.template());
        assert_eq!(
            classify_revision(Some(&old), &new, |_| false),
            (ChangeClass::Scale, None)
        );
        let changed: Object = serde_json::from_str(&reordered.replace("\"v1\"", "\"v2\"")).unwrap();
        assert_eq!(
            classify_revision(Some(&old), &changed, |_| false),
            (
                ChangeClass::Rollout,
                Some(workload_revision(&deployment("v2", 3)))
            )
        );
    }

    #[test]
    fn restart_annotation_alone_is_a_restart_with_the_new_revision() {
        let mut restarted = deployment("v1", 3);
        restarted["spec"]["template"]["metadata"]["annotations"] =
            json!({keys::RESTARTED_AT: "2026-11-29T09:58:00Z"});
        let revision = workload_revision(&restarted);
        assert_ne!(revision, workload_revision(&deployment("v1", 3)));
        let old = object("v1", 3);
        let new = Object::new(restarted.clone());
        assert_eq!(
            classify_revision(Some(&old), &new, |_| false),
            (ChangeClass::Restart, Some(revision))
        );
        // Restarted again, with a new replica count in the same write.
        let mut again = restarted.clone();
        again["spec"]["replicas"] = json!(5);
        again["spec"]["template"]["metadata"]["annotations"][keys::RESTARTED_AT] =
            json!("2026-11-29T09:59:00Z");
        assert_eq!(
            classify(Some(&new), &Object::new(again), &BTreeSet::new()),
            ChangeClass::Restart
        );
        // A restart annotation riding on an image change is a rollout.
        let mut image = restarted;
        image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("v2");
        assert_eq!(
            classify(Some(&old), &Object::new(image), &BTreeSet::new()),
            ChangeClass::Rollout
        );
        assert_eq!(ChangeClass::Restart.as_str(), "restart");
        assert!(!ChangeClass::Restart.is_gated());
    }

    #[test]
    fn create_is_create() {
        assert_eq!(
            classify(None, &object("v1", 3), &BTreeSet::new()),
            ChangeClass::Create
        );
    }
}
