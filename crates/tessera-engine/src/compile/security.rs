//! Compiled NSGs (spec §4): rules sorted by priority, service tags expanded (N6), evaluation by
//! first match (N2, N3).

use std::collections::BTreeMap;
use std::net::IpAddr;

use tessera_model::ResourceId;
use tessera_model::prefix::IpNet;
use tessera_model::security::{Access, Direction, NetworkSecurityGroup, RuleProtocol};

use crate::ops::{parse_address, parse_port_range};

/// The Azure host address (DHCP, DNS, health probes).
pub const AZURE_HOST: &str = "168.63.129.16/32";

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
}

impl Protocol {
    /// Parses `tcp`, `UDP`, `icmp`, ….
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "http" | "https" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "icmp" => Some(Protocol::Icmp),
            _ => None,
        }
    }
}

/// One side's addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum AddressMatch {
    /// `*`.
    Any,
    /// The listed prefixes (tags already expanded).
    Prefixes(Vec<IpNet>),
}

impl AddressMatch {
    fn matches(&self, ip: IpAddr) -> bool {
        match self {
            AddressMatch::Any => true,
            AddressMatch::Prefixes(p) => p.iter().any(|n| n.contains(&ip)),
        }
    }
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// `securityRules/<name>` or `defaultSecurityRules/<name>`.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// Direction.
    pub direction: Direction,
    /// Access.
    pub access: Access,
    /// Protocol.
    pub protocol: RuleProtocol,
    /// Sources.
    pub src: AddressMatch,
    /// Destinations.
    pub dst: AddressMatch,
    /// Source ports.
    pub src_ports: Vec<(u16, u16)>,
    /// Destination ports.
    pub dst_ports: Vec<(u16, u16)>,
    /// Whether it is one of the six default rules.
    pub default: bool,
}

impl CompiledRule {
    /// Whether the rule matches a flow.
    pub fn matches(&self, proto: Protocol, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> bool {
        self.matches_spec(proto, src, Some(sport), dst, Some(dport))
    }

    /// Like [`CompiledRule::matches`]; a port of `None` ("any port", as `*` in ipFlowVerify)
    /// matches only rules that cover every port.
    pub fn matches_spec(
        &self,
        proto: Protocol,
        src: IpAddr,
        sport: Option<u16>,
        dst: IpAddr,
        dport: Option<u16>,
    ) -> bool {
        let proto_ok = match self.protocol {
            RuleProtocol::Any => true,
            RuleProtocol::Tcp => proto == Protocol::Tcp,
            RuleProtocol::Udp => proto == Protocol::Udp,
            RuleProtocol::Icmp => proto == Protocol::Icmp,
            RuleProtocol::Esp | RuleProtocol::Ah => false,
        };
        let ports = |ranges: &[(u16, u16)], p: Option<u16>| {
            proto == Protocol::Icmp
                || match p {
                    Some(p) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&p)),
                    None => ranges.contains(&(0, 65535)),
                }
        };
        proto_ok
            && self.src.matches(src)
            && self.dst.matches(dst)
            && ports(&self.src_ports, sport)
            && ports(&self.dst_ports, dport)
    }
}

/// Tag expansions in force for one subnet.
#[derive(Debug, Clone, Default)]
pub struct TagContext {
    /// `VirtualNetwork` (N6).
    pub virtual_network: Vec<IpNet>,
}

impl TagContext {
    /// The prefixes a tag stands for; `None` for `*` (any).
    pub fn expand(&self, tag: &str) -> Option<Vec<IpNet>> {
        if tag == "*" {
            return None;
        }
        if tag.eq_ignore_ascii_case("VirtualNetwork") {
            return Some(self.virtual_network.clone());
        }
        if tag.eq_ignore_ascii_case("AzureLoadBalancer") {
            return Some(azure_load_balancer());
        }
        if tag.eq_ignore_ascii_case("Internet") {
            return Some(internet().to_vec());
        }
        if crate::ops::is_azure_service_tag(tag) {
            // An Azure service's addresses: none of them is in Tessera's networks.
            return Some(Vec::new());
        }
        parse_address(tag).map(|n| vec![n])
    }

