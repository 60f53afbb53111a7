//! The mutating webhook's JSON patch: restore system annotations someone else changed, and
//! write a canary plan (DESIGN §3, §7.1).

use super::{Canary, QueueOp};
use crate::api::keys;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use serde_json::{Map, Value};

/// The JSON pointer of an annotation (RFC 6901 escapes `~` and `/`).
fn pointer(key: &str) -> String {
    let mut out = String::with_capacity(24 + key.len());
    out.push_str("/metadata/annotations/");
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

fn annotations(workload: &Value) -> Option<&Map<String, Value>> {
    workload
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
}

/// Builds the patch for a change by `requester`. Every system annotation goes back to its
/// value on `old` (absent on CREATE), except `action-by`: it names `requester` when the
/// change sets or changes `action`, and goes when `action` goes. `canary` pauses the Deployment and writes the plan's annotations;
/// `ran` pushes a revision onto `history` (a restart: the revision it restarts ran, so
/// the ledger records no release for it and going back to it is a rollback). `queue`
/// enters, keeps or ends a place in the team's queue (DESIGN §7.10).
pub fn build(
    old: Option<&Value>,
    new: &Value,
    requester: &str,
    canary: Option<&Canary>,
    ran: Option<&str>,
    queue: QueueOp,
) -> Patch {
    let original = annotations(new);
    let mut desired = original.cloned().unwrap_or_default();
    let before = old.and_then(annotations);
    for key in keys::SYSTEM_ANNOTATIONS {
        match before.and_then(|a| a.get(key)) {
            Some(value) => desired.insert(key.to_owned(), value.clone()),
            None => desired.remove(key),
        };
    }
    match action(original) {
        None => {
            desired.remove(keys::ACTION_BY);
        }
        Some(set) if action(before) != Some(set) => {
            desired.insert(
                keys::ACTION_BY.to_owned(),
                Value::String(requester.to_owned()),
            );
        }
        Some(_) => {}
    }
    if let Some(revision) = ran {
        let history = desired
            .get(keys::HISTORY)
            .and_then(Value::as_str)
            .map(super::parse_history)
            .unwrap_or_default();
        desired.insert(
            keys::HISTORY.to_owned(),
            Value::String(crate::rollout::ledger::push_history(&history, revision)),
        );
    }
    let mut ops = Vec::new();
    // A running canary, or a queued rollout, keeps the Deployment paused: un-pausing it
    // would skip the canary or the queue.
    let held = |key: &str| {
        old.is_some_and(|o| {
            o.pointer("/spec/paused") == Some(&Value::Bool(true))
                && o.pointer("/metadata/annotations")
                    .and_then(|a| a.get(key))
                    .is_some()
        })
    };
    let mut paused = None;
    if canary.is_none()
        && (held(keys::STAGE) || (held(keys::QUEUED_SINCE) && queue == QueueOp::Keep))
    {
        paused = Some(true);
    }
    match queue {
        QueueOp::Keep => {}
        QueueOp::Enter(now) => {
            // A Deployment already queued keeps its place: the restored annotation stays.
            if !desired.contains_key(keys::QUEUED_SINCE) {
                desired.insert(
                    keys::QUEUED_SINCE.to_owned(),
                    // Whole seconds, cut (not rounded): never later than the admission.
                    Value::String(
                        crate::api::Timestamp::from_second(now.as_second())
                            .unwrap_or(now)
                            .to_string(),
                    ),
                );
            }
            paused = Some(true);
        }
        QueueOp::Leave => {
            desired.remove(keys::QUEUED_SINCE);
            if canary.is_none() {
                paused = Some(false);
            }
        }
    }
    if let Some(c) = canary {
        for (key, value) in [
            (keys::REVISION, c.revision.clone()),
            (keys::PLAN, c.plan.steps_annotation()),
            (keys::PAUSE, c.plan.pause.as_str().to_owned()),
            (keys::BAND, c.band.clone()),
            (keys::STAGE, "0".to_owned()),
        ] {
            desired.insert(key.to_owned(), Value::String(value));
        }
        desired.remove(keys::STAGE_STARTED_AT);
        desired.remove(keys::ROLLED_BACK_REVISION);
        desired.remove(keys::QUEUED_SINCE);
        paused = Some(true);
    }
    match paused {
        Some(true) if new.pointer("/spec/paused") != Some(&Value::Bool(true)) => {
            ops.push(pause(new, true))
        }
        Some(false) if new.pointer("/spec/paused") == Some(&Value::Bool(true)) => {
            ops.push(pause(new, false))
        }
        _ => {}
    }
    match original {
        // An object without metadata (no apiserver sends one, a review may) gets it whole.
        None if !desired.is_empty() && !new.get("metadata").is_some_and(Value::is_object) => {
            let metadata = serde_json::json!({ "annotations": desired });
            ops.push(add("/metadata".into(), metadata));
        }
        None if !desired.is_empty() => {
            ops.push(add("/metadata/annotations".into(), Value::Object(desired)));
        }
        None => {}
        Some(original) => {
            for key in keys::SYSTEM_ANNOTATIONS {
                match (original.get(key), desired.get(key)) {
                    (before, Some(after)) if before != Some(after) => {
                        ops.push(add(pointer(key), after.clone()));
                    }
                    (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation {
                        path: pointer(key).parse().unwrap_or_default(),
                    })),
                    _ => {}
                }
            }
        }
    }
    Patch(ops)
}

