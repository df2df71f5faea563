//! The task that owns one session (quinn's `ConnectionDriver`): a loop over
//! the transport, the session's deadline, the application's commands,
//! resume hand-offs and reconnect attempts.
//!
//! Each wake-up feeds one input to the [`Session`] with the runtime's clock
//! read once, then settles: events go to the application and to tool
//! handlers ([`events`](self::events)), queued transmits go to the socket.
//! The jobs are split by file:
//!
//! - this file: the loop, writing, and the end of the connection;
//! - `events.rs`: what the session's events mean for the application;
//! - `handlers.rs`: running our tools, their output under flow control
//!   (through [`OutputQueue`](asp_proto::OutputQueue)) and the
//!   application's commands;
//! - `handoff.rs`: moving a transport between sessions for resumption
//!   (server) and reconnecting while detached (client).

mod events;
mod handlers;
mod handoff;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use asp_proto::wire::RequestIdMap;
use asp_proto::{CloseReason, HelloInfo, ResumeKey, ResumeRequest, Session, SessionConfig};
use futures::channel::{mpsc, oneshot};
use futures::future::Fuse;
use futures::future::FusedFuture as _;
use futures::stream::FusedStream as _;
use futures::{select, FutureExt, SinkExt, StreamExt};
use std::task::Poll;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

use crate::caller::{AuthHook, Verdict};
use crate::command::Command;
use crate::connection::Connection;
use crate::invocation::InvocationEvent;
use crate::resume::{Handoff, Resumption};
use crate::tools::ToolRegistry;
use crate::{BoxFuture, Runtime};

use handlers::Handler;

/// Told once the handshake completes, or why it did not.
pub(crate) type ReadySignal = oneshot::Sender<Result<(), CloseReason>>;

/// What a connection's driver needs besides the transport.
#[derive(Clone)]
pub(crate) struct DriverConfig {
    /// The session's limits and timers.
    pub(crate) session: SessionConfig,
    /// The tools this side offers.
    pub(crate) tools: ToolRegistry,
    /// Server: who may connect. `None` accepts everyone.
    pub(crate) auth: Option<AuthHook>,
}

