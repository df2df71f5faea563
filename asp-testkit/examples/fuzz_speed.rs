//! Runs a fuzz target's body over its corpus in a loop and reports runs per
//! second: `cargo run --release -p asp-testkit --example fuzz_speed -- session_ops`.
//! For profiling the targets without libFuzzer (`perf record` on this).

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
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(&target);
    let inputs: Vec<Vec<u8>> =
        std::fs::read_dir(&dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
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
