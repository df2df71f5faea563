//! Conformance vectors: `tests/vectors/frames.json`.
//!
//! The JSON file is what other implementations run (SPEC.md §14). This test
//! checks the committed file against the decoder and encoder, and checks that
//! it is what the case list below generates; `ASP_BLESS=1 cargo test -p
//! asp-proto --test vectors` rewrites it, and the fuzz seed corpora derived
//! from it, after a deliberate change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use asp_proto::*;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value as Json};

const VECTORS: &str = "tests/vectors/frames.json";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn blessing() -> bool {
    std::env::var_os("ASP_BLESS").is_some_and(|v| v == "1")
}

// ---------------------------------------------------------------- the cases

struct Valid {
    name: &'static str,
    note: &'static str,
    wire: Bytes,
    /// Set when `wire` is valid but not what our encoder writes.
    canonical: Option<Bytes>,
}

struct Invalid {
    name: &'static str,
    why: &'static str,
    wire: Bytes,
    max_payload: u32,
    code: ErrorCode,
}

fn enc(frame: Frame) -> Bytes {
    frame.to_bytes().expect("case frames are valid")
}

fn map(pairs: &[(&str, rmpv::Value)]) -> rmpv::Value {
    rmpv::Value::Map(pairs.iter().map(|(k, v)| (rmpv::Value::from(*k), v.clone())).collect())
}

