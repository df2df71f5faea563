//! Scenario tests of the session core over the in-memory pair: every
//! transmit is split at random points, time is virtual.

use std::time::Duration;

use asp_proto::*;
use asp_testkit::{Pair, Side, TestEntropy};
use bytes::Bytes;

fn tool(name: &str) -> ToolSpec {
    ToolSpec::named(name)
}

fn server_cfg() -> SessionConfig {
    SessionConfig { tools: vec![tool("echo"), tool("tokens"), tool("slow")].into(), ..SessionConfig::default() }
}

fn client_cfg() -> SessionConfig {
    SessionConfig { tools: vec![tool("ask_user")].into(), name: Some("test-client".into()), ..SessionConfig::default() }
}

fn pair() -> Pair {
    let mut p = Pair::connected(client_cfg(), server_cfg(), 7);
    p.max_chunk = 7;
    assert!(p.is_connected());
    p
}

fn invoked(p: &mut Pair, side: Side) -> (RequestId, Invoke) {
    let events = p.take_events(side, |e| matches!(e, Event::Invoked { .. }));
    match events.into_iter().next() {
        Some(Event::Invoked { id, invoke }) => (id, invoke),
        other => panic!("expected Invoked on {side:?}, got {other:?}"),
    }
}

fn chunks(p: &mut Pair, side: Side, id: RequestId) -> Vec<u8> {
    let mut out = Vec::new();
    for e in p.take_events(side, |e| matches!(e, Event::Chunk { id: i, .. } if *i == id)) {
        if let Event::Chunk { data, .. } = e {
            out.extend_from_slice(&data);
        }
    }
    out
}

fn closed(p: &mut Pair, side: Side) -> CloseReason {
    match p.take_events(side, |e| matches!(e, Event::Closed(_))).pop() {
        Some(Event::Closed(reason)) => reason,
        other => panic!("expected Closed on {side:?}, got {other:?}"),
    }
}

fn terminal(p: &mut Pair, side: Side, id: RequestId) -> Event {
    let mut found =
        p.take_events(side, |e| matches!(e, Event::Completed { id: i, .. } | Event::Failed { id: i, .. } if *i == id));
    assert_eq!(found.len(), 1, "exactly one terminal event for {id:?}: {found:?}");
    found.pop().unwrap()
}

/// A raw frame, as a misbehaving peer would write it.
fn raw(frame: Frame) -> Bytes {
    frame.to_bytes().unwrap()
}

/// A server session whose client is played by hand, frame by frame.
fn raw_server(config: SessionConfig) -> (Session, std::time::Instant) {
    let now = std::time::Instant::now();
    let mut server = Session::server(config, now, Box::new(TestEntropy(1)));
    server.handle_input(now, &raw(Frame::Hello(ClientHello::new())));
    assert!(matches!(server.poll_event(), Some(Event::HelloReceived(_))));
    server.accept(now).unwrap();
    output(&mut server);
    while server.poll_event().is_some() {}
    (server, now)
}

/// Everything a session wants to send, decoded.
fn output(session: &mut Session) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(bytes) = session.poll_transmit() {
        frames.extend(decode_all(bytes, u32::MAX).unwrap());
    }
    frames
}

// ----------------------------------------------------------------- handshake

#[test]
fn handshake_exchanges_ids_limits_and_tools() {
    let mut p = pair();
    let cid = p.server.connection_id().unwrap().to_owned();
    assert_eq!(p.client.connection_id(), Some(cid.as_str()));
    assert!(cid.starts_with("c-"));
    let connected = p.take_events(Side::Client, |e| matches!(e, Event::Connected { .. }));
    assert_eq!(connected, [Event::Connected { cid: cid.clone(), resumed: false, resume_error: None }]);
    let hello = p.take_events(Side::Server, |e| matches!(e, Event::HelloReceived(_)));
    match &hello[..] {
        [Event::HelloReceived(info)] => {
            assert_eq!(info.name.as_deref(), Some("test-client"));
            assert!(info.caps.iter().any(|c| c == "resume"));
            assert!(!info.resume_requested);
        }
        other => panic!("{other:?}"),
    }
    let names: Vec<_> = p.client.peer_tools().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, ["echo", "slow", "tokens"]);
    assert!(p.server.peer_tools().contains("ask_user"));
    assert!(p.server.resume_key().is_some());
}

