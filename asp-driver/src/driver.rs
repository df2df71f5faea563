//! The task that owns one session: a loop over the socket, the session's
//! deadline and the application's commands (quinn's `ConnectionDriver`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asp_proto::{
    CloseReason, ErrorCode, Event, HelloInfo, RequestId, RequestIdMap, ResumeKey, ResumeRequest, SendError, Session,
    SessionConfig,
};
use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::future::{AbortHandle, Abortable};
use futures::{select, FutureExt, SinkExt, StreamExt};
use tracing::Instrument;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::connection::{Command, Connection};
use crate::invocation::{Completion, InvocationEvent};
use crate::outbox::Outbox;
use crate::resume::{Handoff, Resumption};
use crate::tools::{ToolContext, ToolRegistry};
use crate::{BoxFuture, Runtime};

/// Decides whether a client may connect: `Err((code, message))` rejects it
/// (`UNAUTHENTICATED`, `FORBIDDEN`, …).
pub type AuthHook = Arc<dyn Fn(&HelloInfo) -> Result<(), (ErrorCode, String)> + Send + Sync>;

/// Told once the handshake completes, or why it did not.
pub type ReadySignal = oneshot::Sender<Result<(), CloseReason>>;

/// What a connection's driver needs besides the transport.
#[derive(Clone)]
pub struct DriverConfig {
    /// The session's limits and timers.
    pub session: SessionConfig,
    /// The tools this side offers.
    pub tools: ToolRegistry,
    /// Server: who may connect. `None` accepts everyone.
    pub auth: Option<AuthHook>,
}

/// Starts driving `session` over `transport`: returns the handle for the
/// application and the future that does the work, which the caller spawns
/// (inside its tracing span, on its runtime).
pub fn run_connection<T, R>(
    rt: R,
    transport: T,
    session: Session,
    config: DriverConfig,
    ready: Option<ReadySignal>,
    resumption: Resumption<T>,
) -> (Connection, BoxFuture<()>)
where
    T: crate::Transport,
    R: Runtime,
{
    let (conn, commands) = Connection::new();
    config.tools.subscribe(conn.clone());
    let driver = Driver {
        rt,
        transport: Some(transport),
        session,
        commands,
        conn: conn.clone(),
        tools: config.tools,
        auth: config.auth,
        ready,
        invocations: RequestIdMap::default(),
        handlers: RequestIdMap::default(),
        pending: RequestIdMap::default(),
        next_token: 1,
        handoffs: mpsc::unbounded(),
        resumption,
        registered: None,
        handoff_request: None,
        reconnecting: None,
        backoff: RECONNECT_BACKOFF_MIN,
    };
    (conn, Box::pin(driver.run()))
}

struct Driver<T, R> {
    rt: R,
    transport: Option<T>,
    session: Session,
    commands: mpsc::UnboundedReceiver<Command>,
    conn: Connection,
    tools: ToolRegistry,
    auth: Option<AuthHook>,
    ready: Option<ReadySignal>,
    /// Invocations we made: where their output goes, and their token.
    invocations: RequestIdMap<(u64, mpsc::UnboundedSender<InvocationEvent>)>,
    /// Invocations we handle: the running tool's token and abort handle.
    handlers: RequestIdMap<Handler>,
    /// Handler output not yet taken by the session (no credit), in order.
    /// Bounded per invocation by [`SEND_BUDGET`](crate::tools::SEND_BUDGET).
    pending: RequestIdMap<Outgoing>,
    /// Request ids are reused; tokens tell a command for the current
    /// invocation from a late one for an earlier invocation with that id.
    next_token: u64,
    /// Server: where resuming clients' transports are handed to this session.
    handoffs: (mpsc::UnboundedSender<Handoff<T>>, mpsc::UnboundedReceiver<Handoff<T>>),
    resumption: Resumption<T>,
    /// Server: the key this session is indexed under for resumption.
    registered: Option<ResumeKey>,
    /// Server: this new connection asks to resume another session.
    handoff_request: Option<ResumeRequest>,
    /// Client: a reconnect attempt under way while detached.
    reconnecting: Option<BoxFuture<Result<T, String>>>,
    backoff: Duration,
}

/// First and longest wait between a client's reconnect attempts.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A handler's output waiting for credit, and its end if it has returned:
/// the end must not overtake the output (the session would close the
/// invocation and the queued chunks would be lost).
#[derive(Default)]
struct Outgoing {
    chunks: VecDeque<PendingChunk>,
    end: Option<HandlerEnd>,
}

/// How a handler finished.
enum HandlerEnd {
    Complete(asp_proto::Value),
    Fail(ErrorCode, String),
}

