//! Live probes of connectivity checks: the agent long-polls the controller for probes to send
//! (`GET /tessera/hosts/{host}/probes`), sends each from inside the source VM's namespace —
//! so through its port and the switch (or the kernel fast path), as the VM's own traffic goes
//! — and answers with what came back (`POST …/probes`). A TCP probe is answered when the
//! connection is accepted or refused (a reset came back: the path works, nothing listens); an
//! ICMP probe when the echo reply comes back (`ping`).

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_engine::diag::watcher::{ProbeRequest, ProbeResult};
use tokio::sync::watch;

use crate::session::{Controllers, Session, unreachable};

/// Sends one request's probes from the VM's namespace.
pub fn run_probe(request: &ProbeRequest) -> ProbeResult {
    let mut result = ProbeResult { id: request.id.clone(), ..ProbeResult::default() };
    let namespace = crate::vms::namespace_of(request.target.vm.name());
    let ns = match tessera_lab::Netns::open(&namespace) {
        Ok(ns) => ns,
        Err(e) => {
            result.error = Some(format!("no namespace VM {namespace}: {e}"));
            return result;
        }
    };
    let timeout = Duration::from_millis(request.timeout_ms.clamp(100, 10_000));
    let target = request.target.clone();
    let count = request.count.clamp(1, 10);
    let latencies = ns.run(move || {
        (0..count)
            .map(|_| {
                let start = Instant::now();
                let answered = if target.protocol.eq_ignore_ascii_case("Icmp") {
                    ping(target.destination, timeout)
                } else {
                    match TcpStream::connect_timeout(&SocketAddr::new(target.destination, target.port), timeout) {
                        Ok(_) => true,
                        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
                    }
                };
                answered.then(|| start.elapsed().as_secs_f64() * 1000.0)
            })
            .collect::<Vec<_>>()
    });
    match latencies {
        Ok(l) => {
            result.probes_sent = count;
            result.probes_failed = u32::try_from(l.iter().filter(|x| x.is_none()).count()).unwrap_or(count);
            result.latencies_ms = l.into_iter().flatten().collect();
        }
        Err(e) => result.error = Some(format!("cannot enter {namespace}: {e}")),
    }
    result
}

/// One ICMP echo with `ping` (run inside the namespace).
fn ping(to: std::net::IpAddr, timeout: Duration) -> bool {
    let secs = timeout.as_secs().max(1).to_string();
    std::process::Command::new("ping")
        .args(["-n", "-c", "1", "-W", &secs, &to.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn poll(session: &Session, host: &str) -> Result<Vec<ProbeRequest>, tessera_model::ArmError> {
    let url = format!("{}/tessera/hosts/{host}/probes?timeout=20", session.endpoint);
    let r = session.client.get(url).bearer_auth(&session.token).send().await.map_err(unreachable)?;
    let status = r.status().as_u16();
    if status != 200 {
        return Err(tessera_model::ArmError::with_status(
            status,
            "ProbePollFailed",
            r.text().await.unwrap_or_default(),
        ));
    }
    let body: serde_json::Value = r.json().await.map_err(unreachable)?;
    Ok(serde_json::from_value(body["probes"].clone()).unwrap_or_default())
}

async fn answer(session: &Session, host: &str, result: ProbeResult) {
    let url = format!("{}/tessera/hosts/{host}/probes", session.endpoint);
    let sent = session.client.post(url).bearer_auth(&session.token).json(&json!({ "results": [result] })).send().await;
    if let Err(e) = sent {
        tracing::info!("a probe's answer did not reach the controller: {e}");
    }
}

/// Follows the controller's probe requests until `stop` turns true.
pub async fn follow(controllers: Arc<Controllers>, host: String, mut stop: watch::Receiver<bool>) {
    let mut session: Option<Session> = None;
    while !*stop.borrow() {
        let Some(s) = session.as_ref() else {
            session = controllers.sign_in().await.ok();
            if session.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(2), stop.changed()).await;
            }
            continue;
        };
        let polled = tokio::select! {
            r = poll(s, &host) => r,
            _ = stop.changed() => return,
        };
        match polled {
            Ok(requests) => {
                for request in requests {
                    let (s, host) = (s.clone(), host.clone());
                    tokio::spawn(async move {
                        let result = tokio::task::spawn_blocking(move || run_probe(&request)).await;
                        if let Ok(result) = result {
                            answer(&s, &host, result).await;
                        }
                    });
                }
            }
            Err(e) => {
                if e.status == 503 {
                    controllers.failed(s);
                }
                if matches!(e.status, 401 | 503) {
                    session = None;
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), stop.changed()).await;
            }
        }
    }
}