fn msgpack(v: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

/// A frame from raw parts, bypassing the encoder's checks.
fn raw(byte0: u8, flags: u8, id: u16, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(byte0);
    b.put_u8(flags);
    b.put_u16(id);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

fn tools() -> Vec<ToolSpec> {
    let schema = map(&[
        ("type", "object".into()),
        ("properties", map(&[("text", map(&[("type", "string".into())]))])),
        ("required", rmpv::Value::Array(vec!["text".into()])),
    ]);
    vec![
        ToolSpec { desc: Some("Echo the text back".into()), input: schema, ..ToolSpec::named("echo") },
        ToolSpec::named("clock"),
    ]
}

fn valid_cases() -> Vec<Valid> {
    let v = |name, note, frame| Valid { name, note, wire: enc(frame), canonical: None };
    let ticket = serde_bytes::ByteBuf::from((0u8..16).collect::<Vec<_>>());
    let mut meta = BTreeMap::new();
    meta.insert("tenant".to_owned(), "acme".to_owned());
    let mut out = vec![
        v(
            "hello-client-minimal",
            "The smallest client HELLO: the versions it speaks.",
            Frame::Hello(ClientHello::new()),
        ),
        v(
            "hello-client-full",
            "Client HELLO with token, limits and a client-side tool.",
            Frame::Hello(ClientHello {
                versions: vec![1],
                name: Some("asp-cli/0.1".into()),
                caps: vec!["resume".into(), "progress".into()],
                token: Some("secret-token".into()),
                resume: None,
                limits: PeerLimits { max_frame: Some(65536), max_inv: Some(8), win: Some(131072), cwin: Some(524288) },
                tools: Some(vec![ToolSpec::named("ask_user")]),
            }),
        ),
        v(
            "hello-client-resume",
            "Client HELLO asking to resume, having received 42 frames.",
            Frame::Hello(ClientHello {
                versions: vec![1],
                name: None,
                caps: vec!["resume".into()],
                token: None,
                resume: Some(ResumeRequest { ticket: ticket.clone(), recv: 42 }),
                limits: PeerLimits::default(),
                tools: None,
            }),
        ),
        v(
            "hello-server",
            "Server HELLO (flag 0x01) with limits, a resume offer and its tools.",
            Frame::HelloReply(ServerHello {
                version: 1,
                cid: "c-7f8a".into(),
                limits: PeerLimits {
                    max_frame: Some(1048576),
                    max_inv: Some(100),
                    win: Some(262144),
                    cwin: Some(1048576),
                },
                hb: Some(15000),
                caps: vec!["resume".into()],
                resume: Some(ResumeOffer { ticket: ticket.clone(), grace: 60000 }),
                resumed: None,
                resume_error: None,
                tools: Some(tools()),
            }),
        ),
        v(
            "hello-server-resumed",
            "Server HELLO confirming a resume: it had received 17 frames.",
            Frame::HelloReply(ServerHello {
                version: 1,
                cid: "c-7f8a".into(),
                limits: PeerLimits::default(),
                hb: None,
                caps: vec![],
                resume: Some(ResumeOffer { ticket: ticket.clone(), grace: 60000 }),
                resumed: Some(Resumed { recv: 17, restart: false }),
                resume_error: None,
                tools: None,
            }),
        ),
        v(
            "hello-server-resume-refused",
            "Server HELLO refusing a resume (session expired): a fresh session.",
            Frame::HelloReply(ServerHello {
                version: 1,
                cid: "c-0001".into(),
                limits: PeerLimits::default(),
                hb: None,
                caps: vec![],
                resume: None,
                resumed: None,
                resume_error: Some(ErrorCode::RESUME_EXPIRED),
                tools: None,
            }),
        ),
        v(
            "invoke-minimal",
            "INVOKE of a tool with no arguments (client id 1).",
            Frame::Invoke(RequestId(1), Invoke::new("clock", Value::Nil)),
        ),
        v(
            "invoke-full",
            "INVOKE with arguments, deadline, trace context and metadata (server id 2).",
            Frame::Invoke(
                RequestId(2),
                Invoke {
                    tool: "echo".into(),
                    args: map(&[("text", "hello".into()), ("times", 3.into())]),
                    timeout: Some(30000),
                    trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                    meta: meta.clone(),
                },
            ),
        ),
        v(
            "stream-text",
            "STREAM output: the raw bytes of a token, no MsgPack.",
            Frame::Stream(RequestId(1), Bytes::from_static("Hello".as_bytes())),
        ),
        v(
            "stream-binary",
            "STREAM output may be any bytes, including ones that look like a header.",
            Frame::Stream(RequestId(65535), Bytes::from_static(&[0x12, 0x00, 0x00, 0x00, 0xFF])),
        ),
        v("stream-empty", "An empty STREAM chunk is valid.", Frame::Stream(RequestId(3), Bytes::new())),
        v(
            "stream-progress",
            "STREAM with flag 0x01: a progress update.",
            Frame::Progress(
                RequestId(1),
                Progress { progress: 3.0, total: Some(10.0), message: Some("indexing".into()) },
            ),
        ),
        v(
            "stream-progress-minimal",
            "A progress update with only the required key.",
            Frame::Progress(RequestId(4), Progress { progress: 0.5, total: None, message: None }),
        ),
        v("interrupt", "INTERRUPT with an empty map.", Frame::Interrupt(RequestId(1), Interrupt::default())),
        v(
            "interrupt-reason",
            "INTERRUPT with a reason.",
            Frame::Interrupt(RequestId(7), Interrupt { reason: Some("user pressed stop".into()) }),
        ),
        v("tooldef-add", "TOOL_DEF adding two tools.", Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: tools() })),
        v(
            "tooldef-remove",
            "TOOL_DEF removing a tool by name.",
            Frame::ToolDef(ToolDef { op: ToolOp::Remove, tools: vec![ToolSpec::named("clock")] }),
        ),
        v(
            "tooldef-replace-empty",
            "TOOL_DEF replacing the set with nothing: no tools remain.",
            Frame::ToolDef(ToolDef { op: ToolOp::Replace, tools: vec![] }),
        ),
        v(
            "error-invocation",
            "ERROR ending invocation 1: unknown tool, with data.",
            Frame::Error(
                RequestId(1),
                ErrorInfo {
                    code: ErrorCode::UNKNOWN_TOOL,
                    message: "no tool named `ech`".into(),
                    data: map(&[("did_you_mean", "echo".into())]),
                },
            ),
        ),
        v(
            "error-connection",
            "ERROR with request id 0: fatal to the connection.",
            Frame::Error(
                RequestId::CONNECTION,
                ErrorInfo::new(
                    ErrorCode::FRAME_TOO_LARGE,
                    "declared payload length 2000000 exceeds the maximum of 1048576 bytes",
                ),
            ),
        ),
        v(
            "complete",
            "COMPLETE with a result and both metrics.",
            Frame::Complete(
                RequestId(1),
                Complete {
                    result: map(&[("text", "hello".into())]),
                    metrics: Metrics { wall_us: 1250, cpu_us: Some(800) },
                },
            ),
        ),
        v(
            "complete-nil",
            "COMPLETE with no result and only wall time.",
            Frame::Complete(
                RequestId(2),
                Complete { result: Value::Nil, metrics: Metrics { wall_us: 0, cpu_us: None } },
            ),
        ),
        v("ping", "PING carrying the resume acknowledgement.", Frame::Ping(Ping { seq: 1, recv: Some(5) })),
        v("ping-no-resume", "PING without resume.", Frame::Ping(Ping { seq: 4294967295, recv: None })),
        v("pong", "PONG answering PING 1.", Frame::Pong(Pong { seq: 1, recv: Some(9) })),
        v("pong-no-resume", "PONG without resume.", Frame::Pong(Pong { seq: 2, recv: None })),
        v(
            "window-connection",
            "WINDOW for the connection (id 0).",
            Frame::Window(RequestId::CONNECTION, Window { credit: 65536 }),
        ),
        v(
            "window-invocation",
            "WINDOW for invocation 1, the largest credit.",
            Frame::Window(RequestId(1), Window { credit: limits::MAX_WINDOW }),
        ),
        v("goaway", "GOAWAY with no keys: NO_ERROR.", Frame::GoAway(GoAway::default())),
        v(
            "goaway-reason",
            "GOAWAY with a code and message.",
            Frame::GoAway(GoAway { code: Some(ErrorCode::NO_ERROR), message: Some("server shutting down".into()) }),
        ),
    ];
    // Valid input our encoder would write differently.
    let invoke_extra = msgpack(&map(&[
        ("tool", "echo".into()),
        ("x-future-key", map(&[("a", 1.into())])),
        ("trace", rmpv::Value::Nil),
    ]));
    out.push(Valid {
        name: "invoke-unknown-key-and-nil",
        note: "Unknown keys are ignored and a nil optional value counts as absent.",
        wire: raw(0x12, 0, 5, &invoke_extra),
        canonical: Some(enc(Frame::Invoke(RequestId(5), Invoke::new("echo", Value::Nil)))),
    });
    let hello_nils = msgpack(&map(&[
        ("v", rmpv::Value::Array(vec![1.into()])),
        ("caps", rmpv::Value::Nil),
        ("limits", rmpv::Value::Nil),
        ("name", rmpv::Value::Nil),
    ]));
    out.push(Valid {
        name: "hello-client-nil-optionals",
        note: "Optional keys sent as nil are absent, whatever their type.",
        wire: raw(0x11, 0, 0, &hello_nils),
        canonical: Some(enc(Frame::Hello(ClientHello::new()))),
    });
    out.push(Valid {
        name: "interrupt-empty-payload",
        note: "An empty payload means the empty map.",
        wire: raw(0x14, 0, 9, &[]),
        canonical: Some(enc(Frame::Interrupt(RequestId(9), Interrupt::default()))),
    });
    out.push(Valid {
        name: "window-map16",
        note: "Any MsgPack encoding of the map is accepted (here map16 and uint32 for a small number).",
        wire: raw(0x1A, 0, 0, &[0xDE, 0x00, 0x01, 0xA6, b'c', b'r', b'e', b'd', b'i', b't', 0xCE, 0, 0, 0, 10]),
        canonical: Some(enc(Frame::Window(RequestId::CONNECTION, Window { credit: 10 }))),
    });
    out
}

