//! The relay core against real client sessions, in memory, on a virtual clock.

use std::time::Duration;

use asp_proto::{
    Complete, ErrorCode, ErrorInfo, Event, Frame, Invoke, Metrics, Progress, RequestId, SessionConfig, SessionState,
    ToolDef, ToolOp, ToolSpec, Value,
};
use asp_relay_proto::*;
use asp_testkit::RelayHarness as Harness;
use bytes::Bytes;

fn header<'a>(call: &'a FunctionCall, name: &str) -> Option<&'a str> {
    call.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

fn body_json(call: &FunctionCall) -> serde_json::Value {
    serde_json::from_slice(&call.body).unwrap()
}

fn frames(frames: &[Frame]) -> Bytes {
    let mut out = bytes::BytesMut::new();
    for f in frames {
        f.encode(&mut out).unwrap();
    }
    out.freeze()
}

#[test]
fn hello_is_answered_without_calling_the_function() {
    let mut h = Harness::new(RelayConfig::default());
    let c = h.connect(SessionConfig::default());
    assert!(h.cid(c).starts_with("c-"));
    assert_eq!(h.clients[c].session.state(), SessionState::Open);
    assert!(h.commands.is_empty(), "{:?}", h.commands);
}

#[test]
fn invoke_becomes_a_call_and_its_body_streams_back() {
    let mut h = Harness::new(RelayConfig { function_token: Some("fn-token".into()), ..RelayConfig::default() });
    let c = h.connect(SessionConfig::default());
    let mut invoke = Invoke::new("search", Value::from("rust"));
    invoke.trace = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    let id = h.clients[c].session.invoke(h.now, invoke).unwrap();
    h.pump();
    let call = h.one_call();
    assert_eq!(call.kind, CallKind::Invoke);
    assert_eq!(header(&call, "content-type"), Some("application/json"));
    assert_eq!(header(&call, "x-asp-connection-id"), Some(h.cid(c).as_str()));
    assert_eq!(header(&call, "x-asp-request-id"), Some(id.0.to_string().as_str()));
    assert_eq!(header(&call, "authorization"), Some("Bearer fn-token"));
    assert!(header(&call, "traceparent").unwrap().starts_with("00-0af7"));
    let body = body_json(&call);
    assert_eq!(body["tool"], "search");
    assert_eq!(body["args"], "rust");
    assert_eq!(body["state"], serde_json::Value::Null);

    h.head(call.call, ResponseHead { status: 200, cpu_time: Some("12.5ms".into()), ..Default::default() });
    h.chunk(call.call, b"hello ");
    h.chunk(call.call, b"world");
    assert_eq!(h.output(c, id), b"hello world");
    assert!(h.outcome(c, id).is_none());
    h.now += Duration::from_millis(40);
    h.end(call.call);
    let (result, metrics) = h.outcome(c, id).unwrap().unwrap();
    assert_eq!(result, Value::Nil);
    assert_eq!(metrics.cpu_us, Some(12_500));
    assert_eq!(metrics.wall_us, 40_000);
    assert!(!h.aborted(call.call));
    assert_eq!(h.credited(call.call), 11);
    assert_eq!(h.relay.stats().calls, 0);
}

#[test]
fn state_returned_by_the_function_comes_back_on_the_next_call() {
    let mut h = Harness::new(RelayConfig { max_state_bytes: 16, ..RelayConfig::default() });
    let c = h.connect(SessionConfig::default());
    let first = h.invoke(c, "count", Value::Nil);
    let call = h.one_call();
    h.head(call.call, ResponseHead { status: 200, state: Some(encode_state(b"n=1")), ..Default::default() });
    h.end(call.call);
    assert!(h.outcome(c, first).unwrap().is_ok());

    h.invoke(c, "count", Value::Nil);
    let call = h.one_call();
    assert_eq!(decode_state(body_json(&call)["state"].as_str().unwrap()).unwrap(), b"n=1");
    // Over the bound: that invocation fails, the old state stays.
    let big = encode_state(&[7u8; 17]);
    h.head(call.call, ResponseHead { status: 200, state: Some(big), ..Default::default() });
    let id = RequestId(call.headers.iter().find(|(n, _)| *n == "x-asp-request-id").unwrap().1.parse().unwrap());
    assert_eq!(h.error_code(c, id), ErrorCode::STATE_TOO_LARGE);
    assert!(h.aborted(call.call));

    h.invoke(c, "count", Value::Nil);
    let call = h.one_call();
    assert_eq!(decode_state(body_json(&call)["state"].as_str().unwrap()).unwrap(), b"n=1");
}