#[test]
fn rejected_client_gets_the_code_and_both_close() {
    let mut p = Pair::new(SessionConfig { token: Some("wrong".into()), ..client_cfg() }, server_cfg(), 1);
    p.auto_accept = false;
    p.drive();
    let token = match p.take_events(Side::Server, |e| matches!(e, Event::HelloReceived(_))).pop() {
        Some(Event::HelloReceived(info)) => info.token,
        other => panic!("{other:?}"),
    };
    assert_eq!(token.as_deref(), Some("wrong"));
    p.server.reject(ErrorCode::UNAUTHENTICATED, "bad token");
    p.drive();
    let reason = closed(&mut p, Side::Client);
    assert_eq!((reason.code, reason.initiator), (ErrorCode::UNAUTHENTICATED, Initiator::Peer));
    assert_eq!(reason.websocket_code(), 4400);
    assert_eq!(closed(&mut p, Side::Server).code, ErrorCode::UNAUTHENTICATED);
}

#[test]
fn the_upgrade_token_is_surfaced_when_hello_has_none() {
    let mut p = Pair::new(client_cfg(), server_cfg(), 1);
    p.server.set_transport_token(Some("from-header".into()));
    p.drive();
    match p.take_events(Side::Server, |e| matches!(e, Event::HelloReceived(_))).pop() {
        Some(Event::HelloReceived(info)) => assert_eq!(info.token.as_deref(), Some("from-header")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_hello_in_time_closes_with_handshake_timeout() {
    let now = std::time::Instant::now();
    let mut server = Session::server(server_cfg(), now, Box::new(TestEntropy(1)));
    let deadline = server.poll_timeout().expect("handshake timer");
    assert_eq!(deadline - now, Duration::from_secs(10));
    server.handle_timeout(deadline - Duration::from_millis(1));
    assert!(server.poll_event().is_none(), "early timeouts are harmless");
    server.handle_timeout(deadline);
    let out = server.poll_transmit().expect("an ERROR frame");
    let frames = decode_all(out, 1 << 20).unwrap();
    assert!(matches!(&frames[..], [Frame::Error(RequestId(0), e)] if e.code == ErrorCode::HANDSHAKE_TIMEOUT));
    assert!(matches!(server.poll_event(), Some(Event::Closed(r)) if r.code == ErrorCode::HANDSHAKE_TIMEOUT));
}

#[test]
fn anything_but_hello_first_is_unexpected() {
    let now = std::time::Instant::now();
    let mut server = Session::server(server_cfg(), now, Box::new(TestEntropy(1)));
    server.handle_input(now, &raw(Frame::Ping(Ping { seq: 1, recv: None })));
    assert!(matches!(server.poll_event(), Some(Event::Closed(r)) if r.code == ErrorCode::UNEXPECTED_FRAME));
}

#[test]
fn no_common_version_is_refused() {
    let now = std::time::Instant::now();
    let mut server = Session::server(server_cfg(), now, Box::new(TestEntropy(1)));
    server.handle_input(now, &raw(Frame::Hello(ClientHello { versions: vec![2, 3], ..ClientHello::new() })));
    assert!(matches!(server.poll_event(), Some(Event::Closed(r)) if r.code == ErrorCode::UNSUPPORTED_VERSION));
}

#[test]
fn a_text_message_closes_with_1003() {
    let mut p = pair();
    let now = p.now;
    p.server.handle_text_message(now);
    p.drive();
    let reason = closed(&mut p, Side::Server);
    assert_eq!(reason.websocket_code(), 1003);
    assert_eq!(closed(&mut p, Side::Client).code, ErrorCode::TEXT_MESSAGE);
}

#[test]
fn a_websocket_message_ending_mid_frame_is_truncated() {
    let mut p = pair();
    let frame = raw(Frame::Ping(Ping { seq: 9, recv: None }));
    let now = p.now;
    p.server.handle_message(now, frame.slice(..frame.len() - 1));
    p.drive();
    assert_eq!(closed(&mut p, Side::Server).code, ErrorCode::TRUNCATED_FRAME);
}

// --------------------------------------------------------------- invocations

#[test]
fn invoke_stream_complete_with_metrics() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("tokens", Value::from(3))).unwrap();
    assert_eq!(id, RequestId(1), "clients use odd ids");
    p.drive();
    let (sid, invoke) = invoked(&mut p, Side::Server);
    assert_eq!((sid, invoke.tool.as_str()), (id, "tokens"));
    for t in ["Hello", ", ", "world"] {
        p.server.send_chunk(sid, &mut Bytes::from(t)).unwrap();
    }
    p.server.send_progress(sid, Progress { progress: 3.0, total: Some(3.0), message: None }).unwrap();
    p.advance(Duration::from_millis(12));
    let now = p.now;
    p.server.complete(now, sid, Value::from("done"), Some(40)).unwrap();
    p.drive();
    assert_eq!(chunks(&mut p, Side::Client, id), b"Hello, world");
    assert_eq!(p.take_events(Side::Client, |e| matches!(e, Event::Progress { .. })).len(), 1);
    match terminal(&mut p, Side::Client, id) {
        Event::Completed { result, metrics, .. } => {
            assert_eq!(result, Value::from("done"));
            assert_eq!(metrics.wall_us, 12_000);
            assert_eq!(metrics.cpu_us, Some(40));
        }
        other => panic!("{other:?}"),
    }
    assert!(p.client.invocation(id).is_none());
    assert!(p.server.invocation(id).is_none());
    assert_eq!(p.client.send_chunk(id, &mut Bytes::new()), Err(SendError::NotOpen(id)));
}

#[test]
fn the_server_invokes_a_client_tool() {
    let mut p = pair();
    let now = p.now;
    let id = p.server.invoke(now, Invoke::new("ask_user", Value::from("which file?"))).unwrap();
    assert_eq!(id, RequestId(2), "servers use even ids");
    p.drive();
    let (cid, invoke) = invoked(&mut p, Side::Client);
    assert_eq!((cid, invoke.args), (id, Value::from("which file?")));
    p.client.complete(now, cid, Value::from("main.rs"), None).unwrap();
    p.drive();
    assert!(
        matches!(terminal(&mut p, Side::Server, id), Event::Completed { result, .. } if result == Value::from("main.rs"))
    );
}

#[test]
fn invocation_state_can_be_asked_on_both_sides() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke { timeout: Some(500), ..Invoke::new("slow", Value::Nil) }).unwrap();
    p.drive();
    let mine = p.client.invocation(id).unwrap();
    assert_eq!((mine.role, mine.state, mine.tool.as_str()), (InvocationRole::Invoker, InvocationState::Open, "slow"));
    assert_eq!(mine.deadline, Some(now + Duration::from_millis(500)));
    let theirs = p.server.invocation(id).unwrap();
    assert_eq!(theirs.role, InvocationRole::Handler);
    assert_eq!(theirs.send_credit, limits::DEFAULT_INVOCATION_WINDOW);
    p.client.interrupt(id, None).unwrap();
    assert_eq!(p.client.invocation(id).unwrap().state, InvocationState::Interrupting);
}

