//! End-to-end tests of the `tessera` binary: each test runs the real executable on the example
//! topologies and checks its exit code, its text, and (with `-o json`) that the body it prints is
//! exactly what the engine answers when called as a library.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::{effective, matrix, watcher};
use tessera_engine::load::{self, Format};
use tessera_engine::{Engine, Limits};
use tessera_model::ResourceId;

const HUB_SPOKE: &str = "hub-spoke-nva.yaml";
const GLOBAL_ILB: &str = "global-peering-ilb.yaml";
const GATEWAY: &str = "gateway-transit.yaml";
const OVERLAP: &str = "invalid-overlap.yaml";

const SUB: &str = "/subscriptions/00000000-0000-4000-8000-000000000001";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stdout parsed as JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(self.code, code, "{what}: exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs `tessera args…`. Whatever the outcome, the binary must exit by itself, never panic.
fn tessera(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run the tessera binary");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "tessera {args:?} panicked:\n{}", run.stderr);
    assert_ne!(run.code, -1, "tessera {args:?} was killed by a signal");
    run
}

/// `tessera <cmd> -f examples/<file> rest…`.
fn on(cmd: &str, file: &str, rest: &[&str]) -> Run {
    let path = example(file);
    let mut args = vec![cmd, "-f", path.to_str().expect("utf-8 path")];
    args.extend_from_slice(rest);
    tessera(&args)
}

/// Asserts a usage or input error: exit 2, `error:` on stderr naming `needle`, nothing on stdout.
fn assert_error(run: &Run, needle: &str, what: &str) {
    run.expect_code(2, what);
    assert!(run.stderr.starts_with("error:"), "{what}: stderr should start with `error:`:\n{}", run.stderr);
    assert!(run.stderr.contains(needle), "{what}: stderr should name {needle}:\n{}", run.stderr);
    assert!(run.stdout.is_empty(), "{what}: nothing on stdout:\n{}", run.stdout);
}

/// The engine built from an example by the library itself.
fn engine(file: &str) -> Engine {
    let path = example(file);
    let text = std::fs::read_to_string(&path).expect("read example");
    load::load(&text, Format::detect(&path.to_string_lossy(), &text), Limits::default()).expect("example loads")
}

fn id_named<'a, V: 'a>(ids: impl IntoIterator<Item = (&'a ResourceId, V)>, name: &str) -> ResourceId {
    ids.into_iter().map(|(id, _)| id).find(|id| id.name() == name).cloned().expect("resource in the example")
}

fn nic(engine: &Engine, name: &str) -> ResourceId {
    id_named(&engine.state().nics, name)
}

fn vm(engine: &Engine, name: &str) -> ResourceId {
    id_named(&engine.state().vms, name)
}

/// A file under the temp dir with a unique name, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(ext: &str, contents: &str) -> TempFile {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name = format!("tessera-cli-{}-{}-{nanos}.{ext}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn hops(body: &Value) -> &[Value] {
    body["hops"].as_array().map_or(&[], Vec::as_slice)
}

// ---------------------------------------------------------------------------------------------
// validate
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_every_valid_example_names_its_peerings_and_their_states() {
    // (vnet, peering, remote) of every link, per example.
    type Links<'a> = &'a [(&'a str, &'a str, &'a str)];
    let hub_spoke: Links<'_> = &[
        ("hub", "hub-to-spoke1", "spoke1"),
        ("hub", "hub-to-spoke2", "spoke2"),
        ("spoke1", "spoke1-to-hub", "hub"),
        ("spoke2", "spoke2-to-hub", "hub"),
    ];
    let cases: &[(&str, Links<'_>)] = &[
        (HUB_SPOKE, hub_spoke),
        ("hub-spoke-nva.json", hub_spoke),
        (
            GATEWAY,
            &[
                ("hub", "hub-to-spoke1", "spoke1"),
                ("hub", "hub-to-spoke2", "spoke2"),
                ("hub", "hub-to-spoke3", "spoke3"),
                ("spoke1", "spoke1-to-hub", "hub"),
                ("spoke2", "spoke2-to-hub", "hub"),
                ("spoke3", "spoke3-to-hub", "hub"),
            ],
        ),
        (
            GLOBAL_ILB,
            &[
                ("web", "web-to-west", "west"),
                ("web", "web-to-neighbour", "neighbour"),
                ("west", "west-to-web", "web"),
                ("neighbour", "neighbour-to-web", "web"),
            ],
        ),
        (
            "cross-subscription.yaml",
            &[
                ("contoso-vnet", "contoso-vnet-to-fabrikam-vnet", "fabrikam-vnet"),
                ("fabrikam-vnet", "fabrikam-vnet-to-contoso-vnet", "contoso-vnet"),
            ],
        ),
        // `tessera demo` starts from it and makes the peerings itself.
        ("demo-hub-spoke.yaml", &[]),
    ];

    // Every example is covered here (or is the invalid one, tested below); `traffic-*` files are
    // traffic matrices for `tessera cost` (tests/cost_cli.rs).
    for entry in std::fs::read_dir(example("")).expect("examples dir") {
        let name = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
        if name.starts_with("traffic-") {
            continue;
        }
        assert!(name == OVERLAP || cases.iter().any(|(f, _)| *f == name), "example {name} is not tested");
    }

    for (file, links) in cases {
        let table = on("validate", file, &[]);
        table.expect_code(0, file);
        assert!(table.stdout.starts_with("valid: "), "{file}:\n{}", table.stdout);
        for header in ["VNet", "Peering", "Remote", "State", "Sync level"] {
            assert!(table.stdout.contains(header), "{file}: header {header}:\n{}", table.stdout);
        }
        for (vnet, peering, remote) in *links {
            let row = table
                .stdout
                .lines()
                .find(|l| l.contains(&format!(" {peering} ")))
                .unwrap_or_else(|| panic!("{file}: no row for {peering}:\n{}", table.stdout));
            for cell in [*vnet, *remote, "Connected", "FullyInSync"] {
                assert!(row.contains(cell), "{file}: row of {peering} lacks {cell}: {row}");
            }
        }

        let body = on("validate", file, &["-o", "json"]).expect_code(0, file).json();
        assert_eq!(body["valid"], json!(true), "{file}");
        let mut got: Vec<Value> = body["peerings"].as_array().expect("peerings array").clone();
        let mut want: Vec<Value> = links
            .iter()
            .map(|(vnet, peering, remote)| {
                json!({ "vnet": vnet, "peering": peering, "remote": remote,
                        "peeringState": "Connected", "peeringSyncLevel": "FullyInSync" })
            })
            .collect();
        let key = |v: &Value| v["peering"].as_str().unwrap_or_default().to_string();
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want, "{file}: peerings");
        assert_eq!(body["connected"], json!(links.len()), "{file}: connected count");
    }
}

/// Issue 15, point 6: `validate --help` says what it does, and it does that: it needs -f, and a
/// refusal exits 1 with the code.
#[test]
fn validate_help_says_what_it_does_and_it_does_that() {
    let help = tessera(&["validate", "--help"]);
    help.expect_code(0, "help");
    for promise in ["-f", "dependency order", "exits 0", "exits 1", "Nothing is sent to a server"] {
        assert!(help.stdout.contains(promise), "the help says {promise:?}:\n{}", help.stdout);
    }
    assert_error(&tessera(&["validate"]), "FileRequired", "validate without -f");
    let refused = on("validate", "invalid-overlap.yaml", &[]);
    refused.expect_code(1, "a refusal");
    assert!(refused.stdout.contains("invalid:"), "{}", refused.stdout);
}

#[test]
fn validate_reports_a_one_sided_peering_as_initiated() {
    let file = TempFile::new(
        "yaml",
        "location: westeurope\n\
         vnets:\n\
         \x20 - { name: a, addressSpace: [10.0.0.0/16], subnets: [{ name: default, prefix: 10.0.0.0/24 }] }\n\
         \x20 - { name: b, addressSpace: [10.1.0.0/16], subnets: [{ name: default, prefix: 10.1.0.0/24 }] }\n\
         vms:\n\
         \x20 - { name: a-vm, subnet: a/default, ip: 10.0.0.4 }\n\
         \x20 - { name: b-vm, subnet: b/default, ip: 10.1.0.4 }\n\
         peerings:\n\
         \x20 - { from: a, to: b }\n",
    );
    let table = tessera(&["validate", "-f", file.path()]);
    table.expect_code(0, "one-sided peering");
    let row = table.stdout.lines().find(|l| l.contains("a-to-b")).expect("row for a-to-b");
    assert!(row.contains("Initiated") && row.contains("RemoteNotInSync"), "{row}");

    let body = tessera(&["validate", "-f", file.path(), "-o", "json"]).expect_code(0, "json").json();
    assert_eq!(
        body["peerings"],
        json!([{ "vnet": "a", "peering": "a-to-b", "remote": "b",
                 "peeringState": "Initiated", "peeringSyncLevel": "RemoteNotInSync" }])
    );
    assert_eq!(body["connected"], json!(0));

    // And with no link in the Connected state, nothing crosses it.
    let check = tessera(&["check", "-f", file.path(), "--from", "a-vm", "--to", "b-vm:22"]);
    check.expect_code(1, "check over an Initiated link");
    assert!(check.stdout.contains("Connection status: Unreachable"), "{}", check.stdout);
}

#[test]
fn validate_invalid_overlap_names_the_refusal() {
    let run = on("validate", OVERLAP, &[]);
    run.expect_code(1, "invalid topology");
    assert!(run.stdout.contains("VnetAddressSpacesOverlap"), "{}", run.stdout);
    assert!(run.stdout.starts_with("invalid: VnetAddressSpacesOverlap"), "{}", run.stdout);
    assert!(run.stdout.contains("target: ") && run.stdout.contains("virtualNetworkPeerings/vnet1-to-vnet2"));
}

#[test]
fn validate_invalid_overlap_json_is_exactly_the_arm_error_body() {
    let run = on("validate", OVERLAP, &["-o", "json"]);
    run.expect_code(1, "invalid topology, json");
    let body = run.json();
    let top = body.as_object().expect("an object");
    assert_eq!(top.keys().collect::<Vec<_>>(), ["error"], "only the `error` key: {body}");
    let error = body["error"].as_object().expect("error is an object");
    assert_eq!(error["code"], json!("VnetAddressSpacesOverlap"));
    let message = error["message"].as_str().expect("message is a string");
    assert!(message.contains("overlap") && message.contains("vnet2"), "{message}");
    assert_eq!(
        error["target"],
        json!(format!(
            "{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet1/virtualNetworkPeerings/vnet1-to-vnet2"
        ))
    );

    // It is the library's own refusal, serialized as ARM does.
    let text = std::fs::read_to_string(example(OVERLAP)).expect("read");
    let refusal = load::load(&text, Format::Yaml, Limits::default()).map(|_| ()).expect_err("the example is refused");
    assert_eq!(body, refusal.to_body());
}

// ---------------------------------------------------------------------------------------------
// routes / rules
// ---------------------------------------------------------------------------------------------

fn expected_routes(file: &str, nic_name: &str) -> Value {
    let e = engine(file);
    let table = effective::effective_route_table(&e, &nic(&e, nic_name)).expect("route table");
    serde_json::to_value(table).expect("serialize")
}

#[test]
fn routes_by_vm_name_nic_name_and_full_id_print_the_engines_route_table() {
    let nic_id = format!("{SUB}/resourceGroups/network-rg/providers/Microsoft.Network/networkInterfaces/spoke1-vm-nic");
    let vm_id = format!("{SUB}/resourceGroups/network-rg/providers/Microsoft.Compute/virtualMachines/spoke1-vm");
    let want = expected_routes(HUB_SPOKE, "spoke1-vm-nic");

    let outputs: Vec<String> = ["spoke1-vm", "spoke1-vm-nic", nic_id.as_str(), vm_id.as_str(), "SPOKE1-VM"]
        .iter()
        .map(|n| on("routes", HUB_SPOKE, &["--nic", n, "-o", "json"]).expect_code(0, n).stdout.clone())
        .collect();
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(out, &outputs[0], "output #{i} differs from the VM-name one");
    }

    let got: Value = serde_json::from_str(&outputs[0]).expect("JSON");
    assert_eq!(got.as_object().map(|o| o.keys().collect::<Vec<_>>()), Some(vec![&"value".to_string()]));
    assert!(got["value"].is_array());
    assert_eq!(got, want);

    // Spot checks of the content itself.
    let routes = got["value"].as_array().expect("array");
    assert!(routes.iter().any(|r| r["nextHopType"] == "VNetPeering" && r["addressPrefix"] == json!(["10.0.0.0/16"])));
    assert!(routes.iter().any(|r| r["source"] == "User"
        && r["name"] == "to-spoke2"
        && r["nextHopType"] == "VirtualAppliance"
        && r["nextHopIpAddress"] == json!(["10.0.1.4"])));
}

#[test]
fn routes_json_matches_the_engine_on_gateway_transit_and_global_peering() {
    for (file, nic_name) in
        [(GATEWAY, "spoke1-vm-nic"), (GATEWAY, "spoke2-vm-nic"), (GATEWAY, "hub-vm-nic"), (GLOBAL_ILB, "west-vm-nic")]
    {
        let got = on("routes", file, &["--nic", nic_name, "-o", "json"]).expect_code(0, nic_name).json();
        assert_eq!(got, expected_routes(file, nic_name), "{file} {nic_name}");
    }

    let spoke1 = on("routes", GATEWAY, &["--nic", "spoke1-vm", "-o", "json"]).json();
    let spoke1 = spoke1["value"].as_array().expect("array").clone();
    assert!(
        spoke1.iter().any(|r| r["source"] == "VirtualNetworkGateway" && r["addressPrefix"] == json!(["172.20.0.0/16"]))
    );
    // The gateway's 192.168.0.0/16 supersedes the default None route for the same prefix.
    assert!(spoke1.iter().any(|r| r["source"] == "Default"
        && r["addressPrefix"] == json!(["192.168.0.0/16"])
        && r["state"] == "Invalid"));

    // spoke2's route table disables gateway route propagation: no gateway routes.
    let spoke2 = on("routes", GATEWAY, &["--nic", "spoke2-vm", "-o", "json"]).json();
    let spoke2 = spoke2["value"].as_array().expect("array").clone();
    assert!(spoke2.iter().all(|r| r["source"] != "VirtualNetworkGateway" && r["disableBgpRoutePropagation"] == true));
}

#[test]
fn routes_table_has_the_columns_and_the_next_hop_types() {
    let run = on("routes", HUB_SPOKE, &["--nic", "spoke1-vm"]);
    run.expect_code(0, "routes table");
    for text in ["Source", "State", "Address prefix", "Next hop type", "Next hop IP", "Name"] {
        assert!(run.stdout.contains(text), "header {text}:\n{}", run.stdout);
    }
    for text in ["VNetPeering", "VnetLocal", "VirtualAppliance", "10.0.1.4", "to-spoke2", "10.2.0.0/16"] {
        assert!(run.stdout.contains(text), "{text}:\n{}", run.stdout);
    }

    let gw = on("routes", GATEWAY, &["--nic", "spoke1-vm"]);
    assert!(gw.stdout.contains("VirtualNetworkGateway") && gw.stdout.contains("10.0.255.4"), "{}", gw.stdout);
    let global = on("routes", GLOBAL_ILB, &["--nic", "west-vm"]);
    assert!(global.stdout.contains("VNetGlobalPeering"), "{}", global.stdout);
}

#[test]
fn rules_json_is_the_engines_effective_security_groups() {
    let e = engine(HUB_SPOKE);
    for name in ["spoke2-vm", "spoke1-vm"] {
        let want = effective::effective_network_security_groups(&e, &nic(&e, &format!("{name}-nic"))).expect("nsgs");
        let got = on("rules", HUB_SPOKE, &["--nic", name, "-o", "json"]).expect_code(0, name).json();
        assert_eq!(got, want, "{name}");
    }

    let spoke2 = on("rules", HUB_SPOKE, &["--nic", "spoke2-vm", "-o", "json"]).json();
    let groups = spoke2["value"].as_array().expect("value array");
    assert_eq!(groups.len(), 1);
    assert!(groups[0]["networkSecurityGroup"]["id"].as_str().is_some_and(|id| id.ends_with("/spoke2-nsg")));
    assert!(groups[0]["association"]["subnet"]["id"].as_str().is_some_and(|id| id.ends_with("spoke2/subnets/default")));
    let deny = groups[0]["effectiveSecurityRules"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "securityRules/deny-rdp"))
        .expect("deny-rdp is effective");
    assert_eq!(
        (&deny["access"], &deny["direction"], &deny["priority"]),
        (&json!("Deny"), &json!("Inbound"), &json!(100))
    );

    let spoke1 = on("rules", HUB_SPOKE, &["--nic", "spoke1-vm", "-o", "json"]).json();
    assert_eq!(spoke1, json!({ "value": [] }));
}