#[test]
fn msgpack_bodies_on_request() {
    let mut h = Harness::new(RelayConfig { encoding: BodyEncoding::MsgPack, ..RelayConfig::default() });
    let c = h.connect(SessionConfig::default());
    h.invoke(c, "echo", Value::Binary(vec![1, 2]));
    let call = h.one_call();
    assert_eq!(header(&call, "content-type"), Some("application/msgpack"));
    let value = rmpv::decode::read_value(&mut &call.body[..]).unwrap();
    let args = value.as_map().unwrap().iter().find(|(k, _)| k.as_str() == Some("args")).unwrap().1.clone();
    assert_eq!(args, Value::Binary(vec![1, 2]));
}

#[test]
fn non_2xx_fails_that_invocation_only() {
    let mut h = Harness::new(RelayConfig::default());
    let c = h.connect(SessionConfig::default());
    let bad = h.invoke(c, "x", Value::Nil);
    let good = h.invoke(c, "y", Value::Nil);
    let calls = h.calls();
    h.head(calls[0].call, ResponseHead { status: 503, ..Default::default() });
    let error = h.outcome(c, bad).unwrap().unwrap_err();
    assert_eq!(error.code, ErrorCode::BACKEND_STATUS);
    assert_eq!(error.data, Value::Map(vec![(Value::from("status"), Value::from(503))]));
    assert!(h.aborted(calls[0].call));
    let missing = h.invoke(c, "missing", Value::Nil);
    let call = h.one_call();
    h.head(call.call, ResponseHead { status: 404, ..Default::default() });
    assert_eq!(h.outcome(c, missing).unwrap().unwrap_err().code, ErrorCode::UNKNOWN_TOOL);
    h.ok(calls[1].call);
    h.chunk(calls[1].call, b"fine");
    h.end(calls[1].call);
    assert_eq!(h.output(c, good), b"fine");
    assert!(h.outcome(c, good).unwrap().is_ok());
    assert_eq!(h.clients[c].session.state(), SessionState::Open);
}

#[test]
fn transport_failures_map_to_relay_codes() {
    let cases = [
        (CallFailure::Unavailable("refused".into()), ErrorCode::BACKEND_UNAVAILABLE),
        (CallFailure::Truncated("cut".into()), ErrorCode::BACKEND_TRUNCATED),
        (CallFailure::Timeout("slow".into()), ErrorCode::BACKEND_TIMEOUT),
        (CallFailure::Invalid("garbage".into()), ErrorCode::BACKEND_INVALID_RESPONSE),
    ];
    let mut h = Harness::new(RelayConfig::default());
    let c = h.connect(SessionConfig::default());
    for (failure, code) in cases {
        let id = h.invoke(c, "t", Value::Nil);
        let call = h.one_call();
        h.ok(call.call);
        h.chunk(call.call, b"partial");
        h.relay.handle_call_failed(h.now, call.call, failure);
        h.pump();
        // What arrived before the failure is delivered, then the error.
        assert_eq!(h.output(c, id), b"partial");
        assert_eq!(h.error_code(c, id), code);
        assert!(!h.aborted(call.call), "the adapter already ended it");
    }
    assert_eq!(h.clients[c].session.state(), SessionState::Open);
    assert_eq!(h.relay.stats().calls, 0);
}

#[test]
fn a_function_that_never_answers_or_stalls_times_out() {
    let config = RelayConfig {
        response_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(1),
        call_timeout: Duration::from_secs(10),
        ..RelayConfig::default()
    };
    let mut h = Harness::new(config);
    let c = h.connect(SessionConfig::default());
    let silent = h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    h.advance(Duration::from_millis(1999));
    assert!(h.outcome(c, silent).is_none());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.error_code(c, silent), ErrorCode::BACKEND_TIMEOUT);
    assert!(h.aborted(call.call));

    // A trickle that keeps the idle timer alive still hits the call limit.
    let trickle = h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    h.ok(call.call);
    for _ in 0..19 {
        h.advance(Duration::from_millis(500));
        h.chunk(call.call, b".");
    }
    assert!(h.outcome(c, trickle).is_none());
    h.advance(Duration::from_millis(500));
    let error = h.outcome(c, trickle).unwrap().unwrap_err();
    assert_eq!((error.code, error.message.contains("longer than")), (ErrorCode::BACKEND_TIMEOUT, true));

    // A body that stops.
    let stalled = h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    h.ok(call.call);
    h.chunk(call.call, b"a");
    h.advance(Duration::from_millis(999));
    assert!(h.outcome(c, stalled).is_none());
    h.advance(Duration::from_millis(1));
    let error = h.outcome(c, stalled).unwrap().unwrap_err();
    assert_eq!((error.code, error.message.contains("stalled")), (ErrorCode::BACKEND_TIMEOUT, true));
    assert_eq!(h.clients[c].session.state(), SessionState::Open);
}