#[test]
fn unknown_tools_fail_without_bothering_the_handler() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("nope", Value::Nil)).unwrap();
    p.drive();
    assert!(p.take_events(Side::Server, |e| matches!(e, Event::Invoked { .. })).is_empty());
    assert!(
        matches!(terminal(&mut p, Side::Client, id), Event::Failed { error, .. } if error.code == ErrorCode::UNKNOWN_TOOL)
    );
}

#[test]
fn handler_failure_reaches_the_invoker() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    p.drive();
    let (sid, _) = invoked(&mut p, Side::Server);
    p.server.fail(sid, ErrorCode::INVALID_ARGUMENTS, "args must be a string").unwrap();
    p.drive();
    match terminal(&mut p, Side::Client, id) {
        Event::Failed { error, .. } => {
            assert_eq!(error.code, ErrorCode::INVALID_ARGUMENTS);
            assert_eq!(error.message, "args must be a string");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_parity_is_a_protocol_error() {
    let mut p = pair();
    p.inject(Side::Server, &raw(Frame::Invoke(RequestId(4), Invoke::new("echo", Value::Nil))));
    assert_eq!(closed(&mut p, Side::Server).code, ErrorCode::INVALID_REQUEST_ID);
    assert_eq!(closed(&mut p, Side::Client).code, ErrorCode::INVALID_REQUEST_ID);
}

#[test]
fn reusing_an_open_id_is_a_protocol_error() {
    let mut p = pair();
    let now = p.now;
    p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    p.drive();
    p.inject(Side::Server, &raw(Frame::Invoke(RequestId(1), Invoke::new("slow", Value::Nil))));
    assert_eq!(closed(&mut p, Side::Server).code, ErrorCode::REQUEST_ID_IN_USE);
}

#[test]
fn stream_for_an_unknown_request_is_a_protocol_error() {
    let mut p = pair();
    p.inject(Side::Client, &raw(Frame::Stream(RequestId(9), Bytes::from_static(b"x"))));
    assert_eq!(closed(&mut p, Side::Client).code, ErrorCode::UNKNOWN_REQUEST);
}

#[test]
fn the_concurrency_limit_is_announced_and_respected() {
    let server = SessionConfig { max_concurrent_invocations: 2, ..server_cfg() };
    let mut p = Pair::connected(client_cfg(), server, 3);
    let now = p.now;
    p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    assert_eq!(p.client.invoke(now, Invoke::new("slow", Value::Nil)), Err(SendError::TooManyInvocations(2)));
}

#[test]
fn a_flood_past_the_limit_is_refused_per_invocation() {
    let (mut server, now) = raw_server(SessionConfig { max_concurrent_invocations: 2, ..server_cfg() });
    for id in (1u16..=11).step_by(2) {
        server.handle_input(now, &raw(Frame::Invoke(RequestId(id), Invoke::new("slow", Value::Nil))));
    }
    let refused: Vec<u16> = output(&mut server)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Error(id, e) if e.code == ErrorCode::TOO_MANY_INVOCATIONS => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [5, 7, 9, 11]);
    let invoked = std::iter::from_fn(|| server.poll_event()).filter(|e| matches!(e, Event::Invoked { .. })).count();
    assert_eq!(invoked, 2);
    assert_eq!(server.state(), SessionState::Open, "the connection survives");
    assert_eq!(server.stats().open_invocations, 2);
}

#[test]
fn client_ids_are_distinct_and_odd() {
    let mut p = pair();
    let now = p.now;
    let a = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    let b = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    assert_ne!(a, b);
    assert_eq!((a.0 % 2, b.0 % 2), (1, 1));
}

// --------------------------------------------------- interrupts and deadlines

#[test]
fn interrupt_cancels_the_handler() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    p.client.interrupt(id, Some("user pressed stop".into())).unwrap();
    p.drive();
    let stop = p.take_events(Side::Server, |e| matches!(e, Event::Interrupted { .. }));
    assert_eq!(stop, [Event::Interrupted { id, code: ErrorCode::CANCELLED }]);
    assert!(
        matches!(terminal(&mut p, Side::Client, id), Event::Failed { error, .. } if error.code == ErrorCode::CANCELLED)
    );
    // The handler's late completion is refused locally, never sent.
    assert_eq!(p.server.complete(now, id, Value::Nil, None), Err(SendError::NotOpen(id)));
}

