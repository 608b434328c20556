//! Starting the server: the data directory (store, certificates, credentials), first-start
//! set-up (a default tenant, subscription and service principal), and the HTTPS listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tessera_engine::Limits;
use tessera_model::account::{DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Subscription};
use tessera_store::{MemoryStore, Op, RedbStore, Store};
use tokio::sync::RwLock;

use crate::auth::{ServicePrincipal, TokenKeys, sha256_hex};
use crate::commit::Committer;
use crate::core::Core;
use crate::http::{ApiSettings, App, Identity};
use crate::operations::Operations;

/// Which store backs the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// redb in `<data dir>/store.redb` (durable; the default).
    Redb,
    /// In memory (gone when the server stops).
    Memory,
    /// An etcd cluster, shared with other servers: each write is checked against the latest
    /// state first, and a server whose state is behind reads it again.
    Etcd {
        /// The cluster's client endpoints (`host:port`).
        endpoints: Vec<String>,
        /// The prefix of this deployment's keys.
        namespace: String,
    },
}

impl StoreKind {
    /// Whether other servers write the same store.
    fn shared(&self) -> bool {
        matches!(self, StoreKind::Etcd { .. })
    }

    /// The kind as `GET /tessera/cluster` shows it.
    fn label(&self) -> &'static str {
        match self {
            StoreKind::Redb => "redb",
            StoreKind::Memory => "memory",
            StoreKind::Etcd { .. } => "etcd",
        }
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Directory for the store, the certificates and the credentials file.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The store.
    pub store: StoreKind,
    /// API behaviour.
    pub settings: ApiSettings,
    /// Engine limits.
    pub limits: Limits,
    /// Where to serve `/metrics` (plain HTTP), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Collectors served with the API's metrics (the in-process host agent's).
    pub collectors: Vec<crate::metrics::SharedCollector>,
    /// With a shared store: the leader's election and work.
    pub cluster: crate::leader::ClusterSettings,
}

impl ServeConfig {
    /// Defaults for a data directory: redb, `127.0.0.1:8443`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            store: StoreKind::Redb,
            settings: ApiSettings::default(),
            limits: Limits::default(),
            metrics: None,
            collectors: Vec::new(),
            cluster: crate::leader::ClusterSettings::default(),
        }
    }
}

/// What a client needs to sign in (written to `<data dir>/credentials.json`, mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The server's base URL.
    pub endpoint: String,
    /// The CA certificate to trust.
    pub ca_certificate: PathBuf,
    /// The default tenant.
    pub tenant_id: String,
    /// The default subscription.
    pub subscription_id: String,
    /// The service principal's application id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
}

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The default principal's sign-in details.
    pub credentials: Credentials,
    /// The `/metrics` listener, when asked for.
    pub metrics: Option<crate::metrics::MetricsServer>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.handle.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        self.task.await.map_err(std::io::Error::other)?
    }

    /// Waits until the server stops (it runs until shut down or the process ends).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).map_err(|_| io("no randomness"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// An opened store, and the same store as etcd's when it is one (for the leader's election).
struct Opened {
    store: Arc<dyn Store>,
    #[cfg(feature = "etcd")]
    etcd: Option<Arc<tessera_store::EtcdStore>>,
}

impl Opened {
    fn alone(store: Arc<dyn Store>) -> Opened {
        Opened {
            store,
            #[cfg(feature = "etcd")]
            etcd: None,
        }
    }
}

fn open_store(config: &ServeConfig) -> std::io::Result<Opened> {
    Ok(match &config.store {
        StoreKind::Redb => Opened::alone(Arc::new(RedbStore::open(&config.data_dir.join("store.redb")).map_err(io)?)),
        StoreKind::Memory => Opened::alone(Arc::new(MemoryStore::new())),
        #[cfg(feature = "etcd")]
        StoreKind::Etcd { endpoints, namespace } => {
            let etcd = Arc::new(
                tessera_store::EtcdStore::connect(endpoints, namespace, tessera_store::DEFAULT_LOG_RETENTION)
                    .map_err(io)?,
            );
            Opened { store: etcd.clone(), etcd: Some(etcd) }
        }
        #[cfg(not(feature = "etcd"))]
        StoreKind::Etcd { .. } => {
            return Err(io("this build has no etcd store: build it with `--features etcd` (needs protoc)"));
        }
    })
}

