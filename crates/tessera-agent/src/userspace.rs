//! An agent's userspace VMs: without root (or when asked), the host's ports are userspace VMs
//! ([`crate::uvm`]) on a [`Fabric`] owned by one thread, instead of TAP devices and namespaces.
//! Every VM answers ping and serves a TCP echo on ports 7, 22 and 3389 and HTTP on port 80. `tessera exec`
//! reaches them through a Unix socket in the data directory (one JSON line each way) and runs
//! what a userspace VM can: `ping ADDR`, `curl http://ADDR[:PORT]/`, `nc ADDR PORT` (an echo).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};

use serde_json::{Value, json};
use tessera_engine::Engine;
use tessera_model::ResourceId;

use crate::fabric::Fabric;
use crate::uvm::Service;

/// The ports of every userspace VM's TCP echo (7, and the SSH and RDP ports NSG rules name).
pub const ECHO_PORTS: [u16; 3] = [7, 22, 3389];
/// The port of every userspace VM's HTTP responder.
pub const HTTP_PORT: u16 = 80;

/// What the fabric thread is asked.
#[derive(Debug)]
pub enum Request {
    /// New programs: the VMs running here (a new fabric when they changed), and other hosts'
    /// NICs at their underlay addresses.
    Update(Arc<Engine>, Vec<ResourceId>, Vec<(ResourceId, IpAddr)>),
    /// Run a command in a VM; the exit status and the output come back.
    Exec {
        /// The VM.
        vm: String,
        /// The command line.
        argv: Vec<String>,
        /// Where the answer goes.
        reply: Sender<(i32, String)>,
    },
    /// Stop.
    Stop,
}

/// The fabric thread and its socket.
#[derive(Debug)]
pub struct Handle {
    tx: Sender<Request>,
    socket: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// Sends a request.
    pub fn send(&self, r: Request) {
        let _ = self.tx.send(r);
    }

    /// Stops the thread and removes the socket.
    pub fn stop(mut self) {
        self.send(Request::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Starts the fabric thread (with the VXLAN socket to other hosts, if any) and the exec socket
/// at `socket`.
pub fn start(socket: &Path, underlay: Option<UdpSocket>) -> std::io::Result<Handle> {
    let (tx, rx) = channel();
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let requests = tx.clone();
    std::thread::Builder::new().name("tessera-exec".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            let requests = requests.clone();
            std::thread::spawn(move || answer(conn, &requests));
        }
    })?;
    let underlay = underlay.map(Arc::new);
    let thread = std::thread::Builder::new().name("tessera-fabric".into()).spawn(move || run(&rx, underlay))?;
    Ok(Handle { tx, socket: socket.to_path_buf(), thread: Some(thread) })
}

fn answer(conn: UnixStream, requests: &Sender<Request>) {
    let mut line = String::new();
    if BufReader::new(&conn).read_line(&mut line).is_err() {
        return;
    }
    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    let vm = v["vm"].as_str().unwrap_or_default().to_string();
    let argv: Vec<String> =
        v["argv"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_string)).collect();
    let (reply, answered) = channel();
    if requests.send(Request::Exec { vm, argv, reply }).is_err() {
        return;
    }
    let (status, output) = answered.recv().unwrap_or((1, "the agent stopped".into()));
    let mut conn = conn;
    let _ = writeln!(conn, "{}", json!({"status": status, "output": output}));
}

/// Asks the agent behind `socket` to run `argv` in `vm`; the exit status and the output.
pub fn exec(socket: &Path, vm: &str, argv: &[String]) -> std::io::Result<(i32, String)> {
    let mut conn = UnixStream::connect(socket)?;
    writeln!(conn, "{}", json!({"vm": vm, "argv": argv}))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line).map_err(std::io::Error::other)?;
    let status = i32::try_from(v["status"].as_i64().unwrap_or(1)).unwrap_or(1);
    Ok((status, v["output"].as_str().unwrap_or_default().to_string()))
}

