//! Live probes of Network Watcher's connectivityCheck: the model checked against the packets.
//!
//! When the host agent that runs the source VM is following (it long-polls
//! `GET /tessera/hosts/{host}/probes`), a check also asks it to send real probes from the VM
//! (TCP connections, or ICMP echoes for `Icmp`) through the switch; the agent answers with
//! `POST /tessera/hosts/{host}/probes`. The answer carries the probes' counts and round trips
//! (`probesSent`, `probesFailed`, `avg/min/maxLatencyInMs`), its `connectionStatus` is what the
//! probes found (as Azure's), `logicalConnectionStatus` what the walk of the programs found,
//! and when the two disagree the source hop carries an issue saying so. Without a following
//! agent the check is the logical walk alone, as before. Probes live in memory only: they are
//! questions of the moment, not state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tessera_engine::diag::watcher::{ProbeRequest, ProbeResult, ProbeTarget};
use tessera_model::ArmError;
use tokio::sync::{Notify, oneshot};

use crate::http::{App, Req, json_value};
use crate::identity::method_not_allowed;

/// Probes per check, as Azure's connectivity check sends them by default.
const PROBES: u32 = 3;
/// How long one probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// A host whose agent polled within this long is following.
const FOLLOWING: Duration = Duration::from_secs(40);
/// Checks waiting for one host's probes at most (more are not sent: the check stays logical).
const MAX_PENDING: usize = 64;
/// Longest wait of one poll.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct HostQueue {
    pending: Vec<ProbeRequest>,
    waiting: HashMap<String, oneshot::Sender<ProbeResult>>,
    last_poll: Option<Instant>,
    notify: Arc<Notify>,
}

/// Every host's probes, waiting to be sent or answered.
#[derive(Default)]
pub(crate) struct ProbeBoard {
    hosts: Mutex<HashMap<String, HostQueue>>,
}

impl std::fmt::Debug for ProbeBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeBoard")
    }
}

impl ProbeBoard {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HostQueue>> {
        self.hosts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends probes to `target` from `host` and waits for the answer (None: no agent follows,
    /// or it did not answer in time).
    pub(crate) async fn probe(&self, host: &str, target: ProbeTarget) -> Option<ProbeResult> {
        let host = host.to_ascii_lowercase();
        let request = ProbeRequest {
            id: uuid::Uuid::new_v4().to_string(),
            target,
            count: PROBES,
            timeout_ms: u64::try_from(PROBE_TIMEOUT.as_millis()).unwrap_or(1500),
        };
        let id = request.id.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut hosts = self.lock();
            let q = hosts.get_mut(&host)?;
            if q.last_poll.is_none_or(|t| t.elapsed() > FOLLOWING) || q.waiting.len() >= MAX_PENDING {
                return None;
            }
            q.pending.push(request);
            q.waiting.insert(id.clone(), tx);
            q.notify.notify_one();
        }
        let answer = tokio::time::timeout(PROBE_TIMEOUT * (PROBES + 2), rx).await.ok().and_then(Result::ok);
        if answer.is_none() {
            let mut hosts = self.lock();
            if let Some(q) = hosts.get_mut(&host) {
                q.pending.retain(|p| p.id != id);
                q.waiting.remove(&id);
            }
        }
        answer
    }

    /// The probes waiting for `host`, after up to `wait` for one.
    async fn take(&self, host: &str, wait: Duration) -> Vec<ProbeRequest> {
        let host = host.to_ascii_lowercase();
        let notify = {
            let mut hosts = self.lock();
            let q = hosts.entry(host.clone()).or_default();
            q.last_poll = Some(Instant::now());
            if !q.pending.is_empty() {
                return std::mem::take(&mut q.pending);
            }
            q.notify.clone()
        };
        let _ = tokio::time::timeout(wait, notify.notified()).await;
        let mut hosts = self.lock();
        let q = hosts.entry(host).or_default();
        q.last_poll = Some(Instant::now());
        std::mem::take(&mut q.pending)
    }

    /// Answers from `host`; answers to probes it was not asked for are ignored.
    fn answer(&self, host: &str, results: Vec<ProbeResult>) {
        let mut hosts = self.lock();
        let Some(q) = hosts.get_mut(&host.to_ascii_lowercase()) else { return };
        for r in results {
            if let Some(tx) = q.waiting.remove(&r.id) {
                let _ = tx.send(r);
            }
        }
    }
}

/// `GET /tessera/hosts/{host}/probes?timeout=S` (an agent asks for probes to send) and `POST`
/// (`{"results": [...]}`, what they found).
pub(crate) async fn handle(app: &App, req: &Req, host: &str) -> Result<Response, ArmError> {
    req.authorize("Tessera/hosts/write", &format!("/tessera/hosts/{host}"))?;
    crate::feed::check_host(host)?;
    if req.method == Method::GET {
        let wait = crate::feed::long_poll_wait(req, Duration::from_secs(20), MAX_WAIT)?;
        let probes = app.probes.take(host, wait).await;
        return Ok(json_value(StatusCode::OK, &json!({ "probes": probes })));
    }
    if req.method != Method::POST {
        return Err(method_not_allowed(req));
    }
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ArmError::bad_request("InvalidRequestContent", format!("The body is not JSON: {e}")))?;
    let results: Vec<ProbeResult> =
        serde_json::from_value(body.get("results").cloned().unwrap_or_default()).map_err(|e| {
            ArmError::bad_request("InvalidRequestContent", format!("'results' is not a list of probe results: {e}"))
        })?;
    if let Some(r) =
        results.iter().find(|r| r.probes_failed > r.probes_sent || r.latencies_ms.len() > r.probes_sent as usize)
    {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            format!("Probe result {} counts more failures or answers than probes sent.", r.id),
        ));
    }
    app.probes.answer(host, results);
    Ok(json_value(StatusCode::OK, &json!({})))
}

/// Adds what the probes found to a connectivity check's answer (see the module's description).
pub(crate) fn merge(answer: &mut Value, live: Option<ProbeResult>) {
    let Some(live) = live.filter(|l| l.probes_sent > 0) else { return };
    let logical = answer["connectionStatus"].as_str().unwrap_or("Unknown").to_string();
    let reachable = live.probes_failed < live.probes_sent;
    let status = if reachable { "Reachable" } else { "Unreachable" };
    let ms = |v: Option<f64>| v.map(|v| v.round() as u64);
    let l = &live.latencies_ms;
    answer["probesSent"] = json!(live.probes_sent);
    answer["probesFailed"] = json!(live.probes_failed);
    answer["avgLatencyInMs"] = json!(ms((!l.is_empty()).then(|| l.iter().sum::<f64>() / l.len() as f64)));
    answer["minLatencyInMs"] = json!(ms(l.iter().copied().reduce(f64::min)));
    answer["maxLatencyInMs"] = json!(ms(l.iter().copied().reduce(f64::max)));
    answer["connectionStatus"] = json!(status);
    answer["logicalConnectionStatus"] = json!(logical);
    if logical != status {
        let issue = json!({"origin": "Local", "severity": "Error", "type": "Platform", "context": [
            {"key": "liveProbe", "value": format!("{} of {} probes answered", live.probes_sent.saturating_sub(live.probes_failed), live.probes_sent)},
            {"key": "logicalWalk", "value": logical},
            {"key": "disagreement", "value": format!("the programs say {logical}; the packets say {status}")},
        ]});
        if let Some(issues) = answer["hops"].get_mut(0).and_then(|h| h.get_mut("issues")).and_then(Value::as_array_mut)
        {
            issues.push(issue);
        }
    }
}
