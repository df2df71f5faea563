//! MCP server → ASP agent (`asp mcp serve`): the MCP server's tools become
//! the tools of an ASP server, kept in step with `tools/list_changed`; each
//! INVOKE becomes a `tools/call`, its progress PROGRESS, an INTERRUPT
//! `notifications/cancelled`. A server that exits fails every open call
//! with `BACKEND_UNAVAILABLE` and is restarted, or ends the bridge.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use asp_driver::{ToolContext, ToolError, ToolRegistry};
use asp_proto::{ErrorCode, ToolSpec, Value};
use rmcp::model::{CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientRequest, ServerResult};
use rmcp::service::PeerRequestOptions;
use rmcp::{Peer, RoleClient};
use tokio::sync::{mpsc, watch};

use crate::mapping;
use crate::upstream::{self, McpServer, Upstream};
use crate::BridgeError;

/// What the bridge does when the MCP server exits or its connection ends.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum OnExit {
    /// Start it again (after 0.25 s, doubling up to 5 s while it keeps
    /// failing); calls made meanwhile fail with `BACKEND_UNAVAILABLE`.
    #[default]
    Restart,
    /// Stop: [`McpBridge::exited`] returns the reason.
    Exit,
}

/// Starts an [`McpBridge`].
#[derive(Clone, Debug)]
pub struct McpBridgeBuilder {
    server: McpServer,
    on_exit: OnExit,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl McpBridgeBuilder {
    /// A bridge to `server`, restarting it when it exits.
    pub fn new(server: McpServer) -> Self {
        McpBridgeBuilder { server, on_exit: OnExit::Restart, tls: None }
    }

    /// What to do when the MCP server exits.
    pub fn on_exit(mut self, on_exit: OnExit) -> Self {
        self.on_exit = on_exit;
        self
    }

    /// TLS for an `https://` MCP server (default: the webpki roots).
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Connects to the MCP server, puts its tools into `registry` (an ASP
    /// server's, [`Server::tools`](asp_driver::Server::tools): do this
    /// before the server takes clients, so that their HELLO has the tools),
    /// and keeps them in step from then on.
    pub async fn start(self, registry: ToolRegistry) -> Result<McpBridge, BridgeError> {
        let tls = match self.tls {
            Some(tls) => tls,
            None => asp_driver::tls::client_config(None)
                .map_err(|e| BridgeError::Connect { server: self.server.to_string(), reason: e.to_string() })?,
        };
        let (upstream, running, changes) = upstream::connect(&self.server, &tls).await?;
        let shared = Arc::new(Shared { current: RwLock::new(Some(upstream.clone())), registry });
        shared.refresh(&upstream).await?;
        let (exit_tx, exit_rx) = watch::channel(None);
        let supervisor = Supervisor { shared, server: self.server, on_exit: self.on_exit, tls, exit: exit_tx };
        tokio::spawn(supervisor.run(running, changes));
        Ok(McpBridge { exit: exit_rx })
    }
}

/// A running bridge. Dropping it leaves the bridge running as long as the
/// registry's server does.
#[derive(Debug)]
pub struct McpBridge {
    exit: watch::Receiver<Option<BridgeError>>,
}

impl McpBridge {
    /// Waits until the bridge gives up: with [`OnExit::Exit`] when the MCP
    /// server exits; never with [`OnExit::Restart`].
    pub async fn exited(mut self) -> BridgeError {
        loop {
            if let Some(error) = self.exit.borrow().clone() {
                return error;
            }
            if self.exit.changed().await.is_err() {
                return BridgeError::Stopped;
            }
        }
    }
}

/// What the supervisor and every tool handler share.
struct Shared {
    /// The connection calls go to; None while the server is down.
    current: RwLock<Option<Arc<Upstream>>>,
    registry: ToolRegistry,
}

impl Shared {
    fn upstream(&self) -> Result<Arc<Upstream>, ToolError> {
        self.current.read().expect("lock").clone().ok_or_else(|| {
            ToolError::new(ErrorCode::BACKEND_UNAVAILABLE, "the MCP server is not running (it exited; restarting)")
        })
    }

    /// Makes the registry the MCP server's tool list: removed tools go,
    /// new and changed ones are added (each change a TOOL_DEF to clients).
    async fn refresh(self: &Arc<Self>, upstream: &Upstream) -> Result<(), BridgeError> {
        let tools = upstream.peer.list_all_tools().await.map_err(|e| BridgeError::ListTools(e.to_string()))?;
        let now: BTreeMap<String, ToolSpec> =
            tools.iter().map(mapping::tool_spec).map(|spec| (spec.name.clone(), spec)).collect();
        for old in self.registry.specs() {
            if !now.contains_key(&old.name) {
                self.registry.remove(&old.name);
            }
        }
        let before: BTreeMap<String, ToolSpec> =
            self.registry.specs().into_iter().map(|spec| (spec.name.clone(), spec)).collect();
        for (name, spec) in now {
            if before.get(&name) != Some(&spec) {
                let shared = self.clone();
                let tool = name.clone();
                self.registry.add(spec, move |ctx: ToolContext, args: Value| {
                    let shared = shared.clone();
                    let tool = tool.clone();
                    async move { shared.call(tool, ctx, args).await }
                });
            }
        }
        Ok(())
    }

    /// One INVOKE as one `tools/call`.
    async fn call(&self, tool: String, ctx: ToolContext, args: Value) -> Result<Value, ToolError> {
        let upstream = self.upstream()?;
        let mut params = CallToolRequestParams::new(tool);
        if let Some(arguments) = mapping::arguments(&args)? {
            params = params.with_arguments(arguments);
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = upstream
            .peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| mapping::service_error(&e))?;
        let (mut progress, _route) = upstream.routes.register(handle.progress_token.clone());
        // Dropped unanswered (INTERRUPT, deadline, the client gone): tell
        // the server, which cancels the call.
        let mut cancel = CancelOnDrop { peer: Some(upstream.peer.clone()), id: handle.id.clone() };
        let answer = handle.await_response();
        tokio::pin!(answer);
        let answer = loop {
            tokio::select! {
                answer = &mut answer => break answer,
                Some(update) = progress.recv() => {
                    // Advisory (SPEC §6.4): a refused update is not an error.
                    let _ = ctx.progress(mapping::progress(&update));
                }
            }
        };
        cancel.peer = None;
        // rmcp runs each notification's handler as a task of its own, so the
        // answer can overtake the last progress: give those tasks a turn.
        for _ in 0..3 {
            tokio::task::yield_now().await;
            while let Ok(update) = progress.try_recv() {
                let _ = ctx.progress(mapping::progress(&update));
            }
        }
        match answer {
            Ok(ServerResult::CallToolResult(result)) => {
                let outcome = mapping::outcome(&result);
                for chunk in outcome.output {
                    ctx.send(chunk).await?;
                }
                outcome.result
            }
            Ok(_) => {
                Err(ToolError::new(ErrorCode::TOOL_FAILED, "the MCP server answered tools/call with another type"))
            }
            Err(e) => Err(mapping::service_error(&e)),
        }
    }
}

/// Sends `notifications/cancelled` for a call dropped before its answer.
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: rmcp::model::RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.take() {
            let id = self.id.clone();
            tokio::spawn(async move {
                let reason = Some("interrupted by the ASP invoker".to_owned());
                let _ = peer.notify_cancelled(CancelledNotificationParam::new(Some(id), reason)).await;
            });
        }
    }
}

