//! The ports of this host: a TAP device per NIC and, when asked, a namespace VM behind it
//! (`tessera-lab`), kept in step with what the feed says; and the status file that tells
//! `tessera up` and `tessera exec` which VMs run where.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use tessera_engine::Engine;
use tessera_engine::placement::host_of;
use tessera_lab::{Netns, VmInterface};
use tessera_model::ResourceId;

use crate::datapath::{Command, PortDevice};
use crate::fastpath::Programs;
use crate::feed::Desired;
use crate::tap::Tap;

/// One local port.
#[derive(Debug)]
struct LocalPort {
    tap: Arc<Tap>,
    /// The VM's name and its namespace (dropped last: the namespace goes with it).
    vm: String,
    namespace: Option<Netns>,
    addresses: Vec<IpAddr>,
    /// With the kernel fast path: the host ends (veth, TAP) and the programs' links, which
    /// detach when dropped.
    fast: Option<FastPort>,
}

#[derive(Debug)]
struct FastPort {
    veth: u32,
    tap: u32,
    _links: Vec<aya::programs::tc::SchedClassifierLink>,
}

/// The ports of this host.
#[derive(Debug)]
pub struct Vms {
    namespace_vms: bool,
    status: PathBuf,
    host: String,
    ports: BTreeMap<ResourceId, LocalPort>,
    next_tap: u32,
    /// The host's own namespace (several hosts on one machine), where TAPs are made.
    host_ns: Option<Netns>,
    /// The underlay address of every other host.
    peers: Vec<(String, IpAddr)>,
    /// The kernel fast path's programs, when it runs (namespace VMs on veth pairs).
    programs: Option<Programs>,
    /// Queues per TAP: one per forwarding worker.
    queues: usize,
    /// Gateway instances' daemons, by gateway (dropped before their namespaces).
    gateways: BTreeMap<ResourceId, crate::gateway::Daemons>,
    /// Simulated on-premises sites, by local network gateway.
    sites: BTreeMap<ResourceId, crate::gateway::Site>,
    /// The WAN bridge of gateways and sites, made when the first needs it.
    wan: Option<tessera_lab::Bridge>,
    /// The engine of the last reconcile (gateway configurations are derived from it).
    engine: Option<Arc<Engine>>,
    next_wan: u32,
    /// The WAN bridge's ports made so far.
    wan_ports: Vec<String>,
}

/// The host end of the veth pair of the VM behind TAP `tsr-tN`: `tsr-hN`.
pub fn veth_of_tap(tap: &str) -> Option<String> {
    let n = tap.strip_prefix(tessera_lab::PREFIX)?.strip_prefix('t')?;
    Some(format!("{}h{n}", tessera_lab::PREFIX))
}

/// The namespace of a VM: the lab prefix and the VM's name, lowercased.
pub fn namespace_of(vm: &str) -> String {
    format!("{}{}", tessera_lab::PREFIX, vm.to_ascii_lowercase())
}

impl Vms {
    /// No ports yet.
    pub fn new(
        namespace_vms: bool,
        status: PathBuf,
        host: &str,
        host_ns: Option<Netns>,
        peers: Vec<(String, IpAddr)>,
        programs: Option<Programs>,
        queues: usize,
    ) -> Self {
        let programs = programs.filter(|_| namespace_vms);
        Vms {
            namespace_vms,
            status,
            host: host.to_string(),
            ports: BTreeMap::new(),
            next_tap: 0,
            host_ns,
            peers,
            programs,
            queues,
            gateways: BTreeMap::new(),
            sites: BTreeMap::new(),
            wan: None,
            engine: None,
            next_wan: 0,
            wan_ports: Vec::new(),
        }
    }