#[test]
fn interrupt_crossing_complete_yields_the_result() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    // Both act before either hears from the other.
    p.server.complete(now, id, Value::from(1), None).unwrap();
    p.client.interrupt(id, None).unwrap();
    p.drive();
    assert!(matches!(terminal(&mut p, Side::Client, id), Event::Completed { .. }));
    assert!(p.take_events(Side::Server, |e| matches!(e, Event::Interrupted { .. })).is_empty());
    assert!(p.is_connected(), "the late INTERRUPT is ignored, not an error");
}

#[test]
fn deadlines_fire_on_both_sides() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke { timeout: Some(250), ..Invoke::new("slow", Value::Nil) }).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    assert_eq!(p.client.poll_timeout(), Some(now + Duration::from_millis(250)));
    p.advance(Duration::from_millis(250));
    assert!(
        matches!(terminal(&mut p, Side::Client, id), Event::Failed { error, .. } if error.code == ErrorCode::DEADLINE_EXCEEDED)
    );
    let stop = p.take_events(Side::Server, |e| matches!(e, Event::Interrupted { .. }));
    assert_eq!(stop, [Event::Interrupted { id, code: ErrorCode::DEADLINE_EXCEEDED }]);
    assert!(p.client.invocation(id).is_none() && p.server.invocation(id).is_none());
    assert!(p.is_connected());
}

// --------------------------------------------------------------------- tools

#[test]
fn tool_pushes_update_the_peer_set_with_an_event() {
    let mut p = pair();
    p.take_events(Side::Client, |_| true);
    p.server.push_tools(ToolOp::Add, vec![tool("search")]).unwrap();
    p.drive();
    assert_eq!(p.take_events(Side::Client, |e| matches!(e, Event::PeerToolsChanged)).len(), 1);
    assert!(p.client.peer_tools().contains("search"));
    p.server.push_tools(ToolOp::Remove, vec![tool("echo")]).unwrap();
    p.drive();
    assert!(!p.client.peer_tools().contains("echo"));
    assert!(!p.server.local_tools().contains("echo"));
    p.server.push_tools(ToolOp::Replace, vec![tool("only")]).unwrap();
    p.drive();
    let names: Vec<_> = p.client.peer_tools().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["only"]);
    // The server now refuses what it removed.
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    p.drive();
    assert!(
        matches!(terminal(&mut p, Side::Client, id), Event::Failed { error, .. } if error.code == ErrorCode::UNKNOWN_TOOL)
    );
}

#[test]
fn too_many_peer_tools_is_refused() {
    let client = SessionConfig { max_peer_tools: 4, ..client_cfg() };
    let mut p = Pair::connected(client, server_cfg(), 5);
    assert!(p.is_connected(), "three tools are within the bound");
    p.server.push_tools(ToolOp::Add, (0..2).map(|i| tool(&format!("t{i}"))).collect()).unwrap();
    p.drive();
    assert_eq!(closed(&mut p, Side::Client).code, ErrorCode::TOO_MANY_TOOLS);
}

#[test]
fn tools_too_big_for_hello_follow_as_tool_def() {
    let big = |i: usize| ToolSpec { desc: Some("x".repeat(2000)), ..tool(&format!("tool{i:02}")) };
    let server = SessionConfig { tools: (0..40).map(big).collect(), ..server_cfg() };
    let p = Pair::connected(client_cfg(), server, 5);
    assert!(p.is_connected());
    assert_eq!(p.client.peer_tools().len(), 40);
}

