//! Property tests of the codec: round trip, chunking invariance, and that no
//! input panics the decoder or makes it hold more than one frame.

use asp_proto::*;
use asp_testkit::fuzz as fuzzing;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use serde_bytes::ByteBuf;

// ---------------------------------------------------------------- strategies

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Binary),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(t, d)| Value::Ext(t, d)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Map(kv.into_iter().map(|(k, v)| (Value::from(k), v)).collect())),
        ]
    })
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(".{0,16}")
}

fn invocation_id() -> impl Strategy<Value = RequestId> {
    (1..=u16::MAX).prop_map(RequestId)
}

fn any_id() -> impl Strategy<Value = RequestId> {
    any::<u16>().prop_map(RequestId)
}

fn tool() -> impl Strategy<Value = ToolSpec> {
    ("[a-z_]{1,10}", opt_string(), value(), value(), value()).prop_map(|(name, desc, input, output, meta)| ToolSpec {
        name,
        desc,
        input,
        output,
        meta,
    })
}

fn tools() -> impl Strategy<Value = Option<Vec<ToolSpec>>> {
    proptest::option::of(proptest::collection::vec(tool(), 0..3))
}

fn limits() -> impl Strategy<Value = PeerLimits> {
    (
        proptest::option::of(limits::MIN_MAX_FRAME_PAYLOAD..=u32::MAX),
        proptest::option::of(any::<u16>()),
        proptest::option::of(0..=limits::MAX_WINDOW),
        proptest::option::of(0..=limits::MAX_WINDOW),
    )
        .prop_map(|(max_frame, max_inv, win, cwin)| PeerLimits { max_frame, max_inv, win, cwin })
}

fn ticket() -> impl Strategy<Value = ByteBuf> {
    proptest::collection::vec(any::<u8>(), 16..=64).prop_map(ByteBuf::from)
}

fn code() -> impl Strategy<Value = ErrorCode> {
    any::<u16>().prop_map(ErrorCode)
}

fn client_hello() -> impl Strategy<Value = Frame> {
    (
        proptest::collection::vec(any::<u8>(), 1..4),
        opt_string(),
        proptest::collection::vec("[a-z]{1,8}", 0..3),
        opt_string(),
        proptest::option::of((ticket(), any::<u64>()).prop_map(|(ticket, recv)| ResumeRequest { ticket, recv })),
        limits(),
        tools(),
    )
        .prop_map(|(versions, name, caps, token, resume, limits, tools)| {
            Frame::Hello(ClientHello { versions, name, caps, token, resume, limits, tools })
        })
}

fn server_hello() -> impl Strategy<Value = Frame> {
    (
        any::<u8>(),
        "[a-z0-9-]{1,64}",
        limits(),
        proptest::option::of(1..=u32::MAX),
        proptest::collection::vec("[a-z]{1,8}", 0..3),
        proptest::option::of((ticket(), any::<u32>()).prop_map(|(ticket, grace)| ResumeOffer { ticket, grace })),
        prop_oneof![
            Just((None, None)),
            (any::<u64>(), any::<bool>()).prop_map(|(recv, restart)| (Some(Resumed { recv, restart }), None)),
            code().prop_map(|c| (None, Some(c))),
        ],
        tools(),
    )
        .prop_map(|(version, cid, limits, hb, caps, resume, (resumed, resume_error), tools)| {
            Frame::HelloReply(ServerHello { version, cid, limits, hb, caps, resume, resumed, resume_error, tools })
        })
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        client_hello(),
        server_hello(),
        (
            invocation_id(),
            "[a-z_.]{1,12}",
            value(),
            proptest::option::of(any::<u32>()),
            opt_string(),
            proptest::collection::btree_map("[a-z-]{1,8}", ".{0,8}", 0..3)
        )
            .prop_map(|(id, tool, args, timeout, trace, meta)| Frame::Invoke(
                id,
                Invoke { tool, args, timeout, trace, meta }
            )),
        (invocation_id(), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(id, d)| Frame::Stream(id, Bytes::from(d))),
        (invocation_id(), 0.0f64..1e12, proptest::option::of(0.0f64..1e12), opt_string())
            .prop_map(|(id, progress, total, message)| Frame::Progress(id, Progress { progress, total, message })),
        (invocation_id(), opt_string()).prop_map(|(id, reason)| Frame::Interrupt(id, Interrupt { reason })),
        (
            prop_oneof![Just(ToolOp::Add), Just(ToolOp::Remove), Just(ToolOp::Replace)],
            proptest::collection::vec(tool(), 0..3)
        )
            .prop_map(|(op, tools)| Frame::ToolDef(ToolDef { op, tools })),
        (any_id(), code(), ".{0,20}", value())
            .prop_map(|(id, code, message, data)| Frame::Error(id, ErrorInfo { code, message, data })),
        (invocation_id(), value(), any::<u64>(), proptest::option::of(any::<u64>())).prop_map(
            |(id, result, wall_us, cpu_us)| Frame::Complete(
                id,
                Complete { result, metrics: Metrics { wall_us, cpu_us } }
            )
        ),
        (any::<u32>(), proptest::option::of(any::<u64>())).prop_map(|(seq, recv)| Frame::Ping(Ping { seq, recv })),
        (any::<u32>(), proptest::option::of(any::<u64>())).prop_map(|(seq, recv)| Frame::Pong(Pong { seq, recv })),
        (any_id(), 1..=limits::MAX_WINDOW).prop_map(|(id, credit)| Frame::Window(id, Window { credit })),
        (proptest::option::of(code()), opt_string())
            .prop_map(|(code, message)| Frame::GoAway(GoAway { code, message })),
    ]
}

