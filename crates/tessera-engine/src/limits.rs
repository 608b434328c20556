//! Azure's networking limits (spec §2.5), configurable; Azure's values by default.

use serde::{Deserialize, Serialize};

/// Limits enforced by validation. Per-subscription limits apply per subscription and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    /// Virtual networks per subscription per region.
    pub vnets_per_subscription: usize,
    /// Subnets per virtual network.
    pub subnets_per_vnet: usize,
    /// Peering links per virtual network.
    pub peerings_per_vnet: usize,
    /// Subnets on both sides of one subnet peering together (SP4).
    pub subnets_per_subnet_peering: usize,
    /// VPN gateways per virtual network.
    pub vpn_gateways_per_vnet: usize,
    /// ExpressRoute gateways per virtual network.
    pub expressroute_gateways_per_vnet: usize,
    /// Private IP addresses per virtual network.
    pub private_ips_per_vnet: usize,
    /// Private IP addresses across a virtual network and the networks peered with it.
    pub private_ips_per_peering_group: usize,
    /// NSGs per subscription per region.
    pub nsgs_per_subscription: usize,
    /// Rules per NSG.
    pub rules_per_nsg: usize,
    /// Addresses and ranges on one side (source or destination) of a rule.
    pub prefixes_per_rule_side: usize,
    /// Route tables per subscription per region.
    pub route_tables_per_subscription: usize,
    /// Routes per route table.
    pub routes_per_table: usize,
    /// DNS servers per virtual network.
    pub dns_servers_per_vnet: usize,
    /// Public IP addresses per subscription per region.
    pub public_ips_per_subscription: usize,
    /// Application security groups per subscription per region.
    pub asgs_per_subscription: usize,
    /// The server's public address pool, IPv4 and IPv6 prefixes public IP addresses are
    /// allocated from (by default the benchmarking range 198.18.0.0/15 and a documentation
    /// prefix: addresses to show, never routed anywhere).
    #[serde(default = "default_public_pool")]
    pub public_pool: Vec<tessera_model::IpNet>,
}

/// The default public pool.
pub fn default_public_pool() -> Vec<tessera_model::IpNet> {
    ["198.18.0.0/15", "2001:db8:ffff::/48"].iter().filter_map(|p| p.parse().ok()).collect()
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            vnets_per_subscription: 1000,
            subnets_per_vnet: 3000,
            peerings_per_vnet: 500,
            subnets_per_subnet_peering: 200,
            vpn_gateways_per_vnet: 1,
            expressroute_gateways_per_vnet: 1,
            private_ips_per_vnet: 65_536,
            private_ips_per_peering_group: 128_000,
            nsgs_per_subscription: 5000,
            rules_per_nsg: 1000,
            prefixes_per_rule_side: 4000,
            route_tables_per_subscription: 200,
            routes_per_table: 400,
            dns_servers_per_vnet: 20,
            public_ips_per_subscription: 1000,
            asgs_per_subscription: 3000,
            public_pool: default_public_pool(),
        }
    }
}

impl Limits {
    /// No practical limits (for benchmarks that model larger estates than one subscription allows).
    pub fn unlimited() -> Self {
        let n = usize::MAX;
        Limits {
            vnets_per_subscription: n,
            subnets_per_vnet: n,
            peerings_per_vnet: n,
            subnets_per_subnet_peering: n,
            vpn_gateways_per_vnet: 1,
            expressroute_gateways_per_vnet: 1,
            private_ips_per_vnet: n,
            private_ips_per_peering_group: n,
            nsgs_per_subscription: n,
            rules_per_nsg: n,
            prefixes_per_rule_side: n,
            route_tables_per_subscription: n,
            routes_per_table: n,
            dns_servers_per_vnet: n,
            public_ips_per_subscription: n,
            asgs_per_subscription: n,
            public_pool: default_public_pool(),
        }
    }
}