// ------------------------------------------------------------------ liveness

#[test]
fn heartbeats_measure_rtt_and_keep_the_session() {
    let mut p = pair();
    for _ in 0..4 {
        p.advance(Duration::from_secs(15));
    }
    assert!(p.is_connected());
    assert_eq!(p.client.rtt(), Some(Duration::ZERO), "instant delivery");
    // With latency: ping now, answer after 8 ms.
    let now = p.now;
    p.client.ping(now).unwrap();
    let ping = p.client.poll_transmit().unwrap();
    p.server.handle_input(now, &ping);
    let pong = p.server.poll_transmit().unwrap();
    p.now += Duration::from_millis(8);
    let later = p.now;
    p.client.handle_input(later, &pong);
    let rtt = p.client.rtt().unwrap();
    assert_eq!(rtt, Duration::from_millis(1), "smoothed: (7 * 0 + 8) / 8 ms");
}

#[test]
fn a_silent_peer_is_declared_dead() {
    let no_resume = SessionConfig { resume: false, ..client_cfg() };
    let mut p = Pair::connected(no_resume, server_cfg(), 9);
    p.blackhole = true;
    p.advance(Duration::from_secs(15));
    assert!(p.is_connected(), "one missed PONG is not enough");
    p.advance(Duration::from_secs(15));
    p.advance(Duration::from_secs(15));
    let reason = closed(&mut p, Side::Client);
    assert_eq!(reason.code, ErrorCode::PEER_UNRESPONSIVE);
}

#[test]
fn a_silent_peer_detaches_a_resumable_session() {
    let mut p = pair();
    p.blackhole = true;
    for _ in 0..3 {
        p.advance(Duration::from_secs(15));
    }
    let detached = p.take_events(Side::Client, |e| matches!(e, Event::Detached { .. }));
    assert!(matches!(detached[..], [Event::Detached { reason: DetachReason::PeerUnresponsive, .. }]));
    assert_eq!(p.client.state(), SessionState::Detached);
}

// -------------------------------------------------------------- flow control

/// A pair whose client has the given receive windows and has invoked
/// `tokens`; the server has seen the INVOKE.
fn streaming_pair(invocation_window: u32, connection_window: u32) -> (Pair, RequestId) {
    let client = SessionConfig { invocation_window, connection_window, ..client_cfg() };
    let mut p = Pair::connected(client, server_cfg(), 11);
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("tokens", Value::Nil)).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    (p, id)
}

#[test]
fn a_slow_reader_blocks_the_handler_until_it_grants() {
    let (mut p, id) = streaming_pair(64 * 1024, 128 * 1024);
    let mut rest = Bytes::from(vec![7u8; 200_000]);
    assert_eq!(p.server.send_chunk(id, &mut rest), Err(SendError::Blocked));
    assert_eq!(rest.len(), 200_000 - 64 * 1024, "exactly one window went out");
    assert_eq!(p.server.invocation(id).unwrap().send_credit, 0);
    p.drive();
    let received = chunks(&mut p, Side::Client, id);
    assert_eq!(received.len(), 64 * 1024);
    // Still blocked: the reader has not consumed anything.
    assert_eq!(p.server.send_chunk(id, &mut rest), Err(SendError::Blocked));
    assert!(p.take_events(Side::Server, |e| matches!(e, Event::Writable { .. })).is_empty());
    // Consuming less than half a window sends no WINDOW yet.
    p.client.grant(id, 1000);
    p.drive();
    assert!(p.take_events(Side::Server, |e| matches!(e, Event::Writable { .. })).is_empty());
    // Half a window wakes the writer with exactly that much credit.
    p.client.grant(id, 32 * 1024 - 1000);
    p.drive();
    let woken = p.take_events(Side::Server, |e| matches!(e, Event::Writable { .. }));
    assert_eq!(woken, [Event::Writable { id }]);
    assert_eq!(p.server.invocation(id).unwrap().send_credit, 32 * 1024);
}

#[test]
fn flow_control_holds_back_and_releases_every_byte() {
    let (mut p, id) = streaming_pair(32 * 1024, 48 * 1024);
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut rest = Bytes::from(payload.clone());
    let mut received = Vec::new();
    let mut rounds = 0;
    loop {
        let sent = p.server.send_chunk(id, &mut rest);
        p.drive();
        let got = chunks(&mut p, Side::Client, id);
        // Never more in flight than the invocation window.
        assert!(got.len() <= 32 * 1024, "{} bytes beyond the window", got.len());
        p.client.grant(id, got.len());
        received.extend_from_slice(&got);
        p.drive();
        if sent.is_ok() {
            break;
        }
        rounds += 1;
        assert!(rounds < 100, "no progress");
    }
    assert_eq!(received, payload);
    let now = p.now;
    p.server.complete(now, id, Value::Nil, None).unwrap();
    p.drive();
    assert!(matches!(terminal(&mut p, Side::Client, id), Event::Completed { .. }));
}