#[test]
fn a_slow_client_holds_the_body_back_without_timing_the_function_out() {
    let config = RelayConfig { idle_timeout: Duration::from_secs(1), body_window: 64 * 1024, ..RelayConfig::default() };
    let mut h = Harness::new(config);
    let c = h.connect(SessionConfig { invocation_window: 4096, ..SessionConfig::default() });
    let id = h.invoke(c, "flood", Value::Nil);
    let call = h.one_call();
    h.ok(call.call);
    // The client does not grant: only its window goes out and only that much is credited.
    for _ in 0..16 {
        h.chunk(call.call, &[b'x'; 1024]);
    }
    assert_eq!(h.output(c, id).len(), 4096);
    assert_eq!(h.credited(call.call), 4096);
    // Waiting on the client is not a stalled function.
    h.advance(Duration::from_secs(5));
    assert!(h.outcome(c, id).is_none());
    // The client consumes: the rest flows and is credited.
    for _ in 0..8 {
        let delivered = h.output(c, id).len();
        h.clients[c].session.grant(id, delivered);
        h.pump();
    }
    assert_eq!(h.output(c, id).len(), 16 * 1024);
    assert_eq!(h.credited(call.call), 16 * 1024);
    h.end(call.call);
    assert!(h.outcome(c, id).unwrap().is_ok());
}

/// A relay, a client that understands progress, and the call its
/// invocation of `plan` became.
fn progress_client_invoking() -> (Harness, usize, RequestId, FunctionCall) {
    let mut h = Harness::new(RelayConfig::default());
    let mut config = SessionConfig::default();
    config.caps.push(asp_proto::session::caps::PROGRESS.into());
    let c = h.connect(config);
    let id = h.invoke(c, "plan", Value::Nil);
    let call = h.one_call();
    (h, c, id, call)
}

#[test]
fn a_flood_of_progress_frames_never_stalls_the_body() {
    // 100,000 progress frames through a client that returns its credit as
    // it should: the relay keeps reading (it stalled after 15,797 when
    // progress waited for credit), and the result arrives.
    let (mut h, c, id, call) = progress_client_invoking();
    let head = ResponseHead { status: 200, content_type: Some(FRAMES_CONTENT_TYPE.into()), ..Default::default() };
    h.head(call.call, head);
    let progress: Vec<Frame> = (0..100_000)
        .map(|i| Frame::Progress(id, Progress { progress: f64::from(i), total: None, message: None }))
        .collect();
    let mut body = frames(&progress).to_vec();
    body.extend_from_slice(&frames(&[Frame::Complete(
        id,
        Complete { result: Value::from("done"), metrics: Metrics::default() },
    )]));
    let window = h.relay.config().body_window;
    let mut sent = 0;
    while sent < body.len() {
        let room = window - h.outstanding(call.call);
        assert!(room > 0, "the body stalled after {sent} of {} bytes", body.len());
        let end = (sent + room.min(4096)).min(body.len());
        h.chunk(call.call, &body[sent..end]);
        sent = end;
    }
    let (result, _) = h.outcome(c, id).expect("ended").expect("completed");
    assert_eq!(result, Value::from("done"));
    assert!(h.clients[c].events.iter().any(|e| matches!(e, Event::Progress { .. })));
}

#[test]
fn frames_mode_carries_progress_tools_and_the_result() {
    let (mut h, c, id, call) = progress_client_invoking();
    h.head(
        call.call,
        ResponseHead {
            status: 200,
            content_type: Some("application/vnd.asp.frames; charset=binary".into()),
            cpu_time: Some("3ms".into()),
            ..Default::default()
        },
    );
    let tool = ToolSpec::named("summarize");
    let body = frames(&[
        Frame::Stream(id, Bytes::from_static(b"step 1")),
        Frame::Progress(id, Progress { progress: 0.5, total: Some(1.0), message: None }),
        Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![tool] }),
        Frame::Complete(id, Complete { result: Value::from("done"), metrics: Metrics::default() }),
    ]);
    // Split mid-frame: the decoder reassembles.
    h.chunk(call.call, &body[..7]);
    h.chunk(call.call, &body[7..]);
    assert_eq!(h.output(c, id), b"step 1");
    assert!(h.clients[c].events.iter().any(|e| matches!(e, Event::Progress { id: i, .. } if *i == id)));
    assert!(h.clients[c].session.peer_tools().contains("summarize"));
    let (result, metrics) = h.outcome(c, id).unwrap().unwrap();
    assert_eq!(result, Value::from("done"));
    assert_eq!(metrics.cpu_us, Some(3_000), "filled from X-Cpu-Time");
    // COMPLETE arrived before the body's end: the rest of the request is dropped.
    assert!(h.aborted(call.call));
}

