//! `tessera demo`: hub and spoke for a newcomer, with real packets (root). It brings up
//! `examples/demo-hub-spoke.yaml` (no peerings yet), then creates the peerings through the ARM
//! API one link at a time and shows, with the commands a user would type: a ping that fails
//! while only one link exists and passes once both do, an NSG rule that blocks, service
//! chaining through the appliance, effective routes and a connectivity check. The lab stays up
//! for exploring; `tessera down` removes it. The exit status says whether every step behaved
//! as the rules say.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tessera_model::ArmError;

use crate::remote::Remote;

const ESTATE: &str = include_str!("../../../examples/demo-hub-spoke.yaml");

fn failed(e: impl std::fmt::Display) -> ArmError {
    ArmError::with_status(500, "DemoFailed", e.to_string())
}

struct Demo {
    exe: PathBuf,
    data: PathBuf,
    remote: Remote,
    rt: tokio::runtime::Runtime,
    step: usize,
}

impl Demo {
    fn title(&mut self, text: &str) {
        self.step += 1;
        crate::emit!("");
        crate::emit!("── {}. {text}", self.step);
    }

    /// Runs `tessera ARGS…` as a user would, showing the command and its output.
    fn tessera(&self, args: &[&str]) -> bool {
        crate::emit!("$ tessera {}", args.join(" "));
        let mut cmd = Command::new(&self.exe);
        match args.split_first() {
            Some((&"exec", rest)) => cmd.arg("exec").arg("--data-dir").arg(&self.data).args(rest),
            _ => cmd.args(args).arg("--credentials").arg(self.data.join("credentials.json")),
        };
        match cmd.output() {
            Ok(out) => {
                for line in
                    String::from_utf8_lossy(&out.stdout).lines().chain(String::from_utf8_lossy(&out.stderr).lines())
                {
                    crate::emit!("  {line}");
                }
                out.status.success()
            }
            Err(e) => {
                crate::emit!("  cannot run: {e}");
                false
            }
        }
    }

    fn ping(&self, vm: &str, to: &str) -> bool {
        self.tessera(&["exec", vm, "--", "ping", "-c", "2", "-i", "0.3", "-W", "1", to])
    }

