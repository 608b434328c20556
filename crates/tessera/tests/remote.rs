//! The CLI against a running server: `tessera serve`, `tessera apply -f`, and the diagnostic
//! commands without `-f` answer exactly what they answer on the file itself.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

/// A `tessera serve` child process, killed (and its data directory removed) on drop.
struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let dir = std::env::temp_dir().join(format!("tessera-cli-remote-{}-{port}", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--data-dir", dir.to_str().expect("utf-8"), "--listen", &format!("127.0.0.1:{port}")])
            .args(["--retry-after", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tessera serve");
        let server = Server { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(server.credentials().exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            assert!(Instant::now() < deadline, "tessera serve did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn credentials(&self) -> PathBuf {
        self.dir.join("credentials.json")
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .env("TESSERA_CREDENTIALS", self.credentials())
            .output()
            .expect("run tessera");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[test]
fn diagnostics_against_the_server_match_the_file() {
    let server = Server::start();
    let file = example("hub-spoke-nva.yaml");
    let file = file.to_str().expect("utf-8");
    let (code, out, err) = server.run(&["apply", "-f", file]);
    assert_eq!(code, 0, "apply: {out}{err}");
    assert!(out.contains("applied"), "{out}");
    let commands: Vec<Vec<&str>> = vec![
        vec!["routes", "--nic", "spoke1-vm", "-o", "json"],
        vec!["rules", "--nic", "spoke2-vm", "-o", "json"],
        vec!["next-hop", "--vm", "spoke1-vm", "--to", "10.2.0.4", "-o", "json"],
        vec![
            "flow",
            "--vm",
            "spoke2-vm",
            "--direction",
            "in",
            "--local",
            "10.2.0.4:3389",
            "--remote",
            "10.1.0.4:50000",
            "-o",
            "json",
        ],
        vec!["check", "--from", "spoke1-vm", "--to", "spoke2-vm:22", "-o", "json"],
        vec!["check", "--from", "spoke1-vm", "--to", "spoke2-vm:3389"],
        vec!["matrix", "--port", "22"],
        vec!["matrix", "--port", "3389", "-o", "json"],
    ];
    for args in commands {
        let remote = server.run(&args);
        let mut local_args = args.clone();
        local_args.splice(1..1, ["-f", file]);
        let local = server.run(&local_args);
        assert_eq!(
            remote.0, local.0,
            "{args:?}: exit code\nremote: {}{}\nlocal: {}{}",
            remote.1, remote.2, local.1, local.2
        );
        assert_eq!(remote.1, local.1, "{args:?}: the server's answer differs from the file's");
        assert!(!remote.1.is_empty(), "{args:?}: an answer");
    }
    // A refusal from the server comes back as the ARM error, exit 2.
    let (code, _, err) = server.run(&["routes", "--nic", "no-such-nic"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error:"), "{err}");
}

#[test]
fn without_a_server_the_commands_say_how_to_start_one() {
    let (code, out, err) = {
        let o = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["routes", "--nic", "x", "--credentials", "/nonexistent/credentials.json"])
            .output()
            .expect("run tessera");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("tessera serve"), "{err}");
}

/// `tessera principal create`, `login` and `role assign|list`: a new principal sees nothing and
/// may do nothing until it holds a role; as a Reader it runs the diagnostics (read on the NIC)
/// and gets the same answer as the admin, but cannot write.
#[test]
fn principals_logins_and_roles_from_the_command_line() {
    let server = Server::start();
    let file = example("hub-spoke-nva.yaml");
    let file = file.to_str().expect("utf-8");
    assert_eq!(server.run(&["apply", "-f", file]).0, 0);
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(server.credentials()).expect("credentials")).expect("json");
    let (tenant, sub) = (creds["tenantId"].as_str().expect("tenant"), creds["subscriptionId"].as_str().expect("sub"));

    let (code, out, err) = server.run(&["principal", "create", "--tenant", tenant, "--name", "auditor"]);
    assert_eq!(code, 0, "{out}{err}");
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_string()
    };
    let (id, secret) = (field("client id"), field("client secret"));
    let login = server.dir.join("auditor.json");
    let login_str = login.to_str().expect("utf-8");
    let server_creds = server.credentials();
    let sign_in = ["login", "--client-id", &id, "--secret", &secret, "--tenant", tenant, "--out", login_str];
    let (code, out, err) = server.run(&[&sign_in[..], &["--server", server_creds.to_str().expect("utf-8")]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("subscription "), "no role yet, no subscription to see: {out}");

    let routes = ["routes", "--nic", "spoke1-vm", "-o", "json", "--credentials", login_str];
    let (code, _, err) = server.run(&routes);
    assert_eq!(code, 2);
    assert!(err.contains("ResourceNotFound"), "without a role the principal sees no NIC: {err}");

    let scope = format!("/subscriptions/{sub}");
    let (code, out, err) = server.run(&["role", "assign", "--principal", &id, "--role", "Reader", "--scope", &scope]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = server.run(&["role", "list", "--scope", &scope]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.contains(&id) && l.contains("acdd72a7-3385-48ef-bd42-f606fba81ae7")), "{out}");

    let (code, as_reader, err) = server.run(&routes);
    assert_eq!(code, 0, "{err}");
    let (_, as_admin, _) = server.run(&routes[..5]);
    assert_eq!(as_reader, as_admin, "the reader sees the same effective routes");
    let (code, _, err) = server.run(&["apply", "-f", file, "--credentials", login_str]);
    assert_eq!(code, 2, "a reader cannot write");
    assert!(err.contains("AuthorizationFailed"), "{err}");
}

/// Issue 15, point 5: an ARM JSON export from a subscription this server does not have is
/// applied — the subscription is made in the caller's tenant — or mapped into one that exists
/// with `--subscription`.
#[test]
fn an_export_from_another_subscription_is_applied_or_mapped() {
    let server = Server::start();
    let text = std::fs::read_to_string(example("hub-spoke-nva.json")).expect("example");
    let foreign = "7c4b1f0e-0000-4000-8000-00000000beef";
    let own: String = text
        .split("/subscriptions/")
        .nth(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
        .expect("the example names its subscription");
    let moved = server.dir.join("moved.json");
    std::fs::create_dir_all(&server.dir).expect("dir");
    std::fs::write(&moved, text.replace(&own, foreign)).expect("write");
    let moved = moved.to_str().expect("utf-8");
    let (code, out, err) = server.run(&["apply", "-f", moved]);
    assert_eq!(code, 0, "apply into a subscription the server makes: {out}{err}");
    let (code, out, err) = server.run(&["routes", "--nic", "spoke1-vm", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("VNetPeering"), "the foreign subscription's estate is served: {out}");
    assert!(err.is_empty() || !err.contains("SubscriptionNotFound"), "{err}");

    // Mapped: the same file into the server's own subscription, alongside.
    let fresh = Server::start();
    let (code, out, err) = fresh.run(&["apply", "-f", moved, "--subscription", &own]);
    assert_eq!(code, 0, "apply mapped into {own}: {out}{err}");
    // The effective rules name the NSGs by id: in the server's own subscription.
    let (code, out, _) = fresh.run(&["rules", "--nic", "spoke2-vm", "-o", "json"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("/subscriptions/{own}/")), "{out}");
    assert!(!out.contains(foreign), "nothing of the foreign subscription is left: {out}");
    let (code, _, err) = fresh.run(&["apply", "-f", moved, "--subscription", "not a/guid"]);
    assert_ne!(code, 0);
    assert!(err.contains("InvalidSubscriptionId"), "{err}");
}