#[test]
fn bad_frames_and_missing_terminals_are_backend_errors() {
    let frames_head =
        ResponseHead { status: 200, content_type: Some(FRAMES_CONTENT_TYPE.into()), ..Default::default() };
    let mut h = Harness::new(RelayConfig::default());
    let c = h.connect(SessionConfig::default());

    let id = h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    h.head(call.call, frames_head.clone());
    h.chunk(call.call, &frames(&[Frame::Stream(id, Bytes::from_static(b"ok"))]));
    h.end(call.call);
    assert_eq!(h.output(c, id), b"ok");
    assert_eq!(h.error_code(c, id), ErrorCode::BACKEND_TRUNCATED);

    let id = h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    h.head(call.call, frames_head.clone());
    h.chunk(call.call, b"\xff\xff\xff\xff\xff\xff\xff\xff");
    assert_eq!(h.error_code(c, id), ErrorCode::BACKEND_INVALID_RESPONSE);
    assert!(h.aborted(call.call));

    let id = h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    h.head(call.call, frames_head.clone());
    h.chunk(call.call, &frames(&[Frame::Stream(RequestId(999), Bytes::from_static(b"x"))]));
    assert_eq!(h.error_code(c, id), ErrorCode::BACKEND_INVALID_RESPONSE);

    let id = h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    h.head(call.call, frames_head);
    let err = ErrorInfo::new(ErrorCode::TOOL_FAILED, "no such city");
    h.chunk(call.call, &frames(&[Frame::Error(id, err)]));
    let error = h.outcome(c, id).unwrap().unwrap_err();
    assert_eq!((error.code, error.message.as_str()), (ErrorCode::TOOL_FAILED, "no such city"));
    assert_eq!(h.clients[c].session.state(), SessionState::Open);
}

#[test]
fn interrupt_aborts_the_call() {
    let mut h = Harness::new(RelayConfig::default());
    let c = h.connect(SessionConfig::default());
    let id = h.invoke(c, "long", Value::Nil);
    let call = h.one_call();
    h.ok(call.call);
    h.chunk(call.call, b"tick");
    h.clients[c].session.interrupt(id, None).unwrap();
    h.pump();
    assert!(h.aborted(call.call));
    assert_eq!(h.error_code(c, id), ErrorCode::CANCELLED);
    // Late body from the aborted call goes nowhere.
    h.chunk(call.call, b"late");
    assert_eq!(h.output(c, id), b"tick");
    assert_eq!(h.relay.stats().calls, 0);
}

#[test]
fn limits_on_calls_and_connections() {
    let mut h = Harness::new(RelayConfig { max_calls: 1, max_connections: 1, ..RelayConfig::default() });
    let c = h.connect(SessionConfig::default());
    let first = h.invoke(c, "t", Value::Nil);
    let second = h.invoke(c, "t", Value::Nil);
    assert_eq!(h.calls().len(), 1);
    assert_eq!(h.error_code(c, second), ErrorCode::BACKEND_OVERLOADED);
    assert!(h.outcome(c, first).is_none());

    let other = h.connect(SessionConfig::default());
    assert_eq!(h.clients[other].session.state(), SessionState::Closed);
    let closed = h.clients[other].events.iter().find_map(|e| match e {
        Event::Closed(reason) => Some(reason.code),
        _ => None,
    });
    assert_eq!(closed, Some(ErrorCode::RATE_LIMITED));
    assert_eq!(h.clients[c].session.state(), SessionState::Open);
}

#[test]
fn one_connection_gets_only_its_share_of_the_calls() {
    let config = RelayConfig { max_calls: 10, max_calls_per_connection: 3, ..RelayConfig::default() };
    let mut h = Harness::new(config);
    let greedy = h.connect(SessionConfig::default());
    let ids: Vec<RequestId> = (0..5).map(|_| h.invoke(greedy, "t", Value::Nil)).collect();
    assert_eq!(h.calls().len(), 3);
    assert_eq!(h.error_code(greedy, ids[3]), ErrorCode::BACKEND_OVERLOADED);
    assert_eq!(h.error_code(greedy, ids[4]), ErrorCode::BACKEND_OVERLOADED);
    // Another connection still gets calls.
    let probe = h.connect(SessionConfig::default());
    let id = h.invoke(probe, "t", Value::Nil);
    assert_eq!(h.calls().len(), 1);
    assert!(h.outcome(probe, id).is_none());
}

