//! The serving certificate, re-read when its files change so a rotated certificate reaches
//! new connections without a restart. Kubernetes updates Secret volumes by swapping a
//! symlink, so the files are compared by content, not by modification time.

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The certificate and key files and what was last loaded from them.
#[derive(Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    fn parse(&self, cert: &[u8], key: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Parse {
                path: self.cert.clone(),
                message: format!("not a PEM certificate chain: {e}"),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Parse {
                path: self.cert.clone(),
                message: "no certificate in the file".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Parse {
            path: self.key.clone(),
            message: format!("not a PEM private key: {e}"),
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let certified =
            CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Parse {
                path: self.key.clone(),
                message: format!("key does not match the certificate or is unsupported: {e}"),
            })?;
        Ok(Arc::new(certified))
    }
}

/// Serves whatever certificate was last loaded successfully.
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    current: ArcSwap<CertifiedKey>,
    loaded: std::sync::Mutex<(Vec<u8>, Vec<u8>)>,
}

impl ReloadingCert {
    /// Loads the files once; fails when they cannot be served.
    pub fn load(files: CertFiles) -> Result<Self, TlsError> {
        let (cert, key) = files.read()?;
        let certified = files.parse(&cert, &key)?;
        Ok(ReloadingCert {
            files,
            current: ArcSwap::new(certified),
            loaded: std::sync::Mutex::new((cert, key)),
        })
    }

    /// Re-reads the files; swaps the certificate when they changed and are valid.
    /// Returns `Ok(true)` when a new certificate is now served. A bad new pair keeps the
    /// old one.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert, key) = self.files.read()?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.0 == cert && loaded.1 == key {
            return Ok(false);
        }
        let certified = self.files.parse(&cert, &key)?;
        self.current.store(certified);
        *loaded = (cert, key);
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// TLS 1.2 and 1.3, ALPN h2 and http/1.1.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
