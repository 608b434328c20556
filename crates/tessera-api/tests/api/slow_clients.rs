//! Slow clients cannot starve the server: a thousand connections that trickle bytes and never
//! finish their handshake leave a GET answered promptly, and each is closed after the timeout;
//! so is a client that finishes its handshake and then trickles its headers (issue 13, point 6).

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_connections_do_not_stop_reads_and_are_cut() {
    let dir = tempfile::tempdir().expect("dir");
    let api = Api::start_with(dir, |c| c.settings.header_read_timeout_secs = 2).await;
    let addr = api.server.as_ref().expect("server").addr;
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // The first bytes of a TLS record header, and nothing more.
        s.write_all(&[0x16, 0x03]).await.expect("write");
        slow.push(s);
    }
    let started = Instant::now();
    let (status, v) = api.call(Method::GET, &format!("{}?api-version=2022-12-01", api.sub()), None).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{v}");
    assert!(took < Duration::from_secs(1), "a GET beside 1,000 trickling clients took {took:?}");
    // The server closes them once the handshake timeout has passed.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), slow[0].read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "a trickling connection is closed: {closed:?}");
    let last = slow.last_mut().expect("last");
    let closed = tokio::time::timeout(Duration::from_secs(10), last.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "every trickling connection is closed: {closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_cut() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("dir");
    let api = Api::start_with(dir, |c| c.settings.header_read_timeout_secs = 2).await;
    let addr = api.server.as_ref().expect("server").addr;
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_file_iter(&api.creds.ca_certificate).expect("ca") {
            roots.add(cert.expect("cert")).expect("root");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.expect("handshake");
    // One header byte a second: the request is never complete.
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /metadata/endpoints HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // hyper answers 408 before it closes: the request is refused either way.
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "a connection trickling its headers for {:?} is still open", started.elapsed());
}
