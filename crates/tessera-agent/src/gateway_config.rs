//! What a gateway instance and a simulated on-premises site run, derived from the documents,
//! and the daemons' configuration files rendered from it: strongSwan's `swanctl.conf` (IKEv2,
//! the connection's pre-shared key, ESP in UDP through the userspace `kernel-libipsec` data path
//! on a TUN device `ipsec0`) and BIRD's `bird.conf` (BGP over the tunnel between the two BGP
//! addresses, the tunnel's static routes, the VNet prefixes towards the GatewaySubnet's router).
//! Pure functions: the agent writes the files and runs the daemons (`gateway.rs`).

use std::fmt::Write as _;
use std::net::IpAddr;

use tessera_engine::Engine;
use tessera_engine::compile::routes::transit_spoke_spaces;
use tessera_engine::state::gateway_vnet;
use tessera_model::gateway::{ConnectionType, LocalNetworkGateway, VirtualNetworkGateway};
use tessera_model::{IpNet, ResourceId, SIMULATE_TAG};

/// The ASN Azure gives a gateway without one.
pub const AZURE_ASN: u32 = 65515;

/// One IPsec tunnel, seen from one end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// The connection it carries.
    pub connection: ResourceId,
    /// Its name in the daemons' configuration (`c<index>`).
    pub name: String,
    /// This end's public address.
    pub local: IpAddr,
    /// The other end's public address.
    pub remote: IpAddr,
    /// The pre-shared key.
    pub psk: String,
    /// Prefixes routed into the tunnel without BGP.
    pub static_prefixes: Vec<IpNet>,
    /// BGP: this end's address and ASN, the peer's address and ASN.
    pub bgp: Option<BgpSession>,
}

/// A BGP session across a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BgpSession {
    /// This end's BGP address.
    pub local: IpAddr,
    /// This end's ASN.
    pub local_asn: u32,
    /// The peer's BGP address.
    pub peer: IpAddr,
    /// The peer's ASN.
    pub peer_asn: u32,
}

/// What one end (a gateway instance or a simulated site) runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndConfig {
    /// Router id (its private or BGP address).
    pub router_id: IpAddr,
    /// Its tunnels.
    pub tunnels: Vec<Tunnel>,
    /// Prefixes it originates (a gateway: its VNet and transit spokes, GW2; a site: its space).
    pub originated: Vec<IpNet>,
    /// For a gateway, the GatewaySubnet router that reaches the originated prefixes.
    pub inside_router: Option<IpAddr>,
}

fn parse_ip(text: Option<&String>) -> Option<IpAddr> {
    text.and_then(|t| t.parse().ok())
}

/// The public address of a gateway's first IP configuration.
pub fn gateway_public_ip(engine: &Engine, gw: &VirtualNetworkGateway) -> Option<IpAddr> {
    let pip = gw.properties.ip_configurations.first()?.properties.public_ip_address.as_ref()?;
    parse_ip(engine.state().public_ips.get(&pip.id)?.resource.properties.ip_address.as_ref())
}

fn site_bgp(site: &LocalNetworkGateway) -> Option<(IpAddr, u32)> {
    let b = site.properties.bgp_settings.as_ref()?;
    Some((parse_ip(b.bgp_peering_address.as_ref())?, b.asn))
}

fn gateway_bgp(gw: &VirtualNetworkGateway) -> Option<(IpAddr, u32)> {
    if !gw.properties.enable_bgp {
        return None;
    }
    let b = gw.properties.bgp_settings.as_ref();
    let addr = parse_ip(b.and_then(|b| b.bgp_peering_address.as_ref()))
        .or_else(|| parse_ip(gw.properties.ip_configurations.first()?.properties.private_ip_address.as_ref()))?;
    let asn = b.map(|b| b.asn).filter(|a| *a != 0).unwrap_or(AZURE_ASN);
    Some((addr, asn))
}

/// What a gateway advertises: its VNet's space and its transit spokes' (GW2).
pub fn gateway_originated(engine: &Engine, gw: &VirtualNetworkGateway) -> Vec<IpNet> {
    let st = engine.state();
    let Some(vnet) = gateway_vnet(gw) else { return Vec::new() };
    let mut out: Vec<IpNet> = st.address_space(&vnet).unwrap_or(&[]).to_vec();
    for p in transit_spoke_spaces(st, &vnet) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.retain(|p| p.addr().is_ipv4());
    out
}

