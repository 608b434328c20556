//! Compilation of the desired state into one program per NIC (DESIGN.md, "the one idea").
//!
//! A subnet program holds the subnet's effective routes and its NSG compiled with the subnet's
//! tag expansions; a NIC program adds the NIC's NSG and addresses. Programs are shared through
//! `Arc`, so the NICs of one subnet share their routes. A change recompiles only the VNets it
//! touches.

pub mod lpm;
pub mod routes;
pub mod security;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use tessera_model::gateway::{GatewayType, VirtualNetworkGateway};
use tessera_model::network::{Subnet, VirtualNetwork};
use tessera_model::prefix::IpNet;
use tessera_model::{Kind, ResourceId};

use crate::lifecycle::is_connected;
use crate::state::{State, ip_of, remote_of};
use routes::{RouteProgram, gateway_prefixes, gateway_vnet_for};
use security::{AZURE_HOST, CompiledNsg, TagContext};

/// What the data plane needs of a VNet, so that it never reads desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnetProgram {
    /// The VNet.
    pub id: ResourceId,
    /// Its VXLAN network identifier between hosts.
    pub vni: u32,
    /// Its address space.
    pub address_space: Vec<IpNet>,
    /// Its DNS servers (empty: Azure's).
    pub dns_servers: Vec<IpAddr>,
    /// The VNets of its Connected links, with the address space each link last synced.
    pub peers: Vec<(ResourceId, Vec<IpNet>)>,
    /// The idle timeout of its TCP flows, in seconds (`flowTimeoutInMinutes`, 4 minutes when
    /// absent).
    pub tcp_idle_timeout_secs: u32,
}

impl VnetProgram {
    fn new(vnet: &VirtualNetwork) -> Self {
        let peers = vnet
            .properties
            .virtual_network_peerings
            .iter()
            .filter(|l| is_connected(l))
            .filter_map(|l| {
                let space = l.properties.remote_address_space.as_ref().map(|a| a.address_prefixes.clone());
                Some((remote_of(l)?.clone(), space.unwrap_or_default()))
            })
            .collect();
        VnetProgram {
            id: vnet.id.clone(),
            vni: vni_of(&vnet.id),
            address_space: vnet.properties.address_space.address_prefixes.clone(),
            dns_servers: vnet
                .properties
                .dhcp_options
                .iter()
                .flat_map(|d| d.dns_servers.iter().filter_map(|s| s.parse().ok()))
                .collect(),
            peers,
            tcp_idle_timeout_secs: vnet.properties.flow_timeout_in_minutes.unwrap_or(DEFAULT_FLOW_TIMEOUT_MINUTES) * 60,
        }
    }

    /// The VNet a packet from `src` comes from, as seen from this one: None for its own space,
    /// else the peer whose synced space holds it.
    pub fn peer_holding(&self, src: IpAddr) -> Option<&ResourceId> {
        if self.address_space.iter().any(|p| p.contains(&src)) {
            return None;
        }
        self.peers.iter().find(|(_, space)| space.iter().any(|p| p.contains(&src))).map(|(v, _)| v)
    }
}

/// A VNet's flow timeout when it names none (Azure's default TCP idle timeout).
pub const DEFAULT_FLOW_TIMEOUT_MINUTES: u32 = 4;

/// The VNI of a VNet: 24 bits of an FNV-1a hash of its id (never 0), the same on every host.
pub fn vni_of(vnet: &ResourceId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in vnet.key().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let vni = (h ^ (h >> 24)) & 0x00ff_ffff;
    if vni == 0 { 1 } else { vni }
}

/// The compiled program of one subnet.
#[derive(Debug, Clone)]
pub struct SubnetProgram {
    /// The subnet.
    pub subnet: ResourceId,
    /// Its VNet.
    pub vnet: ResourceId,
    /// What the data plane needs of its VNet.
    pub network: Arc<VnetProgram>,
    /// The default gateway of its IPv4 prefix (the first host address: Azure reserves it).
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Its region.
    pub location: String,
    /// The subnet's prefixes.
    pub prefixes: Vec<IpNet>,
    /// Effective routes.
    pub routes: RouteProgram,
    /// The subnet NSG.
    pub nsg: Option<Arc<CompiledNsg>>,
    /// Tag expansions of this subnet.
    pub tags: TagContext,
}