#[test]
fn rules_table_lists_the_nsg_rules() {
    let run = on("rules", HUB_SPOKE, &["--nic", "spoke2-vm"]);
    run.expect_code(0, "rules table");
    for text in ["spoke2-nsg", "associated with the subnet", "Priority", "Destination ports", "securityRules/deny-rdp"]
    {
        assert!(run.stdout.contains(text), "{text}:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("defaultSecurityRules/DenyAllInBound"), "{}", run.stdout);

    let none = on("rules", HUB_SPOKE, &["--nic", "spoke1-vm"]);
    assert!(none.stdout.contains("No network security group applies"), "{}", none.stdout);
}

// ---------------------------------------------------------------------------------------------
// next-hop / flow
// ---------------------------------------------------------------------------------------------

#[test]
fn next_hop_follows_user_peering_and_gateway_routes() {
    let via_nva = on("next-hop", HUB_SPOKE, &["--vm", "spoke1-vm", "--to", "10.2.0.4", "-o", "json"]);
    let via_nva = via_nva.expect_code(0, "next-hop").json();
    assert_eq!(
        via_nva,
        json!({ "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.1.4",
                "routeTableId": format!("{SUB}/resourceGroups/network-rg/providers/Microsoft.Network/routeTables/spoke1-rt") })
    );
    // The same as the library's nextHop.
    let e = engine(HUB_SPOKE);
    let params = watcher::NextHopParameters {
        target_resource_id: vm(&e, "spoke1-vm"),
        source_ip_address: "10.1.0.4".into(),
        destination_ip_address: "10.2.0.4".into(),
        target_nic_resource_id: None,
    };
    assert_eq!(via_nva, watcher::next_hop(&e, &params).expect("next hop"));

    let peered = on("next-hop", HUB_SPOKE, &["--vm", "spoke1-vm", "--to", "10.0.0.4", "-o", "json"]).json();
    assert_eq!(peered, json!({ "nextHopType": "VirtualNetworkPeering", "routeTableId": "System Route" }));
    let internet = on("next-hop", HUB_SPOKE, &["--vm", "spoke1-vm", "--to", "8.8.8.8", "-o", "json"]).json();
    assert_eq!(internet["nextHopType"], "Internet");

    let gw = on("next-hop", GATEWAY, &["--vm", "spoke1-vm", "--to", "192.168.10.5", "-o", "json"]).json();
    assert_eq!(gw["nextHopType"], "VirtualNetworkGateway");
    assert_eq!(gw["nextHopIpAddress"], "10.0.255.4");

    let table = on("next-hop", HUB_SPOKE, &["--vm", "spoke1-vm", "--to", "10.2.0.4", "--from", "10.1.0.4"]);
    table.expect_code(0, "next-hop table");
    assert!(table.stdout.contains("nextHopType") && table.stdout.contains("VirtualAppliance"), "{}", table.stdout);
}

#[test]
fn flow_names_the_deciding_rule() {
    let flow = |args: &[&str]| {
        let mut all = vec!["--vm", "spoke2-vm"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        on("flow", HUB_SPOKE, &all).expect_code(0, "flow").json()
    };
    let rdp = flow(&["--direction", "in", "--local", "10.2.0.4:3389", "--remote", "10.1.0.4:50000"]);
    assert_eq!(rdp["access"], "Deny");
    assert_eq!(rdp["ruleName"], "securityRules/deny-rdp");

    let ssh = flow(&["--direction", "in", "--local", "10.2.0.4:22", "--remote", "10.1.0.4:50000"]);
    assert_eq!((&ssh["access"], &ssh["ruleName"]), (&json!("Allow"), &json!("defaultSecurityRules/AllowVnetInBound")));

    // deny-rdp is TCP only.
    let udp = flow(&["--direction", "in", "--proto", "udp", "--local", "10.2.0.4:3389", "--remote", "10.1.0.4:50000"]);
    assert_eq!(udp["access"], "Allow");

    let out = flow(&["--direction", "out", "--local", "10.2.0.4:50000", "--remote", "10.1.0.4:3389"]);
    assert_eq!((&out["access"], &out["ruleName"]), (&json!("Allow"), &json!("defaultSecurityRules/AllowVnetOutBound")));

    let table = on(
        "flow",
        HUB_SPOKE,
        &["--vm", "spoke2-vm", "--direction", "in", "--local", "10.2.0.4:3389", "--remote", "10.1.0.4:50000"],
    );
    table.expect_code(0, "flow table");
    assert!(table.stdout.contains("Deny") && table.stdout.contains("securityRules/deny-rdp"), "{}", table.stdout);
}

// ---------------------------------------------------------------------------------------------
// check / matrix
// ---------------------------------------------------------------------------------------------

fn check(file: &str, from: &str, to: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--from", from, "--to", to, "-o", "json"];
    args.extend_from_slice(extra);
    let run = on("check", file, &args);
    let body = run.json();
    let status = body["connectionStatus"].as_str().unwrap_or_default();
    let want = if status == "Reachable" { 0 } else { 1 };
    run.expect_code(want, &format!("check {from} -> {to} ({status})"));
    (run.code, body)
}

#[test]
fn check_hub_spoke_through_the_appliance_and_the_rdp_deny() {
    let (code, by_name) = check(HUB_SPOKE, "spoke1-vm", "spoke2-vm:22", &[]);
    assert_eq!(code, 0);
    assert_eq!(by_name["connectionStatus"], "Reachable");
    let types: Vec<&str> = hops(&by_name).iter().filter_map(|h| h["type"].as_str()).collect();
    assert_eq!(types, ["Source", "VirtualAppliance", "Destination"]);
    assert_eq!(hops(&by_name)[1]["address"], "10.0.1.4");
    assert!(hops(&by_name).iter().all(|h| h["issues"] == json!([])));

    // IP:PORT gives the same answer as VM:PORT; a bare VM name is reachable too.
    let (_, by_ip) = check(HUB_SPOKE, "spoke1-vm", "10.2.0.4:22", &[]);
    assert_eq!(by_ip, by_name);
    assert_eq!(check(HUB_SPOKE, "spoke1-vm", "spoke2-vm", &[]).0, 0);

    // The library answers the same.
    let e = engine(HUB_SPOKE);
    let params = watcher::ConnectivityParameters {
        source: watcher::ConnectivitySource { resource_id: vm(&e, "spoke1-vm"), port: None },
        destination: watcher::ConnectivityDestination {
            resource_id: Some(vm(&e, "spoke2-vm")),
            address: None,
            port: Some(22),
        },
        protocol: Some("Tcp".into()),
    };
    assert_eq!(by_name, watcher::connectivity_check(&e, &params).expect("check"));

    for to in ["spoke2-vm:3389", "10.2.0.4:3389"] {
        let (code, body) = check(HUB_SPOKE, "spoke1-vm", to, &[]);
        assert_eq!(code, 1, "{to}");
        assert_eq!(body["connectionStatus"], "Unreachable");
        let last = hops(&body).last().expect("a hop");
        let issue = &last["issues"][0];
        assert_eq!((&issue["type"], &issue["origin"]), (&json!("NetworkSecurityRule"), &json!("Inbound")));
        assert!(
            issue["context"].as_array().into_iter().flatten().any(|c| c["value"] == "securityRules/deny-rdp"),
            "{issue}"
        );
    }

    let table = on("check", HUB_SPOKE, &["--from", "spoke1-vm", "--to", "spoke2-vm:3389"]);
    table.expect_code(1, "check table");
    assert!(table.stdout.starts_with("Connection status: Unreachable"), "{}", table.stdout);
    assert!(table.stdout.contains("deny-rdp"), "{}", table.stdout);
    let table = on("check", HUB_SPOKE, &["--from", "spoke1-vm", "--to", "spoke2-vm:22"]);
    table.expect_code(0, "check table");
    assert!(table.stdout.starts_with("Connection status: Reachable"), "{}", table.stdout);
}

#[test]
fn check_basic_ilb_is_not_reachable_over_global_peering() {
    let (code, basic) = check(GLOBAL_ILB, "west-vm", "10.10.0.100:80", &[]);
    assert_eq!(code, 1);
    let lb = hops(&basic).last().expect("a hop");
    assert_eq!(lb["type"], "LoadBalancer");
    assert!(lb["resourceId"].as_str().is_some_and(|id| id.ends_with("/loadBalancers/ilb-basic")));
    assert!(
        lb["issues"][0]["context"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["value"] == "BasicLoadBalancerFrontendNotReachableOverGlobalPeering")
    );

    let (code, standard) = check(GLOBAL_ILB, "west-vm", "10.10.0.101:80", &[]);
    assert_eq!(code, 0);
    assert!(hops(&standard).iter().any(|h| h["type"] == "LoadBalancer"
        && h["resourceId"].as_str().is_some_and(|id| id.ends_with("/loadBalancers/ilb-standard"))));

    // Regional peering reaches the Basic frontend; --proto http defaults to port 80.
    assert_eq!(check(GLOBAL_ILB, "neighbour-vm", "10.10.0.100:80", &[]).0, 0);
    assert_eq!(check(GLOBAL_ILB, "west-vm", "10.10.0.101", &["--proto", "http"]).0, 0);
    assert_eq!(check(GLOBAL_ILB, "west-vm", "10.10.0.100", &["--proto", "http"]).0, 1);
    // The backends themselves are reachable on their own addresses.
    assert_eq!(check(GLOBAL_ILB, "west-vm", "web1:80", &[]).0, 0);
}

#[test]
fn check_gateway_transit_reaches_on_premises_only_with_transit_and_propagation() {
    let (code, body) = check(GATEWAY, "spoke1-vm", "192.168.10.5:443", &[]);
    assert_eq!(code, 0);
    let gw = hops(&body).iter().find(|h| h["type"] == "VirtualNetworkGateway").expect("a gateway hop");
    assert!(gw["resourceId"].as_str().is_some_and(|id| id.ends_with("/virtualNetworkGateways/hub-gw")), "{gw}");
    assert_eq!(check(GATEWAY, "spoke1-vm", "192.168.10.5", &["--proto", "https"]).0, 0);

    // spoke2 turns propagation off; spoke3 has no transit.
    assert_eq!(check(GATEWAY, "spoke2-vm", "192.168.10.5:443", &[]).0, 1);
    assert_eq!(check(GATEWAY, "spoke3-vm", "192.168.10.5:443", &[]).0, 1);
}

#[test]
fn matrix_json_is_the_engines_matrix_and_agrees_with_check() {
    let run = on("matrix", HUB_SPOKE, &["--port", "3389", "-o", "json"]);
    let body = run.expect_code(0, "matrix").json();
    assert!(body["cells"].is_array(), "{body}");
    assert_eq!((&body["protocol"], &body["port"]), (&json!("Tcp"), &json!(3389)));
    let e = engine(HUB_SPOKE);
    assert_eq!(body, serde_json::to_value(matrix::matrix(&e, Protocol::Tcp, 3389, None)).expect("serialize"));

    let cells = body["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 12, "4 VMs, diagonal left out");
    let blocked: Vec<(&str, &str)> = cells
        .iter()
        .filter(|c| c["reachable"] == false)
        .filter_map(|c| Some((c["from"].as_str()?, c["to"].as_str()?)))
        .collect();
    assert_eq!(blocked, [("hub-nva", "spoke2-vm"), ("hub-vm", "spoke2-vm"), ("spoke1-vm", "spoke2-vm")]);
    for c in cells.iter().filter(|c| c["reachable"] == false) {
        assert!(c["reason"].as_str().is_some_and(|r| r.contains("deny-rdp")), "{c}");
    }
    // Each cell is what `check` says for the same pair.
    for c in cells {
        let (from, to) = (c["from"].as_str().expect("from"), c["to"].as_str().expect("to"));
        let (code, _) = check(HUB_SPOKE, from, &format!("{to}:3389"), &[]);
        assert_eq!(code == 0, c["reachable"] == true, "{from} -> {to}");
    }

    let ssh = on("matrix", HUB_SPOKE, &["--port", "22", "-o", "json"]).json();
    assert!(ssh["cells"].as_array().is_some_and(|cs| cs.iter().all(|c| c["reachable"] == true)), "{ssh}");

    let table = on("matrix", HUB_SPOKE, &["--port", "3389"]);
    table.expect_code(0, "matrix table");
    assert!(table.stdout.starts_with("Tcp port 3389"), "{}", table.stdout);
    assert!(table.stdout.contains("spoke1-vm -> spoke2-vm:") && table.stdout.contains("deny-rdp"), "{}", table.stdout);
}

// ---------------------------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------------------------

#[test]
fn export_prints_arm_json_that_loads_back_into_the_same_topology() {
    for file in [HUB_SPOKE, "hub-spoke-nva.json", GATEWAY, GLOBAL_ILB, "cross-subscription.yaml"] {
        let exported = on("export", file, &[]);
        exported.expect_code(0, file);
        let doc = exported.json();
        assert!(doc["resources"].as_array().is_some_and(|r| !r.is_empty()), "{file}: {{\"resources\": [...]}}");
        assert_eq!(doc, load::export(&engine(file)), "{file}: the library's export");

        let tmp = TempFile::new("json", &exported.stdout);
        let again = tessera(&["validate", "-f", tmp.path()]);
        again.expect_code(0, &format!("{file} exported"));
        assert!(again.stdout.starts_with("valid: "), "{}", again.stdout);
        let summary = tessera(&["validate", "-f", tmp.path(), "-o", "json"]).json();
        assert_eq!(summary, on("validate", file, &["-o", "json"]).json(), "{file}: same summary after export");
        // Exporting the export changes nothing.
        assert_eq!(tessera(&["export", "-f", tmp.path()]).expect_code(0, "re-export").stdout, exported.stdout);
    }

    // The diagnostics answer the same on the exported file.
    let exported = on("export", HUB_SPOKE, &[]);
    let tmp = TempFile::new("json", &exported.stdout);
    let routes = tessera(&["routes", "-f", tmp.path(), "--nic", "spoke1-vm", "-o", "json"]);
    assert_eq!(routes.expect_code(0, "routes on export").json(), expected_routes(HUB_SPOKE, "spoke1-vm-nic"));

    let refused = on("export", OVERLAP, &[]);
    assert_error(&refused, "VnetAddressSpacesOverlap", "export of an invalid topology");
}

#[test]
fn a_snapshot_loads_as_it_was_acknowledged() {
    // A link left pointing at a deleted VNet (P3) would be refused as a new request; in a
    // snapshot it is history, and the diagnostics load it as it is.
    let mut e = engine(HUB_SPOKE);
    let hub = e.state().vnets.keys().find(|id| id.name() == "hub").cloned().expect("hub");
    let gone = tessera_model::ResourceId::parse(&hub.as_str().replace("/hub", "/gone")).expect("id");
    let put = |v: serde_json::Value| {
        tessera_engine::Change::Put(tessera_model::resource::from_arm_json(v).expect("parses").remove(0))
    };
    e.apply(put(serde_json::json!({"id": gone.as_str(), "location": "westeurope",
        "properties": {"addressSpace": {"addressPrefixes": ["10.99.0.0/16"]}}})))
        .expect("vnet");
    for (a, b) in [(&hub, &gone), (&gone, &hub)] {
        e.apply(put(serde_json::json!({"id": format!("{a}/virtualNetworkPeerings/to-{}", b.name()),
            "properties": {"remoteVirtualNetwork": {"id": b.as_str()}}})))
            .expect("link");
    }
    e.apply(tessera_engine::Change::Delete(gone)).expect("deleted");
    let tmp = TempFile::new("json", &load::export(&e).to_string());
    let routes = tessera(&["routes", "-f", tmp.path(), "--nic", "spoke1-vm", "-o", "json"]);
    assert_eq!(routes.expect_code(0, "routes on a snapshot").json(), expected_routes(HUB_SPOKE, "spoke1-vm-nic"));
    tessera(&["validate", "-f", tmp.path()]).expect_code(0, "a snapshot is valid as it stands");
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let missing = std::env::temp_dir().join(format!("tessera-cli-missing-{}.yaml", std::process::id()));
    let missing = missing.to_str().expect("utf-8");
    for args in [
        vec!["validate", "-f", missing],
        vec!["validate", "-f", missing, "-o", "json"],
        vec!["routes", "-f", missing, "--nic", "spoke1-vm"],
        vec!["check", "-f", missing, "--from", "a", "--to", "b"],
        vec!["export", "-f", missing],
    ] {
        assert_error(&tessera(&args), "FileNotReadable", &format!("{args:?}"));
    }
}

#[test]
fn an_unknown_name_is_an_error_not_a_panic() {
    let cases: &[(&str, &[&str])] = &[
        ("routes", &["--nic", "no-such-vm"]),
        ("rules", &["--nic", "no-such-vm"]),
        ("next-hop", &["--vm", "no-such-vm", "--to", "10.2.0.4"]),
        ("flow", &["--vm", "no-such-vm", "--direction", "in", "--local", "10.2.0.4:22", "--remote", "10.1.0.4:1"]),
        ("check", &["--from", "no-such-vm", "--to", "spoke2-vm:22"]),
        ("check", &["--from", "spoke1-vm", "--to", "no-such-vm:22"]),
        ("check", &["--from", "spoke1-vm", "--to", "no-such-vm"]),
    ];
    for (cmd, rest) in cases {
        let run = on(cmd, HUB_SPOKE, rest);
        assert_error(&run, "no-such-vm", &format!("{cmd} {rest:?}"));
        assert!(run.stderr.contains("ResourceNotFound"), "{}", run.stderr);
    }

    // A NIC id that does not exist, and an address that is not the VM's.
    let ghost = format!("{SUB}/resourceGroups/network-rg/providers/Microsoft.Network/networkInterfaces/ghost-nic");
    assert_error(&on("routes", HUB_SPOKE, &["--nic", &ghost]), "ghost-nic", "unknown NIC id");
    let wrong_ip = on("next-hop", HUB_SPOKE, &["--vm", "spoke1-vm", "--to", "10.2.0.4", "--from", "10.9.9.9"]);
    assert_error(&wrong_ip, "10.9.9.9", "source address not on the VM");
}

#[test]
fn a_malformed_topology_is_an_error_not_a_panic() {
    let yaml = TempFile::new("yaml", "vnets:\n  - name: [unclosed\n    addressSpace: 10.0.0.0/16\n");
    let wrong_shape = TempFile::new("yaml", "vnets: 5\n");
    let json = TempFile::new("json", "{\"resources\": [ {\"id\": ");
    for file in [&yaml, &wrong_shape, &json] {
        for args in [
            vec!["routes", "-f", file.path(), "--nic", "spoke1-vm"],
            vec!["check", "-f", file.path(), "--from", "a", "--to", "b"],
            vec!["matrix", "-f", file.path()],
            vec!["export", "-f", file.path()],
        ] {
            let run = tessera(&args);
            run.expect_code(2, &format!("{args:?}"));
            assert!(run.stderr.starts_with("error:"), "{args:?}:\n{}", run.stderr);
        }
        // validate reports an unreadable topology as a refusal (exit 1) with an ARM error body.
        let run = tessera(&["validate", "-f", file.path(), "-o", "json"]);
        run.expect_code(1, "validate malformed");
        let body = run.json();
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
    }
    let run = tessera(&["routes", "-f", yaml.path(), "--nic", "x"]);
    assert!(run.stderr.contains("InvalidTopology") && run.stderr.contains("line 2"), "{}", run.stderr);
}

#[test]
fn bad_arguments_are_usage_errors() {
    // An agent's other controllers are https base URLs (refused before anything starts).
    for bad in ["http://127.0.0.1:8443", "https://127.0.0.1:8443/tessera", "127.0.0.1:8443", "https://"] {
        let run = tessera(&["agent", "--host", "h1", "--controller", bad]);
        assert_error(&run, "--controller", bad);
    }
    let run = on("check", HUB_SPOKE, &["--from", "spoke1-vm"]);
    assert_error(&run, "--to", "missing --to");
    let run =
        on("flow", HUB_SPOKE, &["--vm", "spoke2-vm", "--direction", "in", "--local", "10.2.0.4", "--remote", "x"]);
    assert_error(&run, "--local", "--local without a port");
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let path = example(HUB_SPOKE);
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["routes", "-f", path.to_str().expect("utf-8"), "--nic", "spoke1-vm"])
        .env("RUST_BACKTRACE", "0")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run the tessera binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "exit code of a panic");
}
