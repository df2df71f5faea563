//! Relay mode without I/O (SPEC.md §15): many client sessions, and the HTTP
//! calls to a serverless function that run their tools.
//!
//! A [`Relay`] owns one server-role [`Session`] per client and an index from
//! connection ids, resume keys and request ids to them. It never opens a
//! socket or sends an HTTP request; the adapter (`asp-relay`) does, and
//! reports back. The loop is the session's, widened to many clients:
//!
//! 1. **Inputs**: client transports ([`handle_client_open`](Relay::handle_client_open),
//!    [`handle_client_message`](Relay::handle_client_message),
//!    [`handle_client_text`](Relay::handle_client_text),
//!    [`handle_client_closed`](Relay::handle_client_closed)); the function's
//!    responses ([`handle_call_head`](Relay::handle_call_head),
//!    [`handle_call_chunk`](Relay::handle_call_chunk),
//!    [`handle_call_end`](Relay::handle_call_end),
//!    [`handle_call_failed`](Relay::handle_call_failed)); management requests
//!    ([`handle_management`](Relay::handle_management)); and
//!    [`handle_timeout`](Relay::handle_timeout).
//! 2. **Outputs**, after every input: [`poll_transmit`](Relay::poll_transmit)
//!    (one WebSocket message for one client) until empty, *then*
//!    [`poll_command`](Relay::poll_command) (send an HTTP call, abort one,
//!    return body credit, close a client), then [`poll_timeout`](Relay::poll_timeout).
//!    Transmits first: a client's last ERROR is queued before the command
//!    that closes it.
//!
//! Backpressure runs end to end. The adapter may hand the core at most
//! [`RelayConfig::body_window`] bytes of one call's body that the core has
//! not yet returned with [`Command::Credit`]; the core returns them as the
//! client's flow-control credit lets the output go out. A client that stops
//! reading therefore stops the relay reading the function's body, and the
//! relay holds at most one window per call.
//!
//! ```
//! use std::time::Instant;
//! use asp_proto::relay::{Command, Relay, RelayConfig, ResponseHead};
//! use asp_proto::{Entropy, Frame, Invoke, RequestId, Session, SessionConfig, Value};
//!
//! # struct Counter(u8);
//! # impl Entropy for Counter { fn fill(&mut self, b: &mut [u8]) { for x in b { self.0 = self.0.wrapping_add(1); *x = self.0; } } }
//! let now = Instant::now();
//! let mut relay = Relay::new(RelayConfig::default(), || Box::new(Counter(0)) as Box<dyn Entropy>);
//! let mut client = Session::client(SessionConfig::default(), now);
//! let transport = relay.handle_client_open(now, None);
//!
//! // Handshake: the relay answers at once, without calling the function.
//! let hello = client.poll_transmit().unwrap();
//! relay.handle_client_message(now, transport, hello);
//! while let Some((_, bytes)) = relay.poll_transmit() { client.handle_message(now, bytes); }
//! assert!(relay.poll_command().is_none());
//!
//! // An INVOKE becomes an HTTP call ...
//! client.invoke(now, Invoke::new("echo", Value::from("hi"))).unwrap();
//! relay.handle_client_message(now, transport, client.poll_transmit().unwrap());
//! let Some(Command::Call(call)) = relay.poll_command() else { panic!("a call") };
//! assert_eq!(call.kind.path(), "/invoke");
//!
//! // ... whose body streams back as STREAM and whose end is COMPLETE.
//! relay.handle_call_head(now, call.call, ResponseHead { status: 200, ..Default::default() });
//! relay.handle_call_chunk(now, call.call, "hi".into());
//! relay.handle_call_end(now, call.call);
//! while let Some((_, bytes)) = relay.poll_transmit() { client.handle_message(now, bytes); }
//! let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
//! assert!(events.iter().any(|e| matches!(e, asp_proto::Event::Chunk { data, .. } if &data[..] == b"hi")));
//! assert!(events.iter().any(|e| matches!(e, asp_proto::Event::Completed { .. })));
//! ```