#[test]
fn transports_without_hello_do_not_count_toward_the_session_cap() {
    let mut h = Harness::new(RelayConfig { max_connections: 1, ..RelayConfig::default() });
    for _ in 0..3 {
        h.relay.handle_client_open(h.now, None); // opened, never says HELLO
    }
    let first = h.connect(SessionConfig::default());
    assert_eq!(h.clients[first].session.state(), SessionState::Open);
    let second = h.connect(SessionConfig::default());
    assert_eq!(h.clients[second].session.state(), SessionState::Closed, "the cap counts sessions past HELLO");
}

#[test]
fn a_backlogged_client_holds_its_calls_output_and_body_credit() {
    let mut h = Harness::new(RelayConfig::default());
    let c = h.connect(SessionConfig::default());
    let id = h.invoke(c, "stream", Value::Nil);
    let call = h.one_call();
    h.ok(call.call);
    h.chunk(call.call, &[1u8; 10_000]);
    assert_eq!(h.output(c, id).len(), 10_000);
    assert_eq!(h.credited(call.call), 10_000);

    // The adapter's writes to this client are backed up.
    let transport = h.clients[c].transport.unwrap();
    h.relay.handle_client_backlog(h.now, transport, true);
    h.chunk(call.call, &[2u8; 10_000]);
    assert_eq!(h.output(c, id).len(), 10_000, "nothing more is moved to a backlogged client");
    assert_eq!(h.credited(call.call), 10_000, "so the function's body is not read further");

    h.relay.handle_client_backlog(h.now, transport, false);
    h.pump();
    assert_eq!(h.output(c, id).len(), 20_000);
    assert_eq!(h.credited(call.call), 20_000);
    h.end(call.call);
    assert!(h.outcome(c, id).unwrap().is_ok());
}

#[test]
fn client_tokens_are_checked() {
    let mut h = Harness::new(RelayConfig { client_tokens: vec!["good".into()], ..RelayConfig::default() });
    let bad = h.connect(SessionConfig { token: Some("bad".into()), ..SessionConfig::default() });
    let good = h.connect(SessionConfig { token: Some("good".into()), ..SessionConfig::default() });
    assert_eq!(h.clients[bad].session.state(), SessionState::Closed);
    assert_eq!(h.clients[good].session.state(), SessionState::Open);
}

#[test]
fn management_api_pushes_looks_up_and_disconnects() {
    let mut h = Harness::with_secret();
    let c = h.connect(SessionConfig::default());
    let cid = h.cid(c);
    let path = format!("/v1/connections/{cid}");

    let anonymous = ManagementRequest { method: "GET".into(), path: path.clone(), ..Default::default() };
    assert_eq!(h.relay.handle_management(h.now, &anonymous).status, 401);
    let wrong = ManagementRequest { authorization: Some("Bearer nope".into()), ..anonymous };
    assert_eq!(h.relay.handle_management(h.now, &wrong).status, 401);
    assert_eq!(h.manage("GET", "/v1/connections/c-unknown", Bytes::new()).status, 404);

    let info = h.manage("GET", &path, Bytes::new());
    assert_eq!(info.status, 200);
    let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!((info["connection_id"].as_str(), info["state"].as_str()), (Some(cid.as_str()), Some("open")));

    let push = frames(&[Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![ToolSpec::named("late_tool")] })]);
    assert_eq!(h.manage("POST", &format!("{path}/frames"), push).status, 202);
    assert!(h.clients[c].session.peer_tools().contains("late_tool"));
    let info: serde_json::Value = serde_json::from_slice(&h.manage("GET", &path, Bytes::new()).body).unwrap();
    assert_eq!(info["tools"], serde_json::json!(["late_tool"]));

    let not_allowed = frames(&[Frame::Stream(RequestId(2), Bytes::from_static(b"x"))]);
    assert_eq!(h.manage("POST", &format!("{path}/frames"), not_allowed).status, 400);
    assert_eq!(h.manage("POST", &format!("{path}/frames"), Bytes::from_static(b"\x00\x01")).status, 400);
    assert_eq!(h.manage("PUT", &path, Bytes::new()).status, 405);

    assert_eq!(h.manage("DELETE", &path, Bytes::new()).status, 204);
    assert_eq!(h.clients[c].session.state(), SessionState::Closed);
    assert!(h.clients[c].events.iter().any(|e| matches!(e, Event::GoAway { .. })));
    assert_eq!(h.manage("GET", &path, Bytes::new()).status, 410);
    assert_eq!(h.manage("POST", &format!("{path}/frames"), Bytes::new()).status, 410);
}

