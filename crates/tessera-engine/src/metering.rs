//! Peering metering ($1–$7): what host agents counted, turned into hourly usage per peering
//! link and meter.
//!
//! An agent counts bytes per (source VNet, destination VNet, direction) from the moment it
//! starts (a *run*) and reports the running totals, numbered ([`UsageReport`]). The meter book
//! keeps, per host, the last totals of its recent runs ([`RunCursor`]), so a report is counted
//! once whatever happens: a report seen again (a retry after a lost answer) is a duplicate; the
//! difference between two reports of one run is what crossed in between; the first report of a
//! new run (the agent restarted) counts from zero; the last report of a run that ended (the
//! agent sends what it left on disk when it starts again) adds what the previous report of that
//! run had not. The difference lands in the hour the report arrives (`now`, passed in: the
//! book reads no clock).
//!
//! Each crossing is billed to the VNet that pays it ($2): egress to the sending VNet, ingress
//! to the receiving one, with the meter of the pair's regions ($3, $4). Traffic to a remote
//! gateway crossed the peering, so it is counted like any other ($5); within one VNet nothing
//! is counted ($6): the switch counts only crossings.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tessera_model::{ArmError, Kind, ResourceId};

use crate::Engine;
use crate::pricing::{Direction, Meter, PriceSheet};

/// Bytes in a GB as usage is billed (2^30).
pub const GB: f64 = 1_073_741_824.0;
/// Most VNet pairs in one report.
pub const MAX_PAIRS: usize = 4096;
/// Runs of one host remembered (the least recently reported is forgotten first).
pub const MAX_RUNS: usize = 16;
/// Longest run id.
const MAX_RUN_LEN: usize = 64;
/// Seconds in a usage record.
pub const HOUR: u64 = 3600;
/// Minutes of per-minute series kept (for metrics finer than an hour).
pub const MINUTES_KEPT: u64 = 24 * 60;

/// One VNet pair's running totals in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairCount {
    /// The VNet the traffic left.
    pub source: ResourceId,
    /// The VNet it entered.
    pub destination: ResourceId,
    /// Egress: counted as it left the source; Ingress: as it entered the destination.
    pub direction: Direction,
    /// Bytes (whole frames).
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

/// What an agent reports: its run's running totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageReport {
    /// The agent's run (a new one each time it starts).
    pub run: String,
    /// Reports of one run are numbered from 1.
    pub sequence: u64,
    /// Every pair with traffic since the run began.
    pub pairs: Vec<PairCount>,
}

/// What the book remembers of one run of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunCursor {
    /// The run.
    pub run: String,
    /// Its last report counted.
    pub sequence: u64,
    /// When that report arrived (seconds since the epoch).
    pub seen: u64,
    /// Its totals then.
    pub pairs: Vec<PairCount>,
}

/// What a usage record is for: an hour (or, in the per-minute series, a minute), the VNet
/// that pays, the other VNet, the direction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageKey {
    /// Hours (minutes) since the epoch.
    pub hour: u64,
    /// The VNet billed.
    pub vnet: ResourceId,
    /// The VNet at the other end of the crossing.
    pub remote: ResourceId,
    /// Egress (the billed VNet sent) or ingress (it received).
    pub direction: Direction,
}

/// An hour of one meter of one peering link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    /// What it is for.
    pub key: UsageKey,
    /// The meter ($3, $4, $7).
    pub meter: Meter,
    /// The billed VNet's region.
    pub location: String,
    /// The billed VNet's link to the other (None when no link joins them any more).
    pub link: Option<ResourceId>,
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

impl UsageRecord {
    /// GB metered.
    pub fn gb(&self) -> f64 {
        self.bytes as f64 / GB
    }

    /// Its cost under `sheet` (None where the sheet has no rate for the meter).
    pub fn cost(&self, sheet: &PriceSheet) -> Option<f64> {
        sheet.rate(self.meter).map(|r| r * self.gb())
    }
}