mod call;
mod config;
mod management;
mod request;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use subtle::ConstantTimeEq;

use crate::session::{Event, HelloInfo, ResumeKey, SendError, Session, SessionState};
use crate::{Entropy, ErrorCode, ErrorInfo, Frame, Invoke, RequestId, RequestIdMap, Value};

pub use call::{CallFailure, CallId, CallKind, FunctionCall, ResponseHead};
pub use config::{BodyEncoding, RelayConfig};
pub use management::{ManagementRequest, ManagementResponse};
pub use request::{decode_state, encode_state, parse_cpu_time, value_to_json};

use call::{BodyMode, Call, Pending};
use request::InvokeBody;

/// The content type of a response body made of ASP frames (frames mode).
pub const FRAMES_CONTENT_TYPE: &str = "application/vnd.asp.frames";

/// One client transport (a WebSocket connection). A session that resumes on
/// a new transport is reached through the new transport's id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// A session the relay holds (attached to a transport or not).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnKey(u64);

/// Something the adapter must do.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Send this HTTP request to the function and report its response.
    Call(FunctionCall),
    /// Stop this call (drop its connection) and report nothing more about it.
    Abort(CallId),
    /// `bytes` more of this call's body may be handed to the core.
    Credit {
        /// The call.
        call: CallId,
        /// Body bytes returned.
        bytes: usize,
    },
    /// Close this client's transport with a WebSocket close code, after
    /// writing what `poll_transmit` gave for it.
    Close {
        /// The transport.
        client: ClientId,
        /// WebSocket close code (SPEC.md §7.2).
        code: u16,
        /// Close reason.
        reason: String,
    },
}

/// Counters for logs and the management API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Sessions held (attached or detached).
    pub connections: usize,
    /// Of which attached to a transport.
    pub attached: usize,
    /// Function calls in flight (invocations and lifecycle calls).
    pub calls: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Conn(ConnKey),
    Call(CallId),
}

struct Conn {
    session: Session,
    transport: Option<ClientId>,
    cid: Option<String>,
    name: Option<String>,
    caps: Vec<String>,
    /// The function's state for this connection.
    state: Option<Vec<u8>>,
    calls: RequestIdMap<CallId>,
    armed: Option<Instant>,
}

type EntropySource = Box<dyn FnMut() -> Box<dyn Entropy> + Send>;

/// The relay core: client sessions, function calls, and the routing between
/// them. See the [module docs](self) for the loop that drives it.
pub struct Relay {
    config: RelayConfig,
    entropy: EntropySource,
    next_key: u64,
    next_client: u64,
    next_call: u64,
    conns: HashMap<ConnKey, Conn>,
    transports: HashMap<ClientId, ConnKey>,
    by_cid: HashMap<String, ConnKey>,
    by_resume: HashMap<ResumeKey, ConnKey>,
    closed: VecDeque<String>,
    closed_set: HashSet<String>,
    calls: HashMap<CallId, Call>,
    invoke_calls: usize,
    timers: BTreeSet<(Instant, TimerKey)>,
    out: VecDeque<(ClientId, Bytes)>,
    commands: VecDeque<Command>,
}