/// The IPsec connections of a gateway to sites, in id order: (connection, site).
fn site_connections<'e>(
    engine: &'e Engine,
    gw: &ResourceId,
) -> Vec<(&'e tessera_model::gateway::Connection, &'e LocalNetworkGateway)> {
    let st = engine.state();
    let mut out: Vec<_> = st
        .connections
        .values()
        .filter(|c| {
            c.properties.connection_type == ConnectionType::IPsec && c.properties.virtual_network_gateway1.id == *gw
        })
        .filter_map(|c| Some((c, st.local_gateways.get(&c.properties.local_network_gateway2.as_ref()?.id)?)))
        .collect();
    out.sort_by(|a, b| a.0.id.key().cmp(b.0.id.key()));
    out
}

/// What a gateway's instance runs: a tunnel per IPsec connection to a site with an address,
/// BGP where the gateway, the connection and the site all have it.
pub fn gateway_config(engine: &Engine, gw_id: &ResourceId) -> Option<EndConfig> {
    let gw = engine.state().gateways.get(gw_id)?;
    let c = gw.properties.ip_configurations.first()?;
    let private = parse_ip(c.properties.private_ip_address.as_ref())?;
    let subnet = engine.compiled().subnets.get(&c.properties.subnet.as_ref()?.id)?;
    let inside_router = subnet.gateway.map(IpAddr::V4);
    let public = gateway_public_ip(engine, gw);
    let mut tunnels = Vec::new();
    for (i, (conn, site)) in site_connections(engine, gw_id).into_iter().enumerate() {
        let (Some(local), Some(remote)) = (public, parse_ip(site.properties.gateway_ip_address.as_ref())) else {
            continue;
        };
        let bgp = match (conn.properties.enable_bgp, gateway_bgp(gw), site_bgp(site)) {
            (true, Some((l, la)), Some((p, pa))) => Some(BgpSession { local: l, local_asn: la, peer: p, peer_asn: pa }),
            _ => None,
        };
        tunnels.push(Tunnel {
            connection: conn.id.clone(),
            name: format!("c{i}"),
            local,
            remote,
            psk: conn.properties.shared_key.clone().unwrap_or_default(),
            static_prefixes: site.properties.local_network_address_space.address_prefixes.clone(),
            bgp,
        });
    }
    Some(EndConfig { router_id: private, tunnels, originated: gateway_originated(engine, gw), inside_router })
}

/// The LAN of a site `tessera up` simulates (tagged `tessera-simulate`: a prefix, or `true`
/// for the first IPv4 prefix of its address space); None for a site it does not simulate.
pub fn simulated_lan(site: &LocalNetworkGateway) -> Option<IpNet> {
    let (_, v) = site.tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(SIMULATE_TAG))?;
    if v.eq_ignore_ascii_case("true") {
        return site
            .properties
            .local_network_address_space
            .address_prefixes
            .iter()
            .find(|p| p.addr().is_ipv4())
            .copied();
    }
    v.parse::<IpNet>().ok().filter(|p| p.addr().is_ipv4())
}

/// The local network gateways `tessera up` simulates, with their LANs.
pub fn simulated_sites(engine: &Engine) -> Vec<(&LocalNetworkGateway, IpNet)> {
    let mut out: Vec<_> = engine.state().local_gateways.values().filter_map(|s| Some((s, simulated_lan(s)?))).collect();
    out.sort_by(|a, b| a.0.id.key().cmp(b.0.id.key()));
    out
}

/// What a simulated site runs: a tunnel to each gateway connected to it that has a public
/// address (the mirror of the gateway's), routes to the gateway's prefixes without BGP.
pub fn site_config(engine: &Engine, site_id: &ResourceId) -> Option<EndConfig> {
    let st = engine.state();
    let site = st.local_gateways.get(site_id)?;
    let public = parse_ip(site.properties.gateway_ip_address.as_ref())?;
    let bgp = site_bgp(site);
    let mut tunnels = Vec::new();
    let mut conns: Vec<_> = st
        .connections
        .values()
        .filter(|c| c.properties.local_network_gateway2.as_ref().is_some_and(|l| l.id == *site_id))
        .collect();
    conns.sort_by(|a, b| a.id.key().cmp(b.id.key()));
    for (i, conn) in conns.into_iter().enumerate() {
        let Some(gw) = st.gateways.get(&conn.properties.virtual_network_gateway1.id) else { continue };
        let Some(remote) = gateway_public_ip(engine, gw) else { continue };
        let session = match (conn.properties.enable_bgp, bgp, gateway_bgp(gw)) {
            (true, Some((l, la)), Some((p, pa))) => Some(BgpSession { local: l, local_asn: la, peer: p, peer_asn: pa }),
            _ => None,
        };
        tunnels.push(Tunnel {
            connection: conn.id.clone(),
            name: format!("c{i}"),
            local: public,
            remote,
            psk: conn.properties.shared_key.clone().unwrap_or_default(),
            static_prefixes: if session.is_some() { Vec::new() } else { gateway_originated(engine, gw) },
            bgp: session,
        });
    }
    let mut originated = site.properties.local_network_address_space.address_prefixes.clone();
    if let Some(lan) = simulated_lan(site).filter(|l| !originated.contains(l)) {
        originated.push(lan);
    }
    Some(EndConfig { router_id: bgp.map_or(public, |(a, _)| a), tunnels, originated, inside_router: None })
}

