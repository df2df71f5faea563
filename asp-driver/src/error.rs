//! Why connecting, or using a connection, failed.

use asp_proto::aid::AidError;
use asp_proto::{CloseReason, SendError};

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not usable.
    #[error("invalid URL: {0}")]
    Url(String),
    /// The TLS configuration could not be built (CA file unreadable or invalid).
    #[error("TLS configuration: {0}")]
    TlsConfig(std::io::Error),
    /// TCP, TLS or the WebSocket upgrade failed.
    #[error("connection failed: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// TCP, TLS or the upgrade took longer than the connect timeout; the
    /// text names the stage and the limit.
    #[error("connection timed out: {0}")]
    Timeout(String),
    /// The TLS handshake failed; the text says why and, where it can, how
    /// to fix it.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server did not select the `asp-v1` subprotocol.
    #[error("the server did not accept the asp-v1 subprotocol")]
    Subprotocol,
    /// The server refused the session (authentication, version, …).
    #[error("refused: {} {}", .0.code, .0.message)]
    Rejected(CloseReason),
    /// Discovery found no usable agent for the domain.
    #[error("discovery: {0}")]
    Discovery(#[from] AidError),
    /// The endpoint did not prove the key its AID record publishes (PKA,
    /// SPEC.md §16.1): always `ERR_SECURITY` (1003). Nothing was sent.
    #[error("endpoint proof: {0}")]
    Pka(AidError),
}

/// Why a connection could not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The connection has ended.
    #[error("the connection is closed: {0}")]
    Closed(String),
    /// The session refused the command.
    #[error(transparent)]
    Refused(#[from] SendError),
}
