//! What `asp mcp serve` costs: an MCP `tools/call` made by an ASP client
//! through the bridge, next to an rmcp client calling the same MCP server
//! straight, over stdio (the server is this binary, started with
//! `--mcp-stdio-server`) and over Streamable HTTP; and for a tool that
//! streams, the time to the first progress through the bridge (a PROGRESS
//! frame) next to MCP's first progress notification.

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use asp_mcp::{McpBridgeBuilder, McpServer};
use asp_proto::Value;
use asp_tokio::{Connection, ServerBuilder, ServerHandle};
use futures::future::BoxFuture;
use futures::StreamExt;

use crate::echo::{self, Echo, Latency};
use crate::mcp::{self, HttpClient, McpClient};
use crate::PAYLOAD;

/// Progress notifications the `stream` tool sends in the first-output rows.
const STREAM_CHUNKS: usize = 20;

/// One system's rows: echo latency, and first-progress p50 over `rounds`.
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) echo: Latency,
    pub(crate) first_progress: Duration,
}

/// This binary as an MCP server over stdio.
fn stdio_server() -> McpServer {
    let program = std::env::current_exe().expect("this binary").to_string_lossy().into_owned();
    McpServer::Command { program, args: vec!["--mcp-stdio-server".into(), STREAM_CHUNKS.to_string()] }
}

/// An ASP server whose tools are `mcp`'s, through the bridge.
async fn bridged(mcp: McpServer) -> (ServerHandle, asp_tokio::Client) {
    let server =
        ServerBuilder::new("127.0.0.1:0".parse().expect("address")).allow_plaintext().bind().await.expect("bind");
    let _bridge = McpBridgeBuilder::new(mcp).start(server.tools()).await.expect("the bridge starts");
    let handle = server.spawn();
    let client = asp_tokio::ClientBuilder::new(handle.url()).allow_plaintext().connect().await.expect("connect");
    (handle, client)
}

/// The ASP client calling the bridged `echo` (text content → STREAM output).
struct BridgedEcho(Connection);

impl Echo for BridgedEcho {
    fn echo(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let data = "7".repeat(PAYLOAD);
            let args = Value::Map(vec![(Value::from("data"), Value::from(data.as_str()))]);
            let mut inv = self.0.invoke("echo", args).await.expect("invoke");
            let mut out = Vec::new();
            while let Some(chunk) = inv.next().await {
                out.extend_from_slice(&chunk);
            }
            inv.result().await.expect("echo");
            assert_eq!(out, data.as_bytes());
        })
    }
}

/// Invokes `stream` and returns the time to its first PROGRESS.
async fn first_bridged_progress(client: &Connection) -> Duration {
    let started = Instant::now();
    let mut inv = client.invoke("stream", Value::Nil).await.expect("invoke");
    // Progress is not an item of the stream: poll it, then look.
    poll_fn(|cx| {
        let _ = inv.poll_next_unpin(cx);
        if inv.progress().is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let first = started.elapsed();
    inv.result().await.expect("stream");
    first
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One row: `calls` echoes, then the median time to first progress of
/// `rounds` streaming calls.
async fn row<F, Fut>(name: &'static str, client: &dyn Echo, first: F, sizes: (usize, usize, usize)) -> Row
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let (calls, warmup, rounds) = sizes;
    let echo = echo::sequential(client, calls, warmup).await;
    let mut firsts = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        firsts.push(first().await);
    }
    Row { name, echo, first_progress: median(firsts) }
}

/// The four rows: direct and bridged, stdio and Streamable HTTP.
pub(crate) async fn run(calls: usize, warmup: usize, rounds: usize) -> Vec<Row> {
    let sizes = (calls, warmup, rounds);
    let mut command = tokio::process::Command::new(std::env::current_exe().expect("this binary"));
    command.args(["--mcp-stdio-server", &STREAM_CHUNKS.to_string()]);
    let direct = McpClient::child(command).await;
    let stdio =
        row("MCP tools/call, rmcp client → rmcp server, stdio", &direct, || direct.first_progress(), sizes).await;

    let (_server, client) = bridged(stdio_server()).await;
    let conn: &Connection = &client;
    let stdio_bridged = row(
        "ASP client → asp mcp serve → the same server, stdio",
        &BridgedEcho(conn.clone()),
        || first_bridged_progress(conn),
        sizes,
    )
    .await;

    let url = mcp::serve(STREAM_CHUNKS).await;
    let direct = McpClient::connect(&url, HttpClient::KeepAlive).await;
    let http =
        row("MCP tools/call, rmcp client → rmcp server, Streamable HTTP", &direct, || direct.first_progress(), sizes)
            .await;

    let (_server, client) = bridged(McpServer::Url(url)).await;
    let conn: &Connection = &client;
    let http_bridged = row(
        "ASP client → asp mcp serve → the same server, Streamable HTTP",
        &BridgedEcho(conn.clone()),
        || first_bridged_progress(conn),
        sizes,
    )
    .await;
    vec![stdio, stdio_bridged, http, http_bridged]
}

/// The table, with each bridged row against its direct one.
pub(crate) fn print(rows: &[Row]) {
    println!("\n| path | echo p50 µs | p99 µs | vs direct | first progress p50 µs | vs direct |");
    println!("|---|---:|---:|---:|---:|---:|");
    for pair in rows.chunks(2) {
        let direct = &pair[0];
        for row in pair {
            let vs = row.echo.p50.as_secs_f64() / direct.echo.p50.as_secs_f64();
            let first = row.first_progress.as_secs_f64() / direct.first_progress.as_secs_f64();
            println!(
                "| {} | {} | {} | {vs:.2}x | {} | {first:.2}x |",
                row.name,
                crate::us(row.echo.p50),
                crate::us(row.echo.p99),
                crate::us(row.first_progress)
            );
        }
    }
}
