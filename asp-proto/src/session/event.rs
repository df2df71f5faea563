//! What a session tells its application: [`Event`] and the reasons it ends.

use web_time::Instant;

use bytes::Bytes;

use crate::{ErrorCode, ErrorInfo, Invoke, Metrics, Progress, RequestId, Value};

/// Something the application must know or act on; drained with
/// [`Session::poll_event`](super::Session::poll_event).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Server: the client's HELLO arrived. The session waits for
    /// [`accept`](super::Session::accept), [`reject`](super::Session::reject),
    /// or, when it asks to resume, a [`resume`](super::Session::resume) of the
    /// old session.
    HelloReceived(HelloInfo),
    /// The handshake completed (again, after a resume).
    Connected {
        /// The connection id.
        cid: String,
        /// True when an earlier session was resumed: nothing was lost.
        resumed: bool,
        /// Set when a resume was asked for and refused: the session is new,
        /// and every invocation of the old one has failed with `SESSION_LOST`.
        resume_error: Option<ErrorCode>,
    },
    /// The peer invoked one of our tools. Answer with
    /// [`send_chunk`](super::Session::send_chunk) /
    /// [`complete`](super::Session::complete) / [`fail`](super::Session::fail).
    Invoked {
        /// Its request id.
        id: RequestId,
        /// What was asked.
        invoke: Invoke,
    },
    /// An invocation we handle must stop: the invoker interrupted it
    /// (`CANCELLED`), its deadline passed (`DEADLINE_EXCEEDED`), or the
    /// session ended. Its terminal frame has already been sent (or cannot
    /// be); later commands for it are refused.
    Interrupted {
        /// Its request id.
        id: RequestId,
        /// Why.
        code: ErrorCode,
    },
    /// Output of an invocation we made. Call
    /// [`grant`](super::Session::grant) as it is consumed.
    Chunk {
        /// Its request id.
        id: RequestId,
        /// The bytes, as sent.
        data: Bytes,
    },
    /// A progress update of an invocation we made.
    Progress {
        /// Its request id.
        id: RequestId,
        /// The update.
        progress: Progress,
    },
    /// An invocation we made finished.
    Completed {
        /// Its request id.
        id: RequestId,
        /// The result.
        result: Value,
        /// How it ran.
        metrics: Metrics,
    },
    /// An invocation we made failed: the handler's ERROR, our deadline, or
    /// the end of the session.
    Failed {
        /// Its request id.
        id: RequestId,
        /// What went wrong.
        error: ErrorInfo,
    },
    /// Credit arrived: a [`send_chunk`](super::Session::send_chunk) that was
    /// blocked on invocation `id`, or on the connection (`id` 0), may go on.
    Writable {
        /// The invocation, or [`RequestId::CONNECTION`].
        id: RequestId,
    },
    /// The peer's tool set changed; read it with
    /// [`peer_tools`](super::Session::peer_tools).
    PeerToolsChanged,
    /// The peer is draining: start no new invocations.
    GoAway {
        /// Its reason.
        code: ErrorCode,
        /// Its explanation.
        message: Option<String>,
    },
    /// The transport is gone but the session lives until `deadline`. A client
    /// opens a new transport and calls
    /// [`reconnect`](super::Session::reconnect); a server waits for one.
    Detached {
        /// What ended the transport.
        reason: DetachReason,
        /// When the session is given up.
        deadline: Instant,
    },
    /// The session is over. Send what `poll_transmit` still holds, then
    /// close the transport with [`CloseReason::websocket_code`].
    Closed(CloseReason),
}

/// What a server learns from the client's HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloInfo {
    /// The token from HELLO, or else the one the adapter took from the
    /// upgrade request ([`set_transport_token`](super::Session::set_transport_token)).
    pub token: Option<String>,
    /// The client's name.
    pub name: Option<String>,
    /// The client's capabilities.
    pub caps: Vec<String>,
    /// The client asks to resume a session.
    pub resume_requested: bool,
}

/// Why a session detached from its transport.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DetachReason {
    /// The adapter reported the transport closed.
    TransportClosed,
    /// PINGs went unanswered; the adapter should drop the transport.
    PeerUnresponsive,
}

/// Which side ended a session.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// This side (a command, a timer, or a protocol error it detected).
    Local,
    /// The peer (its ERROR with request id 0).
    Peer,
    /// The transport went away with no resume possible.
    Transport,
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// The error code; `NO_ERROR` for a graceful close.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// Who ended it.
    pub initiator: Initiator,
}

impl CloseReason {
    /// The WebSocket close code for this reason (SPEC.md §7.2).
    pub fn websocket_code(&self) -> u16 {
        self.code.close_code()
    }
}
