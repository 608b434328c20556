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
        let vm_of =
            |nic: &ResourceId| desired.engine.program(nic).and_then(|p| p.vm.as_ref().map(|v| v.name().to_string()));
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
        let vm = program.vm.as_ref().ok_or("no VM")?.name().to_string();
        let mut namespace = None;
        let mut fast = None;
        if self.namespace_vms {
            let ns = Netns::create(&namespace_of(&vm)).map_err(|e| e.to_string())?;
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

    /// Writes the status file: the revision and the VMs running here.
    pub fn write_status(&self, revision: u64) {
        let vms: Vec<_> = self
            .ports
            .iter()
            .map(|(nic, p)| {
                json!({"name": p.vm, "nic": nic.as_str(), "tap": p.tap.name(),
                       "namespace": p.namespace.as_ref().map(Netns::name), "addresses": p.addresses})
            })
            .collect();
        write_status(&self.status, &self.host, revision, "namespace", vms);
    }

    /// Removes every port and VM, and the status file.
    pub fn clear(&mut self) {
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
