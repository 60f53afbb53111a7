//! What the fuzz targets check, shared with the stable regression test
//! (`tests/fuzz_regressions.rs`), which replays every kept input through the same checks.

use budgetgate::api::{Indicator, LatencyIndicator, RatioIndicator, RawIndicator};
use budgetgate::decision::{decide, parse_review};
use budgetgate::index::Index;
use budgetgate::prom::query::{Confinement, Count, Events, Track};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use serde_json::Value;
use std::io::Write;
use std::sync::LazyLock;

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    // The repository root: this crate's directory, or its parent for the fuzz crate.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if dir.join("manifests").is_dir() {
        dir
    } else {
        dir.parent().expect("the fuzz crate sits in the repository")
    };
    let samples = root.join("manifests/samples");
    budgetgate::load::load_state(&samples, &samples.join("budgets.json"))
        .expect("the samples load")
        .0
});

/// The review path on any bytes: parse → classify → decide → patch → serialize, against the
/// sample policy and budgets. Never panics; every answer is an AdmissionReview with the
/// request's uid, and the mutation's patch applies to the object it was made for (a patch
/// that does not apply would make the apiserver refuse the change).
pub fn review(data: &[u8]) {
    let Ok(request) = parse_review(data) else {
        return;
    };
    let now = budgetgate::load::parse_now("2026-03-15T12:00:00Z").unwrap();
    let Ok(decision) = decide(&request, &INDEX, now) else {
        return;
    };
    for response in [decision.validate_response(), decision.mutate_response()] {
        let review: Value =
            serde_json::from_slice(&response.review_bytes()).expect("an answer is JSON");
        assert_eq!(review["kind"], "AdmissionReview");
        assert_eq!(
            review["response"]["uid"].as_str(),
            Some(request.uid.as_str())
        );
    }
    if !decision.patch.0.is_empty() {
        let mut object = serde_json::from_slice::<Value>(data).expect("it parsed as a review")
            ["request"]["object"]
            .take();
        if let Err(e) = json_patch::patch(&mut object, &decision.patch) {
            panic!("the patch does not apply: {e}: {:?}", decision.patch);
        }
    }
}

/// The policy loader (`--policy`) on any file: a clear error or an index, never a panic.
pub fn policy_yaml(data: &[u8]) {
    let path = std::env::temp_dir().join(format!(
        "budgetgate-fuzz-{}-{:?}.yaml",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(data))
        .expect("a temporary file");
    let _ = budgetgate::load::load_policy(&path);
    let _ = std::fs::remove_file(&path);
}

/// SLO query confinement on any indicator (first byte: ratio, latency or raw; the rest
/// split at U+0001 into its two strings): a query built from an accepted indicator parses,
/// and every series selector in it carries the SLO's namespace matcher (raw queries, only
/// from namespaces the policy lists, only have to parse).
pub fn promql_confinement(data: &[u8]) {
    // The parser's own panics are caught by budgetgate (`parse_promql`): let them unwind to
    // it instead of the fuzzer's hook aborting; any other panic still aborts.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let outer = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !budgetgate::prom::query::parsing_promql() {
                outer(info)
            }
        }));
    });
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (a, b) = text.split_once('\u{1}').unwrap_or((&text, "t"));
    let (a, b) = (a.to_owned(), b.to_owned());
    let indicator = match kind % 3 {
        0 => Indicator {
            ratio: Some(RatioIndicator {
                errors: a,
                total: b,
            }),
            latency: None,
            raw: None,
        },
        1 => Indicator {
            ratio: None,
            latency: Some(LatencyIndicator {
                histogram: a,
                threshold: b,
            }),
            raw: None,
        },
        _ => Indicator {
            ratio: None,
            latency: None,
            raw: Some(RawIndicator {
                error_query: a,
                total_query: b,
            }),
        },
    };
    let confinement = Confinement {
        namespace: "shop",
        label: "namespace",
        cross_namespace: false,
        raw: true,
    };
    let Ok(events) = Events::from_indicator(&indicator, &confinement) else {
        return;
    };
    queries_are_confined(&events);
}

/// Every query built from `events` parses, and (but for raw queries) every series selector
/// in it carries the matcher `namespace="shop"`.
pub fn queries_are_confined(events: &Events) {
    let raw = matches!(events, Events::Raw { .. });
    let mut queries = Vec::new();
    for count in [Count::Bad, Count::Total] {
        queries.push(events.expr(count, "5m"));
        for track in [Track::Canary, Track::Stable] {
            // Alone, and confined to one cluster of a global view (`--cluster-name`).
            for cluster in [None, Some(r#"cluster="a""#)] {
                queries.extend(events.track_expr(count, track, "track", cluster, "5m"));
            }
        }
    }
    for query in queries {
        let parsed = match promql_parser::parser::parse(&query) {
            Ok(parsed) => parsed,
            Err(e) => {
                panic!("an accepted indicator built a query that does not parse: {query:?}: {e}")
            }
        };
        if raw {
            continue;
        }
        let mut selectors = Vec::new();
        collect(&parsed, &mut selectors);
        assert!(!selectors.is_empty(), "{query}");
        for selector in selectors {
            assert!(
                selector
                    .matchers
                    .matchers
                    .iter()
                    .any(|m| m.name == "namespace"
                        && m.value == "shop"
                        && matches!(m.op, MatchOp::Equal)),
                "a selector escapes the namespace: {selector} in {query}"
            );
        }
    }
}

fn collect<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::VectorSelector(v) => out.push(v),
        Expr::MatrixSelector(m) => out.push(&m.vs),
        Expr::Aggregate(a) => {
            collect(&a.expr, out);
            if let Some(p) = &a.param {
                collect(p, out);
            }
        }
        Expr::Unary(u) => collect(&u.expr, out),
        Expr::Binary(b) => {
            collect(&b.lhs, out);
            collect(&b.rhs, out);
        }
        Expr::Paren(p) => collect(&p.expr, out),
        Expr::Subquery(s) => collect(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}
