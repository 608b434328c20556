//! The server's certificates: on first start a CA and a server certificate signed by it are
//! made in the data directory (`ca.pem`, `server.pem`, `server.key`); later starts reuse them.
//! Clients trust `ca.pem` (the Azure SDK refuses bearer tokens over plain HTTP).

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
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "Tessera local CA");
    ca.distinguished_name = name;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).map_err(tls_error)?;
    let issuer = Issuer::new(ca, ca_key);

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
    std::fs::write(&paths.cert, format!("{}{}", server_cert.pem(), ca_cert.pem()))?;
    std::fs::write(&paths.ca, ca_cert.pem())?;
    Ok(paths)
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