#[test]
fn a_broadcast_reaches_every_connection_and_the_directory_follows_sessions() {
    let mut h = Harness::new(RelayConfig {
        management_secret: Some("s3cret".into()),
        directory: true,
        ..RelayConfig::default()
    });
    let (a, b) = (h.connect(SessionConfig::default()), h.connect(SessionConfig::default()));
    let (cid_a, cid_b) = (h.cid(a), h.cid(b));
    let directory = |h: &mut Harness| -> Vec<String> {
        h.commands
            .drain(..)
            .filter_map(|c| match c {
                Command::Directory(DirectoryChange::Added { cid, .. }) => Some(format!("+{cid}")),
                Command::Directory(DirectoryChange::Removed(cid)) => Some(format!("-{cid}")),
                _ => None,
            })
            .collect()
    };
    assert_eq!(directory(&mut h), [format!("+{cid_a}"), format!("+{cid_b}")]);

    let push = frames(&[Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![ToolSpec::named("everywhere")] })]);
    let answer = h.manage("POST", "/v1/frames", push);
    assert_eq!(answer.status, 202);
    let answer: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!((answer["frames"].as_u64(), answer["connections"].as_u64()), (Some(1), Some(2)));
    h.pump();
    for c in [a, b] {
        assert!(h.clients[c].session.peer_tools().contains("everywhere"));
    }
    let goaway = frames(&[Frame::GoAway(asp_proto::GoAway::default())]);
    assert_eq!(h.manage("POST", "/v1/frames", goaway).status, 400, "only TOOL_DEF is broadcast");
    assert_eq!(h.manage("GET", "/v1/frames", Bytes::new()).status, 405);

    assert_eq!(h.manage("DELETE", &format!("/v1/connections/{cid_a}"), Bytes::new()).status, 204);
    h.pump();
    assert_eq!(directory(&mut h), [format!("-{cid_a}")]);
}

