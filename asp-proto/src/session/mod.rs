//! The Sans-IO session: client and server state machines (SPEC.md §5, §8–§13).

mod config;
mod error;
mod event;
mod invocation;
mod replay;
mod timer;
mod tools;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use subtle::ConstantTimeEq;

pub use config::{caps, Entropy, SessionConfig};
pub use error::SendError;
pub use event::{CloseReason, DetachReason, Event, HelloInfo, Initiator};
pub use invocation::{InvocationInfo, InvocationRole, InvocationState};
pub use tools::ToolSet;

use invocation::Invocation;
use replay::ReplayBuffer;
use timer::{Timer, TimerTable};

use crate::limits::{self, MAX_WINDOW};
use crate::{
    ClientHello, Complete, Decoder, ErrorCode, ErrorInfo, Frame, FrameError, FrameHeader, GoAway,
    Interrupt, Invoke, Metrics, PeerLimits, Ping, Pong, Progress, RequestId, ResumeOffer,
    ResumeRequest, Resumed, Role, ServerHello, ToolDef, ToolOp, ToolSpec, Value, Window,
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
            max_frame: announced
                .max_frame
                .unwrap_or(limits::DEFAULT_MAX_FRAME_PAYLOAD),
            max_inv: announced
                .max_inv
                .unwrap_or(limits::DEFAULT_MAX_CONCURRENT_INVOCATIONS),
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
        ticket
            .get(..8)
            .map(|k| ResumeKey(k.try_into().expect("8 bytes")))
    }
}

