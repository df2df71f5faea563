//! Tools this side offers: async handlers, their registry, and the context a
//! handler streams through.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use asp_proto::{ErrorCode, ErrorInfo, Progress, RequestId, ToolOp, ToolSet, ToolSpec, Value};
use bytes::Bytes;

use crate::command::Command;
use crate::connection::Connection;
use crate::error::ConnectionError;
use crate::BoxFuture;

/// Why a tool failed; becomes the invocation's ERROR frame. It is
/// asp-proto's [`ErrorInfo`]: `ToolError::failed(..)` (`TOOL_FAILED`),
/// `ToolError::invalid_arguments(..)`, or `ToolError::new(code, ..)` with an
/// application code (900+), optionally `.with_data(..)`.
pub type ToolError = ErrorInfo;

impl From<ConnectionError> for ErrorInfo {
    fn from(e: ConnectionError) -> Self {
        ErrorInfo::new(ErrorCode::SESSION_LOST, e.to_string())
    }
}

/// An async tool handler. Any `Fn(ToolContext, Value) -> impl Future<Output
/// = Result<Value, ToolError>>` is one.
pub trait Tool: Send + Sync + 'static {
    /// Runs the tool; output goes through `ctx`, the result is returned.
    fn call(&self, ctx: ToolContext, args: Value) -> BoxFuture<Result<Value, ToolError>>;
}

impl<F, Fut> Tool for F
where
    F: Fn(ToolContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
{
    fn call(&self, ctx: ToolContext, args: Value) -> BoxFuture<Result<Value, ToolError>> {
        Box::pin(self(ctx, args))
    }
}

#[derive(Default)]
struct RegistryInner {
    /// The handlers by name (their specs are in `set`).
    tools: BTreeMap<String, Arc<dyn Tool>>,
    /// The specs of `tools` as one shared set: every connection's session
    /// starts from a clone of it (one copy for all, see [`ToolSet`]).
    set: ToolSet,
    /// Connections to tell when the set changes.
    subscribers: Vec<Connection>,
}

/// The tools one side offers, shared by all its connections. Adding or
/// removing a tool tells every open connection (TOOL_DEF).
///
/// ```
/// # use asp_driver::{ToolContext, ToolError, ToolRegistry};
/// # use asp_proto::{ToolSpec, Value};
/// let tools = ToolRegistry::new();
/// tools.add(ToolSpec::named("ping"), |_ctx: ToolContext, _args: Value| async move {
///     Ok::<_, ToolError>(Value::from("pong"))
/// });
/// assert_eq!(tools.specs()[0].name, "ping");
/// tools.remove("ping");
/// assert!(tools.specs().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct ToolRegistry {
    inner: Arc<Mutex<RegistryInner>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.specs().iter().map(|t| &t.name)).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        ToolRegistry::default()
    }

    /// Adds (or replaces) a tool and announces it to every open connection.
    pub fn add(&self, spec: ToolSpec, tool: impl Tool) {
        let mut inner = self.inner.lock().expect("lock");
        inner.tools.insert(spec.name.clone(), Arc::new(tool));
        inner.set.apply(ToolOp::Add, [spec.clone()]);
        inner.subscribers.retain(|c| c.push_tools(ToolOp::Add, vec![spec.clone()]).is_ok());
    }

    /// Removes a tool and tells every open connection.
    pub fn remove(&self, name: &str) {
        let mut inner = self.inner.lock().expect("lock");
        inner.tools.remove(name);
        inner.set.apply(ToolOp::Remove, [ToolSpec::named(name)]);
        inner.subscribers.retain(|c| c.push_tools(ToolOp::Remove, vec![ToolSpec::named(name)]).is_ok());
    }

    /// The tools' descriptions, in name order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.inner.lock().expect("lock").set.iter().cloned().collect()
    }

    /// The tools' descriptions as a [`ToolSet`] that shares its contents
    /// with the registry's (what a new connection announces).
    pub fn tool_set(&self) -> ToolSet {
        self.inner.lock().expect("lock").set.clone()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.inner.lock().expect("lock").tools.get(name).cloned()
    }

    /// Tells `conn` of changes from now on. Connections that have ended
    /// are dropped here too, so a registry shared by a long-running server
    /// holds only the connections that are open.
    pub(crate) fn subscribe(&self, conn: &Connection) {
        let mut inner = self.inner.lock().expect("lock");
        inner.subscribers.retain(|c| !c.is_closed());
        inner.subscribers.push(conn.clone());
    }

    /// Forgets `conn` (its task is ending).
    pub(crate) fn unsubscribe(&self, conn: &Connection) {
        self.inner.lock().expect("lock").subscribers.retain(|c| !c.same(conn));
    }

    /// Connections it would tell of a change now.
    #[cfg(test)]
    pub(crate) fn subscribers(&self) -> usize {
        self.inner.lock().expect("lock").subscribers.len()
    }
}

