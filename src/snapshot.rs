//! BudgetSnapshot (DESIGN §5): counts per SLO read at one instant, as a file. Turns them
//! into the signals the budget arithmetic judges. Pure.

use crate::api::{Duration, Timestamp};
use crate::budget::{Counts, Signals, budget_ratio};
use crate::index::{Index, ObjectKey, SloSignals};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetSnapshot {
    pub evaluated_at: Timestamp,
    pub slos: Vec<SnapshotSlo>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotSlo {
    pub namespace: String,
    pub name: String,
    /// Used when no ServiceLevelObjective object of that name is loaded.
    #[serde(default)]
    pub objective: Option<f64>,
    /// The period the counts cover, as written in the policy (informational).
    #[serde(default)]
    pub window: Option<String>,
    /// Counts over the SLO period; `null` = missing data.
    pub period: Option<Counts>,
    /// Counts per window key (`5m`, `1h`, …); `null` = missing data.
    #[serde(default)]
    pub windows: BTreeMap<String, Option<Counts>>,
}

/// A snapshot entry that cannot be used, with the JSON path to it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct SnapshotError {
    pub path: String,
    pub message: String,
}

/// Signals for every SLO known from the ServiceLevelObjective objects or the snapshot.
/// An SLO object without a snapshot entry has no data (Unknown); an entry without an
/// object needs its own `objective`.
pub fn signals(index: &Index, snapshot: &BudgetSnapshot) -> Result<Vec<SloSignals>, SnapshotError> {
    let mut out: BTreeMap<ObjectKey, SloSignals> = BTreeMap::new();
    for (key, spec) in &index.slos {
        out.insert(
            key.clone(),
            SloSignals {
                key: key.clone(),
                objective: spec.objective,
                window: spec.window.clone(),
                signals: Signals::default(),
            },
        );
    }
    for (i, entry) in snapshot.slos.iter().enumerate() {
        let err = |field: &str, message: String| SnapshotError {
            path: format!("slos[{i}]{field}"),
            message,
        };
        let key = ObjectKey::new(&entry.namespace, &entry.name);
        let spec = index.slos.get(&key);
        let objective = match (spec, entry.objective) {
            (Some(spec), _) => spec.objective,
            (None, Some(o)) => o,
            (None, None) => {
                return Err(err(
                    ".objective",
                    format!(
                        "{key} has no ServiceLevelObjective loaded, so the entry needs its objective"
                    ),
                ));
            }
        };
        if !(objective > 0.0 && objective < 100.0) {
            return Err(err(
                ".objective",
                format!("{objective} is not a percentage between 0 and 100"),
            ));
        }
        let check = |field: String, c: &Option<Counts>| match c {
            Some(c) if !(c.bad >= 0.0 && c.total >= 0.0 && c.bad <= c.total) => Err(err(
                &field,
                format!(
                    "bad {} and total {} must be counts with bad ≤ total",
                    c.bad, c.total
                ),
            )),
            _ => Ok(*c),
        };
        let period = check(".period".into(), &entry.period)?;
        let mut windows = Vec::new();
        for (w, counts) in &entry.windows {
            let window =
                Duration::parse(w).map_err(|e| err(&format!(".windows.{w}"), e.to_string()))?;
            windows.push((window, check(format!(".windows.{w}"), counts)?));
        }
        let window = spec.and_then(|s| s.window.clone());
        out.insert(
            key.clone(),
            SloSignals {
                key,
                objective,
                window,
                signals: Signals::from_counts(budget_ratio(objective), period, windows),
            },
        );
    }
    Ok(out.into_values().collect())
}
