//! Gateway instances and simulated on-premises sites on this host. A gateway instance is a
//! namespace whose `eth0` is a switch port on GatewaySubnet (made like a VM's, see `vms.rs`)
//! and whose `pub0` holds the gateway's public address on the lab's WAN bridge; strongSwan
//! (`charon-systemd`, driven through `swanctl`) and BIRD run in it with the files
//! `gateway_config.rs` renders. A simulated site is the same pair of daemons in a namespace on
//! the WAN bridge, with a host namespace behind it on the site's first prefix. What the
//! daemons say (IKE SAs, BGP sessions, learned and exported routes) is read back through
//! their control sockets for the controller.

use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tessera_lab::{Bridge, Netns, VmInterface};
use tessera_model::IpNet;
use tessera_model::gateway::{BgpPeerStatus, GatewayInstance, GatewayRoute, TunnelStatus};

use crate::gateway_config::{EndConfig, bird_conf, strongswan_conf, swanctl_conf};

/// The lab's WAN bridge, where gateways' and sites' public addresses meet.
pub const WAN_BRIDGE: &str = "tsr-wan";

/// The namespace of a gateway instance.
pub fn gateway_namespace(name: &str) -> String {
    format!("{}gw-{}", tessera_lab::PREFIX, name.to_ascii_lowercase())
}

