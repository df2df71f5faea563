//! The server: accept, TLS, the WebSocket upgrade with its checks, and one
//! driver task per connection — written once for every [`Network`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asp_proto::{ErrorCode, ErrorInfo, HelloInfo, Session, SessionConfig, ToolSpec};
use futures::channel::oneshot;
use futures::future::{select, AbortHandle, Abortable, Either};
use futures::FutureExt;

use crate::driver::{run_connection, DriverConfig};
use crate::listener::{HandshakeGate, Listener};
use crate::net::{websocket_config, Network};
use crate::resume::{ResumeRegistry, Resumption};
use crate::{AuthHook, BoxTransport, Connection, OsEntropy, Tool, ToolRegistry};

/// Configures and binds a [`Server`] on the network `N` (an adapter's
/// runtime type; the adapters name this type for their runtime:
/// `asp_tokio::ServerBuilder`).
///
/// ```no_run
/// # use asp_driver::{Network, ServerBuilder, ToolContext, ToolError};
/// # use asp_proto::{ToolSpec, Value};
/// # async fn run<N: Network>(cert_pem: &[u8], key_pem: &[u8]) -> std::io::Result<()> {
/// let server = ServerBuilder::<N>::new("0.0.0.0:9443".parse().unwrap())
///     .tls_pem(cert_pem, key_pem)? // or .allow_plaintext() behind a TLS proxy
///     .max_connections(10_000)
///     .tool(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok::<_, ToolError>(args) })
///     .bind()
///     .await?;
/// println!("serving {}", server.url());
/// let handle = server.spawn();
/// // … on SIGTERM:
/// handle.shutdown(std::time::Duration::from_secs(10)).await;
/// # Ok(())
/// # }
/// ```
pub struct ServerBuilder<N> {
    net: N,
    addr: SocketAddr,
    listener: Listener,
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
            listener: Listener::new(),
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
            listener: self.listener,
            auth: self.auth,
            session: self.session,
            tools: self.tools,
        }
    }

    /// How connections are accepted: path, TLS, `Origin`s, upgrade timeout
    /// (the setters below change one of these each).
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listener = listener;
        self
    }

    /// The upgrade path.
    pub fn path(self, path: impl Into<String>) -> Self {
        let listener = self.listener.clone().path(path);
        self.listener(listener)
    }

    /// Serve `wss://` with this rustls configuration.
    pub fn tls(self, config: Arc<rustls::ServerConfig>) -> Self {
        let listener = self.listener.clone().tls(config);
        self.listener(listener)
    }

    /// Serve `wss://` with a PEM certificate chain and key.
    pub fn tls_pem(self, cert_pem: &[u8], key_pem: &[u8]) -> std::io::Result<Self> {
        let listener = self.listener.clone().tls_pem(cert_pem, key_pem)?;
        Ok(self.listener(listener))
    }

    /// Prove this AID PKA key in upgrade responses to clients that ask
    /// ([`Listener::pka_key`]).
    pub fn pka_key(self, signer: asp_proto::aid::pka::Signer) -> Self {
        let listener = self.listener.clone().pka_key(signer);
        self.listener(listener)
    }

    /// Serve plain `ws://`: for loopback and tests only.
    pub fn allow_plaintext(self) -> Self {
        let listener = self.listener.clone().allow_plaintext();
        self.listener(listener)
    }

    /// Accept browser upgrades only from these `Origin`s (requests without
    /// an `Origin` header, i.e. not from browsers, are accepted).
    pub fn allowed_origins(self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let listener = self.listener.clone().allowed_origins(origins);
        self.listener(listener)
    }

    /// Connections open at once; one more is closed when accepted (default:
    /// the descriptor limit less a reserve).
    pub fn max_connections(self, max: usize) -> Self {
        let listener = self.listener.clone().max_connections(max);
        self.listener(listener)
    }

    /// Connections at once still before their ASP handshake; one more is
    /// closed when accepted (default 1024).
    pub fn max_pending(self, max: usize) -> Self {
        let listener = self.listener.clone().max_pending(max);
        self.listener(listener)
    }

    /// How long a new connection may take for TLS plus the WebSocket
    /// upgrade before it is dropped (default 10 s).
    pub fn upgrade_timeout(self, timeout: Duration) -> Self {
        let listener = self.listener.clone().upgrade_timeout(timeout);
        self.listener(listener)
    }

    /// Decides who may connect, from the token (HELLO or `Authorization`)
    /// and the client's name and capabilities; `Err` rejects the client
    /// with that error's code and message.
    pub fn auth(mut self, hook: impl Fn(&HelloInfo) -> Result<(), ErrorInfo> + Send + Sync + 'static) -> Self {
        self.auth = Some(crate::caller::sync_hook(hook));
        self
    }

    /// Decides who may connect and who they are, asynchronously (a token
    /// introspection, a JWKS fetch): `Ok(identity)` accepts the client and
    /// hands `identity` to every tool it invokes
    /// ([`ToolContext::caller`](crate::ToolContext::caller)`.identity::<I>()`);
    /// `Err` rejects it. The handshake waits for the verdict, within its
    /// timeout (SPEC.md §8: `HANDSHAKE_TIMEOUT` when the hook takes longer).
    ///
    /// ```no_run
    /// # use asp_driver::{ServerBuilder, ToolContext, ToolError};
    /// # use asp_proto::{ErrorCode, ErrorInfo, ToolSpec, Value};
    /// struct User { name: String }
    /// # fn build<N: asp_driver::Network>(builder: ServerBuilder<N>) -> ServerBuilder<N> {
    /// builder
    ///     .authenticate(|hello| async move {
    ///         match hello.token.as_deref() {
    ///             Some("s3cret") => Ok(User { name: "ada".into() }),
    ///             _ => Err(ErrorInfo::new(ErrorCode::UNAUTHENTICATED, "unknown token")),
    ///         }
    ///     })
    ///     .tool(ToolSpec::named("whoami"), |ctx: ToolContext, _args: Value| async move {
    ///         let user = ctx.caller().identity::<User>().map(|u| u.name.clone());
    ///         Ok::<_, ToolError>(Value::from(user.unwrap_or_default()))
    ///     })
    /// # }
    /// ```
    pub fn authenticate<F, Fut, I>(mut self, hook: F) -> Self
    where
        F: Fn(HelloInfo) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<I, ErrorInfo>> + Send + 'static,
        I: Send + Sync + 'static,
    {
        self.auth = Some(crate::caller::async_hook(hook));
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

    /// Adds a typed tool ([`typed::tool`](crate::typed::tool)): `handler`
    /// takes the arguments as a `T` (its JSON Schema is the tool's `input`,
    /// and arguments that break it are `INVALID_ARGUMENTS` naming the field
    /// before the handler runs) and returns any `Serialize` result.
    ///
    /// ```no_run
    /// # use asp_driver::{ServerBuilder, ToolContext, ToolError};
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Weather { city: String }
    /// # fn build<N: asp_driver::Network>(builder: ServerBuilder<N>) -> ServerBuilder<N> {
    /// builder.typed_tool("weather", "Today's weather", |_ctx: ToolContext, args: Weather| async move {
    ///     Ok::<_, ToolError>(format!("sunny in {}", args.city))
    /// })
    /// # }
    /// ```
    pub fn typed_tool<T, F, Fut, R, E>(self, name: &str, desc: &str, handler: F) -> Self
    where
        T: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static,
        F: Fn(crate::ToolContext, T) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<R, E>> + Send + 'static,
        R: serde::Serialize,
        E: Into<crate::ToolError>,
    {
        let (spec, tool) = crate::typed::tool(name, desc, handler);
        self.tool(spec, tool)
    }

    /// The server without a listener, for connections the application
    /// accepts itself ([`Service`]).
    pub fn into_service(self) -> Service<N> {
        Service {
            net: self.net,
            inner: Arc::new(Inner {
                listener: self.listener,
                driver: DriverConfig { session: self.session, tools: self.tools, auth: self.auth },
                connections: Mutex::new(Vec::new()),
                resume: ResumeRegistry::default(),
            }),
        }
    }

    /// Binds the listener.
    pub async fn bind(self) -> std::io::Result<Server<N>> {
        self.listener.check("a server")?;
        let socket = self.net.bind(self.addr).await?;
        self.with_listener(socket)
    }

    /// A server on a listener the application bound itself (an inherited
    /// socket, systemd socket activation, a port chosen elsewhere): the
    /// runtime's TCP listener (`tokio::net::TcpListener` for asp-tokio). The
    /// builder's address is not used.
    pub fn with_listener(self, socket: N::Listener) -> std::io::Result<Server<N>> {
        self.listener.check("a server")?;
        let local_addr = N::local_addr(&socket)?;
        let session = self.session;
        Ok(Server {
            net: self.net,
            socket: Arc::new(socket),
            local_addr,
            inner: Arc::new(Inner {
                listener: self.listener,
                driver: DriverConfig { session, tools: self.tools, auth: self.auth },
                connections: Mutex::new(Vec::new()),
                resume: ResumeRegistry::default(),
            }),
        })
    }
}