/// Watches the MCP server: refreshes tools on change, and on exit restarts
/// it or reports.
struct Supervisor {
    shared: Arc<Shared>,
    server: McpServer,
    on_exit: OnExit,
    tls: Arc<rustls::ClientConfig>,
    exit: watch::Sender<Option<BridgeError>>,
}

const RESTART_MIN: Duration = Duration::from_millis(250);
const RESTART_MAX: Duration = Duration::from_secs(5);

impl Supervisor {
    async fn run(
        self,
        mut running: rmcp::service::RunningService<RoleClient, upstream::BridgeClient>,
        mut changes: mpsc::UnboundedReceiver<()>,
    ) {
        loop {
            let upstream = self.shared.current.read().expect("lock").clone();
            let waiting = running.waiting();
            tokio::pin!(waiting);
            loop {
                tokio::select! {
                    _ = &mut waiting => break,
                    Some(()) = changes.recv() => {
                        while changes.try_recv().is_ok() {}
                        if let Some(upstream) = &upstream {
                            if let Err(e) = self.shared.refresh(upstream).await {
                                tracing::warn!("{}: {e}", self.server);
                            }
                        }
                    }
                }
            }
            *self.shared.current.write().expect("lock") = None;
            tracing::warn!("the MCP server {} exited", self.server);
            if self.on_exit == OnExit::Exit {
                let _ = self.exit.send(Some(BridgeError::Exited { server: self.server.to_string() }));
                return;
            }
            let mut delay = RESTART_MIN;
            (running, changes) = loop {
                tokio::time::sleep(delay).await;
                match upstream::connect(&self.server, &self.tls).await {
                    Ok((upstream, running, changes)) => match self.shared.refresh(&upstream).await {
                        Ok(()) => {
                            *self.shared.current.write().expect("lock") = Some(upstream);
                            tracing::info!("the MCP server {} is running again", self.server);
                            break (running, changes);
                        }
                        Err(e) => tracing::warn!("restarting {}: {e}", self.server),
                    },
                    Err(e) => tracing::warn!("restarting {}: {e}", self.server),
                }
                delay = (delay * 2).min(RESTART_MAX);
            };
        }
    }
}