fn run(rx: &Receiver<Request>, underlay: Option<Arc<UdpSocket>>) {
    let mut fabric: Option<(Fabric, Vec<ResourceId>, Vec<String>)> = None;
    loop {
        // With other hosts the fabric keeps turning between requests: their frames arrive
        // whether or not anyone here asked for something.
        let r = if underlay.is_some() {
            match rx.recv_timeout(std::time::Duration::from_millis(1)) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some((f, _, _)) = fabric.as_mut() {
                        f.tick();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            }
        };
        match r {
            Request::Update(engine, nics, remotes) => {
                // A NIC runs once a VM uses it: the fabric is rebuilt when that set changes.
                let nics: Vec<ResourceId> =
                    nics.into_iter().filter(|n| engine.program(n).is_some_and(|p| p.vm.is_some())).collect();
                match fabric.as_mut() {
                    Some((f, held, _)) if *held == nics => f.swap(engine),
                    _ => {
                        let names: Vec<String> = nics
                            .iter()
                            .filter_map(|n| engine.program(n).and_then(|p| p.vm.as_ref().map(|v| v.name().to_string())))
                            .collect();
                        let mut f = Fabric::with_nics(engine, nics.clone());
                        for vm in &names {
                            for port in ECHO_PORTS {
                                f.listen(vm, port, Service::Echo);
                            }
                            f.listen(vm, HTTP_PORT, Service::Http);
                        }
                        fabric = Some((f, nics, names));
                    }
                }
                if let (Some((f, _, _)), Some(u)) = (fabric.as_mut(), &underlay) {
                    f.connect(u.clone(), &remotes);
                }
            }
            Request::Exec { vm, argv, reply } => {
                let answer = match fabric.as_mut() {
                    Some((f, _, names)) if names.iter().any(|v| v.eq_ignore_ascii_case(&vm)) => command(f, &vm, &argv),
                    _ => (1, format!("no VM '{vm}' is running")),
                };
                let _ = reply.send(answer);
            }
            Request::Stop => return,
        }
    }
}

const USAGE: &str = "a userspace VM runs: ping ADDRESS | curl http://ADDRESS[:PORT]/ | nc ADDRESS PORT";

/// Runs one command line in a VM.
fn command(f: &mut Fabric, vm: &str, argv: &[String]) -> (i32, String) {
    let words: Vec<&str> = argv.iter().map(String::as_str).filter(|w| !w.starts_with('-')).collect();
    let ip = |s: &str| s.parse::<Ipv4Addr>().ok();
    match words.as_slice() {
        ["ping", .., to] => match ip(to) {
            Some(a) if f.ping(vm, a) => (0, format!("reply from {a}: {vm} reaches it")),
            Some(a) => (1, format!("no reply from {a}")),
            None => (2, format!("not an IPv4 address: {to}\n{USAGE}")),
        },
        ["curl", url] => {
            let rest = url.trim_start_matches("http://");
            let host = rest.split('/').next().unwrap_or_default();
            let (addr, port) = match host.split_once(':') {
                Some((a, p)) => (a, p.parse().unwrap_or(HTTP_PORT)),
                None => (host, HTTP_PORT),
            };
            match ip(addr) {
                Some(a) => match f.http_get(vm, a, port) {
                    Some(body) => (0, body),
                    None => (7, format!("curl: could not connect to {a} port {port}")),
                },
                None => (2, format!("not an IPv4 address: {addr}\n{USAGE}")),
            }
        }
        ["nc", to, port] => match (ip(to), port.parse::<u16>()) {
            (Some(a), Ok(p)) if f.echo(vm, a, p) => (0, format!("{a}:{p} echoed")),
            (Some(a), Ok(p)) => (1, format!("no echo from {a}:{p}")),
            _ => (2, USAGE.to_string()),
        },
        _ => (2, USAGE.to_string()),
    }
}
