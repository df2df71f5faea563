//! `cargo run --release -p asp-bench` — one run, on loopback, printing
//! markdown tables, writing `target/asp-bench.json` and
//! `target/asp-bench-latency.svg`:
//!
//! 1. round trip of a 32-byte echo, sequential, after a warm-up: ASP on
//!    asp-tokio and asp-async-std (async-std and smol) over `ws://` and
//!    `wss://`; a raw tokio-tungstenite echo (the floor); an MCP
//!    `tools/call` with `rmcp` over Streamable HTTP, with a keep-alive
//!    reqwest client and with rmcp's default client;
//! 2. the same with 1, 10 and 100 concurrent clients;
//! 3. streaming 32-byte chunks server → client: ASP STREAM frames, raw
//!    binary messages (written in batches), MCP progress notifications;
//! 4. bytes on the wire per echo call and per streamed chunk, counted at
//!    the socket by a proxy;
//! 5. resident memory per idle ASP connection in the server process, and
//!    the time to open them;
//! 6. relay mode next to direct mode: echo round trip and streaming through
//!    `asp-relay` to a Rust function over HTTP, beside the function's bare
//!    HTTP round trip;
//! 7. the relay as a cluster on Redis (needs `redis-server`; see
//!    `cluster.rs`): push latency same node vs other node, echo with and
//!    without `--cluster`, Redis memory per connection, 100 clients
//!    resuming on another node after theirs stopped.
//!
//! 8. (`--bridge-only`) `asp mcp serve`: a tools/call through the bridge vs
//!    the same MCP server called straight, stdio and Streamable HTTP, and
//!    the time to the first streamed progress both ways.
//!
//! `--relay-only`, `--cluster-only`, `--stream-only`, `--idle-only`,
//! `--bridge-only` run one part; `--calls N`, `--warmup N`, `--chunks N`, `--idle N` size it.
//!
//! Loopback numbers are noisy: compare rows of one run, not runs.
#![forbid(unsafe_code)]

mod asp;
mod bridge;
mod cluster;
mod echo;
mod idle;
mod mcp;
mod plot;
mod raw;
mod relay;
mod wire;

use std::time::Duration;

use asp_async_std::{AsyncStd, Smol};
use asp_tokio::TokioRuntime;
use serde_json::json;

use crate::echo::{Echo, Latency};
use crate::mcp::{HttpClient, McpClient};

const PAYLOAD: usize = 32;