#[test]
fn stream_beyond_credit_is_a_flow_control_error() {
    let client = SessionConfig { invocation_window: 16, ..client_cfg() };
    let mut p = Pair::connected(client, server_cfg(), 13);
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    p.drive();
    p.inject(Side::Client, &raw(Frame::Stream(id, Bytes::from(vec![0u8; 17]))));
    assert_eq!(closed(&mut p, Side::Client).code, ErrorCode::FLOW_CONTROL);
}

#[test]
fn window_overflow_is_a_flow_control_error() {
    let mut p = pair();
    p.inject(Side::Server, &raw(Frame::Window(RequestId(0), Window { credit: limits::MAX_WINDOW })));
    assert_eq!(closed(&mut p, Side::Server).code, ErrorCode::FLOW_CONTROL);
}

// ------------------------------------------------------------ goaway, close

#[test]
fn goaway_drains_then_closes_gracefully() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    p.server.goaway(now, Some("restarting".into()), None).unwrap();
    // An INVOKE that crosses the GOAWAY is refused, not run.
    let crossing = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    p.drive();
    assert!(
        matches!(terminal(&mut p, Side::Client, crossing), Event::Failed { error, .. } if error.code == ErrorCode::GOING_AWAY)
    );
    assert_eq!(p.client.state(), SessionState::Draining);
    assert!(p.take_events(Side::Client, |e| matches!(e, Event::GoAway { .. })).len() == 1);
    assert_eq!(p.client.invoke(now, Invoke::new("echo", Value::Nil)), Err(SendError::GoingAway));
    // The open invocation finishes, then the server closes.
    p.server.complete(now, id, Value::Nil, None).unwrap();
    p.drive();
    assert!(matches!(terminal(&mut p, Side::Client, id), Event::Completed { .. }));
    let reason = closed(&mut p, Side::Server);
    assert_eq!((reason.code, reason.websocket_code()), (ErrorCode::NO_ERROR, 1000));
    // The transport closes; the drained client closes too, without resume.
    p.kill_transport();
    assert_eq!(closed(&mut p, Side::Client).code, ErrorCode::NO_ERROR);
}

#[test]
fn a_drain_deadline_fails_what_is_left() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    p.drive();
    p.server.goaway(now, None, Some(Duration::from_secs(5))).unwrap();
    p.advance(Duration::from_secs(5));
    assert!(
        matches!(terminal(&mut p, Side::Client, id), Event::Failed { error, .. } if error.code == ErrorCode::GOING_AWAY)
    );
    assert_eq!(closed(&mut p, Side::Server).code, ErrorCode::GOING_AWAY);
}

#[test]
fn close_fails_every_open_invocation_on_both_sides() {
    let mut p = pair();
    let now = p.now;
    let mine = p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    let theirs = p.server.invoke(now, Invoke::new("ask_user", Value::Nil)).unwrap();
    p.drive();
    p.server.close(ErrorCode::INTERNAL, "shutting down hard");
    p.drive();
    assert!(
        matches!(terminal(&mut p, Side::Client, mine), Event::Failed { error, .. } if error.code == ErrorCode::INTERNAL)
    );
    let stop = p.take_events(Side::Client, |e| matches!(e, Event::Interrupted { .. }));
    assert_eq!(stop, [Event::Interrupted { id: theirs, code: ErrorCode::INTERNAL }]);
    let reason = closed(&mut p, Side::Client);
    assert_eq!((reason.initiator, reason.websocket_code()), (Initiator::Peer, 4001));
}

// ------------------------------------------------------------------- resume

fn stream_all(p: &mut Pair, id: RequestId, data: &mut Bytes) {
    while !data.is_empty() {
        if p.server.send_chunk(id, data).is_err() {
            p.drive();
            let got = chunks(p, Side::Client, id);
            p.client.grant(id, got.len());
        }
        p.drive();
    }
}

