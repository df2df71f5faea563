//! The client: connect over `wss://`, handshake, then a [`Connection`] —
//! written once for every [`Network`].

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "discovery")]
use asp_proto::aid::{AidError, AidErrorCode};
use asp_proto::{Session, SessionConfig, ToolSpec};
use futures::channel::oneshot;
use tracing::Instrument;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;

#[cfg(feature = "discovery")]
use crate::discovery::{Discovery, DnsRuntime};
use crate::driver::{run_connection, DriverConfig};
use crate::error::ConnectError;
use crate::net::{dial_websocket, websocket_config, Network, DEFAULT_CONNECT_TIMEOUT};
use crate::resume::Resumption;
use crate::{BoxTransport, Connection, Tool, ToolRegistry};

/// Configures a [`Client`] on the network `N` (an adapter's runtime type;
/// the adapters name this type for their runtime: `asp_tokio::ClientBuilder`).
/// A client reconnects and resumes by itself when its transport drops.
///
/// ```no_run
/// # use asp_driver::{ClientBuilder, Network};
/// # use asp_proto::Value;
/// # use futures::StreamExt;
/// # async fn run<N: Network>() -> Result<(), Box<dyn std::error::Error>> {
/// let client = ClientBuilder::<N>::new("wss://agent.example/v1/agent-socket")
///     .token("s3cret")
///     .connect_timeout(std::time::Duration::from_secs(5))
///     .connect()
///     .await?;
/// let mut call = client.invoke("tokens", Value::from(5)).await?;
/// while let Some(chunk) = call.next().await {
///     print!("{}", String::from_utf8_lossy(&chunk)); // credit goes back as you read
/// }
/// println!("{}", call.result().await?.result);
/// # Ok(())
/// # }
/// ```
pub struct ClientBuilder<N> {
    net: N,
    url: String,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    plaintext: bool,
    session: SessionConfig,
    tools: ToolRegistry,
    connect_timeout: Duration,
    pka: Option<crate::PkaRequirement>,
}

impl<N> std::fmt::Debug for ClientBuilder<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("custom_tls", &self.tls.is_some())
            .field("plaintext", &self.plaintext)
            .field("tools", &self.tools)
            .field("pka", &self.pka)
            .finish_non_exhaustive()
    }
}

