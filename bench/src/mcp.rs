//! MCP with the official Rust SDK, `rmcp`, over Streamable HTTP: its server
//! on axum/hyper, its reqwest client. `echo` answers a `tools/call` with the
//! text it got; `stream` sends its chunks as progress notifications (MCP's
//! closest thing to streamed output), then answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ProgressNotificationParam,
    ServerCapabilities, ServerConfig,
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
struct BenchServer {
    chunks: usize,
}

impl ServerHandler for BenchServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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

/// Counts progress notifications as they arrive.
#[derive(Clone, Default)]
struct Progress {
    count: Arc<AtomicUsize>,
}

impl ClientHandler for Progress {
    async fn on_progress(&self, _params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.count.fetch_add(1, Ordering::Relaxed);
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
}

impl McpClient {
    pub(crate) async fn connect(url: &str, http: HttpClient) -> McpClient {
        let transport = match http {
            HttpClient::Default => StreamableHttpClientTransport::from_uri(url.to_owned()),
            HttpClient::KeepAlive => StreamableHttpClientTransport::with_client(
                reqwest::Client::new(),
                StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
            ),
        };
        let handler = Progress::default();
        let progress = handler.count.clone();
        let service = handler.serve(transport).await.expect("MCP initialize");
        McpClient { service, progress }
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
            let data = "7".repeat(PAYLOAD);
            let args = serde_json::json!({ "data": data });
            let params = CallToolRequestParams::new("echo").with_arguments(args.as_object().expect("object").clone());
            let done = self.service.call_tool(params).await.expect("tools/call");
            let text = done.content.first().and_then(|c| c.as_text()).map(|t| t.text.as_str());
            assert_eq!(text, Some(data.as_str()));
        })
    }
}