impl Relay {
    /// A relay with `config`. `entropy` makes the randomness source of each
    /// new session (connection ids, resume tickets: use a CSPRNG).
    pub fn new(mut config: RelayConfig, entropy: impl FnMut() -> Box<dyn Entropy> + Send + 'static) -> Relay {
        config.session.check_tools = false;
        Relay {
            config,
            entropy: Box::new(entropy),
            next_key: 0,
            next_client: 0,
            next_call: 0,
            conns: HashMap::new(),
            transports: HashMap::new(),
            by_cid: HashMap::new(),
            by_resume: HashMap::new(),
            closed: VecDeque::new(),
            closed_set: HashSet::new(),
            calls: HashMap::new(),
            invoke_calls: 0,
            timers: BTreeSet::new(),
            out: VecDeque::new(),
            commands: VecDeque::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        RelayStats { connections: self.conns.len(), attached: self.transports.len(), calls: self.calls.len() }
    }

    // ------------------------------------------------------------ outputs

    /// The next WebSocket message to write, and the transport to write it to.
    pub fn poll_transmit(&mut self) -> Option<(ClientId, Bytes)> {
        self.out.pop_front()
    }

    /// The next thing the adapter must do. Drain transmits first.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    // ------------------------------------------------------- client inputs

    /// A client transport opened (the WebSocket upgrade succeeded); `token`
    /// is the bearer token of its upgrade request, if any. Past
    /// [`max_connections`](RelayConfig::max_connections) the session is
    /// refused with `RATE_LIMITED` at once.
    pub fn handle_client_open(&mut self, now: Instant, token: Option<String>) -> ClientId {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let key = ConnKey(self.next_key);
        self.next_key += 1;
        let full = self.conns.len() >= self.config.max_connections;
        let mut session = Session::server(self.config.session.clone(), now, (self.entropy)());
        session.set_transport_token(token);
        if full {
            let max = self.config.max_connections;
            session.reject(now, ErrorCode::RATE_LIMITED, format!("the relay holds its maximum of {max} connections"));
        }
        let conn = Conn {
            session,
            transport: Some(client),
            cid: None,
            name: None,
            caps: Vec::new(),
            state: None,
            calls: RequestIdMap::default(),
            armed: None,
        };
        self.conns.insert(key, conn);
        self.transports.insert(client, key);
        self.settle(now, key);
        client
    }

    /// One binary WebSocket message from a client.
    pub fn handle_client_message(&mut self, now: Instant, client: ClientId, message: Bytes) {
        let Some(&key) = self.transports.get(&client) else { return };
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.session.handle_message(now, message);
        }
        self.settle(now, key);
    }