impl<N: Network> ClientBuilder<N> {
    /// A client for `url` (`wss://…`).
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            net: N::default(),
            url: url.into(),
            token: None,
            tls: None,
            plaintext: false,
            session: SessionConfig::default(),
            tools: ToolRegistry::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pka: None,
        }
    }

    /// Runs on another runtime of the same adapter (asp-async-std: smol
    /// instead of async-std).
    pub fn runtime<M: Network>(self, net: M) -> ClientBuilder<M> {
        ClientBuilder {
            net,
            url: self.url,
            token: self.token,
            tls: self.tls,
            plaintext: self.plaintext,
            session: self.session,
            tools: self.tools,
            connect_timeout: self.connect_timeout,
            pka: self.pka,
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

    /// How long TCP, TLS and the WebSocket upgrade may take together, on the
    /// first connect and on each reconnect attempt (default 10 s). Past it
    /// the attempt fails with [`ConnectError::Timeout`] naming the stage.
    /// The ASP handshake after the upgrade has its own limit,
    /// [`SessionConfig::handshake_timeout`] (default 10 s).
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
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
    /// [`connect`](Self::connect). (Feature `discovery`.)
    #[cfg(feature = "discovery")]
    pub async fn for_domain(domain: &str, discovery: &Discovery<N>) -> Result<ClientBuilder<N>, ConnectError>
    where
        N: DnsRuntime,
    {
        let found = discovery.discover(domain, Some("websocket")).await?;
        if found.record.proto != "websocket" {
            let why =
                format!("{} announces `{}`, not an Agent Socket (websocket) endpoint", found.name, found.record.proto);
            return Err(AidError::new(AidErrorCode::UnsupportedProto, why).into());
        }
        let pka = asp_proto::aid::pka::EndpointKey::from_record(&found.record)?;
        let builder = ClientBuilder::new(found.record.uri);
        Ok(match pka {
            // Bound to the name as queried: the A-label form of an IDN.
            Some(key) => builder.pka(crate::PkaRequirement::new(key).bound_to(crate::discovery::normalize(domain)?)),
            None => builder,
        })
    }

    /// Require the server to prove an AID PKA key in its upgrade response
    /// (SPEC.md §16.1), checked before HELLO on every connect and
    /// reconnect; a missing or wrong proof fails with
    /// [`ConnectError::Pka`]. [`for_domain`](Self::for_domain) sets this
    /// from the record when it publishes a key.
    pub fn pka(mut self, requirement: crate::PkaRequirement) -> Self {
        self.pka = Some(requirement);
        self
    }

    /// Connects, upgrades with `asp-v1`, and completes the ASP handshake.
    /// If the transport drops later, the client reconnects by itself and
    /// resumes the session (unless resume is off in the session config).
    pub async fn connect(mut self) -> Result<Client<N>, ConnectError> {
        let request = self.url.as_str().into_client_request()?;
        match request.uri().scheme_str() {
            Some("wss") => {}
            Some("ws") if self.plaintext => {}
            Some("ws") => return Err(ConnectError::Url("ws:// needs allow_plaintext(); use wss://".into())),
            _ => return Err(ConnectError::Url(format!("{}: not a wss:// URL", self.url))),
        }
        let tls = match self.tls.take() {
            Some(tls) => tls,
            None => crate::tls::client_config(None).map_err(ConnectError::TlsConfig)?,
        };
        let dialer = Dialer {
            net: self.net.clone(),
            url: self.url.clone(),
            token: self.token.clone(),
            tls,
            ws_config: websocket_config(&self.session),
            timeout: self.connect_timeout,
            pka: self.pka.clone(),
        };
        let ws = dialer.dial().await?;
        let reconnect = Resumption::Client(Box::new(move || {
            let dialer = dialer.clone();
            Box::pin(async move { dialer.dial().await.map_err(|e| e.to_string()) })
        }));
        let span = tracing::info_span!("asp_client", url = %self.url, cid = tracing::field::Empty);
        self.start(ws, reconnect, span).await
    }

    /// Connects over a transport the application opened itself (a
    /// WebSocket it upgraded with the `asp-v1` subprotocol). The builder's
    /// URL and TLS settings are not used; its token goes in HELLO. A lost
    /// transport ends the session (there is nothing to reconnect to).
    pub async fn connect_transport(mut self, transport: impl crate::Transport) -> Result<Client<N>, ConnectError> {
        if self.session.token.is_none() {
            self.session.token = self.token.take();
        }
        let span = tracing::info_span!("asp_client", url = "transport", cid = tracing::field::Empty);
        self.start(Box::new(transport), Resumption::Off, span).await
    }

    /// Connects over a byte stream (SPEC.md §2): a child process's stdio, a
    /// Unix socket. See [`connect_transport`](Self::connect_transport);
    /// `asp_tokio::child_stdio` joins a Tokio child's pipes into one stream.
    pub async fn connect_stream<S>(self, io: S) -> Result<Client<N>, ConnectError>
    where
        S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    {
        self.connect_transport(crate::ByteStream::new(io)).await
    }

    async fn start(
        self,
        transport: BoxTransport,
        resumption: Resumption<BoxTransport>,
        span: tracing::Span,
    ) -> Result<Client<N>, ConnectError> {
        let mut session_config = self.session;
        session_config.tools = self.tools.tool_set();
        if matches!(resumption, Resumption::Off) {
            session_config.resume = false;
        }
        let session = Session::client(session_config.clone(), Instant::now());
        let (ready_tx, ready) = oneshot::channel();
        let config = DriverConfig { session: session_config, tools: self.tools, auth: None };
        let (conn, driver) = run_connection(self.net.clone(), transport, session, config, Some(ready_tx), resumption);
        self.net.spawn(Box::pin(driver.instrument(span)));
        match ready.await {
            Ok(Ok(())) => Ok(Client { conn, net: PhantomData }),
            Ok(Err(reason)) => Err(ConnectError::Rejected(reason)),
            Err(_) => Err(ConnectError::Rejected(conn.closed().await)),
        }
    }
}

/// Everything needed to open a transport to the server again.
#[derive(Clone)]
struct Dialer<N> {
    net: N,
    url: String,
    token: Option<String>,
    tls: Arc<rustls::ClientConfig>,
    ws_config: WebSocketConfig,
    timeout: Duration,
    pka: Option<crate::PkaRequirement>,
}

impl<N: Network> Dialer<N> {
    async fn dial(&self) -> Result<BoxTransport, ConnectError> {
        dial_websocket(
            &self.net,
            &self.url,
            self.token.as_deref(),
            self.tls.clone(),
            self.ws_config,
            self.timeout,
            self.pka.as_ref(),
        )
        .await
        .map(|(transport, _proof)| transport)
    }
}

/// A connected client: a [`Connection`] to the server.
pub struct Client<N> {
    conn: Connection,
    net: PhantomData<fn() -> N>,
}

impl<N> Clone for Client<N> {
    fn clone(&self) -> Self {
        Client { conn: self.conn.clone(), net: PhantomData }
    }
}

impl<N> std::fmt::Debug for Client<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Client").field(&self.conn).finish()
    }
}

#[cfg(feature = "discovery")]
impl<N: DnsRuntime> Client<N> {
    /// Discovers the agent at `domain` with the system's resolver and
    /// connects to it, trusting the webpki roots.
    pub async fn connect_domain(domain: &str) -> Result<Client<N>, ConnectError> {
        let discovery = Discovery::system()?;
        ClientBuilder::for_domain(domain, &discovery).await?.connect().await
    }
}

impl<N> Deref for Client<N> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}
