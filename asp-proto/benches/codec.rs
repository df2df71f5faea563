//! Codec throughput against a plain copy of the same bytes.
//!
//! Every benchmark works on a batch of frames laid end to end, as they arrive
//! in a WebSocket message, so per-call overhead is amortised the way it is in
//! use. Throughput is in bytes; `scripts/bench-table.py` turns criterion's
//! results into frames/s, GB/s and the ratio to the copy.
//!
//! - `copy/<case>`: `extend_from_slice` of the batch into a reused buffer;
//! - `decode_bytes/<case>`: `Decoder::decode` from a `Bytes` (zero-copy);
//! - `decode_slice/<case>`: `Decoder::decode` from a `&[u8]` (one copy);
//! - `encode/<case>`: `Frame::encode` of every frame into a reused buffer.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;

use asp_proto::{Decoder, Frame, Invoke, RequestId, Value};
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

struct Case {
    name: &'static str,
    frames: Vec<Frame>,
    wire: Bytes,
}

fn case(name: &'static str, frame: Frame, count: usize) -> Case {
    let frames = vec![frame; count];
    let mut wire = BytesMut::new();
    for f in &frames {
        f.encode(&mut wire).unwrap();
    }
    Case { name, frames, wire: wire.freeze() }
}

fn stream(size: usize) -> Frame {
    Frame::Stream(RequestId(1), Bytes::from(vec![b'x'; size]))
}

fn invoke() -> Frame {
    let args = Value::Map(vec![
        (Value::from("query"), Value::from("sans-io protocol design in rust")),
        (Value::from("limit"), Value::from(10)),
    ]);
    Frame::Invoke(
        RequestId(7),
        Invoke {
            trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            ..Invoke::new("web_search", args)
        },
    )
}

fn cases() -> Vec<Case> {
    vec![
        case("stream_16B", stream(16), 4096),
        case("stream_1KiB", stream(1024), 256),
        case("stream_64KiB", stream(64 * 1024), 16),
        case("invoke", invoke(), 1024),
    ]
}

fn benches(c: &mut Criterion) {
    let max = 1 << 20;
    for case in cases() {
        let bytes = case.wire.len() as u64;
        let mut group = c.benchmark_group(case.name);
        group.throughput(Throughput::Bytes(bytes));

        let mut dst = Vec::with_capacity(case.wire.len());
        group.bench_function(BenchmarkId::new("copy", case.frames.len()), |b| {
            b.iter(|| {
                dst.clear();
                dst.extend_from_slice(black_box(&case.wire));
                black_box(&dst);
            })
        });

        let mut decoder = Decoder::new(max);
        group.bench_function(BenchmarkId::new("decode_bytes", case.frames.len()), |b| {
            b.iter(|| {
                let mut input = black_box(case.wire.clone());
                while let Some(frame) = decoder.decode(&mut input).unwrap() {
                    black_box(frame);
                }
            })
        });

        group.bench_function(BenchmarkId::new("decode_slice", case.frames.len()), |b| {
            b.iter(|| {
                let mut input: &[u8] = black_box(&case.wire);
                while let Some(frame) = decoder.decode(&mut input).unwrap() {
                    black_box(frame);
                }
            })
        });

        let mut out = BytesMut::with_capacity(case.wire.len());
        group.bench_function(BenchmarkId::new("encode", case.frames.len()), |b| {
            b.iter(|| {
                out.clear();
                for frame in black_box(&case.frames) {
                    frame.encode(&mut out).unwrap();
                }
                black_box(&out);
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = codec;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(codec);
