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
mod output;
mod replay;
mod resume;
mod routing;
mod timer;
mod tools;

use std::collections::{BTreeSet, VecDeque};

use crate::RequestIdMap;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use subtle::ConstantTimeEq;

pub use config::{caps, Entropy, SessionConfig};
pub use error::SendError;
pub use event::{CloseReason, DetachReason, Event, HelloInfo, Initiator};
pub use invocation::{InvocationInfo, InvocationRole, InvocationState};
pub use output::{Flushed, Output, OutputQueue, QueueState};
pub use routing::{ResumeIndex, ResumeOutcome};
pub use tools::ToolSet;

use invocation::Invocation;
use replay::ReplayBuffer;
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
pub struct ResumeKey(pub [u8; 8]);

impl ResumeKey {
    /// The key of a ticket, or `None` for a ticket too short to have one.
    pub fn of(ticket: &[u8]) -> Option<ResumeKey> {
        ticket.get(..8).map(|k| ResumeKey(k.try_into().expect("8 bytes")))
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
    config: SessionConfig,
    entropy: Option<Box<dyn Entropy>>,
    state: SessionState,
    /// A transport is attached (frames may be transmitted).
    transport: bool,
    decoder: Decoder,
    out: BytesMut,
    /// Sequenced frames in `out`: (sequence number, start, end).
    pending: Vec<(u64, usize, usize)>,
    /// Where each frame in `out` ends, so transmits are cut between frames.
    frame_ends: VecDeque<usize>,
    events: VecDeque<Event>,
    timers: TimerTable,

    transport_token: Option<String>,
    client_hello: Option<ClientHello>,
    cid: Option<String>,
    peer: Limits,
    peer_caps: Vec<String>,
    heartbeat: Duration,

    resume_active: bool,
    ticket: Option<Vec<u8>>,
    grace: Duration,
    sent_seq: u64,
    recv_seq: u64,
    unacked_bytes: usize,
    replay: ReplayBuffer,
    recv_since_ack: u64,
    recv_bytes_since_ack: usize,
    replay_blocked: bool,
    /// A PING asking for an acknowledgement is on its way (replay full).
    ack_requested: bool,

    invocations: RequestIdMap<Invocation>,
    deadlines: BTreeSet<(Instant, RequestId)>,
    next_id: u16,
    conn_send_window: u32,
    conn_blocked: bool,
    conn_recv_window: u32,
    conn_unconsumed: u32,
    conn_pending_grant: u32,

    local_tools: ToolSet,
    peer_tools: ToolSet,

    ping_seq: u32,
    ping_outstanding: Option<(u32, Instant)>,
    missed: u32,

    local_goaway: bool,
    peer_goaway: bool,
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

    fn new(role: Role, config: SessionConfig, entropy: Option<Box<dyn Entropy>>, now: Instant) -> Session {
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + config.handshake_timeout);
        Session {
            role,
            decoder: Decoder::new(config.max_frame_payload.min(limits::HANDSHAKE_MAX_FRAME_PAYLOAD)),
            entropy,
            state: SessionState::Handshaking,
            transport: true,
            out: BytesMut::new(),
            pending: Vec::new(),
            frame_ends: VecDeque::new(),
            events: VecDeque::new(),
            timers,
            transport_token: None,
            client_hello: None,
            cid: None,
            peer: Limits::of(&PeerLimits::default()),
            peer_caps: Vec::new(),
            heartbeat: config.heartbeat_interval,
            resume_active: false,
            ticket: None,
            grace: config.resume_grace,
            sent_seq: 0,
            recv_seq: 0,
            unacked_bytes: 0,
            replay: ReplayBuffer::default(),
            recv_since_ack: 0,
            recv_bytes_since_ack: 0,
            replay_blocked: false,
            ack_requested: false,
            invocations: RequestIdMap::default(),
            deadlines: BTreeSet::new(),
            next_id: if role == Role::Client { 1 } else { 2 },
            conn_send_window: 0,
            conn_blocked: false,
            conn_recv_window: config.connection_window,
            conn_unconsumed: 0,
            conn_pending_grant: 0,
            local_tools: ToolSet::new(config.tools.clone()),
            peer_tools: ToolSet::default(),
            ping_seq: 0,
            ping_outstanding: None,
            missed: 0,
            local_goaway: false,
            peer_goaway: false,
            stats: Stats::default(),
            config,
        }
    }

