//! The driver on its own: no sockets and no real time. Connections run over
//! [`memory::pair`](crate::memory::pair) on a single-threaded executor, the
//! runtime's clock is virtual, and the peer is a bare `Session` the test
//! steps by hand.

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use asp_proto::{ErrorCode, Event, Invoke, RequestId, Session, SessionConfig, SessionState, ToolSpec, Value};
use bytes::Bytes;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use tungstenite::Message;

use super::{run_connection, DriverConfig};
use crate::memory::{pair, MemoryTransport};
use crate::resume::{ResumeRegistry, Resumption};
use crate::{BoxFuture, Connection, OsEntropy, Runtime, ToolContext, ToolError, ToolRegistry};

/// A runtime whose clock moves only when the test says so.
#[derive(Clone)]
struct VirtualRuntime {
    inner: Arc<Mutex<Clock>>,
}

struct Clock {
    now: Instant,
    sleepers: Vec<(Instant, Waker)>,
    spawned: Vec<BoxFuture<()>>,
}

impl VirtualRuntime {
    fn new() -> Self {
        VirtualRuntime {
            inner: Arc::new(Mutex::new(Clock { now: Instant::now(), sleepers: Vec::new(), spawned: Vec::new() })),
        }
    }

    fn advance(&self, by: Duration) {
        let mut clock = self.inner.lock().unwrap();
        clock.now += by;
        let now = clock.now;
        let (due, waiting) = std::mem::take(&mut clock.sleepers).into_iter().partition(|(at, _)| *at <= now);
        clock.sleepers = waiting;
        drop(clock);
        for (_, waker) in due {
            waker.wake();
        }
    }
}

impl Runtime for VirtualRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        self.inner.lock().unwrap().spawned.push(future);
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        let inner = self.inner.clone();
        Box::pin(futures::future::poll_fn(move |cx| {
            let mut clock = inner.lock().unwrap();
            if clock.now >= deadline {
                return Poll::Ready(());
            }
            clock.sleepers.push((deadline, cx.waker().clone()));
            Poll::Pending
        }))
    }

    fn now(&self) -> Instant {
        self.inner.lock().unwrap().now
    }
}

/// Everything the test runs: the executor, the clock, the server's tools.
struct World {
    pool: LocalPool,
    rt: VirtualRuntime,
    tools: ToolRegistry,
    registry: ResumeRegistry<MemoryTransport>,
}

/// The client: a bare session over one end of a memory transport.
struct Peer {
    session: Session,
    transport: Option<MemoryTransport>,
    events: Vec<Event>,
}

impl World {
    fn new() -> World {
        World {
            pool: LocalPool::new(),
            rt: VirtualRuntime::new(),
            tools: ToolRegistry::new(),
            registry: ResumeRegistry::default(),
        }
    }

    fn spawn(&mut self, future: BoxFuture<()>) {
        self.pool.spawner().spawn_local(future).expect("spawn");
    }

    /// Runs every task until nothing can make progress.
    fn run(&mut self) {
        loop {
            let spawned = std::mem::take(&mut self.rt.inner.lock().unwrap().spawned);
            if spawned.is_empty() && !self.pool.try_run_one() {
                return;
            }
            for future in spawned {
                self.spawn(future);
            }
            self.pool.run_until_stalled();
        }
    }

    /// A server connection (its own driver task) for a new transport.
    fn serve(&mut self, transport: MemoryTransport, resumable: bool) -> Connection {
        let session_config = SessionConfig { tools: self.tools.tool_set(), ..SessionConfig::default() };
        let config = DriverConfig { session: session_config.clone(), tools: self.tools.clone(), auth: None };
        let session = Session::server(session_config, self.rt.now(), Box::new(OsEntropy));
        let resumption = if resumable { Resumption::Server(self.registry.clone()) } else { Resumption::Off };
        let (conn, driver) = run_connection(self.rt.clone(), transport, session, config, None, resumption);
        self.spawn(driver);
        conn
    }

    /// A client session and the server connection it talks to.
    fn connect(&mut self, config: SessionConfig, resumable: bool) -> (Peer, Connection) {
        let (client_end, server_end) = pair();
        let conn = self.serve(server_end, resumable);
        let mut peer =
            Peer { session: Session::client(config, self.rt.now()), transport: Some(client_end), events: vec![] };
        self.exchange(&mut peer);
        (peer, conn)
    }