fn hex(s: &str) -> String {
    s.bytes().fold(String::with_capacity(s.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// strongSwan's `swanctl.conf`: one IKEv2 connection per tunnel, pre-shared key authentication
/// (the key written in hex, so no character of it can break the file), any-to-any traffic
/// selectors (route-based: what enters `ipsec0` is the tunnel's). The `initiator` starts its
/// tunnels and restarts them when the peer stops answering; the other end takes a new SA in
/// place of an old one.
pub fn swanctl_conf(end: &EndConfig, initiator: bool) -> String {
    let mut out = String::from("connections {\n");
    for t in &end.tunnels {
        let (start, dpd, unique) = if initiator { ("start", "restart", "no") } else { ("none", "clear", "replace") };
        let _ = write!(
            out,
            "  {n} {{\n    version = 2\n    keyingtries = 0\n    local_addrs = {l}\n    remote_addrs = {r}\n    dpd_delay = 2s\n    \
             unique = {unique}\n    local {{\n      auth = psk\n      id = {l}\n    }}\n    remote {{\n      auth = psk\n      \
             id = {r}\n    }}\n    children {{\n      {n} {{\n        local_ts = 0.0.0.0/0\n        remote_ts = 0.0.0.0/0\n        \
             start_action = {start}\n        dpd_action = {dpd}\n        close_action = {start}\n        \
             esp_proposals = aes256gcm16\n      }}\n    }}\n  }}\n",
            n = t.name,
            l = t.local,
            r = t.remote,
        );
    }
    out.push_str("}\nsecrets {\n");
    for t in &end.tunnels {
        let _ = write!(
            out,
            "  ike-{n} {{\n    id-1 = {l}\n    id-2 = {r}\n    secret = 0x{k}\n  }}\n",
            n = t.name,
            l = t.local,
            r = t.remote,
            k = hex(&t.psk)
        );
    }
    out.push_str("}\n");
    out
}

/// strongSwan's daemon settings for one end: its own vici socket and log in `dir`, the
/// userspace IPsec data path (the kernel has no ESP here), no routes of its own (BIRD's).
pub fn strongswan_conf(dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "charon-systemd {{\n  load = kdf random nonce aes sha1 sha2 hmac gcm pem pkcs1 x509 pubkey openssl \
         kernel-libipsec kernel-netlink socket-default vici\n  install_routes = no\n  routing_table = 0\n  \
         retry_initiate_interval = 2\n  plugins {{\n    \
         vici {{\n      socket = unix://{d}/charon.vici\n    }}\n    kernel-libipsec {{\n      mtu = 1400\n    }}\n  }}\n  \
         filelog {{\n    log {{\n      path = {d}/charon.log\n      default = 1\n      flush_line = yes\n    }}\n  }}\n}}\n\
         swanctl {{\n  socket = unix://{d}/charon.vici\n}}\n"
    )
}

/// BIRD's `bird.conf` for one end: originated prefixes (a gateway's towards its GatewaySubnet
/// router, exported to the kernel and to BGP; a site's to BGP only), the tunnel's routes (the
/// peers' public addresses on `pub0`, the BGP peers and static prefixes into `ipsec0`), and a
/// BGP session per tunnel that has one, refusing prefixes this end originates.
pub fn bird_conf(end: &EndConfig) -> String {
    let v4 = |p: &IpNet| p.addr().is_ipv4();
    let mut out = format!(
        "router id {};\nprotocol device {{\n  scan time 1;\n}}\nprotocol kernel {{\n  ipv4 {{\n    import none;\n    \
         export where proto != \"site\";\n  }};\n}}\n",
        end.router_id
    );
    out.push_str("protocol static originated {\n  ipv4;\n");
    let mut site_routes = String::new();
    for p in end.originated.iter().filter(|p| v4(p)) {
        match end.inside_router {
            Some(r) => {
                let _ = writeln!(out, "  route {p} via {r};");
            }
            None => {
                let _ = writeln!(site_routes, "  route {p} unreachable;");
            }
        }
    }
    out.push_str("}\n");
    if !site_routes.is_empty() {
        let _ = write!(out, "protocol static site {{\n  ipv4;\n{site_routes}}}\n");
    }
    out.push_str("protocol static tunnel {\n  ipv4;\n");
    let mut seen: Vec<String> = Vec::new();
    let mut route = |out: &mut String, r: String| {
        if !seen.contains(&r) {
            let _ = writeln!(out, "  {r};");
            seen.push(r);
        }
    };
    for t in &end.tunnels {
        route(&mut out, format!("route {}/32 via \"pub0\"", t.remote));
        match t.bgp {
            Some(b) => route(&mut out, format!("route {}/32 via \"ipsec0\"", b.peer)),
            None => {
                for p in t.static_prefixes.iter().filter(|p| v4(p)) {
                    route(&mut out, format!("route {p} via \"ipsec0\""));
                }
            }
        }
    }
    out.push_str("}\n");
    let own: Vec<String> = end.originated.iter().filter(|p| v4(p)).map(|p| format!("{p}+")).collect();
    let import =
        if own.is_empty() { "import all;".to_string() } else { format!("import where net !~ [ {} ];", own.join(", ")) };
    let export = if end.inside_router.is_some() { "originated" } else { "site" };
    for t in &end.tunnels {
        if let Some(b) = t.bgp {
            let _ = write!(
                out,
                "protocol bgp {n} {{\n  local {l} as {la};\n  neighbor {p} as {pa};\n  multihop 4;\n  hold time 9;\n  \
                 connect retry time 2;\n  ipv4 {{\n    {import}\n    export where proto = \"{export}\";\n    next hop self;\n  }};\n}}\n",
                n = t.name,
                l = b.local,
                la = b.local_asn,
                p = b.peer,
                pa = b.peer_asn,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(bgp: bool) -> EndConfig {
        let id =
            ResourceId::parse("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/connections/c").unwrap();
        EndConfig {
            router_id: "10.0.255.4".parse().unwrap(),
            tunnels: vec![Tunnel {
                connection: id,
                name: "c0".into(),
                local: "198.18.0.1".parse().unwrap(),
                remote: "203.0.113.10".parse().unwrap(),
                psk: "a\"b\nc".into(),
                static_prefixes: vec!["192.168.0.0/16".parse().unwrap()],
                bgp: bgp.then(|| BgpSession {
                    local: "10.0.255.4".parse().unwrap(),
                    local_asn: 65515,
                    peer: "10.200.255.1".parse().unwrap(),
                    peer_asn: 65010,
                }),
            }],
            originated: vec!["10.0.0.0/16".parse().unwrap(), "fd00::/48".parse().unwrap()],
            inside_router: Some("10.0.255.1".parse().unwrap()),
        }
    }

    #[test]
    fn a_key_with_quotes_and_newlines_is_written_in_hex() {
        let conf = swanctl_conf(&end(false), true);
        assert!(conf.contains("secret = 0x6122620a63"), "{conf}");
        assert!(!conf.contains("a\"b"), "{conf}");
        assert!(conf.contains("start_action = start"));
        assert!(swanctl_conf(&end(false), false).contains("unique = replace"));
    }

    #[test]
    fn bgp_replaces_the_static_prefixes_and_refuses_the_own_space() {
        let with = bird_conf(&end(true));
        assert!(with.contains("neighbor 10.200.255.1 as 65010;"), "{with}");
        assert!(with.contains("route 10.200.255.1/32 via \"ipsec0\";"), "{with}");
        assert!(!with.contains("192.168.0.0/16"), "{with}");
        assert!(with.contains("import where net !~ [ 10.0.0.0/16+ ];"), "{with}");
        assert!(with.contains("route 10.0.0.0/16 via 10.0.255.1;"), "{with}");
        assert!(!with.contains("fd00::"), "IPv6 is not carried: {with}");
        let without = bird_conf(&end(false));
        assert!(without.contains("route 192.168.0.0/16 via \"ipsec0\";"), "{without}");
        assert!(!without.contains("protocol bgp"), "{without}");
    }
}