const TICKET_LEN: usize = 32;
/// A receiver acknowledges at least every this many sequenced frames.
const ACK_EVERY_FRAMES: u64 = 64;

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

    invocations: HashMap<RequestId, Invocation>,
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
        session
            .send(&Frame::Hello(hello))
            .expect("our own HELLO is valid");
        session
    }

    /// A server session for a newly accepted transport. `entropy` makes the
    /// connection id and resume tickets.
    pub fn server(config: SessionConfig, now: Instant, entropy: Box<dyn Entropy>) -> Session {
        Session::new(Role::Server, config, Some(entropy), now)
    }

    fn new(
        role: Role,
        config: SessionConfig,
        entropy: Option<Box<dyn Entropy>>,
        now: Instant,
    ) -> Session {
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + config.handshake_timeout);
        Session {
            role,
            decoder: Decoder::new(
                config
                    .max_frame_payload
                    .min(limits::HANDSHAKE_MAX_FRAME_PAYLOAD),
            ),
            entropy,
            state: SessionState::Handshaking,
            transport: true,
            out: BytesMut::new(),
            pending: Vec::new(),
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
            invocations: HashMap::new(),
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
        let _ = self.send(&Frame::ToolDef(ToolDef {
            op: ToolOp::Replace,
            tools: Vec::new(),
        }));
        let tools: Vec<ToolSpec> = self.local_tools.iter().cloned().collect();
        for tool in tools {
            let _ = self.send(&Frame::ToolDef(ToolDef {
                op: ToolOp::Add,
                tools: vec![tool],
            }));
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
        self.ticket
            .as_deref()
            .filter(|_| self.resume_active)
            .and_then(ResumeKey::of)
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
        let batch = self.out.split().freeze();
        for (seq, start, end) in self.pending.drain(..) {
            self.replay.push(seq, batch.slice(start..end));
        }
        Some(batch)
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
        self.protocol_error(
            now,
            ErrorCode::TEXT_MESSAGE,
            "text messages are not allowed; ASP uses binary".into(),
        );
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

fn is_sequenced(frame: &Frame) -> bool {
    !matches!(
        frame,
        Frame::Hello(_) | Frame::HelloReply(_) | Frame::Ping(_) | Frame::Pong(_)
    )
}

impl Session {
    fn on_frame(&mut self, now: Instant, frame: Frame) {
        self.stats.frames_in += 1;
        match self.state {
            SessionState::Handshaking | SessionState::Detached => {
                self.on_handshake_frame(now, frame)
            }
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
                format!(
                    "{} frame before the handshake completed",
                    frame.frame_type()
                ),
            ),
        }
    }

    fn on_session_frame(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Hello(_) | Frame::HelloReply(_) => self.protocol_error(
                now,
                ErrorCode::UNEXPECTED_FRAME,
                "HELLO after the handshake".into(),
            ),
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

// ---------------------------------------------------------------- handshake

impl Session {
    fn on_client_hello(&mut self, now: Instant, hello: ClientHello) {
        if !hello.versions.contains(&FrameHeader::VERSION) {
            let offered = format!("{:?}", hello.versions);
            return self.protocol_error(
                now,
                ErrorCode::UNSUPPORTED_VERSION,
                format!("no common version: client offers {offered}, server speaks [1]"),
            );
        }
        let info = HelloInfo {
            token: hello.token.clone().or_else(|| self.transport_token.clone()),
            name: hello.name.clone(),
            caps: hello.caps.clone(),
            resume_requested: hello.resume.is_some(),
        };
        self.client_hello = Some(hello);
        self.state = SessionState::Authenticating;
        self.events.push_back(Event::HelloReceived(info));
    }

    /// Server: accept the client (authenticated) and start a new session.
    /// A resume request in its HELLO that the application did not satisfy
    /// with [`resume`](Self::resume) is refused as `RESUME_UNKNOWN_SESSION`.
    pub fn accept(&mut self, now: Instant) -> Result<(), SendError> {
        let refused = self
            .resume_request()
            .map(|_| ErrorCode::RESUME_UNKNOWN_SESSION);
        self.accept_with(now, refused)
    }

    /// Server: accept the client, refusing the session it asked to resume
    /// with `code` (a resume code from [`resume`](Self::resume)).
    pub fn accept_refusing_resume(
        &mut self,
        now: Instant,
        code: ErrorCode,
    ) -> Result<(), SendError> {
        self.accept_with(now, Some(code))
    }

    fn accept_with(
        &mut self,
        now: Instant,
        resume_error: Option<ErrorCode>,
    ) -> Result<(), SendError> {
        if self.state != SessionState::Authenticating {
            return Err(SendError::WrongState(self.state));
        }
        let hello = self
            .client_hello
            .take()
            .expect("Authenticating holds the HELLO");
        let mut cid_bytes = [0u8; 8];
        self.fill_random(&mut cid_bytes);
        let cid = format!("c-{}", hex_string(&cid_bytes));
        let resume_offer = self.config.resume && hello.caps.iter().any(|c| c == caps::RESUME);
        let resume = resume_offer.then(|| {
            let mut ticket = vec![0u8; TICKET_LEN];
            self.fill_random(&mut ticket);
            self.ticket = Some(ticket.clone());
            ResumeOffer {
                ticket: ticket.into(),
                grace: duration_ms(self.config.resume_grace),
            }
        });
        let reply = ServerHello {
            limits: self.own_limits(),
            hb: Some(duration_ms(self.config.heartbeat_interval)),
            caps: self.own_caps(),
            resume,
            resume_error: resume_error.filter(|_| hello.resume.is_some()),
            tools: self.own_tools(),
            ..ServerHello::new(cid.clone())
        };
        self.resume_active = resume_offer;
        self.peer_caps = hello.caps.clone();
        self.apply_peer_limits(&hello.limits);
        self.peer_tools = ToolSet::new(hello.tools.unwrap_or_default());
        self.send(&Frame::HelloReply(reply))
            .expect("our own HELLO is valid");
        self.cid = Some(cid.clone());
        self.established(now);
        self.announce_tools();
        self.events.push_back(Event::Connected {
            cid,
            resumed: false,
            resume_error,
        });
        Ok(())
    }

    /// Server: refuse the client (authentication failed, or any other
    /// reason): ERROR with `code`, then the session closes.
    pub fn reject(&mut self, now: Instant, code: ErrorCode, message: impl Into<String>) {
        self.protocol_error(now, code, message.into());
    }

    fn on_server_hello(&mut self, now: Instant, hello: ServerHello) {
        if hello.version != FrameHeader::VERSION {
            return self.protocol_error(
                now,
                ErrorCode::UNSUPPORTED_VERSION,
                format!(
                    "server chose version {}, which was not offered",
                    hello.version
                ),
            );
        }
        let resuming = self.state == SessionState::Detached;
        if resuming {
            if let Some(resumed) = &hello.resumed {
                return self.finish_client_resume(now, hello.clone(), resumed.recv);
            }
            // A new session: the old one and its invocations are lost.
            self.fail_all(ErrorCode::SESSION_LOST, "the session could not be resumed");
            self.reset_session();
        }
        self.heartbeat =
            Duration::from_millis(hello.hb.unwrap_or(limits::DEFAULT_HEARTBEAT_MS).into());
        self.peer_caps = hello.caps.clone();
        self.apply_peer_limits(&hello.limits);
        self.peer_tools = ToolSet::new(hello.tools.clone().unwrap_or_default());
        self.resume_active = self.config.resume && hello.resume.is_some();
        if let Some(offer) = &hello.resume {
            self.ticket = Some(offer.ticket.to_vec());
            self.grace = Duration::from_millis(offer.grace.into());
        }
        self.cid = Some(hello.cid.clone());
        self.established(now);
        self.announce_tools();
        let resume_error = if resuming {
            Some(hello.resume_error.unwrap_or(ErrorCode::RESUME_REJECTED))
        } else {
            None
        };
        self.events.push_back(Event::Connected {
            cid: hello.cid,
            resumed: false,
            resume_error,
        });
        if !self.peer_tools.is_empty() {
            self.events.push_back(Event::PeerToolsChanged);
        }
    }

    fn apply_peer_limits(&mut self, announced: &PeerLimits) {
        self.peer = Limits::of(announced);
        self.conn_send_window = self.peer.cwin;
    }

    /// The handshake is done: limits apply, timers start.
    fn established(&mut self, now: Instant) {
        self.state = if self.local_goaway || self.peer_goaway {
            SessionState::Draining
        } else {
            SessionState::Open
        };
        self.decoder.set_max_payload(self.config.max_frame_payload);
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Grace);
        self.timers.set(Timer::Heartbeat, now + self.heartbeat);
        self.missed = 0;
        self.ping_outstanding = None;
    }

    /// Forgets the old session after a refused resume: a new one starts.
    fn reset_session(&mut self) {
        self.sent_seq = 0;
        self.recv_seq = 0;
        self.unacked_bytes = 0;
        self.replay.clear();
        self.pending.clear();
        self.recv_since_ack = 0;
        self.recv_bytes_since_ack = 0;
        self.replay_blocked = false;
        self.invocations.clear();
        self.deadlines.clear();
        self.conn_recv_window = self.config.connection_window;
        self.conn_unconsumed = 0;
        self.conn_pending_grant = 0;
        self.conn_blocked = false;
        self.local_goaway = false;
        self.peer_goaway = false;
        self.ticket = None;
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        self.entropy
            .as_mut()
            .expect("server sessions have entropy")
            .fill(buf);
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

// -------------------------------------------------------------------- resume

impl Session {
    fn detach(&mut self, now: Instant, reason: DetachReason) {
        self.transport = false;
        self.flush_out_to_replay();
        self.decoder = Decoder::new(
            self.config
                .max_frame_payload
                .min(limits::HANDSHAKE_MAX_FRAME_PAYLOAD),
        );
        self.timers.stop(Timer::Heartbeat);
        self.timers.stop(Timer::Handshake);
        let drained = matches!(self.state, SessionState::Draining) && self.invocations.is_empty();
        let alive = matches!(
            self.state,
            SessionState::Open | SessionState::Draining | SessionState::Detached
        );
        if alive && self.resume_active && !drained {
            let deadline = match (self.state, self.timers.get(Timer::Grace)) {
                (SessionState::Detached, Some(at)) => at,
                _ => now + self.grace,
            };
            self.state = SessionState::Detached;
            self.timers.set(Timer::Grace, deadline);
            self.events.push_back(Event::Detached { reason, deadline });
        } else if drained {
            self.end(ErrorCode::NO_ERROR, "drained".into(), Initiator::Transport);
        } else {
            let code = match reason {
                DetachReason::TransportClosed => ErrorCode::SESSION_LOST,
                DetachReason::PeerUnresponsive => ErrorCode::PEER_UNRESPONSIVE,
            };
            self.end(code, "the transport closed".into(), Initiator::Transport);
        }
    }

    /// Moves what was queued for a lost transport into the replay buffer
    /// (sequenced frames) or drops it (the rest).
    fn flush_out_to_replay(&mut self) {
        let batch = self.out.split().freeze();
        for (seq, start, end) in self.pending.drain(..) {
            self.replay.push(seq, batch.slice(start..end));
        }
    }

    /// Client: a new transport is open for a detached session; queues the
    /// resuming HELLO.
    pub fn reconnect(&mut self, now: Instant) -> Result<(), SendError> {
        if self.role != Role::Client || self.state != SessionState::Detached || self.transport {
            return Err(SendError::WrongState(self.state));
        }
        let ticket = self
            .ticket
            .clone()
            .ok_or(SendError::WrongState(self.state))?;
        self.transport = true;
        self.timers
            .set(Timer::Handshake, now + self.config.handshake_timeout);
        let hello = self.own_client_hello(Some(ResumeRequest {
            ticket: ticket.into(),
            recv: self.recv_seq,
        }));
        self.send(&Frame::Hello(hello))
            .expect("our own HELLO is valid");
        Ok(())
    }

    /// Server: resume this (old) session on the transport whose new session
    /// received `request` in its HELLO. On success this session answers the
    /// client and replays what it lacks; drop the new session and give this
    /// one the transport. On failure answer the new session with
    /// [`accept_refusing_resume`](Self::accept_refusing_resume) and the code.
    pub fn resume(&mut self, now: Instant, request: &ResumeRequest) -> Result<(), ErrorCode> {
        if self.role != Role::Server || !self.resume_active {
            return Err(ErrorCode::RESUME_REJECTED);
        }
        let Some(ticket) = self.ticket.as_deref() else {
            return Err(ErrorCode::RESUME_REJECTED);
        };
        if ticket.len() != request.ticket.len() || !bool::from(ticket.ct_eq(&request.ticket)) {
            return Err(ErrorCode::RESUME_UNKNOWN_SESSION);
        }
        match self.state {
            SessionState::Closed => return Err(ErrorCode::RESUME_EXPIRED),
            SessionState::Open | SessionState::Draining => {
                self.detach(now, DetachReason::TransportClosed)
            }
            _ => {}
        }
        if self.state != SessionState::Detached
            || self.timers.get(Timer::Grace).is_some_and(|at| at <= now)
        {
            return Err(ErrorCode::RESUME_EXPIRED);
        }
        let frames: Option<Vec<Bytes>> = self
            .replay
            .since(request.recv, self.sent_seq)
            .map(|f| f.cloned().collect());
        let frames = match frames {
            Some(frames) => frames,
            None if request.recv > self.sent_seq => return Err(ErrorCode::RESUME_REJECTED),
            None => return Err(ErrorCode::RESUME_BUFFER_EXCEEDED),
        };
        // The client has what it acknowledged by asking: drop it from the buffer.
        self.on_ack_value(request.recv);
        let mut ticket = self.ticket.clone().expect("checked above");
        self.fill_random(&mut ticket[8..]);
        self.ticket = Some(ticket.clone());
        self.transport = true;
        let reply = ServerHello {
            limits: self.own_limits(),
            hb: Some(duration_ms(self.config.heartbeat_interval)),
            caps: self.own_caps(),
            resume: Some(ResumeOffer {
                ticket: ticket.into(),
                grace: duration_ms(self.config.resume_grace),
            }),
            resumed: Some(Resumed {
                recv: self.recv_seq,
            }),
            ..ServerHello::new(self.cid.clone().expect("a resumable session has a cid"))
        };
        self.send(&Frame::HelloReply(reply))
            .expect("our own HELLO is valid");
        for frame in frames {
            self.out.extend_from_slice(&frame);
        }
        self.established(now);
        let cid = self.cid.clone().expect("cid");
        self.events.push_back(Event::Connected {
            cid,
            resumed: true,
            resume_error: None,
        });
        self.wake_blocked();
        Ok(())
    }

    fn finish_client_resume(&mut self, now: Instant, hello: ServerHello, peer_recv: u64) {
        let frames: Option<Vec<Bytes>> = self
            .replay
            .since(peer_recv, self.sent_seq)
            .map(|f| f.cloned().collect());
        let Some(frames) = frames else {
            return self.protocol_error(
                now,
                ErrorCode::RESUME_BUFFER_EXCEEDED,
                format!("cannot replay from frame {peer_recv}"),
            );
        };
        self.on_ack_value(peer_recv);
        if let Some(offer) = &hello.resume {
            self.ticket = Some(offer.ticket.to_vec());
            self.grace = Duration::from_millis(offer.grace.into());
        }
        for frame in frames {
            self.out.extend_from_slice(&frame);
        }
        self.established(now);
        self.events.push_back(Event::Connected {
            cid: hello.cid,
            resumed: true,
            resume_error: None,
        });
        self.wake_blocked();
    }

    fn maybe_ack(&mut self, now: Instant) {
        if !self.resume_active || self.ping_outstanding.is_some() {
            return;
        }
        let half_bound = self.config.replay_buffer_bytes / 2;
        if self.recv_since_ack >= ACK_EVERY_FRAMES || self.recv_bytes_since_ack >= half_bound {
            self.send_ping(now);
        }
    }

    fn on_ack_value(&mut self, acked: u64) {
        let freed = self.replay.ack(acked);
        self.unacked_bytes = self.unacked_bytes.saturating_sub(freed);
        if freed > 0 && self.replay_blocked {
            self.replay_blocked = false;
            self.events.push_back(Event::Writable {
                id: RequestId::CONNECTION,
            });
        }
    }

    fn on_ack(&mut self, now: Instant, acked: Option<u64>) {
        let Some(acked) = acked else { return };
        if acked > self.sent_seq {
            return self.protocol_error(
                now,
                ErrorCode::PROTOCOL_VIOLATION,
                format!("acknowledges {acked} frames; {} were sent", self.sent_seq),
            );
        }
        self.on_ack_value(acked);
    }

    /// After a resume, senders that were blocked may try again.
    fn wake_blocked(&mut self) {
        self.replay_blocked = false;
        self.events.push_back(Event::Writable {
            id: RequestId::CONNECTION,
        });
    }
}

// ------------------------------------------------------------------ liveness

impl Session {
    fn send_ping(&mut self, now: Instant) {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let recv = self.resume_active.then_some(self.recv_seq);
        self.ping_outstanding = Some((self.ping_seq, now));
        self.recv_since_ack = 0;
        self.recv_bytes_since_ack = 0;
        let _ = self.send(&Frame::Ping(Ping {
            seq: self.ping_seq,
            recv,
        }));
    }

    /// Sends a PING now, to measure the round trip or acknowledge frames.
    pub fn ping(&mut self, now: Instant) -> Result<(), SendError> {
        match self.state {
            SessionState::Open | SessionState::Draining if self.transport => {
                self.send_ping(now);
                Ok(())
            }
            state => Err(SendError::WrongState(state)),
        }
    }

    fn on_heartbeat(&mut self, now: Instant) {
        if !matches!(self.state, SessionState::Open | SessionState::Draining) || !self.transport {
            return;
        }
        if self.ping_outstanding.is_some() {
            self.missed += 1;
            if self.missed >= self.config.missed_pings {
                if self.resume_active {
                    return self.detach(now, DetachReason::PeerUnresponsive);
                }
                return self.protocol_error(
                    now,
                    ErrorCode::PEER_UNRESPONSIVE,
                    format!("{} PINGs went unanswered", self.missed),
                );
            }
        }
        self.send_ping(now);
        self.timers.set(Timer::Heartbeat, now + self.heartbeat);
    }

    fn on_ping(&mut self, now: Instant, ping: Ping) {
        let recv = self.resume_active.then_some(self.recv_seq);
        self.recv_since_ack = 0;
        self.recv_bytes_since_ack = 0;
        let _ = self.send(&Frame::Pong(Pong {
            seq: ping.seq,
            recv,
        }));
        self.on_ack(now, ping.recv);
    }

    fn on_pong(&mut self, now: Instant, pong: Pong) {
        self.missed = 0;
        self.ack_requested = false;
        if let Some((seq, sent)) = self.ping_outstanding {
            if seq == pong.seq {
                let sample = now.saturating_duration_since(sent);
                self.stats.rtt = Some(match self.stats.rtt {
                    None => sample,
                    Some(srtt) => (srtt * 7 + sample) / 8,
                });
                self.ping_outstanding = None;
            }
        }
        self.on_ack(now, pong.recv);
    }
}

// --------------------------------------------------------------- invocations

impl Session {
    fn accepting_commands(&self) -> Result<(), SendError> {
        match self.state {
            SessionState::Open | SessionState::Draining | SessionState::Detached => Ok(()),
            state => Err(SendError::WrongState(state)),
        }
    }

    fn open_count(&self, role: InvocationRole) -> usize {
        self.invocations.values().filter(|i| i.role == role).count()
    }

    /// Opens an invocation of the peer's tool `invoke.tool`. Its deadline,
    /// if any, runs from `now`.
    pub fn invoke(&mut self, now: Instant, invoke: Invoke) -> Result<RequestId, SendError> {
        self.accepting_commands()?;
        if self.local_goaway || self.peer_goaway {
            return Err(SendError::GoingAway);
        }
        if self.open_count(InvocationRole::Invoker) >= self.peer.max_inv as usize {
            return Err(SendError::TooManyInvocations(self.peer.max_inv));
        }
        let id = self
            .allocate_id()
            .ok_or(SendError::TooManyInvocations(self.peer.max_inv))?;
        let timeout = invoke.timeout;
        let tool = invoke.tool.clone();
        self.send(&Frame::Invoke(id, invoke))?;
        self.advance_id(id);
        let mut inv = Invocation::new(
            InvocationRole::Invoker,
            tool,
            now,
            self.config.invocation_window,
        );
        if let Some(ms) = timeout {
            let at = now + Duration::from_millis(ms.into());
            inv.deadline = Some(at);
            self.deadlines.insert((at, id));
        }
        self.invocations.insert(id, inv);
        Ok(id)
    }

    fn allocate_id(&self) -> Option<RequestId> {
        let first = self.next_id;
        let mut id = first;
        loop {
            if !self.invocations.contains_key(&RequestId(id)) {
                return Some(RequestId(id));
            }
            id = next_of_parity(id);
            if id == first {
                return None;
            }
        }
    }

    fn advance_id(&mut self, used: RequestId) {
        self.next_id = next_of_parity(used.0);
    }

    fn on_invoke(&mut self, now: Instant, id: RequestId, invoke: Invoke) {
        if id.initiator() != Some(self.role.peer()) {
            return self.protocol_error(
                now,
                ErrorCode::INVALID_REQUEST_ID,
                format!(
                    "INVOKE {id} has the wrong parity for the {:?}",
                    self.role.peer()
                ),
            );
        }
        if self.invocations.contains_key(&id) {
            return self.protocol_error(
                now,
                ErrorCode::REQUEST_ID_IN_USE,
                format!("INVOKE reuses open id {id}"),
            );
        }
        let refuse = if self.local_goaway {
            Some((
                ErrorCode::GOING_AWAY,
                "draining: no new invocations".to_owned(),
            ))
        } else if self.open_count(InvocationRole::Handler)
            >= self.config.max_concurrent_invocations as usize
        {
            let max = self.config.max_concurrent_invocations;
            Some((
                ErrorCode::TOO_MANY_INVOCATIONS,
                format!("at most {max} concurrent invocations"),
            ))
        } else if self.config.check_tools && !self.local_tools.contains(&invoke.tool) {
            Some((
                ErrorCode::UNKNOWN_TOOL,
                format!("no tool named `{}`", invoke.tool),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refuse {
            let _ = self.send(&Frame::Error(id, ErrorInfo::new(code, message)));
            return;
        }
        let mut inv = Invocation::new(
            InvocationRole::Handler,
            invoke.tool.clone(),
            now,
            self.peer.win,
        );
        if let Some(ms) = invoke.timeout {
            let at = now + Duration::from_millis(ms.into());
            inv.deadline = Some(at);
            self.deadlines.insert((at, id));
        }
        self.invocations.insert(id, inv);
        self.events.push_back(Event::Invoked { id, invoke });
    }

    fn on_stream(
        &mut self,
        now: Instant,
        id: RequestId,
        data: Option<Bytes>,
        progress: Option<Progress>,
    ) {
        // Flow control counts the payload as it was on the wire, whatever
        // encoding the peer chose.
        let len = self.decoder.last_payload_len();
        let (inv_window, state) = match self.invocations.get(&id) {
            Some(inv) if inv.role == InvocationRole::Invoker => (inv.recv_window, inv.state),
            _ => {
                return self.protocol_error(
                    now,
                    ErrorCode::UNKNOWN_REQUEST,
                    format!("STREAM for request {id}, which is not open"),
                )
            }
        };
        if len > inv_window || len > self.conn_recv_window {
            let conn = self.conn_recv_window;
            return self.protocol_error(
                now,
                ErrorCode::FLOW_CONTROL,
                format!("STREAM of {len} bytes on {id} exceeds credit ({inv_window} invocation, {conn} connection)"),
            );
        }
        let inv = self.invocations.get_mut(&id).expect("looked up above");
        inv.recv_window -= len;
        self.conn_recv_window -= len;
        self.recv_bytes_since_ack += len as usize;
        let delivering = state == InvocationState::Open;
        match (data, progress) {
            (Some(data), _) if delivering => {
                inv.unconsumed += len;
                self.conn_unconsumed += len;
                self.events.push_back(Event::Chunk { id, data });
            }
            (None, Some(progress)) if delivering => {
                // Delivered as an event: consumed now.
                self.events.push_back(Event::Progress { id, progress });
                self.credit_back(id, len, len);
            }
            // Interrupted or timed out: nobody reads it; the connection
            // gets its credit back at once.
            _ => self.credit_back(id, 0, len),
        }
    }

    /// Returns credit: `inv` bytes to invocation `id` and `conn` bytes to
    /// the connection, sending WINDOW once half a window is due.
    fn credit_back(&mut self, id: RequestId, inv: u32, conn: u32) {
        if inv > 0 {
            if let Some(record) = self.invocations.get_mut(&id) {
                record.pending_grant += inv;
                if record.pending_grant >= self.config.invocation_window / 2 {
                    let credit = std::mem::take(&mut record.pending_grant);
                    record.recv_window += credit;
                    let _ = self.send(&Frame::Window(id, Window { credit }));
                }
            }
        }
        self.conn_pending_grant += conn;
        if self.conn_pending_grant > 0
            && self.conn_pending_grant >= self.config.connection_window / 2
        {
            let credit = std::mem::take(&mut self.conn_pending_grant);
            self.conn_recv_window += credit;
            let _ = self.send(&Frame::Window(RequestId::CONNECTION, Window { credit }));
        }
    }

    /// The application consumed `bytes` of invocation `id`'s output: return
    /// the credit to the handler. Grants are batched into WINDOW frames of
    /// half a window. Granting after the invocation ended (or with id 0)
    /// returns the connection's credit only. An invocation is never credited
    /// more than was delivered on it, so a grant that arrives after its id
    /// was reused cannot inflate the new invocation's window.
    pub fn grant(&mut self, id: RequestId, bytes: usize) {
        let n = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .min(self.conn_unconsumed);
        if n == 0 {
            return;
        }
        self.conn_unconsumed -= n;
        let inv = match self.invocations.get_mut(&id) {
            Some(inv)
                if inv.role == InvocationRole::Invoker && inv.state == InvocationState::Open =>
            {
                let k = n.min(inv.unconsumed);
                inv.unconsumed -= k;
                k
            }
            _ => 0,
        };
        self.credit_back(id, inv, n);
    }

    fn on_interrupt(&mut self, id: RequestId) {
        if !self
            .invocations
            .get(&id)
            .is_some_and(|i| i.role == InvocationRole::Handler)
        {
            return; // crossed our terminal frame
        }
        self.close_invocation(id);
        let _ = self.send(&Frame::Error(
            id,
            ErrorInfo::new(ErrorCode::CANCELLED, "interrupted by the invoker"),
        ));
        self.events.push_back(Event::Interrupted {
            id,
            code: ErrorCode::CANCELLED,
        });
        self.maybe_finish_drain();
    }

    fn on_terminal(&mut self, now: Instant, id: RequestId, outcome: Result<Complete, ErrorInfo>) {
        let Some(inv) = self
            .invocations
            .get(&id)
            .filter(|i| i.role == InvocationRole::Invoker)
        else {
            return self.protocol_error(
                now,
                ErrorCode::UNKNOWN_REQUEST,
                format!("terminal frame for request {id}, which is not open"),
            );
        };
        let report = inv.state != InvocationState::TimedOut;
        self.close_invocation(id);
        if report {
            self.events.push_back(match outcome {
                Ok(c) => Event::Completed {
                    id,
                    result: c.result,
                    metrics: c.metrics,
                },
                Err(error) => Event::Failed { id, error },
            });
        }
        self.maybe_finish_drain();
    }

    fn close_invocation(&mut self, id: RequestId) -> Option<Invocation> {
        let inv = self.invocations.remove(&id)?;
        if let Some(at) = inv.deadline {
            self.deadlines.remove(&(at, id));
        }
        Some(inv)
    }

    fn handler(&mut self, id: RequestId) -> Result<&mut Invocation, SendError> {
        self.accepting_commands()?;
        self.invocations
            .get_mut(&id)
            .filter(|i| i.role == InvocationRole::Handler)
            .ok_or(SendError::NotOpen(id))
    }

    /// Sends output of invocation `id` (which we handle), taking from the
    /// front of `data` as much as credit allows. Returns `Ok` once `data` is
    /// empty, or [`SendError::Blocked`] with the rest left in `data`: retry
    /// after [`Event::Writable`]. Chunks larger than the peer's frame size
    /// are split.
    pub fn send_chunk(&mut self, id: RequestId, data: &mut Bytes) -> Result<(), SendError> {
        self.handler(id)?;
        if data.is_empty() {
            return self.send(&Frame::Stream(id, Bytes::new()));
        }
        while !data.is_empty() {
            let room = self.stream_room(id);
            if room == 0 {
                return Err(SendError::Blocked);
            }
            let take = room.min(data.len());
            let chunk = data.split_to(take);
            self.send(&Frame::Stream(id, chunk))?;
            self.consume_send_credit(id, take as u32);
        }
        Ok(())
    }

    /// Bytes of STREAM payload that may go out now on `id`; records who is
    /// blocked when it is zero.
    fn stream_room(&mut self, id: RequestId) -> usize {
        let replay_room = if self.resume_active {
            self.config
                .replay_buffer_bytes
                .saturating_sub(self.unacked_bytes + FrameHeader::LEN)
        } else {
            usize::MAX
        };
        let conn = self.conn_send_window as usize;
        let inv_window = self
            .invocations
            .get(&id)
            .map_or(0, |i| i.send_window as usize);
        let room = inv_window
            .min(conn)
            .min(replay_room)
            .min(self.peer.max_frame as usize);
        if room == 0 {
            if inv_window == 0 {
                if let Some(inv) = self.invocations.get_mut(&id) {
                    inv.blocked = true;
                }
            }
            if conn == 0 {
                self.conn_blocked = true;
            }
            if replay_room == 0 {
                self.replay_blocked = true;
                // Ask for an acknowledgement rather than wait for the heartbeat.
                if self.transport && !self.ack_requested && self.state != SessionState::Detached {
                    self.send_ping_now();
                }
            }
        }
        room
    }

    fn send_ping_now(&mut self) {
        // No RTT sample: the point is the acknowledgement its PONG carries.
        self.ack_requested = true;
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let recv = self.resume_active.then_some(self.recv_seq);
        let _ = self.send(&Frame::Ping(Ping {
            seq: self.ping_seq,
            recv,
        }));
    }

    fn consume_send_credit(&mut self, id: RequestId, n: u32) {
        self.conn_send_window -= n;
        if let Some(inv) = self.invocations.get_mut(&id) {
            inv.send_window -= n;
        }
    }

    /// Sends a progress update on invocation `id` (which we handle). Counts
    /// against flow control like output. Dropped when the peer did not
    /// announce the `progress` capability.
    pub fn send_progress(&mut self, id: RequestId, progress: Progress) -> Result<(), SendError> {
        self.handler(id)?;
        if !self.peer_caps.iter().any(|c| c == caps::PROGRESS) {
            return Ok(());
        }
        let frame = Frame::Progress(id, progress);
        let len = frame.to_bytes()?.len() - FrameHeader::LEN;
        if self.stream_room(id) < len {
            return Err(SendError::Blocked);
        }
        self.send(&frame)?;
        self.consume_send_credit(id, len as u32);
        Ok(())
    }

    /// Ends invocation `id` (which we handle) with its result. Wall time is
    /// measured from the INVOKE's arrival; `cpu_us` is the handler's CPU
    /// time when it knows it.
    pub fn complete(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Value,
        cpu_us: Option<u64>,
    ) -> Result<(), SendError> {
        let started = self.handler(id)?.started;
        let wall_us =
            u64::try_from(now.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX);
        self.send(&Frame::Complete(
            id,
            Complete {
                result,
                metrics: Metrics { wall_us, cpu_us },
            },
        ))?;
        self.close_invocation(id);
        self.maybe_finish_drain();
        Ok(())
    }

    /// Ends invocation `id` (which we handle) with an error.
    pub fn fail(
        &mut self,
        id: RequestId,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), SendError> {
        self.handler(id)?;
        self.send(&Frame::Error(id, ErrorInfo::new(code, message)))?;
        self.close_invocation(id);
        self.maybe_finish_drain();
        Ok(())
    }

    /// Asks the handler of invocation `id` (which we made) to stop. Its
    /// terminal frame still arrives: `Failed` with `CANCELLED`, or
    /// `Completed` if it finished first.
    pub fn interrupt(&mut self, id: RequestId, reason: Option<String>) -> Result<(), SendError> {
        self.accepting_commands()?;
        let inv = self
            .invocations
            .get_mut(&id)
            .filter(|i| i.role == InvocationRole::Invoker && i.state == InvocationState::Open)
            .ok_or(SendError::NotOpen(id))?;
        inv.state = InvocationState::Interrupting;
        self.send(&Frame::Interrupt(id, Interrupt { reason }))?;
        Ok(())
    }

    fn on_deadline(&mut self, _now: Instant, id: RequestId) {
        let Some(inv) = self.invocations.get_mut(&id) else {
            return;
        };
        inv.deadline = None;
        match inv.role {
            InvocationRole::Handler => {
                self.close_invocation(id);
                let _ = self.send(&Frame::Error(
                    id,
                    ErrorInfo::new(ErrorCode::DEADLINE_EXCEEDED, "deadline exceeded"),
                ));
                self.events.push_back(Event::Interrupted {
                    id,
                    code: ErrorCode::DEADLINE_EXCEEDED,
                });
                self.maybe_finish_drain();
            }
            InvocationRole::Invoker => {
                let was_open = inv.state == InvocationState::Open;
                inv.state = InvocationState::TimedOut;
                if was_open {
                    let _ = self.send(&Frame::Interrupt(
                        id,
                        Interrupt {
                            reason: Some("deadline exceeded".into()),
                        },
                    ));
                }
                self.events.push_back(Event::Failed {
                    id,
                    error: ErrorInfo::new(ErrorCode::DEADLINE_EXCEEDED, "deadline exceeded"),
                });
            }
        }
    }
}

fn next_of_parity(id: u16) -> u16 {
    match id.checked_add(2) {
        Some(n) => n,
        None => {
            if id % 2 == 1 {
                1
            } else {
                2
            }
        }
    }
}

// ---------------------------------------------------------- flow and tools

impl Session {
    fn on_window(&mut self, now: Instant, id: RequestId, credit: u32) {
        if id.is_connection() {
            let Some(w) = self
                .conn_send_window
                .checked_add(credit)
                .filter(|w| *w <= MAX_WINDOW)
            else {
                return self.protocol_error(
                    now,
                    ErrorCode::FLOW_CONTROL,
                    "connection window over 2^31-1".into(),
                );
            };
            self.conn_send_window = w;
            if std::mem::take(&mut self.conn_blocked) {
                self.events.push_back(Event::Writable { id });
            }
            return;
        }
        let Some(inv) = self
            .invocations
            .get_mut(&id)
            .filter(|i| i.role == InvocationRole::Handler)
        else {
            return; // crossed our terminal frame
        };
        let Some(w) = inv
            .send_window
            .checked_add(credit)
            .filter(|w| *w <= MAX_WINDOW)
        else {
            return self.protocol_error(
                now,
                ErrorCode::FLOW_CONTROL,
                format!("window of {id} over 2^31-1"),
            );
        };
        inv.send_window = w;
        if std::mem::take(&mut inv.blocked) {
            self.events.push_back(Event::Writable { id });
        }
    }

    fn on_tool_def(&mut self, now: Instant, def: ToolDef) {
        let mut next = self.peer_tools.clone();
        next.apply(def.op, def.tools);
        if next.len() > self.config.max_peer_tools {
            let max = self.config.max_peer_tools;
            return self.protocol_error(
                now,
                ErrorCode::TOO_MANY_TOOLS,
                format!("the peer announced more than {max} tools"),
            );
        }
        self.peer_tools = next;
        self.events.push_back(Event::PeerToolsChanged);
    }

    /// Changes our tool set and tells the peer (TOOL_DEF).
    pub fn push_tools(&mut self, op: ToolOp, tools: Vec<ToolSpec>) -> Result<(), SendError> {
        self.accepting_commands()?;
        let frame = Frame::ToolDef(ToolDef { op, tools });
        self.send(&frame)?;
        if let Frame::ToolDef(def) = frame {
            self.local_tools.apply(def.op, def.tools);
        }
        Ok(())
    }
}

// ------------------------------------------------------------------- closing

impl Session {
    /// Starts a graceful drain: GOAWAY, no new invocations either way, and
    /// the session closes (`NO_ERROR`) once the open ones end — or, with a
    /// `drain` limit, when it passes, failing what is left with `GOING_AWAY`.
    pub fn goaway(
        &mut self,
        now: Instant,
        message: Option<String>,
        drain: Option<Duration>,
    ) -> Result<(), SendError> {
        self.accepting_commands()?;
        if self.local_goaway {
            return Ok(());
        }
        self.send(&Frame::GoAway(GoAway {
            code: None,
            message,
        }))?;
        self.local_goaway = true;
        if self.state == SessionState::Open {
            self.state = SessionState::Draining;
        }
        if let Some(limit) = drain {
            self.timers.set(Timer::Drain, now + limit);
        }
        self.maybe_finish_drain();
        Ok(())
    }

    fn on_goaway(&mut self, goaway: GoAway) {
        self.peer_goaway = true;
        if self.state == SessionState::Open {
            self.state = SessionState::Draining;
        }
        self.events.push_back(Event::GoAway {
            code: goaway.code.unwrap_or(ErrorCode::NO_ERROR),
            message: goaway.message,
        });
    }

    fn maybe_finish_drain(&mut self) {
        if self.local_goaway && self.invocations.is_empty() && self.state == SessionState::Draining
        {
            self.end(ErrorCode::NO_ERROR, "drained".into(), Initiator::Local);
        }
    }

    fn on_drain_deadline(&mut self, _now: Instant) {
        let handled: Vec<RequestId> = self
            .invocations
            .iter()
            .filter(|(_, i)| i.role == InvocationRole::Handler)
            .map(|(id, _)| *id)
            .collect();
        for id in handled {
            let _ = self.send(&Frame::Error(
                id,
                ErrorInfo::new(ErrorCode::GOING_AWAY, "drain deadline passed"),
            ));
        }
        self.end(
            ErrorCode::GOING_AWAY,
            "drain deadline passed".into(),
            Initiator::Local,
        );
    }

    /// Ends the session now. With a code other than `NO_ERROR` the peer is
    /// told with ERROR (request id 0). Open invocations fail with `code`.
    pub fn close(&mut self, code: ErrorCode, message: impl Into<String>) {
        if self.is_closed() {
            return;
        }
        let message = message.into();
        if self.transport && self.state != SessionState::Detached {
            let _ = self.send(&Frame::Error(
                RequestId::CONNECTION,
                ErrorInfo::new(code, message.clone()),
            ));
        }
        self.end(code, message, Initiator::Local);
    }

    fn protocol_error(&mut self, _now: Instant, code: ErrorCode, message: String) {
        if self.is_closed() {
            return;
        }
        if self.transport {
            let _ = self.send(&Frame::Error(
                RequestId::CONNECTION,
                ErrorInfo::new(code, message.clone()),
            ));
        }
        self.end(code, message, Initiator::Local);
    }

    fn on_peer_fatal(&mut self, error: ErrorInfo) {
        self.end(error.code, error.message, Initiator::Peer);
    }

    /// Fails every open invocation with `code`: `Failed` for ours,
    /// `Interrupted` for the peer's.
    fn fail_all(&mut self, code: ErrorCode, message: &str) {
        let mut ids: Vec<RequestId> = self.invocations.keys().copied().collect();
        ids.sort();
        for id in ids {
            let inv = self.close_invocation(id).expect("listed");
            match inv.role {
                InvocationRole::Invoker if inv.state != InvocationState::TimedOut => {
                    self.events.push_back(Event::Failed {
                        id,
                        error: ErrorInfo::new(code, message),
                    })
                }
                InvocationRole::Invoker => {}
                InvocationRole::Handler => self.events.push_back(Event::Interrupted { id, code }),
            }
        }
    }

    fn end(&mut self, code: ErrorCode, message: String, initiator: Initiator) {
        if self.is_closed() {
            return;
        }
        let fail_code = if code == ErrorCode::NO_ERROR {
            ErrorCode::GOING_AWAY
        } else {
            code
        };
        self.fail_all(fail_code, &message);
        self.state = SessionState::Closed;
        self.timers.stop_all();
        self.deadlines.clear();
        self.replay.clear();
        self.unacked_bytes = 0;
        self.pending.clear();
        self.events.push_back(Event::Closed(CloseReason {
            code,
            message,
            initiator,
        }));
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
        let max = if self.cid.is_some() {
            self.peer.max_frame
        } else {
            limits::HANDSHAKE_MAX_FRAME_PAYLOAD
        };
        if payload > max as usize {
            self.out.truncate(start);
            return Err(SendError::TooLarge { len: payload, max });
        }
        self.stats.frames_out += 1;
        self.stats.bytes_out += len as u64;
        let established = matches!(
            self.state,
            SessionState::Open | SessionState::Draining | SessionState::Detached
        );
        let sequenced = established && is_sequenced(frame);
        let attached = self.transport && self.state != SessionState::Detached;
        if sequenced {
            let seq = self.sent_seq;
            self.sent_seq += 1;
            if self.resume_active {
                self.unacked_bytes += len;
                if attached {
                    self.pending.push((seq, start, start + len));
                } else {
                    let frame = self.out.split_off(start).freeze();
                    self.replay.push(seq, frame);
                }
                return Ok(());
            }
        }
        if !attached && !matches!(frame, Frame::Hello(_) | Frame::HelloReply(_)) {
            self.out.truncate(start);
        }
        Ok(())
    }
}
