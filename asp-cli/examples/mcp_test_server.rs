//! An MCP server on the official Rust SDK (rmcp) with a tool for each thing
//! the bridge maps: what `asp mcp serve`'s tests run behind it, and a quick
//! way to try the bridge:
//!
//! ```sh
//! cargo build -p asp-cli --example mcp_test_server
//! asp mcp serve --plaintext --bind 127.0.0.1:9443 -- target/debug/examples/mcp_test_server
//! asp invoke ws://127.0.0.1:9443/v1/agent-socket --plaintext stream '{"n": 5}'
//! ```
//!
//! Over stdio by default; `--http ADDR` serves Streamable HTTP at
//! `http://ADDR/mcp` instead (it prints `listening http://ADDR/mcp`).
//!
//! Tools: `echo {text}` (text content), `stream {n, delay_ms}` (n progress
//! notifications with messages, then text), `structured {a, b}`
//! (structuredContent), `picture` (an image and a text item), `fail`
//! (`isError`), `invalid` (a JSON-RPC invalid-params error), `slow {ms}`
//! (waits; counts the cancellations it sees), `cancellations` (that count),
//! `add_tool {name}` / `remove_tool {name}` (change the list and notify
//! `tools/list_changed`), `crash` (exits the process mid-call, after one
//! progress notification).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};

/// What every session of the server shares.
#[derive(Default)]
struct Shared {
    /// Tools added with `add_tool`.
    dynamic: Mutex<BTreeSet<String>>,
    /// `subscriptions/listen` streams asking for tools/list_changed (2026-07-28).
    sinks: Mutex<Vec<SubscriptionSink>>,
    /// Sessions on older protocol versions, told without a subscription.
    legacy: Mutex<Vec<Peer<RoleServer>>>,
    cancellations: AtomicU64,
}

#[derive(Clone, Default)]
struct TestServer {
    shared: Arc<Shared>,
}

fn schema(value: Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().expect("a schema is an object").clone())
}

fn object() -> Arc<JsonObject> {
    schema(json!({"type": "object"}))
}

fn arg<'a>(request: &'a CallToolRequestParams, key: &str) -> Option<&'a Value> {
    request.arguments.as_ref().and_then(|a| a.get(key))
}

impl TestServer {
    fn tools(&self) -> Vec<Tool> {
        let mut tools = vec![
            Tool::new(
                "echo",
                "Returns `text` as text content",
                schema(json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})),
            ),
            Tool::new(
                "stream",
                "Sends n progress notifications, delay_ms apart, then text",
                schema(
                    json!({"type": "object", "properties": {"n": {"type": "integer"}, "delay_ms": {"type": "integer"}}}),
                ),
            ),
            Tool::new("structured", "Returns {sum: a + b} as structured content", object()),
            Tool::new("picture", "Returns an image and a caption", object()),
            Tool::new("fail", "Fails with isError", object()),
            Tool::new("invalid", "Answers with a JSON-RPC invalid-params error", object()),
            Tool::new("slow", "Waits ms milliseconds", object()),
            Tool::new("cancellations", "How many calls were cancelled", object()),
            Tool::new("add_tool", "Adds a tool named `name`", object()),
            Tool::new("remove_tool", "Removes the tool named `name`", object()),
            Tool::new("crash", "Exits the server mid-call", object()),
        ];
        for name in self.shared.dynamic.lock().expect("lock").iter() {
            tools.push(Tool::new(name.clone(), "Added by add_tool; returns its name", object()));
        }
        tools
    }

    /// `notifications/tools/list_changed` to every session that wants it.
    async fn tools_changed(&self) {
        let sinks = self.shared.sinks.lock().expect("lock").clone();
        for sink in sinks {
            let _ = sink.notify_tool_list_changed().await;
        }
        let peers = self.shared.legacy.lock().expect("lock").clone();
        for peer in peers {
            let _ = peer.notify_tool_list_changed().await;
        }
    }
}

fn text(t: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::text(t)]).into())
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        (requested.tools_list_changed == Some(true)).then(|| SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.shared.sinks.lock().expect("lock").push(context.sink().clone());
        context.cancelled().await;
        Ok(())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.shared.legacy.lock().expect("lock").push(context.peer);
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let token = context.meta.get_progress_token();
        match request.name.as_ref() {
            "echo" => text(arg(&request, "text").and_then(Value::as_str).unwrap_or_default()),
            "stream" => {
                let n = arg(&request, "n").and_then(Value::as_u64).unwrap_or(3);
                let delay = Duration::from_millis(arg(&request, "delay_ms").and_then(Value::as_u64).unwrap_or(0));
                let token = token.ok_or_else(|| ErrorData::invalid_params("stream needs a progress token", None))?;
                for i in 0..n {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let update = ProgressNotificationParam::new(token.clone(), (i + 1) as f64)
                        .with_total(n as f64)
                        .with_message(format!("chunk {i}"));
                    context
                        .peer
                        .notify_progress(update)
                        .await
                        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                }
                text(format!("streamed {n}"))
            }
            "structured" => {
                let a = arg(&request, "a").and_then(Value::as_i64).unwrap_or(0);
                let b = arg(&request, "b").and_then(Value::as_i64).unwrap_or(0);
                Ok(CallToolResult::structured(json!({"sum": a + b})).into())
            }
            "picture" => Ok(CallToolResult::success(vec![
                ContentBlock::text("a picture:"),
                ContentBlock::image("iVBORw0KGgo=", "image/png"),
            ])
            .into()),
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text("it failed on purpose")]).into()),
            "invalid" => Err(ErrorData::invalid_params("`x` must be a number", None)),
            "slow" => {
                let ms = arg(&request, "ms").and_then(Value::as_u64).unwrap_or(10_000);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => text(format!("slept {ms}")),
                    () = context.ct.cancelled() => {
                        self.shared.cancellations.fetch_add(1, Ordering::SeqCst);
                        Err(ErrorData::internal_error("cancelled", None))
                    }
                }
            }
            "cancellations" => text(self.shared.cancellations.load(Ordering::SeqCst).to_string()),
            "add_tool" | "remove_tool" => {
                let name = arg(&request, "name").and_then(Value::as_str).unwrap_or("added").to_owned();
                {
                    let mut dynamic = self.shared.dynamic.lock().expect("lock");
                    if request.name == "add_tool" {
                        dynamic.insert(name.clone());
                    } else {
                        dynamic.remove(&name);
                    }
                }
                self.tools_changed().await;
                text(name)
            }
            "crash" => {
                if let Some(token) = token {
                    let _ = context.peer.notify_progress(ProgressNotificationParam::new(token, 1.0)).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::process::exit(3);
            }
            other if self.shared.dynamic.lock().expect("lock").contains(other) => text(other),
            other => Err(ErrorData::invalid_params(format!("unknown tool {other}"), None)),
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server = TestServer::default();
    match args.iter().position(|a| a == "--http").and_then(|i| args.get(i + 1)) {
        Some(addr) => serve_http(server, addr).await,
        None => {
            let running = server.serve(rmcp::transport::stdio()).await.expect("MCP over stdio");
            let _ = running.waiting().await;
        }
    }
}

async fn serve_http(server: TestServer, addr: &str) {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
    let service: StreamableHttpService<TestServer, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(server.clone()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening http://{}/mcp", listener.local_addr().expect("address"));
    axum::serve(listener, router).await.expect("serve");
}
