//! The Sans-IO session: client and server state machines (SPEC.md §5, §8–§13).

mod closing;
mod config;
mod error;
mod event;
mod flow;
mod handshake;
mod invocation;
mod invocations;
mod liveness;
mod outbound;
mod output;
mod replay;
mod restart;
mod resume;
mod routing;
mod timer;
mod tools;

use std::collections::{BTreeSet, VecDeque};

use crate::wire::RequestIdMap;
use std::time::Duration;

use web_time::Instant;

use bytes::{Buf, Bytes};
use subtle::ConstantTimeEq;

pub use config::{caps, Entropy, SessionConfig};
pub use error::SendError;
pub use event::{CloseReason, DetachReason, Event, HelloInfo, Initiator};
pub use invocation::{InvocationInfo, InvocationRole, InvocationState};
pub use output::{Flushed, Output, OutputQueue, QueueState};
pub use restart::SessionSnapshot;
pub use routing::{ResumeIndex, ResumeOutcome};
pub use tools::ToolSet;

use closing::GoAwayState;
use flow::ConnFlow;
use invocation::Invocation;
use liveness::Liveness;
use outbound::Outbound;
use replay::ReplayBuffer;
use resume::Resumption;
use timer::{Timer, TimerTable};

use crate::limits::{self, ACK_EVERY_FRAMES, MAX_WINDOW, TICKET_LEN};
use crate::{
    ClientHello, Complete, Decoder, ErrorCode, ErrorInfo, Frame, FrameError, FrameHeader, GoAway, Interrupt, Invoke,
    Metrics, PeerLimits, Ping, Pong, Progress, RequestId, ResumeOffer, ResumeRequest, Resumed, Role, ServerHello,
    ToolDef, ToolOp, ToolSpec, Value, Window,
};

/// Where a session stands (SPEC.md §8.5).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Client: HELLO sent, waiting for the answer. Server: waiting for HELLO.
    Handshaking,
    /// Server: HELLO received; waiting for the application to accept or reject.
    Authenticating,
    /// Running.
    Open,
    /// A GOAWAY was sent or received: no new invocations.
    Draining,
    /// The transport is gone; the session waits to be resumed.
    Detached,
    /// Over.
    Closed,
}

/// Counters for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent (encoded for the transport; replays are not counted again).
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes of frames sent.
    pub bytes_out: u64,
    /// Smoothed round-trip time from PING/PONG.
    pub rtt: Option<Duration>,
    /// Invocations open, in either role.
    pub open_invocations: usize,
    /// Bytes held: partial input frame, unsent output, replay buffer.
    pub buffered_bytes: usize,
    /// Of which in the replay buffer (sent, not yet acknowledged).
    pub replay_bytes: usize,
}

/// The limits in force for one direction, with defaults filled in.
#[derive(Copy, Clone, Debug)]
struct Limits {
    max_frame: u32,
    max_inv: u16,
    win: u32,
    cwin: u32,
}

impl Limits {
    fn of(announced: &PeerLimits) -> Limits {
        Limits {
            max_frame: announced.max_frame.unwrap_or(limits::DEFAULT_MAX_FRAME_PAYLOAD),
            max_inv: announced.max_inv.unwrap_or(limits::DEFAULT_MAX_CONCURRENT_INVOCATIONS),
            win: announced.win.unwrap_or(limits::DEFAULT_INVOCATION_WINDOW),
            cwin: announced.cwin.unwrap_or(limits::DEFAULT_CONNECTION_WINDOW),
        }
    }
}

/// The key a server indexes detached sessions by: the first 8 bytes of the
/// resume ticket, which stay the same for the life of a session while the
/// secret part changes on every resume.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResumeKey([u8; 8]);

impl ResumeKey {
    /// The key of a ticket, or `None` for a ticket too short to have one.
    pub fn of(ticket: &[u8]) -> Option<ResumeKey> {
        ticket.get(..8).map(|k| ResumeKey(k.try_into().expect("8 bytes")))
    }