    /// The ports of other hosts: every NIC of a VM placed on a host whose underlay address is
    /// known — from `--peer` first, then as the hosts registered with the controller.
    pub fn remotes(&self, engine: &Engine, registered: &[(String, IpAddr)]) -> Vec<(ResourceId, IpAddr)> {
        let mut out: Vec<(ResourceId, IpAddr)> = engine
            .compiled()
            .nics
            .values()
            .filter(|p| p.vm.is_some() || p.gateway.is_some())
            .filter_map(|p| {
                let host = host_of(engine, &p.nic);
                if host.eq_ignore_ascii_case(&self.host) {
                    return None;
                }
                self.peers
                    .iter()
                    .chain(registered)
                    .find(|(h, _)| h.eq_ignore_ascii_case(&host))
                    .map(|(_, a)| (p.nic.clone(), *a))
            })
            .collect();
        out.sort_by(|a, b| a.0.key().cmp(b.0.key()));
        out
    }

    /// Makes and removes ports (and VMs) to match the feed; returns the switch's update.
    pub fn reconcile(&mut self, desired: &Desired) -> Command {
        // A NIC runs once a VM uses it; a port follows its VM (a NIC moved to another VM gets
        // a new one).
        let vm_of = |nic: &ResourceId| {
            let p = desired.engine.program(nic)?;
            p.vm.as_ref().or(p.gateway.as_ref()).map(|v| v.name().to_string())
        };
        // A gateway's daemons stop before its namespace goes.
        self.gateways.retain(|gw, _| {
            desired
                .engine
                .state()
                .gateways
                .get(gw)
                .and_then(tessera_engine::compile::instance_id)
                .is_some_and(|i| desired.ports.contains(&i) && vm_of(&i).as_deref() == Some(gw.name()))
        });
        let programs = &mut self.programs;
        self.ports.retain(|nic, p| {
            let keep = desired.ports.contains(nic) && vm_of(nic).as_deref() == Some(p.vm.as_str());
            if let (false, Some(f), Some(programs)) = (keep, &p.fast, programs.as_mut()) {
                programs.forget(f.veth, f.tap);
            }
            keep
        });
        for nic in &desired.ports {
            if vm_of(nic).is_none() {
                continue;
            }
            if self.ports.contains_key(nic) {
                continue;
            }
            match self.make_port(&desired.engine, nic) {
                Ok(p) => {
                    self.ports.insert(nic.clone(), p);
                }
                Err(e) => tracing::error!("cannot make the port of {}: {e}", nic.name()),
            }
        }
        self.reconcile_gateways(desired);
        self.engine = Some(desired.engine.clone());
        let ports = desired
            .ports
            .iter()
            .filter_map(|n| {
                let p = self.ports.get(n)?;
                Some(PortDevice { nic: n.clone(), tap: p.tap.clone(), veth: p.fast.as_ref().map(|f| f.veth) })
            })
            .collect();
        Command::Update {
            engine: desired.engine.clone(),
            ports,
            remotes: self.remotes(&desired.engine, &desired.hosts),
        }
    }

