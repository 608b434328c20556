//! Slow clients cannot starve the server: a thousand connections that trickle bytes and never
//! finish their handshake leave a GET answered promptly, and each is closed after the timeout
//! (issue 13, point 6).

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
