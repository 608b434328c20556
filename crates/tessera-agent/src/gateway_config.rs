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
use tessera_model::gateway::{Connection, ConnectionType, LocalNetworkGateway, VirtualNetworkGateway};
use tessera_model::{IpNet, ResourceId, SIMULATE_TAG};

/// The most prefixes a gateway takes from one BGP peer: above it, the session is shut down, as
/// Azure's VPN gateways do above 4,000 prefixes.
pub const ROUTE_LIMIT: usize = 4000;

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
    /// Whether this end starts the tunnel (and restarts it when the peer stops answering): a
    /// gateway towards a site, the gateway with the lower public address between two gateways.
    pub initiator: bool,
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

/// The far end of a gateway's connection: a site (IPsec) or another gateway (Vnet2Vnet).
enum FarEnd<'e> {
    Site(&'e LocalNetworkGateway),
    Gateway(&'e VirtualNetworkGateway),
}

/// A gateway's IPsec connections to sites and its VNet-to-VNet connections, in id order.
fn gateway_connections<'e>(engine: &'e Engine, gw: &ResourceId) -> Vec<(&'e Connection, FarEnd<'e>)> {
    let st = engine.state();
    let mut out: Vec<_> = st
        .connections
        .values()
        .filter(|c| c.properties.virtual_network_gateway1.id == *gw)
        .filter_map(|c| {
            let far = match c.properties.connection_type {
                ConnectionType::IPsec => {
                    FarEnd::Site(st.local_gateways.get(&c.properties.local_network_gateway2.as_ref()?.id)?)
                }
                ConnectionType::Vnet2Vnet => {
                    FarEnd::Gateway(st.gateways.get(&c.properties.virtual_network_gateway2.as_ref()?.id)?)
                }
                _ => return None,
            };
            Some((c, far))
        })
        .collect();
    out.sort_by(|a, b| a.0.id.key().cmp(b.0.id.key()));
    out
}

/// What a gateway's instance runs: a tunnel per IPsec connection to a site with an address and
/// per VNet-to-VNet connection to a gateway with a public address (GWY4), BGP where both ends
/// and the connection have it, the far end's prefixes routed into the tunnel otherwise.
pub fn gateway_config(engine: &Engine, gw_id: &ResourceId) -> Option<EndConfig> {
    let gw = engine.state().gateways.get(gw_id)?;
    let c = gw.properties.ip_configurations.first()?;
    let private = parse_ip(c.properties.private_ip_address.as_ref())?;
    let subnet = engine.compiled().subnets.get(&c.properties.subnet.as_ref()?.id)?;
    let inside_router = subnet.gateway.map(IpAddr::V4);
    let public = gateway_public_ip(engine, gw);
    let mut tunnels = Vec::new();
    for (i, (conn, far)) in gateway_connections(engine, gw_id).into_iter().enumerate() {
        let (remote, far_bgp, prefixes) = match far {
            FarEnd::Site(site) => (
                parse_ip(site.properties.gateway_ip_address.as_ref()),
                site_bgp(site),
                site.properties.local_network_address_space.address_prefixes.clone(),
            ),
            FarEnd::Gateway(other) => {
                (gateway_public_ip(engine, other), gateway_bgp(other), gateway_originated(engine, other))
            }
        };
        let (Some(local), Some(remote)) = (public, remote) else { continue };
        let Some(psk) = usable(local, remote, conn) else { continue };
        let bgp = match (conn.properties.enable_bgp, gateway_bgp(gw).filter(v4_end), far_bgp.filter(v4_end)) {
            (true, Some((l, la)), Some((p, pa))) => Some(BgpSession { local: l, local_asn: la, peer: p, peer_asn: pa }),
            _ => None,
        };
        let initiator = match far {
            FarEnd::Site(_) => true,
            FarEnd::Gateway(_) => local < remote,
        };
        tunnels.push(Tunnel {
            connection: conn.id.clone(),
            name: format!("c{i}"),
            local,
            remote,
            psk,
            static_prefixes: prefixes,
            bgp,
            initiator,
        });
    }
    let router_id = Some(private).filter(IpAddr::is_ipv4)?;
    Some(EndConfig { router_id, tunnels, originated: gateway_originated(engine, gw), inside_router })
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
        let Some(psk) = usable(public, remote, conn) else { continue };
        let session = match (conn.properties.enable_bgp, bgp.filter(v4_end), gateway_bgp(gw).filter(v4_end)) {
            (true, Some((l, la)), Some((p, pa))) => Some(BgpSession { local: l, local_asn: la, peer: p, peer_asn: pa }),
            _ => None,
        };
        tunnels.push(Tunnel {
            connection: conn.id.clone(),
            name: format!("c{i}"),
            local: public,
            remote,
            psk,
            static_prefixes: if session.is_some() { Vec::new() } else { gateway_originated(engine, gw) },
            bgp: session,
            initiator: false,
        });
    }
    let mut originated = site.properties.local_network_address_space.address_prefixes.clone();
    if let Some(lan) = simulated_lan(site).filter(|l| !originated.contains(l)) {
        originated.push(lan);
    }
    let router_id = bgp.filter(v4_end).map_or(public, |(a, _)| a);
    router_id.is_ipv4().then_some(EndConfig { router_id, tunnels, originated, inside_router: None })
}

