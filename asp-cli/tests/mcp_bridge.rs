//! `asp mcp serve` and `asp mcp expose` with real peers: the rmcp test server
//! (`examples/mcp_test_server.rs`) over stdio and Streamable HTTP behind
//! `asp mcp serve`, called by the Rust ASP client; an rmcp client calling
//! `asp serve`'s demo agent through `asp mcp expose`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asp_proto::{ErrorCode, Value};
use asp_tokio::{Client, ClientBuilder};
use futures::StreamExt;
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest, ProgressNotificationParam};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;

/// A child process, killed on drop, and the URL it printed.
struct Process {
    child: Child,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program args…` and reads its first stdout line, `<word> URL …`.
fn start(program: &PathBuf, args: &[&str], stderr: Stdio) -> Process {
    let mut child =
        Command::new(program).args(args).stdout(Stdio::piped()).stderr(stderr).spawn().expect("start the process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.split_whitespace().nth(1).unwrap_or_else(|| panic!("no URL in {line:?}")).to_owned();
    Process { child, url }
}

fn asp() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_asp"))
}

/// The rmcp test server: built by `cargo test` with the package's examples.
fn mcp_test_server() -> PathBuf {
    let path = asp().parent().unwrap().join("examples").join("mcp_test_server");
    assert!(path.exists(), "{} is built by `cargo test -p asp-cli` (an example)", path.display());
    path
}

async fn connect(url: &str) -> Client {
    ClientBuilder::new(url).allow_plaintext().connect().await.expect("connect to the bridge")
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (Value::from(*k), v.clone())).collect())
}

/// Output and outcome of one call.
async fn call(client: &Client, tool: &str, args: Value) -> (String, Result<Value, asp_proto::ErrorInfo>) {
    let mut inv = client.invoke(tool, args).await.expect("invoke");
    let mut out = Vec::new();
    while let Some(chunk) = inv.next().await {
        out.extend_from_slice(&chunk);
    }
    (String::from_utf8(out).unwrap(), inv.result().await.map(|d| d.result))
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What every transport must carry: calls, content, progress, errors,
/// cancellation and tool list changes.
async fn check_bridge(client: &Client) {
    let tools = client.peer_tools();
    let echo = tools.iter().find(|t| t.name == "echo").expect("echo is listed");
    assert_eq!(echo.desc.as_deref(), Some("Returns `text` as text content"));
    assert_eq!(asp_mcp::mapping::value_to_json(&echo.input)["required"], json!(["text"]));

    assert_eq!(call(client, "echo", map(&[("text", Value::from("hi"))])).await, ("hi".into(), Ok(Value::Nil)));
    let (_, sum) = call(client, "structured", map(&[("a", Value::from(1)), ("b", Value::from(2))])).await;
    assert_eq!(sum, Ok(map(&[("sum", Value::from(3))])));

    // MCP progress → PROGRESS, as it happens.
    let mut inv = client.invoke("stream", map(&[("n", Value::from(5)), ("delay_ms", Value::from(30))])).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = inv.next().await {
        out.extend_from_slice(&chunk);
    }
    // Progress is advisory (SPEC §6.4) and rmcp may hand the answer over
    // before the last notification: the latest one seen, not necessarily 5.
    let last = inv.progress().cloned().expect("progress arrived");
    assert_eq!(last.total, Some(5.0));
    assert_eq!(last.message, Some(format!("chunk {}", last.progress as u64 - 1)));
    assert_eq!(out, b"streamed 5");
    inv.result().await.unwrap();

    // Errors keep their meaning.
    let (_, failed) = call(client, "fail", Value::Nil).await;
    let failed = failed.unwrap_err();
    assert_eq!((failed.code, failed.message.as_str()), (ErrorCode::TOOL_FAILED, "it failed on purpose"));
    assert_eq!(call(client, "invalid", Value::Nil).await.1.unwrap_err().code, ErrorCode::INVALID_ARGUMENTS);
    assert_eq!(call(client, "echo", Value::from(3)).await.1.unwrap_err().code, ErrorCode::INVALID_ARGUMENTS);
    assert_eq!(call(client, "no_such_tool", Value::Nil).await.1.unwrap_err().code, ErrorCode::UNKNOWN_TOOL);

    // INTERRUPT → notifications/cancelled: the MCP server saw it.
    let before: u64 = call(client, "cancellations", Value::Nil).await.0.parse().unwrap();
    let slow = client.invoke("slow", map(&[("ms", Value::from(20_000))])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    slow.interrupt();
    assert_eq!(slow.result().await.unwrap_err().code, ErrorCode::CANCELLED);
    eventually("the MCP server to see the cancellation", || async {
        call(client, "cancellations", Value::Nil).await.0.parse::<u64>().unwrap() == before + 1
    })
    .await;

    // tools/list_changed → TOOL_DEF, both ways of changing.
    let mut changes = client.tool_changes();
    call(client, "add_tool", map(&[("name", Value::from("fresh"))])).await.1.unwrap();
    tokio::time::timeout(Duration::from_secs(10), changes.next()).await.expect("a TOOL_DEF push");
    eventually("`fresh` to be listed", || async { client.peer_tools().iter().any(|t| t.name == "fresh") }).await;
    assert_eq!(call(client, "fresh", Value::Nil).await, ("fresh".into(), Ok(Value::Nil)));
    call(client, "remove_tool", map(&[("name", Value::from("fresh"))])).await.1.unwrap();
    eventually("`fresh` to go", || async { !client.peer_tools().iter().any(|t| t.name == "fresh") }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_serve_bridges_an_rmcp_server_over_stdio_and_restarts_it() {
    let server = mcp_test_server();
    let bridge = start(
        &asp(),
        &["mcp", "serve", "--plaintext", "--bind", "127.0.0.1:0", "--", server.to_str().unwrap()],
        Stdio::null(),
    );
    let client = connect(&bridge.url).await;
    check_bridge(&client).await;

    // The MCP server dies mid-call: the call fails clearly, the bridge
    // starts it again and the next call works.
    let (_, crashed) = call(&client, "crash", Value::Nil).await;
    let crashed = crashed.unwrap_err();
    assert_eq!(crashed.code, ErrorCode::BACKEND_UNAVAILABLE, "{crashed:?}");
    assert!(crashed.message.contains("MCP server"), "{}", crashed.message);
    eventually("the restarted server to answer", || async {
        call(&client, "echo", map(&[("text", Value::from("again"))])).await.1.is_ok()
    })
    .await;
    assert!(client.peer_tools().iter().any(|t| t.name == "echo"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_serve_bridges_an_rmcp_server_over_streamable_http() {
    let server = start(&mcp_test_server(), &["--http", "127.0.0.1:0"], Stdio::null());
    let bridge =
        start(&asp(), &["mcp", "serve", "--plaintext", "--bind", "127.0.0.1:0", "--url", &server.url], Stdio::null());
    let client = connect(&bridge.url).await;
    check_bridge(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_serve_with_on_exit_exit_stops_when_the_server_dies() {
    let server = mcp_test_server();
    let mut bridge = start(
        &asp(),
        &[
            "mcp",
            "serve",
            "--plaintext",
            "--bind",
            "127.0.0.1:0",
            "--on-exit",
            "exit",
            "--drain-ms",
            "300",
            "--",
            server.to_str().unwrap(),
        ],
        Stdio::piped(),
    );
    let client = connect(&bridge.url).await;
    let (_, crashed) = call(&client, "crash", Value::Nil).await;
    assert_eq!(crashed.unwrap_err().code, ErrorCode::BACKEND_UNAVAILABLE);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = bridge.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "asp mcp serve kept running after its MCP server died");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut bridge.child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("exited"), "{stderr}");
}

/// An rmcp client that counts what the server tells it.
#[derive(Clone, Default)]
struct Observer {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    list_changed: Arc<AtomicUsize>,
}

impl ClientHandler for Observer {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
    }
}

fn args(value: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::default().with_arguments(value.as_object().unwrap().clone())
}

/// What `asp mcp expose` must do for an rmcp client, whatever the transport.
async fn check_exposed(mcp: &RunningService<RoleClient, Observer>, observer: &Observer, metrics: &str) {
    let names: Vec<String> = mcp.list_all_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    for tool in ["echo", "tokens", "sleep", "announce"] {
        assert!(names.contains(&tool.to_owned()), "{tool} in {names:?}");
    }

    // STREAM output → progress notifications as it arrives, and the content.
    let mut tokens = args(json!({"n": 5, "delay_ms": 10}));
    tokens.name = "tokens".into();
    let done = mcp.call_tool(tokens).await.unwrap();
    let text: Vec<&str> = done.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect();
    assert_eq!(text[0].split(' ').count(), 5, "{text:?}");
    assert_eq!(text[1], "5", "the result after the output");
    let progress = observer.progress.lock().unwrap().clone();
    assert_eq!(progress.len(), 5, "{progress:?}");
    assert_eq!(progress.iter().map(|p| p.message.clone().unwrap()).collect::<String>(), text[0]);
    assert_eq!(progress.iter().map(|p| p.progress).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0, 4.0, 5.0]);

    // A map result is structured content; an unknown tool is invalid params.
    let mut echo = args(json!({"x": 1, "bytes": "ok"}));
    echo.name = "echo".into();
    let echoed = mcp.call_tool(echo).await.unwrap();
    assert_eq!(echoed.structured_content, Some(json!({"x": 1, "bytes": "ok"})));
    let mut unknown = CallToolRequestParams::default();
    unknown.name = "no_such_tool".into();
    match mcp.call_tool(unknown).await {
        Err(rmcp::service::ServiceError::McpError(e)) => assert_eq!(e.code.0, -32602),
        other => panic!("expected invalid params, got {other:?}"),
    }

    // TOOL_DEF (announce pushes one to this connection) → tools/list_changed.
    let before = observer.list_changed.load(Ordering::SeqCst);
    let mut announce = args(json!({"name": "pushed"}));
    announce.name = "announce".into();
    mcp.call_tool(announce).await.unwrap();
    eventually("tools/list_changed", || async { observer.list_changed.load(Ordering::SeqCst) > before }).await;
    let names: Vec<String> = mcp.list_all_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"pushed".to_owned()), "{names:?}");

    // notifications/cancelled → INTERRUPT: the agent's handler is stopped.
    let mut sleep = args(json!({"ms": 20_000}));
    sleep.name = "sleep".into();
    let handle = mcp
        .peer()
        .send_request_with_option(
            ClientRequest::CallToolRequest(CallToolRequest::new(sleep)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.cancel(Some("enough".into())).await.unwrap();
    let metrics = metrics.to_owned();
    eventually("the agent to count an interrupted sleep", || {
        let metrics = metrics.clone();
        async move {
            let text = reqwest_free_get(&metrics).await;
            text.contains(r#"asp_invocations_total{tool="sleep",outcome="interrupted"}"#)
        }
    })
    .await;
}

/// GET http://ADDR/metrics with a plain TCP exchange (HTTP/1.0).
async fn reqwest_free_get(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else { return String::new() };
    let _ = tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await;
    let mut body = String::new();
    let _ = tcp.read_to_string(&mut body).await;
    body
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_expose_serves_the_demo_agent_to_an_rmcp_client_over_stdio() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let agent = start(&asp(), &["serve", "--plaintext", "--bind", "127.0.0.1:0", "--metrics", &metrics], Stdio::null());
    let mut command = tokio::process::Command::new(asp());
    command.args(["mcp", "expose", &agent.url, "--plaintext"]);
    let observer = Observer::default();
    let mcp = observer.clone().serve(TokioChildProcess::new(command).unwrap()).await.expect("MCP over stdio");
    check_exposed(&mcp, &observer, &metrics).await;
    mcp.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_expose_serves_the_demo_agent_over_streamable_http() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let agent = start(&asp(), &["serve", "--plaintext", "--bind", "127.0.0.1:0", "--metrics", &metrics], Stdio::null());
    let exposed = start(&asp(), &["mcp", "expose", &agent.url, "--plaintext", "--http", "127.0.0.1:0"], Stdio::null());
    let mcp_url = exposed.url.clone();
    assert!(mcp_url.starts_with("http://127.0.0.1:") && mcp_url.ends_with("/mcp"), "{mcp_url}");
    // rmcp's HTTP client (reqwest) uses rustls' process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let observer = Observer::default();
    let mcp = observer
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(mcp_url))
        .await
        .expect("MCP over Streamable HTTP");
    check_exposed(&mcp, &observer, &metrics).await;
    mcp.cancel().await.unwrap();
}
