//! Every input the fuzz targets (`fuzz/`, `fuzz/run`) ever failed on is kept in
//! `fuzz/regressions/<target>/` and replayed here on stable through the same checks
//! (`fuzz/checks.rs`), with the targets' seeds: the samples' reviews and YAML files.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The files of a directory (none when it does not exist: git keeps no empty directory, and
/// a target's regressions directory is empty until an input fails it).
fn files(dir: &str, extension: Option<&str>) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    if !dir.exists() {
        return Vec::new();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| extension.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    files.sort();
    files
}

fn replay(check: fn(&[u8]), inputs: &[PathBuf]) {
    assert!(!inputs.is_empty());
    for input in inputs {
        let data = std::fs::read(input).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{} fails its check", input.display());
        }
    }
}

#[test]
fn review_regressions_and_seeds() {
    let mut inputs = files("fuzz/regressions/review", None);
    inputs.extend(files("manifests/samples/reviews", Some("json")));
    replay(checks::review, &inputs);
}

#[test]
fn policy_yaml_regressions_and_seeds() {
    let mut inputs = files("fuzz/regressions/policy_yaml", None);
    inputs.extend(files("manifests/samples", Some("yaml")));
    replay(checks::policy_yaml, &inputs);
}

#[test]
fn promql_confinement_regressions() {
    replay(
        checks::promql_confinement,
        &files("fuzz/regressions/promql_confinement", None),
    );
}

#[test]
fn the_confinement_check_catches_what_it_is_for() {
    use budgetgate::prom::query::Events;
    let caught = |errors: &str| {
        let events = Events::Ratio {
            errors: errors.into(),
            total: r#"t{namespace="shop"}"#.into(),
        };
        std::panic::catch_unwind(|| checks::queries_are_confined(&events)).is_err()
    };
    assert!(!caught(r#"e{namespace="shop"}"#));
    // Another namespace, no namespace, a query swallowed by a comment.
    assert!(caught(r#"e{namespace="payments"}"#));
    assert!(caught("e"));
    assert!(caught(r#"e{namespace="payments"} #,namespace="shop"}"#));
}