fn invalid_cases() -> Vec<Invalid> {
    const MAX: u32 = limits::DEFAULT_MAX_FRAME_PAYLOAD;
    let bad = |name, why, wire: Bytes, code| Invalid { name, why, wire, max_payload: MAX, code };
    let p = |pairs: &[(&str, rmpv::Value)]| msgpack(&map(pairs));
    let mut deep = vec![0x91u8; 40];
    deep.push(0xC0);
    let mut deep_args = p(&[("tool", "echo".into())]);
    deep_args[0] = 0x82;
    deep_args.extend_from_slice(&msgpack(&"args".into()));
    deep_args.extend_from_slice(&deep);
    // The payload map and 32 arrays: 33 levels, one past the limit (§6.1).
    let mut deep33_args = p(&[("tool", "echo".into())]);
    deep33_args[0] = 0x82;
    deep33_args.extend_from_slice(&msgpack(&"args".into()));
    deep33_args.extend(std::iter::repeat_n(0x91u8, 31));
    deep33_args.push(0x90);
    let bad_utf8 = vec![0x81, 0xA4, b't', b'o', b'o', b'l', 0xA2, 0xC3, 0x28];
    let ok_stream = enc(Frame::Stream(RequestId(1), Bytes::from_static(b"ok")));
    let then = |first: &Bytes, second: Bytes| -> Bytes { [&first[..], &second[..]].concat().into() };
    vec![
        bad("version-0", "Version nibble 0.", raw(0x03, 0, 1, b""), ErrorCode::UNSUPPORTED_VERSION),
        bad(
            "version-2",
            "Version nibble 2: a future version this peer does not speak.",
            raw(0x23, 0, 1, b""),
            ErrorCode::UNSUPPORTED_VERSION,
        ),
        bad(
            "version-15",
            "Version nibble 15, with everything else wrong too: the version is reported first.",
            raw(0xF0, 0xFF, 0, b""),
            ErrorCode::UNSUPPORTED_VERSION,
        ),
        bad("type-0", "Type 0x0 is reserved.", raw(0x10, 0, 0, b""), ErrorCode::RESERVED_TYPE),
        bad("type-c", "Type 0xC is reserved.", raw(0x1C, 0, 0, b""), ErrorCode::RESERVED_TYPE),
        bad(
            "type-f-and-flags",
            "Type 0xF with flags set: the type is reported before the flags.",
            raw(0x1F, 0xFF, 0, b""),
            ErrorCode::RESERVED_TYPE,
        ),
        bad(
            "flags-invoke",
            "INVOKE defines no flags.",
            raw(0x12, 0x01, 1, &p(&[("tool", "echo".into())])),
            ErrorCode::RESERVED_FLAGS,
        ),
        bad("flags-stream-0x02", "STREAM defines only 0x01.", raw(0x13, 0x02, 1, b"x"), ErrorCode::RESERVED_FLAGS),
        bad(
            "flags-hello-0x80",
            "HELLO defines only 0x01.",
            raw(0x11, 0x81, 0, &p(&[("v", rmpv::Value::Array(vec![1.into()]))])),
            ErrorCode::RESERVED_FLAGS,
        ),
        bad(
            "flags-before-id",
            "Reserved flags and a bad id: flags are reported first.",
            raw(0x18, 0x04, 3, b""),
            ErrorCode::RESERVED_FLAGS,
        ),
        bad(
            "id-zero-invoke",
            "INVOKE needs a request id.",
            raw(0x12, 0, 0, &p(&[("tool", "echo".into())])),
            ErrorCode::INVALID_REQUEST_ID,
        ),
        bad("id-zero-stream", "STREAM needs a request id.", raw(0x13, 0, 0, b"x"), ErrorCode::INVALID_REQUEST_ID),
        bad(
            "id-on-ping",
            "PING is connection-level: id must be 0.",
            raw(0x18, 0, 5, &p(&[("seq", 1.into())])),
            ErrorCode::INVALID_REQUEST_ID,
        ),
        bad(
            "id-on-hello",
            "HELLO is connection-level.",
            raw(0x11, 0, 1, &p(&[("v", rmpv::Value::Array(vec![1.into()]))])),
            ErrorCode::INVALID_REQUEST_ID,
        ),
        bad(
            "id-before-length",
            "A bad id and an over-long length: the id is reported first.",
            raw(0x13, 0, 0, b"").slice(..4).iter().copied().chain([0xFF, 0xFF, 0xFF, 0xFF]).collect::<Vec<_>>().into(),
            ErrorCode::INVALID_REQUEST_ID,
        ),
        bad(
            "length-over-max",
            "Declared length one byte over the 1 MiB default maximum; no payload follows, none is needed to reject it.",
            [0x13, 0, 0, 1, 0x00, 0x10, 0x00, 0x01].to_vec().into(),
            ErrorCode::FRAME_TOO_LARGE,
        ),
        bad(
            "length-4gib",
            "Declared length 2^32-1.",
            [0x13, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF].to_vec().into(),
            ErrorCode::FRAME_TOO_LARGE,
        ),
        Invalid {
            name: "length-over-negotiated",
            why: "With a negotiated maximum of 16384, a 16385-byte frame is refused.",
            wire: [0x13, 0, 0, 1, 0, 0, 0x40, 0x01].to_vec().into(),
            max_payload: 16384,
            code: ErrorCode::FRAME_TOO_LARGE,
        },
        bad(
            "truncated-header",
            "The input ends after 5 header bytes.",
            [0x13, 0, 0, 1, 0].to_vec().into(),
            ErrorCode::TRUNCATED_FRAME,
        ),
        bad(
            "truncated-header-bad-version",
            "Two bytes whose version nibble is 0: header checks wait for all 8 bytes, so this is a truncated frame, not UNSUPPORTED_VERSION (SPEC.md §4.4).",
            [0x03, 0].to_vec().into(),
            ErrorCode::TRUNCATED_FRAME,
        ),
        bad(
            "truncated-payload",
            "The header declares 5 payload bytes; 3 follow.",
            raw(0x13, 0, 1, b"abcde").slice(..11),
            ErrorCode::TRUNCATED_FRAME,
        ),
        bad(
            "payload-array",
            "INVOKE payload is an array, not a map.",
            raw(0x12, 0, 1, &msgpack(&rmpv::Value::Array(vec!["echo".into()]))),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "payload-not-msgpack",
            "PING payload byte 0xC1 is never valid MsgPack.",
            raw(0x18, 0, 0, &[0xC1]),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "payload-truncated-map",
            "A map of one entry with nothing in it.",
            raw(0x18, 0, 0, &[0x81]),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "payload-trailing-bytes",
            "Bytes after the map.",
            raw(0x18, 0, 0, &[&p(&[("seq", 1.into())])[..], &[0xC0]].concat()),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "invoke-missing-tool",
            "INVOKE without `tool`.",
            raw(0x12, 0, 1, &p(&[("args", rmpv::Value::Nil)])),
            ErrorCode::MISSING_FIELD,
        ),
        bad(
            "invoke-tool-nil",
            "A required key sent as nil has the wrong type.",
            raw(0x12, 0, 1, &p(&[("tool", rmpv::Value::Nil)])),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "invoke-tool-not-string",
            "`tool` must be a string.",
            raw(0x12, 0, 1, &p(&[("tool", 7.into())])),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "invoke-tool-bad-utf8",
            "`tool` is not valid UTF-8.",
            raw(0x12, 0, 1, &bad_utf8),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "invoke-too-deep",
            "`args` nested 40 arrays deep (the limit is 32).",
            raw(0x12, 0, 1, &deep_args),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "invoke-depth-33",
            "The payload map and 32 nested arrays: 33 levels, one past the limit of 32 counting the payload map.",
            raw(0x12, 0, 1, &deep33_args),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "complete-missing-wall",
            "COMPLETE metrics without `wall_us`.",
            raw(0x17, 0, 1, &p(&[("metrics", map(&[("cpu_us", 5.into())]))])),
            ErrorCode::MISSING_FIELD,
        ),
        bad(
            "complete-missing-metrics",
            "COMPLETE without `metrics`.",
            raw(0x17, 0, 1, &p(&[("result", 1.into())])),
            ErrorCode::MISSING_FIELD,
        ),
        bad(
            "error-missing-code",
            "ERROR without `code`.",
            raw(0x16, 0, 1, &p(&[("message", "boom".into())])),
            ErrorCode::MISSING_FIELD,
        ),
        bad(
            "window-zero",
            "WINDOW credit must be at least 1.",
            raw(0x1A, 0, 0, &p(&[("credit", 0.into())])),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "window-over-max",
            "WINDOW credit over 2^31-1.",
            raw(0x1A, 0, 0, &p(&[("credit", 2147483648u64.into())])),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "progress-nan",
            "Progress must be finite.",
            raw(0x13, 0x01, 1, &p(&[("progress", f64::NAN.into())])),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "hello-no-versions",
            "Client HELLO with an empty `v`.",
            raw(0x11, 0, 0, &p(&[("v", rmpv::Value::Array(vec![]))])),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "hello-short-ticket",
            "A resume ticket of 8 bytes (at least 16 are required).",
            raw(
                0x11,
                0,
                0,
                &p(&[
                    ("v", rmpv::Value::Array(vec![1.into()])),
                    ("resume", map(&[("ticket", rmpv::Value::Binary(vec![0; 8])), ("recv", 0.into())])),
                ]),
            ),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "hello-small-max-frame",
            "`limits.max_frame` below 16384.",
            raw(
                0x11,
                0,
                0,
                &p(&[("v", rmpv::Value::Array(vec![1.into()])), ("limits", map(&[("max_frame", 1024.into())]))]),
            ),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "hello-reply-missing-cid",
            "Server HELLO without `cid`.",
            raw(0x11, 0x01, 0, &p(&[("v", 1.into())])),
            ErrorCode::MISSING_FIELD,
        ),
        bad(
            "tooldef-bad-op",
            "TOOL_DEF `op` must be add, remove or replace.",
            raw(0x15, 0, 0, &p(&[("op", "rename".into()), ("tools", rmpv::Value::Array(vec![]))])),
            ErrorCode::MALFORMED_PAYLOAD,
        ),
        bad(
            "tooldef-missing-name",
            "A tool without `name`.",
            raw(
                0x15,
                0,
                0,
                &p(&[("op", "add".into()), ("tools", rmpv::Value::Array(vec![map(&[("desc", "x".into())])]))]),
            ),
            ErrorCode::MISSING_FIELD,
        ),
        bad(
            "after-valid-frame",
            "A valid STREAM, then a frame with version 0: the first error decides.",
            then(&ok_stream, raw(0x03, 0, 1, b"")),
            ErrorCode::UNSUPPORTED_VERSION,
        ),
    ]
}