/// Output a handler queued and the session has not taken yet.
struct PendingChunk {
    data: Bytes,
    /// Where it came from: told as its bytes are taken.
    outbox: Arc<Outbox>,
}

impl PendingChunk {
    fn finish(self, result: Result<(), SendError>) {
        self.outbox.release(self.data.len());
        if matches!(result, Err(SendError::NotOpen(_))) {
            self.outbox.close();
        }
    }
}

/// A running tool: its token, its task, its output.
struct Handler {
    token: u64,
    abort: AbortHandle,
    outbox: Arc<Outbox>,
}

impl Handler {
    /// Stops the tool and refuses its further output.
    fn stop(self) {
        self.abort.abort();
        self.outbox.close();
    }
}

/// Commands applied per wake-up before writing: enough to coalesce a burst
/// of chunks into one WebSocket message, few enough to keep reading.
const COMMANDS_PER_WAKE: usize = 1024;

enum Wake<T> {
    Message(Option<Result<Message, tungstenite::Error>>),
    Timer,
    Command(Option<Command>),
    Handoff(Option<Handoff<T>>),
    Reconnected(Result<T, String>),
}

impl<T, R> Driver<T, R>
where
    T: crate::Transport,
    R: Runtime,
{
    async fn run(mut self) {
        loop {
            self.dispatch_events();
            self.write_out().await;
            // Writing can fail (and so can dispatching); settle again.
            self.dispatch_events();
            if self.session.is_closed() {
                self.write_out().await;
                break;
            }
            if let Some(request) = self.handoff_request.take() {
                if self.hand_off(request).await {
                    // The transport now belongs to the resumed session.
                    return self.forget();
                }
                continue;
            }
            self.start_reconnect();
            let sleep: BoxFuture<()> = match self.session.poll_timeout() {
                Some(at) => self.rt.sleep_until(at),
                None => Box::pin(futures::future::pending()),
            };
            let transport = &mut self.transport;
            let commands = &mut self.commands;
            let handoffs = &mut self.handoffs.1;
            let reconnecting = &mut self.reconnecting;
            let wake = {
                let message = async {
                    match transport.as_mut() {
                        Some(t) => t.next().await,
                        None => futures::future::pending().await,
                    }
                };
                let reconnect = async {
                    match reconnecting.as_mut() {
                        Some(attempt) => attempt.await,
                        None => futures::future::pending().await,
                    }
                };
                select! {
                    m = message.fuse() => Wake::Message(m),
                    _ = sleep.fuse() => Wake::Timer,
                    c = commands.next() => Wake::Command(c),
                    h = handoffs.next() => Wake::Handoff(h),
                    r = reconnect.fuse() => Wake::Reconnected(r),
                }
            };
            // Check the clock after waking rather than trusting the timer.
            let now = Instant::now();
            match wake {
                Wake::Message(Some(Ok(Message::Binary(bytes)))) => self.session.handle_message(now, bytes),
                Wake::Message(Some(Ok(Message::Text(_)))) => self.session.handle_text_message(now),
                Wake::Message(Some(Ok(Message::Close(_)))) | Wake::Message(Some(Err(_))) | Wake::Message(None) => {
                    self.transport = None;
                    self.session.handle_transport_closed(now);
                }
                Wake::Message(Some(Ok(_))) => {} // WebSocket ping/pong: tungstenite answers
                Wake::Timer => self.session.handle_timeout(now),
                Wake::Command(Some(command)) => {
                    self.apply(now, command);
                    // Everything else already queued goes into the same write.
                    for _ in 0..COMMANDS_PER_WAKE {
                        match self.commands.try_recv() {
                            Ok(command) => self.apply(now, command),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Command(None) | Wake::Handoff(None) => {}
                Wake::Handoff(Some(handoff)) => self.adopt(now, handoff),
                Wake::Reconnected(result) => self.reconnected(now, result),
            }
        }
        self.finish().await;
    }

    /// Server, new connection: offers this transport to the session the
    /// client asks to resume. True when that session took it.
    async fn hand_off(&mut self, request: ResumeRequest) -> bool {
        let now = Instant::now();
        let Resumption::Server(registry) = &self.resumption else {
            let _ = self.session.accept(now);
            return false;
        };
        let driver = ResumeKey::of(&request.ticket).and_then(|key| registry.get(&key));
        let (Some(driver), Some(transport)) = (driver, self.transport.take()) else {
            let _ = self.session.accept(now);
            return false;
        };
        let (reply, answer) = oneshot::channel();
        if let Err(e) = driver.unbounded_send(Handoff { transport, request, reply }) {
            // That driver has just ended: resume is impossible, carry on.
            self.transport = Some(e.into_inner().transport);
            let _ = self.session.accept(now);
            return false;
        }
        match answer.await {
            Ok(Ok(())) => true,
            Ok(Err((code, transport))) => {
                self.transport = Some(transport);
                let _ = self.session.accept_refusing_resume(Instant::now(), code);
                false
            }
            // The old driver ended while holding the transport: it is gone.
            Err(_) => true,
        }
    }

    /// Server, old session: a resuming client's transport arrived.
    fn adopt(&mut self, now: Instant, handoff: Handoff<T>) {
        match self.session.resume(now, &handoff.request) {
            Ok(()) => {
                tracing::debug!("session resumed on a new transport");
                // Replacing the old transport (if the session still had
                // one) drops and closes it.
                self.transport = Some(handoff.transport);
                let _ = handoff.reply.send(Ok(()));
            }
            Err(code) => {
                let _ = handoff.reply.send(Err((code, handoff.transport)));
            }
        }
    }

    /// Client: while detached, keep one reconnect attempt under way.
    fn start_reconnect(&mut self) {
        let Resumption::Client(connect) = &mut self.resumption else { return };
        if self.reconnecting.is_some()
            || self.transport.is_some()
            || self.session.state() != asp_proto::SessionState::Detached
        {
            return;
        }
        let delay = self.rt.sleep_until(Instant::now() + self.backoff);
        let attempt = connect();
        self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
        self.reconnecting = Some(Box::pin(async move {
            delay.await;
            attempt.await
        }));
    }

    fn reconnected(&mut self, now: Instant, result: Result<T, String>) {
        self.reconnecting = None;
        match result {
            Ok(transport) if self.session.state() == asp_proto::SessionState::Detached => {
                tracing::debug!("reconnected; resuming");
                self.transport = Some(transport);
                if self.session.reconnect(now).is_err() {
                    self.transport = None;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reconnect failed"),
        }
    }

    /// Leaves without closing anything: this connection's transport now
    /// belongs to another driver.
    fn forget(mut self) {
        if let Some(key) = self.registered.take() {
            if let Resumption::Server(registry) = &self.resumption {
                registry.remove(&key);
            }
        }
    }

    /// Sends every ready transmit as one WebSocket message each (the
    /// session already coalesces frames that are ready together).
    async fn write_out(&mut self) {
        let Some(t) = self.transport.as_mut() else {
            while self.session.poll_transmit().is_some() {}
            return;
        };
        let mut wrote = false;
        let mut failed = false;
        while let Some(batch) = self.session.poll_transmit() {
            if t.feed(Message::Binary(batch)).await.is_err() {
                failed = true;
                break;
            }
            wrote = true;
        }
        if !failed && wrote && t.flush().await.is_err() {
            failed = true;
        }
        if failed {
            self.transport = None;
            self.session.handle_transport_closed(Instant::now());
        }
    }

    /// Closes the WebSocket with the code that matches the session's end.
    /// Server: index this session for resumption under its current key.
    fn register(&mut self) {
        if let (Resumption::Server(registry), Some(key)) = (&self.resumption, self.session.resume_key()) {
            if self.registered != Some(key) {
                if let Some(old) = self.registered.take() {
                    registry.remove(&old);
                }
                registry.insert(key, self.handoffs.0.clone());
                self.registered = Some(key);
            }
        }
    }

    async fn finish(&mut self) {
        if let (Resumption::Server(registry), Some(key)) = (&self.resumption, self.registered.take()) {
            registry.remove(&key);
        }
        let reason = self.conn.shared.lock().expect("lock").closed.clone();
        if let (Some(mut t), Some(reason)) = (self.transport.take(), reason) {
            let frame = CloseFrame {
                code: CloseCode::from(reason.websocket_code()),
                reason: asp_proto::limits::truncate_close_reason(reason.message.clone()).into(),
            };
            let _ = t.send(Message::Close(Some(frame))).await;
            let _ = t.close().await;
        }
        for (_, handler) in self.handlers.drain() {
            handler.stop();
        }
    }

    fn dispatch_events(&mut self) {
        // One clock read per batch of events: only accept() and handlers'
        // bookkeeping need it, and a batch is handled in microseconds.
        let now = Instant::now();
        let mut batch: Option<(RequestId, Vec<Bytes>)> = None;
        while let Some(event) = self.session.poll_event() {
            if !matches!(event, Event::Chunk { .. }) {
                // Anything else about an invocation comes after its output.
                self.deliver(batch.take());
            }
            match event {
                Event::HelloReceived(info) => {
                    let verdict = self.auth.as_ref().map_or(Ok(()), |auth| auth(&info));
                    match verdict {
                        Ok(()) if info.resume_requested && matches!(self.resumption, Resumption::Server(_)) => {
                            self.handoff_request = self.session.resume_request().cloned();
                        }
                        Ok(()) => {
                            let _ = self.session.accept(now);
                        }
                        Err((code, message)) => self.session.reject(now, code, message),
                    }
                }
                Event::Connected { cid, .. } => {
                    tracing::Span::current().record("cid", cid.as_str());
                    tracing::debug!(%cid, "connected");
                    let mut shared = self.conn.shared.lock().expect("lock");
                    shared.cid = Some(cid);
                    shared.peer_tools = self.session.peer_tools().clone();
                    drop(shared);
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    self.backoff = RECONNECT_BACKOFF_MIN;
                    self.register();
                }
                Event::Detached { .. } => {
                    // Drop the transport (dead or silent); a client reconnects.
                    self.transport = None;
                }
                Event::Invoked { id, invoke } => self.start_handler(now, id, invoke),
                Event::Interrupted { id, code } => {
                    tracing::debug!(%id, %code, "handler stopped");
                    if let Some(handler) = self.handlers.remove(&id) {
                        handler.stop();
                    }
                    for chunk in self.pending.remove(&id).unwrap_or_default().chunks {
                        chunk.finish(Err(SendError::NotOpen(id)));
                    }
                }
                Event::Chunk { id, data } => {
                    // Chunks of one message go to their reader as one batch.
                    match batch.as_mut() {
                        Some((batch_id, chunks)) if *batch_id == id => chunks.push(data),
                        _ => {
                            self.deliver(batch.take());
                            batch = Some((id, vec![data]));
                        }
                    }
                    continue;
                }
                Event::Progress { id, progress } => {
                    if let Some((_, tx)) = self.invocations.get(&id) {
                        let _ = tx.unbounded_send(InvocationEvent::Progress(progress));
                    }
                }
                Event::Completed { id, result, metrics } => {
                    if let Some((_, tx)) = self.invocations.remove(&id) {
                        let _ = tx.unbounded_send(InvocationEvent::Done(Ok(Completion { result, metrics })));
                    }
                }
                Event::Failed { id, error } => {
                    if let Some((_, tx)) = self.invocations.remove(&id) {
                        let _ = tx.unbounded_send(InvocationEvent::Done(Err(error)));
                    }
                }
                Event::Writable { .. } => self.retry_pending(),
                Event::PeerToolsChanged => {
                    // The handshake's tools were published with `Connected`
                    // already; a watcher added after `connect` returned must
                    // not see them as a change.
                    let mut shared = self.conn.shared.lock().expect("lock");
                    if shared.peer_tools != *self.session.peer_tools() {
                        shared.peer_tools = self.session.peer_tools().clone();
                        shared.tool_watchers.retain(|w| w.unbounded_send(()).is_ok());
                    }
                }
                Event::Closed(reason) => self.on_closed(reason),
                _ => {}
            }
        }
        self.deliver(batch.take());
    }

    /// Hands a batch of output to its invocation's reader; output nobody
    /// will read gets its credit back at once.
    fn deliver(&mut self, batch: Option<(RequestId, Vec<Bytes>)>) {
        let Some((id, chunks)) = batch else { return };
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let delivered =
            self.invocations.get(&id).is_some_and(|(_, tx)| tx.unbounded_send(InvocationEvent::Chunks(chunks)).is_ok());
        if !delivered {
            self.session.grant(id, len);
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        tracing::debug!(code = %reason.code, message = %reason.message, "closed");
        for (id, outgoing) in self.pending.drain() {
            for chunk in outgoing.chunks {
                chunk.finish(Err(SendError::NotOpen(id)));
            }
        }
        let mut shared = self.conn.shared.lock().expect("lock");
        shared.closed = Some(reason.clone());
        for watcher in shared.close_watchers.drain(..) {
            let _ = watcher.send(reason.clone());
        }
        drop(shared);
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(reason));
        }
    }

    fn start_handler(&mut self, now: Instant, id: RequestId, invoke: asp_proto::Invoke) {
        let Some(tool) = self.tools.get(&invoke.tool) else {
            let _ = self.session.fail(id, ErrorCode::UNKNOWN_TOOL, format!("no tool named `{}`", invoke.tool));
            return;
        };
        let token = self.token();
        let outbox = Arc::new(Outbox::default());
        let ctx = ToolContext { id, tool: invoke.tool.clone(), conn: self.conn.clone(), token, outbox: outbox.clone() };
        let span = tracing::info_span!("asp_invocation", id = id.0, tool = %invoke.tool);
        let (abort, registration) = AbortHandle::new_pair();
        self.handlers.insert(id, Handler { token, abort, outbox });
        let mut call = tool.call(ctx, invoke.args);
        // Poll once here: a tool that finishes at once (an echo, a lookup)
        // completes without a task of its own and two trips through the
        // command channel. If it is not ready, the task polls it again with
        // a real waker.
        let waker = futures::task::noop_waker();
        let first = span.in_scope(|| call.as_mut().poll(&mut std::task::Context::from_waker(&waker)));
        let end = match first {
            std::task::Poll::Ready(Ok(result)) => HandlerEnd::Complete(result),
            std::task::Poll::Ready(Err(e)) => HandlerEnd::Fail(e.code, e.message),
            std::task::Poll::Pending => {
                let conn = self.conn.clone();
                let call = Abortable::new(call, registration);
                self.rt.spawn(Box::pin(
                    async move {
                        let command = match call.await {
                            Ok(Ok(result)) => Command::Complete { id, token, result },
                            Ok(Err(e)) => Command::Fail { id, token, code: e.code, message: e.message },
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
        self.end_handler(now, id, end);
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// True when `token` is the running handler of `id`.
    fn is_current_handler(&self, id: RequestId, token: u64) -> bool {
        self.handlers.get(&id).is_some_and(|h| h.token == token)
    }

    fn apply(&mut self, now: Instant, command: Command) {
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
                if !self.is_current_handler(id, token) {
                    return outbox.close();
                }
                for data in outbox.take_all() {
                    let chunk = PendingChunk { data, outbox: outbox.clone() };
                    // Behind earlier blocked output: keep the order.
                    if let Some(outgoing) = self.pending.get_mut(&id) {
                        outgoing.chunks.push_back(chunk);
                        continue;
                    }
                    if let Some(blocked) = self.offer(id, chunk) {
                        self.pending.entry(id).or_default().chunks.push_back(blocked);
                    }
                }
            }
            Command::Progress { id, token, progress } => {
                if self.is_current_handler(id, token) {
                    // Progress is advisory: without credit it is dropped.
                    let _ = self.session.send_progress(id, progress);
                }
            }
            Command::Complete { id, token, result } => {
                if self.is_current_handler(id, token) {
                    self.end_handler(now, id, HandlerEnd::Complete(result));
                }
            }
            Command::Fail { id, token, code, message } => {
                if self.is_current_handler(id, token) {
                    self.end_handler(now, id, HandlerEnd::Fail(code, message));
                }
            }
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

    /// Gives a chunk to the session; returns what is left when out of credit.
    fn offer(&mut self, id: RequestId, mut chunk: PendingChunk) -> Option<PendingChunk> {
        let before = chunk.data.len();
        let result = self.session.send_chunk(id, &mut chunk.data);
        let taken = before - chunk.data.len();
        chunk.outbox.release(taken);
        match result {
            Err(SendError::Blocked) => Some(chunk),
            result => {
                chunk.finish(result);
                None
            }
        }
    }

    /// Ends a handler's invocation, after its queued output if it has any.
    fn end_handler(&mut self, now: Instant, id: RequestId, end: HandlerEnd) {
        if let Some(outgoing) = self.pending.get_mut(&id) {
            outgoing.end = Some(end);
            return;
        }
        if let Some(handler) = self.handlers.remove(&id) {
            handler.outbox.close();
        }
        let _ = match end {
            HandlerEnd::Complete(result) => self.session.complete(now, id, result, None),
            HandlerEnd::Fail(code, message) => self.session.fail(id, code, message),
        };
    }

    /// Credit arrived: hand waiting output to the session again, in order;
    /// a handler's end follows once all of its output is taken.
    fn retry_pending(&mut self) {
        let now = Instant::now();
        let ids: Vec<RequestId> = self.pending.keys().copied().collect();
        for id in ids {
            let mut outgoing = self.pending.remove(&id).expect("listed");
            while let Some(chunk) = outgoing.chunks.pop_front() {
                if let Some(blocked) = self.offer(id, chunk) {
                    outgoing.chunks.push_front(blocked);
                    break;
                }
            }
            if !outgoing.chunks.is_empty() {
                self.pending.insert(id, outgoing);
            } else if let Some(end) = outgoing.end {
                self.end_handler(now, id, end);
            }
        }
    }
}
