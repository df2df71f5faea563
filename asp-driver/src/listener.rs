//! Accepting ASP WebSockets, once for every server built on the driver: the
//! direct [`ServerBuilder`](crate::ServerBuilder) and `asp-relay` both hand
//! their accepted transports to a [`Listener`].
//!
//! A connection gets TLS (unless plaintext is allowed) and the upgrade with
//! ASP's checks (path, `Origin`, `asp-v1`), all within
//! [`upgrade_timeout`](Listener::upgrade_timeout): a socket that never
//! finishes its TLS handshake, or never sends the upgrade request, is
//! dropped then, so it cannot hold a task forever. The session's own
//! handshake timer starts only after the upgrade.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{select, Either};
use futures::{AsyncRead, AsyncWrite};
use tracing::Instrument;
use tungstenite::protocol::WebSocketConfig;

use crate::net::{accept_websocket, Network, UpgradePolicy, DEFAULT_PATH};
use crate::BoxTransport;

/// Default for [`Listener::upgrade_timeout`]: TLS plus the HTTP upgrade.
pub const DEFAULT_UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's WebSocket read buffer. tungstenite zero-fills its read
/// buffer up to this size on every read, so its default (128 KiB) would be
/// resident in every idle connection. It is also the most one read takes
/// in (a longer message is reserved whole once its header is in, then read
/// a buffer's worth at a time), so a 1 MiB argument takes about a thousand
/// reads instead of eight: the price of 7.8 KiB instead of 10.7 KiB per
/// idle connection (docs/PERFORMANCE.md). 1 KiB, as axum's default.
pub const SERVER_READ_BUFFER: usize = 1024;

/// Bytes a connection may send before its ASP handshake completes: the TLS
/// handshake, the HTTP upgrade and one pre-handshake frame (64 KiB + 8,
/// SPEC.md §3.2, §17) with room to spare. Past it the socket is dropped:
/// an unauthenticated peer cannot make the server buffer a 16 MiB message.
pub const PRE_HANDSHAKE_READ_LIMIT: usize = 96 * 1024;

/// Default for [`Listener::max_pending`]: connections accepted whose ASP
/// handshake has not completed.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// Descriptors kept free below the process's limit when the connection cap
/// is derived from it (listeners, DNS, files, the function's HTTP pool).
const DESCRIPTOR_RESERVE: u64 = 64;

/// Opened by whoever owns a connection once its ASP handshake is done:
/// from then on the connection's reads are no longer counted against
/// [`PRE_HANDSHAKE_READ_LIMIT`], and it no longer counts against
/// [`Listener::max_pending`].
#[derive(Clone, Debug, Default)]
pub struct HandshakeGate(Arc<GateState>);

#[derive(Debug, Default)]
struct GateState {
    open: AtomicBool,
    /// The listener's count of connections still before their handshake.
    pending: Option<Arc<AtomicUsize>>,
}

