//! The MCP client side of `asp mcp serve`: connecting to the MCP server (a
//! child process over stdio, or Streamable HTTP), routing its progress
//! notifications to the call they belong to, and hearing that its tool
//! list changed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rmcp::model::{ProgressNotificationParam, ProgressToken, ServerNotification, SubscriptionFilter};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::sync::mpsc;

use crate::BridgeError;

/// Where the MCP server behind `asp mcp serve` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum McpServer {
    /// A program started as a child process, speaking MCP on its stdin and
    /// stdout (its stderr is ours).
    Command {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A Streamable HTTP endpoint, e.g. `http://127.0.0.1:8000/mcp`.
    Url(String),
}

impl std::fmt::Display for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpServer::Command { program, args } if args.is_empty() => write!(f, "`{program}`"),
            McpServer::Command { program, args } => write!(f, "`{program} {}`", args.join(" ")),
            McpServer::Url(url) => f.write_str(url),
        }
    }
}

/// Progress notifications that arrived before their call registered its
/// token (the answer can overtake our bookkeeping), at most this many.
const ORPHANS_MAX: usize = 256;

/// Progress token → the call waiting for its notifications.
#[derive(Default)]
pub(crate) struct Routes {
    inner: Mutex<RoutesInner>,
}

#[derive(Default)]
struct RoutesInner {
    routes: HashMap<ProgressToken, mpsc::UnboundedSender<ProgressNotificationParam>>,
    orphans: VecDeque<ProgressNotificationParam>,
}

impl Routes {
    /// Starts routing `token`'s notifications (any that came early first);
    /// the route ends when the returned guard drops.
    pub(crate) fn register(
        self: &Arc<Self>,
        token: ProgressToken,
    ) -> (mpsc::UnboundedReceiver<ProgressNotificationParam>, RouteGuard) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock().expect("lock");
        inner.orphans.retain(|early| {
            if early.progress_token == token {
                let _ = tx.send(early.clone());
                false
            } else {
                true
            }
        });
        inner.routes.insert(token.clone(), tx);
        (rx, RouteGuard { routes: self.clone(), token })
    }

    fn deliver(&self, update: ProgressNotificationParam) {
        let mut inner = self.inner.lock().expect("lock");
        match inner.routes.get(&update.progress_token) {
            Some(tx) => {
                let _ = tx.send(update);
            }
            None => {
                if inner.orphans.len() == ORPHANS_MAX {
                    inner.orphans.pop_front();
                }
                inner.orphans.push_back(update);
            }
        }
    }
}

/// Ends a progress route when the call ends.
pub(crate) struct RouteGuard {
    routes: Arc<Routes>,
    token: ProgressToken,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.routes.inner.lock().expect("lock").routes.remove(&self.token);
    }
}

/// Our MCP client's handler: progress to the calls, list changes to the
/// bridge.
#[derive(Clone)]
pub(crate) struct BridgeClient {
    routes: Arc<Routes>,
    changed: mpsc::UnboundedSender<()>,
}

impl ClientHandler for BridgeClient {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.routes.deliver(params);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changed.send(());
    }
}

/// One connection to the MCP server.
pub(crate) struct Upstream {
    pub(crate) peer: Peer<RoleClient>,
    pub(crate) routes: Arc<Routes>,
}

/// Connects, and asks for `tools/list_changed` on a subscription where the
/// server has them (protocol 2026-07-28); older servers send it unasked.
/// Returns the connection, the running service (it ends when the server
/// does) and the change signal.
pub(crate) async fn connect(
    server: &McpServer,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Arc<Upstream>, RunningService<RoleClient, BridgeClient>, mpsc::UnboundedReceiver<()>), BridgeError> {
    let routes = Arc::new(Routes::default());
    let (changed, changes) = mpsc::unbounded_channel();
    let handler = BridgeClient { routes: routes.clone(), changed: changed.clone() };
    let failed = |e: &dyn std::fmt::Display| BridgeError::Connect { server: server.to_string(), reason: e.to_string() };
    let running = match server {
        McpServer::Command { program, args } => {
            let mut command = tokio::process::Command::new(program);
            command.args(args);
            let transport = TokioChildProcess::new(command).map_err(|e| failed(&e))?;
            handler.serve(transport).await.map_err(|e| failed(&e))?
        }
        McpServer::Url(url) => {
            let http =
                reqwest::Client::builder().use_preconfigured_tls((**tls).clone()).build().map_err(|e| failed(&e))?;
            let transport = StreamableHttpClientTransport::with_client(
                http,
                StreamableHttpClientTransportConfig::with_uri(url.clone()),
            );
            handler.serve(transport).await.map_err(|e| failed(&e))?
        }
    };
    let peer = running.peer().clone();
    let filter = SubscriptionFilter::builder().tools_list_changed().build();
    if let Ok(mut subscription) = peer.listen(filter).await {
        tokio::spawn(async move {
            while let Ok(Some(notification)) = subscription.next().await {
                if matches!(notification, ServerNotification::ToolListChangedNotification(_))
                    && changed.send(()).is_err()
                {
                    return;
                }
            }
        });
    }
    Ok((Arc::new(Upstream { peer, routes }), running, changes))
}