    /// Moves messages both ways until both sides are quiet.
    fn exchange(&mut self, peer: &mut Peer) {
        loop {
            self.run();
            let now = self.rt.now();
            let mut moved = false;
            if let Some(t) = &mut peer.transport {
                while let Some(bytes) = peer.session.poll_transmit() {
                    moved = true;
                    let _ = t.tx.unbounded_send(Message::Binary(bytes));
                }
                while let Ok(message) = t.rx.try_recv() {
                    moved = true;
                    if let Message::Binary(bytes) = message {
                        peer.session.handle_message(now, bytes);
                    }
                }
            }
            while let Some(event) = peer.session.poll_event() {
                peer.events.push(event);
            }
            if !moved {
                self.run();
                return;
            }
        }
    }
}

impl Peer {
    fn output(&self, id: RequestId) -> Vec<u8> {
        let chunks = self.events.iter().filter_map(|e| match e {
            Event::Chunk { id: i, data } if *i == id => Some(&data[..]),
            _ => None,
        });
        chunks.flatten().copied().collect()
    }

    fn completed(&self, id: RequestId) -> Option<Value> {
        self.events.iter().find_map(|e| match e {
            Event::Completed { id: i, result, .. } if *i == id => Some(result.clone()),
            _ => None,
        })
    }
}

const CHUNK: usize = 10 * 1024;
const CHUNKS: usize = 40;

/// 400 KiB in 40 chunks, each filled with its index, then `"done"`.
async fn big(ctx: ToolContext, _args: Value) -> Result<Value, ToolError> {
    for i in 0..CHUNKS {
        ctx.send(Bytes::from(vec![i as u8; CHUNK])).await?;
    }
    Ok(Value::from("done"))
}

fn expected_big_output() -> Vec<u8> {
    (0..CHUNKS).flat_map(|i| vec![i as u8; CHUNK]).collect()
}

#[test]
fn blocked_output_keeps_its_order_and_the_result_waits_for_it() {
    let mut w = World::new();
    w.tools.add(ToolSpec::named("big"), big);
    let (mut peer, _conn) = w.connect(SessionConfig::default(), false);
    let id = peer.session.invoke(w.rt.now(), Invoke::new("big", Value::Nil)).unwrap();
    w.exchange(&mut peer);

    // The client grants nothing: exactly one invocation window arrives, and
    // the result does not overtake the output still waiting for credit.
    let window = SessionConfig::default().invocation_window as usize;
    assert_eq!(peer.output(id).len(), window);
    assert_eq!(peer.completed(id), None);

    // Enough credit that the tool can return (what it still has queued is
    // within its send budget) while 16 KiB wait for credit: the result
    // must wait behind them.
    peer.session.grant(id, window / 2); // a WINDOW goes out at half a window
    w.exchange(&mut peer);
    assert_eq!(peer.output(id).len(), window + window / 2);
    assert!(CHUNK * CHUNKS - peer.output(id).len() <= crate::SEND_BUDGET);
    assert_eq!(peer.completed(id), None, "the result overtook queued output");

    peer.session.grant(id, CHUNK * CHUNKS);
    w.exchange(&mut peer);
    assert_eq!(peer.output(id), expected_big_output(), "all output, in order");
    assert_eq!(peer.completed(id), Some(Value::from("done")));
    let last_chunk = peer.events.iter().rposition(|e| matches!(e, Event::Chunk { .. })).unwrap();
    let completed = peer.events.iter().position(|e| matches!(e, Event::Completed { .. })).unwrap();
    assert!(last_chunk < completed, "COMPLETE after the last STREAM");
}

