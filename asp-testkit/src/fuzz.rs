//! The bodies of the cargo-fuzz targets in `fuzz/`.
//!
//! They live here, not in the fuzz crate, so that a test on stable can replay
//! every corpus file through exactly the code the fuzzer runs
//! (`tests/fuzz_corpus.rs`). Each panics when an invariant breaks; that is how
//! a fuzzer learns of a bug. Not part of the public API.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::{model, TestEntropy};
use asp_proto::{decode_all, Decoder, ErrorCode, Event, Frame, FrameHeader, Session, SessionConfig, ToolSpec, Value};

/// The payload limit the targets use: small, so that inputs a fuzzer
/// generates reach both the accepted and the too-large paths.
pub const MAX_PAYLOAD: u32 = 1024;

/// Raw bytes into the decoder: no panic, the memory bound holds, and every
/// frame it accepts can be encoded again.
pub fn frame_decode(data: &[u8]) {
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    let mut input = data;
    loop {
        let result = decoder.decode(&mut input);
        assert_bounded(&decoder);
        match result {
            Ok(Some(frame)) => {
                frame.to_bytes().expect("a decoded frame must encode");
            }
            Ok(None) => break,
            Err(err) if err.is_header_error() => break,
            Err(_) => {}
        }
    }
}

/// Decode → encode → decode: the re-decoded frame encodes to the same bytes
/// (the encoding is a fixed point), with the same type, flags and id.
pub fn frame_roundtrip(data: &[u8]) {
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    let mut input = Bytes::copy_from_slice(data);
    loop {
        match decoder.decode(&mut input) {
            Ok(Some(frame)) => check_roundtrip(&frame),
            Ok(None) => break,
            Err(err) if err.is_header_error() => break,
            Err(_) => {}
        }
    }
}

/// Asserts that `frame` survives encode → decode → encode unchanged.
pub fn check_roundtrip(frame: &Frame) {
    let first = frame.to_bytes().expect("a decoded frame must encode");
    let again = decode_all(first.clone(), u32::MAX).expect("an encoded frame must decode");
    assert_eq!(again.len(), 1, "one frame in, one frame out");
    let again = &again[0];
    assert_eq!(again.frame_type(), frame.frame_type());
    assert_eq!(again.flags(), frame.flags());
    assert_eq!(again.request_id(), frame.request_id());
    assert_eq!(again.to_bytes().expect("re-encode"), first, "encoding is not a fixed point");
}

/// The same bytes, split at points chosen by the input's first four bytes,
/// decode to the same frames and errors as when fed whole.
pub fn decoder_chunked(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (seed, stream) = data.split_at(4);
    let seed = u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]);

    let whole = outcomes(Bytes::copy_from_slice(stream), &mut std::iter::once(stream.len()));
    let mut splits = split_points(seed);
    let chunked = outcomes(Bytes::copy_from_slice(stream), &mut splits);
    assert_eq!(whole, chunked, "chunking changed what was decoded");
}

/// What decoding produced: each frame as its encoding, or an error code.
#[derive(Debug, PartialEq)]
enum Outcome {
    Frame(Bytes),
    Error(ErrorCode),
    Truncated,
}

fn outcomes(stream: Bytes, chunk_sizes: &mut dyn Iterator<Item = usize>) -> Vec<Outcome> {
    let mut decoder = Decoder::new(MAX_PAYLOAD);
    let mut rest = stream;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let size = chunk_sizes.next().unwrap_or(usize::MAX).clamp(1, rest.len());
        // Alternate input kinds, so both the copying and the zero-copy
        // paths see every split.
        let mut chunk = rest.split_to(size);
        let mut slice_chunk = BytesMut::from(&chunk[..]);
        let use_slice = size % 2 == 0;
        loop {
            let result = if use_slice {
                let mut s: &[u8] = &slice_chunk;
                let r = decoder.decode(&mut s);
                let consumed = slice_chunk.len() - s.len();
                let _ = slice_chunk.split_to(consumed);
                r
            } else {
                decoder.decode(&mut chunk)
            };
            assert_bounded(&decoder);
            match result {
                Ok(Some(frame)) => out.push(Outcome::Frame(frame.to_bytes().expect("encode"))),
                Ok(None) => break,
                Err(err) => {
                    out.push(Outcome::Error(err.code()));
                    if err.is_header_error() {
                        return out;
                    }
                }
            }
        }
    }
    if decoder.finish().is_err() {
        out.push(Outcome::Truncated);
    }
    out
}

/// Chunk sizes from a seed: a xorshift generator, with the seed's top byte
/// choosing the scale so that one-byte chunks and large ones both occur.
fn split_points(seed: u32) -> impl Iterator<Item = usize> {
    let max_chunk = 1usize << ((seed >> 24) % 12);
    let mut state = seed | 1;
    std::iter::from_fn(move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Some(1 + state as usize % max_chunk)
    })
}

