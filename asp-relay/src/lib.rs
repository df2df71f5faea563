//! Agent Socket (ASP/1) relay mode (SPEC.md §15): hold client sessions over
//! `wss://` and run their tools by calling a serverless function over HTTP.
//!
//! An agent deployed as an HTTP function (Lambda, Workers, Cloud Run) cannot
//! keep a WebSocket open. The relay keeps it instead: clients speak ordinary
//! ASP/1 to it and get their HELLO answered at once (no cold start on
//! connect); each INVOKE becomes `POST {function}/invoke`, whose response
//! body streams back as STREAM frames and whose end is the COMPLETE. The
//! function can keep per-connection state in the relay (`X-Asp-State`) and
//! reach a client after its call ended through the management API.
//!
//! The protocol work is [`asp_relay_proto::Relay`], a Sans-IO core; this
//! crate moves its bytes on Tokio:
//!
//! - one task owns the core and nothing else touches it;
//! - one task per client WebSocket (TLS and the upgrade checks are
//!   `asp-driver`'s, shared with every ASP server);
//! - one task per function call (reqwest, with its keep-alive pool), which
//!   reads the body only as fast as the core returns credit, so a slow client
//!   slows the function instead of filling the relay;
//! - a hyper server for the management API.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use asp_relay::RelayBuilder;
//! # let (cert_pem, key_pem) = (Vec::new(), Vec::new());
//! let relay = RelayBuilder::new("0.0.0.0:8443".parse().unwrap(), "https://fn.example.com/agent")
//!     .tls_pem(&cert_pem, &key_pem)?
//!     .management("127.0.0.1:8444".parse().unwrap(), "a long shared secret")
//!     .bind()
//!     .await?
//!     .spawn();
//! println!("clients connect to {}", relay.url());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod client;
mod cluster;
mod core_task;
mod function;
mod management;
mod messages;
mod shards;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use asp_driver::{Listener, Network, OsEntropy};
use asp_proto::Entropy;
use asp_relay_proto::{Relay, RelayStats};
use asp_tokio::TokioRuntime;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use asp_proto as proto;
pub use asp_relay_proto as relay_proto;
pub use asp_relay_proto::{BodyEncoding, RelayConfig};
pub use cluster::{ClusterStore, RedisStore, StoreError};

use core_task::CoreTask;
use function::FunctionClient;
use messages::Input;
use shards::Shards;

/// Configures a relay: where clients connect, which function it calls, the
/// management API, and the limits of [`RelayConfig`].
pub struct RelayBuilder {
    listen: SocketAddr,
    function: String,
    listener: Listener,
    management: Option<ManagementBind>,
    function_ca: Option<Vec<u8>>,
    config: RelayConfig,
    cluster: Option<ClusterBind>,
    shards: usize,
    metrics: Option<MetricsRender>,
}

/// Renders the process's metrics (Prometheus text) for `GET /metrics`.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

enum ManagementBind {
    Addr(SocketAddr),
    Listener(std::net::TcpListener),
}

enum ClusterBind {
    Url(String),
    Store(Arc<dyn ClusterStore>),
}

impl RelayBuilder {
    /// A relay for clients on `listen` that calls the function at
    /// `function` (a base URL: the relay posts to `{function}/invoke`).
    pub fn new(listen: SocketAddr, function: impl Into<String>) -> Self {
        RelayBuilder {
            listen,
            function: function.into().trim_end_matches('/').to_owned(),
            listener: Listener::new(),
            management: None,
            function_ca: None,
            config: RelayConfig::default(),
            cluster: None,
            shards: default_shards(),
            metrics: None,
        }
    }