/// The namespaces of a simulated site: its router, and the host behind it.
pub fn site_namespaces(name: &str) -> (String, String) {
    let n = name.to_ascii_lowercase();
    (format!("{}site-{n}", tessera_lab::PREFIX), format!("{}{n}", tessera_lab::PREFIX))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

/// A MAC for a WAN or LAN interface, from its name.
fn mac_of(name: &str) -> [u8; 6] {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let b = h.to_be_bytes();
    [0x02, 0xee, b[2], b[3], b[4], b[5]]
}

/// strongSwan and BIRD for one end, with their files in `dir`; stopped when dropped.
#[derive(Debug)]
pub struct Daemons {
    ns: String,
    dir: PathBuf,
    charon: Option<Child>,
    bird: Option<Child>,
    config: Option<EndConfig>,
    /// Readings in a row that found each tunnel (by name) not connected.
    waiting: std::collections::BTreeMap<String, u32>,
}

/// Stops the daemon a pid file names (a strongSwan or BIRD process left by an agent that did
/// not stop cleanly; a pid now used by another program is left alone) and removes the file.
pub fn stop_pid_file(path: &Path) {
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(pid) = text.trim().parse::<i32>()
        && pid > 1
    {
        // Only a daemon of this end: BIRD names its configuration in this directory on its
        // command line, charon its strongswan.conf in its environment. A pid reused by any other
        // program (the system's own daemons, `birdc`, a `tail` of a log) is left alone.
        let read = |what: &str| {
            String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default()).into_owned()
        };
        let (cmdline, environ) = (read("cmdline"), read("environ"));
        let dir = path.parent().map(|d| d.display().to_string()).unwrap_or_default();
        let ours = !dir.is_empty()
            && ((cmdline.contains("bird") && cmdline.contains(&format!("{dir}/bird.conf")))
                || (cmdline.contains("charon") && environ.contains(&format!("STRONGSWAN_CONF={dir}/strongswan.conf"))));
        if ours {
            // Its agent is gone, so is the state it kept: killed at once. The next daemon may
            // only start once this one has let go of its sockets and of libipsec's TUN device.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            if !exits_within(pid, Duration::from_secs(3)) {
                tracing::warn!("daemon {pid} of {} did not exit", path.display());
            }
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Writes a file only its owner reads (it may hold pre-shared keys), whole: into a temporary
/// file renamed over it, so a daemon reading it never sees it half-written.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    std::fs::rename(&tmp, path)
}

/// Whether process `pid` is gone (or a zombie) within `limit`.
fn exits_within(pid: i32, limit: Duration) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command's closing parenthesis: `Z` is a zombie.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if stat.is_empty() || state == Some("Z") {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Daemons {
    /// Starts both daemons in namespace `ns` (stopping any a previous run left in `dir`).
    pub fn start(ns: &str, dir: PathBuf) -> Result<Daemons, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // The pre-shared keys are written here: the directory is the agent's alone.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
        stop_pid_file(&dir.join("charon.pid"));
        stop_pid_file(&dir.join("bird.pid"));
        for f in ["charon.vici", "bird.ctl"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let conf = dir.join("strongswan.conf");
        std::fs::write(&conf, strongswan_conf(&dir)).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("bird.conf"), "protocol device {}\n").map_err(|e| e.to_string())?;
        let mut d =
            Daemons { ns: ns.to_string(), dir, charon: None, bird: None, config: None, waiting: Default::default() };
        d.charon = Some(d.spawn("charon")?);
        d.bird = Some(d.spawn("bird")?);
        Ok(d)
    }

    /// Starts one daemon (`charon` or `bird`) in the end's namespace, its output logged and its
    /// pid written beside its files.
    fn spawn(&self, which: &str) -> Result<Child, String> {
        let dir = &self.dir;
        let log = |name: String| {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name));
            f.map(Stdio::from).unwrap_or_else(|_| Stdio::null())
        };
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]);
        if which == "charon" {
            cmd.arg("/usr/sbin/charon-systemd").env("STRONGSWAN_CONF", dir.join("strongswan.conf"));
        } else {
            cmd.args(["bird", "-f", "-c"]).arg(dir.join("bird.conf")).arg("-s").arg(dir.join("bird.ctl"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log(format!("{which}.out")))
            .stderr(log(format!("{which}.err")))
            .spawn()
            .map_err(|e| format!("{which}: {e}"))?;
        let _ = std::fs::write(dir.join(format!("{which}.pid")), child.id().to_string());
        Ok(child)
    }

    /// Starts again a daemon that exited (a configuration it refused, a crash): the whole
    /// configuration is loaded again after.
    fn revive(&mut self) {
        for which in ["charon", "bird"] {
            let slot = if which == "charon" { &mut self.charon } else { &mut self.bird };
            let exited = slot.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some());
            if !exited {
                continue;
            }
            tracing::warn!("{which} of {} exited; starting it again", self.dir.display());
            let _ = std::fs::remove_file(self.dir.join(if which == "charon" { "charon.vici" } else { "bird.ctl" }));
            match self.spawn(which) {
                Ok(c) => {
                    if which == "charon" {
                        self.charon = Some(c);
                    } else {
                        self.bird = Some(c);
                    }
                }
                Err(e) => tracing::warn!("cannot start {which} again: {e}"),
            }
            self.config = None;
        }
    }

    /// The directory of its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn vici(&self) -> String {
        format!("unix://{}/charon.vici", self.dir.display())
    }

    fn swanctl(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("swanctl")
            .args(args)
            .arg("--uri")
            .arg(self.vici())
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf")))
    }

    fn birdc(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new("birdc").arg("-s").arg(self.dir.join("bird.ctl")).args(args))
    }

    /// Writes and loads a new configuration when it changed (the daemons may still be
    /// starting: a failed load is tried again at the next call).
    pub fn configure(&mut self, config: &EndConfig) {
        self.revive();
        if self.config.as_ref() == Some(config) {
            return;
        }
        let swanctl = self.dir.join("swanctl.conf");
        let bird = self.dir.join("bird.conf");
        if write_private(&swanctl, &swanctl_conf(config)).is_err() || write_private(&bird, &bird_conf(config)).is_err()
        {
            return;
        }
        // Routes first: a tunnel started before the route to its peer would not come up.
        let routing = self.birdc(&["configure"]).and_then(|out| {
            if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") { Ok(out) } else { Err(out) }
        });
        let ipsec = self.swanctl(&["--load-all", "--clear", "--file", &swanctl.display().to_string()]);
        match (ipsec, routing) {
            (Ok(_), Ok(_)) => self.config = Some(config.clone()),
            (a, b) => tracing::debug!("daemons not configured yet: {:?} {:?}", a.err(), b.err()),
        }
    }

    fn initiate(&self, child: &str) {
        let spawned = Command::new("swanctl")
            .args(["--initiate", "--child", child, "--timeout", "10", "--uri"])
            .arg(self.vici())
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut c) = spawned {
            std::thread::spawn(move || c.wait());
        }
    }

    /// Whether the last configuration was loaded.
    pub fn configured(&self) -> bool {
        self.config.is_some()
    }

    /// What the daemons say now: each tunnel's IKE state, BGP sessions, routes learned and
    /// routes exported to each peer.
    pub fn status(&mut self, host: &str) -> GatewayInstance {
        self.revive();
        let Some(config) = self.config.as_ref() else {
            return GatewayInstance { host: host.to_string(), ..Default::default() };
        };
        let sas = self.swanctl(&["--list-sas"]).unwrap_or_default();
        let protocols = self.birdc(&["show", "protocols"]).unwrap_or_default();
        let mut out = GatewayInstance { host: host.to_string(), ..Default::default() };
        for t in &config.tunnels {
            let state = ike_state(&sas, &t.name);
            // Refused or unanswered (the peer was not ready), or stuck half-way (IKE retransmits
            // back off; an IKE SA may lack its CHILD_SA) for three readings: started again, in the
            // background.
            let waited = self.waiting.entry(t.name.clone()).or_default();
            *waited = if state == "Connected" { 0 } else { *waited + 1 };
            if t.initiator && (state == "NotConnected" || waited.is_multiple_of(3)) && state != "Connected" {
                self.initiate(&t.name);
            }
            out.tunnels.push(TunnelStatus { connection: t.connection.clone(), state });
            let Some(b) = t.bgp else { continue };
            let learned = parse_routes(&self.birdc(&["show", "route", "protocol", &t.name]).unwrap_or_default());
            let exported = parse_routes(&self.birdc(&["show", "route", "export", &t.name]).unwrap_or_default());
            out.bgp_peers.push(BgpPeerStatus {
                local_address: b.local.to_string(),
                neighbor: b.peer.to_string(),
                asn: b.peer_asn,
                state: bgp_state(&protocols, &t.name),
                routes_received: learned.len() as u64,
            });
            for (network, as_path) in learned {
                out.learned_routes.push(GatewayRoute {
                    local_address: b.local.to_string(),
                    network,
                    next_hop: b.peer.to_string(),
                    source_peer: b.peer.to_string(),
                    origin: "EBgp".into(),
                    as_path,
                    weight: 32768,
                });
            }
            for (network, _) in exported {
                out.advertised_routes.push(GatewayRoute {
                    local_address: b.local.to_string(),
                    network,
                    next_hop: b.local.to_string(),
                    source_peer: b.peer.to_string(),
                    origin: "Igp".into(),
                    as_path: b.local_asn.to_string(),
                    weight: 0,
                });
            }
        }
        out
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in [self.charon.take(), self.bird.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("charon.pid"));
        let _ = std::fs::remove_file(self.dir.join("bird.pid"));
    }
}