struct Inner {
    listener: Listener,
    driver: DriverConfig,
    connections: Mutex<Vec<Connection>>,
    /// Resumable sessions by key, so a reconnecting client gets its own back.
    resume: ResumeRegistry<BoxTransport>,
}

/// A server's tools, auth and sessions without a listener of its own:
/// connections the application accepted itself — a WebSocket upgraded on a
/// route of its web server (axum, hyper), a child process's stdio, a Unix
/// socket — are served here. From [`ServerBuilder::into_service`], or
/// [`ServerHandle::service`] to share a listening server's sessions
/// (resumption included) and tools.
///
/// ```no_run
/// # use asp_driver::{Network, ServerBuilder, ToolContext, ToolError};
/// # use asp_proto::{ToolSpec, Value};
/// # async fn run<N: Network>(stream: impl futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static) {
/// let service = ServerBuilder::<N>::new("127.0.0.1:0".parse().unwrap())
///     .tool(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok::<_, ToolError>(args) })
///     .into_service();
/// // e.g. a Unix socket the application accepted, or this process's stdio
/// service.serve_stream(stream).await; // until that connection ends
/// # }
/// ```
pub struct Service<N> {
    net: N,
    inner: Arc<Inner>,
}

impl<N: Clone> Clone for Service<N> {
    fn clone(&self) -> Self {
        Service { net: self.net.clone(), inner: self.inner.clone() }
    }
}