/// The token-signing key, made on first start and kept in the store.
fn signing_key(store: &dyn Store) -> std::io::Result<Vec<u8>> {
    const KEY: &str = "meta/signing-key";
    if let Some(e) = store.get(KEY).map_err(io)? {
        return Ok(e.value);
    }
    let key = random_hex(32)?.into_bytes();
    match store.commit(&[Op::Put { key: KEY.into(), value: key.clone(), expect: tessera_store::Expect::Absent }]) {
        Ok(_) => Ok(key),
        // Another server starting on the same store made it first: that one is the key.
        Err(tessera_store::StoreError::Conflict { .. }) => {
            store.get(KEY).map_err(io)?.map(|e| e.value).ok_or_else(|| io("the signing key vanished"))
        }
        Err(e) => Err(io(e)),
    }
}

/// First start: the default subscription and a service principal with a new secret.
fn first_start(core: &mut Core, store: &dyn Store, creds_path: &Path) -> std::io::Result<(String, String)> {
    if let Ok(text) = std::fs::read_to_string(creds_path)
        && let Ok(c) = serde_json::from_str::<Credentials>(&text)
        && core.principals.get(&c.client_id.to_ascii_lowercase()).is_some_and(|sp| sp.check_secret(&c.client_secret))
    {
        // A store from before role assignments existed: its principal administers it.
        if core.rbac.assignments.is_empty() {
            core.put_assignment(owner_at_root(&c.client_id));
            store.commit(&core.take_pending()).map_err(io)?;
        }
        return Ok((c.client_id, c.client_secret));
    }
    if !core.engine.state().subscriptions.contains_key(DEFAULT_SUBSCRIPTION) {
        core.put_subscription(Subscription::new(DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, "Tessera default"))
            .map_err(io)?;
    }
    let client_id = uuid::Uuid::new_v4().to_string();
    let secret = random_hex(24)?;
    let sp = ServicePrincipal {
        client_id: client_id.clone(),
        tenant_id: DEFAULT_TENANT.to_string(),
        display_name: "tessera-admin".to_string(),
        secret_sha256: sha256_hex(&secret),
        guest_tenants: Vec::new(),
    };
    core.put_principal(sp);
    // The first principal administers the server: Owner at the root scope (its tenant's
    // subscriptions, new subscriptions, principals).
    core.put_assignment(owner_at_root(&client_id));
    store.commit(&core.take_pending()).map_err(io)?;
    Ok((client_id, secret))
}

fn owner_at_root(client_id: &str) -> crate::rbac::RoleAssignment {
    crate::rbac::RoleAssignment {
        name: uuid::Uuid::new_v4().to_string(),
        scope: "/".to_string(),
        role: crate::rbac::OWNER.to_string(),
        principal_id: client_id.to_ascii_lowercase(),
    }
}

fn write_credentials(path: &Path, c: &Credentials) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_string_pretty(c).map_err(io)?;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

/// The most connections to hold: the configured bound, within the process's file limit (raised
/// to its hard limit first), leaving room for the store, the logs and the agents' sockets.
fn connection_bound(configured: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return configured };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    let room = usize::try_from(limit.saturating_sub(128)).unwrap_or(usize::MAX).max(16);
    configured.min(room)
}