/// A tunnel's state in `swanctl --list-sas` output: `Connected` once its IKE SA is
/// established.
fn ike_state(sas: &str, name: &str) -> String {
    // An IKE SA's line starts at the margin; its CHILD_SAs' lines are indented by two spaces.
    // Connected: an ESTABLISHED IKE SA with an INSTALLED CHILD_SA (without one, no packet
    // crosses: the tunnel is still Connecting and its initiator starts the child again).
    let (ike, child) = (format!("{name}: #"), format!("  {name}: #"));
    let (mut state, mut established) = ("NotConnected", false);
    for line in sas.lines() {
        if line.starts_with(&ike) {
            established = line.contains("ESTABLISHED");
            state = "Connecting";
        } else if established && line.starts_with(&child) && line.contains("INSTALLED") {
            return "Connected".into();
        } else if !line.starts_with(' ') {
            established = false;
        }
    }
    state.into()
}

/// A BGP session's state in `birdc show protocols` output, in `BgpPeerStatus` spelling.
fn bgp_state(protocols: &str, name: &str) -> String {
    for line in protocols.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&name) && cols.get(1) == Some(&"BGP") {
            return match cols.get(5).copied() {
                Some("Established") => "Connected",
                Some("Idle") | None => "Idle",
                _ => "Connecting",
            }
            .into();
        }
    }
    "Unknown".into()
}

/// The prefixes of `birdc show route …` output with their AS path (`[AS65010i]` → `65010`).
fn parse_routes(text: &str) -> Vec<(IpNet, String)> {
    let (mut out, mut seen) = (Vec::new(), std::collections::HashSet::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(net) = words.next().and_then(|w| w.parse::<IpNet>().ok()) else { continue };
        let as_path = line
            .split("[AS")
            .nth(1)
            .map(|r| r.trim_end_matches(']').trim_end_matches(['i', 'e', '?']).to_string())
            .unwrap_or_default();
        if seen.insert(net) {
            out.push((net, as_path));
        }
    }
    out
}

/// The WAN bridge and the public interface of an end on it.
pub fn wan_bridge(host_ns: Option<&Netns>) -> Result<Bridge, String> {
    match host_ns {
        Some(ns) => ns.run(|| Bridge::create(WAN_BRIDGE)).map_err(|e| e.to_string())?,
        None => Bridge::create(WAN_BRIDGE),
    }
    .map_err(|e| e.to_string())
}

