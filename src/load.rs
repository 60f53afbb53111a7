//! File mode (DESIGN §1): `--policy PATH` (a YAML file, or a directory of them, each
//! possibly multi-document) and `--budgets FILE` (a BudgetSnapshot) into an [`Index`].
//!
//! Errors name the file, the document and the field path. This module reads files; the
//! checks it applies are the pure ones of `policy`, `api` and `snapshot`.

use crate::api::{
    BudgetException, Release, ReliabilityPolicy, ServiceLevelObjective, TeamBudget, Timestamp,
};
use crate::decision::workload_revision;
use crate::index::{self, Index, NamespaceMeta, ObjectKey, ReleaseEntry};
use crate::policy::Policy;
use crate::snapshot::{self, BudgetSnapshot};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based document number in a multi-document YAML file.
    pub document: Option<usize>,
    /// `Kind namespace/name` of the object, when known.
    pub object: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(doc) = self.document {
            write!(f, ": document {doc}")?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl LoadError {
    fn file(file: &Path, message: impl Into<String>) -> Self {
        LoadError {
            file: file.to_owned(),
            document: None,
            object: None,
            message: message.into(),
        }
    }
}

/// What file loading noticed but did not refuse (ignored kinds, unused files).
pub type Notes = Vec<String>;

/// The YAML files `path` names: itself, or the `.yaml`/`.yml` files directly in it,
/// sorted by name (like `kubectl apply -f DIR`, not recursive).
pub fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError::file(path, e.to_string()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| LoadError::file(path, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LoadError::file(
            path,
            "no .yaml or .yml files in this directory",
        ));
    }
    Ok(files)
}

/// The documents of one YAML file as JSON values (empty documents skipped, `List`s
/// flattened), each with its 1-based document number.
pub fn documents(file: &Path) -> Result<Vec<(usize, Value)>, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|e| LoadError::file(file, e.to_string()))?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let number = i + 1;
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| LoadError {
            file: file.to_owned(),
            document: Some(number),
            object: None,
            message: format!("invalid YAML: {e}"),
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in map
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push((number, item.clone()));
                }
            }
            value => out.push((number, value)),
        }
    }
    Ok(out)
}

/// Deserializes a document into a typed object; the error names the field path.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

fn describe(value: &Value) -> String {
    let field = |p: &str| value.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (kind, ns, name) = (
        field("/kind"),
        field("/metadata/namespace"),
        field("/metadata/name"),
    );
    match (ns, name) {
        ("", "") => kind.to_owned(),
        ("", name) => format!("{kind} {name}"),
        (ns, name) => format!("{kind} {ns}/{name}"),
    }
}