impl Drop for GateState {
    fn drop(&mut self) {
        if !self.open.load(Ordering::Relaxed) {
            if let Some(pending) = &self.pending {
                pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl HandshakeGate {
    fn counted(pending: Arc<AtomicUsize>) -> Self {
        HandshakeGate(Arc::new(GateState { open: AtomicBool::new(false), pending: Some(pending) }))
    }

    /// The handshake is done: lift the pre-handshake read limit.
    pub fn open(&self) {
        if !self.0.open.swap(true, Ordering::Relaxed) {
            if let Some(pending) = &self.0.pending {
                pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn is_open(&self) -> bool {
        self.0.open.load(Ordering::Relaxed)
    }
}

/// The default connection cap: the process's descriptor limit less a
/// reserve, so that accepting never exhausts descriptors (SPEC.md §17).
/// Binaries raise the soft limit to the hard one at start
/// (`rlimit::increase_nofile_limit`).
pub fn default_max_connections() -> usize {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) => usize::try_from(soft.saturating_sub(DESCRIPTOR_RESERVE).max(16)).unwrap_or(usize::MAX),
        Err(_) => 1000,
    }
}

/// One open connection, counted against [`Listener::max_connections`]
/// until dropped.
struct OpenSlot(Arc<AtomicUsize>);

impl OpenSlot {
    fn take(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenSlot(open)
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket whose reads are counted until its [`HandshakeGate`] opens.
struct Gated<S> {
    inner: S,
    read: usize,
    gate: HandshakeGate,
}

impl<S: AsyncRead + Unpin> AsyncRead for Gated<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let n = match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        if !self.gate.is_open() {
            self.read += n;
            if self.read > PRE_HANDSHAKE_READ_LIMIT {
                let why = format!("more than {PRE_HANDSHAKE_READ_LIMIT} bytes before the ASP handshake");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
            }
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gated<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// How a server accepts WebSockets: path, `Origin` allowlist, TLS, and the
/// upgrade timeout. Every ASP server built on the driver uses one.
#[derive(Clone, Debug)]
pub struct Listener {
    policy: Arc<UpgradePolicy>,
    tls: Option<Arc<rustls::ServerConfig>>,
    plaintext: bool,
    upgrade_timeout: Duration,
    max_connections: usize,
    max_pending: usize,
}

impl Listener {
    /// TLS (when configured) and the checked upgrade on a connection the
    /// application accepted, within the upgrade timeout.
    pub(crate) async fn upgrade<N: Network, S>(
        &self,
        net: &N,
        io: S,
        ws_config: WebSocketConfig,
    ) -> Result<(BoxTransport, Option<String>), String>
    where
        S: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    {
        let accept = accept_websocket(io, self.tls.clone(), self.policy.clone(), ws_config);
        let deadline = net.sleep_until(net.now() + self.upgrade_timeout);
        match select(Box::pin(accept), deadline).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => Err("the TLS handshake and upgrade took longer than the upgrade timeout".into()),
        }
    }
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            policy: Arc::new(UpgradePolicy { path: DEFAULT_PATH.to_owned(), origins: None, pka: None }),
            tls: None,
            plaintext: false,
            upgrade_timeout: DEFAULT_UPGRADE_TIMEOUT,
            max_connections: default_max_connections(),
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

impl Listener {
    /// Path `/v1/agent-socket`, any `Origin`, no TLS yet (set one, or allow
    /// plaintext), a 10 s upgrade timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The upgrade path; other paths get 404.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.policy).path = path.into();
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

    /// Serve plain `ws://`: for loopback, tests, or behind a TLS-terminating
    /// proxy.
    pub fn allow_plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// Accept browser upgrades only from these `Origin`s (requests without
    /// an `Origin` header, i.e. not from browsers, are accepted); others get 403.
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Arc::make_mut(&mut self.policy).origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Prove this AID PKA key to clients that ask (SPEC.md §16.1): an
    /// upgrade request with `Accept-Signature` (aid2) or `AID-Challenge`
    /// (aid1) gets a signed `101` response. Publish the key in the record
    /// (`asp aid generate --pka-key`).
    pub fn pka_key(mut self, signer: asp_proto::aid::pka::Signer) -> Self {
        Arc::make_mut(&mut self.policy).pka = Some(Arc::new(signer));
        self
    }

    /// The PKA key, if any.
    pub(crate) fn pka_signer(&self) -> Option<&asp_proto::aid::pka::Signer> {
        self.policy.pka.as_deref()
    }

    /// How long TLS plus the upgrade may take before the socket is dropped.
    pub fn upgrade_timeout(mut self, timeout: Duration) -> Self {
        self.upgrade_timeout = timeout;
        self
    }

    /// Connections open at once, handshaking or not; one more is closed as
    /// soon as it is accepted. Default: the descriptor limit less a reserve
    /// ([`default_max_connections`]).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Connections at once whose ASP handshake has not completed (TLS,
    /// upgrade, HELLO); one more is closed as soon as it is accepted, so
    /// sockets that never speak cannot take the slots of sessions. Default
    /// [`DEFAULT_MAX_PENDING`].
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = max;
        self
    }

    /// True when it serves `wss://`.
    pub fn is_secure(&self) -> bool {
        self.tls.is_some()
    }

    /// The URL clients connect to on `addr`.
    pub fn url(&self, addr: std::net::SocketAddr) -> String {
        format!("{}://{addr}{}", if self.is_secure() { "wss" } else { "ws" }, self.policy.path)
    }

    /// Refuses a configuration that would serve `ws://` by accident. `what`
    /// names the server in the error ("a server", "a relay").
    pub fn check(&self, what: &str) -> std::io::Result<()> {
        if self.tls.is_none() && !self.plaintext {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what} needs TLS (tls_pem or tls); plain ws:// must be enabled with allow_plaintext()"),
            ));
        }
        Ok(())
    }

    /// Accepts connections on `listener` until the future is dropped. Each
    /// one is upgraded in a task of its own within the upgrade timeout; then
    /// `on_open(transport, bearer_token, gate)` runs in another new task, so that
    /// the handshake's state (TLS acceptor, HTTP upgrade: ~11 KB) is freed
    /// instead of living as long as the connection. `ws_config` is the
    /// WebSocket configuration (its read buffer is set to
    /// [`SERVER_READ_BUFFER`]). Until `on_open` opens the [`HandshakeGate`]
    /// (when the ASP handshake completes), the connection may send at most
    /// [`PRE_HANDSHAKE_READ_LIMIT`] bytes.
    pub async fn accept_loop<N, F, Fut>(
        self,
        net: N,
        listener: Arc<N::Listener>,
        ws_config: WebSocketConfig,
        on_open: F,
    ) where
        N: Network,
        F: Fn(BoxTransport, Option<String>, HandshakeGate) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let ws_config = ws_config.read_buffer_size(SERVER_READ_BUFFER);
        let on_open = Arc::new(on_open);
        let this = Arc::new(self);
        let open = Arc::new(AtomicUsize::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        loop {
            match net.accept(listener.clone()).await {
                Ok((tcp, peer)) => {
                    if open.load(Ordering::Relaxed) >= this.max_connections
                        || pending.load(Ordering::Relaxed) >= this.max_pending
                    {
                        tracing::debug!(%peer, "connection refused: at the connection or handshake cap");
                        drop(tcp);
                        continue;
                    }
                    let slot = OpenSlot::take(open.clone());
                    pending.fetch_add(1, Ordering::Relaxed);
                    let gate = HandshakeGate::counted(pending.clone());
                    let span = tracing::info_span!("asp_connection", %peer, cid = tracing::field::Empty);
                    let (this, on_open, spawner) = (this.clone(), on_open.clone(), net.clone());
                    let deadline = net.sleep_until(net.now() + this.upgrade_timeout);
                    net.spawn(Box::pin(
                        async move {
                            let tcp = Gated { inner: tcp, read: 0, gate: gate.clone() };
                            let accept = accept_websocket(tcp, this.tls.clone(), this.policy.clone(), ws_config);
                            match select(Box::pin(accept), deadline).await {
                                Either::Left((Ok((ws, token)), _)) => {
                                    // The slot is held until the connection's task ends.
                                    let serve = on_open(ws, token, gate);
                                    spawner.spawn(Box::pin(
                                        async move {
                                            serve.await;
                                            drop(slot);
                                        }
                                        .in_current_span(),
                                    ));
                                }
                                Either::Left((Err(e), _)) => tracing::debug!(error = %e, "refused before the session"),
                                Either::Right(_) => tracing::debug!("TLS and upgrade did not finish in time"),
                            }
                        }
                        .instrument(span),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    net.sleep_until(net.now() + Duration::from_millis(50)).await;
                }
            }
        }
    }
}
