//! The channels between the relay's tasks: client and call tasks and the
//! management server talk to the core task with [`Input`]; the core task
//! writes to a client task with [`ToClient`].

use asp_relay_proto::{
    CallFailure, CallId, ManagementRequest, ManagementResponse, RelayStats, ResponseHead, TransportId,
};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// What the other tasks tell the core.
pub(crate) enum Input {
    /// A client WebSocket is up; answer with its id.
    Opened {
        token: Option<String>,
        writer: mpsc::UnboundedSender<ToClient>,
        reply: oneshot::Sender<TransportId>,
    },
    Message(TransportId, Bytes),
    Text(TransportId),
    Closed(TransportId),
    Head(CallId, ResponseHead),
    Chunk(CallId, Bytes),
    End(CallId),
    Failed(CallId, CallFailure),
    Manage(ManagementRequest, oneshot::Sender<ManagementResponse>),
    Stats(oneshot::Sender<RelayStats>),
}

/// What the core tells a client task.
pub(crate) enum ToClient {
    Message(Bytes),
    Close(u16, String),
}