/// What a running tool streams through, and what it knows about the call:
/// who made it ([`caller`](Self::caller)), its `meta`, deadline and trace.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub(crate) id: RequestId,
    pub(crate) tool: String,
    pub(crate) request: Arc<Request>,
    pub(crate) conn: Connection,
    /// Which invocation with this id (ids are reused).
    pub(crate) token: u64,
    /// Output handed to the driver and not yet taken by the session.
    pub(crate) outbox: Arc<crate::outbox::Outbox>,
}

/// Output a handler may have queued before `send` waits: enough to let
/// chunks that are ready together go out in one write, small enough that a
/// stalled reader costs little memory. Each chunk counts its length plus a
/// fixed 256 bytes for its bookkeeping, so many tiny chunks are held back by
/// the memory they take.
pub const SEND_BUDGET: usize = 64 * 1024;

/// What an INVOKE said besides the tool and its arguments.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) meta: BTreeMap<String, String>,
    pub(crate) trace: Option<String>,
    pub(crate) deadline: Option<Instant>,
}

impl ToolContext {
    /// The INVOKE's `meta`: string metadata, like HTTP headers.
    pub fn meta(&self) -> &BTreeMap<String, String> {
        &self.request.meta
    }

    /// The INVOKE's `trace`: the caller's W3C `traceparent`, when it sent one.
    pub fn trace(&self) -> Option<&str> {
        self.request.trace.as_deref()
    }

    /// When the caller stops waiting: the INVOKE's `timeout` from its
    /// arrival, on the runtime's clock. The session ends the invocation
    /// with `DEADLINE_EXCEEDED` then (and stops this tool); a tool can use
    /// it to size its own work or calls.
    pub fn deadline(&self) -> Option<Instant> {
        self.request.deadline
    }

    /// Who invoked the tool: the client's token and name, and the identity
    /// the server's auth hook returned
    /// ([`ServerBuilder::authenticate`](crate::ServerBuilder::authenticate)).
    pub fn caller(&self) -> crate::Caller {
        self.conn.caller()
    }

    /// The invocation's request id.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The tool's name.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The connection, e.g. to invoke a tool of the peer (an agent asking
    /// its user).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Streams a chunk of output. Returns at once while no more than
    /// [`SEND_BUDGET`] of this invocation's output waits for flow-control
    /// credit; past that it first waits for room, so a slow reader holds the
    /// tool back and memory stays bounded. Fails with `CANCELLED` once the
    /// invocation has ended.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), ToolError> {
        let ended = || ToolError::new(ErrorCode::CANCELLED, "the invocation has ended");
        self.outbox.room(SEND_BUDGET).await;
        if self.outbox.is_closed() {
            return Err(ended());
        }
        if self.outbox.push(data.into()) {
            self.conn.command(Command::Outbox { id: self.id, token: self.token, outbox: self.outbox.clone() })?;
        }
        Ok(())
    }

    /// Reports progress, e.g. `Progress::new(3.0).total(10.0)`. Never
    /// waits: an update not yet sent is replaced by the next one, and an
    /// update without flow-control credit is dropped (progress is advisory,
    /// SPEC.md §6.4); it is also dropped if the invoker did not ask for
    /// progress. Fails with `CANCELLED` once the invocation has ended.
    pub fn progress(&self, progress: Progress) -> Result<(), ToolError> {
        if self.outbox.is_closed() {
            return Err(ToolError::new(ErrorCode::CANCELLED, "the invocation has ended"));
        }
        if self.outbox.set_progress(progress) {
            self.conn.command(Command::Outbox { id: self.id, token: self.token, outbox: self.outbox.clone() })?;
        }
        Ok(())
    }
}
