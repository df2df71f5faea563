//! The server: TCP accept, TLS, the WebSocket upgrade with its checks, and
//! one driver task per connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asp_driver::{
    run_connection, AuthHook, BoxTransport, Connection, DriverConfig, OsEntropy, ResumeRegistry, Resumption, Tool,
    ToolRegistry,
};
use asp_proto::{ErrorCode, HelloInfo, Session, SessionConfig, ToolSpec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{self, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::Instrument;

use crate::{TokioRuntime, DEFAULT_PATH, SUBPROTOCOL};

/// Configures and binds a [`Server`].
pub struct ServerBuilder {
    addr: SocketAddr,
    path: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    plaintext: bool,
    origins: Option<Vec<String>>,
    auth: Option<AuthHook>,
    session: SessionConfig,
    tools: ToolRegistry,
}

impl ServerBuilder {
    /// A server on `addr`, path `/v1/agent-socket`, default limits, no tools.
    /// It needs TLS ([`tls`](Self::tls)) unless
    /// [`allow_plaintext`](Self::allow_plaintext) is set.
    pub fn new(addr: SocketAddr) -> Self {
        ServerBuilder {
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
    pub async fn bind(self) -> std::io::Result<Server> {
        if self.tls.is_none() && !self.plaintext {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a server needs TLS; plain ws:// must be enabled with allow_plaintext()",
            ));
        }
        let listener = TcpListener::bind(self.addr).await?;
        let local_addr = listener.local_addr()?;
        let session = self.session;
        Ok(Server {
            listener,
            local_addr,
            inner: Arc::new(Inner {
                path: self.path,
                tls: self.tls,
                origins: self.origins,
                driver: DriverConfig { session, tools: self.tools, auth: self.auth },
                connections: Mutex::new(Vec::new()),
                resume: ResumeRegistry::new(),
            }),
        })
    }
}

struct Inner {
    path: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    origins: Option<Vec<String>>,
    driver: DriverConfig,
    connections: Mutex<Vec<Connection>>,
    /// Resumable sessions by key, so a reconnecting client gets its own back.
    resume: ResumeRegistry<BoxTransport>,
}

/// A bound server; [`spawn`](Self::spawn) it to accept connections.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        let scheme = if self.inner.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.local_addr, self.inner.path)
    }

    /// The server's tools: add and remove them while clients are connected.
    pub fn tools(&self) -> ToolRegistry {
        self.inner.driver.tools.clone()
    }

    /// Accepts connections in the background.
    pub fn spawn(self) -> ServerHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let url = self.url();
        let inner = self.inner.clone();
        let task = tokio::spawn(accept_loop(self.listener, self.inner, stop_rx));
        ServerHandle { local_addr: self.local_addr, url, inner, stop: stop_tx, task }
    }
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    url: String,
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
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
        let _ = self.task.await;
    }

    /// Graceful shutdown: stop accepting, GOAWAY to every connection, wait
    /// up to `drain` for their invocations, then close what is left.
    pub async fn shutdown(self, drain: Duration) {
        let _ = self.stop.send(true);
        let connections = self.connections();
        for c in &connections {
            let _ = c.goaway(Some(drain));
        }
        let deadline = Instant::now() + drain + Duration::from_secs(1);
        for c in &connections {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(remaining, c.closed()).await.is_err() {
                let _ = c.close(ErrorCode::GOING_AWAY, "server shutting down");
            }
        }
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let inner = inner.clone();
                    let span = tracing::info_span!("asp_connection", %peer, cid = tracing::field::Empty);
                    tokio::spawn(serve(tcp, inner).instrument(span));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

async fn serve(tcp: TcpStream, inner: Arc<Inner>) {
    let _ = tcp.set_nodelay(true);
    match inner.tls.clone() {
        Some(tls) => match tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await {
            Ok(stream) => upgrade(stream, inner).await,
            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
        },
        None => upgrade(tcp, inner).await,
    }
}

/// Why an upgrade request is refused, as an HTTP response.
#[allow(clippy::result_large_err)]
fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = http::Response::new(Some(why.to_owned()));
    *response.status_mut() = status;
    response
}

async fn upgrade<S>(stream: S, inner: Arc<Inner>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut token = None;
    // The error type is tungstenite's `Callback` contract, not our choice.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() != inner.path {
            return Err(refuse(StatusCode::NOT_FOUND, "no Agent Socket endpoint at this path"));
        }
        if let (Some(allowed), Some(origin)) = (&inner.origins, request.headers().get(http::header::ORIGIN)) {
            let origin = origin.to_str().unwrap_or_default();
            if !allowed.iter().any(|a| a == origin) {
                return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
            }
        }
        let offered = request
            .headers()
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == SUBPROTOCOL);
        if !offered {
            return Err(refuse(StatusCode::BAD_REQUEST, "the asp-v1 WebSocket subprotocol is required"));
        }
        response.headers_mut().insert(http::header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
        token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        Ok(response)
    };
    let ws_config = websocket_config(&inner.driver.session);
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config)).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade refused");
            return;
        }
    };
    let mut config = inner.driver.clone();
    config.session.tools = config.tools.specs();
    let mut session = Session::server(config.session.clone(), Instant::now(), Box::new(OsEntropy));
    session.set_transport_token(token);
    let transport: BoxTransport = Box::new(ws);
    let resumption = Resumption::Server(inner.resume.clone());
    let (conn, driver) = run_connection(TokioRuntime, transport, session, config, None, resumption);
    {
        let mut list = inner.connections.lock().expect("lock");
        list.retain(|c| !c.is_closed());
        list.push(conn);
    }
    driver.await;
}

/// WebSocket limits that fit the session's: a message holds whole frames,
/// coalesced, so allow a few maximal frames per message.
pub(crate) fn websocket_config(session: &SessionConfig) -> WebSocketConfig {
    let max_frame = session.max_frame_payload as usize + asp_proto::FrameHeader::LEN;
    WebSocketConfig::default()
        .max_message_size(Some((max_frame * 4).max(16 << 20)))
        .max_frame_size(Some((max_frame * 4).max(16 << 20)))
}