#[test]
fn resume_after_a_killed_transport_loses_and_repeats_nothing() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("tokens", Value::Nil)).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut first = Bytes::from(payload[..60_000].to_vec());
    p.server.send_chunk(id, &mut first).unwrap();
    // Half of it arrives, the rest is in flight when the transport dies.
    let batch = p.server.poll_transmit().unwrap();
    let now = p.now;
    p.client.handle_input(now, &batch[..batch.len() / 2]);
    p.kill_transport();
    assert_eq!(p.client.state(), SessionState::Detached);
    assert_eq!(p.server.state(), SessionState::Detached);
    // The handler keeps producing while detached.
    let mut second = Bytes::from(payload[60_000..].to_vec());
    let _ = p.server.send_chunk(id, &mut second);
    p.advance(Duration::from_secs(2));
    assert!(p.reconnect(), "the old session is resumed");
    let connected = p.take_events(Side::Client, |e| matches!(e, Event::Connected { resumed: true, .. }));
    assert_eq!(connected.len(), 1);
    stream_all(&mut p, id, &mut second);
    let now = p.now;
    p.server.complete(now, id, Value::Nil, None).unwrap();
    p.drive();
    let received = chunks(&mut p, Side::Client, id);
    assert_eq!(received.len(), payload.len(), "nothing lost or repeated");
    assert_eq!(received, payload);
    assert!(matches!(terminal(&mut p, Side::Client, id), Event::Completed { .. }));
    assert_eq!(p.client.connection_id(), p.server.connection_id());
}

#[test]
fn a_full_replay_buffer_blocks_and_is_released_by_acknowledgements() {
    let server = SessionConfig { replay_buffer_bytes: 8 * 1024, ..server_cfg() };
    let mut p = Pair::connected(client_cfg(), server, 21);
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("tokens", Value::Nil)).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    // Without delivery, the server can have at most its replay bound unacknowledged.
    let mut data = Bytes::from(vec![1u8; 20_000]);
    assert_eq!(p.server.send_chunk(id, &mut data), Err(SendError::Blocked));
    let sent = 20_000 - data.len();
    assert!(sent < 8 * 1024, "{sent} bytes went out past an 8 KiB replay bound");
    assert!(p.server.stats().replay_bytes <= 8 * 1024);
    // The transport drops with the ack request in flight; after the resume
    // the sender asks again and the rest flows.
    p.kill_transport();
    assert!(p.reconnect());
    let mut got = chunks(&mut p, Side::Client, id).len();
    for _ in 0..20 {
        if data.is_empty() {
            break;
        }
        let _ = p.server.send_chunk(id, &mut data);
        p.drive();
        let more = chunks(&mut p, Side::Client, id).len();
        p.client.grant(id, more);
        got += more;
        p.drive();
    }
    assert!(data.is_empty(), "{} bytes still blocked", data.len());
    assert_eq!(got, 20_000);
}

#[test]
fn resume_after_the_grace_period_fails_cleanly() {
    let mut p = pair();
    let now = p.now;
    let mine = p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    p.drive();
    p.kill_transport();
    p.advance(Duration::from_secs(61));
    // The server gave up: its handler was told to stop.
    let stop = p.take_events(Side::Server, |e| matches!(e, Event::Interrupted { .. }));
    assert_eq!(stop, [Event::Interrupted { id: mine, code: ErrorCode::SESSION_LOST }]);
    assert!(p.server.is_closed());
    // The client also gave up after the grace period it was told.
    assert!(
        matches!(terminal(&mut p, Side::Client, mine), Event::Failed { error, .. } if error.code == ErrorCode::SESSION_LOST)
    );
}

#[test]
fn a_refused_resume_starts_a_new_session_and_fails_the_old_invocations() {
    let mut p = pair();
    let now = p.now;
    let mine = p.client.invoke(now, Invoke::new("slow", Value::Nil)).unwrap();
    p.drive();
    let old_cid = p.client.connection_id().unwrap().to_owned();
    p.take_events(Side::Client, |_| true);
    p.take_events(Side::Server, |_| true);
    p.kill_transport();
    // The server restarted and lost the session: a fresh server answers.
    p.server.close(ErrorCode::INTERNAL, "restarted");
    assert!(!p.reconnect());
    let connected = p.take_events(Side::Client, |e| matches!(e, Event::Connected { .. }));
    assert!(matches!(
        &connected[..],
        [Event::Connected { resumed: false, resume_error: Some(ErrorCode::RESUME_UNKNOWN_SESSION), .. }]
    ));
    assert!(
        matches!(terminal(&mut p, Side::Client, mine), Event::Failed { error, .. } if error.code == ErrorCode::SESSION_LOST)
    );
    assert_ne!(p.client.connection_id().unwrap(), old_cid);
    // The new session works.
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    p.drive();
    let (sid, _) = invoked(&mut p, Side::Server);
    p.server.complete(now, sid, Value::Nil, None).unwrap();
    p.drive();
    assert!(matches!(terminal(&mut p, Side::Client, id), Event::Completed { .. }));
}

#[test]
fn a_wrong_ticket_is_refused() {
    let mut p = pair();
    p.kill_transport();
    let mut bogus = ResumeRequest { ticket: vec![0u8; 32].into(), recv: 0 };
    let key = p.server.resume_key().unwrap();
    bogus.ticket[..8].copy_from_slice(key.as_bytes());
    let now = p.now;
    assert_eq!(p.server.resume(now, &bogus), Err(ErrorCode::RESUME_UNKNOWN_SESSION));
}

