//! Runs a fuzz target's body over its corpus in a loop and reports runs per
//! second: `cargo run --release -p asp-testkit --example fuzz_speed -- session_ops`.
//! For profiling the targets without libFuzzer (`perf record` on this);
//! `-- session_ops random` uses 200 random inputs instead of the corpus.

use std::time::{Duration, Instant};

fn main() {
    let target = std::env::args().nth(1).unwrap_or_else(|| "session_ops".into());
    let body: fn(&[u8]) = match target.as_str() {
        "frame_decode" => asp_testkit::fuzz::frame_decode,
        "frame_roundtrip" => asp_testkit::fuzz::frame_roundtrip,
        "decoder_chunked" => asp_testkit::fuzz::decoder_chunked,
        "session" => asp_testkit::fuzz::session,
        "session_ops" => asp_testkit::fuzz::session_ops,
        "relay" => asp_testkit::fuzz::relay_ops,
        other => panic!("no target {other}"),
    };
    let inputs: Vec<Vec<u8>> = if std::env::args().nth(2).as_deref() == Some("random") {
        // Random inputs like a fuzzer's first ones (xorshift, fixed seed).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..200)
            .map(|_| {
                (0..160)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect()
    } else {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(&target);
        std::fs::read_dir(&dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect()
    };
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        for input in &inputs {
            body(input);
            runs += 1;
        }
    }
    println!("{target}: {} inputs, {:.0} runs/s", inputs.len(), runs as f64 / start.elapsed().as_secs_f64());
}