    /// The key's bytes (the first 8 of every ticket of the session).
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

/// One ASP/1 session, client or server, without I/O.
///
/// The session never touches a socket, a clock or a thread. The caller — a
/// runtime adapter or a test — moves bytes and time in and out:
///
/// 1. **Inputs**: [`handle_input`](Self::handle_input) with bytes as they
///    arrive (any chunking), or [`handle_message`](Self::handle_message) with
///    one whole WebSocket binary message; [`handle_timeout`](Self::handle_timeout)
///    when the deadline from `poll_timeout` passes (early or repeated calls
///    are harmless); [`handle_transport_closed`](Self::handle_transport_closed)
///    when the transport ends.
/// 2. **Commands**: [`invoke`](Self::invoke), [`send_chunk`](Self::send_chunk),
///    [`complete`](Self::complete), [`fail`](Self::fail),
///    [`interrupt`](Self::interrupt), [`grant`](Self::grant),
///    [`push_tools`](Self::push_tools), [`goaway`](Self::goaway),
///    [`close`](Self::close), and on a server [`accept`](Self::accept) /
///    [`reject`](Self::reject) / [`resume`](Self::resume). Commands never
///    block: when a bound is reached they say so ([`SendError::Blocked`]) and
///    an [`Event::Writable`] later says when to retry.
/// 3. **Outputs**: after *every* input or command, drain
///    [`poll_transmit`](Self::poll_transmit) (bytes to write, in order; one
///    result is one WebSocket message), then [`poll_event`](Self::poll_event),
///    then ask [`poll_timeout`](Self::poll_timeout) for the next deadline.
///
/// `now` is the caller's monotonic clock and must never go backwards. Time
/// never advances inside the session, so tests drive it with a virtual clock.
///
/// A peer that breaks the protocol gets an ERROR frame and the session ends
/// with [`Event::Closed`]; no input can panic the session.
///
/// Memory is bounded by configuration: one partial input frame (the
/// negotiated maximum), the replay buffer (STREAM sends block when it is
/// full), and the output and event queues, which only grow with the input
/// of one call and are emptied by draining them.
pub struct Session {
    role: Role,
    /// The configuration; its `tools` are moved to `local_tools`.
    config: SessionConfig,
    entropy: Option<Box<dyn Entropy>>,
    state: SessionState,
    /// A transport is attached (frames may be transmitted).
    transport: bool,
    decoder: Decoder,
    outbound: Outbound,
    events: VecDeque<Event>,
    timers: TimerTable,

    /// Server: the upgrade's bearer token, and the HELLO awaiting a verdict.
    transport_token: Option<String>,
    client_hello: Option<ClientHello>,
    cid: Option<String>,
    /// What the peer announced: limits, capabilities, tools.
    peer: Limits,
    peer_caps: Vec<String>,
    peer_tools: ToolSet,
    local_tools: ToolSet,

    resumption: Resumption,
    invocations: RequestIdMap<Invocation>,
    deadlines: BTreeSet<(Instant, RequestId)>,
    next_id: u16,
    conn_flow: ConnFlow,
    liveness: Liveness,
    goaway: GoAwayState,
    stats: Stats,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("cid", &self.cid)
            .field("invocations", &self.invocations.len())
            .finish_non_exhaustive()
    }
}

// ------------------------------------------------------------- construction

impl Session {
    /// A client session. Its HELLO is queued at once: drain `poll_transmit`
    /// as soon as the transport is open.
    pub fn client(config: SessionConfig, now: Instant) -> Session {
        let mut session = Session::new(Role::Client, config, None, now);
        let hello = session.own_client_hello(None);
        session.send(&Frame::Hello(hello)).expect("our own HELLO is valid");
        session
    }

    /// A server session for a newly accepted transport. `entropy` makes the
    /// connection id and resume tickets.
    pub fn server(config: SessionConfig, now: Instant, entropy: Box<dyn Entropy>) -> Session {
        Session::new(Role::Server, config, Some(entropy), now)
    }

