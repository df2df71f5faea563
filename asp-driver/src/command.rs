//! Commands from the application's handles ([`Connection`](crate::Connection),
//! [`Invocation`](crate::Invocation), [`ToolContext`](crate::ToolContext)) to
//! the task that owns the session.

use std::sync::Arc;

use asp_proto::{ErrorCode, ErrorInfo, Invoke, RequestId, SendError, Stats, ToolOp, ToolSpec, Value};
use futures::channel::{mpsc, oneshot};

use crate::invocation::InvocationEvent;
use crate::outbox::Outbox;

/// What the driver hands back for a new invocation: its id, its token and
/// where its events arrive.
pub(crate) type OpenedInvocation = (RequestId, u64, mpsc::UnboundedReceiver<InvocationEvent>);

/// A command from the application to the connection's driver task.
pub(crate) enum Command {
    Invoke {
        invoke: Invoke,
        reply: oneshot::Sender<Result<OpenedInvocation, SendError>>,
    },
    /// A handler's outbox has output (see `outbox.rs`).
    Outbox {
        id: RequestId,
        token: u64,
        outbox: Arc<Outbox>,
    },
    Complete {
        id: RequestId,
        token: u64,
        result: Value,
    },
    Fail {
        id: RequestId,
        token: u64,
        error: ErrorInfo,
    },
    Interrupt {
        id: RequestId,
        token: u64,
    },
    Grant {
        id: RequestId,
        token: u64,
        bytes: usize,
    },
    PushTools {
        op: ToolOp,
        tools: Vec<ToolSpec>,
    },
    GoAway {
        drain: Option<std::time::Duration>,
    },
    Close {
        code: ErrorCode,
        message: String,
    },
    Stats {
        reply: oneshot::Sender<Stats>,
    },
}
