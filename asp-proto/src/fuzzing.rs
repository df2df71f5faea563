//! The bodies of the cargo-fuzz targets in `fuzz/`.
//!
//! They live here, not in the fuzz crate, so that a test on stable can replay
//! every corpus file through exactly the code the fuzzer runs
//! (`tests/fuzz_corpus.rs`). Each panics when an invariant breaks; that is how
//! a fuzzer learns of a bug. Not part of the public API.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::testing::{model, TestEntropy};
use crate::{decode_all, Decoder, ErrorCode, Event, Frame, FrameHeader, Session, SessionConfig, ToolSpec, Value};

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
        tools: vec![ToolSpec::named("echo"), ToolSpec::named("work")],
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
/// operation. At most 100 operations per input keep each run short.
pub fn session_ops(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let knob = data[0];
    let seed = u64::from_le_bytes(data[1..9].try_into().expect("8 bytes"));
    let ops = model::Op::decode_all(&data[9..data.len().min(9 + 300)]);
    model::run(knob, seed, &ops);
}
