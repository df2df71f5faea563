//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`) through
//! the same functions the cargo-fuzz targets call, on stable, as an ordinary
//! test. A crash the fuzzer found and whose input was committed stays fixed.

use std::path::Path;
use std::time::Duration;

use asp_proto::{Invoke, SessionConfig, ToolSpec, Value};
use asp_testkit::fuzz as fuzzing;
use asp_testkit::model::Op;
use asp_testkit::{Pair, Side};
use bytes::Bytes;

fn replay(target: &str, run: fn(&[u8])) {
    replay_at_least(target, run, 75);
}

fn replay_at_least(target: &str, run: fn(&[u8]), minimum: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panics on {}", path.display());
        count += 1;
    }
    // The generated seeds alone are `minimum`.
    assert!(count >= minimum, "{target}: only {count} corpus files in {}", dir.display());
}

#[test]
fn frame_decode_corpus() {
    replay("frame_decode", fuzzing::frame_decode);
}

#[test]
fn frame_roundtrip_corpus() {
    replay("frame_roundtrip", fuzzing::frame_roundtrip);
}

#[test]
fn relay_corpus() {
    replay_at_least("relay", fuzzing::relay_ops, 15);
}

#[test]
fn decoder_chunked_corpus() {
    replay("decoder_chunked", fuzzing::decoder_chunked);
}

#[test]
fn session_corpus() {
    if std::env::var_os("ASP_BLESS").is_some_and(|v| v == "1") {
        write_session_seeds();
    }
    replay_at_least("session", fuzzing::session, 6);
}

#[test]
fn session_ops_corpus() {
    replay_at_least("session_ops", fuzzing::session_ops, 4);
}

// ------------------------------------------------------------------ seeds

fn config() -> SessionConfig {
    SessionConfig { tools: vec![ToolSpec::named("echo"), ToolSpec::named("work")].into(), ..SessionConfig::default() }
}

/// Runs a scenario on a recording pair and returns what each side received.
fn transcript(scenario: impl FnOnce(&mut Pair)) -> Vec<(Side, Bytes)> {
    let mut pair = Pair::new(config(), config(), 1);
    pair.transcript = Some(Vec::new());
    pair.max_chunk = 40;
    pair.drive();
    scenario(&mut pair);
    pair.transcript.take().unwrap()
}

/// The `session` target's input format for the bytes one side received.
fn session_input(role: Side, transcript: &[(Side, Bytes)]) -> Vec<u8> {
    let mut out = vec![if role == Side::Client { 0 } else { 1 }];
    for (to, bytes) in transcript.iter().filter(|(to, _)| *to == role) {
        let _ = to;
        for piece in bytes.chunks(127) {
            out.push((piece.len() - 1) as u8);
            out.extend_from_slice(piece);
        }
    }
    out.extend_from_slice(&[0x8f, 0xa0, 0x7f, 0xff]);
    out
}

fn write_session_seeds() {
    let scenarios: Vec<(&str, Vec<(Side, Bytes)>)> = vec![
        ("handshake", transcript(|_| {})),
        (
            "invoke-stream-complete",
            transcript(|p| {
                let now = p.now;
                let id = p.client.invoke(now, Invoke::new("work", Value::from(3))).unwrap();
                p.drive();
                p.server.send_chunk(id, &mut Bytes::from_static(b"some output")).unwrap();
                p.server.complete(now, id, Value::Nil, None).unwrap();
                p.drive();
            }),
        ),
        (
            "interrupt-and-tools",
            transcript(|p| {
                let now = p.now;
                let id = p.server.invoke(now, Invoke { timeout: Some(50), ..Invoke::new("echo", Value::Nil) }).unwrap();
                p.drive();
                p.server.interrupt(id, None).unwrap();
                p.client.push_tools(asp_proto::ToolOp::Add, vec![ToolSpec::named("extra")]).unwrap();
                p.drive();
                p.advance(Duration::from_secs(16));
                p.server.goaway(now, None, None).unwrap();
                p.drive();
            }),
        ),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/session");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, t) in &scenarios {
        for role in [Side::Client, Side::Server] {
            let file = dir.join(format!("seed-{name}-{}", if role == Side::Client { "client" } else { "server" }));
            std::fs::write(file, session_input(role, t)).unwrap();
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/session_ops");
    std::fs::create_dir_all(&dir).unwrap();
    let mut heavy = vec![3u8, 1, 2, 3, 4, 5, 6, 7, 8];
    for round in 0..20u8 {
        heavy.extend_from_slice(&[
            0,
            round % 2,
            0,
            3,
            0xFF,
            round,
            4,
            0xFE,
            round,
            14,
            0,
            round * 12,
            10,
            round % 2,
            0,
        ]);
    }
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let seeds = [
        ("heavy-streaming-with-drops", heavy),
        ("random-a", random(120)),
        ("random-b", random(240)),
        ("random-c", random(309)),
    ];
    for (name, bytes) in seeds {
        assert!(Op::decode_all(&bytes[9..]).len() <= 100);
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

#[test]
fn pka_corpus() {
    if std::env::var_os("ASP_BLESS").is_some_and(|v| v == "1") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pka");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in fuzzing::pka_seeds() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    replay_at_least("pka", fuzzing::pka, 9);
}