impl<N: Network> Service<N> {
    /// The AID PKA proof headers for an upgrade this application answers
    /// itself (`GET path_and_query` with the request's `headers`), to add
    /// to its `101` response; empty without [`ServerBuilder::pka_key`] or
    /// when the request asks no proof. The axum route of asp-tokio adds them.
    pub fn pka_headers(
        &self,
        path_and_query: &str,
        headers: &tungstenite::http::HeaderMap,
    ) -> Vec<(tungstenite::http::HeaderName, tungstenite::http::HeaderValue)> {
        match self.inner.listener.pka_signer() {
            Some(signer) => crate::pka::proof_headers(signer, path_and_query, headers),
            None => Vec::new(),
        }
    }

    /// Serves one WebSocket the application upgraded (with the `asp-v1`
    /// subprotocol, SPEC.md §2), until the connection ends. `token` is the
    /// upgrade request's `Authorization: Bearer` token, if any: the auth
    /// hook sees it when HELLO has none.
    pub async fn serve_transport(&self, transport: impl crate::Transport, token: Option<String>) {
        serve(self.net.clone(), Box::new(transport), token, None, self.inner.clone()).await
    }

    /// Serves one TCP connection the application accepted itself, as the
    /// server's own listener would: TLS when configured, the WebSocket
    /// upgrade with its checks (path, `asp-v1`, origins), then the session,
    /// until it ends. A connection that fails the upgrade is dropped (logged).
    pub async fn serve_connection<S>(&self, io: S)
    where
        S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    {
        let ws_config = crate::net::websocket_config(&self.inner.driver.session);
        match self.inner.listener.upgrade(&self.net, io, ws_config).await {
            Ok((transport, token)) => serve(self.net.clone(), transport, token, None, self.inner.clone()).await,
            Err(reason) => tracing::debug!(%reason, "connection refused before its session"),
        }
    }