    /// The tag map of an effective NSG.
    pub fn tag_map(&self) -> BTreeMap<String, Vec<IpNet>> {
        let mut m = BTreeMap::new();
        m.insert("VirtualNetwork".to_string(), self.virtual_network.clone());
        m.insert("AzureLoadBalancer".to_string(), azure_load_balancer());
        m.insert("Internet".to_string(), internet().to_vec());
        m
    }
}

/// The `AzureLoadBalancer` tag: the Azure host and its IPv6 probe source (O9).
pub fn azure_load_balancer() -> Vec<IpNet> {
    [AZURE_HOST, "fe80::1234:5678:9abc/128"].iter().filter_map(|s| s.parse().ok()).collect()
}

/// Public, routable IPv4 space: everything outside private, shared, loopback, link-local,
/// multicast and reserved ranges. Computed once.
pub fn internet() -> &'static [IpNet] {
    static INTERNET: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
        let excluded: Vec<IpNet> = [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "224.0.0.0/3",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        let mut out = Vec::new();
        split(IpNet::V4(Default::default()), &excluded, &mut out);
        out
    });
    &INTERNET
}

/// Whether an address is routed on the internet.
pub fn is_internet(ip: IpAddr) -> bool {
    internet().iter().any(|p| p.contains(&ip))
}

fn split(net: IpNet, excluded: &[IpNet], out: &mut Vec<IpNet>) {
    if excluded.iter().any(|e| e.contains(&net)) {
        return;
    }
    if !excluded.iter().any(|e| net.contains(e)) {
        out.push(net);
        return;
    }
    if let Ok(halves) = net.subnets(net.prefix_len() + 1) {
        for h in halves {
            split(h, excluded, out);
        }
    }
}

/// The rules of one direction that can match each destination port: the port space cut
/// into segments at every rule boundary, each segment listing (in priority order) the rules
/// whose destination ranges cover it. A TCP or UDP lookup then checks only those rules instead
/// of all of them.
#[derive(Debug, Clone, Default)]
pub struct PortIndex {
    /// The first port of each segment (sorted; the first is 0).
    starts: Vec<u16>,
    /// Rule indices per segment, ascending (= priority order).
    rules: Vec<Vec<u32>>,
}

/// Beyond this many (segment, rule) pairs the index costs more memory than it saves time, and
/// lookups scan the rules.
const PORT_INDEX_LIMIT: usize = 1 << 20;

impl PortIndex {
    fn build(rules: &[CompiledRule]) -> Option<PortIndex> {
        let mut starts: Vec<u32> = vec![0];
        for r in rules {
            for (a, b) in &r.dst_ports {
                starts.push(u32::from(*a));
                starts.push(u32::from(*b) + 1);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        starts.retain(|s| *s <= 65535);
        let starts: Vec<u16> = starts.into_iter().filter_map(|s| u16::try_from(s).ok()).collect();
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); starts.len()];
        let mut total = 0usize;
        for (i, r) in rules.iter().enumerate() {
            for (a, b) in &r.dst_ports {
                let first = starts.partition_point(|s| s < a);
                let last = starts.partition_point(|s| s <= b);
                total += last - first;
                if total > PORT_INDEX_LIMIT {
                    return None;
                }
                for list in &mut lists[first..last] {
                    if list.last() != Some(&u32::try_from(i).unwrap_or(u32::MAX)) {
                        list.push(u32::try_from(i).unwrap_or(u32::MAX));
                    }
                }
            }
        }
        Some(PortIndex { starts, rules: lists })
    }

    /// The candidate rules for a destination port.
    fn candidates(&self, port: u16) -> &[u32] {
        let seg = self.starts.partition_point(|s| *s <= port).saturating_sub(1);
        self.rules.get(seg).map_or(&[], Vec::as_slice)
    }
}

/// An NSG compiled for one subnet's tag context.
#[derive(Debug, Clone)]
pub struct CompiledNsg {
    /// The NSG.
    pub id: ResourceId,
    /// Inbound rules by priority.
    pub inbound: Vec<CompiledRule>,
    /// Outbound rules by priority.
    pub outbound: Vec<CompiledRule>,
    /// Expansions used.
    pub tags: TagContext,
    /// Inbound rules by destination port (None when too large to index).
    pub inbound_by_port: Option<PortIndex>,
    /// Outbound rules by destination port.
    pub outbound_by_port: Option<PortIndex>,
}