    fn new(role: Role, mut config: SessionConfig, entropy: Option<Box<dyn Entropy>>, now: Instant) -> Session {
        // The tools live on in `local_tools` only: a second copy in the
        // kept config would cost every idle server connection its size.
        let tools = std::mem::take(&mut config.tools);
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + config.handshake_timeout);
        Session {
            role,
            decoder: Session::handshake_decoder(&config),
            entropy,
            state: SessionState::Handshaking,
            transport: true,
            outbound: Outbound::default(),
            events: VecDeque::new(),
            timers,
            transport_token: None,
            client_hello: None,
            cid: None,
            peer: Limits::of(&PeerLimits::default()),
            peer_caps: Vec::new(),
            peer_tools: ToolSet::default(),
            local_tools: tools,
            resumption: Resumption::new(&config),
            invocations: RequestIdMap::default(),
            deadlines: BTreeSet::new(),
            next_id: if role == Role::Client { 1 } else { 2 },
            conn_flow: ConnFlow::new(&config),
            liveness: Liveness::new(&config),
            goaway: GoAwayState::default(),
            stats: Stats::default(),
            config,
        }
    }

    /// The decoder before the handshake (and while detached): frames are
    /// bounded by the pre-handshake limit until the peer is known.
    fn handshake_decoder(config: &SessionConfig) -> Decoder {
        Decoder::new(config.max_frame_payload.min(limits::HANDSHAKE_MAX_FRAME_PAYLOAD))
    }
}

// ------------------------------------------------------------------ queries

impl Session {
    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The connection id, once the handshake has completed.
    pub fn connection_id(&self) -> Option<&str> {
        self.cid.as_deref()
    }

    /// True once the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == SessionState::Closed
    }

    /// The peer's tools as they are now.
    pub fn peer_tools(&self) -> &ToolSet {
        &self.peer_tools
    }

    /// Our tools, as the peer knows them.
    pub fn local_tools(&self) -> &ToolSet {
        &self.local_tools
    }

    /// The state of an open invocation; `None` when `id` is not open.
    pub fn invocation(&self, id: RequestId) -> Option<InvocationInfo> {
        let inv = self.invocations.get(&id)?;
        Some(InvocationInfo {
            role: inv.role,
            state: inv.state,
            tool: inv.tool.clone(),
            started: inv.started,
            deadline: inv.deadline,
            send_credit: match inv.role {
                InvocationRole::Handler => inv.send_window.min(self.conn_flow.send_window),
                InvocationRole::Invoker => 0,
            },
        })
    }

    /// Smoothed round-trip time, once a PONG has been seen.
    pub fn rtt(&self) -> Option<Duration> {
        self.stats.rtt
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            open_invocations: self.invocations.len(),
            buffered_bytes: self.decoder.buffered() + self.outbound.len() + self.resumption.replay.bytes(),
            replay_bytes: self.resumption.unacked_bytes,
            ..self.stats.clone()
        }
    }

    /// Bytes encoded and not yet taken by [`poll_transmit`](Self::poll_transmit).
    /// Flow-control credit bounds what the peer may be sent, not what waits
    /// for a transport that is not writable: an adapter holds its own output
    /// back while this is high, so a peer that announces large windows and
    /// stops reading costs bounded memory.
    pub fn unsent_bytes(&self) -> usize {
        self.outbound.len()
    }

    /// Server: the key to index this session by for resumption, while it
    /// can be resumed.
    pub fn resume_key(&self) -> Option<ResumeKey> {
        self.resumption.ticket.as_deref().filter(|_| self.resumption.active).and_then(ResumeKey::of)
    }

    /// Server: the resume request of the HELLO awaiting acceptance, if any.
    pub fn resume_request(&self) -> Option<&ResumeRequest> {
        self.client_hello.as_ref()?.resume.as_ref()
    }
}

// ------------------------------------------------------------------- outputs

