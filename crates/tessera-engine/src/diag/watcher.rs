//! Network Watcher operations on the compiled programs: `nextHop` (NW1), `ipFlowVerify` (NW2)
//! and `connectivityCheck` (NW3), with Azure's request and response bodies.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_model::security::{Access, Direction};
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::trace::{Flow, HopType, Issue, IssueType, Origin, Trace, trace};
use crate::Engine;
use crate::compile::NicProgram;
use crate::compile::routes::{NextHopType, RouteSource};
use crate::compile::security::Protocol;

/// `NextHopParameters`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextHopParameters {
    /// The VM.
    pub target_resource_id: ResourceId,
    /// Source address (a NIC address of the VM).
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    /// Destination address.
    #[serde(rename = "destinationIPAddress")]
    pub destination_ip_address: String,
    /// The NIC, when the VM has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_nic_resource_id: Option<ResourceId>,
}

/// `VerificationIPFlowParameters`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpFlowParameters {
    /// The VM.
    pub target_resource_id: ResourceId,
    /// `Inbound` or `Outbound`.
    pub direction: Direction,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// Local port or `*`.
    pub local_port: String,
    /// Remote port or `*`.
    pub remote_port: String,
    /// Local address (a NIC address of the VM).
    #[serde(rename = "localIPAddress")]
    pub local_ip_address: String,
    /// Remote address.
    #[serde(rename = "remoteIPAddress")]
    pub remote_ip_address: String,
    /// The NIC, when the VM has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_nic_resource_id: Option<ResourceId>,
}

/// `ConnectivitySource`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectivitySource {
    /// The source VM.
    pub resource_id: ResourceId,
    /// Source port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// `ConnectivityDestination`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectivityDestination {
    /// The destination VM.
    #[serde(default)]
    pub resource_id: Option<ResourceId>,
    /// Or an address.
    #[serde(default)]
    pub address: Option<String>,
    /// Destination port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// `ConnectivityParameters`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectivityParameters {
    /// Source.
    pub source: ConnectivitySource,
    /// Destination.
    pub destination: ConnectivityDestination,
    /// `Tcp`, `Http`, `Https` or `Icmp` (default Tcp).
    #[serde(default)]
    pub protocol: Option<String>,
}

fn bad(code: &str, msg: String) -> ArmError {
    ArmError::bad_request(code, msg)
}

fn parse_ip(text: &str, field: &str) -> ArmResult<IpAddr> {
    text.trim().parse().map_err(|_| bad("InvalidIPAddress", format!("{field} '{text}' is not a valid IP address.")))
}

/// The VM's NIC to use: the one named, else the one holding `ip`, else the primary.
pub fn vm_nic(
    engine: &Engine,
    vm: &ResourceId,
    nic: Option<&ResourceId>,
    ip: Option<IpAddr>,
) -> ArmResult<Arc<NicProgram>> {
    let st = engine.state();
    let machine =
        st.vms.get(vm).ok_or_else(|| ArmError::resource_not_found(&vm.type_and_name(), vm.resource_group()))?;
    let nics: Vec<Arc<NicProgram>> =
        machine.properties.network_profile.network_interfaces.iter().filter_map(|r| engine.program(&r.id)).collect();
    if let Some(n) = nic {
        return nics.into_iter().find(|p| p.nic == *n).ok_or_else(|| {
            bad(
                "NetworkInterfaceNotAttachedToVirtualMachine",
                format!("Network interface {n} is not attached to virtual machine {vm}."),
            )
        });
    }
    if let Some(ip) = ip {
        if let Some(p) = nics.iter().find(|p| p.addresses.contains(&ip)) {
            return Ok(p.clone());
        }
        return Err(bad(
            "InvalidSourceIPAddress",
            format!("Address {ip} does not belong to any network interface of virtual machine {vm}."),
        ));
    }
    let primary = st.primary_nic_of(machine).map(|n| n.id.clone());
    nics.into_iter().find(|p| Some(&p.nic) == primary.as_ref()).ok_or_else(|| {
        bad("VirtualMachineHasNoNetworkInterface", format!("Virtual machine {vm} has no usable network interface."))
    })
}

/// NW1 `nextHop` → `{nextHopType, nextHopIpAddress?, routeTableId}`.
pub fn next_hop(engine: &Engine, p: &NextHopParameters) -> ArmResult<Value> {
    let src = parse_ip(&p.source_ip_address, "sourceIPAddress")?;
    let dst = parse_ip(&p.destination_ip_address, "destinationIPAddress")?;
    let nic = vm_nic(engine, &p.target_resource_id, p.target_nic_resource_id.as_ref(), Some(src))?;
    let Some(r) = nic.subnet.routes.lookup(dst) else {
        return Ok(json!({ "nextHopType": "None", "routeTableId": "System Route" }));
    };
    let kind = match r.next_hop {
        NextHopType::VnetLocal => "VirtualNetwork",
        NextHopType::VNetPeering | NextHopType::VNetGlobalPeering => "VirtualNetworkPeering",
        NextHopType::VirtualNetworkGateway => "VirtualNetworkGateway",
        NextHopType::Internet => "Internet",
        NextHopType::VirtualAppliance => "VirtualAppliance",
        NextHopType::None => "None",
    };
    let table = match (r.source, &r.route_table) {
        (RouteSource::User, Some(t)) => t.to_string(),
        _ => "System Route".to_string(),
    };
    let mut v = json!({ "nextHopType": kind, "routeTableId": table });
    if let (Some(ip), Some(obj)) = (r.next_hop_ips.first(), v.as_object_mut()) {
        obj.insert("nextHopIpAddress".into(), json!(ip.to_string()));
    }
    Ok(v)
}

