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
//! use asp_relay_proto::{Command, Relay, RelayConfig, ResponseHead};
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

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod call;
mod calls;
mod config;
mod management;
mod request;
mod response;
mod sessions;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use asp_proto::session::{ResumeIndex, Session};
use asp_proto::wire::RequestIdMap;
use asp_proto::Entropy;

pub use call::{CallFailure, CallId, CallKind, FunctionCall, ResponseHead};
pub use config::{BodyEncoding, RelayConfig};
pub use management::{connection_push_frames, management_authorized, ManagementRequest, ManagementResponse};
pub use request::{decode_state, encode_state, parse_cpu_time, value_to_json};

use call::Call;

/// The content type of a response body made of ASP frames (frames mode).
pub const FRAMES_CONTENT_TYPE: &str = "application/vnd.asp.frames";

/// One client transport (a WebSocket connection). A session that resumes on
/// a new transport is reached through the new transport's id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransportId(pub u64);

/// A session the relay holds (attached to a transport or not).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SessionKey(u64);

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
        transport: TransportId,
        /// WebSocket close code (SPEC.md §7.2).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Record this in the cluster directory.
    Directory(DirectoryChange),
}

/// Work for the cluster directory (SPEC.md §15.4): which connection ids
/// this relay holds, the snapshots another node needs to adopt them, and
/// the lookups of sessions held elsewhere. Emitted only with
/// [`RelayConfig::directory`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryChange {
    /// A session with this connection id started (or was adopted) here;
    /// `key` is its resume key (hex), which stays the same for the life of
    /// the session, when it can be resumed.
    Added {
        /// The connection id.
        cid: String,
        /// The resume key, hex.
        key: Option<String>,
    },
    /// The session with this connection id ended here.
    Removed(String),
    /// Save this session's snapshot under its resume key (hex), replacing
    /// the last: what another node needs to adopt it
    /// ([`SessionSnapshot`](asp_proto::session::SessionSnapshot), with the
    /// function's state). Saved when the session starts and whenever its
    /// tools, state or ticket changed; only with [`RelayConfig::snapshots`].
    Saved {
        /// The session's connection id.
        cid: String,
        /// Its resume key, hex.
        key: String,
        /// The snapshot's bytes.
        snapshot: Bytes,
    },
    /// The client has acknowledged (SPEC.md §11.2) the oldest `pushes`
    /// management pushes this node sent it: drop that many from the front
    /// of the connection's push queue in the store. (A cluster node keeps
    /// every push it accepted in the store until then, so a node adopting
    /// the session after this one died applies whatever the client may not
    /// have received.) Only with [`RelayConfig::snapshots`].
    Acknowledged {
        /// The connection id.
        cid: String,
        /// How many pushes, oldest first.
        pushes: usize,
    },
    /// A client asks to resume a session this node does not hold: fetch
    /// the snapshot saved under `key` (hex), and the pushes queued for its
    /// connection, and answer with [`Relay::handle_lookup`]; the client
    /// waits meanwhile.
    Lookup {
        /// The transport the resuming client is on.
        transport: TransportId,
        /// The resume key, hex.
        key: String,
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
    SessionEntry(SessionKey),
    Call(CallId),
}