/// The compiled program of one NIC port.
#[derive(Debug, Clone)]
pub struct NicProgram {
    /// The NIC.
    pub nic: ResourceId,
    /// The VM using it.
    pub vm: Option<ResourceId>,
    /// Subnet program (routes, subnet NSG).
    pub subnet: Arc<SubnetProgram>,
    /// The NIC NSG.
    pub nsg: Option<Arc<CompiledNsg>>,
    /// The NIC's private addresses (primary first).
    pub addresses: Vec<IpAddr>,
    /// Its MAC address (zeros until one is assigned).
    pub mac: [u8; 6],
    /// Whether it forwards traffic not addressed to it.
    pub ip_forwarding: bool,
    /// The gateway whose instance this port is (keyed by the gateway's first IP
    /// configuration), None for a NIC. It forwards, and packets it hands into peered VNets
    /// need no allowForwardedTraffic (G7).
    pub gateway: Option<ResourceId>,
}

/// Every program.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Subnet programs.
    pub subnets: HashMap<ResourceId, Arc<SubnetProgram>>,
    /// NIC programs.
    pub nics: HashMap<ResourceId, Arc<NicProgram>>,
    by_vnet: HashMap<ResourceId, (Vec<ResourceId>, Vec<ResourceId>)>,
}

impl Compiled {
    /// Rebuilds the programs of the given VNets (and drops those of VNets that no longer exist).
    pub fn recompile(&mut self, st: &State, vnets: &BTreeSet<ResourceId>) {
        // Every old program goes before any new one is made: a NIC that moved from one dirty
        // VNet to another must not lose its new program to the removal of its old one.
        for v in vnets {
            if let Some((subnets, nics)) = self.by_vnet.remove(v) {
                for s in subnets {
                    self.subnets.remove(&s);
                }
                for n in nics {
                    self.nics.remove(&n);
                }
            }
        }
        for v in vnets {
            if let Some(vnet) = st.vnets.get(v) {
                self.compile_vnet(st, vnet);
            }
        }
    }

    /// Compiles everything.
    pub fn full(st: &State) -> Self {
        let mut c = Compiled::default();
        for vnet in st.vnets.values() {
            c.compile_vnet(st, vnet);
        }
        c
    }