    /// A text WebSocket message from a client (a protocol error).
    pub fn handle_client_text(&mut self, now: Instant, client: ClientId) {
        let Some(&key) = self.transports.get(&client) else { return };
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.session.handle_text_message(now);
        }
        self.settle(now, key);
    }

    /// A client transport closed. Its session waits for a resume (when the
    /// client negotiated it) or ends.
    pub fn handle_client_closed(&mut self, now: Instant, client: ClientId) {
        let Some(key) = self.transports.remove(&client) else { return };
        if let Some(conn) = self.conns.get_mut(&key) {
            if conn.transport == Some(client) {
                conn.transport = None;
                conn.session.handle_transport_closed(now);
            }
        }
        self.settle(now, key);
    }

    // ----------------------------------------------------- function inputs

    /// The response head of a call arrived.
    pub fn handle_call_head(&mut self, now: Instant, call_id: CallId, head: ResponseHead) {
        let max_state = self.config.max_state_bytes;
        let max_frame = self.config.session.max_frame_payload;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        if call.head_at.is_some() {
            return;
        }
        call.head_at = Some(now);
        call.last_body = now;
        let ok = (200..300).contains(&head.status);
        let conn_key = call.conn;
        if call.kind != CallKind::Invoke {
            // Lifecycle calls only carry state; their bodies are ignored.
            call.mode = BodyMode::Done;
            if call.kind == CallKind::Connect && ok {
                if let Some(Ok(state)) = head.state.as_deref().map(decode_state) {
                    if state.len() <= max_state {
                        if let Some(conn) = self.conns.get_mut(&conn_key) {
                            conn.state = (!state.is_empty()).then_some(state);
                        }
                    }
                }
            }
            return self.arm_call(call_id);
        }
        if !ok {
            let status = head.status;
            let mut error = ErrorInfo::new(ErrorCode::BACKEND_STATUS, format!("the function answered HTTP {status}"));
            error.data = Value::Map(vec![(Value::from("status"), Value::from(status))]);
            call.queue(Pending::Fail(error), 0);
            return self.progress(now, call_id);
        }
        if let Some(value) = head.state.as_deref() {
            match decode_state(value) {
                Err(e) => {
                    call.queue(Pending::Fail(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, e)), 0);
                    return self.progress(now, call_id);
                }
                Ok(state) if state.len() > max_state => {
                    let message =
                        format!("the function returned {} bytes of state; the bound is {max_state}", state.len());
                    call.queue(Pending::Fail(ErrorInfo::new(ErrorCode::STATE_TOO_LARGE, message)), 0);
                    return self.progress(now, call_id);
                }
                Ok(state) => {
                    if let Some(conn) = self.conns.get_mut(&conn_key) {
                        conn.state = (!state.is_empty()).then_some(state);
                    }
                }
            }
        }
        call.cpu_us = head.cpu_time.as_deref().and_then(parse_cpu_time);
        let frames = head
            .content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(FRAMES_CONTENT_TYPE));
        call.mode = if frames { BodyMode::Frames(Box::new(crate::Decoder::new(max_frame))) } else { BodyMode::Plain };
        self.arm_call(call_id);
    }

    /// A chunk of a call's body. The adapter hands over at most
    /// [`body_window`](RelayConfig::body_window) bytes not yet returned by
    /// [`Command::Credit`].
    pub fn handle_call_chunk(&mut self, now: Instant, call_id: CallId, data: Bytes) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let len = data.len();
        call.uncredited += len;
        if call.kind != CallKind::Invoke || call.head_at.is_none() || call.finished() {
            return self.credit(call_id, len);
        }
        call.last_body = now;
        match &mut call.mode {
            BodyMode::Plain => call.queue(Pending::Data(data), len),
            BodyMode::Frames(decoder) => {
                let items = decode_frames(decoder, data, call.id, call.cpu_us);
                let count = items.len();
                for (i, item) in items.into_iter().enumerate() {
                    let credit = if i + 1 == count { len } else { 0 };
                    if !call.finished() {
                        call.queue(item, credit);
                    }
                }
                if count == 0 {
                    return self.credit(call_id, len);
                }
            }
            BodyMode::AwaitingHead | BodyMode::Done => {}
        }
        self.progress(now, call_id);
    }

    /// A call's body ended normally.
    pub fn handle_call_end(&mut self, now: Instant, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        call.body_ended = true;
        if call.kind != CallKind::Invoke {
            return self.end_call(call_id, false);
        }
        match &call.mode {
            BodyMode::Plain => {
                let cpu = call.cpu_us;
                call.queue(Pending::Complete(Value::Nil, cpu), 0);
            }
            BodyMode::Frames(decoder) => {
                let message = if decoder.is_idle() {
                    "the function's frames ended without COMPLETE or ERROR"
                } else {
                    "the function's frames ended inside a frame"
                };
                call.queue(Pending::Fail(ErrorInfo::new(ErrorCode::BACKEND_TRUNCATED, message)), 0);
            }
            BodyMode::AwaitingHead => {
                let error = ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, "the call ended without a response");
                call.queue(Pending::Fail(error), 0);
            }
            BodyMode::Done => {}
        }
        self.progress(now, call_id);
    }

    /// A call failed below HTTP (connection refused, body cut short…). The
    /// adapter reports nothing more about it.
    pub fn handle_call_failed(&mut self, now: Instant, call_id: CallId, failure: CallFailure) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        call.body_ended = true;
        if call.kind != CallKind::Invoke {
            return self.end_call(call_id, false);
        }
        if !call.finished() {
            let (code, message) = match failure {
                CallFailure::Unavailable(m) => (ErrorCode::BACKEND_UNAVAILABLE, m),
                CallFailure::Truncated(m) => (ErrorCode::BACKEND_TRUNCATED, m),
                CallFailure::Timeout(m) => (ErrorCode::BACKEND_TIMEOUT, m),
                CallFailure::Invalid(m) => (ErrorCode::BACKEND_INVALID_RESPONSE, m),
            };
            call.queue(Pending::Fail(ErrorInfo::new(code, message)), 0);
        }
        self.progress(now, call_id);
    }

    /// Timers: session heartbeats, handshakes, grace periods, and the
    /// function's response, stall and call timeouts. Early calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            due.push(key);
        }
        for key in due {
            match key {
                TimerKey::Conn(k) => {
                    if let Some(conn) = self.conns.get_mut(&k) {
                        conn.armed = None;
                        conn.session.handle_timeout(now);
                    }
                    self.settle(now, k);
                }
                TimerKey::Call(c) => {
                    if let Some(call) = self.calls.get_mut(&c) {
                        call.armed = None;
                    }
                    self.check_call_timers(now, c);
                }
            }
        }
    }

    // ------------------------------------------------------------ sessions

    /// Acts on a session's events, moves its transmits out and re-arms its
    /// timer. Every input that touched a session ends here.
    fn settle(&mut self, now: Instant, key: ConnKey) {
        loop {
            let Some(conn) = self.conns.get_mut(&key) else { return };
            let Some(event) = conn.session.poll_event() else { break };
            match event {
                Event::HelloReceived(info) => self.on_hello(now, key, info),
                Event::Connected { cid, resumed: false, .. } => self.on_connected(now, key, cid),
                Event::Invoked { id, invoke } => self.on_invoked(now, key, id, invoke),
                Event::Interrupted { id, .. } => {
                    if let Some(call) = conn.calls.remove(&id) {
                        self.end_call(call, true);
                    }
                }
                Event::Writable { id } => {
                    let calls: Vec<CallId> = if id.is_connection() {
                        conn.calls.values().copied().collect()
                    } else {
                        conn.calls.get(&id).copied().into_iter().collect()
                    };
                    for call in calls {
                        self.flush_call(now, call);
                    }
                }
                // The session gave up on its transport (unanswered PINGs);
                // after a resume it is attached to a new one already.
                Event::Detached { .. } if conn.session.state() == SessionState::Detached => {
                    if let Some(client) = conn.transport.take() {
                        self.transports.remove(&client);
                        let code = ErrorCode::PEER_UNRESPONSIVE;
                        self.commands.push_back(Command::Close {
                            client,
                            code: code.close_code(),
                            reason: "no answer to PING".into(),
                        });
                    }
                }
                Event::Closed(reason) => {
                    self.drain_transmits(key);
                    return self.remove_conn(now, key, reason.websocket_code(), reason.message);
                }
                _ => {}
            }
        }
        self.drain_transmits(key);
        self.arm_conn(key);
    }

    fn drain_transmits(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let Some(client) = conn.transport else { return };
        while let Some(bytes) = conn.session.poll_transmit() {
            self.out.push_back((client, bytes));
        }
    }

    fn arm_conn(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        let next = conn.session.poll_timeout();
        if next != conn.armed {
            if let Some(at) = conn.armed {
                self.timers.remove(&(at, TimerKey::Conn(key)));
            }
            if let Some(at) = next {
                self.timers.insert((at, TimerKey::Conn(key)));
            }
            conn.armed = next;
        }
    }

    fn on_hello(&mut self, now: Instant, key: ConnKey, info: HelloInfo) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        conn.name = info.name.clone();
        conn.caps = info.caps.clone();
        let mut refused = None;
        if let Some(request) = conn.session.resume_request().cloned() {
            let old = ResumeKey::of(&request.ticket).and_then(|rk| self.by_resume.get(&rk).copied());
            if let Some(old) = old.filter(|old| *old != key) {
                let result = match self.conns.get_mut(&old) {
                    Some(old_conn) => old_conn.session.resume(now, &request),
                    None => Err(ErrorCode::RESUME_UNKNOWN_SESSION),
                };
                match result {
                    Ok(()) => return self.move_transport(now, key, old),
                    Err(code) => refused = Some(code),
                }
            }
        }
        let tokens = &self.config.client_tokens;
        let authorized = tokens.is_empty()
            || info
                .token
                .as_deref()
                .is_some_and(|t| tokens.iter().any(|ok| bool::from(ok.as_bytes().ct_eq(t.as_bytes()))));
        let Some(conn) = self.conns.get_mut(&key) else { return };
        if !authorized {
            let message = if info.token.is_some() { "invalid token" } else { "a bearer token is required" };
            return conn.session.reject(now, ErrorCode::UNAUTHENTICATED, message);
        }
        let _ = match refused {
            Some(code) => conn.session.accept_refusing_resume(now, code),
            None => conn.session.accept(now),
        };
    }

    /// A resume succeeded on `old`: the new transport now reaches it, and the
    /// throwaway session that read the HELLO is dropped.
    fn move_transport(&mut self, now: Instant, new: ConnKey, old: ConnKey) {
        let Some(temp) = self.conns.remove(&new) else { return };
        if let Some(at) = temp.armed {
            self.timers.remove(&(at, TimerKey::Conn(new)));
        }
        let Some(client) = temp.transport else { return };
        let Some(conn) = self.conns.get_mut(&old) else { return };
        if let Some(previous) = conn.transport.replace(client) {
            // The old transport had not been noticed dead yet.
            self.transports.remove(&previous);
            self.commands.push_back(Command::Close {
                client: previous,
                code: 1000,
                reason: "the session resumed on another transport".into(),
            });
        }
        self.transports.insert(client, old);
        self.settle(now, old);
    }

    fn on_connected(&mut self, now: Instant, key: ConnKey, cid: String) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        conn.cid = Some(cid.clone());
        if let Some(rk) = conn.session.resume_key() {
            self.by_resume.insert(rk, key);
        }
        self.by_cid.insert(cid, key);
        if self.config.lifecycle_calls {
            self.start_lifecycle_call(now, key, CallKind::Connect);
        }
    }

    fn remove_conn(&mut self, now: Instant, key: ConnKey, code: u16, message: String) {
        let Some(conn) = self.conns.remove(&key) else { return };
        if let Some(client) = conn.transport {
            self.transports.remove(&client);
            let reason = truncate_reason(message);
            self.commands.push_back(Command::Close { client, code, reason });
        }
        if let Some(at) = conn.armed {
            self.timers.remove(&(at, TimerKey::Conn(key)));
        }
        for call in conn.calls.values() {
            self.end_call(*call, true);
        }
        if let Some(rk) = conn.session.resume_key() {
            if self.by_resume.get(&rk) == Some(&key) {
                self.by_resume.remove(&rk);
            }
        }
        if let Some(cid) = &conn.cid {
            self.by_cid.remove(cid);
            self.remember_closed(cid.clone());
            if self.config.lifecycle_calls {
                let body = request::lifecycle_body(
                    self.config.encoding,
                    cid,
                    conn.name.as_deref(),
                    &conn.caps,
                    conn.state.as_deref(),
                );
                self.issue_call(now, key, CallKind::Disconnect, RequestId::CONNECTION, cid, None, body);
            }
        }
    }

    fn remember_closed(&mut self, cid: String) {
        if self.config.closed_memory == 0 {
            return;
        }
        if self.closed.len() >= self.config.closed_memory {
            if let Some(old) = self.closed.pop_front() {
                self.closed_set.remove(&old);
            }
        }
        self.closed_set.insert(cid.clone());
        self.closed.push_back(cid);
    }

    // --------------------------------------------------------------- calls

    fn on_invoked(&mut self, now: Instant, key: ConnKey, id: RequestId, invoke: Invoke) {
        let Some(conn) = self.conns.get_mut(&key) else { return };
        if self.invoke_calls >= self.config.max_calls {
            let max = self.config.max_calls;
            let _ = conn.session.fail(id, ErrorCode::BACKEND_OVERLOADED, format!("{max} function calls are in flight"));
            return;
        }
        let cid = conn.cid.clone().unwrap_or_default();
        let body =
            InvokeBody { cid: &cid, id, invoke: &invoke, state: conn.state.as_deref() }.encode(self.config.encoding);
        let call = self.issue_call(now, key, CallKind::Invoke, id, &cid, invoke.trace.as_deref(), body);
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.calls.insert(id, call);
        }
        self.invoke_calls += 1;
    }

    fn start_lifecycle_call(&mut self, now: Instant, key: ConnKey, kind: CallKind) {
        let Some(conn) = self.conns.get(&key) else { return };
        let cid = conn.cid.clone().unwrap_or_default();
        let body = request::lifecycle_body(
            self.config.encoding,
            &cid,
            conn.name.as_deref(),
            &conn.caps,
            conn.state.as_deref(),
        );
        self.issue_call(now, key, kind, RequestId::CONNECTION, &cid, None, body);
    }

    #[allow(clippy::too_many_arguments)]
    fn issue_call(
        &mut self,
        now: Instant,
        key: ConnKey,
        kind: CallKind,
        id: RequestId,
        cid: &str,
        trace: Option<&str>,
        body: Bytes,
    ) -> CallId {
        let call = CallId(self.next_call);
        self.next_call += 1;
        let mut headers = vec![
            ("content-type", self.config.encoding.content_type().to_owned()),
            ("x-asp-connection-id", cid.to_owned()),
        ];
        if kind == CallKind::Invoke {
            headers.push(("x-asp-request-id", id.0.to_string()));
        }
        if let Some(trace) = trace {
            headers.push(("traceparent", trace.to_owned()));
        }
        if let Some(token) = &self.config.function_token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        self.calls.insert(call, Call::new(key, kind, id, now));
        self.commands.push_back(Command::Call(FunctionCall { call, kind, headers, body }));
        self.arm_call(call);
        call
    }

    /// Sends what a call has queued, then settles its session.
    fn progress(&mut self, now: Instant, call_id: CallId) {
        let conn = self.calls.get(&call_id).map(|c| c.conn);
        self.flush_call(now, call_id);
        if let Some(conn) = conn {
            self.settle(now, conn);
        }
    }

    /// Moves a call's queued output into its session as far as credit goes.
    fn flush_call(&mut self, now: Instant, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let had_pending = !call.pending.is_empty();
        let Some(conn) = self.conns.get_mut(&call.conn) else {
            return self.end_call(call_id, true);
        };
        let mut credit = 0;
        let mut ended = None;
        while let Some((item, owed)) = call.pending.pop_front() {
            let result = match item {
                Pending::Data(mut data) => {
                    let before = data.len();
                    let result = conn.session.send_chunk(call.id, &mut data);
                    if result == Err(SendError::Blocked) {
                        let sent = (before - data.len()).min(owed);
                        credit += sent;
                        call.pending.push_front((Pending::Data(data), owed - sent));
                        break;
                    }
                    result
                }
                Pending::Progress(p) => match conn.session.send_progress(call.id, p.clone()) {
                    Err(SendError::Blocked) => {
                        call.pending.push_front((Pending::Progress(p), owed));
                        break;
                    }
                    result => result,
                },
                Pending::Tools(op, tools) => {
                    // A tool push that fails (session draining) loses nothing the call needs.
                    let _ = conn.session.push_tools(op, tools);
                    Ok(())
                }
                Pending::Complete(result, cpu_us) => {
                    let r = conn.session.complete(now, call.id, result, cpu_us);
                    ended = Some(call.body_ended);
                    r
                }
                Pending::Fail(error) => {
                    let r = conn.session.fail_with(call.id, error);
                    ended = Some(call.body_ended);
                    r
                }
            };
            credit += owed;
            if result.is_err() {
                // The invocation is gone (interrupted, session closed): stop the call.
                ended = Some(false);
            }
            if ended.is_some() {
                break;
            }
        }
        if had_pending && call.pending.is_empty() {
            // From here on the relay waits for the function, not the client.
            call.last_body = now;
        }
        if let Some(body_ended) = ended {
            let id = call.id;
            let conn_key = call.conn;
            if let Some(conn) = self.conns.get_mut(&conn_key) {
                conn.calls.remove(&id);
            }
            return self.end_call(call_id, !body_ended);
        }
        self.credit(call_id, credit);
        self.arm_call(call_id);
    }

    fn credit(&mut self, call_id: CallId, bytes: usize) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let bytes = bytes.min(call.uncredited);
        if bytes > 0 {
            call.uncredited -= bytes;
            self.commands.push_back(Command::Credit { call: call_id, bytes });
        }
    }

    fn end_call(&mut self, call_id: CallId, abort: bool) {
        let Some(call) = self.calls.remove(&call_id) else { return };
        if call.kind == CallKind::Invoke {
            self.invoke_calls -= 1;
        }
        if let Some(at) = call.armed {
            self.timers.remove(&(at, TimerKey::Call(call_id)));
        }
        if abort && !call.body_ended {
            self.commands.push_back(Command::Abort(call_id));
        }
    }

    fn arm_call(&mut self, call_id: CallId) {
        let config = &self.config;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let mut next = call.started + config.call_timeout;
        if call.head_at.is_none() {
            next = next.min(call.started + config.response_timeout);
        } else if call.waiting_for_body() {
            next = next.min(call.last_body + config.idle_timeout);
        }
        if Some(next) != call.armed {
            if let Some(at) = call.armed {
                self.timers.remove(&(at, TimerKey::Call(call_id)));
            }
            self.timers.insert((next, TimerKey::Call(call_id)));
            call.armed = Some(next);
        }
    }

    fn check_call_timers(&mut self, now: Instant, call_id: CallId) {
        let config = &self.config;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let why = if now >= call.started + config.call_timeout {
            Some(format!("the call ran longer than {} ms", request::millis(config.call_timeout)))
        } else if call.head_at.is_none() && now >= call.started + config.response_timeout {
            Some(format!("no response within {} ms", request::millis(config.response_timeout)))
        } else if call.head_at.is_some() && call.waiting_for_body() && now >= call.last_body + config.idle_timeout {
            Some(format!("the body stalled for {} ms", request::millis(config.idle_timeout)))
        } else {
            None
        };
        let Some(why) = why else { return self.arm_call(call_id) };
        if call.kind != CallKind::Invoke {
            return self.end_call(call_id, true);
        }
        // Output still waiting for credit is dropped: the call is over.
        call.pending.clear();
        call.queue(Pending::Fail(ErrorInfo::new(ErrorCode::BACKEND_TIMEOUT, why)), 0);
        self.progress(now, call_id);
    }
}

