//! Synthetic topologies for benchmarks and scale tests: a hub with many spokes, many NICs and
//! large NSGs, built directly as resources (no file parsing).

use std::net::Ipv4Addr;

use tessera_model::account::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Subscription};
use tessera_model::compute::{
    IpConfiguration, IpConfigurationProperties, NetworkInterface, NicProperties, VirtualMachine, VmNicReference,
    VmProperties,
};
use tessera_model::envelope::{Child, SubResource, Tracked};
use tessera_model::network::{
    AddressSpace, Peering, PeeringProperties, SubnetProperties, VirtualNetwork, VirtualNetworkProperties,
};
use tessera_model::prefix::IpNet;
use tessera_model::security::{
    Access, Direction, NetworkSecurityGroup, NsgProperties, RuleProtocol, SecurityRule, SecurityRuleProperties,
};
use tessera_model::{Kind, Resource, ResourceId};

/// Shape of a hub-and-spoke estate.
#[derive(Debug, Clone, Copy)]
pub struct HubAndSpokes {
    /// Number of spokes (each a /20 VNet peered both ways with the hub).
    pub spokes: usize,
    /// NICs (each with a VM) in every spoke, at most 250.
    pub nics_per_spoke: usize,
    /// NICs in the hub.
    pub hub_nics: usize,
    /// Distinct NSGs, shared round-robin by the subnets.
    pub nsgs: usize,
    /// Rules in each NSG.
    pub rules_per_nsg: usize,
}

const RG: &str = "scale-rg";
const LOCATION: &str = "westeurope";

fn tracked<P>(kind: Kind, name: &str, properties: P) -> Tracked<P> {
    let id = ResourceId::top(DEFAULT_SUBSCRIPTION, RG, kind, name);
    Tracked {
        name: name.to_string(),
        kind: kind.arm_type().to_string(),
        id,
        location: LOCATION.to_string(),
        tags: Default::default(),
        etag: None,
        properties,
    }
}

/// The address space of spoke `i` (a /20 in 10.1.0.0 – 10.255.255.255).
pub fn spoke_space(i: usize) -> IpNet {
    let base = 0x0A01_0000u32 + u32::try_from(i).unwrap_or(0) * 0x1000;
    ipnet::Ipv4Net::new(Ipv4Addr::from(base), 20).map(IpNet::V4).unwrap_or_default()
}

/// The id of spoke `i`'s VNet.
pub fn spoke_id(i: usize) -> ResourceId {
    ResourceId::top(DEFAULT_SUBSCRIPTION, RG, Kind::VirtualNetwork, &format!("spoke{i}"))
}

/// The id of the hub VNet.
pub fn hub_id() -> ResourceId {
    ResourceId::top(DEFAULT_SUBSCRIPTION, RG, Kind::VirtualNetwork, "hub")
}

/// A peering link from `from` to `to`.
pub fn link(from: &ResourceId, to: &ResourceId) -> Peering {
    let id = from.child("virtualNetworkPeerings", &format!("to-{}", to.name()));
    Child {
        unmodelled: Default::default(),
        name: id.name().to_string(),
        id: Some(id),
        kind: None,
        etag: None,
        properties: PeeringProperties {
            remote_virtual_network: Some(SubResource::new(to.clone())),
            ..Default::default()
        },
    }
}

/// A VNet with one subnet `default` covering its first /24.
pub fn vnet(name: &str, space: IpNet, nsg: Option<&ResourceId>) -> VirtualNetwork {
    let id = ResourceId::top(DEFAULT_SUBSCRIPTION, RG, Kind::VirtualNetwork, name);
    let first = match space {
        IpNet::V4(n) => ipnet::Ipv4Net::new(n.network(), 24).map(IpNet::V4).unwrap_or(space),
        IpNet::V6(_) => space,
    };
    let subnet = Child {
        unmodelled: Default::default(),
        id: Some(id.child("subnets", "default")),
        name: "default".into(),
        kind: None,
        etag: None,
        properties: SubnetProperties {
            address_prefix: Some(first),
            network_security_group: nsg.map(|n| SubResource::new(n.clone())),
            ..Default::default()
        },
    };
    tracked(
        Kind::VirtualNetwork,
        name,
        VirtualNetworkProperties {
            address_space: AddressSpace::of(vec![space]),
            subnets: vec![subnet],
            ..Default::default()
        },
    )
}

