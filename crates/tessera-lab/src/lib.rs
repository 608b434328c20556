//! Namespace VMs and hosts for `tessera up` and the end-to-end tests.
//!
//! A VM is a network namespace whose one interface (`eth0`) is either a TAP device the agent
//! opened in the host's namespace and moved in (the agent keeps the file descriptor, so the
//! switch carries every frame the VM sends), or one end of a veth pair whose other end stays in
//! the host's namespace as a port ([`veth_port`], for the agent's kernel fast path). Every name
//! this crate makes starts with [`PREFIX`], so [`remove_all`] finds and removes whatever a
//! crashed run left behind.
//!
//! Netlink work (links, addresses, routes) goes through `rtnetlink`; it runs on a short-lived
//! thread that entered the namespace, so the caller's thread never changes namespace and no
//! async runtime is needed by the caller.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use nix::sched::CloneFlags;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, NetworkNamespace, RouteMessageBuilder};

/// The prefix of every namespace and link the lab creates.
pub const PREFIX: &str = "tsr-";
/// Where named network namespaces live (as with `ip netns`).
pub const NETNS_DIR: &str = "/run/netns";

/// What went wrong while building or removing lab resources.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// A namespace could not be made, entered or removed.
    #[error("namespace {name}: {message}")]
    Namespace {
        /// The namespace.
        name: String,
        /// What failed.
        message: String,
    },
    /// A name the lab refuses (it must start with the lab prefix and fit the kernel's limits).
    #[error("invalid name '{0}': it must start with '{PREFIX}' and be at most 15 characters for links")]
    InvalidName(String),
    /// A link that does not exist.
    #[error("no link named {0}")]
    NoSuchLink(String),
}

type Result<T> = std::result::Result<T, LabError>;

fn netlink(e: impl std::fmt::Display) -> LabError {
    LabError::Netlink(e.to_string())
}

/// A named network namespace. One made by [`Netns::create`] is removed when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
    owned: bool,
}

impl Netns {
    /// Makes a namespace (a stale one of the same name, left by a crash, is removed first).
    pub fn create(name: &str) -> Result<Netns> {
        if !name.starts_with(PREFIX) || name.contains('/') || name.len() > 200 {
            return Err(LabError::InvalidName(name.to_string()));
        }
        if Path::new(NETNS_DIR).join(name).exists() {
            delete_namespace(name)?;
        }
        namespace_call(name, NetworkNamespace::add)?;
        let ns = Netns { name: name.to_string(), owned: true };
        ns.run_netlink(async |h| set_up(h, "lo").await)?;
        Ok(ns)
    }

    /// An existing namespace, left in place when dropped.
    pub fn open(name: &str) -> Result<Netns> {
        if !Path::new(NETNS_DIR).join(name).exists() {
            return Err(LabError::Namespace { name: name.to_string(), message: "does not exist".into() });
        }
        Ok(Netns { name: name.to_string(), owned: false })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its path under [`NETNS_DIR`].
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Moves the calling thread into the namespace (for a process about to `exec`).
    pub fn enter(&self) -> Result<()> {
        let file = File::open(self.path())
            .map_err(|e| LabError::Namespace { name: self.name.clone(), message: e.to_string() })?;
        nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| LabError::Namespace { name: self.name.clone(), message: e.to_string() })
    }

    /// Runs `f` on a thread inside the namespace (processes it spawns start there too).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        on_thread(|| {
            self.enter()?;
            Ok(f())
        })
    }

    /// Runs netlink requests inside the namespace.
    fn run_netlink<R: Send>(&self, f: impl AsyncFnOnce(&Handle) -> Result<R> + Send) -> Result<R> {
        self.run(|| with_handle(f))?
    }

    /// Moves a link of another namespace (`from`; `None`: the caller's) into this one.
    pub fn adopt_link_from(&self, from: Option<&Netns>, link: &str) -> Result<()> {
        match from {
            None => self.adopt_link(link),
            Some(ns) => ns.run(|| self.adopt_link(link))?,
        }
    }

    /// Moves a link of the caller's namespace into this one.
    pub fn adopt_link(&self, link: &str) -> Result<()> {
        let file = File::open(self.path())
            .map_err(|e| LabError::Namespace { name: self.name.clone(), message: e.to_string() })?;
        let link = link.to_string();
        on_thread(move || {
            with_handle(async move |h| {
                use std::os::fd::AsRawFd;
                let index = index_of(h, &link).await?;
                let msg = LinkUnspec::new_with_index(index).setns_by_fd(file.as_raw_fd()).build();
                h.link().set(msg).execute().await.map_err(netlink)
            })
        })
    }

    /// Gives a link of this namespace its VM configuration: name, MAC, MTU, addresses, default
    /// route through the gateway, up.
    pub fn configure(&self, link: &str, vm: &VmInterface) -> Result<()> {
        let link = link.to_string();
        self.run_netlink(async move |h| {
            let index = index_of(h, &link).await?;
            let mut msg = LinkUnspec::new_with_index(index).name(vm.name.clone()).address(vm.mac.to_vec());
            if let Some(mtu) = vm.mtu {
                msg = msg.mtu(mtu);
            }
            h.link().set(msg.build()).execute().await.map_err(netlink)?;
            for (addr, len) in &vm.addresses {
                h.address().add(index, *addr, *len).execute().await.map_err(netlink)?;
            }
            h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(netlink)?;
            if let Some(gw) = vm.gateway {
                let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(index).build();
                h.route().add(route).execute().await.map_err(netlink)?;
            }
            Ok(())
        })?;
        if vm.forwarding {
            self.sysctl("net/ipv4/ip_forward", "1")?;
            self.sysctl("net/ipv6/conf/all/forwarding", "1")?;
            // The appliance sends forwarded packets back out of the interface they came in by.
            self.sysctl("net/ipv4/conf/all/send_redirects", "0")?;
            self.sysctl(&format!("net/ipv4/conf/{}/send_redirects", vm.name), "0")?;
        }
        Ok(())
    }

    /// Sets a sysctl of the namespace (`net/ipv4/ip_forward`, …).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = Path::new("/proc/sys").join(key);
        self.run(|| std::fs::write(&path, value))?
            .map_err(|e| LabError::Namespace { name: self.name.clone(), message: format!("{key}: {e}") })
    }

    /// Removes the namespace now.
    pub fn delete(mut self) -> Result<()> {
        self.owned = false;
        delete_namespace(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.owned {
            let _ = delete_namespace(&self.name);
        }
    }
}

