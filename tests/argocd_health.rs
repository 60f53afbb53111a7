//! The Argo CD health checks in `integrations/argocd/` run on real Lua interpreters: every
//! case of each kind's `health_test.yaml` (Argo CD's own test layout) under Lua 5.1 (the
//! dialect of Argo CD's gopher-lua) and Lua 5.4, with the exact status and message. And
//! the `argocd-cm` patch carries exactly the scripts tested here.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const INTERPRETERS: [&str; 2] = ["lua5.1", "lua5.4"];
const KINDS: [&str; 3] = ["Release", "TeamBudget", "ServiceLevelObjective"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/argocd")
}

fn kind_dir(kind: &str) -> PathBuf {
    root()
        .join("resource_customizations/budgetgate.dev")
        .join(kind)
}

fn yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A JSON value as a Lua expression, as Argo CD hands objects to its scripts (null fields
/// are absent, arrays are 1-based tables).
fn lua(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => write!(out, "{i}").unwrap(),
            None => write!(out, "{:?}", n.as_f64().unwrap()).unwrap(),
        },
        Value::String(s) => lua_string(s, out),
        Value::Array(items) => {
            out.push('{');
            for item in items {
                lua(item, out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Object(map) => {
            out.push('{');
            for (key, item) in map.iter().filter(|(_, v)| !v.is_null()) {
                out.push('[');
                lua_string(key, out);
                out.push_str("]=");
                lua(item, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

fn lua_string(s: &str, out: &mut String) {
    out.push('"');
    for byte in s.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            other => write!(out, "\\{other:03}").unwrap(),
        }
    }
    out.push('"');
}

/// Runs `script` on `object` with `interpreter`: (status, message).
fn health(interpreter: &str, script: &Path, object: &Value) -> (String, String) {
    let mut program = String::from("obj = ");
    lua(object, &mut program);
    write!(
        program,
        "\nlocal hs = dofile({})\nio.write(tostring(hs.status), \"\\n\", tostring(hs.message))",
        {
            let mut path = String::new();
            lua_string(&script.display().to_string(), &mut path);
            path
        }
    )
    .unwrap();
    let output = Command::new(interpreter)
        .args(["-e", &program])
        .output()
        .unwrap_or_else(|e| {
            panic!("running {interpreter}: {e} (scripts/deps installs lua5.1 and lua5.4)")
        });
    assert!(
        output.status.success(),
        "{interpreter} failed on {}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let (status, message) = text.split_once('\n').expect("status and message");
    (status.to_owned(), message.to_owned())
}

#[test]
fn every_health_case_gives_its_exact_status_and_message_on_lua_5_1_and_5_4() {
    let mut cases = 0;
    for kind in KINDS {
        let dir = kind_dir(kind);
        let script = dir.join("health.lua");
        let tests = yaml(&dir.join("health_test.yaml"));
        let tests = tests["tests"].as_array().expect("tests: a list");
        assert!(tests.len() >= 5, "{kind}: too few cases");
        let mut inputs: Vec<String> = std::fs::read_dir(dir.join("testdata"))
            .unwrap()
            .map(|e| format!("testdata/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        inputs.sort();
        let mut tested: Vec<String> = tests
            .iter()
            .map(|t| t["inputPath"].as_str().unwrap().to_owned())
            .collect();
        tested.sort();
        assert_eq!(tested, inputs, "{kind}: every testdata file has a case");
        for case in tests {
            let input = case["inputPath"].as_str().unwrap();
            let object = yaml(&dir.join(input));
            let want = (
                case["healthStatus"]["status"].as_str().unwrap().to_owned(),
                case["healthStatus"]["message"].as_str().unwrap().to_owned(),
            );
            for interpreter in INTERPRETERS {
                assert_eq!(
                    health(interpreter, &script, &object),
                    want,
                    "{kind} {input} on {interpreter}"
                );
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 22);
}

#[test]
fn the_argocd_cm_patch_carries_the_tested_scripts() {
    let patch = yaml(&root().join("argocd-cm.yaml"));
    assert_eq!(patch["kind"], "ConfigMap");
    assert_eq!(patch["metadata"]["name"], "argocd-cm");
    let data = patch["data"].as_object().expect("data");
    assert_eq!(data.len(), KINDS.len());
    for kind in KINDS {
        let key = format!("resource.customizations.health.budgetgate.dev_{kind}");
        let script = std::fs::read_to_string(kind_dir(kind).join("health.lua")).unwrap();
        assert_eq!(
            data.get(&key).and_then(Value::as_str),
            Some(script.as_str()),
            "{key} in argocd-cm.yaml differs from {kind}/health.lua: run integrations/argocd/render"
        );
    }
}

#[test]
fn lua_literals_escape_what_lua_needs() {
    let mut out = String::new();
    lua(
        &serde_json::json!({"a": [1, 2.5, "q\"\\\n"], "b": null, "c": true}),
        &mut out,
    );
    assert_eq!(out, r#"{["a"]={1,2.5,"q\"\\\010",},["c"]=true,}"#);
}
