//! The desired state: every resource by id, plus indexes kept in step with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use tessera_model::ResourceId;
use tessera_model::account::Subscription;
use tessera_model::compute::{IpConfiguration, NetworkInterface, VirtualMachine};
use tessera_model::gateway::{Connection, GatewayType, LocalNetworkGateway, VirtualNetworkGateway};
use tessera_model::lb::LoadBalancer;
use tessera_model::network::{ClassicVirtualNetwork, Peering, Subnet, VirtualNetwork};
use tessera_model::prefix::IpNet;
use tessera_model::routing::RouteTable;
use tessera_model::security::NetworkSecurityGroup;

/// What holds a private address of a VNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressOwner {
    /// The NIC IP configuration, LB frontend or gateway IP configuration.
    pub holder: ResourceId,
    /// The subnet the address belongs to.
    pub subnet: ResourceId,
    /// The holder's parent (the NIC, load balancer or gateway), kept so that finding who is at
    /// an address — once per new flow in the data plane — does not parse an id.
    pub parent: Option<ResourceId>,
}

impl AddressOwner {
    fn new(holder: ResourceId, subnet: ResourceId) -> Self {
        let parent = holder.parent();
        AddressOwner { holder, subnet, parent }
    }
}

/// All resources, keyed by id (case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Subscriptions by lower-cased subscription id.
    pub subscriptions: BTreeMap<String, Subscription>,
    /// Virtual networks; subnets and peering links are embedded.
    pub vnets: BTreeMap<ResourceId, VirtualNetwork>,
    /// Classic virtual networks.
    pub classic_vnets: BTreeMap<ResourceId, ClassicVirtualNetwork>,
    /// NSGs.
    pub nsgs: BTreeMap<ResourceId, NetworkSecurityGroup>,
    /// Route tables.
    pub route_tables: BTreeMap<ResourceId, RouteTable>,
    /// NICs.
    pub nics: BTreeMap<ResourceId, NetworkInterface>,
    /// VMs.
    pub vms: BTreeMap<ResourceId, VirtualMachine>,
    /// Virtual network gateways.
    pub gateways: BTreeMap<ResourceId, VirtualNetworkGateway>,
    /// Local network gateways (on-premises sites).
    pub local_gateways: BTreeMap<ResourceId, LocalNetworkGateway>,
    /// Gateway connections.
    pub connections: BTreeMap<ResourceId, Connection>,
    /// Load balancers.
    pub load_balancers: BTreeMap<ResourceId, LoadBalancer>,
    /// Public IP addresses.
    pub public_ips: BTreeMap<ResourceId, tessera_model::public_ip::PublicIpAddress>,
    /// Application security groups.
    pub asgs: BTreeMap<ResourceId, tessera_model::security::ApplicationSecurityGroup>,
    /// Index: VNet -> address -> holder.
    pub(crate) addresses: HashMap<ResourceId, BTreeMap<IpAddr, AddressOwner>>,
    /// Index: VNet -> NICs with an IP configuration in it.
    pub(crate) vnet_nics: HashMap<ResourceId, BTreeSet<ResourceId>>,
}

impl State {
    /// A VNet by id.
    pub fn vnet(&self, id: &ResourceId) -> Option<&VirtualNetwork> {
        self.vnets.get(id)
    }

    /// A subnet and its VNet.
    pub fn subnet(&self, id: &ResourceId) -> Option<(&VirtualNetwork, &Subnet)> {
        let vnet = self.vnets.get(&id.parent()?)?;
        let s = vnet.properties.subnets.iter().find(|s| s.name.eq_ignore_ascii_case(id.name()))?;
        Some((vnet, s))
    }

    /// A peering link by id.
    pub fn peering(&self, id: &ResourceId) -> Option<&Peering> {
        let vnet = self.vnets.get(&id.parent()?)?;
        vnet.properties.virtual_network_peerings.iter().find(|p| p.name.eq_ignore_ascii_case(id.name()))
    }

    /// The link of `vnet` that points at `remote`, if any.
    pub fn link_to(&self, vnet: &ResourceId, remote: &ResourceId) -> Option<&Peering> {
        self.vnets.get(vnet)?.properties.virtual_network_peerings.iter().find(|p| remote_of(p) == Some(remote))
    }

    /// The address space of a VNet, Resource Manager or classic.
    pub fn address_space(&self, id: &ResourceId) -> Option<&[IpNet]> {
        if let Some(v) = self.vnets.get(id) {
            return Some(&v.properties.address_space.address_prefixes);
        }
        self.classic_vnets.get(id).map(|v| v.properties.address_space.address_prefixes.as_slice())
    }

    /// The region of a VNet (RM or classic).
    pub fn location_of(&self, id: &ResourceId) -> Option<&str> {
        self.vnets
            .get(id)
            .map(|v| v.location.as_str())
            .or_else(|| self.classic_vnets.get(id).map(|v| v.location.as_str()))
    }

    /// Whether a VNet (RM or classic) exists.
    pub fn vnet_exists(&self, id: &ResourceId) -> bool {
        self.vnets.contains_key(id) || self.classic_vnets.contains_key(id)
    }

