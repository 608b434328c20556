//! The serde schema of the YAML topology format (see README).

use serde::Deserialize;

use crate::gateway::{GatewayType, VpnType};
use crate::lb::{LbProtocol, LbSkuName};
use crate::prefix::IpNet;
use crate::routing::RouteNextHopType;
use crate::security::{Access, Direction, RuleProtocol};

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Where a resource lives; each field falls back to the file's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Placement {
    pub(super) subscription: Option<String>,
    pub(super) resource_group: Option<String>,
    pub(super) location: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Document {
    #[serde(default)]
    pub(super) subscription: Option<String>,
    #[serde(default)]
    pub(super) resource_group: Option<String>,
    #[serde(default)]
    pub(super) location: Option<String>,
    #[serde(default)]
    pub(super) subscriptions: Vec<YSubscription>,
    #[serde(default)]
    pub(super) vnets: Vec<YVnet>,
    #[serde(default)]
    pub(super) nsgs: Vec<YNsg>,
    #[serde(default)]
    pub(super) route_tables: Vec<YRouteTable>,
    #[serde(default)]
    pub(super) vms: Vec<YVm>,
    #[serde(default)]
    pub(super) peerings: Vec<YPeering>,
    #[serde(default)]
    pub(super) gateways: Vec<YGateway>,
    #[serde(default)]
    pub(super) sites: Vec<YSite>,
    #[serde(default)]
    pub(super) connections: Vec<YConnection>,
    #[serde(default)]
    pub(super) load_balancers: Vec<YLoadBalancer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YSubscription {
    pub(super) id: String,
    #[serde(default)]
    pub(super) tenant: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YVnet {
    pub(super) name: String,
    pub(super) address_space: Vec<IpNet>,
    #[serde(default)]
    pub(super) subnets: Vec<YSubnet>,
    #[serde(default)]
    pub(super) classic: bool,
    #[serde(default)]
    pub(super) dns_servers: Vec<String>,
    #[serde(default)]
    pub(super) flow_timeout_in_minutes: Option<u32>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YSubnet {
    pub(super) name: String,
    pub(super) prefix: OneOrMany,
    #[serde(default)]
    pub(super) nsg: Option<String>,
    #[serde(default)]
    pub(super) route_table: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YNsg {
    pub(super) name: String,
    #[serde(default)]
    pub(super) rules: Vec<YRule>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YRule {
    pub(super) name: String,
    pub(super) priority: u32,
    pub(super) direction: Direction,
    pub(super) access: Access,
    #[serde(default)]
    pub(super) protocol: Option<RuleProtocol>,
    #[serde(default)]
    pub(super) source: Option<OneOrMany>,
    #[serde(default)]
    pub(super) destination: Option<OneOrMany>,
    #[serde(default)]
    pub(super) source_ports: Option<OneOrMany>,
    #[serde(default)]
    pub(super) destination_ports: Option<OneOrMany>,
    #[serde(default)]
    pub(super) description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YRouteTable {
    pub(super) name: String,
    #[serde(default)]
    pub(super) disable_bgp_route_propagation: bool,
    #[serde(default)]
    pub(super) routes: Vec<YRoute>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YRoute {
    pub(super) name: String,
    pub(super) prefix: String,
    pub(super) next_hop: RouteNextHopType,
    #[serde(default)]
    pub(super) next_hop_ip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YVm {
    pub(super) name: String,
    pub(super) subnet: String,
    #[serde(default)]
    pub(super) ip: Option<String>,
    #[serde(default)]
    pub(super) ip_forwarding: bool,
    #[serde(default)]
    pub(super) nsg: Option<String>,
    #[serde(default)]
    pub(super) backend_pools: Vec<String>,
    /// The host whose agent runs the VM (the `tessera-host` tag; default `local`).
    #[serde(default)]
    pub(super) host: Option<String>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YFlags {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) allow_virtual_network_access: Option<bool>,
    #[serde(default)]
    pub(super) allow_forwarded_traffic: bool,
    #[serde(default)]
    pub(super) allow_gateway_transit: bool,
    #[serde(default)]
    pub(super) use_remote_gateways: bool,
    #[serde(default)]
    pub(super) local_subnets: Vec<String>,
    #[serde(default)]
    pub(super) remote_subnets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YPeering {
    pub(super) from: String,
    pub(super) to: String,
    #[serde(flatten)]
    pub(super) flags: YFlags,
    /// Also create the link back, with these settings (`{}` for the defaults).
    #[serde(default)]
    pub(super) reverse: Option<YFlags>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YGateway {
    pub(super) name: String,
    pub(super) vnet: String,
    #[serde(default)]
    pub(super) r#type: Option<GatewayType>,
    #[serde(default)]
    pub(super) sku: Option<String>,
    #[serde(default)]
    pub(super) vpn_type: Option<VpnType>,
    #[serde(default)]
    pub(super) ip: Option<String>,
    #[serde(default)]
    pub(super) asn: Option<u32>,
    /// Give the gateway a public IP address (`<name>-ip`, Standard, Static), as a VPN
    /// gateway needs for its tunnels.
    #[serde(default)]
    pub(super) public_ip: bool,
    /// The host whose agent runs the gateway's instance.
    #[serde(default)]
    pub(super) host: Option<String>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YSite {
    pub(super) name: String,
    #[serde(default)]
    pub(super) address_space: Vec<IpNet>,
    #[serde(default)]
    pub(super) gateway_ip: Option<String>,
    #[serde(default)]
    pub(super) asn: Option<u32>,
    /// The site's BGP address (reached through the tunnel).
    #[serde(default)]
    pub(super) bgp_peering_address: Option<String>,
    /// Tessera extension: `tessera up` runs the site (IPsec, BGP, a host behind it).
    #[serde(default)]
    pub(super) simulate: bool,
    /// The simulated site's LAN (its host's network, announced by BGP); the first prefix of
    /// the address space when absent.
    #[serde(default)]
    pub(super) lan: Option<IpNet>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YConnection {
    pub(super) name: String,
    pub(super) gateway: String,
    #[serde(default)]
    pub(super) site: Option<String>,
    #[serde(default)]
    pub(super) remote_gateway: Option<String>,
    #[serde(default)]
    pub(super) express_route: bool,
    #[serde(default)]
    pub(super) bgp: bool,
    #[serde(default)]
    pub(super) bgp_learned_prefixes: Vec<IpNet>,
    /// The IPsec pre-shared key.
    #[serde(default)]
    pub(super) shared_key: Option<String>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YLoadBalancer {
    pub(super) name: String,
    #[serde(default)]
    pub(super) sku: Option<LbSkuName>,
    pub(super) frontends: Vec<YFrontend>,
    #[serde(default)]
    pub(super) pools: Vec<String>,
    #[serde(default)]
    pub(super) rules: Vec<YLbRule>,
    #[serde(default)]
    pub(super) probes: Vec<YProbe>,
    #[serde(flatten)]
    pub(super) at: Placement,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YFrontend {
    pub(super) name: String,
    pub(super) subnet: String,
    #[serde(default)]
    pub(super) ip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YLbRule {
    pub(super) name: String,
    pub(super) frontend: String,
    pub(super) pool: String,
    #[serde(default)]
    pub(super) protocol: Option<LbProtocol>,
    pub(super) frontend_port: u16,
    pub(super) backend_port: u16,
    #[serde(default)]
    pub(super) probe: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct YProbe {
    pub(super) name: String,
    #[serde(default)]
    pub(super) protocol: Option<String>,
    pub(super) port: u16,
}