/// Starts the server on the current tokio runtime (multi-threaded, so that store commits can
/// block a worker).
pub async fn start(config: ServeConfig) -> std::io::Result<RunningServer> {
    std::fs::create_dir_all(&config.data_dir)?;
    {
        // The store, the keys and the credentials live here: its owner's only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let opened = open_store(&config)?;
    let store = opened.store.clone();
    // Servers on a shared store share a CA: one credentials file reaches any of them.
    let certs = if config.store.shared() {
        crate::tls::ensure_shared_certificates(&config.data_dir, &*store)?
    } else {
        crate::tls::ensure_certificates(&config.data_dir)?
    };
    let tls = crate::tls::server_config(&certs)?;
    let secret = signing_key(&*store)?;
    let keys =
        TokenKeys::new(&secret).with_lifetime(config.settings.token_lifetime_secs, config.settings.token_leeway_secs);
    let mut core = Core::load(&*store, config.limits.clone()).map_err(io)?;
    let creds_path = config.data_dir.join("credentials.json");
    let (client_id, client_secret) = first_start(&mut core, &*store, &creds_path)?;

    let listener = std::net::TcpListener::bind(config.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let credentials = Credentials {
        endpoint: format!("https://{addr}"),
        ca_certificate: certs.ca.clone(),
        tenant_id: DEFAULT_TENANT.to_string(),
        subscription_id: DEFAULT_SUBSCRIPTION.to_string(),
        client_id,
        client_secret,
    };
    write_credentials(&creds_path, &credentials)?;

    let (api_metrics, metrics) = match config.metrics {
        Some(at) => {
            let m = crate::metrics::ApiMetrics::default();
            let listener = crate::metrics::serve_api(at, &m, &config.collectors).await?;
            (Some(m), Some(listener))
        }
        None => (None, None),
    };
    let core = Arc::new(RwLock::new(core));
    let shared = config.store.shared().then(|| store.clone());
    let shared_for_app = shared.clone();
    let head = if shared.is_some() {
        // What the first start wrote is announced to the other servers (a new head makes them
        // read the state again); then this server reads the head before the state, so that a
        // write of another server in between is read again at the next write, never missed.
        store.commit(&[Op::put(crate::commit::HEAD_KEY, Vec::new())]).map_err(io)?;
        let at = store.get(crate::commit::HEAD_KEY).map_err(io)?.map_or(0, |e| e.revision);
        let mut fresh = Core::load(&*store, config.limits.clone()).map_err(io)?;
        std::mem::swap(&mut fresh, &mut *core.try_write().map_err(io)?);
        Some(at)
    } else {
        None
    };
    let durable = core.read().await.feed.durable();
    let (committer, commit_thread) = Committer::spawn(store, core.clone(), config.limits.clone(), head, durable)?;
    let follower = shared.map(|store| {
        crate::commit::follow_other_servers(store, core.clone(), committer.clone(), config.limits.clone())
    });
    let name = config.cluster.name.clone().unwrap_or_else(|| crate::leader::default_name(addr));
    #[cfg(feature = "etcd")]
    let (cluster, leading) = match opened.etcd {
        Some(etcd) => {
            let (cluster, leading) = crate::leader::campaign(etcd, name, &config.cluster);
            (cluster, Some(leading))
        }
        None => (crate::leader::Cluster::alone(name, config.store.label()), None),
    };
    #[cfg(not(feature = "etcd"))]
    let cluster = crate::leader::Cluster::alone(name, config.store.label());
    let app = Arc::new(App {
        core,
        committer,
        keys,
        ops: Operations::sealed(&secret).shared(shared_for_app.clone()),
        cursors: crate::console::Cursors::new(&secret),
        settings: config.settings.clone(),
        identity: Identity { tenant: DEFAULT_TENANT.to_string() },
        metrics: api_metrics,
        probes: crate::probes::ProbeBoard::default(),
        shared_store: shared_for_app,
        limits: config.limits.clone(),
        cluster,
        sign_ins: crate::signin::SignInGuard::new(
            config.settings.sign_in_failures,
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(config.settings.sign_in_lockout_secs),
        ),
    });
    let router = axum::Router::new().fallback(crate::http::dispatch).with_state(app);
    let handle = axum_server::Handle::new();
    // TCP_NODELAY: a response goes out in more than one write; without it Nagle's algorithm
    // and delayed ACKs add 40 ms to every response larger than one segment.
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    let slow = std::time::Duration::from_secs(config.settings.header_read_timeout_secs.max(1));
    let mut server = axum_server::from_tcp(listener)
        .acceptor(
            axum_server::tls_rustls::RustlsAcceptor::new(tls)
                .handshake_timeout(slow)
                .acceptor(crate::conn::BoundedAcceptor::new(connection_bound(config.settings.max_connections))),
        )
        .handle(handle.clone());
    server.http_builder().http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(slow);
    let task = tokio::spawn(async move {
        let served = server.serve(router.into_make_service()).await;
        // The follower of other servers holds a committer handle too.
        if let Some(f) = follower {
            f.abort();
            let _ = f.await;
        }
        // The leader's work stops and its lease is revoked: another server takes over at once.
        #[cfg(feature = "etcd")]
        if let Some(l) = leading {
            l.stop().await;
        }
        // The router (and with it the committer's last handle) is gone: wait for the committer
        // to finish what was queued and release the store.
        tokio::task::spawn_blocking(move || commit_thread.join()).await.ok();
        served
    });
    Ok(RunningServer { addr, credentials, metrics, handle, task })
}
