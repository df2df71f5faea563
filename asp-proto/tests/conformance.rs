//! Regression tests for deviations from SPEC.md found by an independent
//! client (shared/research/spec-review.md), each named after the section.

use std::time::Instant;

use asp_proto::*;
use asp_testkit::TestEntropy;
use bytes::Bytes;

fn raw(frame: Frame) -> Bytes {
    frame.to_bytes().unwrap()
}

fn output(session: &mut Session) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(bytes) = session.poll_transmit() {
        frames.extend(decode_all(bytes, u32::MAX).unwrap());
    }
    frames
}

/// A server whose client (played frame by frame) asked for resume and
/// announced the largest windows, and never acknowledges anything.
fn server_with_silent_resuming_client(config: SessionConfig) -> (Session, Instant) {
    let (server, now, _) = server_and_ticket(config);
    (server, now)
}

/// The same, with the resume ticket the server's HELLO gave.
fn server_and_ticket(config: SessionConfig) -> (Session, Instant, Vec<u8>) {
    let now = Instant::now();
    let mut server = Session::server(config, now, Box::new(TestEntropy(1)));
    let mut hello = ClientHello::new();
    hello.caps = vec!["resume".into()];
    hello.limits = PeerLimits { win: Some(limits::MAX_WINDOW), cwin: Some(limits::MAX_WINDOW), ..Default::default() };
    server.handle_input(now, &raw(Frame::Hello(hello)));
    assert!(matches!(server.poll_event(), Some(Event::HelloReceived(_))));
    server.accept(now).unwrap();
    let ticket = output(&mut server)
        .into_iter()
        .find_map(|f| match f {
            Frame::HelloReply(hello) => hello.resume.map(|r| r.ticket.to_vec()),
            _ => None,
        })
        .expect("a resume ticket");
    while server.poll_event().is_some() {}
    (server, now, ticket)
}