pub(crate) struct Tls {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

struct Args {
    calls: usize,
    warmup: usize,
    chunks: usize,
    idle: usize,
}

fn args() -> Args {
    let get = |name: &str, default: usize| {
        std::env::args().skip_while(|a| a != name).nth(1).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    Args {
        calls: get("--calls", 5000),
        warmup: get("--warmup", 500),
        chunks: get("--chunks", 200_000),
        idle: get("--idle", 10_000),
    }
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

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn ratio(a: &Latency, b: &Latency) -> f64 {
    a.p50.as_secs_f64() / b.p50.as_secs_f64()
}

/// Sequential MCP echo latency with the given HTTP client.
async fn mcp_round_trips(http: HttpClient, calls: usize, warmup: usize) -> Latency {
    let url = mcp::serve(0).await;
    let client = McpClient::connect(&url, http).await;
    echo::sequential(&client, calls, warmup).await
}

/// `n` clients of each system at once.
async fn concurrency(n: usize, calls: usize) -> [(String, Latency); 3] {
    let raw_url = raw::serve_echo(None).await;
    let mut raws = Vec::new();
    for _ in 0..n {
        raws.push(raw::RawEcho::connect(&raw_url, None).await);
    }
    let raw = echo::concurrent(raws, calls, 20).await;
    let server = asp::server::<TokioRuntime>(None, 0).await;
    let mut asps = Vec::new();
    for _ in 0..n {
        asps.push(asp::AspEcho(asp::client::<TokioRuntime>(server.url(), None).await));
    }
    let asp = echo::concurrent(asps, calls, 20).await;
    let mcp_url = mcp::serve(0).await;
    let mut mcps = Vec::new();
    for _ in 0..n {
        mcps.push(McpClient::connect(&mcp_url, HttpClient::KeepAlive).await);
    }
    let mcp = echo::concurrent(mcps, calls, 20).await;
    [
        (format!("raw WebSocket echo, ws://, {n} clients"), raw),
        (format!("ASP echo (asp-tokio), ws://, {n} clients"), asp),
        (format!("MCP tools/call (rmcp, keep-alive), http://, {n} clients"), mcp),
    ]
}

/// Bytes per echo call and per streamed chunk, through a counting proxy.
struct Wire {
    name: &'static str,
    per_call: f64,
    per_chunk: f64,
}

async fn wire_bytes(calls: usize, chunks: usize) -> Vec<Wire> {
    let mut out = Vec::new();
    // Raw WebSocket, for reference.
    {
        let echo_url = raw::serve_echo(None).await;
        let proxy = wire::Counter::start(wire::addr_of(&echo_url)).await;
        let client = raw::RawEcho::connect(&wire::through(&echo_url, proxy.addr), None).await;
        client.echo().await;
        let before = proxy.total();
        for _ in 0..calls {
            client.echo().await;
        }
        let per_call = (proxy.total() - before) as f64 / calls as f64;
        let stream_url = raw::serve_stream(None, chunks).await;
        let proxy = wire::Counter::start(wire::addr_of(&stream_url)).await;
        raw::stream_from(&wire::through(&stream_url, proxy.addr), None, chunks).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        out.push(Wire {
            name: "raw WebSocket (binary messages)",
            per_call,
            per_chunk: proxy.total() as f64 / chunks as f64,
        });
    }
    // ASP over ws://: the handshake and the stream's INVOKE/COMPLETE are
    // counted in the per-chunk figure, which is why it uses many chunks.
    {
        let server = asp::server::<TokioRuntime>(None, chunks).await;
        let proxy = wire::Counter::start(server.local_addr()).await;
        let url = wire::through(server.url(), proxy.addr);
        let client = asp::AspEcho(asp::client::<TokioRuntime>(&url, None).await);
        client.echo().await;
        let before = proxy.total();
        for _ in 0..calls {
            client.echo().await;
        }
        let per_call = (proxy.total() - before) as f64 / calls as f64;
        let before = proxy.total();
        asp::stream_from::<TokioRuntime>(&url, None, chunks).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        out.push(Wire { name: "ASP (ws://)", per_call, per_chunk: (proxy.total() - before) as f64 / chunks as f64 });
    }
    // MCP over http:// with the keep-alive client.
    {
        let mcp_chunks = chunks.min(20_000);
        let url = mcp::serve(mcp_chunks).await;
        let proxy = wire::Counter::start(wire::addr_of(&url)).await;
        let client = McpClient::connect(&wire::through(&url, proxy.addr), HttpClient::KeepAlive).await;
        client.echo().await;
        let before = proxy.total();
        for _ in 0..calls {
            client.echo().await;
        }
        let per_call = (proxy.total() - before) as f64 / calls as f64;
        let before = proxy.total();
        client.stream(mcp_chunks).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        out.push(Wire {
            name: "MCP (rmcp, Streamable HTTP, http://)",
            per_call,
            per_chunk: (proxy.total() - before) as f64 / mcp_chunks as f64,
        });
    }
    out
}

/// Relay rows: direct ASP, through the relay, and the function's HTTP alone.
/// `streams` = [relay plain mode, relay frames mode, the function's HTTP stream alone].
fn print_relay(direct: &Latency, through: &Latency, http: &Latency, direct_stream: f64, streams: [f64; 3]) {
    println!("| relay mode vs direct (asp-tokio client, wss://) | direct | relay | relay / direct |");
    println!("|---|---:|---:|---:|");
    for (name, d, r) in [("echo p50 µs", direct.p50, through.p50), ("echo p99 µs", direct.p99, through.p99)] {
        println!("| {name} | {} | {} | {:.2}x |", us(d), us(r), r.as_secs_f64() / d.as_secs_f64());
    }
    println!("| the function's HTTP round trip alone (reqwest keep-alive), p50 µs | | {} | |", us(http.p50));
    let extra = through.p50.saturating_sub(direct.p50 + http.p50);
    println!("| relay p50 − direct p50 − HTTP p50, µs | | {} | |", us(extra));
    let [plain, frames, bare] = streams;
    println!(
        "| streaming {PAYLOAD} B chunks/s, plain mode (one HTTP chunk each) | {direct_stream:.0} | {plain:.0} | {:.2}x |",
        plain / direct_stream
    );
    println!(
        "| streaming {PAYLOAD} B chunks/s, frames mode (256 frames per HTTP chunk) | {direct_stream:.0} | {frames:.0} | {:.2}x |",
        frames / direct_stream
    );
    println!("| the function's plain stream read over HTTP alone, chunks/s | | {bare:.0} | |");
}

fn main() {
    // reqwest (rmcp's client, the function's HTTP row) is built without a
    // default TLS provider in this workspace (asp-relay brings its own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(chunks) = std::env::args().skip_while(|a| a != "--mcp-stdio-server").nth(1) {
        // The MCP server of the bridge rows (bridge.rs), on stdio.
        on_tokio(mcp::serve_stdio(chunks.parse().expect("--mcp-stdio-server CHUNKS")));
        return;
    }
    if std::env::args().any(|a| a == "--idle-server") {
        let tls = std::env::args().any(|a| a == "--tls");
        on_tokio(idle::run_server(tls));
        return;
    }
    let a = args();
    if std::env::args().any(|a| a == "--stream-only") {
        // For profilers: ASP streaming on asp-tokio over wss://, nothing else.
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
        let tls = Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() };
        let rate = on_tokio(asp::streaming::<TokioRuntime>(Some(&tls), a.chunks));
        println!("ASP streaming: {rate:.0} chunks/s");
        return;
    }
    if std::env::args().any(|a| a == "--relay-only") {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
        let tls = Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() };
        let direct = on_tokio(asp::round_trips::<TokioRuntime>(Some(&tls), a.calls, a.warmup));
        let (through, bare) = on_tokio(relay::round_trips(&tls, a.calls, a.warmup));
        let direct_stream = on_tokio(asp::streaming::<TokioRuntime>(Some(&tls), a.chunks));
        let relay_stream = on_tokio(relay::streaming(&tls, a.chunks, relay::Streaming::HttpChunks));
        let relay_frames = on_tokio(relay::streaming(&tls, a.chunks, relay::Streaming::Frames));
        let bare_stream = on_tokio(relay::bare_streaming(a.chunks));
        print_relay(&direct, &through, &bare, direct_stream, [relay_stream, relay_frames, bare_stream]);
        return;
    }
    if std::env::args().any(|a| a == "--cluster-only") {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
        let tls = Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() };
        cluster::print(&on_tokio(cluster::run(&tls, a.calls, a.warmup)));
        return;
    }
    if std::env::args().any(|a| a == "--bridge-only") {
        let rows = on_tokio(bridge::run(a.calls, a.warmup, 50));
        bridge::print(&rows);
        return;
    }
    if std::env::args().any(|a| a == "--idle-only") {
        for tls in [false, true] {
            let i = on_tokio(idle::measure(a.idle, tls));
            println!(
                "tls={tls}: {} connections, {:.1} KiB each, opened in {:.2} s",
                i.connections,
                i.bytes_per_connection / 1024.0,
                i.open_seconds
            );
        }
        return;
    }
    let (calls, warmup, chunks) = (a.calls, a.warmup, a.chunks);
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let tls = Tls { cert_pem: cert.cert.pem(), key_pem: cert.signing_key.serialize_pem() };
    let tls = &tls;

    eprintln!("round trips: {calls} calls after {warmup} warm-up, {PAYLOAD}-byte payload …");
    let raw_ws = on_tokio(raw::round_trips(None, calls, warmup));
    let raw_wss = on_tokio(raw::round_trips(Some(tls), calls, warmup));
    let mcp_keep = on_tokio(mcp_round_trips(HttpClient::KeepAlive, calls, warmup));
    let mcp_default = on_tokio(mcp_round_trips(HttpClient::Default, calls, warmup));
    let asp_ws = on_tokio(asp::round_trips::<TokioRuntime>(None, calls, warmup));
    let asp_wss = on_tokio(asp::round_trips::<TokioRuntime>(Some(tls), calls, warmup));
    let round_trips: Vec<(String, Latency, Option<&Latency>)> = vec![
        ("raw tokio-tungstenite echo, ws://".into(), raw_ws.clone(), None),
        ("raw tokio-tungstenite echo, wss://".into(), raw_wss.clone(), None),
        ("ASP echo, asp-tokio, ws://".into(), asp_ws.clone(), Some(&raw_ws)),
        ("ASP echo, asp-tokio, wss://".into(), asp_wss.clone(), Some(&raw_wss)),
        (
            "ASP echo, asp-async-std, ws://".into(),
            async_std::task::block_on(asp::round_trips::<AsyncStd>(None, calls, warmup)),
            Some(&raw_ws),
        ),
        (
            "ASP echo, asp-async-std, wss://".into(),
            async_std::task::block_on(asp::round_trips::<AsyncStd>(Some(tls), calls, warmup)),
            Some(&raw_wss),
        ),
        (
            "ASP echo, asp-async-std on smol, wss://".into(),
            smol::block_on(asp::round_trips::<Smol>(Some(tls), calls, warmup)),
            Some(&raw_wss),
        ),
        ("MCP tools/call, rmcp, keep-alive client, http://".into(), mcp_keep.clone(), Some(&raw_ws)),
        ("MCP tools/call, rmcp, default client, http://".into(), mcp_default.clone(), Some(&raw_ws)),
    ];

    eprintln!("concurrent clients …");
    let concurrent: Vec<(String, Latency)> =
        [1, 10, 100].into_iter().flat_map(|n| on_tokio(concurrency(n, calls))).collect();

    eprintln!("streaming: {chunks} chunks of {PAYLOAD} bytes …");
    let raw_stream = on_tokio(raw::streaming(Some(tls), chunks));
    let mcp_chunks = chunks.min(50_000);
    let mcp_stream = on_tokio(async {
        let url = mcp::serve(mcp_chunks).await;
        McpClient::connect(&url, HttpClient::KeepAlive).await.stream(mcp_chunks).await
    });
    let asp_stream = on_tokio(asp::streaming::<TokioRuntime>(Some(tls), chunks));
    let streams = [
        ("raw binary messages (batched writes), wss://", raw_stream),
        ("ASP STREAM frames, asp-tokio, wss://", asp_stream),
        (
            "ASP STREAM frames, asp-async-std, wss://",
            async_std::task::block_on(asp::streaming::<AsyncStd>(Some(tls), chunks)),
        ),
        ("ASP STREAM frames, asp-async-std on smol, wss://", smol::block_on(asp::streaming::<Smol>(Some(tls), chunks))),
        ("MCP progress notifications, rmcp, http://", mcp_stream),
    ];

    eprintln!("relay mode …");
    let (relay_echo, function_http) = on_tokio(relay::round_trips(tls, calls, warmup));
    let relay_stream = [
        on_tokio(relay::streaming(tls, chunks, relay::Streaming::HttpChunks)),
        on_tokio(relay::streaming(tls, chunks, relay::Streaming::Frames)),
        on_tokio(relay::bare_streaming(chunks)),
    ];

    eprintln!("relay cluster …");
    let cluster = on_tokio(cluster::run(tls, calls, warmup));

    eprintln!("bytes on the wire …");
    let wire = on_tokio(wire_bytes(1000, 100_000));

    eprintln!("{} idle connections …", a.idle);
    let idle = [("ws://", on_tokio(idle::measure(a.idle, false))), ("wss://", on_tokio(idle::measure(a.idle, true)))];

    // Tables.
    println!("| round trip ({PAYLOAD} B echo, sequential) | p50 µs | p90 µs | p99 µs | p50 vs raw WS | p50 vs rmcp keep-alive |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, l, floor) in &round_trips {
        let vs_raw = floor.map(|f| format!("{:.2}x", ratio(l, f))).unwrap_or_else(|| "1.00x".into());
        println!("| {name} | {} | {} | {} | {vs_raw} | {:.3}x |", us(l.p50), us(l.p90), us(l.p99), ratio(l, &mcp_keep));
    }
    println!();
    println!("| concurrent clients ({PAYLOAD} B echo) | p50 µs | p99 µs | calls/s |");
    println!("|---|---:|---:|---:|");
    for (name, l) in &concurrent {
        println!("| {name} | {} | {} | {:.0} |", us(l.p50), us(l.p99), l.rate);
    }
    println!();
    println!("| streaming {PAYLOAD} B chunks, server → client | chunks/s | MB/s | vs raw WS | vs MCP |");
    println!("|---|---:|---:|---:|---:|");
    for (name, rate) in &streams {
        println!(
            "| {name} | {:.0} | {:.1} | {:.2}x | {:.1}x |",
            rate,
            rate * PAYLOAD as f64 / 1e6,
            rate / raw_stream,
            rate / mcp_stream
        );
    }
    println!();
    let mcp_wire = wire.last().expect("mcp row");
    println!("| bytes on the wire (both directions, plaintext) | per echo call | per 32 B chunk | chunk vs MCP |");
    println!("|---|---:|---:|---:|");
    for w in &wire {
        println!("| {} | {:.1} | {:.1} | {:.2}x |", w.name, w.per_call, w.per_chunk, w.per_chunk / mcp_wire.per_chunk);
    }
    println!();
    println!("| idle ASP connections (server process) | connections | RSS per connection | time to open all |");
    println!("|---|---:|---:|---:|");
    for (scheme, i) in &idle {
        println!(
            "| asp-tokio, {scheme} | {} | {:.1} KiB | {:.2} s |",
            i.connections,
            i.bytes_per_connection / 1024.0,
            i.open_seconds
        );
    }
    println!();
    print_relay(&asp_wss, &relay_echo, &function_http, asp_stream, relay_stream);
    println!();
    cluster::print(&cluster);
    println!();
    println!("Aims (ratios from this run):");
    println!(
        "- ASP round trip vs raw WebSocket: {:.2}x over ws://, {:.2}x over wss:// (aim <= 1.15x)",
        ratio(&asp_ws, &raw_ws),
        ratio(&asp_wss, &raw_wss)
    );
    println!("- ASP round trip (ws://) vs rmcp keep-alive: {:.2}x (aim <= 0.45x)", ratio(&asp_ws, &mcp_keep));
    println!(
        "- ASP streaming vs raw WebSocket: {:.2}x (aim >= 0.8x); vs MCP progress: {:.0}x (aim >= 50x)",
        asp_stream / raw_stream,
        asp_stream / mcp_stream
    );
    let asp_wire = wire.iter().find(|w| w.name.starts_with("ASP")).expect("asp row");
    println!("- ASP wire bytes per chunk vs MCP: {:.3}x (aim <= 0.25x)", asp_wire.per_chunk / mcp_wire.per_chunk);
    println!(
        "- idle connection: {:.1} KiB over ws://, {:.1} KiB over wss:// (aim <= 16 KiB)",
        idle[0].1.bytes_per_connection / 1024.0,
        idle[1].1.bytes_per_connection / 1024.0
    );

    let lat =
        |l: &Latency| json!({ "p50_us": us(l.p50), "p90_us": us(l.p90), "p99_us": us(l.p99), "calls_per_s": l.rate });
    let report = json!({
        "payload_bytes": PAYLOAD, "calls": calls, "warmup": warmup, "chunks": chunks,
        "round_trip": round_trips.iter().map(|(n, l, _)| json!({ "name": n, "latency": lat(l) })).collect::<Vec<_>>(),
        "concurrent": concurrent.iter().map(|(n, l)| json!({ "name": n, "latency": lat(l) })).collect::<Vec<_>>(),
        "streaming": streams.iter().map(|(n, r)| json!({ "name": n, "chunks_per_s": r })).collect::<Vec<_>>(),
        "wire_bytes": wire.iter().map(|w| json!({ "name": w.name, "per_call": w.per_call, "per_chunk": w.per_chunk })).collect::<Vec<_>>(),
        "relay": json!({
            "echo_direct": lat(&asp_wss), "echo_relay": lat(&relay_echo), "function_http": lat(&function_http),
            "stream_direct_chunks_per_s": asp_stream, "stream_relay_http_chunks_per_s": relay_stream[0],
            "stream_relay_frames_per_s": relay_stream[1], "stream_function_http_alone_per_s": relay_stream[2],
        }),
        "idle": idle.iter().map(|(s, i)| json!({ "scheme": s, "connections": i.connections, "bytes_per_connection": i.bytes_per_connection, "open_seconds": i.open_seconds })).collect::<Vec<_>>(),
    });
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let _ = std::fs::write(target.join("asp-bench.json"), serde_json::to_string_pretty(&report).expect("json"));
    let rows: Vec<(String, Latency)> = round_trips.iter().map(|(n, l, _)| (n.clone(), l.clone())).collect();
    if let Err(e) = plot::latency_svg(&target.join("asp-bench-latency.svg"), &rows) {
        eprintln!("plot: {e}");
    }
}