/// A tunnel is made only between IPv4 addresses (the tunnels carry IPv4 here) and with a
/// pre-shared key: never with an empty one. The key, when it may be used.
fn usable(local: IpAddr, remote: IpAddr, conn: &Connection) -> Option<String> {
    let psk = conn.properties.shared_key.clone().filter(|k| !k.is_empty())?;
    (local.is_ipv4() && remote.is_ipv4()).then_some(psk)
}

/// A BGP end (address, ASN) that can be configured: an IPv4 address and a public or private
/// ASN that is not reserved (0, 23456 for AS_TRANS, 65535, 4294967295).
fn v4_end(end: &(IpAddr, u32)) -> bool {
    end.0.is_ipv4() && !matches!(end.1, 0 | 23456 | 65535 | 4_294_967_295)
}

fn hex(s: &str) -> String {
    s.bytes().fold(String::with_capacity(s.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// strongSwan's `swanctl.conf`: one IKEv2 connection per tunnel, pre-shared key authentication
/// (the key written in hex, so no character of it can break the file). Route-based: with one
/// tunnel, any-to-any traffic selectors (what enters `ipsec0` is the tunnel's); with several,
/// each tunnel's selectors name this end's prefixes and the far end's (its static prefixes and
/// BGP address), so the one `ipsec0` device can tell them apart. An initiator starts its tunnel
/// and restarts it when the peer stops answering; the other end takes a new SA in place of an
/// old one.
pub fn swanctl_conf(end: &EndConfig) -> String {
    let mut out = String::from("connections {\n");
    let any = "0.0.0.0/0".to_string();
    let list = |ps: &mut dyn Iterator<Item = String>| {
        let v: Vec<String> = ps.collect();
        if v.is_empty() { any.clone() } else { v.join(", ") }
    };
    for t in &end.tunnels {
        let (start, dpd, unique) = if t.initiator { ("start", "restart", "no") } else { ("none", "clear", "replace") };
        let (local_ts, remote_ts) = if end.tunnels.len() == 1 {
            (any.clone(), any.clone())
        } else {
            let mut own = end.originated.iter().filter(|p| p.addr().is_ipv4()).map(ToString::to_string);
            let local_bgp = t.bgp.map(|b| format!("{}/32", b.local));
            let mut local = own.by_ref().chain(local_bgp);
            let mut far = t
                .static_prefixes
                .iter()
                .filter(|p| p.addr().is_ipv4() && t.bgp.is_none())
                .map(ToString::to_string)
                .chain(t.bgp.map(|b| format!("{}/32", b.peer)));
            (list(&mut local), list(&mut far))
        };
        let _ = write!(
            out,
            "  {n} {{\n    version = 2\n    keyingtries = 0\n    local_addrs = {l}\n    remote_addrs = {r}\n    dpd_delay = 2s\n    \
             unique = {unique}\n    local {{\n      auth = psk\n      id = {l}\n    }}\n    remote {{\n      auth = psk\n      \
             id = {r}\n    }}\n    children {{\n      {n} {{\n        local_ts = {local_ts}\n        remote_ts = {remote_ts}\n        \
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
                 connect retry time 2;\n  ipv4 {{\n    {import}\n    import limit {ROUTE_LIMIT} action disable;\n    export where proto = \"{export}\";\n    next hop self;\n  }};\n}}\n",
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
        let id = ResourceId::parse("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/connections/c")
            .expect("valid");
        EndConfig {
            router_id: "10.0.255.4".parse().expect("valid"),
            tunnels: vec![Tunnel {
                connection: id,
                name: "c0".into(),
                local: "198.18.0.1".parse().expect("valid"),
                remote: "203.0.113.10".parse().expect("valid"),
                psk: "a\"b\nc".into(),
                static_prefixes: vec!["192.168.0.0/16".parse().expect("valid")],
                bgp: bgp.then(|| BgpSession {
                    local: "10.0.255.4".parse().expect("valid"),
                    local_asn: 65515,
                    peer: "10.200.255.1".parse().expect("valid"),
                    peer_asn: 65010,
                }),
                initiator: true,
            }],
            originated: vec!["10.0.0.0/16".parse().expect("valid"), "fd00::/48".parse().expect("valid")],
            inside_router: Some("10.0.255.1".parse().expect("valid")),
        }
    }

    #[test]
    fn a_key_with_quotes_and_newlines_is_written_in_hex() {
        let conf = swanctl_conf(&end(false));
        assert!(conf.contains("secret = 0x6122620a63"), "{conf}");
        assert!(!conf.contains("a\"b"), "{conf}");
        assert!(conf.contains("start_action = start"));
        assert!(conf.contains("remote_ts = 0.0.0.0/0"), "one tunnel takes everything: {conf}");
        let mut responder = end(false);
        responder.tunnels[0].initiator = false;
        assert!(swanctl_conf(&responder).contains("unique = replace"));
    }

    #[test]
    fn no_tunnel_without_a_key_or_over_ipv6_and_no_bgp_with_a_reserved_asn() {
        let conn = |key: Option<&str>| {
            let mut c: Connection = serde_json::from_value(serde_json::json!({
                "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/connections/c",
                "name": "c", "location": "westeurope", "properties": {"connectionType": "IPsec",
                "virtualNetworkGateway1": {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworkGateways/gw"}}}))
            .expect("a connection");
            c.properties.shared_key = key.map(str::to_string);
            c
        };
        let (v4a, v4b, v6): (IpAddr, IpAddr, IpAddr) = (
            "198.18.0.1".parse().expect("valid"),
            "203.0.113.1".parse().expect("valid"),
            "2001:db8::1".parse().expect("valid"),
        );
        assert_eq!(usable(v4a, v4b, &conn(Some("k"))).as_deref(), Some("k"));
        assert_eq!(usable(v4a, v4b, &conn(None)), None, "no key: no tunnel");
        assert_eq!(usable(v4a, v4b, &conn(Some(""))), None, "an empty key: no tunnel");
        assert_eq!(usable(v4a, v6, &conn(Some("k"))), None, "IPv6 is not carried");
        assert!(v4_end(&(v4a, 65010)));
        for asn in [0, 23456, 65535, 4_294_967_295] {
            assert!(!v4_end(&(v4a, asn)), "{asn}");
        }
        assert!(!v4_end(&(v6, 65010)));
        assert!(bird_conf(&end(true)).contains(&format!("import limit {ROUTE_LIMIT} action disable;")));
    }

    #[test]
    fn several_tunnels_get_traffic_selectors_of_their_own() {
        let mut two = end(false);
        let mut second = two.tunnels[0].clone();
        second.name = "c1".into();
        second.remote = "203.0.113.20".parse().expect("valid");
        second.static_prefixes = vec!["172.16.0.0/12".parse().expect("valid")];
        two.tunnels.push(second);
        let conf = swanctl_conf(&two);
        assert!(conf.contains("local_ts = 10.0.0.0/16\n        remote_ts = 192.168.0.0/16\n"), "{conf}");
        assert!(conf.contains("remote_ts = 172.16.0.0/12\n"), "{conf}");
        assert!(!conf.contains("fd00::"), "{conf}");
        two.tunnels[1].bgp = end(true).tunnels[0].bgp;
        let conf = swanctl_conf(&two);
        assert!(
            conf.contains("local_ts = 10.0.0.0/16, 10.0.255.4/32\n        remote_ts = 10.200.255.1/32\n"),
            "{conf}"
        );
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