impl Call {
    /// The relay waits for the function's body (not for the client's credit).
    fn waiting_for_body(&self) -> bool {
        !self.finished() && !self.body_ended && self.pending.is_empty()
    }
}

/// Turns frames the function wrote (frames mode) into queued output.
fn decode_frames(decoder: &mut crate::Decoder, mut data: Bytes, id: RequestId, cpu_us: Option<u64>) -> Vec<Pending> {
    let mut items = Vec::new();
    loop {
        let frame = match decoder.decode(&mut data) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                let message = format!("the function's frames are invalid: {e}");
                items.push(Pending::Fail(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, message)));
                break;
            }
        };
        let rid = frame.request_id();
        if !(rid.is_connection() || rid == id) {
            let message = format!("the function wrote a frame for request {rid}; this call is {id}");
            items.push(Pending::Fail(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, message)));
            break;
        }
        let item = match frame {
            Frame::Stream(_, bytes) => Pending::Data(bytes),
            Frame::Progress(_, p) => Pending::Progress(p),
            Frame::ToolDef(def) => Pending::Tools(def.op, def.tools),
            Frame::Complete(_, c) => Pending::Complete(c.result, c.metrics.cpu_us.or(cpu_us)),
            Frame::Error(_, error) => Pending::Fail(error),
            other => {
                let message = format!("a function may not write {:?} frames", other.frame_type());
                Pending::Fail(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, message))
            }
        };
        let terminal = matches!(item, Pending::Complete(..) | Pending::Fail(_));
        items.push(item);
        if terminal {
            break;
        }
    }
    items
}

/// WebSocket close reasons are at most 123 bytes (RFC 6455).
fn truncate_reason(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut cut = 123;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason
}

#[cfg(test)]
mod tests;
