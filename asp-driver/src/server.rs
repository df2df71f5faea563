//! The server: accept, TLS, the WebSocket upgrade with its checks, and one
//! driver task per connection — written once for every [`Network`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asp_proto::{ErrorCode, HelloInfo, Session, SessionConfig, ToolSpec};
use futures::channel::oneshot;
use futures::future::{select, AbortHandle, Abortable, Either};
use futures::FutureExt;
use tracing::Instrument;

use crate::net::{accept_websocket, websocket_config, Network, UpgradePolicy, DEFAULT_PATH};
use crate::{
    run_connection, AuthHook, BoxTransport, Connection, DriverConfig, OsEntropy, ResumeRegistry, Resumption, Tool,
    ToolRegistry,
};

/// Configures and binds a [`Server`] on the network `N` (an adapter's
/// runtime type; the adapters name this type for their runtime).
pub struct ServerBuilder<N> {
    net: N,
    addr: SocketAddr,
    path: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    plaintext: bool,
    origins: Option<Vec<String>>,
    auth: Option<AuthHook>,
    session: SessionConfig,
    tools: ToolRegistry,
}

impl<N: Network> ServerBuilder<N> {
    /// A server on `addr`, path `/v1/agent-socket`, default limits, no tools.
    /// It needs TLS ([`tls`](Self::tls)) unless
    /// [`allow_plaintext`](Self::allow_plaintext) is set.
    pub fn new(addr: SocketAddr) -> Self {
        ServerBuilder {
            net: N::default(),
            addr,
            path: DEFAULT_PATH.to_owned(),
            tls: None,
            plaintext: false,
            origins: None,
            auth: None,
            session: SessionConfig::default(),
            tools: ToolRegistry::new(),
        }
    }

    /// Runs on another runtime of the same adapter (asp-async-std: smol
    /// instead of async-std).
    pub fn runtime<M: Network>(self, net: M) -> ServerBuilder<M> {
        ServerBuilder {
            net,
            addr: self.addr,
            path: self.path,
            tls: self.tls,
            plaintext: self.plaintext,
            origins: self.origins,
            auth: self.auth,
            session: self.session,
            tools: self.tools,
        }
    }

    /// The upgrade path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Serve `wss://` with this rustls configuration.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Serve `wss://` with a PEM certificate chain and key.
    pub fn tls_pem(self, cert_pem: &[u8], key_pem: &[u8]) -> std::io::Result<Self> {
        Ok(self.tls(crate::tls::server_config_from_pem(cert_pem, key_pem)?))
    }

    /// Serve plain `ws://`: for loopback and tests only.
    pub fn allow_plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// Accept browser upgrades only from these `Origin`s (requests without
    /// an `Origin` header, i.e. not from browsers, are accepted).
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Decides who may connect, from the token (HELLO or `Authorization`)
    /// and the client's name and capabilities.
    pub fn auth(
        mut self,
        hook: impl Fn(&HelloInfo) -> Result<(), (ErrorCode, String)> + Send + Sync + 'static,
    ) -> Self {
        self.auth = Some(Arc::new(hook));
        self
    }

    /// Session limits and timers.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.session = config;
        self
    }

    /// Adds a tool.
    pub fn tool(self, spec: ToolSpec, handler: impl Tool) -> Self {
        self.tools.add(spec, handler);
        self
    }

    /// Binds the listener.
    pub async fn bind(self) -> std::io::Result<Server<N>> {
        if self.tls.is_none() && !self.plaintext {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a server needs TLS; plain ws:// must be enabled with allow_plaintext()",
            ));
        }
        let listener = self.net.bind(self.addr).await?;
        let local_addr = N::local_addr(&listener)?;
        let session = self.session;
        Ok(Server {
            net: self.net,
            listener: Arc::new(listener),
            local_addr,
            inner: Arc::new(Inner {
                policy: Arc::new(UpgradePolicy { path: self.path, origins: self.origins }),
                tls: self.tls,
                driver: DriverConfig { session, tools: self.tools, auth: self.auth },
                connections: Mutex::new(Vec::new()),
                resume: ResumeRegistry::new(),
            }),
        })
    }
}

struct Inner {
    policy: Arc<UpgradePolicy>,
    tls: Option<Arc<rustls::ServerConfig>>,
    driver: DriverConfig,
    connections: Mutex<Vec<Connection>>,
    /// Resumable sessions by key, so a reconnecting client gets its own back.
    resume: ResumeRegistry<BoxTransport>,
}