/// A side of a rule with the addresses of its application security groups (a side names
/// either prefixes or groups).
fn with_groups(
    side: AddressMatch,
    groups: &[tessera_model::envelope::SubResource],
    members: &dyn Fn(&ResourceId) -> Vec<IpNet>,
) -> AddressMatch {
    if groups.is_empty() {
        return side;
    }
    AddressMatch::Prefixes(groups.iter().flat_map(|g| members(&g.id)).collect())
}

impl CompiledNsg {
    /// Compiles an NSG with the tags of a subnet; `members` gives an application security
    /// group's addresses.
    pub fn new(nsg: &NetworkSecurityGroup, tags: &TagContext, members: &dyn Fn(&ResourceId) -> Vec<IpNet>) -> Self {
        let mut inbound = Vec::new();
        let mut outbound = Vec::new();
        let all = nsg
            .properties
            .security_rules
            .iter()
            .map(|r| (r, false))
            .chain(nsg.properties.default_security_rules.iter().map(|r| (r, true)));
        for (r, default) in all {
            let p = &r.properties;
            let side = |list: Vec<String>| -> AddressMatch {
                let mut out = Vec::new();
                for a in &list {
                    match tags.expand(a) {
                        None => return AddressMatch::Any,
                        Some(v) => out.extend(v),
                    }
                }
                AddressMatch::Prefixes(out)
            };
            let ports = |list: Vec<String>| list.iter().filter_map(|s| parse_port_range(s)).collect::<Vec<_>>();
            let c = CompiledRule {
                name: format!("{}/{}", if default { "defaultSecurityRules" } else { "securityRules" }, r.name),
                priority: p.priority,
                direction: p.direction,
                access: p.access,
                protocol: p.protocol,
                src: with_groups(side(p.sources()), &p.source_application_security_groups, members),
                dst: with_groups(side(p.destinations()), &p.destination_application_security_groups, members),
                src_ports: ports(p.source_ports()),
                dst_ports: ports(p.destination_ports()),
                default,
            };
            match p.direction {
                Direction::Inbound => inbound.push(c),
                Direction::Outbound => outbound.push(c),
            }
        }
        inbound.sort_by_key(|r| r.priority);
        outbound.sort_by_key(|r| r.priority);
        let (inbound_by_port, outbound_by_port) = (PortIndex::build(&inbound), PortIndex::build(&outbound));
        CompiledNsg { id: nsg.id.clone(), inbound, outbound, tags: tags.clone(), inbound_by_port, outbound_by_port }
    }

    /// The first rule matching a flow (N2: there is always one, the DenyAll rule).
    pub fn evaluate(
        &self,
        direction: Direction,
        proto: Protocol,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
    ) -> Option<&CompiledRule> {
        self.evaluate_spec(direction, proto, src, Some(sport), dst, Some(dport))
    }

    /// [`CompiledNsg::evaluate`] with optional ports (see [`CompiledRule::matches_spec`]).
    pub fn evaluate_spec(
        &self,
        direction: Direction,
        proto: Protocol,
        src: IpAddr,
        sport: Option<u16>,
        dst: IpAddr,
        dport: Option<u16>,
    ) -> Option<&CompiledRule> {
        let (rules, index) = match direction {
            Direction::Inbound => (&self.inbound, &self.inbound_by_port),
            Direction::Outbound => (&self.outbound, &self.outbound_by_port),
        };
        // A TCP or UDP flow to a known port only needs the rules covering that port (ICMP
        // ignores ports; "any port" matches only rules covering every port).
        if let (Some(index), Some(port), false) = (index, dport, proto == Protocol::Icmp) {
            return index
                .candidates(port)
                .iter()
                .filter_map(|i| rules.get(usize::try_from(*i).ok()?))
                .find(|r| r.matches_spec(proto, src, sport, dst, dport));
        }
        rules.iter().find(|r| r.matches_spec(proto, src, sport, dst, dport))
    }
}