    fn own_caps(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.config.resume {
            out.push(caps::RESUME.to_owned());
        }
        out.push(caps::PROGRESS.to_owned());
        if self.role == Role::Client && !self.local_tools.is_empty() {
            out.push(caps::CLIENT_TOOLS.to_owned());
        }
        out.extend(self.config.caps.iter().cloned());
        out
    }

    fn own_limits(&self) -> PeerLimits {
        PeerLimits {
            max_frame: Some(self.config.max_frame_payload),
            max_inv: Some(self.config.max_concurrent_invocations),
            win: Some(self.config.invocation_window),
            cwin: Some(self.config.connection_window),
        }
    }

    /// Our tools for HELLO, or `None` when there are none or they would not
    /// fit the pre-handshake frame limit; then they follow in TOOL_DEF frames
    /// right after the handshake ([`announce_tools`](Self::announce_tools)).
    fn own_tools(&self) -> Option<Vec<ToolSpec>> {
        if self.local_tools.is_empty() || !self.tools_fit_hello() {
            return None;
        }
        Some(self.local_tools.iter().cloned().collect())
    }

    fn tools_fit_hello(&self) -> bool {
        let tools: Vec<&ToolSpec> = self.local_tools.iter().collect();
        let size = rmp_serde::to_vec_named(&tools).map_or(usize::MAX, |b| b.len());
        // Leave room for the rest of HELLO.
        size + 4096 <= limits::HANDSHAKE_MAX_FRAME_PAYLOAD as usize
    }