    fn compile_vnet(&mut self, st: &State, vnet: &VirtualNetwork) {
        let mut nsg_cache: HashMap<(ResourceId, ResourceId), Arc<CompiledNsg>> = HashMap::new();
        let groups = asg_members(st, &vnet.id);
        let members = |asg: &ResourceId| groups.get(asg).cloned().unwrap_or_default();
        let base_tag = vnet_tag(st, vnet);
        let network = Arc::new(VnetProgram::new(vnet));
        let mut subnet_ids = Vec::new();
        for s in &vnet.properties.subnets {
            let sid = vnet.id.child("subnets", &s.name);
            let scope = VnetScope { base_tag: &base_tag, network: &network, members: &members };
            let program = Arc::new(compile_subnet(st, vnet, s, &sid, &scope, &mut nsg_cache));
            self.subnets.insert(sid.clone(), program);
            subnet_ids.push(sid);
        }
        let mut nic_ids = Vec::new();
        for nic_id in st.nics_in(&vnet.id) {
            let Some(nic) = st.nics.get(nic_id) else {
                continue;
            };
            let Some(primary) = State::primary_ip_config(nic) else {
                continue;
            };
            let Some(sid) = primary.properties.subnet.as_ref().map(|s| s.id.clone()) else {
                continue;
            };
            let Some(subnet) = self.subnets.get(&sid).cloned() else {
                continue;
            };
            let nsg = nic.properties.network_security_group.as_ref().and_then(|n| {
                let key = (n.id.clone(), sid.clone());
                if let Some(c) = nsg_cache.get(&key) {
                    return Some(c.clone());
                }
                let c = Arc::new(CompiledNsg::new(st.nsgs.get(&n.id)?, &subnet.tags, &members));
                nsg_cache.insert(key, c.clone());
                Some(c)
            });
            let mut addresses: Vec<IpAddr> = vec![];
            addresses.extend(ip_of(&primary.properties.private_ip_address));
            for c in &nic.properties.ip_configurations {
                if let Some(ip) = ip_of(&c.properties.private_ip_address)
                    && !addresses.contains(&ip)
                {
                    addresses.push(ip);
                }
            }
            let program = NicProgram {
                nic: nic.id.clone(),
                vm: nic.properties.virtual_machine.as_ref().map(|v| v.id.clone()),
                subnet,
                nsg,
                addresses,
                mac: parse_mac(nic.properties.mac_address.as_deref().unwrap_or_default()),
                ip_forwarding: nic.properties.enable_ip_forwarding,
                gateway: None,
            };
            self.nics.insert(nic.id.clone(), Arc::new(program));
            nic_ids.push(nic.id.clone());
        }
        for gw in st.gateways_in(&vnet.id).filter(|g| g.properties.gateway_type == GatewayType::Vpn) {
            if let Some(program) = self.instance_program(gw) {
                nic_ids.push(program.nic.clone());
                self.nics.insert(program.nic.clone(), Arc::new(program));
            }
        }
        self.by_vnet.insert(vnet.id.clone(), (subnet_ids, nic_ids));
    }

    /// The port of a VPN gateway's instance: its first IP configuration in GatewaySubnet, with
    /// that configuration's address and a MAC derived from its id.
    fn instance_program(&self, gw: &VirtualNetworkGateway) -> Option<NicProgram> {
        let c = gw.properties.ip_configurations.first()?;
        let id = c.id.clone()?;
        let subnet = self.subnets.get(&c.properties.subnet.as_ref()?.id)?.clone();
        Some(NicProgram {
            mac: instance_mac(&id),
            nic: id,
            vm: None,
            subnet,
            nsg: None,
            addresses: ip_of(&c.properties.private_ip_address).into_iter().collect(),
            ip_forwarding: true,
            gateway: Some(gw.id.clone()),
        })
    }
}

/// The id of a gateway's instance port: its first IP configuration.
pub fn instance_id(gw: &VirtualNetworkGateway) -> Option<ResourceId> {
    gw.properties.ip_configurations.first().and_then(|c| c.id.clone())
}

/// A locally administered MAC address for a gateway instance, the same on every host.
fn instance_mac(id: &ResourceId) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.key().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// What the subnets of one VNet share while they are compiled.
struct VnetScope<'a> {
    /// The VNet's `VirtualNetwork` tag before UDR prefixes.
    base_tag: &'a [IpNet],
    /// Its data-plane program.
    network: &'a Arc<VnetProgram>,
    /// An application security group's addresses.
    members: &'a dyn Fn(&ResourceId) -> Vec<IpNet>,
}

fn compile_subnet(
    st: &State,
    vnet: &VirtualNetwork,
    s: &Subnet,
    sid: &ResourceId,
    scope: &VnetScope<'_>,
    nsg_cache: &mut HashMap<(ResourceId, ResourceId), Arc<CompiledNsg>>,
) -> SubnetProgram {
    let VnetScope { base_tag, network, members } = *scope;
    let routes = routes::subnet_routes(st, vnet, s);
    let mut tag = base_tag.to_vec();
    // N6: every UDR prefix joins the VirtualNetwork tag.
    for r in routes.iter().filter(|r| r.source == routes::RouteSource::User) {
        push_unique(&mut tag, r.prefix);
    }
    let tags = TagContext { virtual_network: tag };
    let nsg = s.properties.network_security_group.as_ref().and_then(|n| {
        let c = Arc::new(CompiledNsg::new(st.nsgs.get(&n.id)?, &tags, members));
        nsg_cache.insert((n.id.clone(), sid.clone()), c.clone());
        Some(c)
    });
    let prefixes = s.properties.prefixes();
    let gateway = prefixes.iter().find_map(|p| match p {
        IpNet::V4(n) => Some(std::net::Ipv4Addr::from(u32::from(n.network()).wrapping_add(1))),
        IpNet::V6(_) => None,
    });
    SubnetProgram {
        subnet: sid.clone(),
        vnet: vnet.id.clone(),
        network: network.clone(),
        gateway,
        location: vnet.location.clone(),
        prefixes,
        routes: RouteProgram::new(routes),
        nsg,
        tags,
    }
}