// --------------------------------------------------------------------- stats

#[test]
fn stats_count_frames_bytes_and_buffers() {
    let mut p = pair();
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("echo", Value::Nil)).unwrap();
    p.drive();
    p.server.send_chunk(id, &mut Bytes::from_static(b"abc")).unwrap();
    p.drive();
    let c = p.client.stats();
    let s = p.server.stats();
    assert_eq!(c.frames_out, s.frames_in);
    assert_eq!(s.frames_out, c.frames_in);
    assert_eq!(c.bytes_out, p.wire_bytes.0);
    assert_eq!(s.bytes_out, p.wire_bytes.1);
    assert_eq!((c.open_invocations, s.open_invocations), (1, 1));
    assert!(s.replay_bytes > 0, "the STREAM is kept until acknowledged");
    p.advance(Duration::from_secs(15));
    assert_eq!(p.server.stats().replay_bytes, 0, "the heartbeat acknowledged it");
}

#[test]
fn transmits_never_exceed_one_maximal_frame_of_the_peer() {
    // The client accepts 16 KiB frames; the server coalesces many chunks.
    let client = SessionConfig { max_frame_payload: 16 * 1024, ..client_cfg() };
    let mut p = Pair::connected(client, server_cfg(), 17);
    let now = p.now;
    let id = p.client.invoke(now, Invoke::new("tokens", Value::Nil)).unwrap();
    p.drive();
    invoked(&mut p, Side::Server);
    for i in 0..200u32 {
        let mut chunk = Bytes::from(vec![(i % 251) as u8; 1000]);
        p.server.send_chunk(id, &mut chunk).unwrap();
    }
    let mut total = 0;
    let mut messages = 0;
    while let Some(batch) = p.server.poll_transmit() {
        assert!(batch.len() <= 16 * 1024 + 8, "a message of {} bytes", batch.len());
        // Cut between frames: every message decodes on its own.
        let frames = decode_all(batch.clone(), u32::MAX).expect("whole frames");
        total += frames.len();
        messages += 1;
        p.client.handle_message(now, batch);
    }
    p.drive();
    assert_eq!(total, 200);
    assert!(messages >= 12, "200 KB needs at least 12 messages of 16 KiB, got {messages}");
    assert_eq!(chunks(&mut p, Side::Client, id).len(), 200_000);
}

/// SPEC.md §11.4: another server adopts a session from its snapshot only
/// for the ticket's holder, and only for a client that lists `restart`.
#[test]
fn s11_4_a_restart_needs_the_whole_ticket_and_the_clients_capability() {
    let p = Pair::connected(SessionConfig::default(), SessionConfig::default(), 7);
    let snapshot = p.server.snapshot(b"app".to_vec()).expect("a resumable session");
    assert_eq!(session::SessionSnapshot::from_bytes(&snapshot.to_bytes()), Some(snapshot.clone()));
    let hello = |caps: &[&str], ticket: Vec<u8>| {
        let mut hello = ClientHello::new();
        hello.caps = caps.iter().map(|c| c.to_string()).collect();
        hello.resume = Some(ResumeRequest { ticket: ticket.into(), recv: 3 });
        raw(Frame::Hello(hello))
    };
    let mut forged = snapshot.ticket.clone();
    forged[31] ^= 1;
    let cases = [
        (hello(&["resume"], snapshot.ticket.clone()), Err(ErrorCode::RESUME_UNKNOWN_SESSION)),
        (hello(&["resume", "restart"], forged), Err(ErrorCode::RESUME_UNKNOWN_SESSION)),
        (hello(&["resume", "restart"], snapshot.ticket.clone()), Ok(())),
    ];
    for (hello, expected) in cases {
        let now = std::time::Instant::now();
        let mut server = Session::server(SessionConfig::default(), now, Box::new(TestEntropy(9)));
        server.handle_input(now, &hello);
        assert!(matches!(server.poll_event(), Some(Event::HelloReceived(_))));
        assert_eq!(server.accept_restart(now, &snapshot), expected);
        if expected.is_ok() {
            let reply = decode_all(server.poll_transmit().unwrap(), u32::MAX).unwrap();
            let Some(Frame::HelloReply(reply)) = reply.first() else { panic!("{reply:?}") };
            assert_eq!(reply.cid, snapshot.cid, "the same connection id");
            assert_eq!(reply.resumed, Some(Resumed { recv: 0, restart: true }));
            let ticket = &reply.resume.as_ref().unwrap().ticket;
            assert_eq!(ticket[..8], snapshot.ticket[..8], "the same lookup key");
            assert_ne!(ticket[8..], snapshot.ticket[8..], "a new secret");
        } else {
            assert_eq!(server.state(), SessionState::Authenticating, "nothing changed");
        }
    }
}
