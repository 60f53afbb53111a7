//! Shared by the webhook tests and the benchmarks (`#[path]`-included): the realistic
//! ~6 KB review (and the same as the apiserver sends it) and a TLS client that trusts one CA.
#![allow(dead_code)] // each includer uses what it needs

use std::path::Path;
use std::sync::Arc;

/// The sample image-change review padded with realistic env vars to about 6 KB.
pub fn six_kb_review() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/samples/reviews/rollout-image-change.json");
    let text = std::fs::read_to_string(path).unwrap();
    let mut review: serde_json::Value = serde_json::from_str(&text).unwrap();
    for object in ["object", "oldObject"] {
        let container = &mut review["request"][object]["spec"]["template"]["spec"]["containers"][0];
        container["env"] = (0..24)
            .map(|i| serde_json::json!({"name": format!("CHECKOUT_FEATURE_FLAG_{i}"), "value": "enabled-for-all-regions"}))
            .collect();
    }
    let bytes = serde_json::to_vec(&review).unwrap();
    assert!(
        (5_500..7_000).contains(&bytes.len()),
        "review is {} bytes",
        bytes.len()
    );
    bytes
}

/// The 6 KB review as the apiserver sends it: both objects also carry their
/// `metadata.managedFields` (client-side apply and the controller manager) and `status`.
pub fn apiserver_review(bytes: &[u8]) -> Vec<u8> {
    let mut review: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    for object in ["object", "oldObject"] {
        let o = &mut review["request"][object];
        let env: serde_json::Map<String, serde_json::Value> = (0..24)
            .map(|i| {
                let key = format!("k:{{\"name\":\"CHECKOUT_FEATURE_FLAG_{i}\"}}");
                (
                    key,
                    serde_json::json!({".": {}, "f:name": {}, "f:value": {}}),
                )
            })
            .collect();
        o["metadata"]["managedFields"] = serde_json::json!([
            {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-11-29T09:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}, "f:labels": {".": {}, "f:app": {}}},
                          "f:spec": {"f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
                                     "f:selector": {}, "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                                     "f:template": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                                    "f:spec": {"f:containers": {"k:{\"name\":\"checkout\"}": {".": {}, "f:env": env, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                                                               "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2026-11-29T09:01:00Z", "fieldsType": "FieldsV1", "subresource": "status",
             "fieldsV1": {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}},
                          "f:status": {"f:availableReplicas": {}, "f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:lastTransitionTime": {}, "f:lastUpdateTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}, "k:{\"type\":\"Progressing\"}": {".": {}, "f:lastTransitionTime": {}, "f:lastUpdateTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}}},
                                       "f:observedGeneration": {}, "f:readyReplicas": {}, "f:replicas": {}, "f:updatedReplicas": {}}}}
        ]);
        o["status"] = serde_json::json!({
            "observedGeneration": 7, "replicas": 6, "updatedReplicas": 6, "readyReplicas": 6, "availableReplicas": 6,
            "conditions": [
                {"type": "Available", "status": "True", "lastUpdateTime": "2026-11-29T09:01:00Z", "lastTransitionTime": "2026-11-29T09:01:00Z", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "lastUpdateTime": "2026-11-29T09:01:00Z", "lastTransitionTime": "2026-11-29T09:00:00Z", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet \"checkout-5d8c7b9f4\" has successfully progressed."}
            ]
        });
    }
    serde_json::to_vec(&review).unwrap()
}

/// A TLS connector (HTTP/1.1 by ALPN, ring) trusting the CA in `ca` (PEM).
pub fn tls_connector(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        let cert: rustls::pki_types::CertificateDer<'static> = cert.unwrap();
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