    /// Sends our tools as TOOL_DEF frames, one tool each, when they did not
    /// fit in HELLO. A tool larger than the peer's frame limit cannot be
    /// announced and is left out.
    fn announce_tools(&mut self) {
        if self.local_tools.is_empty() || self.tools_fit_hello() {
            return;
        }
        let _ = self.send(&Frame::ToolDef(ToolDef { op: ToolOp::Replace, tools: Vec::new() }));
        let tools: Vec<ToolSpec> = self.local_tools.iter().cloned().collect();
        for tool in tools {
            let _ = self.send(&Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![tool] }));
        }
    }

    fn own_client_hello(&self, resume: Option<ResumeRequest>) -> ClientHello {
        ClientHello {
            name: self.config.name.clone(),
            caps: self.own_caps(),
            token: self.config.token.clone(),
            resume,
            limits: self.own_limits(),
            tools: self.own_tools(),
            ..ClientHello::new()
        }
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
                InvocationRole::Handler => inv.send_window.min(self.conn_send_window),
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
            buffered_bytes: self.decoder.buffered() + self.out.len() + self.replay.bytes(),
            replay_bytes: self.unacked_bytes,
            ..self.stats.clone()
        }
    }

    /// Server: the key to index this session by for resumption, while it
    /// can be resumed.
    pub fn resume_key(&self) -> Option<ResumeKey> {
        self.ticket.as_deref().filter(|_| self.resume_active).and_then(ResumeKey::of)
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
        if self.out.is_empty() {
            return None;
        }
        // As much as fits in one message the peer accepts, cut between
        // frames; at least one frame (a frame always fits).
        let limit = self.message_limit();
        let mut cut = 0;
        while let Some(&end) = self.frame_ends.front() {
            if cut != 0 && end > limit {
                break;
            }
            cut = end;
            self.frame_ends.pop_front();
        }
        if cut == 0 {
            cut = self.out.len();
        }
        for end in self.frame_ends.iter_mut() {
            *end -= cut;
        }
        let batch = self.out.split_to(cut).freeze();
        let mut rest = Vec::new();
        for (seq, start, end) in self.pending.drain(..) {
            if end <= cut {
                self.replay.push(seq, batch.slice(start..end));
            } else {
                rest.push((seq, start - cut, end - cut));
            }
        }
        self.pending = rest;
        Some(batch)
    }

    /// The largest WebSocket message the peer must accept: one maximal frame
    /// (SPEC.md §3.2).
    fn message_limit(&self) -> usize {
        let max = if self.cid.is_some() { self.peer.max_frame } else { limits::HANDSHAKE_MAX_FRAME_PAYLOAD };
        max as usize + FrameHeader::LEN
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
                self.protocol_error(now, err.code(), err.to_string());
            }
        }
    }

    /// A WebSocket text message arrived: a protocol violation (close 1003).
    pub fn handle_text_message(&mut self, now: Instant) {
        self.protocol_error(now, ErrorCode::TEXT_MESSAGE, "text messages are not allowed; ASP uses binary".into());
    }

    fn decode_from<B: Buf>(&mut self, now: Instant, input: &mut B) {
        while self.transport && !self.is_closed() {
            match self.decoder.decode(input) {
                Ok(Some(frame)) => self.on_frame(now, frame),
                Ok(None) => break,
                Err(err) => {
                    self.on_decode_error(now, err);
                    break;
                }
            }
        }
    }

    fn on_decode_error(&mut self, now: Instant, err: FrameError) {
        self.protocol_error(now, err.code(), err.to_string());
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
                Timer::Handshake => self.protocol_error(
                    now,
                    ErrorCode::HANDSHAKE_TIMEOUT,
                    "the handshake did not complete in time".into(),
                ),
                Timer::Heartbeat => self.on_heartbeat(now),
                Timer::Grace => self.end(
                    ErrorCode::SESSION_LOST,
                    "the session was not resumed within its grace period".into(),
                    Initiator::Local,
                ),
                Timer::Drain => self.on_drain_deadline(now),
            }
        }
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.on_deadline(now, id);
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
                now,
                ErrorCode::UNEXPECTED_FRAME,
                format!("{} before the server's HELLO", frame.frame_type()),
            ),
            SessionState::Open | SessionState::Draining => {
                if is_sequenced(&frame) {
                    self.recv_seq += 1;
                    self.recv_since_ack += 1;
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
                self.on_client_hello(now, hello)
            }
            (Role::Client, Frame::HelloReply(hello)) => self.on_server_hello(now, hello),
            (_, Frame::Error(id, error)) if id.is_connection() => self.on_peer_fatal(error),
            (_, frame) => self.protocol_error(
                now,
                ErrorCode::UNEXPECTED_FRAME,
                format!("{} frame before the handshake completed", frame.frame_type()),
            ),
        }
    }

    fn on_session_frame(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Hello(_) | Frame::HelloReply(_) => {
                self.protocol_error(now, ErrorCode::UNEXPECTED_FRAME, "HELLO after the handshake".into())
            }
            Frame::Invoke(id, invoke) => self.on_invoke(now, id, invoke),
            Frame::Stream(id, data) => self.on_stream(now, id, Some(data), None),
            Frame::Progress(id, progress) => self.on_stream(now, id, None, Some(progress)),
            Frame::Interrupt(id, _) => self.on_interrupt(id),
            Frame::ToolDef(def) => self.on_tool_def(now, def),
            Frame::Error(id, error) if id.is_connection() => self.on_peer_fatal(error),
            Frame::Error(id, error) => self.on_terminal(now, id, Err(error)),
            Frame::Complete(id, complete) => self.on_terminal(now, id, Ok(complete)),
            Frame::Ping(ping) => self.on_ping(now, ping),
            Frame::Pong(pong) => self.on_pong(now, pong),
            Frame::Window(id, window) => self.on_window(now, id, window.credit),
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
        let start = self.out.len();
        let len = frame.encode(&mut self.out)?;
        let payload = len - FrameHeader::LEN;
        let max = if self.cid.is_some() { self.peer.max_frame } else { limits::HANDSHAKE_MAX_FRAME_PAYLOAD };
        if payload > max as usize {
            self.out.truncate(start);
            return Err(SendError::TooLarge { len: payload, max });
        }
        self.stats.frames_out += 1;
        self.stats.bytes_out += len as u64;
        let established = matches!(self.state, SessionState::Open | SessionState::Draining | SessionState::Detached);
        let sequenced = established && is_sequenced(frame);
        let attached = self.transport && self.state != SessionState::Detached;
        if sequenced {
            let seq = self.sent_seq;
            self.sent_seq += 1;
            if self.resume_active {
                self.unacked_bytes += len;
                if attached {
                    self.pending.push((seq, start, start + len));
                    self.frame_ends.push_back(start + len);
                } else {
                    let frame = self.out.split_off(start).freeze();
                    self.replay.push(seq, frame);
                }
                return Ok(());
            }
        }
        if !attached && !matches!(frame, Frame::Hello(_) | Frame::HelloReply(_)) {
            self.out.truncate(start);
        } else {
            self.frame_ends.push_back(start + len);
        }
        Ok(())
    }
}
