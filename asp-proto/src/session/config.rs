//! Session configuration: every limit and timer, with the defaults of
//! SPEC.md §12.

use std::time::Duration;

use super::ToolSet;
use crate::limits;

/// What a session announces and enforces. `Default` gives SPEC.md §12.
///
/// Limits bound what *this* side accepts; the peer's limits arrive in its
/// HELLO and bound what this side sends.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Largest frame payload accepted (announced as `limits.max_frame`).
    pub max_frame_payload: u32,
    /// Invocations the peer may have open towards us (`limits.max_inv`).
    pub max_concurrent_invocations: u16,
    /// Initial STREAM credit per invocation we open (`limits.win`).
    pub invocation_window: u32,
    /// Initial STREAM credit for the connection, towards us (`limits.cwin`).
    pub connection_window: u32,
    /// PING interval a server announces (`hb`). A client uses the server's.
    pub heartbeat_interval: Duration,
    /// Unanswered PINGs after which the peer is declared dead.
    pub missed_pings: u32,
    /// Time allowed for the handshake.
    pub handshake_timeout: Duration,
    /// Offer (server) or ask for (client) resumable sessions.
    pub resume: bool,
    /// How long a server keeps a detached session (`resume.grace`).
    pub resume_grace: Duration,
    /// Bound on unacknowledged STREAM bytes kept for replay; a sender past
    /// it is blocked like a sender out of credit.
    pub replay_buffer_bytes: usize,
    /// Most tools the peer may announce; more is a connection error.
    pub max_peer_tools: usize,
    /// Bound on the size of the peer's tool set ([`ToolSet::bytes`](super::ToolSet::bytes));
    /// more is a connection error (`TOO_MANY_TOOLS`), so a peer cannot make
    /// us hold a thousand 1 MiB schemas.
    pub max_peer_tools_bytes: usize,
    /// Answer INVOKE of a tool we have not announced with `UNKNOWN_TOOL`
    /// ourselves. Turn off when the application resolves tools dynamically
    /// (a relay whose functions know their tools).
    pub check_tools: bool,
    /// Our tools, announced in HELLO. A [`ToolSet`] (`vec![…].into()`):
    /// cloning the config shares it, so every connection a server makes
    /// from one config holds the same copy until its own set changes.
    pub tools: ToolSet,
    /// Client software name (client HELLO `name`).
    pub name: Option<String>,
    /// Bearer token the client sends in HELLO, when it could not send it on
    /// the upgrade request.
    pub token: Option<String>,
    /// Extra capability tokens to announce.
    pub caps: Vec<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_payload: limits::DEFAULT_MAX_FRAME_PAYLOAD,
            max_concurrent_invocations: limits::DEFAULT_MAX_CONCURRENT_INVOCATIONS,
            invocation_window: limits::DEFAULT_INVOCATION_WINDOW,
            connection_window: limits::DEFAULT_CONNECTION_WINDOW,
            heartbeat_interval: Duration::from_millis(limits::DEFAULT_HEARTBEAT_MS.into()),
            missed_pings: limits::DEFAULT_MISSED_PINGS,
            handshake_timeout: Duration::from_millis(limits::DEFAULT_HANDSHAKE_TIMEOUT_MS.into()),
            resume: true,
            resume_grace: Duration::from_millis(limits::DEFAULT_RESUME_GRACE_MS.into()),
            replay_buffer_bytes: limits::DEFAULT_REPLAY_BUFFER_BYTES,
            max_peer_tools: limits::DEFAULT_MAX_PEER_TOOLS,
            max_peer_tools_bytes: limits::DEFAULT_MAX_PEER_TOOLS_BYTES,
            check_tools: true,
            tools: ToolSet::default(),
            name: None,
            token: None,
            caps: Vec::new(),
        }
    }
}

/// Where a server session gets its randomness: connection ids and resume
/// tickets. Injected so that tests are deterministic; adapters use the
/// operating system's CSPRNG. `Sync` (it is only used through `&mut`) so
/// that a `Session` can be shared with a runtime that requires it, such as
/// a Python object the garbage collector may drop on any thread.
pub trait Entropy: Send + Sync {
    /// Fills `buf` with random bytes. Tickets are secrets: production
    /// implementations must be cryptographically secure.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Capability tokens defined by ASP/1 (SPEC.md §8.4).
pub mod caps {
    /// Sessions survive a dropped transport.
    pub const RESUME: &str = "resume";
    /// The peer understands progress updates.
    pub const PROGRESS: &str = "progress";
    /// The client offers tools the server may invoke.
    pub const CLIENT_TOOLS: &str = "client_tools";
    /// The client understands a resume by another server that replays
    /// nothing (`resumed.restart`, SPEC.md §11.4).
    pub const RESTART: &str = "restart";
}