fn assert_bounded(decoder: &Decoder) {
    let bound = decoder.max_payload() as usize + FrameHeader::LEN;
    assert!(decoder.buffered() <= bound, "decoder holds {} bytes, bound {bound}", decoder.buffered());
}

/// The configuration the session targets use: small limits, so that the
/// fuzzer reaches them.
fn fuzz_session_config() -> SessionConfig {
    SessionConfig {
        tools: vec![ToolSpec::named("echo"), ToolSpec::named("work")].into(),
        max_frame_payload: 16 * 1024,
        max_concurrent_invocations: 4,
        invocation_window: 4096,
        connection_window: 8192,
        replay_buffer_bytes: 16 * 1024,
        max_peer_tools: 16,
        ..SessionConfig::default()
    }
}

/// One session, client or server (the first byte's low bit), fed the rest
/// of the input as a byte stream interleaved with time advances and a
/// transport close; its application answers every invocation. Checks that
/// nothing panics, buffers stay bounded and deadlines are never in the past.
///
/// Input format, after the role byte: a control byte `c`; `c & 0x80` set
/// advances the clock by `(c & 0x7f)^2 * 10` ms; `c == 0x7f` closes the
/// transport; otherwise the next `c + 1` bytes are input.
pub fn session(data: &[u8]) {
    let Some((&role, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let config = fuzz_session_config();
    let bound = config.replay_buffer_bytes + 2 * config.max_frame_payload as usize + 64 * 1024;
    let mut s = if role & 1 == 0 {
        Session::client(config, now)
    } else {
        Session::server(config, now, Box::new(TestEntropy(u64::from(role))))
    };
    while let Some((&ctl, tail)) = rest.split_first() {
        rest = tail;
        if ctl & 0x80 != 0 {
            now += Duration::from_millis(u64::from(ctl & 0x7f).pow(2) * 10);
            s.handle_timeout(now);
        } else if ctl == 0x7f {
            s.handle_transport_closed(now);
        } else {
            let n = (usize::from(ctl) + 1).min(rest.len());
            let (input, tail) = rest.split_at(n);
            rest = tail;
            s.handle_input(now, input);
        }
        play_application(&mut s, now);
        let stats = s.stats();
        assert!(stats.buffered_bytes <= bound, "session holds {} bytes", stats.buffered_bytes);
        if let Some(at) = s.poll_timeout() {
            assert!(at >= now, "poll_timeout is in the past");
        }
    }
}

/// A busy application: accepts clients, answers invocations with output and
/// a result, grants what it receives, reconnects when detached.
fn play_application(s: &mut Session, now: Instant) {
    for _ in 0..64 {
        while s.poll_transmit().is_some() {}
        let Some(event) = s.poll_event() else { return };
        match event {
            Event::HelloReceived(_) => {
                let _ = s.accept(now);
            }
            Event::Invoked { id, .. } => {
                let _ = s.send_chunk(id, &mut Bytes::from_static(b"output"));
                let _ = s.complete(now, id, Value::from(1), None);
            }
            Event::Chunk { id, data } => s.grant(id, data.len()),
            Event::Detached { .. } => {
                let _ = s.reconnect(now);
            }
            _ => {}
        }
    }
}

/// Operation sequences over a client–server pair, checked against the
/// reference model (`asp_proto::testing::model`). Bytes 0–8 choose the
/// configuration and the seed; every three bytes after them are one
/// operation. At most 32 operations per input, delivered in pieces of at
/// least 1 KiB, keep each run short: this target must run thousands of
/// times a second to find anything (it ran at 120/s with 100 operations
/// delivered a byte at a time). Run it with `--no-trace-compares`.
pub fn session_ops(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let knob = data[0];
    let seed = u64::from_le_bytes(data[1..9].try_into().expect("8 bytes"));
    let ops = model::Op::decode_all(&data[9..data.len().min(9 + 3 * 32)]);
    model::run_chunked(knob, seed, &ops, 1024);
}

/// Operation sequences over a relay core with real client sessions and
/// arbitrary function responses (statuses, headers, bodies — frames mode
/// included — failures), transport drops and resumes, management requests
/// and time. Checks: no panic; body credit returned never exceeds what was
/// handed in; calls never exceed the limit; `poll_timeout` is never in the
/// past after `handle_timeout`. Every three bytes are one operation (at most
/// 200); an operation that needs bytes takes them from the input's tail.
pub fn relay_ops(data: &[u8]) {
    use asp_relay_proto::{CallFailure, CallId, Command, ManagementRequest, RelayConfig, ResponseHead};

    let config = RelayConfig {
        max_calls: 4,
        max_connections: 3,
        body_window: 256,
        max_state_bytes: 16,
        management_secret: Some("s".into()),
        lifecycle_calls: data.first().is_some_and(|b| b & 1 == 1),
        session: SessionConfig { max_frame_payload: 16 * 1024, ..SessionConfig::default() },
        ..RelayConfig::default()
    };
    let max_calls = config.max_calls;
    let mut h = crate::RelayHarness::new(config);
    let mut calls: Vec<CallId> = Vec::new();
    let (ops, mut tail) = data.split_at((data.len() / 2).min(600));
    let mut take = |n: usize| -> Bytes {
        let n = n.min(tail.len());
        let (head, rest) = tail.split_at(n);
        tail = rest;
        Bytes::copy_from_slice(head)
    };
    for op in ops.chunks_exact(3) {
        let (kind, a, b) = (op[0] % 14, op[1] as usize, op[2]);
        let which = a % h.clients.len().max(1);
        let now = h.now;
        let pick_call = |calls: &Vec<CallId>| (!calls.is_empty()).then(|| calls[a % calls.len()]);
        match kind {
            0 if h.clients.len() < 4 => {
                h.open(SessionConfig::default(), None);
            }
            1 => {
                if let Some(c) = h.clients.get_mut(which) {
                    let _ = c.session.invoke(now, asp_proto::Invoke::new("t", Value::from(b)));
                }
            }
            3 => {
                if let Some(call) = pick_call(&calls) {
                    let head = ResponseHead {
                        status: [200, 204, 500, 302][usize::from(b) % 4],
                        content_type: (b & 4 != 0).then(|| asp_relay_proto::FRAMES_CONTENT_TYPE.to_owned()),
                        cpu_time: (b & 8 != 0).then(|| String::from_utf8_lossy(&take(6)).into_owned()),
                        state: (b & 16 != 0).then(|| String::from_utf8_lossy(&take(usize::from(b % 40))).into_owned()),
                    };
                    h.relay.handle_call_head(now, call, head);
                }
            }
            4 => {
                if let Some(call) = pick_call(&calls) {
                    let window_left = 256 - h.outstanding(call).min(256);
                    let chunk = take(usize::from(b).min(window_left));
                    h.hand_chunk(call, chunk);
                }
            }
            5 => {
                if let Some(call) = pick_call(&calls) {
                    h.relay.handle_call_end(now, call);
                }
            }
            6 => {
                if let Some(call) = pick_call(&calls) {
                    h.relay.handle_call_failed(now, call, CallFailure::Truncated("cut".into()));
                }
            }
            7 => {
                if let Some(c) = h.clients.get_mut(which) {
                    if let Some(t) = c.transport.take() {
                        h.relay.handle_client_closed(now, t);
                        c.session.handle_transport_closed(now);
                    }
                }
            }
            8 => {
                if let Some(c) = h.clients.get_mut(which) {
                    if c.transport.is_none() && c.session.reconnect(now).is_ok() {
                        c.transport = Some(h.relay.handle_client_open(now, None));
                    }
                }
            }
            9 => {
                h.now += Duration::from_millis(u64::from(b) * 50 + a as u64);
                let now = h.now;
                h.relay.handle_timeout(now);
                for c in &mut h.clients {
                    c.session.handle_timeout(now);
                }
                if let Some(at) = h.relay.poll_timeout() {
                    assert!(at > now, "poll_timeout in the past after handle_timeout");
                }
            }
            10 => {
                if let Some(c) = h.clients.get_mut(which) {
                    let _ = c.session.interrupt(asp_proto::RequestId(u16::from(b) * 2 + 1), None);
                }
            }
            11 => {
                let cid = h.clients.get(which).and_then(|c| c.session.connection_id());
                let cid = cid.unwrap_or("c-none").to_owned();
                let (method, path) = match b % 4 {
                    0 => ("GET", format!("/v1/connections/{cid}")),
                    1 => ("POST", format!("/v1/connections/{cid}/frames")),
                    2 => ("DELETE", format!("/v1/connections/{cid}")),
                    _ => ("POST", String::from_utf8_lossy(&take(12)).into_owned()),
                };
                let body = if b & 8 != 0 {
                    let tool = ToolSpec::named(format!("t{b}"));
                    Frame::ToolDef(asp_proto::ToolDef { op: asp_proto::ToolOp::Add, tools: vec![tool] })
                        .to_bytes()
                        .expect("valid")
                } else {
                    take(usize::from(b % 64))
                };
                let auth = (b & 16 == 0).then(|| "Bearer s".to_owned());
                let request = ManagementRequest { method: method.into(), path, authorization: auth, body };
                let response = h.relay.handle_management(now, &request);
                assert!((200..600).contains(&response.status));
            }
            12 => {
                if let Some(c) = h.clients.get_mut(which) {
                    c.session.grant(asp_proto::RequestId(u16::from(b) * 2 + 1), 4096);
                }
            }
            13 => {
                if let Some(t) = h.clients.get(which).and_then(|c| c.transport) {
                    h.relay.handle_client_message(now, t, take(usize::from(b)));
                }
            }
            _ => {}
        }
        // The harness moves bytes both ways and checks every credit.
        h.pump_rounds(8);
        for command in h.commands.drain(..) {
            match command {
                Command::Call(call) => calls.push(call.call),
                Command::Abort(call) => calls.retain(|c| *c != call),
                _ => {}
            }
        }
        let stats = h.relay.stats();
        // Invocation calls are bounded by max_calls, lifecycle calls too.
        assert!(stats.calls <= 2 * max_calls, "calls unbounded: {stats:?}");
    }
}

/// The PKA verifier and signer on hostile headers (`asp_proto::aid::pka`).
///
/// `data[0]`: bit 0 aid2, bit 1 domain-bound, bit 2 edit a genuine proof
/// (the fields replace its headers in order) instead of sending the fields
/// as `Signature-Input`, `Signature`, `Cache-Control`, `Date`; `data[1..3]`
/// the status; the rest, fields split at 0 bytes. Checks: no panic; every
/// refusal is `ERR_SECURITY`; an accepted proof carries the genuine
/// signature (nothing else verifies); the signer answers fuzzed asks
/// without panicking.
pub fn pka(data: &[u8]) {
    use asp_proto::aid::pka::{Challenge, ProofRequest, Signer, Target};
    use asp_proto::aid::{AidErrorCode, AidVersion};
    const NOW: u64 = 1_767_225_600;
    const URI: &str = "wss://agent.example.com/v1/agent-socket";
    let Some((&mode, rest)) = data.split_first() else { return };
    let (status, rest) = match rest {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), rest),
        _ => (101, rest),
    };
    let fields: Vec<String> =
        rest.split(|b| *b == 0).take(4).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let version = if mode & 1 == 1 { AidVersion::Aid2 } else { AidVersion::Aid1 };
    let signer = Signer::from_seed(&[3; 32]);
    let mut challenge = Challenge::new(signer.endpoint_key(version), URI, [4; 32], NOW).expect("a valid challenge");
    if mode & 2 == 2 {
        challenge = challenge.with_domain("example.com").expect("a valid domain");
    }
    let asked = challenge.request_headers();
    let asked: Vec<(&str, &str)> = asked.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = Target::from_uri(URI).expect("a valid target");
    let request = ProofRequest { method: "GET", target: &target, headers: &asked };
    let genuine = signer.sign(&request, 101, NOW).expect("a proof").expect("a proof was asked");
    let mut headers: Vec<(&str, String)> =
        if mode & 4 == 4 { genuine.iter().map(|(k, v)| (*k, v.clone())).collect() } else { Vec::new() };
    for (i, field) in fields.iter().enumerate() {
        match headers.get_mut(i) {
            Some(header) => header.1 = field.clone(),
            None => headers.push((["Signature-Input", "Signature", "Cache-Control", "Date"][i], field.clone())),
        }
    }
    let view: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    match challenge.verify(status, &view, NOW) {
        Err(e) => assert_eq!(e.code, AidErrorCode::Security, "{e}"),
        Ok(_) => {
            let signature = |h: &[(&str, String)]| {
                h.iter().find(|(k, _)| *k == "Signature").map(|(_, v)| v.split(':').nth(1).unwrap_or("").to_owned())
            };
            assert_eq!(signature(&headers), signature(&genuine), "a proof verified without the genuine signature");
        }
    }
    // The signer, on asks made of the same fields.
    let ask: Vec<(&str, &str)> = ["Accept-Signature", "AID-Challenge", "AID-Domain"]
        .into_iter()
        .zip(fields.iter().map(String::as_str))
        .collect();
    let request = ProofRequest { method: "GET", target: &target, headers: &ask };
    if let Err(e) = signer.sign(&request, status, NOW) {
        assert_eq!(e.code, AidErrorCode::Security);
    }
}

/// Seeds for [`pka`]: genuine proofs of each profile, edited and raw.
pub fn pka_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for mode in 0u8..8 {
        let mut seed = vec![mode, 101, 0];
        if mode & 4 == 0 {
            seed.extend_from_slice(
                b"sig=(\"AID-Challenge\" \"@method\");created=1;keyid=g1;alg=\"ed25519\"\0sig=:AAAA:\0no-store",
            );
        }
        seeds.push((format!("seed-mode-{mode}"), seed));
    }
    seeds.push(("seed-edited-input".into(), b"\x05\x65\x00aid-pka=(\"@status\");created=1\0".to_vec()));
    seeds
}