#[test]
fn an_interrupt_drops_blocked_output_and_stops_the_tool() {
    let mut w = World::new();
    w.tools.add(ToolSpec::named("big"), big);
    let (mut peer, _conn) = w.connect(SessionConfig::default(), false);
    let id = peer.session.invoke(w.rt.now(), Invoke::new("big", Value::Nil)).unwrap();
    w.exchange(&mut peer);
    peer.session.interrupt(id, None).unwrap();
    w.exchange(&mut peer);
    let failed = peer.events.iter().find_map(|e| match e {
        Event::Failed { id: i, error } if *i == id => Some(error.code),
        _ => None,
    });
    assert_eq!(failed, Some(ErrorCode::CANCELLED));
    // Credit now would release output if any were still queued.
    let before = peer.output(id).len();
    peer.session.grant(RequestId::CONNECTION, CHUNK * CHUNKS);
    w.exchange(&mut peer);
    assert_eq!(peer.output(id).len(), before, "nothing after the interrupt");
    assert_eq!(peer.session.state(), SessionState::Open);
}

#[test]
fn a_resuming_client_gets_its_old_session_through_the_hand_off() {
    let mut w = World::new();
    w.tools.add(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok(args) });
    let (mut peer, old_conn) = w.connect(SessionConfig::default(), true);
    let cid = old_conn.connection_id().expect("connected");
    assert_eq!(w.registry.len(), 1, "the session is indexed for resumption");

    // The transport dies under both sides.
    peer.transport = None;
    peer.session.handle_transport_closed(w.rt.now());
    w.run();
    assert_eq!(peer.session.state(), SessionState::Detached);

    // A new transport reaches a new connection task, which hands it over.
    let (client_end, server_end) = pair();
    let fresh_conn = w.serve(server_end, true);
    peer.transport = Some(client_end);
    peer.session.reconnect(w.rt.now()).unwrap();
    w.exchange(&mut peer);
    let resumed = peer.events.iter().any(|e| matches!(e, Event::Connected { cid: c, resumed: true, .. } if *c == cid));
    assert!(resumed, "same cid, resumed: {:?}", peer.events);
    assert_eq!(fresh_conn.connection_id(), None, "the fresh session never started");
    assert_eq!(w.registry.len(), 1);

    // The old session serves the new transport.
    let id = peer.session.invoke(w.rt.now(), Invoke::new("echo", Value::from("again"))).unwrap();
    w.exchange(&mut peer);
    assert_eq!(peer.completed(id), Some(Value::from("again")));
}

#[test]
fn a_resume_replaces_an_old_transport_the_server_still_holds() {
    // SPEC §11.3.3: the client's network died silently; the server has not
    // noticed, and the client resumes on a new transport.
    let mut w = World::new();
    w.tools.add(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok(args) });
    let (mut peer, old_conn) = w.connect(SessionConfig::default(), true);
    let cid = old_conn.connection_id().expect("connected");
    let _silent_old_end = peer.transport.take(); // kept open: the server sees nothing
    peer.session.handle_transport_closed(w.rt.now());
    w.run();

    let (client_end, server_end) = pair();
    w.serve(server_end, true);
    peer.transport = Some(client_end);
    peer.session.reconnect(w.rt.now()).unwrap();
    w.exchange(&mut peer);
    let resumed = peer.events.iter().any(|e| matches!(e, Event::Connected { cid: c, resumed: true, .. } if *c == cid));
    assert!(resumed, "not resumed: {:?}", peer.events);
    let id = peer.session.invoke(w.rt.now(), Invoke::new("echo", Value::from("on the new transport"))).unwrap();
    w.exchange(&mut peer);
    assert_eq!(peer.completed(id), Some(Value::from("on the new transport")));
    assert!(!old_conn.is_closed());
}

#[test]
fn a_resume_with_an_unknown_ticket_gets_a_new_session() {
    // SPEC §11.3.4: no session for the ticket → a new session in the same
    // HELLO, with `resume_error` RESUME_UNKNOWN_SESSION.
    let mut w = World::new();
    let (mut peer, _old) = w.connect(SessionConfig::default(), true);
    let old_cid = peer.session.connection_id().unwrap().to_owned();
    peer.transport = None;
    peer.session.handle_transport_closed(w.rt.now());
    w.run();
    w.registry = ResumeRegistry::default(); // another server: it never saw the ticket

    let (client_end, server_end) = pair();
    let fresh = w.serve(server_end, true);
    peer.transport = Some(client_end);
    peer.session.reconnect(w.rt.now()).unwrap();
    w.exchange(&mut peer);
    let refused = peer.events.iter().find_map(|e| match e {
        Event::Connected { cid, resumed: false, resume_error: Some(code) } => Some((cid.clone(), *code)),
        _ => None,
    });
    let (cid, code) = refused.unwrap_or_else(|| panic!("no new session: {:?}", peer.events));
    assert_eq!(code, ErrorCode::RESUME_UNKNOWN_SESSION);
    assert_ne!(cid, old_cid);
    assert_eq!(fresh.connection_id(), Some(cid));
    assert_eq!(peer.session.state(), SessionState::Open);
}