/// The addresses of the members of every application security group in `vnet` (their IP
/// configurations' private addresses, as host prefixes): a group's members are all in one VNet,
/// and rules match them there only — an address of another VNet is never a member. Empty, and
/// free, when there are no groups.
fn asg_members(st: &State, vnet: &ResourceId) -> HashMap<ResourceId, Vec<IpNet>> {
    let mut out: HashMap<ResourceId, Vec<IpNet>> = HashMap::new();
    if st.asgs.is_empty() {
        return out;
    }
    for nic in st.nics_in(vnet).filter_map(|id| st.nics.get(id)) {
        for c in &nic.properties.ip_configurations {
            let Some(ip) = ip_of(&c.properties.private_ip_address) else { continue };
            for g in &c.properties.application_security_groups {
                out.entry(g.id.clone()).or_default().push(IpNet::from(ip));
            }
        }
    }
    out
}

/// A MAC address as ARM writes it (`AA-BB-CC-DD-EE-FF`, or with colons); zeros where unreadable.
pub fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (i, part) in text.split(['-', ':']).take(6).enumerate() {
        mac[i] = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    mac
}

fn push_unique(v: &mut Vec<IpNet>, p: IpNet) {
    if !v.contains(&p) {
        v.push(p);
    }
}

/// The `VirtualNetwork` tag of a VNet before UDR prefixes (N6): its space, peered spaces whose
/// local link allows VNet access, gateway-connected spaces, and the Azure host.
pub fn vnet_tag(st: &State, vnet: &VirtualNetwork) -> Vec<IpNet> {
    let mut tag: Vec<IpNet> = Vec::new();
    for p in &vnet.properties.address_space.address_prefixes {
        push_unique(&mut tag, *p);
    }
    for link in &vnet.properties.virtual_network_peerings {
        if is_connected(link) && link.properties.allow_virtual_network_access && remote_of(link).is_some() {
            for p in link.properties.remote_address_space.iter().flat_map(|a| a.address_prefixes.iter()) {
                push_unique(&mut tag, *p);
            }
        }
    }
    if let Some(g) = gateway_vnet_for(st, vnet) {
        for (p, _) in gateway_prefixes(st, &g) {
            push_unique(&mut tag, p);
        }
    }
    if let Ok(host) = AZURE_HOST.parse() {
        push_unique(&mut tag, host);
    }
    tag
}

/// What holds an address of a VNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A NIC (by NIC id).
    Nic(ResourceId),
    /// A load balancer frontend (by frontend id).
    LoadBalancerFrontend(ResourceId),
    /// A virtual network gateway (by gateway id).
    Gateway(ResourceId),
}

/// The endpoint that holds `ip` in `vnet`.
pub fn endpoint(st: &State, vnet: &ResourceId, ip: IpAddr) -> Option<Endpoint> {
    let owner = st.address_owner(vnet, ip)?;
    let parent = owner.parent.clone()?;
    Some(match owner.holder.kind() {
        Kind::IpConfiguration => Endpoint::Nic(parent),
        Kind::FrontendIpConfiguration => Endpoint::LoadBalancerFrontend(owner.holder.clone()),
        _ => Endpoint::Gateway(parent),
    })
}
