//! What the bindings share, checked natively (the wasm and Python builds
//! run the same code).

use asp_bindings::{safe_value, ClientOptions, EventSource, ShapedEvent, MERGED_CHUNK_LIMIT};
use asp_proto::{Event, Invoke, SessionConfig, ToolSpec, Value};
use asp_testkit::Pair;
use bytes::Bytes;

/// A pair whose server offers the tool `t`.
fn connected(seed: u64) -> Pair {
    let server = SessionConfig { tools: vec![ToolSpec::named("t")].into(), ..SessionConfig::default() };
    Pair::connected(SessionConfig::default(), server, seed)
}

/// A connected pair with one invocation from the client open on the
/// server; returns its id on both sides.
fn invoked(pair: &mut Pair) -> asp_proto::RequestId {
    let now = pair.now;
    let id = pair.client.invoke(now, Invoke::new("t", Value::Nil)).unwrap();
    pair.drive();
    assert!(pair.server_events.iter().any(|e| matches!(e, Event::Invoked { .. })));
    id
}

/// Moves the server's transmits to the client without draining the
/// client's events (Pair would).
fn deliver_to_client(pair: &mut Pair) {
    let now = pair.now;
    while let Some(bytes) = pair.server.poll_transmit() {
        pair.client.handle_message(now, bytes);
    }
}

#[test]
fn consecutive_chunks_of_one_invocation_come_out_as_one() {
    let mut pair = connected(7);
    let id = invoked(&mut pair);
    for part in ["ab", "cd", "ef"] {
        pair.server.send_chunk(id, &mut Bytes::from_static(part.as_bytes())).unwrap();
    }
    let now = pair.now;
    pair.server.complete(now, id, Value::from(3), None).unwrap();
    deliver_to_client(&mut pair);

    let mut source = EventSource::new(0.0, 1000.0);
    let events: Vec<ShapedEvent> = std::iter::from_fn(|| source.next(&mut pair.client)).collect();
    match events.as_slice() {
        [ShapedEvent::Chunk { data, .. }, ShapedEvent::Completed { result, .. }] => {
            assert_eq!(data, b"abcdef");
            assert_eq!(*result, Value::from(3));
        }
        other => panic!("expected one merged chunk then the completion: {}", other.len()),
    }
    assert!(!source.closed());
}

#[test]
fn merging_stops_at_the_limit() {
    let mut pair = connected(8);
    let id = invoked(&mut pair);
    let piece = vec![b'x'; 16 * 1024];
    for _ in 0..8 {
        pair.server.send_chunk(id, &mut Bytes::from(piece.clone())).unwrap();
    }
    deliver_to_client(&mut pair);
    let mut source = EventSource::new(0.0, 1.0);
    let sizes: Vec<usize> = std::iter::from_fn(|| source.next(&mut pair.client))
        .filter_map(|e| match e {
            ShapedEvent::Chunk { data, .. } => Some(data.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 8 * 16 * 1024, "{sizes:?}");
    assert!(sizes.len() >= 2 && sizes.iter().all(|&s| s <= MERGED_CHUNK_LIMIT), "{sizes:?}");
}

#[test]
fn the_callers_clock_maps_both_ways() {
    let source = EventSource::new(5_000.0, 1000.0);
    let later = source.at(6_500.0);
    assert!((source.caller_time(later) - 6_500.0).abs() < 1e-6);
    assert_eq!(source.at(4_000.0), source.at(5_000.0), "the past is the base, never before it");
}

#[test]
fn integers_beyond_two_to_the_53_go_out_as_i128() {
    #[derive(serde::Serialize)]
    struct Holder(#[serde(serialize_with = "safe_value")] Value);
    let value = Value::Map(vec![
        (Value::from("big"), Value::from(1u64 << 60)),
        (Value::from("neg"), Value::from(-(1i64 << 60))),
        (Value::from("small"), Value::Array(vec![Value::from(7)])),
    ]);
    let json = serde_json::to_value(Holder(value)).unwrap();
    assert_eq!(json, serde_json::json!({"big": 1u64 << 60, "neg": -(1i64 << 60), "small": [7]}));
}

#[test]
fn unknown_options_are_refused_and_known_ones_apply() {
    let err = serde_json::from_value::<ClientOptions>(serde_json::json!({"tokn": "x"})).unwrap_err();
    assert!(err.to_string().contains("tokn"), "{err}");
    let options: ClientOptions =
        serde_json::from_value(serde_json::json!({"token": "t", "heartbeatMs": 2000})).unwrap();
    let config = options.into_config(Vec::new());
    assert_eq!(config.token.as_deref(), Some("t"));
    assert_eq!(config.heartbeat_interval, std::time::Duration::from_secs(2));
}