    fn make_port(&mut self, engine: &Engine, nic: &ResourceId) -> Result<LocalPort, String> {
        let program = engine.program(nic).ok_or("no program")?;
        // Another lab on this machine may hold a number: take the next free one.
        let free = |n: u32| {
            let tap = format!("{}t{n}", tessera_lab::PREFIX);
            self.host_ns.is_some()
                || !(tessera_lab::link_exists(&tap) || veth_of_tap(&tap).is_some_and(|v| tessera_lab::link_exists(&v)))
        };
        while !free(self.next_tap) {
            self.next_tap += 1;
        }
        let tap_name = format!("{}t{}", tessera_lab::PREFIX, self.next_tap);
        self.next_tap += 1;
        let tap = match &self.host_ns {
            Some(ns) => ns.run(|| Tap::create(&tap_name, self.queues)).map_err(|e| e.to_string())?,
            None => Tap::create(&tap_name, self.queues),
        }
        .map_err(|e| e.to_string())?;
        let (vm, ns_name) = match (&program.vm, &program.gateway) {
            (Some(v), _) => (v.name().to_string(), namespace_of(v.name())),
            (None, Some(g)) => (g.name().to_string(), crate::gateway::gateway_namespace(g.name())),
            (None, None) => return Err("no VM".into()),
        };
        let mut namespace = None;
        let mut fast = None;
        if self.namespace_vms {
            let ns = Netns::create(&ns_name).map_err(|e| e.to_string())?;
            let prefix = program.subnet.prefixes.iter().find(|p| p.addr().is_ipv4());
            let addresses = program
                .addresses
                .iter()
                .filter_map(|a| program.subnet.prefixes.iter().find(|p| p.contains(a)).map(|p| (*a, p.prefix_len())))
                .collect();
            let gateway = prefix.and(program.subnet.gateway);
            let cfg = VmInterface {
                name: "eth0".into(),
                mac: program.mac,
                addresses,
                gateway,
                mtu: None,
                forwarding: program.ip_forwarding,
            };
            match self.programs.as_mut() {
                Some(programs) => {
                    // The VM's interface is a veth; the TAP stays here for the switch's frames.
                    let veth_name = veth_of_tap(&tap_name).ok_or("no veth name")?;
                    let mut plumb = || -> Result<FastPort, String> {
                        let tap = tessera_lab::port_up(&tap_name).map_err(|e| e.to_string())?;
                        let veth = tessera_lab::veth_port(&ns, &veth_name, &cfg).map_err(|e| e.to_string())?;
                        let _links = programs.attach((&veth_name, veth), (&tap_name, tap))?;
                        Ok(FastPort { veth, tap, _links })
                    };
                    fast = Some(match &self.host_ns {
                        Some(h) => h.run(plumb).map_err(|e| e.to_string())??,
                        None => plumb()?,
                    });
                }
                None => {
                    ns.adopt_link_from(self.host_ns.as_ref(), &tap_name).map_err(|e| e.to_string())?;
                    ns.configure(&tap_name, &cfg).map_err(|e| e.to_string())?;
                }
            }
            namespace = Some(ns);
        }
        Ok(LocalPort { tap: Arc::new(tap), vm, namespace, addresses: program.addresses.clone(), fast })
    }

    /// Writes the status file: the revision and the VMs running here (with gateway instances
    /// and the routers and hosts of simulated sites, so that `exec` and `down` find them).
    pub fn write_status(&self, revision: u64) {
        let mut vms: Vec<_> = self
            .ports
            .iter()
            .map(|(nic, p)| {
                json!({"name": p.vm, "nic": nic.as_str(), "tap": p.tap.name(),
                       "namespace": p.namespace.as_ref().map(Netns::name), "addresses": p.addresses})
            })
            .collect();
        for (id, site) in &self.sites {
            vms.push(json!({"name": id.name(), "site": id.as_str(), "namespace": site.host.name(),
                            "addresses": [site.host_address]}));
            vms.push(json!({"name": format!("{}-router", id.name()), "site": id.as_str(),
                            "namespace": site.router.name(), "addresses": []}));
        }
        let body = json!({"host": self.host, "revision": revision, "pid": std::process::id(), "mode": "namespace",
                          "vms": vms, "links": self.wan_links(), "daemons": self.daemon_pids()});
        write_json(&self.status, &body);
    }

    /// The WAN bridge and its ports, while they exist (for `tessera down` after a crash).
    fn wan_links(&self) -> Vec<String> {
        let mut out: Vec<String> = self.wan.iter().map(|_| crate::gateway::WAN_BRIDGE.to_string()).collect();
        out.extend(self.wan_ports.iter().cloned());
        out
    }

    /// The daemons' pid files (for `tessera down` after a crash).
    fn daemon_pids(&self) -> Vec<String> {
        let dirs = self.gateways.values().map(|d| d.dir()).chain(self.sites.values().map(|s| s.daemons.dir()));
        dirs.flat_map(|d| [d.join("charon.pid"), d.join("bird.pid")]).map(|p| p.display().to_string()).collect()
    }

    /// Removes every port and VM, gateway and site, and the status file.
    pub fn clear(&mut self) {
        self.gateways.clear();
        self.sites.clear();
        self.wan = None;
        self.ports.clear();
        let _ = std::fs::remove_file(&self.status);
    }
}