#[test]
fn s11_2_a_full_replay_buffer_blocks_stream_output() {
    let config = SessionConfig { tools: vec![ToolSpec::named("t")].into(), ..SessionConfig::default() };
    let bound = config.replay_buffer_bytes;
    let (mut server, now) = server_with_silent_resuming_client(config);
    server.handle_input(now, &raw(Frame::Invoke(RequestId(1), Invoke::new("t", Value::Nil))));
    while server.poll_event().is_some() {}
    let mut sent = 0usize;
    let mut blocked = false;
    for _ in 0..100_000 {
        let mut chunk = Bytes::from(vec![7u8; 16]);
        match server.send_chunk(RequestId(1), &mut chunk) {
            Ok(()) => sent += 16,
            Err(SendError::Blocked) => {
                blocked = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
        // The adapter writes as it goes; the peer never acknowledges.
        let _ = output(&mut server);
    }
    assert!(blocked, "sent {sent} payload bytes without blocking");
    assert!(sent <= bound, "sent {sent} bytes past a {bound}-byte replay bound");
}

fn closed_code(session: &mut Session) -> Option<ErrorCode> {
    std::iter::from_fn(|| session.poll_event()).find_map(|e| match e {
        Event::Closed(reason) => Some(reason.code),
        _ => None,
    })
}

#[test]
fn s11_3_4_a_wrong_secret_changes_nothing() {
    let (mut server, now, mut ticket) = server_and_ticket(SessionConfig::default());
    ticket[20] ^= 1; // right lookup key, wrong secret
    let forged = ResumeRequest { ticket: ticket.into(), recv: 0 };
    assert_eq!(server.resume(now, &forged), Err(ErrorCode::RESUME_UNKNOWN_SESSION));
    assert_eq!(server.state(), SessionState::Open, "a forged ticket must not touch the live session");
    assert!(server.poll_transmit().is_none() && closed_code(&mut server).is_none());
}

#[test]
fn s11_3_4_a_refused_resume_ends_the_old_session() {
    let (mut server, now, ticket) = server_and_ticket(SessionConfig::default());
    // The ticket's holder claims frames the server never sent.
    let request = ResumeRequest { ticket: ticket.clone().into(), recv: 1_000 };
    assert_eq!(server.resume(now, &request), Err(ErrorCode::RESUME_REJECTED));
    assert_eq!(closed_code(&mut server), Some(ErrorCode::SESSION_LOST));
    assert!(server.is_closed());
    // The ticket resumes nothing afterwards.
    let again = ResumeRequest { ticket: ticket.into(), recv: 0 };
    assert!(server.resume(now, &again).is_err());
}

#[test]
fn s11_3_3_a_resume_replaces_a_transport_still_attached() {
    let (mut server, now, ticket) = server_and_ticket(SessionConfig::default());
    let request = ResumeRequest { ticket: ticket.into(), recv: 0 };
    assert_eq!(server.resume(now, &request), Ok(()));
    assert_eq!(server.state(), SessionState::Open);
    let resumed = output(&mut server).into_iter().any(|f| matches!(f, Frame::HelloReply(h) if h.resumed.is_some()));
    assert!(resumed, "the resumed HELLO goes out on the new transport");
}

/// A server whose client announced the smallest `max_frame` (16 KiB).
fn server_for_small_frames() -> (Session, Instant) {
    let now = Instant::now();
    let config = SessionConfig { tools: vec![ToolSpec::named("echo")].into(), ..SessionConfig::default() };
    let mut server = Session::server(config, now, Box::new(TestEntropy(1)));
    let mut hello = ClientHello::new();
    hello.limits = PeerLimits { max_frame: Some(16 * 1024), ..Default::default() };
    server.handle_input(now, &raw(Frame::Hello(hello)));
    while server.poll_event().is_some() {}
    server.accept(now).unwrap();
    output(&mut server);
    (server, now)
}

fn terminal(frames: &[Frame], id: RequestId) -> Option<&Frame> {
    frames.iter().find(|f| matches!(f, Frame::Complete(i, _) | Frame::Error(i, _) if *i == id))
}

#[test]
fn s5_2_a_result_too_large_for_the_invoker_still_ends_the_invocation() {
    let (mut server, now) = server_for_small_frames();
    server.handle_input(now, &raw(Frame::Invoke(RequestId(1), Invoke::new("echo", Value::Nil))));
    while server.poll_event().is_some() {}
    let big = Value::from("x".repeat(20_000));
    assert!(matches!(server.complete(now, RequestId(1), big, None), Err(SendError::TooLarge { .. })));
    let frames = output(&mut server);
    match terminal(&frames, RequestId(1)) {
        Some(Frame::Error(_, e)) => assert_eq!(e.code, ErrorCode::FRAME_TOO_LARGE),
        other => panic!("expected ERROR(FRAME_TOO_LARGE), got {other:?}"),
    }
    assert!(server.invocation(RequestId(1)).is_none(), "the id is free again");
    // ... and can be reused.
    server.handle_input(now, &raw(Frame::Invoke(RequestId(1), Invoke::new("echo", Value::Nil))));
    assert!(matches!(server.poll_event(), Some(Event::Invoked { .. })));
}

#[test]
fn s5_2_an_error_quoting_a_huge_tool_name_is_cut_to_fit() {
    let (mut server, now) = server_for_small_frames();
    let name = "n".repeat(20_000);
    server.handle_input(now, &raw(Frame::Invoke(RequestId(3), Invoke::new(name, Value::Nil))));
    let frames = output(&mut server);
    match terminal(&frames, RequestId(3)) {
        Some(Frame::Error(_, e)) => {
            assert_eq!(e.code, ErrorCode::UNKNOWN_TOOL);
            assert!(e.message.len() <= limits::MAX_FITTED_ERROR_MESSAGE);
        }
        other => panic!("expected ERROR(UNKNOWN_TOOL), got {other:?}"),
    }
    assert_eq!(server.state(), SessionState::Open);
}

/// An INVOKE whose payload nests `levels` deep, counting the payload map:
/// `{"tool": "t", "args": [[...[]...]]}` with `levels - 1` arrays.
fn invoke_nested(levels: usize) -> Vec<u8> {
    let mut payload = vec![0x82, 0xa4, b't', b'o', b'o', b'l', 0xa1, b't', 0xa4, b'a', b'r', b'g', b's'];
    payload.extend(std::iter::repeat_n(0x91, levels - 2)); // arrays of one element ...
    payload.push(0x90); // ... around an empty array
    let header = raw(Frame::Invoke(RequestId(1), Invoke::new("t", Value::Nil)));
    let mut frame = header[..4].to_vec(); // version, type, flags, request id
    frame.extend((payload.len() as u32).to_be_bytes());
    frame.extend(payload);
    frame
}

#[test]
fn s6_1_nesting_counts_the_payload_map_and_allows_exactly_32_levels() {
    let mut decoder = Decoder::new(1 << 20);
    let mut ok = Bytes::from(invoke_nested(limits::MAX_NESTING_DEPTH));
    let frame = decoder.decode(&mut ok).expect("32 levels are allowed").expect("a frame");
    assert!(matches!(frame, Frame::Invoke(..)));
    let mut decoder = Decoder::new(1 << 20);
    let mut deep = Bytes::from(invoke_nested(limits::MAX_NESTING_DEPTH + 1));
    let err = decoder.decode(&mut deep).expect_err("33 levels are not");
    assert_eq!(err.code(), ErrorCode::MALFORMED_PAYLOAD);
}

/// `n` tools with short names (so that many fit one frame), in name order
/// or reversed.
fn tools(n: usize, descending: bool) -> Vec<ToolSpec> {
    let mut names: Vec<String> = (0..n).map(|i| format!("{i:05x}")).collect();
    names.sort();
    if descending {
        names.reverse();
    }
    names.into_iter().map(ToolSpec::named).collect()
}

#[test]
fn s6_5_the_tool_bound_applies_to_hello_too() {
    let now = Instant::now();
    let mut server = Session::server(SessionConfig::default(), now, Box::new(TestEntropy(1)));
    let mut hello = ClientHello::new();
    hello.tools = Some(tools(5_000, false));
    server.handle_input(now, &raw(Frame::Hello(hello)));
    let closed = std::iter::from_fn(|| server.poll_event()).find_map(|e| match e {
        Event::Closed(reason) => Some(reason.code),
        _ => None,
    });
    assert_eq!(closed, Some(ErrorCode::TOO_MANY_TOOLS));
}

#[test]
fn s6_5_tool_defs_are_bounded_in_count_and_bytes() {
    // 87,000 tools in descending order (the order that made insertion
    // quadratic) are refused; the set is kept as it was.
    let (mut server, now) = server_with_silent_resuming_client(SessionConfig::default());
    let def = ToolDef { op: ToolOp::Add, tools: tools(87_000, true) };
    let frame = raw(Frame::ToolDef(def));
    assert!(frame.len() <= limits::DEFAULT_MAX_FRAME_PAYLOAD as usize, "the attack fits one frame");
    server.handle_input(now, &frame);
    assert_eq!(closed_code(&mut server), Some(ErrorCode::TOO_MANY_TOOLS));

    // Ten tools of 200 KB each: few, but 2 MB.
    let (mut server, now) = server_with_silent_resuming_client(SessionConfig::default());
    for i in 0..10 {
        let mut tool = ToolSpec::named(format!("big-{i}"));
        tool.desc = Some("d".repeat(200_000));
        server.handle_input(now, &raw(Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![tool] })));
    }
    assert_eq!(closed_code(&mut server), Some(ErrorCode::TOO_MANY_TOOLS));
    assert!(server.peer_tools().bytes() <= limits::DEFAULT_MAX_PEER_TOOLS_BYTES);
}

