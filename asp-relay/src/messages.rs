//! The channels between the relay's tasks: client and call tasks and the
//! management server talk to the core task with [`Input`]; the core task
//! writes to a client task with [`ToClient`].

use asp_relay_proto::{
    CallFailure, CallId, ManagementRequest, ManagementResponse, RelayStats, ResponseHead, TransportId,
};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// Bytes the core may queue for one client before the client's socket has
/// taken them; past it the core holds that client's call output
/// ([`Relay::handle_client_backlog`](asp_relay_proto::Relay::handle_client_backlog)).
pub(crate) const CLIENT_BACKLOG: usize = 1 << 20;

/// What the core has queued for a client task and the task not yet written.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    pub(crate) bytes: AtomicUsize,
    /// The core told the relay this client is backed up.
    pub(crate) blocked: AtomicBool,
}

/// What the other tasks tell the core.
pub(crate) enum Input {
    /// A client WebSocket is up; answer with its id.
    Opened {
        token: Option<String>,
        writer: mpsc::UnboundedSender<ToClient>,
        backlog: Arc<Backlog>,
        reply: oneshot::Sender<TransportId>,
    },
    /// A client's backlog drained below half its budget.
    Drained(TransportId),
    Message(TransportId, Bytes),
    Text(TransportId),
    Closed(TransportId),
    Head(CallId, ResponseHead),
    Chunk(CallId, Bytes),
    End(CallId),
    Failed(CallId, CallFailure),
    Manage(ManagementRequest, oneshot::Sender<ManagementResponse>),
    /// The store's answer to a lookup of a session held elsewhere: its
    /// snapshot and the pushes queued for it.
    Lookup(TransportId, Option<Bytes>, Vec<Bytes>),
    Stats(oneshot::Sender<RelayStats>),
    /// Stop: GOAWAY to every session, with this long to finish.
    Drain(std::time::Duration),
}

/// What the core tells a client task.
pub(crate) enum ToClient {
    Message(Bytes),
    Close(u16, String),
}