/// What taking a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Already counted (a retry, or older than what was counted).
    Duplicate,
    /// Counted: the records it changed, and bytes it could not bill (a VNet no longer known).
    Counted {
        /// Records changed.
        records: Vec<UsageKey>,
        /// Minutes of the per-minute series changed, and those that aged out.
        minutes: Vec<UsageKey>,
        /// Minutes older than [`MINUTES_KEPT`], removed.
        expired: Vec<UsageKey>,
        /// Bytes of pairs whose VNets (or regions) are unknown.
        unbilled: u64,
    },
}

/// Every host's runs and every usage record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meterbook {
    /// Runs by host (lowercase), most recently reported last.
    pub runs: BTreeMap<String, Vec<RunCursor>>,
    /// Usage records.
    pub records: BTreeMap<UsageKey, UsageRecord>,
    /// The last [`MINUTES_KEPT`] minutes: (bytes, packets) per minute (`UsageKey::hour` holds
    /// the minute), for metrics.
    pub minutes: BTreeMap<UsageKey, (u64, u64)>,
}

fn invalid(message: impl Into<String>) -> ArmError {
    ArmError::bad_request("InvalidUsageReport", message)
}

/// Checks a report's shape: a run id, a sequence, distinct VNet pairs.
fn check(report: &UsageReport) -> Result<(), ArmError> {
    let run_ok = !report.run.is_empty()
        && report.run.len() <= MAX_RUN_LEN
        && report.run.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !run_ok {
        return Err(invalid(format!("'run' is 1 to {MAX_RUN_LEN} letters, digits, '-', '_' or '.'.")));
    }
    if report.sequence == 0 {
        return Err(invalid("'sequence' counts from 1."));
    }
    if report.pairs.len() > MAX_PAIRS {
        return Err(ArmError::with_status(
            413,
            "UsageReportTooLarge",
            format!("A usage report holds at most {MAX_PAIRS} VNet pairs; this one has {}.", report.pairs.len()),
        ));
    }
    let mut seen = HashSet::new();
    for p in &report.pairs {
        if p.source.kind() != Kind::VirtualNetwork || p.destination.kind() != Kind::VirtualNetwork {
            return Err(invalid(format!("'{}' -> '{}' is not a pair of virtual networks.", p.source, p.destination)));
        }
        if p.source == p.destination {
            return Err(invalid(format!("Traffic within '{}' is not peering traffic ($6).", p.source)));
        }
        if p.bytes < p.packets {
            return Err(invalid(format!("'{}' -> '{}' has fewer bytes than packets.", p.source, p.destination)));
        }
        if !seen.insert((&p.source, &p.destination, p.direction)) {
            return Err(invalid(format!("'{}' -> '{}' is reported twice.", p.source, p.destination)));
        }
    }
    Ok(())
}

/// The billed VNet, the other one, and the meter of a crossing counted in `direction`: egress
/// is billed to the source, ingress to the destination ($2), at the pair's rate ($3, $4).
/// None when a VNet or its region is unknown.
fn bill(engine: &Engine, p: &PairCount) -> Option<(ResourceId, ResourceId, Meter, String, Option<ResourceId>)> {
    let vnets = &engine.state().vnets;
    let (source, destination) = (vnets.get(&p.source)?, vnets.get(&p.destination)?);
    let (payer, remote) = match p.direction {
        Direction::Egress => (source, destination),
        Direction::Ingress => (destination, source),
    };
    let scope = crate::pricing::scope(&source.location, &destination.location, &payer.location)?;
    let link = payer
        .properties
        .virtual_network_peerings
        .iter()
        .find(|l| l.properties.remote_virtual_network.as_ref().is_some_and(|r| r.id == remote.id))
        .and_then(|l| l.id.clone());
    let location = tessera_model::location::find(&payer.location).map_or(payer.location.clone(), |l| l.name.into());
    Some((payer.id.clone(), remote.id.clone(), Meter { direction: p.direction, scope }, location, link))
}