fn parse_port(text: &str, field: &str) -> ArmResult<Option<u16>> {
    let t = text.trim();
    if t == "*" {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| bad("InvalidPort", format!("{field} '{text}' is not a port number or '*'.")))
}

/// NW2 `ipFlowVerify` → `{access, ruleName, ruleId}`. Outbound: NIC NSG then subnet NSG;
/// inbound: subnet NSG then NIC NSG (N3). The answer names the first denying rule, or the
/// allowing rule of the last layer evaluated.
pub fn ip_flow_verify(engine: &Engine, p: &IpFlowParameters) -> ArmResult<Value> {
    let local = parse_ip(&p.local_ip_address, "localIPAddress")?;
    let remote = parse_ip(&p.remote_ip_address, "remoteIPAddress")?;
    let proto = match p.protocol.to_ascii_uppercase().as_str() {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        other => return Err(bad("InvalidProtocol", format!("protocol '{other}' must be TCP or UDP."))),
    };
    let lport = parse_port(&p.local_port, "localPort")?;
    let rport = parse_port(&p.remote_port, "remotePort")?;
    let nic = vm_nic(engine, &p.target_resource_id, p.target_nic_resource_id.as_ref(), Some(local))?;
    let (layers, src, sport, dst, dport) = match p.direction {
        Direction::Outbound => ([&nic.nsg, &nic.subnet.nsg], local, lport, remote, rport),
        Direction::Inbound => ([&nic.subnet.nsg, &nic.nsg], remote, rport, local, lport),
    };
    let mut decided: Option<(Access, String)> = None;
    for nsg in layers.into_iter().flatten() {
        if let Some(r) = nsg.evaluate_spec(p.direction, proto, src, sport, dst, dport) {
            decided = Some((r.access, r.name.clone()));
            if r.access == Access::Deny {
                break;
            }
        }
    }
    let (access, rule) = decided.unwrap_or((Access::Allow, String::new()));
    Ok(json!({ "access": access.as_str(), "ruleName": rule, "ruleId": "" }))
}

/// Traces a VM-to-address flow.
pub fn trace_from_vm(engine: &Engine, vm: &ResourceId, dst: IpAddr, proto: Protocol, dport: u16) -> ArmResult<Trace> {
    let nic = vm_nic(engine, vm, None, None)?;
    let src = nic
        .addresses
        .first()
        .copied()
        .ok_or_else(|| bad("VirtualMachineHasNoAddress", format!("{vm} has no address.")))?;
    Ok(trace(engine, &nic, Flow::new(proto, src, 49152, dst, dport)))
}

/// A probe is an exchange: when it reaches a NIC, the reply must come back from there to the
/// source (routes on the way back; NSGs let a reply pass, N4). A reply that cannot makes the
/// destination unreachable, with the reply's issue (context `Direction=Reply`) on the last hop.
fn with_reply(engine: &Engine, mut t: Trace, proto: Protocol, dport: u16) -> Trace {
    let (Some(first), Some(last)) = (t.hops.first(), t.hops.last()) else { return t };
    if !t.reachable || last.kind != HopType::Destination {
        return t;
    }
    let (Some(src), Some(at), Some(nic)) = (first.address, last.address, last.resource.clone()) else { return t };
    let Some(program) = engine.program(&nic) else { return t };
    let reply = Flow { proto, src: at, sport: dport, dst: src, dport: 49152, established: true };
    let back = trace(engine, &program, reply);
    if back.reachable {
        return t;
    }
    t.reachable = false;
    let issue = back.hops.iter().rev().find_map(|h| h.issues.first()).cloned();
    if let (Some(mut issue), Some(hop)) = (issue, t.hops.last_mut()) {
        issue.context.push(("Direction".to_string(), "Reply".to_string()));
        hop.issues.push(issue);
    }
    t
}

/// The primary address of a VM.
pub fn vm_address(engine: &Engine, vm: &ResourceId) -> ArmResult<IpAddr> {
    let nic = vm_nic(engine, vm, None, None)?;
    nic.addresses.first().copied().ok_or_else(|| bad("VirtualMachineHasNoAddress", format!("{vm} has no address.")))
}