/// Splits `bytes` at the given fractions of its length.
fn split(bytes: &Bytes, cuts: &[prop::sample::Index]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut chunks = Vec::new();
    let mut at = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        chunks.push(bytes.slice(at..p));
        at = p;
    }
    chunks
}

// ------------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_frame_round_trips(frame in frame()) {
        let wire = frame.to_bytes().unwrap();
        let decoded = decode_all(wire.clone(), u32::MAX).unwrap();
        prop_assert_eq!(&decoded, &vec![frame.clone()]);
        fuzzing::check_roundtrip(&frame);
        // The header says what the frame is.
        let header = FrameHeader::parse(wire[..8].try_into().unwrap(), u32::MAX).unwrap();
        prop_assert_eq!(header.frame_type, frame.frame_type());
        prop_assert_eq!(header.payload_len as usize, wire.len() - 8);
    }

    #[test]
    fn chunking_does_not_change_the_frames(
        frames in proptest::collection::vec(frame(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        slices in any::<bool>(),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire).unwrap();
        }
        let wire = wire.freeze();
        let mut decoder = Decoder::new(u32::MAX);
        let mut out = Vec::new();
        for mut chunk in split(&wire, &cuts) {
            loop {
                let next = if slices {
                    let mut s: &[u8] = &chunk;
                    let r = decoder.decode(&mut s).unwrap();
                    chunk = chunk.slice(chunk.len() - s.len()..);
                    r
                } else {
                    decoder.decode(&mut chunk).unwrap()
                };
                match next {
                    Some(f) => out.push(f),
                    None => break,
                }
            }
        }
        prop_assert!(decoder.is_idle());
        prop_assert_eq!(out, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overfill(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        seed in any::<u32>(),
    ) {
        fuzzing::frame_decode(&data);
        fuzzing::frame_roundtrip(&data);
        let mut seeded = seed.to_le_bytes().to_vec();
        seeded.extend_from_slice(&data);
        fuzzing::decoder_chunked(&seeded);
    }

    #[test]
    fn mutated_frames_never_panic_nor_overfill(
        frames in proptest::collection::vec(frame(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        seed in any::<u32>(),
    ) {
        // Valid frames with a few bytes changed reach much deeper than
        // random bytes: past the header checks and into the payload decoders.
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend_from_slice(&f.to_bytes().unwrap());
        }
        for (at, byte) in flips {
            let i = at.index(wire.len());
            wire[i] = byte;
        }
        fuzzing::frame_decode(&wire);
        fuzzing::frame_roundtrip(&wire);
        let mut seeded = seed.to_le_bytes().to_vec();
        seeded.extend_from_slice(&wire);
        fuzzing::decoder_chunked(&seeded);
    }
}

#[test]
fn a_huge_declared_length_is_not_buffered() {
    // A header declaring 4 GiB, then a megabyte of filler: the decoder must
    // refuse at the header and hold nothing.
    let mut decoder = Decoder::new(limits::DEFAULT_MAX_FRAME_PAYLOAD);
    let mut input = vec![0x13, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF];
    input.resize(1 << 20, 0xAB);
    let mut slice: &[u8] = &input;
    let err = decoder.decode(&mut slice).unwrap_err();
    assert_eq!(err.code(), ErrorCode::FRAME_TOO_LARGE);
    assert_eq!(decoder.buffered(), 0);
    assert_eq!(slice.len(), input.len() - FrameHeader::LEN);
}

#[test]
fn a_frame_fed_in_single_bytes_holds_at_most_one_frame() {
    let frame = Frame::Stream(RequestId(1), Bytes::from(vec![7u8; 5000]));
    let wire = frame.to_bytes().unwrap();
    let mut decoder = Decoder::new(5000);
    let mut seen = None;
    for b in wire.iter() {
        let mut input: &[u8] = std::slice::from_ref(b);
        if let Some(f) = decoder.decode(&mut input).unwrap() {
            seen = Some(f);
        }
        assert!(decoder.buffered() <= 5000 + FrameHeader::LEN);
    }
    assert_eq!(seen, Some(frame));
}

#[test]
fn encoder_refuses_what_the_decoder_would_reject() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    let bad = [
        Frame::Invoke(RequestId(0), Invoke::new("x", Value::Nil)),
        Frame::Progress(RequestId(1), Progress { progress: f64::NAN, total: None, message: None }),
        Frame::Window(RequestId(0), Window { credit: 0 }),
        Frame::Invoke(RequestId(1), Invoke::new("", Value::Nil)),
    ];
    for frame in bad {
        assert!(frame.encode(&mut buf).is_err(), "{frame:?}");
        assert_eq!(&buf[..], b"keep", "the buffer is untouched on error");
    }
}