// ------------------------------------------------------ MsgPack <-> JSON view

/// The JSON view of a MsgPack value used in the vectors (SPEC.md §14):
/// maps keep their key order, floats are written with a fraction (`3.0`),
/// float32 as `{"$f32": n}`, bin as `{"$bin": hex}`, ext as
/// `{"$ext": [type, hex]}`: enough to rebuild the bytes ([`from_json`]).
fn to_json(v: &rmpv::Value) -> Json {
    use rmpv::Value as V;
    match v {
        V::Nil => Json::Null,
        V::Boolean(b) => json!(b),
        V::Integer(i) => i.as_u64().map(|u| json!(u)).unwrap_or_else(|| json!(i.as_i64().unwrap())),
        V::F32(f) => json!({ "$f32": f }),
        V::F64(f) => json!(f),
        V::String(s) => json!(s.as_str().expect("vectors hold valid UTF-8")),
        V::Binary(b) => json!({ "$bin": hex::encode(b) }),
        V::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        V::Map(m) => {
            Json::Object(m.iter().map(|(k, v)| (k.as_str().expect("string keys").to_owned(), to_json(v))).collect())
        }
        V::Ext(t, b) => json!({ "$ext": [t, hex::encode(b)] }),
    }
}

/// The MsgPack value a JSON view stands for: the inverse of [`to_json`]
/// (integers in their shortest encoding, as canonical payloads have them).
fn from_json(j: &Json) -> rmpv::Value {
    use rmpv::Value as V;
    match j {
        Json::Null => V::Nil,
        Json::Bool(b) => V::Boolean(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => V::from(u),
            (None, Some(i)) => V::from(i),
            _ => V::F64(n.as_f64().unwrap()),
        },
        Json::String(s) => V::from(s.as_str()),
        Json::Array(a) => V::Array(a.iter().map(from_json).collect()),
        Json::Object(m) => match (m.len(), m.iter().next()) {
            (1, Some((k, v))) if k == "$bin" => V::Binary(hex::decode(v.as_str().unwrap()).unwrap()),
            (1, Some((k, v))) if k == "$f32" => V::F32(v.as_f64().unwrap() as f32),
            (1, Some((k, v))) if k == "$ext" => {
                V::Ext(v[0].as_i64().unwrap() as i8, hex::decode(v[1].as_str().unwrap()).unwrap())
            }
            _ => V::Map(m.iter().map(|(k, v)| (V::from(k.as_str()), from_json(v))).collect()),
        },
    }
}