/// NW3 `connectivityCheck` (logical: evaluated on the programs, no probes sent).
/// What a live probe of a connectivity check sends: from the source VM's NIC to the
/// destination's address (TCP for Tcp, Http and Https; ICMP echo for Icmp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTarget {
    /// The source VM's NIC (its port sends the probe).
    pub nic: ResourceId,
    /// The source VM.
    pub vm: ResourceId,
    /// The destination address.
    pub destination: IpAddr,
    /// `Tcp` or `Icmp`.
    pub protocol: String,
    /// The destination port (TCP).
    pub port: u16,
}

/// A live probe a host agent is asked to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRequest {
    /// Its id (the answer names it).
    pub id: String,
    /// What to send.
    pub target: ProbeTarget,
    /// How many probes.
    pub count: u32,
    /// How long each waits for its answer, in milliseconds.
    pub timeout_ms: u64,
}

/// What the probes found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    /// The request's id.
    pub id: String,
    /// Probes sent.
    pub probes_sent: u32,
    /// Probes not answered.
    pub probes_failed: u32,
    /// The round trips of the answered ones, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Why no probe could be sent (no namespace VM for the NIC, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The probe target of a connectivity check (checked as the check itself checks it). A UDP
/// check has none: nothing answers a UDP probe that arrived.
pub fn probe_target(engine: &Engine, p: &ConnectivityParameters) -> ArmResult<ProbeTarget> {
    let (destination, proto, port) = check_target(engine, p)?;
    if proto == Protocol::Udp {
        return Err(bad("NoLiveProbeForUdp", "A UDP check is not probed live.".into()));
    }
    let nic = vm_nic(engine, &p.source.resource_id, None, None)?;
    let protocol = if proto == Protocol::Icmp { "Icmp" } else { "Tcp" };
    Ok(ProbeTarget {
        nic: nic.nic.clone(),
        vm: p.source.resource_id.clone(),
        destination,
        protocol: protocol.into(),
        port,
    })
}

/// The destination address, protocol and port a check is about.
fn check_target(engine: &Engine, p: &ConnectivityParameters) -> ArmResult<(IpAddr, Protocol, u16)> {
    if p.source.resource_id.kind() != Kind::VirtualMachine {
        return Err(bad(
            "InvalidSource",
            format!("source.resourceId {} must be a virtual machine.", p.source.resource_id),
        ));
    }
    let dst = match (&p.destination.resource_id, &p.destination.address) {
        (Some(id), _) => vm_address(engine, id)?,
        (None, Some(a)) => parse_ip(a, "destination.address")?,
        (None, None) => return Err(bad("InvalidDestination", "destination needs resourceId or address.".into())),
    };
    let proto_text = p.protocol.clone().unwrap_or_else(|| "Tcp".into());
    let proto = Protocol::parse(&proto_text)
        .ok_or_else(|| bad("InvalidProtocol", format!("protocol '{proto_text}' must be Tcp, Http, Https or Icmp.")))?;
    let default_port = match proto_text.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => 0,
    };
    Ok((dst, proto, p.destination.port.unwrap_or(default_port)))
}

pub fn connectivity_check(engine: &Engine, p: &ConnectivityParameters) -> ArmResult<Value> {
    let (dst, proto, port) = check_target(engine, p)?;
    let t = trace_from_vm(engine, &p.source.resource_id, dst, proto, port)?;
    Ok(connectivity_json(&with_reply(engine, t, proto, port)))
}

fn origin(o: Origin) -> &'static str {
    match o {
        Origin::Local => "Local",
        Origin::Inbound => "Inbound",
        Origin::Outbound => "Outbound",
    }
}

fn issue_json(i: &Issue) -> Value {
    let kind = match i.kind {
        IssueType::NetworkSecurityRule => "NetworkSecurityRule",
        IssueType::UserDefinedRoute => "UserDefinedRoute",
        IssueType::Platform => "Platform",
    };
    let context: Vec<Value> = i.context.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
    json!({ "origin": origin(i.origin), "severity": "Error", "type": kind, "context": context })
}

fn hop_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i + 1, i + 1)
}

/// The `ConnectivityInformation` body of a trace.
pub fn connectivity_json(t: &Trace) -> Value {
    let n = t.hops.len();
    let hops: Vec<Value> = t
        .hops
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let resource = match (&h.resource, h.kind) {
                (Some(r), _) => r.to_string(),
                (None, HopType::Internet) => "Internet".to_string(),
                (None, _) => "Unknown".to_string(),
            };
            let kind = match (h.kind, &h.resource) {
                (HopType::Destination, None) => "Destination",
                (k, _) => k.as_str(),
            };
            json!({
                "type": kind,
                "id": hop_id(i),
                "address": h.address.map(|a| a.to_string()),
                "resourceId": resource,
                "nextHopIds": if i + 1 < n { vec![hop_id(i + 1)] } else { vec![] },
                "previousHopIds": if i > 0 { vec![hop_id(i - 1)] } else { vec![] },
                "issues": h.issues.iter().map(issue_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "hops": hops,
        "connectionStatus": if t.reachable { "Reachable" } else { "Unreachable" },
        "avgLatencyInMs": null,
        "minLatencyInMs": null,
        "maxLatencyInMs": null,
        "probesSent": 0,
        "probesFailed": 0,
    })
}