/// Puts `ns` on the WAN with `public` as its address (`pub0`, through bridge port `port`).
pub fn attach_wan(wan: &Bridge, host_ns: Option<&Netns>, ns: &Netns, port: &str, public: IpAddr) -> Result<(), String> {
    let cfg = VmInterface {
        name: "pub0".into(),
        mac: mac_of(port),
        addresses: vec![(public, if public.is_ipv4() { 32 } else { 128 })],
        gateway: None,
        mtu: Some(9000),
        forwarding: true,
    };
    match host_ns {
        Some(h) => h.run(|| wan.attach(ns, port, &cfg)).map_err(|e| e.to_string())?,
        None => wan.attach(ns, port, &cfg),
    }
    .map_err(|e| e.to_string())?;
    for key in ["net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter"] {
        ns.sysctl(key, "0").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A simulated on-premises site: its router namespace (on the WAN, with the daemons) and a
/// host namespace behind it.
#[derive(Debug)]
pub struct Site {
    /// The daemons (dropped first).
    pub daemons: Daemons,
    /// The host behind the router.
    pub host: Netns,
    /// The host's address.
    pub host_address: IpAddr,
    /// The router.
    pub router: Netns,
}

/// Starts a simulated site: router on the WAN at `public`, BGP address on its loopback, a LAN
/// to a host at the tenth address of the site's first IPv4 prefix (the router at the first).
pub fn start_site(
    name: &str,
    config: &EndConfig,
    public: IpAddr,
    lan: IpNet,
    wan: (&Bridge, Option<&Netns>, &str),
    dir: PathBuf,
) -> Result<Site, String> {
    let IpNet::V4(v4) = lan else { return Err("a site's LAN needs an IPv4 prefix".into()) };
    if v4.prefix_len() > 28 {
        return Err(format!("a site's LAN needs room for a router and a host (a /28 or larger): {lan}"));
    }
    let (router_name, host_name) = site_namespaces(name);
    let router = Netns::create(&router_name).map_err(|e| e.to_string())?;
    let host = Netns::create(&host_name).map_err(|e| e.to_string())?;
    attach_wan(wan.0, wan.1, &router, wan.2, public)?;
    if config.router_id != public {
        ip(&["-n", &router_name, "addr", "add", &format!("{}/32", config.router_id), "dev", "lo"])?;
    }
    let base = u32::from(v4.network());
    let (gw, addr) = (std::net::Ipv4Addr::from(base | 1), std::net::Ipv4Addr::from(base | 10));
    ip(&["link", "add", "lan0", "netns", &router_name, "type", "veth", "peer", "name", "eth0", "netns", &host_name])?;
    ip(&["-n", &router_name, "addr", "add", &format!("{gw}/{}", v4.prefix_len()), "dev", "lan0"])?;
    ip(&["-n", &router_name, "link", "set", "lan0", "up"])?;
    ip(&["-n", &host_name, "addr", "add", &format!("{addr}/{}", v4.prefix_len()), "dev", "eth0"])?;
    ip(&["-n", &host_name, "link", "set", "eth0", "up"])?;
    ip(&["-n", &host_name, "route", "add", "default", "via", &gw.to_string()])?;
    router.sysctl("net/ipv4/ip_forward", "1").map_err(|e| e.to_string())?;
    let mut daemons = Daemons::start(&router_name, dir)?;
    daemons.configure(config);
    Ok(Site { daemons, host, host_address: IpAddr::V4(addr), router })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_outputs_are_read() {
        let sas = "c0: #3, ESTABLISHED, IKEv2, 1_i* 2_r\n  local '198.18.0.1'\n  c0: #2, reqid 1, INSTALLED, \
                   TUNNEL-in-UDP, ESP:AES_GCM_16-256\n    local  0.0.0.0/0\nc1: #4, CONNECTING, IKEv2\n\
                   c2: #5, ESTABLISHED, IKEv2\n  local '198.18.0.1'\nc3: #6, CONNECTING, IKEv2\n  c3: #7, reqid 2, INSTALLED\n";
        assert_eq!(ike_state(sas, "c0"), "Connected");
        assert_eq!(ike_state(sas, "c1"), "Connecting");
        assert_eq!(ike_state(sas, "c2"), "Connecting", "an IKE SA without a CHILD_SA carries nothing");
        assert_eq!(ike_state(sas, "c3"), "Connecting");
        assert_eq!(ike_state(sas, "c4"), "NotConnected");
        let protocols = "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n\
                         c0         BGP        ---        up     02:10:07.834  Established   \n\
                         c1         BGP        ---        start  02:10:07.834  Active        Socket: Connection refused\n";
        assert_eq!(bgp_state(protocols, "c0"), "Connected");
        assert_eq!(bgp_state(protocols, "c1"), "Connecting");
        assert_eq!(bgp_state(protocols, "c9"), "Unknown");
        let routes = "BIRD 2.0.12 ready.\nTable master4:\n192.168.50.0/24      unicast [c0 02:10:08.705 from 10.100.255.1] * (100/?) [AS65050i]\n\tdev ipsec0\n";
        assert_eq!(parse_routes(routes), vec![("192.168.50.0/24".parse().expect("valid"), "65050".to_string())]);
    }
}