/// A Linux bridge in the caller's namespace joining lab hosts (the underlay); removed when
/// dropped, with the host ends of its veth pairs.
#[derive(Debug)]
pub struct Bridge {
    name: String,
}

impl Bridge {
    /// Makes the bridge, up.
    pub fn create(name: &str) -> Result<Bridge> {
        if !name.starts_with(PREFIX) || name.len() > 15 {
            return Err(LabError::InvalidName(name.to_string()));
        }
        let owned = name.to_string();
        on_thread(move || {
            with_handle(async move |h| {
                if let Ok(index) = index_of(h, &owned).await {
                    h.link().del(index).execute().await.map_err(netlink)?;
                }
                h.link().add(LinkBridge::new(&owned).up().build()).execute().await.map_err(netlink)
            })
        })?;
        Ok(Bridge { name: name.to_string() })
    }

    /// Joins a namespace to the bridge with a veth pair: `port` (at most 13 characters) stays
    /// on the bridge, its peer moves into `ns` and is configured as `cfg` says.
    pub fn attach(&self, ns: &Netns, port: &str, cfg: &VmInterface) -> Result<()> {
        if !port.starts_with(PREFIX) || port.len() > 13 {
            return Err(LabError::InvalidName(port.to_string()));
        }
        let (port, peer, bridge) = (port.to_string(), format!("{port}-p"), self.name.clone());
        let peer_name = peer.clone();
        let mtu = cfg.mtu;
        on_thread(move || {
            with_handle(async move |h| {
                h.link().add(LinkVeth::new(&port, &peer).build()).execute().await.map_err(netlink)?;
                let (index, master) = (index_of(h, &port).await?, index_of(h, &bridge).await?);
                let mut msg = LinkUnspec::new_with_index(index).controller(master).up();
                if let Some(mtu) = mtu {
                    msg = msg.mtu(mtu);
                }
                let msg = msg.build();
                h.link().set(msg).execute().await.map_err(netlink)
            })
        })?;
        ns.adopt_link(&peer_name)?;
        ns.configure(&peer_name, cfg)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = on_thread(move || {
            with_handle(async move |h| {
                let index = index_of(h, &name).await?;
                h.link().del(index).execute().await.map_err(netlink)
            })
        });
    }
}

/// Makes a veth pair in the caller's namespace for a VM: `host_end` (at most 13 characters)
/// stays here as a port (see [`port_up`]), its peer moves into `vm` and is configured as `cfg`
/// says. Returns the host end's interface index.
pub fn veth_port(vm: &Netns, host_end: &str, cfg: &VmInterface) -> Result<u32> {
    if !host_end.starts_with(PREFIX) || host_end.len() > 13 {
        return Err(LabError::InvalidName(host_end.to_string()));
    }
    let (port, peer) = (host_end.to_string(), format!("{host_end}-p"));
    let peer_name = peer.clone();
    on_thread(move || {
        with_handle(async move |h| {
            if let Ok(stale) = index_of(h, &port).await {
                h.link().del(stale).execute().await.map_err(netlink)?;
            }
            h.link().add(LinkVeth::new(&port, &peer).build()).execute().await.map_err(netlink)
        })
    })?;
    let index = port_up(host_end)?;
    vm.adopt_link(&peer_name)?;
    vm.configure(&peer_name, cfg)?;
    Ok(index)
}

