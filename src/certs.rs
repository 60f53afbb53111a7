//! `budgetgate certs`: a CA and a serving certificate for the webhook, and the caBundle
//! for the webhook configurations. For clusters without cert-manager and for tests.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use std::path::{Path, PathBuf};

/// The files written and the caBundle to paste into webhook configurations.
#[derive(Debug)]
pub struct Issued {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// base64 of the CA certificate PEM.
    pub ca_bundle: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("at least one --dns name or --ip address is required")]
    NoNames,
    #[error("cannot make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Validity: CA 10 years, serving certificate 1 year (Gatekeeper's defaults), from today.
pub fn issue(
    out: &Path,
    dns: &[String],
    ips: &[std::net::IpAddr],
    today: jiff::civil::Date,
) -> Result<Issued, CertError> {
    if dns.is_empty() && ips.is_empty() {
        return Err(CertError::NoNames);
    }
    let (y, m, d) = (today.year() as i32, today.month() as u8, today.day() as u8);
    // Feb 29 + n years does not exist; the 28th is close enough for an expiry.
    let later = |years: i32| date_time_ymd(y + years, m, if m == 2 && d == 29 { 28 } else { d });

    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("budgetgate webhook CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = date_time_ymd(y, m, d);
    ca.not_after = later(10);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let names: Vec<String> = dns
        .iter()
        .cloned()
        .chain(ips.iter().map(|ip| ip.to_string()))
        .collect();
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name = name(dns.first().map_or("budgetgate webhook", String::as_str));
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = date_time_ymd(y, m, d);
    leaf.not_after = later(1);
    let leaf_key = KeyPair::generate()?;
    let cert = leaf.signed_by(&leaf_key, &ca)?;

    std::fs::create_dir_all(out).map_err(|source| CertError::Write {
        path: out.to_owned(),
        source,
    })?;
    let ca_pem = ca.pem();
    let issued = Issued {
        ca_cert: out.join("ca.crt"),
        cert: out.join("tls.crt"),
        key: out.join("tls.key"),
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(&ca_pem),
    };
    write(&issued.ca_cert, &ca_pem)?;
    // The chain: serving certificate, then the CA.
    write(&issued.cert, &(cert.pem() + &ca_pem))?;
    write_private(&issued.key, &leaf_key.serialize_pem())?;
    Ok(issued)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "budgetgate");
    dn
}

/// The key is readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| CertError::Write {
            path: path.to_owned(),
            source,
        })
}

fn write(path: &Path, text: &str) -> Result<(), CertError> {
    std::fs::write(path, text).map_err(|source| CertError::Write {
        path: path.to_owned(),
        source,
    })
}