/// Writes an agent's status file (atomically): its host, revision, kind of VMs and the VMs.
pub fn write_status(path: &std::path::Path, host: &str, revision: u64, mode: &str, vms: Vec<serde_json::Value>) {
    let body = json!({"host": host, "revision": revision, "pid": std::process::id(), "mode": mode, "vms": vms});
    write_json(path, &body);
}

/// Writes a JSON file atomically (a temporary file renamed over it); a failure is logged.
pub fn write_json(path: &std::path::Path, body: &serde_json::Value) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, body.to_string()).and_then(|()| std::fs::rename(&tmp, path)).is_err() {
        tracing::warn!("cannot write {}", path.display());
    }
}

/// The VMs of a desired state that use the given NICs: (VM name, NIC, addresses).
pub fn userspace_vms(desired: &Desired) -> Vec<serde_json::Value> {
    desired
        .ports
        .iter()
        .filter_map(|nic| {
            let p = desired.engine.program(nic)?;
            let vm = p.vm.as_ref()?.name().to_string();
            Some(json!({"name": vm, "nic": nic.as_str(), "namespace": null, "addresses": p.addresses}))
        })
        .collect()
}

/// Gateway instances and simulated sites.
impl Vms {
    fn wan_port(&mut self, kind: char) -> String {
        loop {
            let name = format!("{}w{kind}{}", tessera_lab::PREFIX, self.next_wan);
            self.next_wan += 1;
            if self.host_ns.is_some() || !tessera_lab::link_exists(&name) {
                self.wan_ports.push(name.clone());
                return name;
            }
        }
    }

    /// The directory of one end's daemon files, beside the status file: its name and a digest
    /// of its id, so two ends of one name in different groups never share pid files (and the
    /// daemons' sockets stay within a Unix socket path's length).
    fn daemon_dir(&self, kind: &str, id: &ResourceId) -> PathBuf {
        let name = id.name().to_ascii_lowercase();
        self.status.with_extension("gateways").join(format!("{kind}-{name}-{:08x}", id.digest() as u32))
    }

    /// Puts namespace `ns` on the WAN bridge (made on first use) at `public`.
    fn join_wan(&mut self, ns: &Netns, kind: char, public: IpAddr) -> Result<(), String> {
        if self.wan.is_none() {
            self.wan = Some(crate::gateway::wan_bridge(self.host_ns.as_ref())?);
        }
        let port = self.wan_port(kind);
        let wan = self.wan.as_ref().ok_or("no WAN bridge")?;
        crate::gateway::attach_wan(wan, self.host_ns.as_ref(), ns, &port, public)
    }

    fn start_gateway(&mut self, engine: &Engine, gw: &ResourceId, ns: &str) -> Result<crate::gateway::Daemons, String> {
        let g = engine.state().gateways.get(gw).ok_or("the gateway is gone")?;
        let public =
            crate::gateway_config::gateway_public_ip(engine, g).ok_or("the gateway has no public IP address")?;
        let handle = Netns::open(ns).map_err(|e| e.to_string())?;
        self.join_wan(&handle, 'g', public)?;
        crate::gateway::Daemons::start(ns, self.daemon_dir("gw", gw))
    }

    fn start_site(&mut self, engine: &Engine, id: &ResourceId) -> Result<crate::gateway::Site, String> {
        let config = crate::gateway_config::site_config(engine, id).ok_or("the site has no gatewayIpAddress")?;
        let site = engine.state().local_gateways.get(id).ok_or("the site is gone")?;
        let public: IpAddr = site
            .properties
            .gateway_ip_address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .ok_or("the site has no gatewayIpAddress")?;
        let lan = crate::gateway_config::simulated_lan(site).ok_or("the site has no IPv4 LAN")?;
        if self.wan.is_none() {
            self.wan = Some(crate::gateway::wan_bridge(self.host_ns.as_ref())?);
        }
        let port = self.wan_port('s');
        let dir = self.daemon_dir("site", id);
        let wan = self.wan.as_ref().ok_or("no WAN bridge")?;
        crate::gateway::start_site(id.name(), &config, public, lan, (wan, self.host_ns.as_ref(), &port), dir)
    }