    /// How client connections are accepted: path, TLS, `Origin`s, upgrade
    /// timeout (the setters below change one of these each).
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listener = listener;
        self
    }

    /// Serve `wss://` with this certificate chain and key (PEM).
    pub fn tls_pem(self, cert_pem: &[u8], key_pem: &[u8]) -> io::Result<Self> {
        let listener = self.listener.clone().tls_pem(cert_pem, key_pem)?;
        Ok(self.listener(listener))
    }

    /// Prove this AID PKA key in upgrade responses to clients that ask
    /// (SPEC.md §16.1; asp-driver's `Listener::pka_key`).
    pub fn pka_key(self, signer: asp_driver::proto::aid::pka::Signer) -> Self {
        let listener = self.listener.clone().pka_key(signer);
        self.listener(listener)
    }

    /// Serve `wss://` with a rustls configuration.
    pub fn tls(self, config: Arc<rustls::ServerConfig>) -> Self {
        let listener = self.listener.clone().tls(config);
        self.listener(listener)
    }

    /// Serve plain `ws://` (tests, or behind a TLS-terminating proxy).
    pub fn allow_plaintext(self) -> Self {
        let listener = self.listener.clone().allow_plaintext();
        self.listener(listener)
    }

    /// The upgrade path (default `/v1/agent-socket`).
    pub fn path(self, path: impl Into<String>) -> Self {
        let listener = self.listener.clone().path(path);
        self.listener(listener)
    }

    /// Client transports at once still before their ASP handshake; one
    /// more is closed when accepted (default 1024).
    pub fn max_pending(self, max: usize) -> Self {
        let listener = self.listener.clone().max_pending(max);
        self.listener(listener)
    }

    /// Accept upgrades only from these `Origin`s (browsers).
    pub fn allowed_origins(self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let listener = self.listener.clone().allowed_origins(origins);
        self.listener(listener)
    }

    /// Serve the management API on `addr` (plain HTTP: bind it to a private
    /// interface), authenticated with `secret`.
    pub fn management(mut self, addr: SocketAddr, secret: impl Into<String>) -> Self {
        self.management = Some(ManagementBind::Addr(addr));
        self.config.management_secret = Some(secret.into());
        self
    }

    /// Serve the management API on a listener bound already (so a function
    /// can be told its address before the relay starts).
    pub fn management_listener(mut self, listener: std::net::TcpListener, secret: impl Into<String>) -> Self {
        self.management = Some(ManagementBind::Listener(listener));
        self.config.management_secret = Some(secret.into());
        self
    }

    /// Also trust this CA (PEM) for an `https://` function.
    pub fn function_ca_pem(mut self, pem: &[u8]) -> Self {
        self.function_ca = Some(pem.to_vec());
        self
    }

    /// Run as one node of a cluster whose shared store is the Redis server
    /// at `url` (`redis://HOST:PORT[/DB]`, SPEC.md §15.4): the management
    /// API of any node reaches every connection of the cluster.
    /// [`bind`](Self::bind) fails when the store cannot be reached.
    pub fn cluster(mut self, url: impl Into<String>) -> Self {
        self.cluster = Some(ClusterBind::Url(url.into()));
        self
    }

    /// Run as one node of a cluster on another [`ClusterStore`].
    pub fn cluster_store(mut self, store: Arc<dyn ClusterStore>) -> Self {
        self.cluster = Some(ClusterBind::Store(store));
        self
    }

    /// Serve `GET /metrics` on the management listener (no secret, like the
    /// probes) with what `render` returns: the binary installs a Prometheus
    /// recorder and passes its `render`. The relay counts its function
    /// calls, responses by status, failures by class and transports opened
    /// through the `metrics` facade whether or not this is set.
    pub fn metrics_endpoint(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(render));
        self
    }

    /// Core tasks (shards) the relay's sessions are split among, so its
    /// protocol work uses that many CPUs; default: one per CPU. The node's
    /// `max_connections` and `max_calls` ([`RelayConfig`]) are split evenly
    /// among them (each shard refuses past its share).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// Limits, timeouts, body encoding, tokens: see [`RelayConfig`]. The
    /// management secret set by [`management`](Self::management) is kept
    /// unless `config` brings its own.
    pub fn config(mut self, mut config: RelayConfig) -> Self {
        if config.management_secret.is_none() {
            config.management_secret = self.config.management_secret.take();
        }
        self.config = config;
        self
    }

    /// Binds the listeners (and connects to the cluster store).
    pub async fn bind(self) -> io::Result<RelayServer> {
        self.listener.check("a relay")?;
        if !(self.function.starts_with("http://") || self.function.starts_with("https://")) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the function URL must be http:// or https://, not {:?}", self.function),
            ));
        }
        let socket = TokioRuntime.bind(self.listen).await?;
        let local_addr = socket.local_addr()?;
        let management = match self.management {
            Some(ManagementBind::Addr(addr)) => Some(TcpListener::bind(addr).await?),
            Some(ManagementBind::Listener(listener)) => {
                listener.set_nonblocking(true)?;
                Some(TcpListener::from_std(listener)?)
            }
            None => None,
        };
        let management_addr = management.as_ref().map(TcpListener::local_addr).transpose()?;
        let http = FunctionClient::new(&self.function, self.function_ca.as_deref(), self.config.body_window)?;
        let cluster = match self.cluster {
            Some(ClusterBind::Url(url)) => {
                let store = RedisStore::connect(&url).await.map_err(|e| {
                    io::Error::new(io::ErrorKind::ConnectionRefused, format!("--cluster {url}: {}", e.0))
                })?;
                Some(Arc::new(store) as Arc<dyn ClusterStore>)
            }
            Some(ClusterBind::Store(store)) => Some(store),
            None => None,
        };
        Ok(RelayServer {
            socket: Arc::new(socket),
            local_addr,
            management,
            management_addr,
            listener: self.listener,
            http,
            config: self.config,
            cluster,
            shards: self.shards,
            metrics: self.metrics,
        })
    }
}

