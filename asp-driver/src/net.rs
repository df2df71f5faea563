//! What a runtime adapter supplies — TCP sockets, spawning, timers, a DNS
//! runtime — and everything above TCP, which is the same on every runtime:
//! TLS (rustls: futures-rustls for clients, [`TlsServerStream`](crate::tls::TlsServerStream)
//! for servers), the WebSocket upgrade (async-tungstenite) and the
//! checks ASP puts on it (SPEC.md §2).
//!
//! Keeping the line at TCP means the Tokio and the async-std/smol adapters
//! differ in about a hundred lines each, and a fix to the upgrade or to TLS
//! lands on both at once.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::channel::oneshot;
use futures::{AsyncRead, AsyncWrite};
use rustls_pki_types::ServerName;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{self, header, HeaderValue, StatusCode};
use tungstenite::protocol::WebSocketConfig;

use crate::error::ConnectError;
use crate::{BoxFuture, BoxTransport, Runtime};

/// The WebSocket subprotocol token of ASP/1.
pub const SUBPROTOCOL: &str = "asp-v1";

/// The default upgrade path.
pub const DEFAULT_PATH: &str = "/v1/agent-socket";

/// A runtime's sockets, on top of its [`Runtime`] (spawning and timers).
///
/// Streams are `futures-io` streams; a Tokio adapter wraps its own with
/// `tokio-util`'s compat layer. Implementations set `TCP_NODELAY` on every
/// stream: ASP writes whole frames and batches them itself.
pub trait Network: Runtime + Default {
    /// A connected TCP stream.
    type Tcp: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A bound TCP listener.
    type Listener: Send + Sync + 'static;

    /// Binds a listener.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<Self::Listener>>;
    /// The address a listener is bound to.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
    /// Accepts the next connection.
    fn accept(&self, listener: Arc<Self::Listener>) -> BoxFuture<io::Result<(Self::Tcp, SocketAddr)>>;
    /// Connects to `host` (a name the system resolves, or an address).
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<Self::Tcp>>;
}

/// The client's WebSocket read size. tungstenite zero-fills the part of its
/// read buffer it reads into, up to this size, on every read: its default,
/// 128 KiB, cost a 128 KiB memset per received message (4% of a round
/// trip's CPU in `perf record`). 16 KiB still takes a streamed burst in few
/// reads. Servers use [`SERVER_READ_BUFFER`](crate::SERVER_READ_BUFFER).
pub const CLIENT_READ_BUFFER: usize = 16 * 1024;

/// WebSocket limits that fit the session's: a message holds whole frames,
/// coalesced, so allow a few maximal frames per message.
pub fn websocket_config(session: &asp_proto::SessionConfig) -> WebSocketConfig {
    let max_frame = session.max_frame_payload as usize + asp_proto::FrameHeader::LEN;
    WebSocketConfig::default()
        .read_buffer_size(CLIENT_READ_BUFFER)
        .max_message_size(Some((max_frame * 4).max(16 << 20)))
        .max_frame_size(Some((max_frame * 4).max(16 << 20)))
}

/// Which upgrade requests a server accepts.
#[derive(Clone, Debug)]
pub(crate) struct UpgradePolicy {
    /// The only path served; others are 404.
    pub(crate) path: String,
    /// Allowed `Origin` values; `None` allows any (and requests without one).
    pub(crate) origins: Option<Vec<String>>,
    /// The AID PKA key that signs upgrade responses asking for a proof.
    pub(crate) pka: Option<Arc<asp_proto::aid::pka::Signer>>,
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = http::Response::new(Some(why.to_owned()));
    *response.status_mut() = status;
    response
}

impl UpgradePolicy {
    /// Checks one upgrade request: path (404), `Origin` (403), `asp-v1`
    /// offered (400). On success the response selects `asp-v1` and the
    /// bearer token of `Authorization`, if any, is returned beside it.
    #[allow(clippy::result_large_err)] // tungstenite's `Callback` contract
    fn check(&self, request: &Request, mut response: Response) -> Result<(Response, Option<String>), ErrorResponse> {
        if request.uri().path() != self.path {
            return Err(refuse(StatusCode::NOT_FOUND, "no Agent Socket endpoint at this path"));
        }
        if let (Some(allowed), Some(origin)) = (&self.origins, request.headers().get(header::ORIGIN)) {
            let origin = origin.to_str().unwrap_or_default();
            if !allowed.iter().any(|a| a == origin) {
                return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
            }
        }
        if !offers_subprotocol(request.headers()) {
            return Err(refuse(StatusCode::BAD_REQUEST, "the asp-v1 WebSocket subprotocol is required"));
        }
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
        if let Some(signer) = &self.pka {
            crate::pka::sign_upgrade(signer, request, &mut response);
        }
        Ok((response, bearer_token(request.headers())))
    }
}

/// Whether an upgrade request offers the `asp-v1` subprotocol (SPEC.md §2):
/// for an application that upgrades WebSockets itself.
pub fn offers_subprotocol(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// The token of an `Authorization: Bearer` header, which the auth hook sees
/// when HELLO carries none.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
}

