//! The install manifests say what the docs promise: every kustomize resource exists and
//! parses, and the webhook configurations fail open, time out fast, never call for their
//! own namespace or kube-system, and have no side effects.

use serde_json::Value;
use std::path::Path;

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn resources(dir: &Path) -> Vec<Value> {
    let kustomization = documents(&dir.join("kustomization.yaml")).remove(0);
    kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let path = dir.join(r.as_str().unwrap());
            if path.is_dir() {
                resources(&path)
            } else {
                documents(&path)
            }
        })
        .collect()
}

fn manifests() -> Vec<Value> {
    resources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests"))
}

#[test]
fn kustomization_lists_crds_rbac_deployment_and_webhooks() {
    let kinds: Vec<String> = manifests()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["kind"].as_str().unwrap(),
                m["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "CustomResourceDefinition/teambudgets.budgetgate.dev",
        "Namespace/budgetgate-system",
        "ServiceAccount/budgetgate",
        "ClusterRole/budgetgate-webhook",
        "ClusterRole/budgetgate-exception-approver",
        "ClusterRole/budgetgate-controller",
        "Role/budgetgate-controller-lease",
        "Deployment/budgetgate-controller",
        "Deployment/budgetgate-webhook",
        "Service/budgetgate",
        "PodDisruptionBudget/budgetgate-webhook",
        "MutatingWebhookConfiguration/budgetgate",
        "ValidatingWebhookConfiguration/budgetgate",
    ] {
        assert!(
            kinds.contains(&want.to_owned()),
            "missing {want} in {kinds:?}"
        );
    }
}

#[test]
fn webhooks_fail_open_fast_without_side_effects_and_skip_system_namespaces() {
    let configs: Vec<Value> = manifests()
        .into_iter()
        .filter(|m| {
            m["kind"]
                .as_str()
                .unwrap()
                .ends_with("WebhookConfiguration")
        })
        .collect();
    let hooks: Vec<&Value> = configs
        .iter()
        .flat_map(|c| c["webhooks"].as_array().unwrap())
        .collect();
    assert_eq!(hooks.len(), 3);
    for hook in hooks {
        let name = hook["name"].as_str().unwrap();
        assert_eq!(hook["sideEffects"], "None", "{name}");
        assert_eq!(hook["timeoutSeconds"], 2, "{name}");
        assert_eq!(hook["failurePolicy"], "Ignore", "{name}");
        assert_eq!(
            hook["admissionReviewVersions"],
            serde_json::json!(["v1"]),
            "{name}"
        );
        if hook["rules"][0]["resources"][0] == "deployments" {
            let excluded = &hook["namespaceSelector"]["matchExpressions"][0];
            assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
            assert_eq!(excluded["operator"], "NotIn");
            assert_eq!(
                excluded["values"],
                serde_json::json!(["budgetgate-system", "kube-system"])
            );
            assert_eq!(
                hook["rules"][0]["operations"],
                serde_json::json!(["CREATE", "UPDATE"])
            );
        }
    }
}

#[test]
fn the_webhook_runs_unprivileged_with_two_replicas_and_probes() {
    let deployment = manifests()
        .into_iter()
        .find(|m| m["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "metrics");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    // Headroom over the 160 MiB ceiling scripts/attack holds the server to.
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
}

#[test]
fn only_the_approver_role_may_write_budget_exceptions() {
    let writers: Vec<String> = manifests()
        .iter()
        .filter(|m| m["kind"] == "ClusterRole")
        .filter(|role| {
            role["rules"].as_array().unwrap().iter().any(|rule| {
                rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == "budgetexceptions")
                    && rule["verbs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|v| v == "create")
            })
        })
        .map(|role| role["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(writers, ["budgetgate-exception-approver"]);
}