/// A bound relay; [`spawn`](Self::spawn) it to serve.
pub struct RelayServer {
    socket: Arc<TcpListener>,
    local_addr: SocketAddr,
    management: Option<TcpListener>,
    management_addr: Option<SocketAddr>,
    listener: Listener,
    http: FunctionClient,
    config: RelayConfig,
    cluster: Option<Arc<dyn ClusterStore>>,
    shards: usize,
    metrics: Option<MetricsRender>,
}

/// One shard per CPU.
fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl RelayServer {
    /// The client listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        self.listener.url(self.local_addr)
    }

    /// Starts serving on the current Tokio runtime.
    pub fn spawn(self) -> RelayHandle {
        let url = self.url();
        let ws_config = asp_driver::net::websocket_config(&self.config.session);
        let secret = self.config.management_secret.clone();
        let shard_count = self.shards;
        let mut config = self.config;
        // Shards find sessions, and a cluster shares them, by the cores'
        // directory announcements.
        config.directory = self.cluster.is_some() || shard_count > 1;
        config.snapshots = self.cluster.is_some();
        // The node's limits, split evenly among its shards.
        config.max_connections = config.max_connections.div_ceil(shard_count);
        config.max_calls = config.max_calls.div_ceil(shard_count);
        let cluster = self.cluster.map(|store| cluster::Cluster::new(node_id(), store, &config));
        let channels: Vec<_> = (0..shard_count).map(|_| mpsc::channel::<Input>(4096)).collect();
        let shards = Shards::new(channels.iter().map(|(tx, _)| tx.clone()).collect());
        let mut tasks = Vec::new();
        let announcements = config.directory.then(|| {
            let (announce, announced) = mpsc::unbounded_channel();
            let to_cluster = cluster.as_ref().map(|cluster| {
                let (to_cluster, changes) = mpsc::unbounded_channel();
                tasks.extend(cluster.start(changes, shards.clone()));
                to_cluster
            });
            tasks.push(tokio::spawn(shards::directory(shards.clone(), announced, to_cluster)));
            announce
        });
        for (shard, (tx, rx)) in channels.into_iter().enumerate() {
            let relay = Relay::new(config.clone(), || Box::new(OsEntropy) as Box<dyn Entropy>);
            let directory = announcements.clone().map(|announce| (shard, announce));
            tasks.push(tokio::spawn(CoreTask::new(relay, rx, tx, self.http.clone(), directory).run()));
        }
        let accept = tokio::spawn(client::accept_loop(self.listener, self.socket, ws_config, shards.clone()));
        let accept_handle = accept.abort_handle();
        tasks.push(accept);
        if let Some(listener) = self.management {
            let served =
                management::Served { shards: shards.clone(), secret, cluster: cluster.clone(), metrics: self.metrics };
            tasks.push(tokio::spawn(management::serve(listener, served)));
        }
        RelayHandle {
            url,
            local_addr: self.local_addr,
            management_addr: self.management_addr,
            node: cluster.map(|c| c.node().to_owned()),
            shards,
            tasks,
            accept: accept_handle,
        }
    }
}

/// A node id, random per process start: `n-` and 12 hex digits.
fn node_id() -> String {
    let mut bytes = [0u8; 6];
    OsEntropy.fill(&mut bytes);
    format!("n-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A running relay. Dropping the handle leaves it running; [`shutdown`](Self::shutdown) stops it.
pub struct RelayHandle {
    url: String,
    local_addr: SocketAddr,
    management_addr: Option<SocketAddr>,
    node: Option<String>,
    shards: Arc<Shards>,
    tasks: Vec<JoinHandle<()>>,
    accept: tokio::task::AbortHandle,
}

impl RelayHandle {
    /// The URL clients connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The client listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The management API's base URL (`http://…`), when it is served.
    pub fn management_url(&self) -> Option<String> {
        self.management_addr.map(|a| format!("http://{a}"))
    }

    /// This node's id in its cluster, when it is one.
    pub fn node_id(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Counters from the cores, summed.
    pub async fn stats(&self) -> RelayStats {
        self.shards.stats().await
    }

    /// Stops gracefully: accepts no more clients, sends every session
    /// GOAWAY with `drain` to finish its open invocations (their function
    /// calls run to their end), closes each as it is done, and returns when
    /// none is left (`true`) or `drain` and a second more have passed
    /// (`false`). Then [`shutdown`](Self::shutdown). On a cluster node the
    /// sessions end (they do not move to another node).
    pub async fn drain(&self, drain: std::time::Duration) -> bool {
        self.accept.abort();
        self.shards.drain(drain).await;
        let deadline = tokio::time::Instant::now() + drain + std::time::Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            // Sessions gone from the cores, and their transports' last
            // frames and closes written.
            if self.stats().await.connections == 0 && self.shards.transports() == 0 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }

    /// Stops accepting and drops every connection and call at once.
    pub fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1` (PEM chain, PEM
/// key): for demos and tests, never production.
pub fn self_signed_certificate() -> io::Result<(String, String)> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}