/// Server side of one connection: TLS if configured, then the upgrade.
/// Returns the WebSocket and the upgrade's bearer token. Only
/// [`Listener`](crate::Listener) calls it, so every ASP endpoint checks the
/// same way.
pub(crate) async fn accept_websocket<S>(
    tcp: S,
    tls: Option<Arc<rustls::ServerConfig>>,
    policy: Arc<UpgradePolicy>,
    config: WebSocketConfig,
) -> Result<(BoxTransport, Option<String>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match tls {
        Some(tls) => {
            let stream = crate::tls::TlsServerStream::accept(tcp, tls).await.map_err(|e| format!("TLS: {e}"))?;
            upgrade(stream, policy, config).await
        }
        None => upgrade(tcp, policy, config).await,
    }
}

async fn upgrade<S>(
    stream: S,
    policy: Arc<UpgradePolicy>,
    config: WebSocketConfig,
) -> Result<(BoxTransport, Option<String>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (token_tx, mut token_rx) = oneshot::channel();
    #[allow(clippy::result_large_err)]
    let check = move |request: &Request, response: Response| {
        let (response, token) = policy.check(request, response)?;
        let _ = token_tx.send(token);
        Ok(response)
    };
    let ws = async_tungstenite::accept_hdr_async_with_config(stream, check, Some(config))
        .await
        .map_err(|e| format!("upgrade refused: {e}"))?;
    let token = token_rx.try_recv().ok().flatten().flatten();
    Ok((Box::new(ws), token))
}

/// Client side: TCP, TLS for `wss://`, and the upgrade offering `asp-v1`
/// with the bearer token; fails unless the server selects `asp-v1`.
/// How long a client waits for TCP, TLS and the upgrade together, unless
/// configured ([`ClientBuilder::connect_timeout`](crate::ClientBuilder::connect_timeout)).
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `work`, unless `deadline` passes first: then a [`ConnectError::Timeout`]
/// that says which stage (`what`) the server left unanswered.
async fn by<N: Network, T>(
    net: &N,
    deadline: std::time::Instant,
    limit: std::time::Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    use futures::FutureExt;
    futures::select_biased! {
        done = work.fuse() => done,
        () = net.sleep_until(deadline).fuse() => Err(ConnectError::Timeout(format!(
            "no answer within {} ms ({what})",
            limit.as_millis()
        ))),
    }
}

pub(crate) async fn dial_websocket<N: Network>(
    net: &N,
    url: &str,
    token: Option<&str>,
    tls: Arc<rustls::ClientConfig>,
    config: WebSocketConfig,
    limit: std::time::Duration,
    pka: Option<&crate::PkaRequirement>,
) -> Result<(BoxTransport, Option<asp_proto::aid::pka::Proof>), ConnectError> {
    let deadline = net.now() + limit;
    let mut request = url.into_client_request()?;
    let challenge = pka.map(|pka| pka.challenge(url, &mut request)).transpose()?;
    let headers = request.headers_mut();
    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| ConnectError::Url(e.to_string()))?;
        headers.insert(header::AUTHORIZATION, value);
    }
    let uri = request.uri();
    let secure = uri.scheme_str() == Some("wss");
    let host = uri.host().ok_or_else(|| ConnectError::Url(format!("{url}: no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let connecting = async { net.connect(host.clone(), port).await.map_err(|e| tungstenite::Error::Io(e).into()) };
    let tcp = by(net, deadline, limit, &format!("TCP connect to {host}:{port}"), connecting).await?;
    const UPGRADE: &str = "WebSocket upgrade";
    let (transport, response): (BoxTransport, _) = if secure {
        let name = ServerName::try_from(host).map_err(|e| ConnectError::Url(e.to_string()))?;
        let handshake = async {
            futures_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(crate::tls::connect_error)
        };
        let stream = by(net, deadline, limit, "TLS handshake", handshake).await?;
        let upgrade = async { Ok(async_tungstenite::client_async_with_config(request, stream, Some(config)).await?) };
        let (ws, response) = by(net, deadline, limit, UPGRADE, upgrade).await?;
        (Box::new(ws), response)
    } else {
        let upgrade = async { Ok(async_tungstenite::client_async_with_config(request, tcp, Some(config)).await?) };
        let (ws, response) = by(net, deadline, limit, UPGRADE, upgrade).await?;
        (Box::new(ws), response)
    };
    let selected = response.headers().get(header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok());
    if selected != Some(SUBPROTOCOL) {
        return Err(ConnectError::Subprotocol);
    }
    // Before HELLO: on failure the transport is dropped unused.
    let proof = challenge.map(|c| crate::pka::verify_upgrade(&c, &response)).transpose().map_err(ConnectError::Pka)?;
    Ok((transport, proof))
}

/// A raw WebSocket to an ASP server (upgrade and TLS done, no session):
/// for tests that speak bytes the session never would.
#[doc(hidden)]
pub async fn dial_raw<N: Network>(
    net: &N,
    url: &str,
    token: Option<&str>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<BoxTransport, ConnectError> {
    Ok(dial_websocket(net, url, token, tls, WebSocketConfig::default(), DEFAULT_CONNECT_TIMEOUT, None).await?.0)
}
