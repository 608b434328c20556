//! `tessera up`, `down` and `exec`: a whole lab on this machine. `up` starts `tessera serve`
//! with a host agent in the background (a process of its own, recorded in `up.json`), sends
//! the topology through the ARM API, and waits until every VM of the topology runs in its
//! namespace; `down` stops that process (the agent removes its VMs) and removes anything of the
//! lab left behind; `exec` runs a command inside a VM's namespace.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_engine::load::{self, Format};
use tessera_model::ArmError;

use crate::remote::Remote;

fn failed(code: &str, e: impl std::fmt::Display) -> ArmError {
    ArmError::with_status(500, code, e.to_string())
}

const HOST: &str = "local";

fn up_file(data_dir: &Path) -> PathBuf {
    data_dir.join("up.json")
}

fn status_file(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("agent-{HOST}.json"))
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn recorded_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(up_file(data_dir)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["pid"].as_i64().and_then(|p| i32::try_from(p).ok())
}

/// `tessera up -f FILE`.
pub(crate) fn up(
    file: &Path,
    data_dir: &Path,
    listen: SocketAddr,
    userspace: bool,
    forwarding: crate::Forwarding,
) -> Result<ExitCode, ArmError> {
    let userspace = userspace || !tessera_lab::privileged();
    if userspace {
        crate::emit!(
            "tessera: userspace VMs (namespace VMs need root): they answer ping, echo on TCP 7, 22 and 3389, HTTP on 80"
        );
    }
    let text = crate::read(file)?;
    let format = Format::detect(&file.to_string_lossy(), &text);
    let planned = load::load(&text, format, tessera_engine::Limits::default())?;
    let resources = load::parse(&text, format)?;
    let mut vms: Vec<String> = planned.state().vms.values().map(|v| v.name.clone()).collect();
    vms.sort();
    std::fs::create_dir_all(data_dir).map_err(|e| failed("DataDirFailed", e))?;
    let started = Instant::now();
    match recorded_pid(data_dir) {
        Some(pid) if alive(pid) => crate::emit!("tessera: using the lab already running (pid {pid})"),
        _ => {
            let pid = spawn_server(data_dir, listen, userspace, forwarding)?;
            crate::emit!("tessera: started the control plane and the host agent (pid {pid})");
        }
    }
    let credentials = data_dir.join("credentials.json");
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| failed("RuntimeFailed", e))?;
    let written = rt.block_on(async {
        let remote = connect(&credentials, data_dir).await?;
        remote.apply(resources).await
    })?;
    crate::emit!("tessera: applied {written} resources from {}", file.display());
    let status = wait_for_vms(data_dir, &vms)?;
    crate::emit!("tessera: {} VMs running ({:.1} s)", vms.len(), started.elapsed().as_secs_f64());
    for vm in status["vms"].as_array().into_iter().flatten() {
        let addrs: Vec<&str> = vm["addresses"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        crate::emit!(
            "  {:<20} {:<18} {}",
            vm["name"].as_str().unwrap_or("?"),
            addrs.join(","),
            vm["namespace"].as_str().map_or_else(|| "userspace".to_string(), |n| format!("namespace {n}"))
        );
    }
    if let Some(first) = vms.first() {
        crate::emit!("");
        crate::emit!("Try: tessera exec {first} -- ip addr");
    }
    Ok(ExitCode::SUCCESS)
}

fn spawn_server(
    data_dir: &Path,
    listen: SocketAddr,
    userspace: bool,
    forwarding: crate::Forwarding,
) -> Result<i32, ArmError> {
    let exe = std::env::current_exe().map_err(|e| failed("SpawnFailed", e))?;
    // Appended to: the logs of earlier runs stay (`down` keeps them).
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("serve.log"))
        .map_err(|e| failed("SpawnFailed", e))?;
    let err = log.try_clone().map_err(|e| failed("SpawnFailed", e))?;
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(exe);
    command.arg("serve");
    if userspace {
        command.arg("--userspace");
    }
    command.args(forwarding.args());
    let child = command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--agent")
        .arg(HOST)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| failed("SpawnFailed", e))?;
    let pid = i32::try_from(child.id()).map_err(|e| failed("SpawnFailed", e))?;
    let record = json!({"pid": pid, "listen": listen.to_string()});
    std::fs::write(up_file(data_dir), record.to_string()).map_err(|e| failed("DataDirFailed", e))?;
    Ok(pid)
}

