//! The install manifests say what the docs promise: every kustomize resource exists and
//! parses, and the webhook configurations fail open, time out fast, never call for their
//! own namespace or kube-system, and have no side effects. They keep their trust
//! boundaries: the webhook's ServiceAccount only reads, the controller runs as its own
//! ServiceAccount (the one the sample policy's `controllerUsers` lists), every pod passes Pod
//! Security `restricted` in a namespace that enforces it, and a NetworkPolicy admits only
//! the ports each component serves.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const NAMESPACE: &str = "budgetgate-system";

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
        "ServiceAccount/budgetgate-controller",
        "NetworkPolicy/budgetgate-webhook",
        "NetworkPolicy/budgetgate-controller",
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

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} is installed"))
}

/// The verbs each (Cluster)Role bound to the ServiceAccount grants, by role.
fn granted(objects: &[Value], service_account: &str) -> Vec<(String, BTreeSet<String>)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
        .filter(|b| {
            b["subjects"].as_array().into_iter().flatten().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == service_account
                    && s["namespace"] == NAMESPACE
            })
        })
        .map(|b| {
            let role = named(
                objects,
                b["roleRef"]["kind"].as_str().unwrap(),
                b["roleRef"]["name"].as_str().unwrap(),
            );
            let verbs = role["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|rule| rule["verbs"].as_array().unwrap())
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            (role["metadata"]["name"].as_str().unwrap().to_owned(), verbs)
        })
        .collect()
}

#[test]
fn the_webhooks_service_account_only_reads() {
    let objects = manifests();
    let webhook = named(&objects, "Deployment", "budgetgate-webhook");
    assert_eq!(
        webhook["spec"]["template"]["spec"]["serviceAccountName"],
        "budgetgate"
    );
    let roles = granted(&objects, "budgetgate");
    assert_eq!(
        roles.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        ["budgetgate-webhook"]
    );
    let read: BTreeSet<String> = ["get", "list", "watch"].map(String::from).into();
    for (role, verbs) in roles {
        assert!(verbs.is_subset(&read), "{role} grants {verbs:?}");
    }
}

#[test]
fn the_controller_runs_as_its_own_service_account_which_controller_users_lists() {
    let objects = manifests();
    let controller = named(&objects, "Deployment", "budgetgate-controller");
    assert_eq!(
        controller["spec"]["template"]["spec"]["serviceAccountName"],
        "budgetgate-controller"
    );
    named(&objects, "ServiceAccount", "budgetgate-controller");
    let roles: Vec<String> = granted(&objects, "budgetgate-controller")
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(
        roles,
        [
            "budgetgate-controller",
            "budgetgate-webhook",
            "budgetgate-controller-lease"
        ]
    );
    let policy =
        documents(&Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/samples/policy.yaml"));
    assert_eq!(
        policy[0]["spec"]["controllerUsers"],
        serde_json::json!(["system:serviceaccount:budgetgate-system:budgetgate-controller"])
    );
}

#[test]
fn every_pod_passes_pod_security_restricted_in_a_namespace_that_enforces_it() {
    let objects = manifests();
    let namespace = named(&objects, "Namespace", NAMESPACE);
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 2);
    for deployment in deployments {
        let name = &deployment["metadata"]["name"];
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_ne!(pod["securityContext"]["runAsUser"], 0, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for key in ["hostNetwork", "hostPID", "hostIPC"] {
            assert!(pod[key].is_null() || pod[key] == false, "{name} {key}");
        }
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            assert!(volume["hostPath"].is_null(), "{name} mounts a host path");
        }
        for container in pod["containers"].as_array().unwrap() {
            let context = &container["securityContext"];
            assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(
                context["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{name}"
            );
            assert!(context["capabilities"]["add"].is_null(), "{name}");
            assert!(
                !container["resources"]["limits"]["memory"].is_null(),
                "{name} has no memory limit"
            );
        }
    }
}

#[test]
fn a_network_policy_admits_only_the_ports_each_component_serves() {
    let objects = manifests();
    let policies = of_kind(&objects, "NetworkPolicy");
    for deployment in of_kind(&objects, "Deployment") {
        let name = &deployment["metadata"]["name"];
        let labels = deployment["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap();
        let selecting: Vec<_> = policies
            .iter()
            .filter(|p| {
                p["spec"]["podSelector"]["matchLabels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        assert_eq!(selecting.len(), 1, "{name}: one NetworkPolicy selects it");
        let policy = selecting[0];
        assert_eq!(
            policy["spec"]["policyTypes"],
            serde_json::json!(["Ingress"])
        );
        let served: BTreeSet<i64> = deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["ports"].as_array().unwrap())
            .map(|p| p["containerPort"].as_i64().unwrap())
            .collect();
        let admitted: BTreeSet<i64> = policy["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| {
                let ports = rule["ports"].as_array();
                assert!(ports.is_some(), "{name}: an ingress rule admits every port");
                ports.unwrap().clone()
            })
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        assert_eq!(admitted, served, "{name}");
    }
}

/// The last relabeling of a scrape manifest's list at `pointer`.
fn last_relabeling(file: &str, pointer: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/monitoring");
    let doc = documents(&dir.join(file)).remove(0);
    doc.pointer(pointer)
        .and_then(Value::as_array)
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or_else(|| panic!("{file}: no relabelings at {pointer}"))
}

#[test]
fn both_scrape_manifests_carry_the_canary_track_from_the_pod_label() {
    assert_eq!(
        last_relabeling("podmonitor.yaml", "/spec/podMetricsEndpoints/0/relabelings"),
        serde_json::json!({"sourceLabels": ["__meta_kubernetes_pod_label_budgetgate_dev_track"], "targetLabel": "track"})
    );
    assert_eq!(
        last_relabeling("scrape-config.yaml", "/scrape_configs/0/relabel_configs"),
        serde_json::json!({"source_labels": ["__meta_kubernetes_pod_label_budgetgate_dev_track"], "target_label": "track"})
    );
    // The e2e Prometheus relabels its simulated pods the same way.
    let cluster =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/cluster")).unwrap();
    assert!(cluster.contains(
        "      - source_labels: [__meta_kubernetes_pod_label_budgetgate_dev_track]\n        target_label: track\n"
    ));
}