impl Session {
    /// The next bytes to write to the transport, in order. Each result may
    /// hold several frames; over WebSocket, send it as one binary message.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        // As much as fits in one message the peer accepts, cut between
        // frames; at least one frame (a frame always fits).
        let limit = self.message_limit();
        self.outbound.cut(limit, &mut self.resumption.replay)
    }

    /// The largest WebSocket message the peer must accept: one maximal frame
    /// (SPEC.md §3.2).
    fn message_limit(&self) -> usize {
        self.peer_max_frame() as usize + FrameHeader::LEN
    }

    /// The largest payload the peer accepts now: its announced limit, or
    /// the pre-handshake limit before it has announced one.
    fn peer_max_frame(&self) -> u32 {
        if self.cid.is_some() {
            self.peer.max_frame
        } else {
            limits::HANDSHAKE_MAX_FRAME_PAYLOAD
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.deadlines.first().map(|(at, _)| *at);
        match (self.timers.next(), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

// -------------------------------------------------------------------- inputs

impl Session {
    /// Feeds bytes from a byte-stream transport, in chunks of any size.
    pub fn handle_input(&mut self, now: Instant, mut data: &[u8]) {
        self.stats.bytes_in += data.len() as u64;
        self.decode_from(now, &mut data);
    }

    /// Feeds one whole WebSocket binary message: like
    /// [`handle_input`](Self::handle_input), without copying STREAM
    /// payloads, and a message that ends inside a frame is `TRUNCATED_FRAME`.
    pub fn handle_message(&mut self, now: Instant, mut message: Bytes) {
        self.stats.bytes_in += message.len() as u64;
        self.decode_from(now, &mut message);
        if self.transport && !self.is_closed() {
            if let Err(err) = self.decoder.finish() {
                self.protocol_error(err.code(), err.to_string());
            }
        }
    }

    /// A WebSocket text message arrived: a protocol violation (close 1003).
    pub fn handle_text_message(&mut self, _now: Instant) {
        self.protocol_error(ErrorCode::TEXT_MESSAGE, "text messages are not allowed; ASP uses binary".into());
    }

    fn decode_from<B: Buf>(&mut self, now: Instant, input: &mut B) {
        while self.transport && !self.is_closed() {
            match self.decoder.decode(input) {
                Ok(Some(frame)) => self.on_frame(now, frame),
                Ok(None) => break,
                Err(err) => {
                    self.on_decode_error(err);
                    break;
                }
            }
        }
    }

    fn on_decode_error(&mut self, err: FrameError) {
        self.protocol_error(err.code(), err.to_string());
    }

    /// Wakes the session's timers: handshake, heartbeat, resume grace, drain
    /// and invocation deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.expired(now) {
            match timer {
                // A reconnect attempt that got no answer: detached again,
                // still within the grace period.
                Timer::Handshake if self.state == SessionState::Detached => {
                    self.detach(now, DetachReason::PeerUnresponsive)
                }
                Timer::Handshake => {
                    self.protocol_error(ErrorCode::HANDSHAKE_TIMEOUT, "the handshake did not complete in time".into())
                }
                Timer::Heartbeat => self.on_heartbeat(now),
                Timer::Grace => self.end(
                    ErrorCode::SESSION_LOST,
                    "the session was not resumed within its grace period".into(),
                    Initiator::Local,
                ),
                Timer::Drain => self.on_drain_deadline(),
            }
        }
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.on_deadline(id);
        }
    }

    /// The transport ended (closed, reset, or dropped by the adapter after
    /// [`Event::Detached`]). With resume the session detaches and waits;
    /// otherwise it ends, failing open invocations with `SESSION_LOST`.
    pub fn handle_transport_closed(&mut self, now: Instant) {
        if !self.transport || self.is_closed() {
            return;
        }
        self.detach(now, DetachReason::TransportClosed);
    }

    /// Server: the token the adapter took from the upgrade request's
    /// `Authorization` header, surfaced in [`HelloInfo::token`] when HELLO
    /// carries none.
    pub fn set_transport_token(&mut self, token: Option<String>) {
        self.transport_token = token;
    }
}

// ----------------------------------------------------------- frame dispatch

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

fn is_sequenced(frame: &Frame) -> bool {
    !matches!(frame, Frame::Hello(_) | Frame::HelloReply(_) | Frame::Ping(_) | Frame::Pong(_))
}

