//! ASP agent → MCP server (`asp mcp expose`): an MCP server whose tools are
//! an ASP agent's, over stdio or Streamable HTTP. `tools/call` is an
//! INVOKE; its STREAM output goes out as progress notifications as it
//! arrives and as the final content; TOOL_DEF pushes are
//! `tools/list_changed`; `notifications/cancelled` is an INTERRUPT.

use std::net::SocketAddr;

use asp_driver::Connection;
use asp_proto::{Invoke, Value};
use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, ServerConfig, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use crate::mapping;
use crate::BridgeError;

/// An ASP connection served as an MCP server. Cheap to clone: every MCP
/// session shares the one ASP connection (which reconnects by itself).
#[derive(Clone, Debug)]
pub struct ExposedAgent {
    conn: Connection,
}

impl ExposedAgent {
    /// Serves the tools of the agent `conn` is connected to.
    pub fn new(conn: Connection) -> Self {
        ExposedAgent { conn }
    }

    /// Serves one MCP client on this process's stdin and stdout until it
    /// closes them.
    pub async fn serve_stdio(self) -> Result<(), BridgeError> {
        let running = self.serve(rmcp::transport::stdio()).await.map_err(|e| BridgeError::Mcp(e.to_string()))?;
        running.waiting().await.map_err(|e| BridgeError::Mcp(e.to_string()))?;
        Ok(())
    }

    /// Serves MCP clients over Streamable HTTP at `http://{listener}/mcp`
    /// until the future is dropped.
    pub async fn serve_http(self, listener: tokio::net::TcpListener) -> Result<(), BridgeError> {
        let service: StreamableHttpService<ExposedAgent, LocalSessionManager> = StreamableHttpService::new(
            move || Ok(self.clone()),
            Default::default(),
            StreamableHttpServerConfig::default(),
        );
        let router = axum::Router::new().nest_service("/mcp", service);
        axum::serve(listener, router).await.map_err(|e| BridgeError::Mcp(e.to_string()))
    }

    /// Binds `addr` for [`serve_http`](Self::serve_http), returning the
    /// endpoint's URL with the listener.
    pub async fn bind_http(addr: SocketAddr) -> Result<(String, tokio::net::TcpListener), BridgeError> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| BridgeError::Mcp(format!("bind {addr}: {e}")))?;
        let url = format!("http://{}/mcp", listener.local_addr().map_err(|e| BridgeError::Mcp(e.to_string()))?);
        Ok((url, listener))
    }
}

fn unavailable(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("the ASP agent could not be reached: {e}"), None)
}

impl ServerHandler for ExposedAgent {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_tool_list_changed().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.conn.peer_tools().iter().map(mapping::mcp_tool).collect()))
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        (requested.tools_list_changed == Some(true)).then(|| SubscriptionFilter::builder().tools_list_changed().build())
    }

    /// A 2026-07-28 client's `subscriptions/listen`: each TOOL_DEF from the
    /// agent is a `tools/list_changed` on it.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.conn.tool_changes();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                change = changes.next() => match change {
                    Some(()) => {
                        if context.sink().notify_tool_list_changed().await.is_err() {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    /// A client on an older protocol (with `initialize`) hears of changes
    /// without subscribing.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.conn.tool_changes();
        let peer = context.peer;
        tokio::spawn(async move {
            while changes.next().await.is_some() {
                if peer.notify_tool_list_changed().await.is_err() {
                    return;
                }
            }
        });
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request
            .arguments
            .map(|object| mapping::json_to_value(&serde_json::Value::Object(object)))
            .unwrap_or(Value::Nil);
        let mut inv = self.conn.invoke_with(Invoke::new(request.name.to_string(), args)).await.map_err(unavailable)?;
        let token = context.meta.get_progress_token();
        let mut output = Vec::new();
        let mut sent = 0u64;
        loop {
            let chunk = tokio::select! {
                chunk = inv.next() => chunk,
                // notifications/cancelled: dropping `inv` sends INTERRUPT.
                () = context.ct.cancelled() => return Err(ErrorData::internal_error("cancelled", None)),
            };
            let Some(chunk) = chunk else { break };
            output.extend_from_slice(&chunk);
            let Some(token) = &token else { continue };
            // One notification per chunk: `progress` counts them (MCP wants
            // it to grow), the message is the chunk's text.
            sent += 1;
            let update = ProgressNotificationParam::new(token.clone(), sent as f64)
                .with_message(String::from_utf8_lossy(&chunk).into_owned());
            if context.peer.notify_progress(update).await.is_err() {
                break;
            }
        }
        let end = inv.result().await.map(|done| done.result);
        mapping::call_result(&output, end).map(Into::into)
    }
}
