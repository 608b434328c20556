//! `tessera check`: Network Watcher's connectivityCheck from a VM to a VM or an address, on a
//! file or through the running server; `--live` insists on the server's real probes (sent by
//! the agent that runs the source VM) beside the walk of the programs.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;
use tessera_engine::diag::{resolve, watcher};
use tessera_model::{ArmError, Kind};

use crate::target::Target;
use crate::{CheckProto, print_json, proto_of, render};

/// Where the question goes and how the answer prints.
pub(crate) struct Question<'a> {
    /// A topology file (none: the running server).
    pub(crate) file: Option<&'a Path>,
    /// The server's credentials.
    pub(crate) credentials: &'a Path,
    /// Print the ARM body.
    pub(crate) json: bool,
}

/// `name:port` or `ip:port` (IPv6 as `[addr]:port`).
fn split_port(text: &str) -> (&str, Option<u16>) {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        let host = text.rsplit_once(':').map_or(text, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
        return (host, Some(sa.port()));
    }
    if text.parse::<IpAddr>().is_ok() {
        return (text, None);
    }
    match text.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().ok()),
        _ => (text, None),
    }
}

/// Runs the check: exit 0 when the destination is reachable, 1 when not.
pub(crate) fn run(
    q: Question<'_>,
    (from, to, proto): (&str, &str, CheckProto),
    live: bool,
) -> Result<ExitCode, ArmError> {
    if live && q.file.is_some() {
        return Err(ArmError::bad_request(
            "LiveCheckNeedsServer",
            "--live sends real probes through the running server's agent; a file has no packets to send.",
        ));
    }
    let t = Target::open(q.file, q.credentials)?;
    let source = resolve::resolve(&t.engine, Kind::VirtualMachine, from)?;
    let (_, proto_name, default_port) = proto_of(proto);
    let (target, port) = split_port(to);
    let mut destination = watcher::ConnectivityDestination { port: port.or(Some(default_port)), ..Default::default() };
    match target.parse::<IpAddr>() {
        Ok(ip) => destination.address = Some(ip.to_string()),
        Err(_) => destination.resource_id = Some(resolve::resolve(&t.engine, Kind::VirtualMachine, target)?),
    }
    let params = watcher::ConnectivityParameters {
        source: watcher::ConnectivitySource { resource_id: source, port: None },
        destination,
        protocol: Some(proto_name.into()),
    };
    let body = t.connectivity_check(&params)?;
    if live && body.get("probesSent").and_then(Value::as_u64).unwrap_or(0) == 0 {
        return Err(ArmError::with_status(
            409,
            "NoLiveProbe",
            format!("No probe was sent: no agent that runs {from} follows the server (its VM must be a namespace VM)."),
        ));
    }
    if q.json {
        print_json(&body);
    } else {
        render::connectivity(&body);
    }
    let ok = body.get("connectionStatus").and_then(Value::as_str) == Some("Reachable");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