#[test]
fn the_tool_registry_forgets_connections_that_ended() {
    let mut w = World::new();
    w.tools.add(ToolSpec::named("echo"), |_ctx: ToolContext, args: Value| async move { Ok(args) });
    for _ in 0..3 {
        let (mut peer, conn) = w.connect(SessionConfig::default(), false);
        assert_eq!(w.tools.subscribers(), 1, "an open connection hears of tool changes");
        peer.session.close(ErrorCode::NO_ERROR, "bye");
        w.exchange(&mut peer);
        assert!(conn.is_closed());
    }
    assert_eq!(w.tools.subscribers(), 0, "a fixed tool set must not keep every connection ever accepted");
}

#[test]
fn a_silent_peer_is_found_on_the_virtual_clock() {
    let mut w = World::new();
    let config = SessionConfig { resume: false, ..SessionConfig::default() };
    let (mut peer, conn) = w.connect(config, false);
    assert!(!conn.is_closed());
    // The client stops answering; the server's heartbeat runs on the
    // runtime's clock only.
    let heartbeat = SessionConfig::default().heartbeat_interval;
    let missed = SessionConfig::default().missed_pings;
    let _ = &mut peer; // never read again, never answers
    let mut intervals = 0;
    while !conn.is_closed() && intervals < 10 {
        w.rt.advance(heartbeat);
        w.run();
        intervals += 1;
    }
    assert!(intervals as u32 > missed, "closed after {intervals} intervals, before {missed} PINGs were missed");
    assert!(conn.is_closed(), "unanswered PINGs end the session");
}

/// A transport whose writes stop being accepted after `left` messages: a
/// peer that stopped reading, with full socket buffers.
struct Stalling {
    inner: MemoryTransport,
    left: usize,
}

impl futures::Stream for Stalling {
    type Item = Result<Message, tungstenite::Error>;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl futures::Sink<Message> for Stalling {
    type Error = tungstenite::Error;

    fn poll_ready(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.left == 0 {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.left -= 1;
        std::pin::Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn heartbeats_run_while_a_write_waits_on_a_peer_that_does_not_read() {
    let mut w = World::new();
    w.tools.add(ToolSpec::named("big"), big);
    let (client_end, server_end) = pair();
    // The server accepts 3 messages (its HELLO and a little output), then
    // its writes wait for ever.
    let server_end = Stalling { inner: server_end, left: 3 };
    let session_config = SessionConfig { tools: w.tools.tool_set(), ..SessionConfig::default() };
    let config = DriverConfig { session: session_config.clone(), tools: w.tools.clone(), auth: None };
    let session = Session::server(session_config, w.rt.now(), Box::new(OsEntropy));
    let (conn, driver) = run_connection(w.rt.clone(), server_end, session, config, None, Resumption::Off);
    w.spawn(driver);
    let client_config = SessionConfig { resume: false, ..SessionConfig::default() };
    let mut peer =
        Peer { session: Session::client(client_config, w.rt.now()), transport: Some(client_end), events: vec![] };
    w.exchange(&mut peer);
    peer.session.invoke(w.rt.now(), Invoke::new("big", Value::Nil)).unwrap();
    w.exchange(&mut peer);
    assert!(!conn.is_closed());

    // The driver is now stuck in a write; only its timers can notice.
    let heartbeat = SessionConfig::default().heartbeat_interval;
    let mut intervals = 0;
    while !conn.is_closed() && intervals < 10 {
        w.rt.advance(heartbeat);
        w.run();
        intervals += 1;
    }
    assert!(conn.is_closed(), "a peer that does not read must be dropped as unresponsive");
    assert!(intervals >= 2, "not before the PINGs were missed ({intervals} intervals)");
}
