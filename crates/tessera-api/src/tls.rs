//! The server's certificates: on first start a CA and a server certificate signed by it are
//! made in the data directory (`ca.pem`, `server.pem`, `server.key`); later starts reuse them.
//! Clients trust `ca.pem` (the Azure SDK refuses bearer tokens over plain HTTP). Servers on a
//! shared store (etcd) sign with one CA kept in the store, so one `ca.pem` trusts them all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Paths of the certificate files in a data directory.
#[derive(Debug, Clone)]
pub struct CertPaths {
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server key.
    pub key: PathBuf,
}

impl CertPaths {
    /// The files in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        CertPaths { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }
    }
}

fn tls_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Makes the CA and server certificate when they are missing.
pub fn ensure_certificates(dir: &Path) -> std::io::Result<CertPaths> {
    let paths = CertPaths::in_dir(dir);
    if paths.ca.exists() && paths.cert.exists() && paths.key.exists() {
        return Ok(paths);
    }
    let (ca_pem, ca_key) = new_ca()?;
    issue(dir, &paths, &ca_pem, &ca_key)?;
    Ok(paths)
}

/// The store key of the CA servers on a shared store sign their certificates with.
const SHARED_CA_KEY: &str = "meta/ca";

/// With a store several servers share: one CA for all of them, kept in the store (made by the
/// first server), so that a client trusting it reaches any server. Each server's certificate
/// is its own, signed by that CA; one signed by another CA (a data directory that served
/// another store) is made again.
pub fn ensure_shared_certificates(dir: &Path, store: &dyn tessera_store::Store) -> std::io::Result<CertPaths> {
    let paths = CertPaths::in_dir(dir);
    let stored = match store.get(SHARED_CA_KEY).map_err(tls_error)? {
        Some(e) => e.value,
        None => {
            let (cert, key) = new_ca()?;
            let value = serde_json::to_vec(&serde_json::json!({"certificate": cert, "key": key})).map_err(tls_error)?;
            let put = tessera_store::Op::Put {
                key: SHARED_CA_KEY.into(),
                value: value.clone(),
                expect: tessera_store::Expect::Absent,
            };
            match store.commit(&[put]) {
                Ok(_) => value,
                // Another server starting on the same store made it first: that one is the CA.
                Err(tessera_store::StoreError::Conflict { .. }) => {
                    store.get(SHARED_CA_KEY).map_err(tls_error)?.ok_or_else(|| tls_error("the CA vanished"))?.value
                }
                Err(e) => return Err(tls_error(e)),
            }
        }
    };
    let ca: serde_json::Value = serde_json::from_slice(&stored).map_err(tls_error)?;
    let (Some(cert), Some(key)) = (ca["certificate"].as_str(), ca["key"].as_str()) else {
        return Err(tls_error("the shared CA in the store is corrupt"));
    };
    let same_ca = std::fs::read_to_string(&paths.ca).is_ok_and(|held| held == cert);
    if !(same_ca && paths.cert.exists() && paths.key.exists()) {
        issue(dir, &paths, cert, key)?;
    }
    Ok(paths)
}

/// A new CA: its certificate and key (PEM).
fn new_ca() -> std::io::Result<(String, String)> {
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Tessera local CA");
    ca.distinguished_name = name;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).map_err(tls_error)?;
    Ok((ca_cert.pem(), ca_key.serialize_pem()))
}

/// Writes into `dir` a new server certificate signed by the CA (and the CA's certificate).
fn issue(dir: &Path, paths: &CertPaths, ca_pem: &str, ca_key_pem: &str) -> std::io::Result<()> {
    let issuer =
        Issuer::from_ca_cert_pem(ca_pem, KeyPair::from_pem(ca_key_pem).map_err(tls_error)?).map_err(tls_error)?;
    let server_key = KeyPair::generate().map_err(tls_error)?;
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).map_err(tls_error)?;
    server.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    server.subject_alt_names.push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "tessera");
    server.distinguished_name = name;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).map_err(tls_error)?;

    std::fs::create_dir_all(dir)?;
    write_private(&paths.key, server_key.serialize_pem().as_bytes())?;
    std::fs::write(&paths.cert, format!("{}{}", server_cert.pem(), ca_pem))?;
    std::fs::write(&paths.ca, ca_pem)?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

/// The rustls configuration serving the certificate chain (HTTP/1.1).
pub fn server_config(paths: &CertPaths) -> std::io::Result<Arc<ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&paths.cert).map_err(tls_error)?.collect::<Result<_, _>>().map_err(tls_error)?;
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(tls_error)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
