//! The client: connect over `wss://`, handshake, then a [`Connection`].

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use asp_driver::{run_connection, Connection, DriverConfig, Resumption, Tool, ToolRegistry};
use asp_proto::aid::{AidError, AidErrorCode};
use asp_proto::{CloseReason, Session, SessionConfig, ToolSpec};
use futures::channel::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::Connector;
use tracing::Instrument;

use crate::discovery::Discovery;
use crate::server::websocket_config;
use crate::{TokioRuntime, SUBPROTOCOL};

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not usable.
    #[error("invalid URL: {0}")]
    Url(String),
    /// TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] std::io::Error),
    /// TCP, TLS or the WebSocket upgrade failed.
    #[error("connection failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server did not select the `asp-v1` subprotocol.
    #[error("the server did not accept the asp-v1 subprotocol")]
    Subprotocol,
    /// The server refused the session (authentication, version, …).
    #[error("refused: {} {}", .0.code, .0.message)]
    Rejected(CloseReason),
    /// Discovery found no usable agent for the domain.
    #[error("discovery: {0}")]
    Discovery(#[from] AidError),
}

/// Configures a [`Client`].
pub struct ClientBuilder {
    url: String,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    plaintext: bool,
    session: SessionConfig,
    tools: ToolRegistry,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("custom_tls", &self.tls.is_some())
            .field("plaintext", &self.plaintext)
            .field("tools", &self.tools)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// A client for `url` (`wss://…`).
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            token: None,
            tls: None,
            plaintext: false,
            session: SessionConfig::default(),
            tools: ToolRegistry::new(),
        }
    }

    /// A bearer token, sent in the upgrade's `Authorization` header.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A rustls configuration (custom roots, client certificates…).
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Trust this CA (PEM) in addition to the webpki roots.
    pub fn trust_pem(self, ca_pem: &[u8]) -> std::io::Result<Self> {
        Ok(self.tls(crate::tls::client_config(Some(ca_pem))?))
    }

    /// Allow a plain `ws://` URL: for loopback and tests only.
    pub fn allow_plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// Session limits and timers.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.session = config;
        self
    }

    /// Offers a tool the server may invoke.
    pub fn tool(self, spec: ToolSpec, handler: impl Tool) -> Self {
        self.tools.add(spec, handler);
        self
    }

    /// A client for the agent `domain` announces with AID: its record must
    /// say `p=websocket` with a `wss://` URI (a `ws://` one is refused as
    /// `ERR_SECURITY`). Configure trust and tokens on the result, then
    /// [`connect`](Self::connect).
    pub async fn for_domain(domain: &str, discovery: &Discovery) -> Result<ClientBuilder, ConnectError> {
        let found = discovery.discover(domain, Some("websocket")).await?;
        if found.record.proto != "websocket" {
            let why =
                format!("{} announces `{}`, not an Agent Socket (websocket) endpoint", found.name, found.record.proto);
            return Err(AidError::new(AidErrorCode::UnsupportedProto, why).into());
        }
        Ok(ClientBuilder::new(found.record.uri))
    }

    /// Connects, upgrades with `asp-v1`, and completes the ASP handshake.
    /// If the transport drops later, the client reconnects by itself and
    /// resumes the session (unless resume is off in the session config).
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let request = self.url.as_str().into_client_request()?;
        match request.uri().scheme_str() {
            Some("wss") => {}
            Some("ws") if self.plaintext => {}
            Some("ws") => return Err(ConnectError::Url("ws:// needs allow_plaintext(); use wss://".into())),
            _ => return Err(ConnectError::Url(format!("{}: not a wss:// URL", self.url))),
        }
        let tls = match self.tls {
            Some(tls) => tls,
            None => crate::tls::client_config(None)?,
        };
        let dialer =
            Dialer { url: self.url.clone(), token: self.token, tls, ws_config: websocket_config(&self.session) };
        let ws = dialer.dial().await?;
        let mut session_config = self.session;
        session_config.tools = self.tools.specs();
        let session = Session::client(session_config.clone(), Instant::now());
        let (ready_tx, ready) = oneshot::channel();
        let config = DriverConfig { session: session_config, tools: self.tools, auth: None };
        let reconnect = Resumption::Client(Box::new(move || {
            let dialer = dialer.clone();
            Box::pin(async move { dialer.dial().await.map_err(|e| e.to_string()) })
        }));
        let (conn, driver) = run_connection(TokioRuntime, ws, session, config, Some(ready_tx), reconnect);
        let span = tracing::info_span!("asp_client", url = %self.url, cid = tracing::field::Empty);
        tokio::spawn(driver.instrument(span));
        match ready.await {
            Ok(Ok(())) => Ok(Client { conn }),
            Ok(Err(reason)) => Err(ConnectError::Rejected(reason)),
            Err(_) => Err(ConnectError::Rejected(conn.closed().await)),
        }
    }
}

/// Everything needed to open a transport to the server again.
#[derive(Clone)]
struct Dialer {
    url: String,
    token: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    ws_config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
}

type ClientTransport = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Dialer {
    /// TCP, TLS, and the WebSocket upgrade offering `asp-v1`.
    async fn dial(&self) -> Result<ClientTransport, ConnectError> {
        let mut request = self.url.as_str().into_client_request()?;
        let headers = request.headers_mut();
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
        if let Some(token) = &self.token {
            let value =
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| ConnectError::Url(e.to_string()))?;
            headers.insert(header::AUTHORIZATION, value);
        }
        let connector = Some(Connector::Rustls(self.tls.clone()));
        let (ws, response) =
            tokio_tungstenite::connect_async_tls_with_config(request, Some(self.ws_config), true, connector).await?;
        let selected = response.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
        if selected != Some(SUBPROTOCOL) {
            return Err(ConnectError::Subprotocol);
        }
        Ok(ws)
    }
}

/// A connected client: a [`Connection`] to the server.
#[derive(Clone, Debug)]
pub struct Client {
    conn: Connection,
}

impl Client {
    /// Discovers the agent at `domain` with the system's resolver and
    /// connects to it, trusting the webpki roots.
    pub async fn connect_domain(domain: &str) -> Result<Client, ConnectError> {
        let discovery = Discovery::system()?;
        ClientBuilder::for_domain(domain, &discovery).await?.connect().await
    }
}

impl Deref for Client {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}