    fn network(&self, path: &str) -> String {
        format!("/subscriptions/{}/resourceGroups/demo-rg/providers/Microsoft.Network/{path}", self.remote.subscription)
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ArmError> {
        let url = self.network(path);
        self.rt.block_on(self.remote.call(method, &url, body.as_ref())).map(|(_, v, _)| v)
    }

    fn link(&self, from: &str, to: &str) -> Result<(), ArmError> {
        crate::emit!(
            "creating the link {from}-to-{to} (PUT …/virtualNetworks/{from}/virtualNetworkPeerings/{from}-to-{to})"
        );
        let remote_id = self.network(&format!("virtualNetworks/{to}"));
        let body = json!({"properties": {"remoteVirtualNetwork": {"id": remote_id}, "allowVirtualNetworkAccess": true,
                                         "allowForwardedTraffic": true}});
        let before = self.agent_revision();
        self.call(Method::PUT, &format!("virtualNetworks/{from}/virtualNetworkPeerings/{from}-to-{to}"), Some(body))?;
        self.wait_for_agent(before);
        Ok(())
    }

    /// The feed revision the host agent has applied (from its status file).
    fn agent_revision(&self) -> u64 {
        std::fs::read_to_string(self.data.join("agent-local.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["revision"].as_u64())
            .unwrap_or(0)
    }

    /// Waits (up to 10 s) until the agent has applied a change made after revision `before`:
    /// the new programs reach the switch through the watch feed.
    fn wait_for_agent(&self, before: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.agent_revision() <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn states(&self) -> Result<(), ArmError> {
        for vnet in ["hub", "spoke1", "spoke2"] {
            let v = self.call(Method::GET, &format!("virtualNetworks/{vnet}"), None)?;
            for l in v["properties"]["virtualNetworkPeerings"].as_array().into_iter().flatten() {
                crate::emit!(
                    "  {:<16} peeringState {:<12} sync {}",
                    l["name"].as_str().unwrap_or("?"),
                    l["properties"]["peeringState"].as_str().unwrap_or("?"),
                    l["properties"]["peeringSyncLevel"].as_str().unwrap_or("?")
                );
            }
        }
        Ok(())
    }

    fn nsg(&self, rules: Value) -> Result<(), ArmError> {
        let body = json!({"location": "westeurope", "properties": {"securityRules": rules}});
        let before = self.agent_revision();
        self.call(Method::PUT, "networkSecurityGroups/spoke1-nsg", Some(body))?;
        self.wait_for_agent(before);
        Ok(())
    }
}

fn verdict(ok: bool, expected: bool) -> &'static str {
    match (ok, expected) {
        (true, true) => "   ✓ passes, as it should",
        (false, false) => "   ✓ fails, as it should",
        _ => "   ✗ NOT what the rules say",
    }
}

/// `tessera demo`.
pub(crate) fn run(data_dir: &Path, listen: std::net::SocketAddr) -> Result<ExitCode, ArmError> {
    let file = data_dir.with_extension("estate.yaml");
    std::fs::create_dir_all(data_dir.parent().unwrap_or(Path::new("."))).map_err(failed)?;
    std::fs::write(&file, ESTATE).map_err(failed)?;
    crate::emit!("Tessera demo: hub and spoke with VNet peering, on namespace VMs of this machine.");
    crate::lab::up(&file, data_dir, listen, false, crate::Forwarding::default())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(failed)?;
    let remote = rt.block_on(Remote::connect(&data_dir.join("credentials.json")))?;
    let exe = std::env::current_exe().map_err(failed)?;
    let mut d = Demo { exe, data: data_dir.to_path_buf(), remote, rt, step: 0 };
    let mut all_as_expected = true;
    let mut check = |ok: bool, expected: bool| {
        crate::emit!("{}", verdict(ok, expected));
        all_as_expected &= ok == expected;
    };

    d.title("No peerings yet: the spoke cannot reach the hub");
    check(d.ping("spoke1-vm", "10.0.0.4"), false);

    d.title("One link, hub-to-spoke1: the peering is Initiated, and still nothing passes (P3)");
    d.link("hub", "spoke1")?;
    d.states()?;
    check(d.ping("spoke1-vm", "10.0.0.4"), false);

    d.title("The link back, spoke1-to-hub: both links are Connected and packets pass — no gateway, no downtime");
    d.link("spoke1", "hub")?;
    d.states()?;
    check(d.ping("spoke1-vm", "10.0.0.4"), true);

    d.title("An NSG rule on spoke1's subnet blocks ICMP from the hub, peered or not (N1)");
    d.nsg(json!([{"name": "deny-hub-icmp", "properties": {"priority": 100, "direction": "Inbound",
        "access": "Deny", "protocol": "Icmp", "sourceAddressPrefix": "10.0.0.0/16", "sourcePortRange": "*",
        "destinationAddressPrefix": "*", "destinationPortRange": "*"}}]))?;
    check(d.ping("hub-vm", "10.1.0.4"), false);
    crate::emit!("removing the rule");
    d.nsg(json!([]))?;
    check(d.ping("hub-vm", "10.1.0.4"), true);

    d.title("spoke2 joins the hub; spoke1 and spoke2 are not peered (peering is not transitive, R3) ...");
    d.link("hub", "spoke2")?;
    d.link("spoke2", "hub")?;
    crate::emit!("... but their route tables send each other's traffic to the appliance hub-nva (10.0.1.4),");
    crate::emit!("whose kernel forwards it: service chaining (U4). The reply's TTL of 63 shows the extra hop.");
    check(d.ping("spoke1-vm", "10.2.0.4"), true);

    d.title("Effective routes of spoke1-vm: VNetPeering for the hub, VirtualAppliance for spoke2");
    d.tessera(&["routes", "--nic", "spoke1-vm"]);

    d.title("Connectivity check from spoke1-vm to spoke2-vm, hop by hop (Network Watcher)");
    d.tessera(&["check", "--from", "spoke1-vm", "--to", "spoke2-vm", "--proto", "icmp"]);

    crate::emit!("");
    crate::emit!("Explore on your own, for example:");
    crate::emit!("  tessera exec --data-dir {} spoke1-vm -- ping 10.2.0.4", data_dir.display());
    crate::emit!("  tessera rules --credentials {}/credentials.json --nic spoke1-vm", data_dir.display());
    crate::emit!("and remove everything with: tessera down --data-dir {}", data_dir.display());
    Ok(if all_as_expected { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