/// A bound server; [`spawn`](Self::spawn) it to accept connections.
pub struct Server<N: Network> {
    net: N,
    listener: Arc<N::Listener>,
    local_addr: SocketAddr,
    inner: Arc<Inner>,
}

impl<N: Network> Server<N> {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        let scheme = if self.inner.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.local_addr, self.inner.policy.path)
    }

    /// The server's tools: add and remove them while clients are connected.
    pub fn tools(&self) -> ToolRegistry {
        self.inner.driver.tools.clone()
    }

    /// Accepts connections in the background.
    pub fn spawn(self) -> ServerHandle<N> {
        let (stop, registration) = AbortHandle::new_pair();
        let (done_tx, done) = oneshot::channel();
        let url = self.url();
        let inner = self.inner.clone();
        let accepting = Abortable::new(accept_loop(self.net.clone(), self.listener, self.inner), registration);
        self.net.spawn(Box::pin(async move {
            let _ = accepting.await;
            let _ = done_tx.send(());
        }));
        ServerHandle { net: self.net, local_addr: self.local_addr, url, inner, stop, done }
    }
}

/// A running server.
pub struct ServerHandle<N> {
    net: N,
    local_addr: SocketAddr,
    url: String,
    inner: Arc<Inner>,
    stop: AbortHandle,
    /// Fires (or is dropped) when the accept loop has ended.
    done: oneshot::Receiver<()>,
}

impl<N: Network> ServerHandle<N> {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's tools.
    pub fn tools(&self) -> ToolRegistry {
        self.inner.driver.tools.clone()
    }

    /// Open connections.
    pub fn connections(&self) -> Vec<Connection> {
        let mut list = self.inner.connections.lock().expect("lock");
        list.retain(|c| !c.is_closed());
        list.clone()
    }

    /// Waits until the accept loop ends (after [`shutdown`](Self::shutdown)).
    pub async fn closed(self) {
        let _ = self.done.await;
    }

    /// Graceful shutdown: stop accepting, GOAWAY to every connection, wait
    /// up to `drain` for their invocations, then close what is left.
    pub async fn shutdown(self, drain: Duration) {
        self.stop.abort();
        let connections = self.connections();
        for c in &connections {
            let _ = c.goaway(Some(drain));
        }
        let deadline = Instant::now() + drain + Duration::from_secs(1);
        for c in &connections {
            let closed = c.closed().boxed();
            if let Either::Right(_) = select(closed, self.net.sleep_until(deadline)).await {
                let _ = c.close(ErrorCode::GOING_AWAY, "server shutting down");
            }
        }
        let _ = self.done.await;
    }
}

/// The server's WebSocket read buffer. tungstenite zero-fills its read
/// buffer up to this size on every read, so the default (128 KiB) would be
/// resident in every idle connection; the buffer still grows for large
/// messages when it must.
const SERVER_READ_BUFFER: usize = 4 * 1024;

async fn accept_loop<N: Network>(net: N, listener: Arc<N::Listener>, inner: Arc<Inner>) {
    loop {
        match net.accept(listener.clone()).await {
            Ok((tcp, peer)) => {
                let span = tracing::info_span!("asp_connection", %peer, cid = tracing::field::Empty);
                net.spawn(Box::pin(serve(net.clone(), tcp, inner.clone()).instrument(span)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                net.sleep_until(Instant::now() + Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve<N: Network>(net: N, tcp: N::Tcp, inner: Arc<Inner>) {
    let ws_config = websocket_config(&inner.driver.session).read_buffer_size(SERVER_READ_BUFFER);
    let (transport, token) = match accept_websocket(tcp, inner.tls.clone(), inner.policy.clone(), ws_config).await {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::debug!(error = %e, "connection refused before the session");
            return;
        }
    };
    let mut config = inner.driver.clone();
    config.session.tools = config.tools.specs();
    let mut session = Session::server(config.session.clone(), Instant::now(), Box::new(OsEntropy));
    session.set_transport_token(token);
    let resumption = Resumption::Server(inner.resume.clone());
    let (conn, driver) = run_connection(net.clone(), transport, session, config, None, resumption);
    {
        let mut list = inner.connections.lock().expect("lock");
        list.retain(|c| !c.is_closed());
        list.push(conn);
    }
    // A task of its own, so that the handshake's state (TLS acceptor, HTTP
    // upgrade: ~11 KB) is freed now instead of living as long as the
    // connection inside this future.
    net.spawn(Box::pin(driver.instrument(tracing::Span::current())));
}