#[test]
fn s6_5_a_tool_set_applies_large_changes_in_order() {
    let mut set = ToolSet::new(tools(10, false));
    let mut newer = tools(20, true);
    newer[0].desc = Some("newest".into()); // "00013": the last name, first in descending order
    newer.push(ToolSpec { desc: Some("last wins".into()), ..ToolSpec::named("00003") });
    set.apply(ToolOp::Add, newer);
    assert_eq!(set.len(), 20);
    let names: Vec<&str> = set.iter().map(|t| t.name.as_str()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    assert_eq!(set.get("00003").unwrap().desc.as_deref(), Some("last wins"));
    assert_eq!(set.get("00013").unwrap().desc.as_deref(), Some("newest"));
    set.apply(ToolOp::Remove, tools(15, false));
    assert_eq!(set.len(), 5);
    assert!(set.bytes() > 0);
}

#[test]
fn s13_the_receiver_of_a_goaway_takes_no_invocation_from_its_sender() {
    let (mut server, now) = server_for_small_frames();
    server.handle_input(now, &raw(Frame::GoAway(GoAway { code: None, message: None })));
    server.handle_input(now, &raw(Frame::Invoke(RequestId(1), Invoke::new("echo", Value::Nil))));
    assert!(!std::iter::from_fn(|| server.poll_event()).any(|e| matches!(e, Event::Invoked { .. })));
    match terminal(&output(&mut server), RequestId(1)) {
        Some(Frame::Error(_, e)) => assert_eq!(e.code, ErrorCode::GOING_AWAY),
        other => panic!("expected ERROR(GOING_AWAY), got {other:?}"),
    }
}

#[test]
fn s5_5_a_timeout_of_zero_means_no_deadline() {
    let (mut server, now) = server_for_small_frames();
    let mut invoke = Invoke::new("echo", Value::Nil);
    invoke.timeout = Some(0);
    server.handle_input(now, &raw(Frame::Invoke(RequestId(1), invoke)));
    assert_eq!(server.invocation(RequestId(1)).and_then(|i| i.deadline), None);
    server.handle_timeout(now + std::time::Duration::from_secs(3600));
    assert!(server.invocation(RequestId(1)).is_some(), "still running an hour later");
}

#[test]
fn s11_3_a_resumed_hello_claiming_unsent_frames_is_rejected() {
    let now = Instant::now();
    let mut client = Session::client(SessionConfig::default(), now);
    output(&mut client);
    let offer = ResumeOffer { ticket: vec![1u8; 32].into(), grace: 60_000 };
    let hello = ServerHello { resume: Some(offer), caps: vec!["resume".into()], ..ServerHello::new("c-1") };
    client.handle_input(now, &raw(Frame::HelloReply(hello)));
    while client.poll_event().is_some() {}
    client.handle_transport_closed(now);
    client.reconnect(now).unwrap();
    output(&mut client);
    let resumed = ServerHello { resumed: Some(Resumed { recv: 999, restart: false }), ..ServerHello::new("c-1") };
    client.handle_input(now, &raw(Frame::HelloReply(resumed)));
    assert_eq!(closed_code(&mut client), Some(ErrorCode::RESUME_REJECTED));
}
