//! Running our tools and carrying out the application's commands.
//!
//! A tool's output travels handler → [`Outbox`] → the handler's
//! [`OutputQueue`] → the session. The queue (shared with the relay, in
//! `asp-proto`) holds what the peer has no credit for yet and keeps the
//! handler's end behind its output; each chunk's bytes are released to the
//! outbox as the session takes them, which is what lets a waiting
//! [`ToolContext::send`](crate::ToolContext::send) go on.

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use asp_proto::{ErrorCode, Invoke, Output, OutputQueue, QueueState, RequestId};
use futures::channel::mpsc;
use futures::future::{AbortHandle, Abortable};
use tracing::Instrument;

use super::Driver;
use crate::command::Command;
use crate::outbox::Outbox;
use crate::tools::ToolContext;
use crate::Runtime;

/// Encoded output the session may hold for a transport that has not taken
/// it; past it tools' output waits in their queues (and then their
/// outboxes, which holds the tools back). With [`SEND_BUDGET`](crate::SEND_BUDGET)
/// per invocation this bounds what a peer that stops reading costs, whatever
/// windows it announced.
const UNSENT_BUDGET: usize = 128 * 1024;

/// A tool running for one invocation we handle.
pub(super) struct Handler {
    /// Which invocation with this id (ids are reused).
    token: u64,
    abort: AbortHandle,
    /// Output the tool has produced and the driver not yet taken.
    outbox: Arc<Outbox>,
    /// Output taken from the outbox that waits for the peer's credit, and
    /// the tool's end once it has returned.
    output: OutputQueue,
    /// For the metrics: which tool, since when, and how it ended.
    tool: String,
    started: Instant,
    outcome: Option<crate::metrics::Outcome>,
}

impl Handler {
    /// Stops the tool and refuses its further output.
    pub(super) fn stop(self) {
        self.abort.abort();
        self.outbox.close();
    }

    /// The invocation was interrupted, timed out or closed under the tool:
    /// counts it as interrupted and stops the tool.
    pub(super) fn interrupted(self, now: Instant) {
        self.abort.abort();
        self.outbox.close();
        crate::metrics::invocation_ended(self.tool, self.started, now, crate::metrics::Outcome::Interrupted);
    }

    /// The invocation is gone: drop queued output and refuse more.
    pub(super) fn drop_output(&mut self) {
        self.outbox.release(self.output.clear());
        self.outbox.close();
    }
}

