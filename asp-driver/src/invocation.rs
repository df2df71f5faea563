//! The invoker's side of one invocation: a stream of output, then a result.

use std::pin::Pin;
use std::task::{Context, Poll};

use asp_proto::{ErrorCode, ErrorInfo, Metrics, Progress, RequestId, Value};
use bytes::Bytes;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};

use crate::command::Command;

/// What the driver routes to one invocation.
#[derive(Debug)]
pub(crate) enum InvocationEvent {
    /// The output of one transport message, in order.
    Chunks(Vec<Bytes>),
    Progress(Progress),
    Done(Result<Completion, ErrorInfo>),
}

/// A finished invocation's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The value the tool returned.
    pub result: Value,
    /// How it ran: wall time, and CPU time when the handler knew it.
    pub metrics: Metrics,
}

/// Why an invocation did not complete: the ERROR the handler (or our own
/// session) sent, as asp-proto's [`ErrorInfo`].
pub type InvokeError = ErrorInfo;

/// An invocation we made. As a [`Stream`] it yields the output chunks as
/// they arrive — reading them is what returns flow-control credit to the
/// handler, so a slow reader slows the tool down instead of filling memory.
/// [`result`](Self::result) then gives the outcome. Dropping it before the
/// end interrupts the invocation.
#[derive(Debug)]
pub struct Invocation {
    id: RequestId,
    token: u64,
    events: mpsc::UnboundedReceiver<InvocationEvent>,
    /// Where grants and interrupts go (the connection's task).
    commands: mpsc::UnboundedSender<Command>,
    outcome: Option<Result<Completion, InvokeError>>,
    progress: Option<Progress>,
    /// Bytes read and not yet granted back (batched, see `GRANT_BATCH`).
    ungranted: usize,
    /// Output received and not yet yielded.
    buffered: std::collections::VecDeque<Bytes>,
}

/// Read bytes are granted back in batches of this size, or sooner when the
/// reader has caught up: one command per chunk would cost more than the
/// chunk.
const GRANT_BATCH: usize = 16 * 1024;

impl Invocation {
    pub(crate) fn new(
        id: RequestId,
        token: u64,
        events: mpsc::UnboundedReceiver<InvocationEvent>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Invocation {
            id,
            token,
            events,
            commands,
            outcome: None,
            progress: None,
            ungranted: 0,
            buffered: Default::default(),
        }
    }

    /// The request id.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The latest progress update, if the handler sent any.
    pub fn progress(&self) -> Option<&Progress> {
        self.progress.as_ref()
    }

    /// Asks the handler to stop. The result still arrives: `CANCELLED`, or
    /// the completion if the tool finished first.
    pub fn interrupt(&self) {
        let _ = self.commands.unbounded_send(Command::Interrupt { id: self.id, token: self.token });
    }

    /// Waits for the end, discarding output not yet read, and returns the
    /// outcome.
    pub async fn result(mut self) -> Result<Completion, InvokeError> {
        while self.next().await.is_some() {}
        self.outcome.take().unwrap_or_else(|| Err(lost()))
    }
}

fn lost() -> InvokeError {
    ErrorInfo::new(ErrorCode::SESSION_LOST, "the connection ended")
}

impl Stream for Invocation {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if let Some(data) = self.buffered.pop_front() {
                self.ungranted += data.len();
                if self.ungranted >= GRANT_BATCH {
                    self.flush_grant();
                }
                return Poll::Ready(Some(data));
            }
            if self.outcome.is_some() {
                return Poll::Ready(None);
            }
            match self.events.poll_next_unpin(cx) {
                Poll::Ready(Some(InvocationEvent::Chunks(chunks))) => self.buffered.extend(chunks),
                Poll::Ready(Some(InvocationEvent::Progress(p))) => self.progress = Some(p),
                Poll::Ready(Some(InvocationEvent::Done(outcome))) => {
                    self.outcome = Some(outcome);
                }
                Poll::Ready(None) => self.outcome = Some(Err(lost())),
                Poll::Pending => {
                    // Caught up: whatever was read must reach the handler
                    // now, or it might wait for credit forever.
                    self.flush_grant();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Invocation {
    fn flush_grant(&mut self) {
        if self.ungranted > 0 {
            let bytes = std::mem::take(&mut self.ungranted);
            let _ = self.commands.unbounded_send(Command::Grant { id: self.id, token: self.token, bytes });
        }
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        self.flush_grant();
        if self.outcome.is_none() {
            let _ = self.commands.unbounded_send(Command::Interrupt { id: self.id, token: self.token });
        }
    }
}