async fn connect(credentials: &Path, data_dir: &Path) -> Result<Remote, ArmError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Remote::connect(credentials).await {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() > deadline => {
                let log = std::fs::read_to_string(data_dir.join("serve.log")).unwrap_or_default();
                return Err(failed("ServerDidNotStart", format!("{e}\n{log}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn wait_for_vms(data_dir: &Path, vms: &[String]) -> Result<Value, ArmError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = std::fs::read_to_string(status_file(data_dir))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let running: Vec<&str> =
            status["vms"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str()).collect();
        if vms.iter().all(|v| running.iter().any(|r| r.eq_ignore_ascii_case(v))) {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> =
                vms.iter().filter(|v| !running.iter().any(|r| r.eq_ignore_ascii_case(v))).collect();
            let log = std::fs::read_to_string(data_dir.join("serve.log")).unwrap_or_default();
            return Err(failed("VmsDidNotStart", format!("not running after 60 s: {missing:?}\n{log}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the lab's agents made on this machine, as their status files name it: the VMs'
/// namespaces (gateway instances' and simulated sites' too), their TAPs and the host ends of
/// their veth pairs, the WAN bridge; the gateways' daemons are stopped on the way.
fn lab_leftovers(data_dir: &Path) -> (Vec<String>, Vec<String>) {
    let (mut namespaces, mut links) = (Vec::new(), Vec::new());
    let statuses = std::fs::read_dir(data_dir).into_iter().flatten().filter_map(Result::ok).filter(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        name.starts_with("agent-") && name.ends_with(".json") && !name.ends_with(".counters.json")
    });
    for e in statuses {
        let Some(v) = std::fs::read_to_string(e.path()).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            continue;
        };
        links.extend(v["links"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string));
        for pid_file in v["daemons"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            tessera_agent::gateway::stop_pid_file(Path::new(pid_file));
        }
        for vm in v["vms"].as_array().into_iter().flatten() {
            namespaces.extend(vm["namespace"].as_str().map(str::to_string));
            if let Some(tap) = vm["tap"].as_str() {
                links.extend(tessera_agent::vms::veth_of_tap(tap));
                links.push(tap.to_string());
            }
        }
    }
    (namespaces, links)
}

/// `tessera down`: stops the lab's process, removes what its agents made (its own VMs only:
/// other labs on this machine go on) and its state; the logs stay. With `all`, also every
/// namespace and port any lab left on this machine.
pub(crate) fn down(data_dir: &Path, all: bool) -> Result<ExitCode, ArmError> {
    // Read before the stop: a stopping agent removes its status file with its VMs.
    let (namespaces, links) = lab_leftovers(data_dir);
    if let Some(pid) = recorded_pid(data_dir) {
        let p = nix::unistd::Pid::from_raw(pid);
        if alive(pid) {
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            }
            crate::emit!("tessera: stopped the control plane and the host agent (pid {pid})");
        }
    }
    let left = if tessera_lab::privileged() {
        let mut left = tessera_lab::remove(&namespaces, &links).map_err(|e| failed("CleanupFailed", e))?;
        if all {
            left += tessera_lab::remove_all().map_err(|e| failed("CleanupFailed", e))?;
        }
        left
    } else {
        0
    };
    if left > 0 {
        crate::emit!("tessera: removed {left} namespaces and links left behind");
    }
    // The lab's state goes (the next `up` starts afresh); its logs stay for reading.
    for e in std::fs::read_dir(data_dir).into_iter().flatten().filter_map(Result::ok) {
        if e.path().extension().is_some_and(|x| x == "log") {
            continue;
        }
        let _ = if e.path().is_dir() { std::fs::remove_dir_all(e.path()) } else { std::fs::remove_file(e.path()) };
    }
    crate::emit!("tessera: down (logs kept in {})", data_dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `tessera exec VM -- COMMAND…`: replaces this process with the command, inside the VM.
pub(crate) fn exec(data_dir: &Path, vm: &str, command: &[String]) -> Result<ExitCode, ArmError> {
    // The agent running the VM: any status file of the data directory that lists it (one per
    // host), else `tessera up`'s own.
    let runs = |v: &Value| {
        v["vms"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(vm)))
    };
    let mut statuses: Vec<(PathBuf, Value)> = std::fs::read_dir(data_dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("agent-") && n.ends_with(".json"))
                })
                .filter_map(|p| {
                    let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
                    Some((p, v))
                })
                .collect()
        })
        .unwrap_or_default();
    statuses.sort_by_key(|(p, _)| *p != status_file(data_dir));
    let (path, status) =
        statuses.iter().find(|(_, v)| runs(v)).cloned().unwrap_or_else(|| (status_file(data_dir), Value::Null));
    if status["mode"] == "userspace" {
        let socket = path.with_extension("sock");
        let (code, output) =
            tessera_agent::userspace::exec(&socket, vm, command).map_err(|e| failed("AgentUnreachable", e))?;
        crate::emit!("{output}");
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    let namespace = status["vms"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(vm)))
        .and_then(|v| v["namespace"].as_str().map(str::to_string))
        .unwrap_or_else(|| tessera_agent::vms::namespace_of(vm));
    let ns = tessera_lab::Netns::open(&namespace).map_err(|_| {
        ArmError::with_status(
            404,
            "VmNotRunning",
            format!("no VM '{vm}' is running; start the lab with `tessera up -f FILE`"),
        )
    })?;
    let (program, args) =
        command.split_first().ok_or_else(|| ArmError::bad_request("CommandRequired", "give a command after --"))?;
    ns.enter().map_err(|e| failed("ExecFailed", e))?;
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(program).args(args).exec();
    Err(ArmError::bad_request("ExecFailed", format!("cannot run {program}: {e}")))
}