/// Loads `--policy PATH` into an index without budgets.
pub fn load_policy(path: &Path) -> Result<(Index, Notes), LoadError> {
    let mut index = Index::default();
    let mut notes = Notes::new();
    let mut replica_sets: Vec<(ObjectKey, String, Option<crate::api::Timestamp>)> = Vec::new();
    let mut policy_file: Option<PathBuf> = None;
    for file in yaml_files(path)? {
        for (number, value) in documents(&file)? {
            let fail = |message: String| LoadError {
                file: file.clone(),
                document: Some(number),
                object: Some(describe(&value)).filter(|d| !d.is_empty()),
                message,
            };
            let api_version = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
            if api_version.is_empty() || kind.is_empty() {
                return Err(fail(
                    "not a Kubernetes object: apiVersion and kind are required".into(),
                ));
            }
            let name = value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                return Err(fail("metadata.name: required".into()));
            }
            let namespaced_key = || -> Result<ObjectKey, LoadError> {
                match value.pointer("/metadata/namespace").and_then(Value::as_str) {
                    Some(ns) if !ns.is_empty() => Ok(ObjectKey::new(ns, name)),
                    _ => Err(fail(format!(
                        "metadata.namespace: required for a {kind} in file mode"
                    ))),
                }
            };
            let ours = api_version == format!("{}/{}", crate::api::GROUP, crate::api::VERSION);
            match (ours, api_version, kind) {
                (true, _, "ReliabilityPolicy") => {
                    let object: ReliabilityPolicy = typed(&value).map_err(fail)?;
                    if let Some(first) = &policy_file {
                        return Err(fail(format!(
                            "a second ReliabilityPolicy (the first is in {}); file mode takes one",
                            first.display()
                        )));
                    }
                    let policy =
                        Policy::from_spec(&object.spec).map_err(|e| fail(e.to_string()))?;
                    index.policy = Some(policy);
                    policy_file = Some(file.clone());
                }
                (true, _, "ServiceLevelObjective") => {
                    let object: ServiceLevelObjective = typed(&value).map_err(fail)?;
                    object
                        .spec
                        .indicator
                        .validate()
                        .map_err(|e| fail(format!("spec.indicator: {e}")))?;
                    let objective = object.spec.objective;
                    if !(objective > 0.0 && objective < 100.0) {
                        return Err(fail(format!(
                            "spec.objective: {objective} is not a percentage between 0 and 100 (exclusive)"
                        )));
                    }
                    index.slos.insert(namespaced_key()?, object.spec);
                }
                (true, _, "BudgetException") => {
                    let object: BudgetException = typed(&value).map_err(fail)?;
                    index.exceptions.insert(namespaced_key()?, object.spec);
                }
                (true, _, "Release") => {
                    let object: Release = typed(&value).map_err(fail)?;
                    index
                        .releases
                        .insert(namespaced_key()?, ReleaseEntry::from_release(&object));
                }
                (true, _, "TeamBudget") => {
                    let object: TeamBudget = typed(&value).map_err(fail)?;
                    if let Some(status) = object.status {
                        index.team_budgets.insert(object.spec.team, status);
                    }
                }
                (false, "v1", "Namespace") => {
                    let labels: BTreeMap<String, String> = value
                        .pointer("/metadata/labels")
                        .map(|l| typed(l).map_err(|e| fail(format!("metadata.labels: {e}"))))
                        .transpose()?
                        .unwrap_or_default();
                    index
                        .namespaces
                        .insert(name.to_owned(), NamespaceMeta::from_labels(&labels));
                }
                (false, "apps/v1", "ReplicaSet") => {
                    let key = namespaced_key()?;
                    let owners = value
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Deployment"))
                        .filter_map(|o| o.get("name").and_then(Value::as_str));
                    let revision = workload_revision(&value);
                    let created = value
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .and_then(|t| t.parse().ok());
                    for owner in owners {
                        replica_sets.push((
                            ObjectKey::new(&key.namespace, owner),
                            revision.clone(),
                            created,
                        ));
                    }
                }
                (false, "apps/v1", "Deployment") => {
                    index.deployments.insert(namespaced_key()?, value.clone());
                }
                _ => notes.push(format!(
                    "{}: document {number}: ignored {api_version} {kind} {name}",
                    file.display()
                )),
            }
        }
    }
    if index.policy.is_none() {
        return Err(LoadError::file(
            path,
            "no ReliabilityPolicy found; file mode needs one",
        ));
    }
    // Releases may come after the ReplicaSets in the files: judged once all are read. The
    // files are the platform's record: a ReplicaSet listed without a creation time is taken
    // as older than budgetgate.
    for (owner, revision, created) in replica_sets {
        let since = index::oldest_release(&index.releases, &owner.namespace);
        if created.is_none() || index::predates_management(since, created) {
            index.revisions.entry(owner).or_default().insert(revision);
        }
    }
    Ok((index, notes))
}

/// Reads a BudgetSnapshot file.
pub fn load_snapshot(file: &Path) -> Result<BudgetSnapshot, LoadError> {
    let text = std::fs::read(file).map_err(|e| LoadError::file(file, e.to_string()))?;
    let de = &mut serde_json::Deserializer::from_slice(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        LoadError::file(
            file,
            if path == "." {
                format!("invalid BudgetSnapshot: {inner}")
            } else {
                format!("invalid BudgetSnapshot: {path}: {inner}")
            },
        )
    })
}

/// Evaluates a snapshot's budgets into the index.
pub fn apply_snapshot(
    index: &mut Index,
    snapshot: &BudgetSnapshot,
    file: &Path,
) -> Result<(), LoadError> {
    let signals = snapshot::signals(index, snapshot)
        .map_err(|e| LoadError::file(file, format!("invalid BudgetSnapshot: {e}")))?;
    let Some(policy) = &index.policy else {
        return Err(LoadError::file(
            file,
            "no ReliabilityPolicy to judge the budgets against",
        ));
    };
    index.budgets =
        index::evaluate_budgets(policy, &index.namespaces, &signals, snapshot.evaluated_at);
    Ok(())
}

/// `--policy` and `--budgets` together: the whole file-mode state.
pub fn load_state(policy: &Path, budgets: &Path) -> Result<(Index, Notes), LoadError> {
    let (mut index, notes) = load_policy(policy)?;
    let snapshot = load_snapshot(budgets)?;
    apply_snapshot(&mut index, &snapshot, budgets)?;
    Ok((index, notes))
}

/// Parses `--now`: RFC 3339.
pub fn parse_now(text: &str) -> Result<Timestamp, String> {
    text.parse().map_err(|e| {
        format!("--now {text:?} is not an RFC 3339 time such as 2026-11-29T10:00:00Z: {e}")
    })
}
