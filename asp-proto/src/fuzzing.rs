//! The bodies of the cargo-fuzz targets in `fuzz/`.
//!
//! They live here, not in the fuzz crate, so that a test on stable can replay
//! every corpus file through exactly the code the fuzzer runs
//! (`tests/fuzz_corpus.rs`). Each panics when an invariant breaks; that is how
//! a fuzzer learns of a bug. Not part of the public API.

use bytes::{Bytes, BytesMut};

use crate::{decode_all, Decoder, ErrorCode, Frame, FrameHeader};

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
    assert_eq!(
        again.to_bytes().expect("re-encode"),
        first,
        "encoding is not a fixed point"
    );
}

/// The same bytes, split at points chosen by the input's first four bytes,
/// decode to the same frames and errors as when fed whole.
pub fn decoder_chunked(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (seed, stream) = data.split_at(4);
    let seed = u32::from_le_bytes([seed[0], seed[1], seed[2], seed[3]]);

    let whole = outcomes(
        Bytes::copy_from_slice(stream),
        &mut std::iter::once(stream.len()),
    );
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
        let size = chunk_sizes
            .next()
            .unwrap_or(usize::MAX)
            .clamp(1, rest.len());
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
    assert!(
        decoder.buffered() <= bound,
        "decoder holds {} bytes, bound {bound}",
        decoder.buffered()
    );
}
