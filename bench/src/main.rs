//! `cargo run --release -p asp-bench` — one run, on loopback, printing a
//! markdown table (and `target/asp-bench.json`):
//!
//! - round trip of a 32-byte echo, sequential, after a warm-up: ASP `echo`
//!   over `ws://` and `wss://` against a raw tokio-tungstenite echo server
//!   (the floor) over the same transports;
//! - streaming 32-byte chunks server → client: ASP STREAM frames against
//!   raw binary WebSocket messages (written in batches and flushed, as the
//!   ASP driver does).
//!
//! Loopback numbers are noisy: compare rows of one run, not runs.
#![forbid(unsafe_code)]

mod raw;

use std::time::{Duration, Instant};

use asp_proto::{ToolSpec, Value};
use asp_tokio::{ClientBuilder, ServerBuilder, ToolContext, ToolError};
use bytes::Bytes;
use futures::StreamExt;

const PAYLOAD: usize = 32;

pub(crate) struct Tls {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

fn args() -> (usize, usize, usize) {
    let get = |name: &str, default: usize| {
        std::env::args().skip_while(|a| a != name).nth(1).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    (get("--calls", 5000), get("--warmup", 500), get("--chunks", 200_000))
}

pub(crate) struct Latency {
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
}

pub(crate) fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Latency { p50: at(0.5), p90: at(0.9), p99: at(0.99) }
}

async fn asp_server(tls: Option<&Tls>, chunks: usize) -> asp_tokio::ServerHandle {
    let builder = ServerBuilder::new("127.0.0.1:0".parse().expect("address"))
        .tool(ToolSpec::named("echo"), |_c: ToolContext, a: Value| async move { Ok::<_, ToolError>(a) })
        .tool(ToolSpec::named("stream"), move |ctx: ToolContext, _a: Value| async move {
            let chunk = Bytes::from_static(&[b'x'; PAYLOAD]);
            for _ in 0..chunks {
                ctx.send(chunk.clone()).await?;
            }
            Ok::<_, ToolError>(Value::Nil)
        });
    let builder = match tls {
        Some(t) => builder.tls_pem(t.cert_pem.as_bytes(), t.key_pem.as_bytes()).expect("tls"),
        None => builder.allow_plaintext(),
    };
    builder.bind().await.expect("bind").spawn()
}

async fn asp_client(url: &str, tls: Option<&Tls>) -> asp_tokio::Client {
    let builder = ClientBuilder::new(url);
    let builder = match tls {
        Some(t) => builder.trust_pem(t.cert_pem.as_bytes()).expect("tls"),
        None => builder.allow_plaintext(),
    };
    builder.connect().await.expect("connect")
}

async fn asp_round_trips(tls: Option<&Tls>, calls: usize, warmup: usize) -> Latency {
    let server = asp_server(tls, 0).await;
    let client = asp_client(server.url(), tls).await;
    let payload = Value::Binary(vec![7; PAYLOAD]);
    let mut samples = Vec::with_capacity(calls);
    for i in 0..warmup + calls {
        let started = Instant::now();
        let done = client.invoke("echo", payload.clone()).await.expect("invoke").result().await.expect("echo");
        if i >= warmup {
            samples.push(started.elapsed());
        }
        assert_eq!(done.result, payload);
    }
    server.shutdown(Duration::from_millis(100)).await;
    latency(samples)
}

async fn asp_streaming(tls: Option<&Tls>, chunks: usize) -> f64 {
    let server = asp_server(tls, chunks).await;
    let client = asp_client(server.url(), tls).await;
    let started = Instant::now();
    let mut inv = client.invoke("stream", Value::Nil).await.expect("invoke");
    let mut bytes = 0;
    while let Some(chunk) = inv.next().await {
        bytes += chunk.len();
    }
    inv.result().await.expect("stream");
    let elapsed = started.elapsed();
    assert_eq!(bytes, chunks * PAYLOAD, "every chunk arrived");
    server.shutdown(Duration::from_millis(100)).await;
    chunks as f64 / elapsed.as_secs_f64()
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() {
    let (calls, warmup, chunks) = args();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let tls = Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() };

    eprintln!("round trips: {calls} calls after {warmup} warm-up, {PAYLOAD}-byte payload …");
    let raw_ws = raw::round_trips(None, calls, warmup).await;
    let raw_wss = raw::round_trips(Some(&tls), calls, warmup).await;
    let asp_ws = asp_round_trips(None, calls, warmup).await;
    let asp_wss = asp_round_trips(Some(&tls), calls, warmup).await;
    eprintln!("streaming: {chunks} chunks of {PAYLOAD} bytes …");
    let raw_stream = raw::streaming(Some(&tls), chunks).await;
    let asp_stream = asp_streaming(Some(&tls), chunks).await;

    println!("| round trip ({PAYLOAD} B, sequential) | p50 µs | p90 µs | p99 µs | p50 vs raw |");
    println!("|---|---:|---:|---:|---:|");
    let ratio = |a: &Latency, b: &Latency| a.p50.as_secs_f64() / b.p50.as_secs_f64();
    for (name, l, floor) in [
        ("raw tokio-tungstenite echo, ws://", &raw_ws, &raw_ws),
        ("raw tokio-tungstenite echo, wss://", &raw_wss, &raw_wss),
        ("ASP invoke echo, ws://", &asp_ws, &raw_ws),
        ("ASP invoke echo, wss://", &asp_wss, &raw_wss),
    ] {
        println!("| {name} | {} | {} | {} | {:.2}x |", us(l.p50), us(l.p90), us(l.p99), ratio(l, floor));
    }
    println!();
    println!("| streaming {PAYLOAD} B chunks, wss:// | chunks/s | MB/s | vs raw |");
    println!("|---|---:|---:|---:|");
    for (name, rate) in [("raw binary messages (batched writes)", raw_stream), ("ASP STREAM frames", asp_stream)] {
        println!("| {name} | {:.0} | {:.1} | {:.2}x |", rate, rate * PAYLOAD as f64 / 1e6, rate / raw_stream);
    }
    let json = serde_json::json!({
        "payload_bytes": PAYLOAD, "calls": calls, "chunks": chunks,
        "round_trip_us": {
            "raw_ws": [us(raw_ws.p50), us(raw_ws.p90), us(raw_ws.p99)],
            "raw_wss": [us(raw_wss.p50), us(raw_wss.p90), us(raw_wss.p99)],
            "asp_ws": [us(asp_ws.p50), us(asp_ws.p90), us(asp_ws.p99)],
            "asp_wss": [us(asp_wss.p50), us(asp_wss.p90), us(asp_wss.p99)],
        },
        "streaming_chunks_per_s": { "raw_wss": raw_stream, "asp_wss": asp_stream },
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/asp-bench.json");
    let _ = std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json"));
}