pub(crate) struct SessionEntry {
    session: Session,
    transport: Option<TransportId>,
    cid: Option<String>,
    name: Option<String>,
    caps: Vec<String>,
    /// The function's state for this connection.
    state: Option<Vec<u8>>,
    calls: RequestIdMap<CallId>,
    armed: Option<Instant>,
    /// The adapter's writes to this client are backed up: call output
    /// waits (and its body credit with it) until they drain.
    backlogged: bool,
    /// The snapshot last saved for the directory: a call that changed
    /// neither tools nor state saves nothing.
    saved: Option<Bytes>,
    /// For each push sent and not yet acknowledged, oldest first: the
    /// sequenced frames sent once it was (it has arrived when the client
    /// has acknowledged that many).
    pushes: VecDeque<u64>,
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
    sessions: HashMap<SessionKey, SessionEntry>,
    transports: HashMap<TransportId, SessionKey>,
    by_cid: HashMap<String, SessionKey>,
    by_resume: ResumeIndex<SessionKey>,
    closed: VecDeque<String>,
    closed_set: HashSet<String>,
    calls: HashMap<CallId, Call>,
    invoke_calls: usize,
    timers: BTreeSet<(Instant, TimerKey)>,
    out: VecDeque<(TransportId, Bytes)>,
    commands: VecDeque<Command>,
    /// Stopping: no new sessions; every session drains.
    draining: bool,
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
            sessions: HashMap::new(),
            transports: HashMap::new(),
            by_cid: HashMap::new(),
            by_resume: ResumeIndex::new(),
            closed: VecDeque::new(),
            closed_set: HashSet::new(),
            calls: HashMap::new(),
            invoke_calls: 0,
            timers: BTreeSet::new(),
            out: VecDeque::new(),
            commands: VecDeque::new(),
            draining: false,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        RelayStats { connections: self.sessions.len(), attached: self.transports.len(), calls: self.calls.len() }
    }

    // ------------------------------------------------------------ outputs

    /// The next WebSocket message to write, and the transport to write it to.
    pub fn poll_transmit(&mut self) -> Option<(TransportId, Bytes)> {
        self.out.pop_front()
    }

    /// The next thing the adapter must do. Drain transmits first.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The answer to [`DirectoryChange::Lookup`]: the snapshot saved under
    /// that key, if the store had one, and the management push bodies
    /// queued for its connection, oldest first. A snapshot whose ticket
    /// matches the client's is adopted (the client resumes with `restart`,
    /// SPEC.md §11.4) and the pushes follow its HELLO, in order; otherwise
    /// the client gets a new session with `RESUME_UNKNOWN_SESSION`.
    pub fn handle_lookup(&mut self, now: Instant, transport: TransportId, snapshot: Option<&[u8]>, pushes: &[Bytes]) {
        self.adopt(now, transport, snapshot, pushes);
    }

    /// The relay is stopping (SIGTERM, SIGINT): every session gets GOAWAY
    /// and `drain` to finish its open invocations, then closes; a detached
    /// session closes at once; a new client is refused (`GOING_AWAY`).
    /// When [`stats`](Self::stats) shows no connections, the relay may exit.
    pub fn handle_drain(&mut self, now: Instant, drain: std::time::Duration) {
        self.draining = true;
        let keys: Vec<SessionKey> = self.sessions.keys().copied().collect();
        for key in keys {
            let Some(conn) = self.sessions.get_mut(&key) else { continue };
            match conn.session.state() {
                asp_proto::SessionState::Open | asp_proto::SessionState::Draining => {
                    let _ = conn.session.goaway(now, Some("the relay is stopping".into()), Some(drain));
                }
                asp_proto::SessionState::Detached => {
                    conn.session.close(asp_proto::ErrorCode::NO_ERROR, "the relay is stopping")
                }
                _ => {}
            }
            self.settle(now, key);
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    // ------------------------------------------------------- client inputs

    /// A client transport opened (the WebSocket upgrade succeeded); `token`
    /// is the bearer token of its upgrade request, if any. A HELLO that
    /// would start a session past
    /// [`max_connections`](RelayConfig::max_connections) is refused with
    /// `RATE_LIMITED`; transports before their HELLO are the listener's to
    /// bound.
    pub fn handle_client_open(&mut self, now: Instant, token: Option<String>) -> TransportId {
        let client = TransportId(self.next_client);
        self.next_client += 1;
        let key = SessionKey(self.next_key);
        self.next_key += 1;
        let mut session = Session::server(self.config.session.clone(), now, (self.entropy)());
        session.set_transport_token(token);
        let conn = SessionEntry {
            session,
            transport: Some(client),
            cid: None,
            name: None,
            caps: Vec::new(),
            state: None,
            calls: RequestIdMap::default(),
            armed: None,
            backlogged: false,
            saved: None,
            pushes: VecDeque::new(),
        };
        self.sessions.insert(key, conn);
        self.transports.insert(client, key);
        self.settle(now, key);
        client
    }

    /// One binary WebSocket message from a client.
    pub fn handle_client_message(&mut self, now: Instant, client: TransportId, message: Bytes) {
        let Some(&key) = self.transports.get(&client) else { return };
        if let Some(conn) = self.sessions.get_mut(&key) {
            conn.session.handle_message(now, message);
        }
        self.settle(now, key);
    }

    /// A text WebSocket message from a client (a protocol error).
    pub fn handle_client_text(&mut self, now: Instant, client: TransportId) {
        let Some(&key) = self.transports.get(&client) else { return };
        if let Some(conn) = self.sessions.get_mut(&key) {
            conn.session.handle_text_message(now);
        }
        self.settle(now, key);
    }

    /// A client transport closed. Its session waits for a resume (when the
    /// client negotiated it) or ends.
    pub fn handle_client_closed(&mut self, now: Instant, client: TransportId) {
        let Some(key) = self.transports.remove(&client) else { return };
        if let Some(conn) = self.sessions.get_mut(&key) {
            if conn.transport == Some(client) {
                conn.transport = None;
                conn.session.handle_transport_closed(now);
            }
        }
        self.settle(now, key);
    }

    /// The adapter's queue of writes to `client` passed its budget
    /// (`backlogged`), or drained again. While backlogged, function output
    /// for that client is not moved into its session, so body credit is not
    /// returned and the function's body is not read: a client whose socket
    /// does not drain holds at most the adapter's budget plus one body
    /// window per call, whatever windows it announced.
    pub fn handle_client_backlog(&mut self, now: Instant, client: TransportId, backlogged: bool) {
        let Some(&key) = self.transports.get(&client) else { return };
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        if std::mem::replace(&mut conn.backlogged, backlogged) && !backlogged {
            let calls: Vec<CallId> = conn.calls.values().copied().collect();
            for call in calls {
                self.flush_call(now, call);
            }
            self.settle(now, key);
        }
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
                TimerKey::SessionEntry(k) => {
                    if let Some(conn) = self.sessions.get_mut(&k) {
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
}