    /// Serves one connection over a byte stream (SPEC.md §2: frames need no
    /// other framing), until it ends: stdin/stdout, a Unix socket, a pipe.
    /// A `futures-io` stream (Tokio's through `tokio_util::compat`).
    pub async fn serve_stream<S>(&self, io: S)
    where
        S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_transport(crate::ByteStream::new(io), None).await
    }

    /// The tools: add and remove them while clients are connected.
    pub fn tools(&self) -> ToolRegistry {
        self.inner.driver.tools.clone()
    }

    /// Open connections (of every way in).
    pub fn connections(&self) -> Vec<Connection> {
        let mut list = self.inner.connections.lock().expect("lock");
        list.retain(|c| !c.is_closed());
        list.clone()
    }
}

/// A bound server; [`spawn`](Self::spawn) it to accept connections.
pub struct Server<N: Network> {
    net: N,
    socket: Arc<N::Listener>,
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
        self.inner.listener.url(self.local_addr)
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
        let accepting = Abortable::new(accept_loop(self.net.clone(), self.socket, self.inner), registration);
        self.net.spawn(Box::pin(async move {
            let _ = accepting.await;
            let _ = done_tx.send(());
        }));
        ServerHandle { net: self.net, local_addr: self.local_addr, url, inner, stop, done }
    }
}

/// A running server: its tools (add and remove them live), its open
/// connections, and a graceful [`shutdown`](Self::shutdown).
///
/// ```no_run
/// # use asp_driver::{Network, ServerHandle, ToolContext, ToolError};
/// # use asp_proto::{ToolSpec, Value};
/// # async fn run<N: Network>(handle: ServerHandle<N>) {
/// // A tool that appears while clients are connected reaches all of them.
/// handle.tools().add(ToolSpec::named("report"), |_ctx: ToolContext, _args: Value| async move {
///     Ok::<_, ToolError>(Value::from("ready"))
/// });
/// println!("{} clients", handle.connections().len());
/// handle.shutdown(std::time::Duration::from_secs(5)).await; // GOAWAY, drain, close
/// # }
/// ```
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
        self.service().connections()
    }

    /// The same server for connections the application accepts itself
    /// (same tools, auth and resumable sessions).
    pub fn service(&self) -> Service<N> {
        Service { net: self.net.clone(), inner: self.inner.clone() }
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

async fn accept_loop<N: Network>(net: N, socket: Arc<N::Listener>, inner: Arc<Inner>) {
    let ws_config = websocket_config(&inner.driver.session);
    let listener = inner.listener.clone();
    let rt = net.clone();
    listener
        .accept_loop(net, socket, ws_config, move |transport, token, gate| {
            serve(rt.clone(), transport, token, Some(gate), inner.clone())
        })
        .await
}

/// One accepted connection: its session, set up now, and the future of the
/// task that drives it. Not an `async fn`, whose future would hold the
/// session config and the session itself beside the driver's own copy (a
/// few KB per idle connection): the future returned is the driver's alone.
fn serve<N: Network>(
    net: N,
    transport: BoxTransport,
    token: Option<String>,
    gate: Option<HandshakeGate>,
    inner: Arc<Inner>,
) -> crate::BoxFuture<()> {
    let mut config = inner.driver.clone();
    config.session.tools = config.tools.tool_set();
    let mut session = Session::server(config.session.clone(), net.now(), Box::new(OsEntropy));
    session.set_transport_token(token);
    let resumption = Resumption::Server(inner.resume.clone());
    let (conn, driver) = run_connection(net, transport, session, config, None, resumption);
    // The driver opens it when the handshake completes.
    conn.shared.lock().expect("lock").handshake_gate = gate;
    {
        let mut list = inner.connections.lock().expect("lock");
        list.retain(|c| !c.is_closed());
        list.push(conn);
    }
    driver
}