/// A frame's bytes rebuilt from its JSON description alone.
fn rebuild(frame: &Json) -> Vec<u8> {
    let name = frame["type"].as_str().unwrap();
    let frame_type = (0u8..16)
        .filter_map(FrameType::from_code)
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("unknown type {name}"));
    let payload = match (frame.get("data_hex"), frame.get("payload")) {
        (Some(data), _) => hex::decode(data.as_str().unwrap()).unwrap(),
        (None, Some(Json::Null)) => Vec::new(),
        (None, Some(p)) => {
            let mut out = Vec::new();
            rmpv::encode::write_value(&mut out, &from_json(p)).unwrap();
            out
        }
        _ => panic!("no payload"),
    };
    let mut out = vec![(FrameHeader::VERSION << 4) | frame_type.code(), frame["flags"].as_u64().unwrap() as u8];
    out.extend((frame["request_id"].as_u64().unwrap() as u16).to_be_bytes());
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend(payload);
    out
}

#[test]
fn every_valid_vector_can_be_rebuilt_from_its_json() {
    let vectors = load();
    for case in vectors["valid"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let rebuilt = rebuild(&case["frame"]);
        let hex_bytes = bytes_of(case, "hex");
        if case.get("canonical_hex").is_none() {
            assert_eq!(hex::encode(&rebuilt), hex::encode(&hex_bytes), "{name}: the JSON does not rebuild `hex`");
        } else {
            // A non-canonical input: its JSON rebuilds the same frame.
            let max = limits::DEFAULT_MAX_FRAME_PAYLOAD;
            let again = decode_all(rebuilt.into(), max).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(again, decode_all(hex_bytes, max).unwrap(), "{name}");
        }
    }
}