impl Session {
    fn on_frame(&mut self, now: Instant, frame: Frame) {
        self.stats.frames_in += 1;
        match self.state {
            SessionState::Handshaking | SessionState::Detached => self.on_handshake_frame(now, frame),
            SessionState::Authenticating => self.protocol_error(
                ErrorCode::UNEXPECTED_FRAME,
                format!("{} before the server's HELLO", frame.frame_type()),
            ),
            SessionState::Open | SessionState::Draining => {
                if is_sequenced(&frame) {
                    self.resumption.recv_seq += 1;
                    self.resumption.recv_since_ack += 1;
                }
                self.on_session_frame(now, frame);
                self.maybe_ack(now);
            }
            SessionState::Closed => {}
        }
    }

    fn on_handshake_frame(&mut self, now: Instant, frame: Frame) {
        match (self.role, frame) {
            (Role::Server, Frame::Hello(hello)) if self.state == SessionState::Handshaking => {
                self.on_client_hello(hello)
            }
            (Role::Client, Frame::HelloReply(hello)) => self.on_server_hello(now, hello),
            (_, Frame::Error(id, error)) if id.is_connection() => self.on_peer_fatal(error),
            (_, frame) => self.protocol_error(
                ErrorCode::UNEXPECTED_FRAME,
                format!("{} frame before the handshake completed", frame.frame_type()),
            ),
        }
    }

    fn on_session_frame(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Hello(_) | Frame::HelloReply(_) => {
                self.protocol_error(ErrorCode::UNEXPECTED_FRAME, "HELLO after the handshake".into())
            }
            Frame::Invoke(id, invoke) => self.on_invoke(now, id, invoke),
            Frame::Stream(id, data) => self.on_stream(id, Some(data), None),
            Frame::Progress(id, progress) => self.on_stream(id, None, Some(progress)),
            Frame::Interrupt(id, _) => self.on_interrupt(id),
            Frame::ToolDef(def) => self.on_tool_def(def),
            Frame::Error(id, error) if id.is_connection() => self.on_peer_fatal(error),
            Frame::Error(id, error) => self.on_terminal(id, Err(error)),
            Frame::Complete(id, complete) => self.on_terminal(id, Ok(complete)),
            Frame::Ping(ping) => self.on_ping(ping),
            Frame::Pong(pong) => self.on_pong(now, pong),
            Frame::Window(id, window) => self.on_window(id, window.credit),
            Frame::GoAway(goaway) => self.on_goaway(goaway),
        }
    }
}

// ------------------------------------------------------------------- sending

impl Session {
    /// Encodes `frame` for the transport, numbering it when it is
    /// sequenced. Without a transport, sequenced frames go straight to the
    /// replay buffer (resume sends them) and the others are dropped.
    fn send(&mut self, frame: &Frame) -> Result<(), SendError> {
        let (start, len) = self.outbound.encode(frame)?;
        let payload = len - FrameHeader::LEN;
        let max = self.peer_max_frame();
        if payload > max as usize {
            self.outbound.discard_from(start);
            return Err(SendError::TooLarge { len: payload, max });
        }
        self.stats.frames_out += 1;
        self.stats.bytes_out += len as u64;
        let established = matches!(self.state, SessionState::Open | SessionState::Draining | SessionState::Detached);
        let sequenced = established && is_sequenced(frame);
        let attached = self.transport && self.state != SessionState::Detached;
        if sequenced {
            let seq = self.resumption.sent_seq;
            self.resumption.sent_seq += 1;
            if self.resumption.active {
                self.resumption.unacked_bytes += len;
                if attached {
                    self.outbound.commit_sequenced(seq, start, len);
                } else {
                    let frame = self.outbound.take_from(start);
                    self.resumption.replay.push(seq, frame);
                }
                return Ok(());
            }
        }
        if !attached && !matches!(frame, Frame::Hello(_) | Frame::HelloReply(_)) {
            self.outbound.discard_from(start);
        } else {
            self.outbound.commit(start, len);
        }
        Ok(())
    }
}
