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
    let now = Instant::now();
    let mut server = Session::server(config, now, Box::new(TestEntropy(1)));
    let mut hello = ClientHello::new();
    hello.caps = vec!["resume".into()];
    hello.limits = PeerLimits { win: Some(limits::MAX_WINDOW), cwin: Some(limits::MAX_WINDOW), ..Default::default() };
    server.handle_input(now, &raw(Frame::Hello(hello)));
    assert!(matches!(server.poll_event(), Some(Event::HelloReceived(_))));
    server.accept(now).unwrap();
    output(&mut server);
    while server.poll_event().is_some() {}
    (server, now)
}

#[test]
fn s11_2_a_full_replay_buffer_blocks_stream_output() {
    let config = SessionConfig { tools: vec![ToolSpec::named("t")], ..SessionConfig::default() };
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