fn describe(frame_bytes: &Bytes) -> Json {
    let header = FrameHeader::parse(frame_bytes[..8].try_into().unwrap(), u32::MAX).unwrap();
    let payload = &frame_bytes[8..];
    let mut obj = json!({
        "type": header.frame_type.name(),
        "flags": header.flags,
        "request_id": header.request_id.0,
    });
    if header.frame_type == FrameType::Stream && header.flags & flags::STREAM_PROGRESS == 0 {
        obj["data_hex"] = json!(hex::encode(payload));
    } else if payload.is_empty() {
        // No payload bytes (read as the empty map, SPEC.md §6.1).
        obj["payload"] = Json::Null;
    } else {
        let value = rmpv::decode::read_value(&mut &payload[..]).unwrap();
        obj["payload"] = to_json(&value);
    }
    obj
}

fn generate() -> Json {
    let valid: Vec<Json> = valid_cases()
        .into_iter()
        .map(|c| {
            let mut o = json!({ "name": c.name, "note": c.note, "hex": hex::encode(&c.wire) });
            o["frame"] = describe(&c.wire);
            if let Some(canonical) = &c.canonical {
                o["canonical_hex"] = json!(hex::encode(canonical));
            }
            o
        })
        .collect();
    let invalid: Vec<Json> = invalid_cases()
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name,
                "why": c.why,
                "hex": hex::encode(&c.wire),
                "max_payload": c.max_payload,
                "error": c.code.name().unwrap(),
                "code": c.code.0,
            })
        })
        .collect();
    json!({
        "description": "ASP/1 frame conformance vectors. See SPEC.md section 14 for how to run them.",
        "spec": "ASP/1",
        "valid": valid,
        "invalid": invalid,
    })
}

