//! `budgetgate report` and the cluster mode of `budgetgate status` through the real binary:
//! file mode on the samples, and a clear exit 2 when the cluster cannot be read.

mod common;

use common::run as budgetgate;

use serde_json::Value;
use std::process::Output;

const SAMPLES: &str = "manifests/samples";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn report_on_the_sample_ledger_counts_each_release_once() {
    let out = budgetgate(&[
        "report",
        "--policy",
        SAMPLES,
        "--since",
        "7d",
        "--now",
        "2026-11-29T12:00:00Z",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["from"], "2026-11-22T12:00:00Z");
    let teams: Vec<(&str, &str, u64, u64, u64)> = report["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["team"].as_str().unwrap(),
                t["tier"].as_str().unwrap(),
                t["releases"].as_u64().unwrap(),
                t["phases"]["promoted"].as_u64().unwrap(),
                t["phases"]["direct"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        teams,
        [
            ("discovery", "production", 1, 0, 1),
            ("payments", "production", 1, 1, 0)
        ]
    );
    assert_eq!(report["exceptionsUsed"][0]["exception"], "hotfix-4411");
    assert_eq!(report["exceptionsUsed"][0]["approvedBy"], "platform-oncall");
    assert_eq!(report["platform"]["changeFailureRate"], 0.0);
}

#[test]
fn report_markdown_and_csv_render_the_same_rows() {
    let args = |format| {
        budgetgate(&[
            "report",
            "--policy",
            SAMPLES,
            "--now",
            "2026-11-29T12:00:00Z",
            "-o",
            format,
        ])
    };
    let markdown = String::from_utf8(args("markdown").stdout).unwrap();
    assert!(markdown.starts_with("# budgetgate review: 2026-08-31 – 2026-11-29\n"));
    assert!(markdown.contains("\n| payments | - | - | - | 1 | 1 | 0 | 0 | 0 | 0 | 0.0% | 0.08 | 0.0% | 0 | 0.0% | 0.0% | 0 | 0 |\n"));
    assert!(markdown.contains("\n## Definitions\n"));
    let csv = String::from_utf8(args("csv").stdout).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.contains("\npayments,production,,,,1,1,0,0,0,0,0,0,0,0,"));
}

#[test]
fn report_and_status_need_a_source() {
    for command in ["report", "status"] {
        let out = budgetgate(&[command]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(stderr(&out).contains("--policy"), "{}", stderr(&out));
    }
    let out = budgetgate(&["status", "--policy", SAMPLES, "--kubeconfig", "k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreadable_cluster_is_bad_input() {
    let dir = std::env::temp_dir().join(format!("budgetgate-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: c, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    let path = kubeconfig.to_str().unwrap();
    for command in ["report", "status"] {
        let out = budgetgate(&[command, "--kubeconfig", path]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = stderr(&out);
        assert!(
            stderr.contains("error: cannot read the cluster of"),
            "{stderr}"
        );
    }
    let out = budgetgate(&["status", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("error: cannot connect to the cluster of /nonexistent/kubeconfig"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