/// Brings a link of the caller's namespace up as a switch port: IPv6 off first and no address,
/// so this namespace never sends on it or answers what arrives. Returns its interface index.
pub fn port_up(name: &str) -> Result<u32> {
    let owned = name.to_string();
    on_thread(move || {
        let key = format!("/proc/sys/net/ipv6/conf/{owned}/disable_ipv6");
        // Without IPv6 in the kernel there is nothing to turn off.
        if Path::new(&key).exists() {
            std::fs::write(&key, "1")
                .map_err(|e| LabError::Namespace { name: owned.clone(), message: format!("{key}: {e}") })?;
        }
        with_handle(async move |h| {
            set_up(h, &owned).await?;
            index_of(h, &owned).await
        })
    })
}

/// How a VM's interface is set up inside its namespace.
#[derive(Debug, Clone)]
pub struct VmInterface {
    /// The interface name inside the VM.
    pub name: String,
    /// Its MAC (the NIC's).
    pub mac: [u8; 6],
    /// Addresses with prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
    /// The default gateway (the subnet's first host address, as in Azure).
    pub gateway: Option<Ipv4Addr>,
    /// The MTU, if not the default.
    pub mtu: Option<u32>,
    /// Whether the VM's kernel forwards packets (a network virtual appliance).
    pub forwarding: bool,
}

/// The lab's namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(PREFIX))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Removes every namespace of the lab, and the host ends of VM veth pairs left in the caller's
/// namespace (a VM namespace that a lingering socket keeps alive keeps its pair), whatever lab
/// made them; returns how many namespaces and links.
pub fn remove_all() -> Result<usize> {
    remove_matching(&namespaces(), is_port_end)
}

/// Removes the named namespaces and the named links of the caller's namespace that exist (one
/// lab's); returns how many.
pub fn remove(names: &[String], links: &[String]) -> Result<usize> {
    let present = namespaces();
    let names: Vec<String> = names.iter().filter(|n| present.contains(n)).cloned().collect();
    remove_matching(&names, |n| links.iter().any(|l| l == n))
}

fn remove_matching(names: &[String], link: impl Fn(&str) -> bool + Send + Sync) -> Result<usize> {
    for n in names {
        // Its agent may be removing it at the same moment: gone is what was asked.
        if let Err(e) = delete_namespace(n)
            && namespaces().contains(n)
        {
            return Err(e);
        }
    }
    let links = on_thread(|| {
        with_handle(async |h| {
            let mut found = Vec::new();
            let mut all = h.link().get().execute();
            while let Ok(Some(msg)) = all.try_next().await {
                let name = msg.attributes.iter().find_map(|a| match a {
                    rtnetlink::packet_route::link::LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                });
                if let Some(n) = name.filter(|n| link(n)) {
                    found.push((msg.header.index, n));
                }
            }
            let mut removed = 0;
            for (index, name) in &found {
                // Deleting one end of a veth pair deletes the other, and an agent may be
                // removing its ports at the same moment: a link already gone is not a failure.
                match h.link().del(*index).execute().await {
                    Ok(()) => removed += 1,
                    Err(_) if !link_exists(name) => {}
                    Err(e) => return Err(netlink(e)),
                }
            }
            Ok(removed)
        })
    })?;
    Ok(names.len() + links)
}

/// Whether a link of that name exists in the caller's namespace.
pub fn link_exists(name: &str) -> bool {
    !name.contains('/') && Path::new("/sys/class/net").join(name).exists()
}

/// The host end of a VM's veth pair as the agent names it (`tsr-h` and a number).
fn is_port_end(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else { return false };
    let numbered = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    // A VM's veth host end (`h`), a gateway's or a site's port on the WAN (`wg`, `ws`), the WAN.
    rest == "wan" || ["h", "wg", "ws"].iter().any(|p| rest.strip_prefix(p).is_some_and(numbered))
}

fn delete_namespace(name: &str) -> Result<()> {
    namespace_call(name, NetworkNamespace::del)
}

/// Runs rtnetlink's namespace `add` or `del` for `name` on a thread of its own.
fn namespace_call<F, Fut>(name: &str, op: F) -> Result<()>
where
    F: FnOnce(String) -> Fut + Send,
    Fut: std::future::Future<Output = std::result::Result<(), rtnetlink::Error>>,
{
    let owned = name.to_string();
    on_thread(move || {
        block_on(async move {
            op(owned.clone()).await.map_err(|e| LabError::Namespace { name: owned, message: e.to_string() })
        })?
    })
}

/// Whether the caller may make namespaces and devices (root).
pub fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

fn on_thread<R: Send>(f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    std::thread::scope(|s| s.spawn(f).join().unwrap_or_else(|_| Err(LabError::Netlink("a lab thread panicked".into()))))
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(netlink)?;
    Ok(rt.block_on(f))
}

/// Opens a netlink connection in the current thread's namespace and runs `f` with it.
fn with_handle<R>(f: impl AsyncFnOnce(&Handle) -> Result<R>) -> Result<R> {
    block_on(async move {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(netlink)?;
        tokio::spawn(conn);
        f(&handle).await
    })?
}

async fn index_of(h: &Handle, name: &str) -> Result<u32> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(msg.header.index),
        Ok(None) | Err(_) => Err(LabError::NoSuchLink(name.to_string())),
    }
}

async fn set_up(h: &Handle, name: &str) -> Result<()> {
    let index = index_of(h, name).await?;
    h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(netlink)
}