fn nsg(name: &str, rules: usize) -> NetworkSecurityGroup {
    let id = ResourceId::top(DEFAULT_SUBSCRIPTION, RG, Kind::NetworkSecurityGroup, name);
    let rules: Vec<SecurityRule> = (0..rules)
        .map(|r| {
            let n = u32::try_from(r).unwrap_or(0);
            let rule_name = format!("rule{r}");
            let inbound = r % 2 == 0;
            Child {
                unmodelled: Default::default(),
                id: Some(id.child("securityRules", &rule_name)),
                name: rule_name,
                kind: None,
                etag: None,
                properties: SecurityRuleProperties {
                    source_application_security_groups: Vec::new(),
                    destination_application_security_groups: Vec::new(),
                    unmodelled: Default::default(),
                    description: None,
                    protocol: RuleProtocol::Tcp,
                    source_port_range: Some("*".into()),
                    source_port_ranges: Vec::new(),
                    destination_port_range: Some(format!("{}", 1000 + n)),
                    destination_port_ranges: Vec::new(),
                    source_address_prefix: Some(format!("172.{}.{}.0/24", 16 + (n / 256) % 16, n % 256)),
                    source_address_prefixes: Vec::new(),
                    destination_address_prefix: Some("VirtualNetwork".into()),
                    destination_address_prefixes: Vec::new(),
                    access: if r % 3 == 0 { Access::Deny } else { Access::Allow },
                    priority: 100 + n / 2,
                    direction: if inbound { Direction::Inbound } else { Direction::Outbound },
                    provisioning_state: None,
                },
            }
        })
        .collect();
    tracked(Kind::NetworkSecurityGroup, name, NsgProperties { security_rules: rules, ..Default::default() })
}

/// A NIC with a static address in `subnet`, and the VM that uses it.
pub fn vm(name: &str, subnet: &ResourceId, ip: Ipv4Addr) -> (NetworkInterface, VirtualMachine) {
    let nic_name = format!("{name}-nic");
    let nic_id = ResourceId::top(DEFAULT_SUBSCRIPTION, RG, Kind::NetworkInterface, &nic_name);
    let config: IpConfiguration = Child {
        unmodelled: Default::default(),
        id: Some(nic_id.child("ipConfigurations", "ipconfig1")),
        name: "ipconfig1".into(),
        kind: None,
        etag: None,
        properties: IpConfigurationProperties {
            private_ip_address: Some(ip.to_string()),
            subnet: Some(SubResource::new(subnet.clone())),
            primary: Some(true),
            ..Default::default()
        },
    };
    let nic = tracked(
        Kind::NetworkInterface,
        &nic_name,
        NicProperties { ip_configurations: vec![config], ..Default::default() },
    );
    let machine = tracked(
        Kind::VirtualMachine,
        name,
        VmProperties {
            unmodelled: Default::default(),
            network_profile: tessera_model::compute::NetworkProfile {
                network_interfaces: vec![VmNicReference { id: nic_id, properties: None }],
            },
            provisioning_state: None,
        },
    );
    (nic, machine)
}

impl HubAndSpokes {
    /// The resources, in an order the engine accepts.
    pub fn resources(&self) -> Vec<Resource> {
        let mut out = vec![Resource::Subscription(Subscription::new(DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, "scale"))];
        let nsg_ids: Vec<ResourceId> = (0..self.nsgs.max(1))
            .map(|i| {
                let n = nsg(&format!("nsg{i}"), self.rules_per_nsg);
                let id = n.id.clone();
                if self.nsgs > 0 {
                    out.push(Resource::NetworkSecurityGroup(n));
                }
                id
            })
            .collect();
        let pick = |i: usize| (self.nsgs > 0).then(|| &nsg_ids[i % nsg_ids.len()]);
        let hub_space: IpNet = "10.0.0.0/16".parse().unwrap_or_default();
        out.push(Resource::VirtualNetwork(vnet("hub", hub_space, pick(0))));
        for i in 0..self.spokes {
            out.push(Resource::VirtualNetwork(vnet(&format!("spoke{i}"), spoke_space(i), pick(i + 1))));
        }
        let hub_subnet = hub_id().child("subnets", "default");
        for n in 0..self.hub_nics {
            let ip = Ipv4Addr::from(0x0A00_0004u32 + u32::try_from(n).unwrap_or(0));
            let (nic, machine) = vm(&format!("hub-vm{n}"), &hub_subnet, ip);
            out.push(Resource::NetworkInterface(nic));
            out.push(Resource::VirtualMachine(machine));
        }
        for i in 0..self.spokes {
            let subnet = spoke_id(i).child("subnets", "default");
            let IpNet::V4(space) = spoke_space(i) else { continue };
            for n in 0..self.nics_per_spoke.min(250) {
                let ip = Ipv4Addr::from(u32::from(space.network()) + 4 + u32::try_from(n).unwrap_or(0));
                let (nic, machine) = vm(&format!("spoke{i}-vm{n}"), &subnet, ip);
                out.push(Resource::NetworkInterface(nic));
                out.push(Resource::VirtualMachine(machine));
            }
        }
        for i in 0..self.spokes {
            out.push(Resource::Peering(link(&hub_id(), &spoke_id(i))));
            out.push(Resource::Peering(link(&spoke_id(i), &hub_id())));
        }
        out
    }
}
