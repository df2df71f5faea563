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

use asp_async_std::{AsyncStd, Smol};
use asp_driver::{Client, ClientBuilder, Network, ServerBuilder, ServerHandle, ToolContext, ToolError};
use asp_proto::{ToolSpec, Value};
use asp_tokio::TokioRuntime;
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

#[derive(Clone)]
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

async fn asp_server<N: Network>(tls: Option<&Tls>, chunks: usize) -> ServerHandle<N> {
    let builder = ServerBuilder::<N>::new("127.0.0.1:0".parse().expect("address"))
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

async fn asp_client<N: Network>(url: &str, tls: Option<&Tls>) -> Client<N> {
    let builder = ClientBuilder::<N>::new(url);
    let builder = match tls {
        Some(t) => builder.trust_pem(t.cert_pem.as_bytes()).expect("tls"),
        None => builder.allow_plaintext(),
    };
    builder.connect().await.expect("connect")
}

async fn asp_round_trips<N: Network>(tls: Option<&Tls>, calls: usize, warmup: usize) -> Latency {
    let server = asp_server::<N>(tls, 0).await;
    let client = asp_client::<N>(server.url(), tls).await;
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

async fn asp_streaming<N: Network>(tls: Option<&Tls>, chunks: usize) -> f64 {
    let server = asp_server::<N>(tls, chunks).await;
    let client = asp_client::<N>(server.url(), tls).await;
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

/// Runs `future` on a fresh two-thread Tokio runtime.
fn on_tokio<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn main() {
    let (calls, warmup, chunks) = args();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let tls = Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() };
    let tls = &tls;

    eprintln!("round trips: {calls} calls after {warmup} warm-up, {PAYLOAD}-byte payload …");
    let raw_ws = on_tokio(raw::round_trips(None, calls, warmup));
    let raw_wss = on_tokio(raw::round_trips(Some(tls), calls, warmup));
    let round_trips = [
        ("raw tokio-tungstenite echo, ws://", raw_ws.clone(), &raw_ws),
        ("raw tokio-tungstenite echo, wss://", raw_wss.clone(), &raw_wss),
        ("ASP invoke echo, asp-tokio, ws://", on_tokio(asp_round_trips::<TokioRuntime>(None, calls, warmup)), &raw_ws),
        (
            "ASP invoke echo, asp-tokio, wss://",
            on_tokio(asp_round_trips::<TokioRuntime>(Some(tls), calls, warmup)),
            &raw_wss,
        ),
        (
            "ASP invoke echo, asp-async-std, ws://",
            async_std::task::block_on(asp_round_trips::<AsyncStd>(None, calls, warmup)),
            &raw_ws,
        ),
        (
            "ASP invoke echo, asp-async-std, wss://",
            async_std::task::block_on(asp_round_trips::<AsyncStd>(Some(tls), calls, warmup)),
            &raw_wss,
        ),
        (
            "ASP invoke echo, asp-async-std on smol, wss://",
            smol::block_on(asp_round_trips::<Smol>(Some(tls), calls, warmup)),
            &raw_wss,
        ),
    ];
    eprintln!("streaming: {chunks} chunks of {PAYLOAD} bytes …");
    let raw_stream = on_tokio(raw::streaming(Some(tls), chunks));
    let streams = [
        ("raw binary messages (batched writes)", raw_stream),
        ("ASP STREAM frames, asp-tokio", on_tokio(asp_streaming::<TokioRuntime>(Some(tls), chunks))),
        ("ASP STREAM frames, asp-async-std", async_std::task::block_on(asp_streaming::<AsyncStd>(Some(tls), chunks))),
        ("ASP STREAM frames, asp-async-std on smol", smol::block_on(asp_streaming::<Smol>(Some(tls), chunks))),
    ];

    println!("| round trip ({PAYLOAD} B, sequential) | p50 µs | p90 µs | p99 µs | p50 vs raw |");
    println!("|---|---:|---:|---:|---:|");
    let ratio = |a: &Latency, b: &Latency| a.p50.as_secs_f64() / b.p50.as_secs_f64();
    for (name, l, floor) in &round_trips {
        println!("| {name} | {} | {} | {} | {:.2}x |", us(l.p50), us(l.p90), us(l.p99), ratio(l, floor));
    }
    println!();
    println!("| streaming {PAYLOAD} B chunks, wss:// | chunks/s | MB/s | vs raw |");
    println!("|---|---:|---:|---:|");
    for (name, rate) in &streams {
        println!("| {name} | {:.0} | {:.1} | {:.2}x |", rate, rate * PAYLOAD as f64 / 1e6, rate / raw_stream);
    }
    let json = serde_json::json!({
        "payload_bytes": PAYLOAD, "calls": calls, "chunks": chunks,
        "round_trip_us": round_trips.iter().map(|(name, l, floor)| serde_json::json!({
            "name": name, "p50": us(l.p50), "p90": us(l.p90), "p99": us(l.p99), "p50_vs_raw": ratio(l, floor),
        })).collect::<Vec<_>>(),
        "streaming_chunks_per_s": streams.iter().map(|(name, rate)| serde_json::json!({
            "name": name, "chunks_per_s": rate, "vs_raw": rate / raw_stream,
        })).collect::<Vec<_>>(),
    });
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/asp-bench.json");
    let _ = std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json"));
}
