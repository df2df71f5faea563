//! What a relay is allowed to hold and how long it waits (SPEC.md §15).

use std::time::Duration;

use asp_proto::SessionConfig;

/// How the relay encodes the bodies of its calls to the function.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum BodyEncoding {
    /// `application/json`; binary values become `{"$bin": "<base64>"}`.
    #[default]
    Json,
    /// `application/msgpack`: the INVOKE's values exactly as the client sent them.
    MsgPack,
}

impl BodyEncoding {
    /// The `Content-Type` of a request body in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyEncoding::Json => "application/json",
            BodyEncoding::MsgPack => "application/msgpack",
        }
    }
}

/// Configuration of a [`Relay`](super::Relay). Every buffer the relay keeps
/// is bounded by one of these.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The server session every client gets. `check_tools` is forced off:
    /// the function, not the relay, knows which tools exist.
    pub session: SessionConfig,
    /// Request body encoding.
    pub encoding: BodyEncoding,
    /// Sessions held at once past their HELLO (attached or waiting to be
    /// resumed); a HELLO that would start one more is refused with
    /// `RATE_LIMITED` (a resume is not). Transports before their HELLO are
    /// bounded by the listener (`asp_driver::Listener::max_pending`).
    pub max_connections: usize,
    /// Function calls in flight across all clients; an INVOKE beyond it is
    /// answered `BACKEND_OVERLOADED`.
    pub max_calls: usize,
    /// Function calls one connection may have in flight: its share of
    /// `max_calls`, so that a few greedy clients cannot take every call
    /// (`BACKEND_OVERLOADED` past it).
    pub max_calls_per_connection: usize,
    /// The largest function state kept per connection (`X-Asp-State`).
    pub max_state_bytes: usize,
    /// How long the function may take to send its response head.
    pub response_timeout: Duration,
    /// How long the function's body may stall while the relay waits for it
    /// (time the relay spends waiting for the client's credit does not count).
    pub idle_timeout: Duration,
    /// The longest a single call may run, head to end.
    pub call_timeout: Duration,
    /// Bytes of one call's body the relay holds while the client has no
    /// credit; the adapter stops reading the body beyond it.
    pub body_window: usize,
    /// Call `POST {function}/connect` and `/disconnect` around each session.
    pub lifecycle_calls: bool,
    /// Sent to the function as `Authorization: Bearer <token>`.
    pub function_token: Option<String>,
    /// The management API's shared secret; without one it answers 401 to
    /// everything.
    pub management_secret: Option<String>,
    /// Bearer tokens a client may present; empty accepts every client.
    pub client_tokens: Vec<String>,
    /// How long a `DELETE` through the management API lets open invocations
    /// finish before the connection closes.
    pub disconnect_drain: Duration,
    /// Closed connection ids remembered so the management API can answer
    /// 410 rather than 404.
    pub closed_memory: usize,
    /// Announce connection ids as sessions start and end
    /// ([`Command::Directory`](crate::Command::Directory)), for a cluster's
    /// shared directory (SPEC.md §15.4). Off for a single relay.
    pub directory: bool,
    /// With `directory`, also save session snapshots
    /// ([`DirectoryChange::Saved`](crate::DirectoryChange::Saved)) so that
    /// another node can adopt a session (a cluster). Off for a single node.
    pub snapshots: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            session: SessionConfig::default(),
            encoding: BodyEncoding::Json,
            max_connections: 10_000,
            max_calls: 1_000,
            max_calls_per_connection: 32,
            max_state_bytes: 64 * 1024,
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(15 * 60),
            body_window: 64 * 1024,
            lifecycle_calls: false,
            function_token: None,
            management_secret: None,
            client_tokens: Vec::new(),
            disconnect_drain: Duration::from_secs(5),
            closed_memory: 4096,
            directory: false,
            snapshots: false,
        }
    }
}