impl Meterbook {
    /// Counts a report of `host` received at `now` (seconds since the epoch). A report that is
    /// refused changes nothing.
    pub fn take(&mut self, engine: &Engine, host: &str, report: &UsageReport, now: u64) -> Result<Taken, ArmError> {
        check(report)?;
        let host = host.to_ascii_lowercase();
        let runs = self.runs.get(&host);
        let cursor = runs.and_then(|r| r.iter().find(|c| c.run == report.run));
        if cursor.is_some_and(|c| report.sequence <= c.sequence) {
            return Ok(Taken::Duplicate);
        }
        // The run's totals so far, found by pair (a report holds up to MAX_PAIRS of them).
        let mut totals = cursor.map(|c| c.pairs.clone()).unwrap_or_default();
        let key = |p: &PairCount| (p.source.clone(), p.destination.clone(), p.direction);
        let index: HashMap<_, usize> = totals.iter().enumerate().map(|(i, q)| (key(q), i)).collect();
        let mut deltas = Vec::new();
        for p in &report.pairs {
            let (bytes, packets) = index.get(&key(p)).map_or((0, 0), |i| (totals[*i].bytes, totals[*i].packets));
            if p.bytes < bytes || p.packets < packets {
                return Err(ArmError::with_status(
                    409,
                    "UsageCounterWentBack",
                    format!(
                        "Run '{}' reported fewer bytes for '{}' -> '{}' than before ({} < {bytes}).",
                        report.run, p.source, p.destination, p.bytes
                    ),
                ));
            }
            if p.bytes > bytes {
                deltas.push((p, p.bytes - bytes, p.packets - packets));
            }
        }
        // Everything is checked: count.
        for p in &report.pairs {
            match index.get(&key(p)) {
                Some(i) => totals[*i] = p.clone(),
                None => totals.push(p.clone()),
            }
        }
        let runs = self.runs.entry(host).or_default();
        runs.retain(|c| c.run != report.run);
        runs.push(RunCursor { run: report.run.clone(), sequence: report.sequence, seen: now, pairs: totals });
        if runs.len() > MAX_RUNS {
            runs.sort_by_key(|c| c.seen);
            let extra = runs.len() - MAX_RUNS;
            runs.drain(..extra);
        }
        let mut records = Vec::new();
        let mut minutes = Vec::new();
        let mut unbilled = 0u64;
        for (p, bytes, packets) in deltas {
            let Some((vnet, remote, meter, location, link)) = bill(engine, p) else {
                unbilled = unbilled.saturating_add(bytes);
                continue;
            };
            let key = UsageKey { hour: now / HOUR, vnet, remote, direction: p.direction };
            let r = self.records.entry(key.clone()).or_insert_with(|| UsageRecord {
                key: key.clone(),
                meter,
                location,
                link: None,
                bytes: 0,
                packets: 0,
            });
            r.bytes = r.bytes.saturating_add(bytes);
            r.packets = r.packets.saturating_add(packets);
            r.meter = meter;
            r.link = link.or(r.link.take());
            let minute = UsageKey { hour: now / 60, ..key.clone() };
            let m = self.minutes.entry(minute.clone()).or_default();
            *m = (m.0.saturating_add(bytes), m.1.saturating_add(packets));
            records.push(key);
            minutes.push(minute);
        }
        let oldest = (now / 60).saturating_sub(MINUTES_KEPT);
        // Keys order by minute first: the expired ones lead.
        let expired: Vec<UsageKey> = self.minutes.keys().take_while(|k| k.hour < oldest).cloned().collect();
        for k in &expired {
            self.minutes.remove(k);
        }
        Ok(Taken::Counted { records, minutes, expired, unbilled })
    }

    /// The records of a subscription (the billed VNet's) whose hour starts in `[from, to)`
    /// (seconds since the epoch), ordered by hour, VNet, remote VNet and direction.
    pub fn records_of<'a>(
        &'a self,
        subscription: &'a str,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = &'a UsageRecord> + 'a {
        self.records.values().filter(move |r| {
            let start = r.key.hour * HOUR;
            r.key.vnet.subscription().eq_ignore_ascii_case(subscription) && start >= from && start < to
        })
    }
}
