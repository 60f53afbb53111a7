//! Shared by the webhook tests and the benchmarks (`#[path]`-included): the realistic
//! ~6 KB review and a TLS client that trusts one CA.
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
