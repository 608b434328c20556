//! The concise YAML topology format (documented in README), converted into ARM resources.
//!
//! Names refer to resources declared in the same file (`hub`, `hub/default` for a subnet);
//! full resource ids are accepted anywhere a name is.

use std::collections::BTreeMap;

use crate::account::{self, Subscription};
use crate::compute::{
    AllocationMethod, IpConfiguration, IpConfigurationProperties, NetworkInterface, NetworkProfile, NicProperties,
    VirtualMachine, VmNicReference, VmNicReferenceProperties, VmProperties,
};
use crate::envelope::{Child, SubResource, Tracked};
use crate::error::ArmError;
use crate::gateway::{
    BgpSettings, Connection, ConnectionProperties, ConnectionType, GatewayIpConfigurationProperties, GatewayProperties,
    GatewayType, LocalGatewayProperties, LocalNetworkGateway, Sku, VirtualNetworkGateway, VpnType,
};
use crate::id::{Kind, ResourceId};
use crate::lb::{
    BackendPoolProperties, FrontendProperties, LbProtocol, LbRuleProperties, LbSku, LbSkuName, LoadBalancer,
    LoadBalancerProperties, ProbeProperties,
};
use crate::network::{
    AddressSpace, ClassicSubnet, ClassicVirtualNetworkProperties, Peering, PeeringProperties, SubnetProperties,
    VirtualNetworkProperties,
};
use crate::prefix::IpNet;
use crate::public_ip::{PublicIpAddress, PublicIpProperties, PublicIpSku, PublicIpSkuName};
use crate::resource::Resource;

mod schema;
use crate::routing::{Route, RouteProperties, RouteTable, RouteTableProperties};
use crate::security::{NsgProperties, RuleProtocol, SecurityRule, SecurityRuleProperties};
use schema::*;

fn bad(msg: impl Into<String>) -> ArmError {
    ArmError::bad_request("InvalidTopology", msg)
}

/// Resolves names given in the file to ids.
struct Names {
    subscription: String,
    resource_group: String,
    location: String,
    /// (kind, lower-cased name) -> ids declared with that name.
    declared: BTreeMap<(Kind, String), Vec<ResourceId>>,
}

impl Names {
    fn place(&self, at: &Placement) -> (String, String, String) {
        (
            at.subscription.clone().unwrap_or_else(|| self.subscription.clone()),
            at.resource_group.clone().unwrap_or_else(|| self.resource_group.clone()),
            at.location.clone().unwrap_or_else(|| self.location.clone()),
        )
    }

    fn id(&self, at: &Placement, kind: Kind, name: &str) -> ResourceId {
        let (sub, rg, _) = self.place(at);
        ResourceId::top(&sub, &rg, kind, name)
    }

    fn declare(&mut self, kind: Kind, id: &ResourceId) {
        self.declared.entry((kind, id.name().to_ascii_lowercase())).or_default().push(id.clone());
    }

    fn resolve(&self, kind: Kind, name: &str) -> Result<ResourceId, ArmError> {
        if name.starts_with('/') {
            return ResourceId::parse(name).map_err(|e| bad(e.to_string()));
        }
        match self.declared.get(&(kind, name.to_ascii_lowercase())).map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            Some([]) | None => {
                let classic = self.declared.get(&(Kind::ClassicVirtualNetwork, name.to_ascii_lowercase()));
                if let (Kind::VirtualNetwork, Some([one])) = (kind, classic.map(Vec::as_slice)) {
                    return Ok(one.clone());
                }
                Err(bad(format!("{} '{name}' is not declared in this file", kind.arm_type())))
            }
            Some(_) => Err(bad(format!("the name '{name}' is ambiguous; use the full resource id"))),
        }
    }

    /// `vnet/subnet` to a subnet id.
    fn subnet(&self, path: &str) -> Result<ResourceId, ArmError> {
        if path.starts_with('/') {
            return ResourceId::parse(path).map_err(|e| bad(e.to_string()));
        }
        let (vnet, subnet) =
            path.split_once('/').ok_or_else(|| bad(format!("subnet '{path}' must be written as vnet/subnet")))?;
        Ok(self.resolve(Kind::VirtualNetwork, vnet)?.child("subnets", subnet))
    }

    /// `lb/child` to a child id of a load balancer.
    fn lb_child(&self, path: &str, segment: &str) -> Result<ResourceId, ArmError> {
        if path.starts_with('/') {
            return ResourceId::parse(path).map_err(|e| bad(e.to_string()));
        }
        let (lb, child) =
            path.split_once('/').ok_or_else(|| bad(format!("'{path}' must be written as loadBalancer/{segment}")))?;
        Ok(self.resolve(Kind::LoadBalancer, lb)?.child(segment, child))
    }
}