    /// The gateways deployed in a VNet.
    pub fn gateways_in(&self, vnet: &ResourceId) -> impl Iterator<Item = &VirtualNetworkGateway> + '_ {
        let vnet = vnet.clone();
        self.gateways.values().filter(move |g| gateway_vnet(g).as_ref() == Some(&vnet))
    }

    /// Whether a VNet has a gateway of the given type (or any, with `None`).
    pub fn has_gateway(&self, vnet: &ResourceId, kind: Option<GatewayType>) -> bool {
        self.gateways_in(vnet).any(|g| kind.is_none_or(|k| g.properties.gateway_type == k))
    }

    /// The NICs with an address in a VNet.
    pub fn nics_in(&self, vnet: &ResourceId) -> impl Iterator<Item = &ResourceId> + '_ {
        self.vnet_nics.get(vnet).into_iter().flatten()
    }

    /// Who holds an address of a VNet.
    pub fn address_owner(&self, vnet: &ResourceId, ip: IpAddr) -> Option<&AddressOwner> {
        self.addresses.get(vnet)?.get(&ip)
    }

    /// The addresses in use in a VNet.
    pub fn addresses_in(&self, vnet: &ResourceId) -> Option<&BTreeMap<IpAddr, AddressOwner>> {
        self.addresses.get(vnet)
    }

    /// The primary IP configuration of a NIC.
    pub fn primary_ip_config(nic: &NetworkInterface) -> Option<&IpConfiguration> {
        let configs = &nic.properties.ip_configurations;
        configs.iter().find(|c| c.properties.primary == Some(true)).or_else(|| configs.first())
    }

    /// The primary NIC of a VM.
    pub fn primary_nic_of(&self, vm: &VirtualMachine) -> Option<&NetworkInterface> {
        let refs = &vm.properties.network_profile.network_interfaces;
        let chosen = refs.iter().find(|r| r.properties.as_ref().is_some_and(|p| p.primary)).or_else(|| refs.first())?;
        self.nics.get(&chosen.id)
    }

    pub(crate) fn index_nic(&mut self, nic: &NetworkInterface) {
        for c in &nic.properties.ip_configurations {
            let (Some(ip), Some(subnet), Some(id)) =
                (ip_of(&c.properties.private_ip_address), &c.properties.subnet, &c.id)
            else {
                continue;
            };
            let Some(vnet) = subnet.id.parent() else {
                continue;
            };
            self.vnet_nics.entry(vnet.clone()).or_default().insert(nic.id.clone());
            self.addresses.entry(vnet).or_default().insert(ip, AddressOwner::new(id.clone(), subnet.id.clone()));
        }
    }

    pub(crate) fn unindex_nic(&mut self, nic: &NetworkInterface) {
        for c in &nic.properties.ip_configurations {
            let (Some(ip), Some(subnet)) = (ip_of(&c.properties.private_ip_address), &c.properties.subnet) else {
                continue;
            };
            let Some(vnet) = subnet.id.parent() else {
                continue;
            };
            if let Some(set) = self.vnet_nics.get_mut(&vnet) {
                set.remove(&nic.id);
            }
            self.unset_address(&vnet, ip);
        }
    }

    pub(crate) fn index_gateway(&mut self, g: &VirtualNetworkGateway, add: bool) {
        for c in &g.properties.ip_configurations {
            let (Some(ip), Some(subnet)) = (ip_of(&c.properties.private_ip_address), &c.properties.subnet) else {
                continue;
            };
            let Some(vnet) = subnet.id.parent() else {
                continue;
            };
            let holder = c.id.clone().unwrap_or_else(|| g.id.clone());
            self.set_address(vnet, ip, add.then(|| AddressOwner::new(holder, subnet.id.clone())));
        }
    }

    pub(crate) fn index_lb(&mut self, lb: &LoadBalancer, add: bool) {
        for f in &lb.resource.properties.frontend_ip_configurations {
            let (Some(ip), Some(subnet)) = (ip_of(&f.properties.private_ip_address), &f.properties.subnet) else {
                continue;
            };
            let Some(vnet) = subnet.id.parent() else {
                continue;
            };
            let holder = f.id.clone().unwrap_or_else(|| lb.resource.id.clone());
            self.set_address(vnet, ip, add.then(|| AddressOwner::new(holder, subnet.id.clone())));
        }
    }

    fn set_address(&mut self, vnet: ResourceId, ip: IpAddr, owner: Option<AddressOwner>) {
        match owner {
            Some(o) => {
                self.addresses.entry(vnet).or_default().insert(ip, o);
            }
            None => self.unset_address(&vnet, ip),
        }
    }

    fn unset_address(&mut self, vnet: &ResourceId, ip: IpAddr) {
        if let Some(map) = self.addresses.get_mut(vnet) {
            map.remove(&ip);
        }
    }

    /// Everything that uses a subnet: NIC IP configurations, gateway IP configurations, LB frontends.
    pub fn subnet_users(&self, subnet: &ResourceId) -> Vec<ResourceId> {
        let Some(vnet) = subnet.parent() else {
            return Vec::new();
        };
        let mut out: Vec<ResourceId> = self
            .addresses
            .get(&vnet)
            .into_iter()
            .flatten()
            .filter(|(_, o)| o.subnet == *subnet)
            .map(|(_, o)| o.holder.clone())
            .collect();
        out.sort();
        out
    }
}

/// The remote VNet a link points at.
pub fn remote_of(p: &Peering) -> Option<&ResourceId> {
    p.properties.remote_virtual_network.as_ref().map(|r| &r.id)
}

/// The VNet a gateway is deployed in (through its GatewaySubnet).
pub fn gateway_vnet(g: &VirtualNetworkGateway) -> Option<ResourceId> {
    g.properties.ip_configurations.iter().find_map(|c| c.properties.subnet.as_ref()?.id.parent())
}

/// Parses an optional address string.
pub fn ip_of(text: &Option<String>) -> Option<IpAddr> {
    text.as_deref()?.parse().ok()
}