// ------------------------------------------------------------------- checks

fn load() -> Json {
    let text = std::fs::read_to_string(root().join(VECTORS)).expect("vectors file");
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn bytes_of(case: &Json, key: &str) -> Bytes {
    hex::decode(case[key].as_str().unwrap()).unwrap().into()
}

#[test]
fn committed_vectors_match_the_case_list() {
    let generated = generate();
    let path = root().join(VECTORS);
    if blessing() {
        std::fs::write(&path, serde_json::to_string_pretty(&generated).unwrap() + "\n").unwrap();
        write_seed_corpora(&generated);
    }
    assert_eq!(load(), generated, "frames.json is stale: rerun with ASP_BLESS=1 and review the diff");
}

#[test]
fn valid_vectors_decode_to_their_fields_and_encode_canonically() {
    let vectors = load();
    let valid = vectors["valid"].as_array().unwrap();
    let mut types_seen = BTreeMap::new();
    for case in valid {
        let name = case["name"].as_str().unwrap();
        let wire = bytes_of(case, "hex");
        let frames =
            decode_all(wire.clone(), limits::DEFAULT_MAX_FRAME_PAYLOAD).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frames.len(), 1, "{name}");
        let frame = &frames[0];
        let expected = &case["frame"];
        assert_eq!(frame.frame_type().name(), expected["type"], "{name}");
        assert_eq!(frame.flags() as u64, expected["flags"].as_u64().unwrap(), "{name}");
        assert_eq!(frame.request_id().0 as u64, expected["request_id"].as_u64().unwrap(), "{name}");
        // The payload's fields, read back from what the decoder produced.
        let reencoded = frame.to_bytes().unwrap();
        match frame {
            Frame::Stream(_, data) => assert_eq!(hex::encode(data), expected["data_hex"], "{name}"),
            _ => {
                let canonical_view = describe(&reencoded);
                let mut expected_payload = expected["payload"].clone();
                // Non-canonical inputs carry keys the decoder drops; compare
                // against the canonical form in that case.
                if case.get("canonical_hex").is_some() {
                    expected_payload = describe(&bytes_of(case, "canonical_hex"))["payload"].clone();
                }
                assert_eq!(canonical_view["payload"], expected_payload, "{name}");
            }
        }
        let canonical = case.get("canonical_hex").map(|_| bytes_of(case, "canonical_hex")).unwrap_or(wire);
        assert_eq!(hex::encode(&reencoded), hex::encode(&canonical), "{name}: canonical encoding");
        *types_seen.entry(frame.frame_type()).or_insert(0) += 1;
    }
    for t in FrameType::ALL {
        assert!(types_seen.get(&t).copied().unwrap_or(0) >= 2, "fewer than two valid vectors for {t}");
    }
}