    /// Starts the daemons of the gateway instances whose ports run here and the simulated
    /// sites the documents name, and gives every running end its current configuration.
    fn reconcile_gateways(&mut self, desired: &Desired) {
        if !self.namespace_vms {
            return;
        }
        let engine = desired.engine.clone();
        // Sites first: a gateway's first IKE request finds its peer ready. A site runs on its
        // host only, and not where its namespaces' names are taken (by a VM, a gateway or a
        // site of the same name in another group).
        let mut taken: Vec<String> =
            self.ports.values().filter_map(|p| Some(p.namespace.as_ref()?.name().to_string())).collect();
        let mut sites: Vec<ResourceId> = Vec::new();
        for (site, _) in crate::gateway_config::simulated_sites(&engine) {
            if tessera_engine::placement::tag_host(&site.tags) != self.host {
                continue;
            }
            let (router, host) = crate::gateway::site_namespaces(site.id.name());
            if taken.contains(&router) || taken.contains(&host) {
                tracing::warn!("site {} is not simulated: its namespace names are taken here", site.id);
                continue;
            }
            taken.extend([router, host]);
            sites.push(site.id.clone());
        }
        self.sites.retain(|id, _| sites.contains(id));
        for id in sites {
            if let Some(site) = self.sites.get_mut(&id) {
                if let Some(cfg) = crate::gateway_config::site_config(&engine, &id) {
                    site.daemons.configure(&cfg);
                }
                continue;
            }
            match self.start_site(&engine, &id) {
                Ok(site) => {
                    self.sites.insert(id, site);
                }
                Err(e) => tracing::warn!("cannot simulate site {}: {e}", id.name()),
            }
        }
        let local: Vec<(ResourceId, String)> = self
            .ports
            .iter()
            .filter_map(|(nic, p)| {
                Some((engine.program(nic)?.gateway.clone()?, p.namespace.as_ref()?.name().to_string()))
            })
            .collect();
        for (gw, ns) in local {
            if !self.gateways.contains_key(&gw) {
                match self.start_gateway(&engine, &gw, &ns) {
                    Ok(d) => {
                        self.gateways.insert(gw.clone(), d);
                    }
                    Err(e) => {
                        tracing::warn!("gateway {} runs without tunnels: {e}", gw.name());
                        continue;
                    }
                }
            }
            if let (Some(d), Some(cfg)) =
                (self.gateways.get_mut(&gw), crate::gateway_config::gateway_config(&engine, &gw))
            {
                d.configure(&cfg);
            }
        }
    }

    /// Whether gateways or sites run here (their daemons are watched).
    pub fn has_daemons(&self) -> bool {
        !self.gateways.is_empty() || !self.sites.is_empty()
    }

    /// What each local gateway's daemons say, where it differs from the instance the controller
    /// holds (as the feed shows it: a gateway deleted and made again, or a controller that lost
    /// it, gets the report again); configurations that did not load yet are tried again first.
    pub fn gateway_reports(&mut self) -> Vec<(ResourceId, tessera_model::gateway::GatewayInstance)> {
        let Some(engine) = self.engine.clone() else { return Vec::new() };
        for (gw, d) in &mut self.gateways {
            if !d.configured()
                && let Some(cfg) = crate::gateway_config::gateway_config(&engine, gw)
            {
                d.configure(&cfg);
            }
        }
        for (id, s) in &mut self.sites {
            if !s.daemons.configured()
                && let Some(cfg) = crate::gateway_config::site_config(&engine, id)
            {
                s.daemons.configure(&cfg);
            }
        }
        let host = self.host.clone();
        self.gateways
            .iter_mut()
            .map(|(gw, d)| (gw.clone(), d.status(&host)))
            .filter(|(gw, st)| engine.state().gateways.get(gw).and_then(|g| g.properties.instance.as_ref()) != Some(st))
            .collect()
    }
}