fn tracked<P>(id: ResourceId, location: String, properties: P) -> Tracked<P> {
    Tracked {
        name: id.name().to_string(),
        kind: id.kind().arm_type().to_string(),
        id,
        location,
        tags: BTreeMap::new(),
        etag: None,
        properties,
    }
}

fn child<P>(id: ResourceId, properties: P) -> Child<P> {
    Child {
        name: id.name().to_string(),
        kind: None,
        id: Some(id),
        etag: None,
        properties,
        unmodelled: Default::default(),
    }
}

/// Parses the YAML topology format into resources (not yet validated).
pub fn from_yaml(text: &str) -> Result<Vec<Resource>, ArmError> {
    let doc: Document = serde_yaml_ng::from_str(text).map_err(|e| bad(format!("cannot read the topology: {e}")))?;
    let mut names = Names {
        subscription: doc.subscription.clone().unwrap_or_else(|| account::DEFAULT_SUBSCRIPTION.into()),
        resource_group: doc.resource_group.clone().unwrap_or_else(|| account::DEFAULT_RESOURCE_GROUP.into()),
        location: doc.location.clone().unwrap_or_else(|| account::DEFAULT_LOCATION.into()),
        declared: BTreeMap::new(),
    };
    // Declare every name first so that references may point forward.
    for v in &doc.vnets {
        let kind = if v.classic { Kind::ClassicVirtualNetwork } else { Kind::VirtualNetwork };
        let id = names.id(&v.at, kind, &v.name);
        names.declare(kind, &id);
    }
    for n in &doc.nsgs {
        let id = names.id(&n.at, Kind::NetworkSecurityGroup, &n.name);
        names.declare(Kind::NetworkSecurityGroup, &id);
    }
    for r in &doc.route_tables {
        let id = names.id(&r.at, Kind::RouteTable, &r.name);
        names.declare(Kind::RouteTable, &id);
    }
    for g in &doc.gateways {
        let id = names.id(&g.at, Kind::VirtualNetworkGateway, &g.name);
        names.declare(Kind::VirtualNetworkGateway, &id);
    }
    for s in &doc.sites {
        let id = names.id(&s.at, Kind::LocalNetworkGateway, &s.name);
        names.declare(Kind::LocalNetworkGateway, &id);
    }
    for l in &doc.load_balancers {
        let id = names.id(&l.at, Kind::LoadBalancer, &l.name);
        names.declare(Kind::LoadBalancer, &id);
    }

    let mut out = Vec::new();
    let mut subs: Vec<String> = Vec::new();
    for s in &doc.subscriptions {
        subs.push(s.id.to_ascii_lowercase());
        out.push(Resource::Subscription(Subscription::new(
            &s.id,
            s.tenant.as_deref().unwrap_or(account::DEFAULT_TENANT),
            s.name.as_deref().unwrap_or(&s.id),
        )));
    }
    if !subs.contains(&names.subscription.to_ascii_lowercase()) {
        out.push(Resource::Subscription(Subscription::new(&names.subscription, account::DEFAULT_TENANT, "default")));
    }

    for v in doc.vnets {
        let (_, _, location) = names.place(&v.at);
        if v.classic {
            let id = names.id(&v.at, Kind::ClassicVirtualNetwork, &v.name);
            let mut subnets = Vec::new();
            for s in v.subnets {
                let prefix = s.prefix.into_vec().first().cloned().unwrap_or_default();
                let address_prefix = prefix.parse().map_err(|_| bad(format!("bad prefix '{prefix}' in {}", s.name)))?;
                subnets.push(ClassicSubnet { name: s.name, address_prefix });
            }
            out.push(Resource::ClassicVirtualNetwork(tracked(
                id,
                location,
                ClassicVirtualNetworkProperties {
                    address_space: AddressSpace::of(v.address_space),
                    subnets,
                    has_gateway: false,
                },
            )));
            continue;
        }
        let id = names.id(&v.at, Kind::VirtualNetwork, &v.name);
        let mut subnets = Vec::new();
        for s in v.subnets {
            let mut prefixes = Vec::new();
            for p in s.prefix.into_vec() {
                prefixes.push(p.parse::<IpNet>().map_err(|_| bad(format!("bad prefix '{p}' in subnet {}", s.name)))?);
            }
            let (address_prefix, address_prefixes) =
                if prefixes.len() == 1 { (prefixes.pop(), Vec::new()) } else { (None, prefixes) };
            subnets.push(child(
                id.child("subnets", &s.name),
                SubnetProperties {
                    address_prefix,
                    address_prefixes,
                    network_security_group: s
                        .nsg
                        .map(|n| names.resolve(Kind::NetworkSecurityGroup, &n).map(SubResource::new))
                        .transpose()?,
                    route_table: s
                        .route_table
                        .map(|n| names.resolve(Kind::RouteTable, &n).map(SubResource::new))
                        .transpose()?,
                    ..SubnetProperties::default()
                },
            ));
        }
        let dhcp_options =
            (!v.dns_servers.is_empty()).then(|| crate::network::DhcpOptions { dns_servers: v.dns_servers.clone() });
        out.push(Resource::VirtualNetwork(tracked(
            id,
            location,
            VirtualNetworkProperties {
                address_space: AddressSpace::of(v.address_space),
                subnets,
                dhcp_options,
                flow_timeout_in_minutes: v.flow_timeout_in_minutes,
                ..Default::default()
            },
        )));
    }

    for n in doc.nsgs {
        let (_, _, location) = names.place(&n.at);
        let id = names.id(&n.at, Kind::NetworkSecurityGroup, &n.name);
        let rules = n
            .rules
            .into_iter()
            .map(|r| {
                let star = || OneOrMany::One("*".into());
                let split = |v: OneOrMany| {
                    let v = v.into_vec();
                    if v.len() == 1 { (v.into_iter().next(), Vec::new()) } else { (None, v) }
                };
                let (source_address_prefix, source_address_prefixes) = split(r.source.unwrap_or_else(star));
                let (destination_address_prefix, destination_address_prefixes) =
                    split(r.destination.unwrap_or_else(star));
                let (source_port_range, source_port_ranges) = split(r.source_ports.unwrap_or_else(star));
                let (destination_port_range, destination_port_ranges) = split(r.destination_ports.unwrap_or_else(star));
                child(
                    id.child("securityRules", &r.name),
                    SecurityRuleProperties {
                        source_application_security_groups: Vec::new(),
                        destination_application_security_groups: Vec::new(),
                        unmodelled: Default::default(),
                        description: r.description,
                        protocol: r.protocol.unwrap_or(RuleProtocol::Any),
                        source_port_range,
                        source_port_ranges,
                        destination_port_range,
                        destination_port_ranges,
                        source_address_prefix,
                        source_address_prefixes,
                        destination_address_prefix,
                        destination_address_prefixes,
                        access: r.access,
                        priority: r.priority,
                        direction: r.direction,
                        provisioning_state: None,
                    },
                )
            })
            .collect::<Vec<SecurityRule>>();
        out.push(Resource::NetworkSecurityGroup(tracked(
            id,
            location,
            NsgProperties { security_rules: rules, ..Default::default() },
        )));
    }

    for t in doc.route_tables {
        let (_, _, location) = names.place(&t.at);
        let id = names.id(&t.at, Kind::RouteTable, &t.name);
        let routes = t
            .routes
            .into_iter()
            .map(|r| {
                child(
                    id.child("routes", &r.name),
                    RouteProperties {
                        unmodelled: Default::default(),
                        address_prefix: r.prefix,
                        next_hop_type: r.next_hop,
                        next_hop_ip_address: r.next_hop_ip,
                        provisioning_state: None,
                    },
                )
            })
            .collect::<Vec<Route>>();
        let table: RouteTable = tracked(
            id,
            location,
            RouteTableProperties {
                routes,
                disable_bgp_route_propagation: t.disable_bgp_route_propagation,
                ..Default::default()
            },
        );
        out.push(Resource::RouteTable(table));
    }

    for s in doc.sites {
        let (_, _, location) = names.place(&s.at);
        let id = names.id(&s.at, Kind::LocalNetworkGateway, &s.name);
        let mut site: LocalNetworkGateway = tracked(
            id,
            location,
            LocalGatewayProperties {
                unmodelled: Default::default(),
                local_network_address_space: AddressSpace::of(s.address_space),
                gateway_ip_address: s.gateway_ip,
                bgp_settings: s.asn.map(|asn| BgpSettings {
                    asn,
                    bgp_peering_address: s.bgp_peering_address,
                    unmodelled: Default::default(),
                }),
                provisioning_state: None,
            },
        );
        if s.simulate {
            let value = s.lan.map_or_else(|| "true".to_string(), |l| l.to_string());
            site.tags.insert(crate::SIMULATE_TAG.to_string(), value);
        }
        out.push(Resource::LocalNetworkGateway(site));
    }

    for g in doc.gateways {
        let (_, _, location) = names.place(&g.at);
        let id = names.id(&g.at, Kind::VirtualNetworkGateway, &g.name);
        let vnet = names.resolve(Kind::VirtualNetwork, &g.vnet)?;
        let gateway_type = g.r#type.unwrap_or(GatewayType::Vpn);
        let sku =
            g.sku.unwrap_or_else(|| if gateway_type == GatewayType::Vpn { "VpnGw1".into() } else { "Standard".into() });
        let public_ip = g.public_ip.then(|| {
            let pid = names.id(&g.at, Kind::PublicIpAddress, &format!("{}-ip", g.name));
            let props = PublicIpProperties {
                public_ip_allocation_method: Some(crate::compute::AllocationMethod::Static),
                ..Default::default()
            };
            let sku = PublicIpSku { name: PublicIpSkuName::Standard, tier: None };
            out.push(Resource::PublicIpAddress(PublicIpAddress {
                resource: tracked(pid.clone(), location.clone(), props),
                sku,
            }));
            pid
        });
        let mut gw: VirtualNetworkGateway = tracked(
            id.clone(),
            location,
            GatewayProperties {
                unmodelled: Default::default(),
                gateway_type,
                vpn_type: (gateway_type == GatewayType::Vpn).then(|| g.vpn_type.unwrap_or(VpnType::RouteBased)),
                sku: Sku { name: sku.clone(), tier: Some(sku) },
                ip_configurations: vec![child(
                    id.child("ipConfigurations", "default"),
                    GatewayIpConfigurationProperties {
                        unmodelled: Default::default(),
                        subnet: Some(SubResource::new(vnet.child("subnets", "GatewaySubnet"))),
                        private_ip_address: g.ip,
                        public_ip_address: public_ip.map(SubResource::new),
                    },
                )],
                enable_bgp: g.asn.is_some(),
                bgp_settings: g.asn.map(|asn| BgpSettings {
                    asn,
                    bgp_peering_address: None,
                    unmodelled: Default::default(),
                }),
                provisioning_state: None,
                instance: None,
            },
        );
        if let Some(host) = g.host {
            gw.tags.insert(crate::HOST_TAG.to_string(), host);
        }
        out.push(Resource::VirtualNetworkGateway(gw));
    }

    for l in doc.load_balancers {
        let (_, _, location) = names.place(&l.at);
        let id = names.id(&l.at, Kind::LoadBalancer, &l.name);
        let mut props = LoadBalancerProperties::default();
        for f in l.frontends {
            props.frontend_ip_configurations.push(child(
                id.child("frontendIPConfigurations", &f.name),
                FrontendProperties {
                    unmodelled: Default::default(),
                    public_ip_address: None,
                    private_ip_address: f.ip,
                    subnet: Some(SubResource::new(names.subnet(&f.subnet)?)),
                },
            ));
        }
        for p in l.pools {
            props
                .backend_address_pools
                .push(child(id.child("backendAddressPools", &p), BackendPoolProperties::default()));
        }
        for p in l.probes {
            props.probes.push(child(
                id.child("probes", &p.name),
                ProbeProperties {
                    protocol: p.protocol.unwrap_or_else(|| "Tcp".into()),
                    port: p.port,
                    unmodelled: Default::default(),
                },
            ));
        }
        for r in l.rules {
            props.load_balancing_rules.push(child(
                id.child("loadBalancingRules", &r.name),
                LbRuleProperties {
                    unmodelled: Default::default(),
                    frontend_ip_configuration: SubResource::new(id.child("frontendIPConfigurations", &r.frontend)),
                    backend_address_pool: SubResource::new(id.child("backendAddressPools", &r.pool)),
                    probe: r.probe.map(|p| SubResource::new(id.child("probes", &p))),
                    protocol: r.protocol.unwrap_or(LbProtocol::Tcp),
                    frontend_port: r.frontend_port,
                    backend_port: r.backend_port,
                },
            ));
        }
        out.push(Resource::LoadBalancer(LoadBalancer {
            resource: tracked(id, location, props),
            sku: LbSku { name: l.sku.unwrap_or(LbSkuName::Standard), tier: None },
        }));
    }

    for vm in doc.vms {
        let (_, _, location) = names.place(&vm.at);
        let nic_id = names.id(&vm.at, Kind::NetworkInterface, &format!("{}-nic", vm.name));
        let vm_id = names.id(&vm.at, Kind::VirtualMachine, &vm.name);
        let pools = vm
            .backend_pools
            .iter()
            .map(|p| names.lb_child(p, "backendAddressPools").map(SubResource::new))
            .collect::<Result<Vec<_>, _>>()?;
        let ipconfig: IpConfiguration = child(
            nic_id.child("ipConfigurations", "ipconfig1"),
            IpConfigurationProperties {
                private_ip_allocation_method: Some(if vm.ip.is_some() {
                    AllocationMethod::Static
                } else {
                    AllocationMethod::Dynamic
                }),
                private_ip_address: vm.ip,
                subnet: Some(SubResource::new(names.subnet(&vm.subnet)?)),
                primary: Some(true),
                load_balancer_backend_address_pools: pools,
                ..Default::default()
            },
        );
        let nic: NetworkInterface = tracked(
            nic_id.clone(),
            location.clone(),
            NicProperties {
                ip_configurations: vec![ipconfig],
                network_security_group: vm
                    .nsg
                    .map(|n| names.resolve(Kind::NetworkSecurityGroup, &n).map(SubResource::new))
                    .transpose()?,
                enable_ip_forwarding: vm.ip_forwarding,
                ..Default::default()
            },
        );
        out.push(Resource::NetworkInterface(nic));
        let mut machine: VirtualMachine = tracked(
            vm_id,
            location,
            VmProperties {
                unmodelled: Default::default(),
                network_profile: NetworkProfile {
                    network_interfaces: vec![VmNicReference {
                        id: nic_id,
                        properties: Some(VmNicReferenceProperties { primary: true }),
                    }],
                },
                provisioning_state: None,
            },
        );
        if let Some(host) = vm.host {
            machine.tags.insert(crate::HOST_TAG.to_string(), host);
        }
        out.push(Resource::VirtualMachine(machine));
    }

    for p in doc.peerings {
        let from = names.resolve(Kind::VirtualNetwork, &p.from)?;
        let to = names.resolve(Kind::VirtualNetwork, &p.to)?;
        out.push(Resource::Peering(peering(&from, &to, p.flags)));
        if let Some(rev) = p.reverse {
            out.push(Resource::Peering(peering(&to, &from, rev)));
        }
    }

    for c in doc.connections {
        let (_, _, location) = names.place(&c.at);
        let id = names.id(&c.at, Kind::Connection, &c.name);
        let gw1 = names.resolve(Kind::VirtualNetworkGateway, &c.gateway)?;
        let (connection_type, gw2, site) = match (c.site, c.remote_gateway) {
            (Some(site), None) => (
                if c.express_route { ConnectionType::ExpressRoute } else { ConnectionType::IPsec },
                None,
                Some(names.resolve(Kind::LocalNetworkGateway, &site)?),
            ),
            (None, Some(remote)) => {
                (ConnectionType::Vnet2Vnet, Some(names.resolve(Kind::VirtualNetworkGateway, &remote)?), None)
            }
            (None, None) if c.express_route => (ConnectionType::ExpressRoute, None, None),
            _ => {
                return Err(bad(format!("connection '{}' needs exactly one of site or remoteGateway", c.name)));
            }
        };
        let conn: Connection = tracked(
            id,
            location,
            ConnectionProperties {
                unmodelled: Default::default(),
                connection_type,
                virtual_network_gateway1: SubResource::new(gw1),
                virtual_network_gateway2: gw2.map(SubResource::new),
                local_network_gateway2: site.map(SubResource::new),
                enable_bgp: c.bgp || !c.bgp_learned_prefixes.is_empty(),
                bgp_learned_prefixes: c.bgp_learned_prefixes,
                shared_key: c.shared_key,
                connection_status: None,
                provisioning_state: None,
            },
        );
        out.push(Resource::Connection(conn));
    }
    Ok(out)
}

fn peering(from: &ResourceId, to: &ResourceId, f: YFlags) -> Peering {
    let name = f.name.unwrap_or_else(|| format!("{}-to-{}", from.name(), to.name()));
    let subnet_peering = !f.local_subnets.is_empty() || !f.remote_subnets.is_empty();
    child(
        from.child("virtualNetworkPeerings", &name),
        PeeringProperties {
            remote_virtual_network: Some(SubResource::new(to.clone())),
            allow_virtual_network_access: f.allow_virtual_network_access.unwrap_or(true),
            allow_forwarded_traffic: f.allow_forwarded_traffic,
            allow_gateway_transit: f.allow_gateway_transit,
            use_remote_gateways: f.use_remote_gateways,
            peer_complete_vnets: !subnet_peering,
            local_subnet_names: f.local_subnets,
            remote_subnet_names: f.remote_subnets,
            ..PeeringProperties::default()
        },
    )
}
