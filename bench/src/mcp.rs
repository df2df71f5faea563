//! MCP with the official Rust SDK, `rmcp`, over Streamable HTTP: its server
//! on axum/hyper, its reqwest client. `echo` answers a `tools/call` with the
//! text it got; `stream` sends its chunks as progress notifications (MCP's
//! closest thing to streamed output), then answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};

use crate::echo::Echo;
use crate::PAYLOAD;

#[derive(Clone)]
pub(crate) struct BenchServer {
    pub(crate) chunks: usize,
}

impl ServerHandler for BenchServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let object = Arc::new(serde_json::json!({"type": "object"}).as_object().expect("object").clone());
        Ok(ListToolsResult::with_all_items(vec![
            Tool::new("echo", "Returns `data` as text", object.clone()),
            Tool::new("stream", "Sends progress notifications, then `done`", object),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match request.name.as_ref() {
            "echo" => {
                let text = request
                    .arguments
                    .as_ref()
                    .and_then(|a| a.get("data"))
                    .and_then(|d| d.as_str())
                    .unwrap_or_default()
                    .to_owned();
                Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
            }
            "stream" => {
                let token =
                    context.meta.get_progress_token().ok_or_else(|| ErrorData::invalid_params("no token", None))?;
                let chunk = "x".repeat(PAYLOAD);
                for i in 0..self.chunks {
                    context
                        .peer
                        .notify_progress(ProgressNotificationParam::new(token.clone(), i as f64).with_message(&chunk))
                        .await
                        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                }
                Ok(CallToolResult::success(vec![ContentBlock::text("done")]).into())
            }
            _ => Err(ErrorData::invalid_params("unknown tool", None)),
        }
    }
}

/// Starts an rmcp Streamable HTTP server; returns its URL.
pub(crate) async fn serve(chunks: usize) -> String {
    let config = StreamableHttpServerConfig::default().with_sse_keep_alive(None);
    let service: StreamableHttpService<BenchServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(BenchServer { chunks }), Default::default(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Without TCP_NODELAY a keep-alive connection waits ~40 ms per call on
    // delayed ACKs (the SSE response goes out in several small writes).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/mcp")
}

/// Serves `BenchServer` on this process's stdin and stdout (the bridge
/// rows start this binary as an MCP server with `--mcp-stdio-server N`).
pub(crate) async fn serve_stdio(chunks: usize) {
    let running = BenchServer { chunks }.serve(rmcp::transport::stdio()).await.expect("MCP over stdio");
    let _ = running.waiting().await;
}

/// Counts progress notifications as they arrive, and wakes whoever waits
/// for the next one.
#[derive(Clone, Default)]
struct Progress {
    count: Arc<AtomicUsize>,
    arrived: Arc<tokio::sync::Notify>,
}

impl ClientHandler for Progress {
    async fn on_progress(&self, _params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.arrived.notify_one();
    }
}

/// Which HTTP client the MCP client uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HttpClient {
    /// rmcp's default (`from_uri`): no idle connections kept.
    Default,
    /// A reqwest client with its default keep-alive pool.
    KeepAlive,
}

/// An rmcp client, initialized.
pub(crate) struct McpClient {
    service: RunningService<RoleClient, Progress>,
    progress: Arc<AtomicUsize>,
    arrived: Arc<tokio::sync::Notify>,
    /// The `data` string `echo` sends.
    payload: String,
}

impl McpClient {
    /// Echoes a string of `size` characters instead of 32.
    pub(crate) fn with_payload(mut self, size: usize) -> Self {
        self.payload = "7".repeat(size);
        self
    }

    pub(crate) async fn connect(url: &str, http: HttpClient) -> McpClient {
        let transport = match http {
            HttpClient::Default => StreamableHttpClientTransport::from_uri(url.to_owned()),
            HttpClient::KeepAlive => StreamableHttpClientTransport::with_client(
                reqwest::Client::new(),
                StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
            ),
        };
        McpClient::over(transport).await
    }

    /// A client of an MCP server started as a child process (stdio).
    pub(crate) async fn child(command: tokio::process::Command) -> McpClient {
        McpClient::over(rmcp::transport::TokioChildProcess::new(command).expect("start the MCP server")).await
    }

    async fn over<T, E, A>(transport: T) -> McpClient
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let handler = Progress::default();
        let (progress, arrived) = (handler.count.clone(), handler.arrived.clone());
        let service = handler.serve(transport).await.expect("MCP initialize");
        McpClient { service, progress, arrived, payload: "7".repeat(PAYLOAD) }
    }

    /// Calls `stream` and returns how long its first progress notification
    /// took to arrive (then lets the call finish).
    pub(crate) async fn first_progress(&self) -> Duration {
        let started = Instant::now();
        let call = self.service.call_tool(CallToolRequestParams::new("stream"));
        tokio::pin!(call);
        // rmcp runs notification handlers as tasks of their own: the answer
        // can be handed over before the first progress is.
        let (first, finished) = tokio::select! {
            () = self.arrived.notified() => (started.elapsed(), false),
            done = &mut call => {
                done.expect("tools/call");
                self.arrived.notified().await;
                (started.elapsed(), true)
            }
        };
        if !finished {
            call.await.expect("tools/call");
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // stragglers
        while self.arrived.notified().now_or_never().is_some() {}
        first
    }

    /// Calls `stream` and counts its progress notifications; chunks/s.
    pub(crate) async fn stream(&self, chunks: usize) -> f64 {
        let before = self.progress.load(Ordering::SeqCst);
        let started = Instant::now();
        let done = self.service.call_tool(CallToolRequestParams::new("stream")).await.expect("tools/call");
        assert_ne!(done.is_error, Some(true));
        // Notifications are handled as they arrive; wait for the last ones.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.progress.load(Ordering::SeqCst) - before < chunks && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let elapsed = started.elapsed();
        assert_eq!(self.progress.load(Ordering::SeqCst) - before, chunks, "every progress notification arrived");
        chunks as f64 / elapsed.as_secs_f64()
    }
}

impl Echo for McpClient {
    fn echo(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let data = &self.payload;
            let args = serde_json::json!({ "data": data });
            let params = CallToolRequestParams::new("echo").with_arguments(args.as_object().expect("object").clone());
            let done = self.service.call_tool(params).await.expect("tools/call");
            let text = done.content.first().and_then(|c| c.as_text()).map(|t| t.text.as_str());
            assert_eq!(text, Some(data.as_str()));
        })
    }
}
