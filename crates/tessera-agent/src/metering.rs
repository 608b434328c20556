//! Peering usage, reported: the switch's running totals per VNet pair and direction go to the
//! controller (`POST /tessera/hosts/{host}/usage`), numbered within this run of the agent, so
//! that the controller counts each byte once (`tessera_engine::metering`).
//!
//! The totals are written to `<status>.usage.json` every second before they are sent. An agent
//! that stopped without sending its last totals (killed, or the controller away) finds them at
//! its next start, keeps them in `<status>.usage-pending.json` and sends them (the ended run's
//! last report) before its own; the controller counts what that run's earlier reports had not.
//! At most one second of traffic is lost to a `kill -9`; nothing to a controller away.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tessera_dataplane::counters::TrafficDirection;
use tessera_engine::metering::{PairCount, UsageReport};
use tessera_engine::pricing::Direction;
use tessera_model::{ArmError, Kind};
use tokio::sync::watch;

use crate::session::{Controllers, Session, unreachable};

/// How often reports are sent.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);
/// Reports of ended runs kept for sending (the oldest is dropped first).
const MAX_PENDING: usize = 16;

#[derive(Debug, Default)]
struct State {
    /// This run's latest report (recorded, maybe not sent).
    latest: Option<UsageReport>,
    /// The sequence of this run's last report the controller took.
    sent: u64,
    /// Ended runs' last reports not yet taken.
    pending: Vec<UsageReport>,
}

/// This run's usage, recorded and waiting to be sent.
#[derive(Debug, Clone)]
pub struct UsageLog {
    run: String,
    file: PathBuf,
    pending_file: PathBuf,
    state: Arc<Mutex<State>>,
}

fn read_reports(path: &Path) -> Vec<UsageReport> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let items = if value.is_array() { value } else { serde_json::Value::Array(vec![value]) };
    serde_json::from_value(items).unwrap_or_default()
}

fn write_reports(path: &Path, reports: &[UsageReport]) {
    if reports.is_empty() {
        let _ = std::fs::remove_file(path);
    } else {
        crate::vms::write_json(path, &serde_json::to_value(reports).unwrap_or_default());
    }
}

/// Pairs from the switch's counters (source, destination, direction, bytes, packets).
pub fn pairs(
    counted: &[(tessera_model::ResourceId, tessera_model::ResourceId, TrafficDirection, u64, u64)],
) -> Vec<PairCount> {
    counted
        .iter()
        .filter(|(a, b, ..)| a.kind() == Kind::VirtualNetwork && b.kind() == Kind::VirtualNetwork && a != b)
        .map(|(a, b, d, bytes, packets)| {
            let direction = match d {
                TrafficDirection::Egress => Direction::Egress,
                TrafficDirection::Ingress => Direction::Ingress,
            };
            PairCount { source: a.clone(), destination: b.clone(), direction, bytes: *bytes, packets: *packets }
        })
        .collect()
}

impl UsageLog {
    /// Starts this run's log next to the status file; what an earlier run left unsent is kept
    /// for sending.
    pub fn open(status: &Path) -> UsageLog {
        let file = status.with_extension("usage.json");
        let pending_file = status.with_extension("usage-pending.json");
        let mut pending = read_reports(&pending_file);
        pending.extend(read_reports(&file));
        let extra = pending.len().saturating_sub(MAX_PENDING);
        pending.drain(..extra);
        write_reports(&pending_file, &pending);
        let _ = std::fs::remove_file(&file);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let run = format!("{:x}-{:x}", std::process::id(), nanos);
        UsageLog { run, file, pending_file, state: Arc::new(Mutex::new(State { pending, ..State::default() })) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the running totals (every second, and once more at the end).
    pub fn record(&self, pairs: Vec<PairCount>) {
        let mut s = self.lock();
        let sequence = s.latest.as_ref().map_or(1, |r| r.sequence + 1);
        if s.latest.as_ref().is_some_and(|r| r.pairs == pairs) {
            return;
        }
        let report = UsageReport { run: self.run.clone(), sequence, pairs };
        crate::vms::write_json(&self.file, &serde_json::to_value(&report).unwrap_or_default());
        s.latest = Some(report);
    }

    /// What is due: ended runs' reports first, then this run's latest if not taken yet.
    fn due(&self) -> Vec<UsageReport> {
        let s = self.lock();
        let mut out = s.pending.clone();
        out.extend(s.latest.iter().filter(|r| r.sequence > s.sent && !r.pairs.is_empty()).cloned());
        out
    }

    /// The controller took `report`.
    fn taken(&self, report: &UsageReport) {
        let mut s = self.lock();
        if report.run == self.run {
            s.sent = s.sent.max(report.sequence);
        } else {
            s.pending.retain(|r| r != report);
            write_reports(&self.pending_file, &s.pending);
        }
    }

    /// Sends what is due; stops at the first failure (retried next time).
    pub async fn send(&self, session: &Session, host: &str) -> Result<(), ArmError> {
        for report in self.due() {
            let url = format!("{}/tessera/hosts/{host}/usage", session.endpoint);
            let r = session
                .client
                .post(url)
                .bearer_auth(&session.token)
                .json(&serde_json::to_value(&report).unwrap_or_default())
                .send()
                .await
                .map_err(unreachable)?;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let code = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                .unwrap_or_default();
            // A report the controller refuses for what it says would be refused forever: it is
            // dropped (logged). Anything else (busy, away, throttled, not signed in) is retried.
            let refused = matches!(status, 400 | 403 | 413 | 422) || (status == 409 && code == "UsageCounterWentBack");
            match status {
                200..=299 => self.taken(&report),
                _ if refused => {
                    tracing::warn!(status, run = %report.run, "usage report refused: {text}");
                    self.taken(&report);
                }
                _ => return Err(ArmError::with_status(status, "UsageReportFailed", text)),
            }
        }
        Ok(())
    }
}

/// Sends the log's reports every [`REPORT_EVERY`] until `finish` turns true, then once more.
pub async fn report(controllers: Arc<Controllers>, host: String, log: UsageLog, mut finish: watch::Receiver<bool>) {
    let mut session: Option<Session> = None;
    loop {
        let last = *finish.borrow();
        if session.is_none() {
            session = controllers.sign_in().await.ok();
        }
        if let Some(s) = &session
            && let Err(e) = log.send(s, &host).await
        {
            tracing::info!("usage not reported yet: {e}");
            if e.status == 503 {
                controllers.failed(s);
            }
            if matches!(e.status, 401 | 503) {
                session = None;
            }
        }
        if last {
            return;
        }
        let _ = tokio::time::timeout(REPORT_EVERY, finish.changed()).await;
    }
}
