//! A local etcd cluster for tests (issue 18): three members of Debian's `etcd` on loopback
//! ports, their data in a directory the caller owns, killed when dropped. The tests of the
//! etcd backend and of several servers on one store use it; it touches nothing but loopback.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{EtcdStore, Store};

/// A 3-member cluster, killed (and its data removed) when dropped.
pub struct Cluster {
    /// The members' processes.
    pub members: Vec<Child>,
    /// Their client endpoints (`127.0.0.1:port`).
    pub clients: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

impl Cluster {
    /// Starts a cluster with its data under `dir`; waits until it answers.
    pub fn start(dir: &Path) -> Cluster {
        let etcd = ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().find(|p| std::path::Path::new(p).exists());
        let etcd = etcd.expect("etcd is not installed: apt-get install etcd-server (.ci/run does)");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                Command::new(etcd)
                    .arg(format!("--name=m{i}"))
                    .arg(format!("--data-dir={}", dir.join(format!("m{i}")).display()))
                    .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                    .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                    .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                    .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"))
                    .arg(format!("--initial-cluster={}", initial.join(",")))
                    .arg("--initial-cluster-state=new")
                    .arg("--initial-cluster-token=tessera-test")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start etcd")
            })
            .collect();
        let clients = ports.iter().map(|(c, _)| format!("127.0.0.1:{c}")).collect();
        let cluster = Cluster { members, clients };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = EtcdStore::connect(&cluster.clients, "ready", 10).and_then(|s| s.revision()).is_ok();
            if ready {
                return cluster;
            }
            assert!(Instant::now() < deadline, "the etcd cluster did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