#[test]
fn invalid_vectors_fail_with_their_codes() {
    let vectors = load();
    let invalid = vectors["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 20, "at least twenty invalid vectors");
    for case in invalid {
        let name = case["name"].as_str().unwrap();
        let max = case["max_payload"].as_u64().unwrap() as u32;
        let code = ErrorCode(case["code"].as_u64().unwrap() as u16);
        assert_eq!(code.name(), case["error"].as_str(), "{name}: code and name agree");
        let wire = bytes_of(case, "hex");
        let err = decode_all(wire.clone(), max).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        // Same outcome byte by byte.
        let mut decoder = Decoder::new(max);
        let mut first_error = None;
        'feed: for b in wire.iter() {
            let mut input: &[u8] = std::slice::from_ref(b);
            loop {
                match decoder.decode(&mut input) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        first_error = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        let err = match first_error {
            Some(e) => e,
            None => decoder.finish().expect_err(name),
        };
        assert_eq!(err.code(), code, "{name} (one byte at a time): {err}");
    }
}

#[test]
fn schema_errors_name_the_key() {
    let vectors = load();
    let by_name = |n: &str| {
        let case = vectors["invalid"].as_array().unwrap().iter().find(|c| c["name"] == n).unwrap();
        decode_all(bytes_of(case, "hex"), limits::DEFAULT_MAX_FRAME_PAYLOAD).unwrap_err().to_string()
    };
    assert!(by_name("invoke-missing-tool").contains("`tool`"));
    assert!(by_name("complete-missing-wall").contains("`metrics.wall_us`"));
    assert!(by_name("invoke-tool-not-string").contains("`tool`"));
    assert!(by_name("tooldef-missing-name").contains("`tools[0].name`"), "{}", by_name("tooldef-missing-name"));
    assert!(by_name("window-zero").contains("`credit`"));
    assert!(by_name("hello-small-max-frame").contains("`limits.max_frame`"));
}

// ------------------------------------------------------------- seed corpora

/// Every vector becomes a seed for each fuzz target: raw for `frame_decode`
/// and `frame_roundtrip`; for `decoder_chunked` with four split-seed bytes in
/// front. All valid vectors back to back make one more seed.
fn write_seed_corpora(vectors: &Json) {
    let corpus = root().join("../fuzz/corpus");
    let mut all_valid = Vec::new();
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for kind in ["valid", "invalid"] {
        for case in vectors[kind].as_array().unwrap() {
            let bytes = bytes_of(case, "hex").to_vec();
            if kind == "valid" {
                all_valid.extend_from_slice(&bytes);
            }
            seeds.push((format!("{kind}-{}", case["name"].as_str().unwrap()), bytes));
        }
    }
    seeds.push(("valid-all-concatenated".into(), all_valid));
    for target in ["frame_decode", "frame_roundtrip", "decoder_chunked"] {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            let data = if target == "decoder_chunked" {
                // Split seeds 0x00000001 (one-byte chunks) and 0x05xxxxxx (up to 32).
                let mut d = if name.len() % 2 == 0 { vec![1, 0, 0, 0] } else { vec![0x9b, 0x3c, 0x11, 0x05] };
                d.extend_from_slice(bytes);
                d
            } else {
                bytes.clone()
            };
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}