fn action(annotations: Option<&Map<String, Value>>) -> Option<&Value> {
    annotations?.get(keys::ACTION)
}

/// Only the operations on annotations: where budgetgate gates nothing (unmanaged
/// namespaces, the status subresource) it guards its annotations and leaves the pause alone.
pub fn annotations_only(patch: Patch) -> Patch {
    Patch(
        patch
            .0
            .into_iter()
            .filter(|op| op.path().to_string().starts_with("/metadata"))
            .collect(),
    )
}

/// `spec.paused`, with the spec itself when the object has none.
fn pause(new: &Value, paused: bool) -> PatchOperation {
    if new.get("spec").is_some_and(Value::is_object) {
        add("/spec/paused".into(), Value::Bool(paused))
    } else {
        add("/spec".into(), serde_json::json!({ "paused": paused }))
    }
}

fn add(path: String, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        // Paths are built from fixed keys above and always parse.
        path: path.parse().unwrap_or_default(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Duration, Plan};
    use serde_json::json;

    fn canary() -> Canary {
        Canary {
            band: "caution".into(),
            plan: Plan {
                steps: vec![10, 25, 50, 100],
                pause: Duration::parse("5m").unwrap(),
            },
            revision: "abe6038a51".into(),
        }
    }

    #[test]
    fn annotation_pointers_escape_tilde_and_slash() {
        assert_eq!(
            pointer("budgetgate.dev/stage"),
            "/metadata/annotations/budgetgate.dev~1stage"
        );
        assert_eq!(pointer("a~b/c~1"), "/metadata/annotations/a~0b~1c~01");
    }

    #[test]
    fn plan_on_a_deployment_without_annotations_adds_the_map() {
        let new = json!({"metadata": {"name": "x"}, "spec": {}});
        let patch = build(None, &new, "alice", Some(&canary()), None, QueueOp::Keep);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "add", "path": "/spec/paused", "value": true},
                {"op": "add", "path": "/metadata/annotations", "value": {
                    "budgetgate.dev/band": "caution",
                    "budgetgate.dev/pause": "5m",
                    "budgetgate.dev/plan": "10,25,50,100",
                    "budgetgate.dev/revision": "abe6038a51",
                    "budgetgate.dev/stage": "0"
                }}
            ])
        );
    }

    #[test]
    fn an_object_without_metadata_or_spec_gets_them_whole() {
        let patch = build(
            None,
            &json!({"kind": "Deployment"}),
            "alice",
            Some(&canary()),
            None,
            QueueOp::Keep,
        );
        let mut object = json!({"kind": "Deployment"});
        json_patch::patch(&mut object, &patch).unwrap();
        assert_eq!(object["spec"], json!({"paused": true}));
        assert_eq!(
            object["metadata"]["annotations"]["budgetgate.dev/stage"],
            "0"
        );
        // The annotation-only patch keeps the metadata's.
        assert_eq!(
            serde_json::to_value(annotations_only(patch)).unwrap()[0]["path"],
            "/metadata"
        );
    }

    #[test]
    fn forged_system_annotations_are_put_back() {
        let old = json!({"metadata": {"annotations": {"budgetgate.dev/history": "aaaaaaaaaa"}}});
        let new = json!({"metadata": {"annotations": {
            "budgetgate.dev/history": "bbbbbbbbbb",
            "budgetgate.dev/stage": "4",
            "team/note": "kept"
        }}});
        let patch = build(Some(&old), &new, "alice", None, None, QueueOp::Keep);
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "remove", "path": "/metadata/annotations/budgetgate.dev~1stage"},
                {"op": "add", "path": "/metadata/annotations/budgetgate.dev~1history", "value": "aaaaaaaaaa"}
            ])
        );
    }

    #[test]
    fn unpausing_a_running_canary_is_reverted() {
        let old = json!({"metadata": {"annotations": {"budgetgate.dev/stage": "1"}}, "spec": {"paused": true}});
        let new = json!({"metadata": {"annotations": {"budgetgate.dev/stage": "1"}}, "spec": {"paused": false}});
        assert_eq!(
            serde_json::to_value(build(Some(&old), &new, "alice", None, None, QueueOp::Keep))
                .unwrap(),
            json!([{"op": "add", "path": "/spec/paused", "value": true}])
        );
        // Without a canary in progress, pausing is the user's business.
        let old = json!({"metadata": {}, "spec": {"paused": true}});
        let new = json!({"metadata": {}, "spec": {"paused": false}});
        assert!(
            build(Some(&old), &new, "alice", None, None, QueueOp::Keep)
                .0
                .is_empty()
        );
    }

    #[test]
    fn the_requester_of_an_action_is_stamped_and_cannot_be_forged() {
        let stamp = |old: Value, new: Value| {
            serde_json::to_value(build(Some(&old), &new, "alice", None, None, QueueOp::Keep))
                .unwrap()
        };
        let annotated = |pairs: &[(&str, &str)]| {
            let map: Map<String, Value> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect();
            json!({"metadata": {"annotations": map}})
        };
        let by = "/metadata/annotations/budgetgate.dev~1action-by";
        // Setting the action names the requester, whatever they wrote themselves.
        assert_eq!(
            stamp(
                annotated(&[]),
                annotated(&[
                    ("budgetgate.dev/action", "promote"),
                    ("budgetgate.dev/action-by", "bob")
                ])
            ),
            json!([{"op": "add", "path": by, "value": "alice"}])
        );
        // Changing it from resume to abort names the new requester.
        assert_eq!(
            stamp(
                annotated(&[
                    ("budgetgate.dev/action", "resume"),
                    ("budgetgate.dev/action-by", "bob")
                ]),
                annotated(&[
                    ("budgetgate.dev/action", "abort"),
                    ("budgetgate.dev/action-by", "bob")
                ])
            ),
            json!([{"op": "add", "path": by, "value": "alice"}])
        );
        // Any other change keeps who asked, and a forged name is put back.
        let pending = annotated(&[
            ("budgetgate.dev/action", "resume"),
            ("budgetgate.dev/action-by", "bob"),
        ]);
        assert_eq!(stamp(pending.clone(), pending.clone()), json!([]));
        assert_eq!(
            stamp(
                pending.clone(),
                annotated(&[
                    ("budgetgate.dev/action", "resume"),
                    ("budgetgate.dev/action-by", "alice")
                ])
            ),
            json!([{"op": "add", "path": by, "value": "bob"}])
        );
        // Without an action there is no one to name.
        assert_eq!(
            stamp(pending, annotated(&[("budgetgate.dev/action-by", "bob")])),
            json!([{"op": "remove", "path": by}])
        );
        assert_eq!(
            stamp(
                annotated(&[]),
                annotated(&[("budgetgate.dev/action-by", "carol")])
            ),
            json!([{"op": "remove", "path": by}])
        );
    }

    #[test]
    fn nothing_to_change_is_an_empty_patch() {
        let d = json!({"metadata": {"annotations": {"budgetgate.dev/history": "a"}}});
        assert!(
            build(Some(&d), &d, "alice", None, None, QueueOp::Keep)
                .0
                .is_empty()
        );
    }
}