/// The snapshots and lookups a directory relay asks its adapter for.
fn saved(h: &mut Harness) -> Vec<(String, Bytes)> {
    h.commands
        .iter()
        .filter_map(|c| match c {
            Command::Directory(DirectoryChange::Saved { key, snapshot, .. }) => Some((key.clone(), snapshot.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn another_node_adopts_a_session_from_its_snapshot() {
    let config = RelayConfig {
        management_secret: Some("s3cret".into()),
        directory: true,
        snapshots: true,
        session: SessionConfig { tools: vec![ToolSpec::named("from_config")].into(), ..SessionConfig::default() },
        ..RelayConfig::default()
    };
    let mut a = Harness::new(config.clone());
    let c = a.connect(SessionConfig::default());
    let cid = a.cid(c);
    let first = a.invoke(c, "count", Value::Nil);
    let call = a.one_call();
    a.head(call.call, ResponseHead { status: 200, state: Some(encode_state(b"n=1")), ..Default::default() });
    a.end(call.call);
    assert!(a.outcome(c, first).unwrap().is_ok());
    let push = frames(&[Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![ToolSpec::named("pushed")] })]);
    assert_eq!(a.manage("POST", &format!("/v1/connections/{cid}/frames"), push).status, 202);
    let in_flight = a.invoke(c, "long", Value::Nil);
    a.one_call();
    // A resume on A itself rotates the ticket: the saved snapshot follows.
    a.reconnect(c, None);
    assert!(a.clients[c].events.iter().any(|e| matches!(e, Event::Connected { resumed: true, .. })));
    let (key, snapshot) = saved(&mut a).pop().expect("snapshots saved");

    // Node A dies with the call running; the client resumes on node B.
    let mut client = a.clients.remove(c);
    client.session.handle_transport_closed(a.now);
    let mut b = Harness::new(config);
    let transport = b.relay.handle_client_open(b.now, None);
    client.transport = Some(transport);
    client.session.reconnect(b.now).unwrap();
    b.clients.push(client);
    b.pump();
    let lookup = b.commands.iter().find_map(|c| match c {
        Command::Directory(DirectoryChange::Lookup { transport, key }) => Some((*transport, key.clone())),
        _ => None,
    });
    assert_eq!(lookup, Some((transport, key)), "B asks the store for the session");
    assert_eq!(b.clients[0].session.state(), SessionState::Detached, "the client waits for the answer");
    // Two pushes were queued while no node held the session: the second
    // undoes half of the first, so only their order gives the right tools.
    let tool_def = |op, name: &str| Frame::ToolDef(ToolDef { op, tools: vec![ToolSpec::named(name)] });
    let queued = [
        frames(&[tool_def(ToolOp::Add, "queued"), tool_def(ToolOp::Add, "temporary")]),
        frames(&[tool_def(ToolOp::Remove, "temporary")]),
        Bytes::from_static(b"not frames: skipped"),
    ];
    b.relay.handle_lookup(b.now, transport, Some(&snapshot), &queued);
    b.pump();

    let client = &b.clients[0];
    assert_eq!(client.session.state(), SessionState::Open);
    assert!(client.events.iter().any(|e| matches!(e, Event::Connected { cid: c, resumed: true, .. } if *c == cid)));
    let lost = client.events.iter().find_map(|e| match e {
        Event::Failed { id, error } if *id == in_flight => Some(error.code),
        _ => None,
    });
    assert_eq!(lost, Some(ErrorCode::NODE_LOST), "the call in flight on A is lost, retryably");
    assert!(ErrorCode::NODE_LOST.is_retryable());
    for tool in ["from_config", "pushed", "queued"] {
        assert!(client.session.peer_tools().contains(tool), "{tool} carried over");
    }
    assert!(!client.session.peer_tools().contains("temporary"), "queued pushes apply in order");
    let added =
        |c: &Command| matches!(c, Command::Directory(DirectoryChange::Added { cid: c, key: Some(_) }) if *c == cid);
    assert!(b.commands.iter().any(added));
    // The queued pushes leave the store's queue once the client has them.
    let acknowledged = |b: &Harness| {
        b.commands.iter().find_map(|c| match c {
            Command::Directory(DirectoryChange::Acknowledged { cid: c, pushes }) if *c == cid => Some(*pushes),
            _ => None,
        })
    };
    assert_eq!(acknowledged(&b), None, "not before the client acknowledges them");
    b.advance(Duration::from_secs(20)); // a heartbeat: PING and PONG carry `recv`
    assert_eq!(acknowledged(&b), Some(queued.len()));
    // The function's state carried over, and the session works on B.
    let next = b.invoke(0, "count", Value::Nil);
    let call = b.one_call();
    assert_eq!(decode_state(body_json(&call)["state"].as_str().unwrap()).unwrap(), b"n=1");
    assert_eq!(body_json(&call)["connection_id"], cid.as_str());
    b.ok(call.call);
    b.chunk(call.call, b"2");
    b.end(call.call);
    assert_eq!(b.output(0, next), b"2");
    assert_eq!(b.manage("GET", &format!("/v1/connections/{cid}"), Bytes::new()).status, 200);
}

#[test]
fn a_lookup_without_the_clients_session_starts_a_new_one() {
    let config = RelayConfig { directory: true, snapshots: true, ..RelayConfig::default() };
    let forge = |snapshot: &[u8]| {
        let mut forged = asp_proto::session::SessionSnapshot::from_bytes(snapshot).unwrap();
        forged.ticket[20] ^= 1; // the right key, the wrong secret
        Some(forged.to_bytes())
    };
    type Answer<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<u8>>;
    let answers: [Answer<'_>; 3] = [&|_| None, &forge, &|_| Some(b"garbage".to_vec())];
    for answer in answers {
        let mut a = Harness::new(config.clone());
        let c = a.connect(SessionConfig::default());
        let (_, snapshot) = saved(&mut a).pop().unwrap();
        let mut client = a.clients.remove(c);
        client.session.handle_transport_closed(a.now);
        let mut b = Harness::new(config.clone());
        let transport = b.relay.handle_client_open(b.now, None);
        client.transport = Some(transport);
        client.session.reconnect(b.now).unwrap();
        b.clients.push(client);
        b.pump();
        b.relay.handle_lookup(b.now, transport, answer(&snapshot).as_deref(), &[]);
        b.pump();
        let refused = b.clients[0].events.iter().find_map(|e| match e {
            Event::Connected { resumed: false, resume_error, .. } => *resume_error,
            _ => None,
        });
        assert_eq!(refused, Some(ErrorCode::RESUME_UNKNOWN_SESSION));
        assert_eq!(b.clients[0].session.state(), SessionState::Open, "a new session");
    }
}

#[test]
fn sessions_resume_through_the_relay_and_calls_keep_running() {
    let mut h = Harness::new(RelayConfig::default());
    let c = h.connect(SessionConfig::default());
    let cid = h.cid(c);
    let id = h.invoke(c, "long", Value::Nil);
    let call = h.one_call();
    h.ok(call.call);
    h.chunk(call.call, b"before ");

    // The transport dies; the function keeps writing into the held session.
    let old = h.clients[c].transport.take().unwrap();
    h.relay.handle_client_closed(h.now, old);
    h.clients[c].session.handle_transport_closed(h.now);
    h.pump();
    assert_eq!(h.relay.stats().attached, 0);
    h.chunk(call.call, b"during ");

    // A new transport resumes it.
    let transport = h.relay.handle_client_open(h.now, None);
    h.clients[c].transport = Some(transport);
    h.clients[c].session.reconnect(h.now).unwrap();
    h.pump();
    assert!(h.clients[c].events.iter().any(|e| matches!(e, Event::Connected { resumed: true, .. })));
    h.chunk(call.call, b"after");
    h.end(call.call);
    assert_eq!(h.output(c, id), b"before during after");
    assert!(h.outcome(c, id).unwrap().is_ok());
    assert_eq!(h.relay.stats().connections, 1, "the throwaway session is gone");
    let info = h.manage("GET", &format!("/v1/connections/{cid}"), Bytes::new());
    assert_eq!(info.status, 401, "no secret configured: the API is closed");
}

#[test]
fn a_resume_is_authenticated_again() {
    // The first transport carried the token in its upgrade; the resuming
    // transport does not. A ticket is not a credential on its own (SPEC.md §17).
    let mut h = Harness::new(RelayConfig { client_tokens: vec!["good".into()], ..RelayConfig::default() });
    let c = h.open(SessionConfig::default(), Some("good".into()));
    h.pump();
    let first = h.clients[c].transport.unwrap();
    assert_eq!(h.clients[c].session.state(), SessionState::Open);

    assert_eq!(h.clients[c].transport, Some(first));
    h.reconnect(c, None);
    assert!(!h.clients[c].events.iter().any(|e| matches!(e, Event::Connected { resumed: true, .. })));
    assert_eq!(h.clients[c].session.state(), SessionState::Closed);
    let closed = h.clients[c].events.iter().find_map(|e| match e {
        Event::Closed(reason) => Some(reason.code),
        _ => None,
    });
    assert_eq!(closed, Some(ErrorCode::UNAUTHENTICATED));
}

#[test]
fn lifecycle_calls_bracket_the_session() {
    let mut h = Harness::new(RelayConfig { lifecycle_calls: true, ..with_secret_for_tests() });
    let c = h.connect(SessionConfig { name: Some("tester".into()), ..SessionConfig::default() });
    let connect = h.one_call();
    assert_eq!(connect.kind, CallKind::Connect);
    assert_eq!(body_json(&connect)["client"]["name"], "tester");
    h.head(connect.call, ResponseHead { status: 200, state: Some(encode_state(b"hi")), ..Default::default() });
    h.end(connect.call);

    h.invoke(c, "t", Value::Nil);
    let call = h.one_call();
    assert_eq!(decode_state(body_json(&call)["state"].as_str().unwrap()).unwrap(), b"hi");
    h.ok(call.call);
    h.end(call.call);

    let cid = h.cid(c);
    assert_eq!(h.manage("DELETE", &format!("/v1/connections/{cid}"), Bytes::new()).status, 204);
    let disconnect = h.one_call();
    assert_eq!(disconnect.kind, CallKind::Disconnect);
    assert_eq!(body_json(&disconnect)["connection_id"], cid.as_str());
}

fn with_secret_for_tests() -> RelayConfig {
    RelayConfig { management_secret: Some("s3cret".into()), ..RelayConfig::default() }
}

#[test]
fn unknown_transports_and_calls_are_ignored() {
    let mut h = Harness::new(RelayConfig::default());
    h.relay.handle_client_message(h.now, TransportId(77), Bytes::from_static(b"x"));
    h.relay.handle_client_closed(h.now, TransportId(77));
    h.relay.handle_call_head(h.now, CallId(5), ResponseHead::default());
    h.relay.handle_call_chunk(h.now, CallId(5), Bytes::from_static(b"x"));
    h.relay.handle_call_end(h.now, CallId(5));
    h.relay.handle_call_failed(h.now, CallId(5), CallFailure::Timeout("x".into()));
    h.pump();
    assert!(h.commands.is_empty());
    assert_eq!(h.relay.stats(), RelayStats::default());
}

#[test]
fn a_draining_relay_lets_calls_finish_and_refuses_new_clients() {
    let mut h = Harness::new(RelayConfig::default());
    let (busy, idle) = (h.connect(SessionConfig::default()), h.connect(SessionConfig::default()));
    let id = h.invoke(busy, "long", Value::Nil);
    let call = h.one_call();
    h.relay.handle_drain(h.now, Duration::from_secs(5));
    h.pump();
    assert!(h.clients[busy].events.iter().any(|e| matches!(e, Event::GoAway { .. })));
    assert_eq!(h.clients[idle].session.state(), SessionState::Closed, "nothing to finish: closed");
    assert_eq!(h.relay.stats().connections, 1);
    let late = h.connect(SessionConfig::default());
    assert_eq!(h.clients[late].session.state(), SessionState::Closed, "no new sessions");
    h.ok(call.call);
    h.chunk(call.call, b"done");
    h.end(call.call);
    assert!(h.outcome(busy, id).unwrap().is_ok(), "the call in flight finished");
    assert_eq!(h.clients[busy].session.state(), SessionState::Closed);
    assert_eq!(h.relay.stats().connections, 0);
}
