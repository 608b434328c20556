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
    etcd: &'static str,
    dir: std::path::PathBuf,
    ports: Vec<(u16, u16)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
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
        let clients = ports.iter().map(|(c, _)| format!("127.0.0.1:{c}")).collect();
        let mut cluster = Cluster { members: Vec::new(), clients, etcd, dir: dir.to_path_buf(), ports };
        cluster.spawn_all();
        cluster
    }

    /// Kills every member (`kill -9`).
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
        self.members.clear();
    }

    /// Starts every member again on its data and ports (after `kill_all`); waits until the
    /// cluster answers.
    pub fn restart(&mut self) {
        self.kill_all();
        self.spawn_all();
    }

    fn spawn_all(&mut self) {
        let initial: Vec<String> =
            self.ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        self.members = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| {
                // On a restart the data directory holds the member, and the initial flags are
                // ignored.
                Command::new(self.etcd)
                    .arg(format!("--name=m{i}"))
                    .arg(format!("--data-dir={}", self.dir.join(format!("m{i}")).display()))
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = EtcdStore::connect(&self.clients, "ready", 10).and_then(|s| s.revision()).is_ok();
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the etcd cluster did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