/// Starts driving `session` over `transport`: returns the handle for the
/// application and the future that does the work, which the caller spawns
/// (inside its tracing span, on its runtime).
pub(crate) fn run_connection<T, R>(
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
    config.tools.subscribe(&conn);
    let driver = Driver {
        rt,
        transport: Some(transport),
        session,
        commands,
        conn: conn.clone(),
        tools: config.tools,
        auth: config.auth,
        authenticating: None,
        ready,
        invocations: RequestIdMap::default(),
        handlers: RequestIdMap::default(),
        next_token: 1,
        handoffs: mpsc::unbounded(),
        resumption,
        registered: None,
        handoff_request: None,
        reconnecting: None,
        backoff: RECONNECT_BACKOFF_MIN,
        attempts: 0,
        sleep: None,
        turn: 0,
        counted: false,
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
    /// Server: the auth hook's verdict on this HELLO, while it is pending.
    authenticating: Option<(HelloInfo, BoxFuture<Verdict>)>,
    ready: Option<ReadySignal>,
    /// Invocations we made: where their output goes, and their token.
    invocations: RequestIdMap<(u64, mpsc::UnboundedSender<InvocationEvent>)>,
    /// Invocations we handle: the running tool, and its output waiting for
    /// credit.
    handlers: RequestIdMap<Handler>,
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
    /// Client: reconnect attempts since the transport was lost.
    attempts: u32,
    /// The session's next deadline and the timer armed for it; kept across
    /// loop turns and replaced only when the deadline moves.
    sleep: Option<(Instant, Fuse<BoxFuture<()>>)>,
    /// Which source [`wait`](Self::wait) polls first (turns round).
    turn: u8,
    /// The session was counted as opened in the metrics (once, not again
    /// on resume), so its end is counted too.
    counted: bool,
}

/// Waits for `io` (a write to the transport) while running the session's
/// timers. `None` when the session detached or closed meanwhile (a dead
/// peer): the write is abandoned with the transport.
async fn with_timers<R: Runtime, F: std::future::Future<Output = Result<(), tungstenite::Error>>>(
    rt: &R,
    session: &mut Session,
    io: F,
) -> Option<Result<(), tungstenite::Error>> {
    let io = io.fuse();
    futures::pin_mut!(io);
    // A write into the socket's buffer is usually done at once: then no
    // timer is made (a timer polled once is registered with the runtime's
    // timer wheel and removed again on drop, per write).
    if let Some(result) = (&mut io).now_or_never() {
        return Some(result);
    }
    let attached = session.state() != asp_proto::SessionState::Detached;
    loop {
        let sleep = match session.poll_timeout() {
            Some(at) => rt.sleep_until(at),
            None => Box::pin(futures::future::pending()),
        };
        select! {
            result = io => return Some(result),
            _ = sleep.fuse() => {
                session.handle_timeout(rt.now());
                let detached = attached && session.state() == asp_proto::SessionState::Detached;
                if detached || session.is_closed() {
                    return None;
                }
            }
        }
    }
}

/// How long a closing side waits for the peer's WebSocket close.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// First and longest wait between a client's reconnect attempts.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What [`Driver::wait`] polls: the transport, the timer, commands,
/// hand-offs, a reconnect attempt and an auth verdict.
const SOURCES: usize = 6;

/// Commands applied per wake-up before writing: enough to coalesce a burst
/// of chunks into one WebSocket message, few enough to keep reading.
const COMMANDS_PER_WAKE: usize = 1024;

enum Wake<T> {
    Message(Option<Result<Message, tungstenite::Error>>),
    Timer,
    Command(Option<Command>),
    Handoff(Option<Handoff<T>>),
    Reconnected(Result<T, String>),
    Authenticated(Verdict),
}

impl<T, R> Driver<T, R>
where
    T: crate::Transport,
    R: Runtime,
{
    /// The connection's task. Not an `async fn`: an async fn keeps its
    /// argument and the moved-in binding as two fields of its future, and
    /// `self` is about 1.6 KB (the session inside), which every idle
    /// connection would pay twice. The `async move` block captures it once.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        async move {
            loop {
                self.settle().await;
                if self.session.is_closed() {
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
                let wake = self.wait().await;
                // Check the clock after waking rather than trusting the timer.
                let now = self.rt.now();
                match wake {
                    Wake::Message(Some(Ok(Message::Binary(bytes)))) => self.session.handle_message(now, bytes),
                    Wake::Message(Some(Ok(Message::Text(_)))) => self.session.handle_text_message(now),
                    Wake::Message(Some(Ok(Message::Close(_)))) | Wake::Message(Some(Err(_))) | Wake::Message(None) => {
                        self.transport = None;
                        self.session.handle_transport_closed(now);
                    }
                    Wake::Message(Some(Ok(_))) => {} // WebSocket ping/pong: tungstenite answers
                    Wake::Timer => {
                        self.sleep = None;
                        self.session.handle_timeout(now);
                    }
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
                    Wake::Authenticated(verdict) => {
                        if let Some((hello, _)) = self.authenticating.take() {
                            self.authenticated(now, &hello, verdict);
                        }
                    }
                }
            }
            self.finish().await;
        }
    }

    /// Acts on the session's events and writes its transmits. Writing can
    /// end the transport (and so produce events), so events are read once
    /// more after the write.
    async fn settle(&mut self) {
        self.dispatch_events(self.rt.now());
        self.write_out().await;
        // Output held back while the session's unsent bytes were high; this
        // ends, as the queues only empty here and fill on commands.
        while self.transport.is_some() && self.refill(self.rt.now()) {
            self.write_out().await;
        }
        self.dispatch_events(self.rt.now());
        if self.session.is_closed() {
            self.write_out().await;
        }
    }

    /// Waits for the next thing to happen.
    ///
    /// The sources are polled in turn, starting one further on each call,
    /// so none can starve the others (a peer flooding us does not hold back
    /// the application's commands, nor they the timers). A hand-written
    /// poll rather than `select!`: that macro builds a future per source and
    /// draws a random number on every wake-up: 2.4k instructions a round
    /// trip, 6% of it (`docs/PERFORMANCE.md`).
    async fn wait(&mut self) -> Wake<T> {
        let deadline = self.session.poll_timeout();
        if self.sleep.as_ref().map(|(at, _)| *at) != deadline {
            self.sleep = deadline.map(|at| (at, self.rt.sleep_until(at).fuse()));
        }
        self.turn = self.turn.wrapping_add(1);
        let first = usize::from(self.turn);
        let Driver { transport, reconnecting, sleep, commands, handoffs, authenticating, .. } = self;
        futures::future::poll_fn(|cx| {
            for source in (0..SOURCES).map(|i| (first + i) % SOURCES) {
                let woken = match source {
                    0 => match transport.as_mut() {
                        Some(t) => t.poll_next_unpin(cx).map(Wake::Message),
                        None => Poll::Pending,
                    },
                    1 => match sleep.as_mut() {
                        Some((_, timer)) if !timer.is_terminated() => timer.poll_unpin(cx).map(|()| Wake::Timer),
                        _ => Poll::Pending,
                    },
                    2 if !commands.is_terminated() => commands.poll_next_unpin(cx).map(Wake::Command),
                    3 if !handoffs.1.is_terminated() => handoffs.1.poll_next_unpin(cx).map(Wake::Handoff),
                    4 => match reconnecting.as_mut() {
                        Some(attempt) => attempt.poll_unpin(cx).map(Wake::Reconnected),
                        None => Poll::Pending,
                    },
                    5 => match authenticating.as_mut() {
                        Some((_, verdict)) => verdict.poll_unpin(cx).map(Wake::Authenticated),
                        None => Poll::Pending,
                    },
                    _ => Poll::Pending,
                };
                if woken.is_ready() {
                    return woken;
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Sends every ready transmit as one WebSocket message each (the
    /// session already coalesces frames that are ready together).
    ///
    /// A write waits while the peer does not read. The session's timers keep
    /// running meanwhile ([`with_timers`]): a peer that stops reading stops
    /// answering PINGs too, and is dropped as unresponsive (SPEC.md §9)
    /// instead of holding this task, and what it was sent, forever.
    async fn write_out(&mut self) {
        let Some(t) = self.transport.as_mut() else {
            while self.session.poll_transmit().is_some() {}
            return;
        };
        let mut wrote = false;
        let mut outcome = Some(Ok(()));
        while let Some(batch) = self.session.poll_transmit() {
            outcome = with_timers(&self.rt, &mut self.session, t.feed(Message::Binary(batch))).await;
            if !matches!(outcome, Some(Ok(()))) {
                break;
            }
            wrote = true;
        }
        if wrote && matches!(outcome, Some(Ok(()))) {
            outcome = with_timers(&self.rt, &mut self.session, t.flush()).await;
        }
        match outcome {
            Some(Ok(())) => {}
            // The write failed: the transport is gone.
            Some(Err(_)) => {
                self.transport = None;
                self.session.handle_transport_closed(self.rt.now());
            }
            // The session gave up on the transport while the write waited.
            None => self.transport = None,
        }
    }

    /// Leaves the registries, closes the WebSocket with the code that
    /// matches the session's end, and stops every running tool.
    async fn finish(&mut self) {
        if self.counted {
            let code = self
                .conn
                .shared
                .lock()
                .expect("lock")
                .closed
                .as_ref()
                .map_or(asp_proto::ErrorCode::NO_ERROR, |r| r.code);
            crate::metrics::connection_closed(self.session.role(), code, &self.session.stats());
        }
        self.unregister();
        self.tools.unsubscribe(&self.conn);
        let reason = self.conn.shared.lock().expect("lock").closed.clone();
        if let (Some(mut t), Some(reason)) = (self.transport.take(), reason) {
            let frame = CloseFrame {
                code: CloseCode::from(reason.websocket_code()),
                reason: asp_proto::limits::truncate_close_reason(reason.message.clone()).into(),
            };
            let _ = t.send(Message::Close(Some(frame))).await;
            // Read until the peer's close comes back (briefly): closing a
            // socket with unread input sends RST, and an RST makes the
            // peer's kernel drop what it had not read yet — the last
            // output, the terminal frames and the close itself.
            let peer_closed = async { while let Some(Ok(_)) = t.next().await {} };
            futures::future::select(Box::pin(peer_closed), self.rt.sleep_until(self.rt.now() + CLOSE_LINGER)).await;
            let _ = t.close().await;
        }
        for (_, handler) in self.handlers.drain() {
            handler.stop();
        }
    }
}