impl<T, R> Driver<T, R>
where
    T: crate::Transport,
    R: Runtime,
{
    pub(super) fn start_handler(&mut self, now: Instant, id: RequestId, invoke: Invoke) {
        let Some(tool) = self.tools.get(&invoke.tool) else {
            crate::metrics::unknown_tool();
            let _ = self.session.fail(id, ErrorCode::UNKNOWN_TOOL, format!("no tool named `{}`", invoke.tool));
            return;
        };
        let token = self.token();
        let outbox = Arc::new(Outbox::default());
        let request = crate::tools::Request {
            meta: invoke.meta,
            trace: invoke.trace.clone(),
            deadline: invoke.timeout.map(|ms| now + std::time::Duration::from_millis(ms.into())),
        };
        let ctx = ToolContext {
            id,
            tool: invoke.tool.clone(),
            request: Arc::new(request),
            conn: self.conn.clone(),
            token,
            outbox: outbox.clone(),
        };
        // `trace` is the INVOKE's W3C traceparent (SPEC §5.5): a tracing
        // layer that exports to OpenTelemetry can parent this span on it.
        let span =
            tracing::info_span!("asp_invocation", id = id.0, tool = %invoke.tool, trace = invoke.trace.as_deref());
        let (abort, registration) = AbortHandle::new_pair();
        let handler = Handler {
            token,
            abort,
            outbox,
            output: OutputQueue::new(),
            tool: invoke.tool.clone(),
            started: now,
            outcome: None,
        };
        self.handlers.insert(id, handler);
        let mut call = tool.call(ctx, invoke.args);
        // Poll once here: a tool that finishes at once (an echo, a lookup)
        // completes without a task of its own and two trips through the
        // command channel. If it is not ready, the task polls it again with
        // a real waker.
        let waker = futures::task::noop_waker();
        let first = span.in_scope(|| call.as_mut().poll(&mut std::task::Context::from_waker(&waker)));
        let end = match first {
            Poll::Ready(Ok(result)) => Output::Complete { result, cpu_us: None },
            Poll::Ready(Err(error)) => Output::Fail(error),
            Poll::Pending => {
                let conn = self.conn.clone();
                let call = Abortable::new(call, registration);
                self.rt.spawn(Box::pin(
                    async move {
                        let command = match call.await {
                            Ok(Ok(result)) => Command::Complete { id, token, result },
                            Ok(Err(error)) => Command::Fail { id, token, error },
                            Err(_aborted) => return,
                        };
                        let _ = conn.command(command);
                    }
                    .instrument(span),
                ));
                return;
            }
        };
        // Output the tool queued during that poll goes first.
        while let Ok(command) = self.commands.try_recv() {
            self.apply(now, command);
        }
        self.end_handler(now, id, token, end);
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// The running handler of `id`, if `token` names it.
    fn current_handler(&mut self, id: RequestId, token: u64) -> Option<&mut Handler> {
        self.handlers.get_mut(&id).filter(|h| h.token == token)
    }

    pub(super) fn apply(&mut self, now: Instant, command: Command) {
        match command {
            Command::Invoke { invoke, reply } => match self.session.invoke(now, invoke) {
                Ok(id) => {
                    let token = self.token();
                    let (tx, rx) = mpsc::unbounded();
                    self.invocations.insert(id, (token, tx));
                    let _ = reply.send(Ok((id, token, rx)));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Outbox { id, token, outbox } => {
                let Some(handler) = self.current_handler(id, token) else { return outbox.close() };
                handler.outbox.take_into(&mut handler.output);
                self.flush_handler(now, id);
            }
            Command::Complete { id, token, result } => {
                self.end_handler(now, id, token, Output::Complete { result, cpu_us: None })
            }
            Command::Fail { id, token, error } => self.end_handler(now, id, token, Output::Fail(error)),
            Command::Interrupt { id, token } => {
                if self.invocations.get(&id).is_some_and(|(t, _)| *t == token) {
                    let _ = self.session.interrupt(id, None);
                }
            }
            Command::Grant { id, token, bytes } => {
                // A grant for an earlier invocation with this id still owes
                // the connection its credit, but not the new invocation.
                let current = self.invocations.get(&id).is_some_and(|(t, _)| *t == token);
                self.session.grant(if current { id } else { RequestId::CONNECTION }, bytes);
            }
            Command::PushTools { op, tools } => {
                let _ = self.session.push_tools(op, tools);
            }
            Command::GoAway { drain } => {
                let _ = self.session.goaway(now, None, drain);
            }
            Command::Close { code, message } => self.session.close(code, message),
            Command::Stats { reply } => {
                let _ = reply.send(self.session.stats());
            }
        }
    }

    /// Ends a handler's invocation, after its queued output.
    fn end_handler(&mut self, now: Instant, id: RequestId, token: u64, end: Output) {
        if let Some(handler) = self.current_handler(id, token) {
            handler.outcome = Some(match &end {
                Output::Fail(error) => {
                    let tool = &handler.tool;
                    tracing::warn!(id = id.0, %tool, code = %error.code, reason = %error.message, "tool failed");
                    crate::metrics::Outcome::Error(error.code)
                }
                _ => crate::metrics::Outcome::Ok,
            });
            handler.output.push(end, 0);
            self.flush_handler(now, id);
        }
    }

    /// Hands a handler's queued output to the session as far as credit goes
    /// and while the session holds less than [`UNSENT_BUDGET`] unwritten.
    fn flush_handler(&mut self, now: Instant, id: RequestId) {
        if self.session.unsent_bytes() >= UNSENT_BUDGET {
            return; // refill() goes on once the transport has taken it
        }
        let Some(handler) = self.handlers.get_mut(&id) else { return };
        let flushed = handler.output.flush(&mut self.session, now, id);
        handler.outbox.release(flushed.released);
        match flushed.state {
            QueueState::Open => {}
            // The tool has returned: nothing to stop, only its outbox to close.
            QueueState::Ended => {
                let handler = self.handlers.remove(&id).expect("present");
                let outcome = handler.outcome.unwrap_or(crate::metrics::Outcome::Ok);
                handler.outbox.close();
                crate::metrics::invocation_ended(handler.tool, handler.started, now, outcome);
            }
            // Interrupted, timed out or closed under the tool: stop it.
            QueueState::Gone => self.handlers.remove(&id).expect("present").interrupted(now),
        }
    }

    /// After a write: hands waiting output to the session again. True when
    /// the session took some, so there is more to write.
    pub(super) fn refill(&mut self, now: Instant) -> bool {
        let before = self.session.unsent_bytes();
        self.flush_blocked(now);
        self.session.unsent_bytes() > before
    }

    /// Credit arrived: hand waiting output to the session again, in order.
    pub(super) fn flush_blocked(&mut self, now: Instant) {
        let blocked: Vec<RequestId> =
            self.handlers.iter().filter(|(_, h)| !h.output.is_empty()).map(|(id, _)| *id).collect();
        for id in blocked {
            self.flush_handler(now, id);
        }
    }
}
