//! The application's handle on one connection.

use std::sync::{Arc, Mutex};

use asp_proto::{CloseReason, ErrorCode, ErrorInfo, Invoke, Stats, ToolOp, ToolSet, ToolSpec, Value};
use futures::channel::{mpsc, oneshot};

use crate::command::Command;
use crate::error::ConnectionError;
use crate::invocation::Invocation;

/// What the driver publishes for the handles to read.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) cid: Option<String>,
    pub(crate) peer_tools: ToolSet,
    pub(crate) tool_watchers: Vec<mpsc::UnboundedSender<()>>,
    pub(crate) closed: Option<CloseReason>,
    pub(crate) close_watchers: Vec<oneshot::Sender<CloseReason>>,
    /// Server: lifts the pre-handshake read limit once connected.
    pub(crate) handshake_gate: Option<crate::HandshakeGate>,
    pub(crate) state_watchers: Vec<mpsc::UnboundedSender<ConnectionState>>,
    /// Server: who the client is, once the auth hook accepted it.
    pub(crate) caller: crate::Caller,
}

impl Shared {
    /// Tells every [`Connection::state_changes`] stream.
    pub(crate) fn publish(&mut self, state: ConnectionState) {
        self.state_watchers.retain(|w| w.unbounded_send(state.clone()).is_ok());
    }
}

/// A change in a connection's life, for an application to show (a status
/// line, a "reconnecting…" banner) or act on (connect elsewhere on
/// [`Draining`](Self::Draining)). See [`Connection::state_changes`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The handshake completed and the session is open.
    Connected {
        /// The connection id the server assigned.
        cid: String,
    },
    /// The transport was lost; the client tries again after `delay`
    /// (attempts double their delay from 50 ms up to 2 s, while the
    /// server keeps the session: SPEC §11).
    Reconnecting {
        /// 1 for the first attempt after the loss.
        attempt: u32,
        /// How long this attempt waits before dialling.
        delay: std::time::Duration,
    },
    /// A new transport resumed the session: nothing was lost.
    Resumed {
        /// The connection id (unchanged).
        cid: String,
    },
    /// The peer sent GOAWAY: new invocations fail at once with
    /// `GOING_AWAY`; open ones run to their end, then the peer closes. A
    /// client behind a load balancer connects again to reach another node.
    Draining {
        /// The GOAWAY's explanation, if any.
        message: Option<String>,
    },
    /// The session has ended (for good: with resume it was not resumed in
    /// time).
    Closed(CloseReason),
}

impl std::fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionState::Connected { cid } => write!(f, "connected ({cid})"),
            ConnectionState::Reconnecting { attempt, delay } => {
                write!(f, "connection lost; reconnecting (attempt {attempt}, in {} ms)", delay.as_millis())
            }
            ConnectionState::Resumed { cid } => write!(f, "resumed ({cid})"),
            ConnectionState::Draining { message: Some(m) } => write!(f, "the server is going away: {m}"),
            ConnectionState::Draining { message: None } => write!(f, "the server is going away"),
            ConnectionState::Closed(reason) => write!(f, "closed: {} {}", reason.code, reason.message),
        }
    }
}

/// A handle on one connection, cheap to clone. Commands go to the task that
/// owns the session; nothing here blocks on the network except the futures
/// that say so. A [`Client`](crate::Client) derefs to one; a tool gets its
/// caller's from [`ToolContext::connection`](crate::ToolContext::connection).
///
/// ```no_run
/// # use asp_driver::{Connection, ConnectionState};
/// # use futures::StreamExt;
/// # async fn run(conn: Connection) -> Result<(), Box<dyn std::error::Error>> {
/// for tool in conn.peer_tools() {
///     println!("{}: {}", tool.name, tool.desc.unwrap_or_default());
/// }
/// let mut changes = conn.tool_changes(); // a TOOL_DEF arrived
/// let mut states = conn.state_changes(); // reconnecting, resumed, draining, closed
/// tokio_like_spawn(async move {
///     while let Some(state) = states.next().await {
///         eprintln!("{state}");
///     }
/// });
/// changes.next().await;
/// let done = conn.invoke("echo", "hi".into()).await?.result().await?;
/// # Ok(())
/// # }
/// # fn tokio_like_spawn(_f: impl std::future::Future<Output = ()>) {}
/// ```
#[derive(Clone)]
pub struct Connection {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
    pub(crate) shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("cid", &self.connection_id()).finish()
    }
}

impl Connection {
    pub(crate) fn new() -> (Connection, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded();
        (Connection { tx, shared: Arc::default() }, rx)
    }

    /// The same connection (clones share one).
    pub(crate) fn same(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    pub(crate) fn command(&self, command: Command) -> Result<(), ConnectionError> {
        self.tx.unbounded_send(command).map_err(|_| self.closed_error())
    }

    fn closed_error(&self) -> ConnectionError {
        let reason = self.shared.lock().expect("lock").closed.clone();
        ConnectionError::Closed(reason.map_or_else(|| "the driver stopped".to_owned(), |r| r.message))
    }

    /// Server: the client, as the auth hook accepted it (empty before the
    /// handshake, and on a client).
    pub fn caller(&self) -> crate::Caller {
        self.shared.lock().expect("lock").caller.clone()
    }

    /// The connection id the server assigned.
    pub fn connection_id(&self) -> Option<String> {
        self.shared.lock().expect("lock").cid.clone()
    }

    /// Invokes `tool` on the peer with `args`. The [`Invocation`] streams the
    /// output and then yields the result; dropping it early interrupts the
    /// invocation.
    pub async fn invoke(&self, tool: impl Into<String>, args: Value) -> Result<Invocation, ConnectionError> {
        self.invoke_with(Invoke::new(tool, args)).await
    }

    /// Like [`invoke`](Self::invoke), with a deadline, trace context or metadata.
    pub async fn invoke_with(&self, invoke: Invoke) -> Result<Invocation, ConnectionError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Invoke { invoke, reply })?;
        let (id, token, events) = answer.await.map_err(|_| self.closed_error())??;
        Ok(Invocation::new(id, token, events, self.tx.clone()))
    }

    /// Calls `tool` with `args` (any `Serialize`, structs as maps) and
    /// decodes its result as an `R`, ignoring streamed output: for tools
    /// that answer with a value. Every failure is an [`ErrorInfo`]: the
    /// tool's ERROR, `SESSION_LOST` when the connection is gone, `INTERNAL`
    /// when the arguments or the result do not convert.
    ///
    /// ```no_run
    /// # async fn run(conn: asp_driver::Connection) -> Result<(), asp_proto::ErrorInfo> {
    /// #[derive(serde::Serialize)]
    /// struct Add { a: i64, b: i64 }
    /// let sum: i64 = conn.call("add", Add { a: 2, b: 40 }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call<R: serde::de::DeserializeOwned>(
        &self,
        tool: impl Into<String>,
        args: impl serde::Serialize,
    ) -> Result<R, ErrorInfo> {
        let internal =
            |what: &str, e: &dyn std::fmt::Display| ErrorInfo::new(ErrorCode::INTERNAL, format!("{what}: {e}"));
        let bytes = rmp_serde::to_vec_named(&args).map_err(|e| internal("the arguments", &e))?;
        let args = rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| internal("the arguments", &e))?;
        let done = self.invoke(tool, args).await?.result().await?;
        rmpv::ext::from_value(done.result).map_err(|e| internal("the result", &e))
    }

    /// The peer's tools as last announced.
    pub fn peer_tools(&self) -> Vec<ToolSpec> {
        self.shared.lock().expect("lock").peer_tools.iter().cloned().collect()
    }

    /// A stream that yields each time the peer's tool set changes.
    pub fn tool_changes(&self) -> impl futures::Stream<Item = ()> + Send + Unpin + 'static {
        let (tx, rx) = mpsc::unbounded();
        self.shared.lock().expect("lock").tool_watchers.push(tx);
        rx
    }

    /// A stream of this connection's state changes from now on: lost and
    /// reconnecting, resumed, the peer draining, closed. It ends after
    /// [`ConnectionState::Closed`].
    pub fn state_changes(&self) -> impl futures::Stream<Item = ConnectionState> + Send + Unpin + 'static {
        let (tx, rx) = mpsc::unbounded();
        let mut shared = self.shared.lock().expect("lock");
        match &shared.closed {
            Some(reason) => {
                let _ = tx.unbounded_send(ConnectionState::Closed(reason.clone()));
            }
            None => shared.state_watchers.push(tx),
        }
        rx
    }

    /// Changes our tool set and tells the peer.
    pub fn push_tools(&self, op: ToolOp, tools: Vec<ToolSpec>) -> Result<(), ConnectionError> {
        self.command(Command::PushTools { op, tools })
    }

    /// Starts a graceful drain (GOAWAY); with `drain`, open invocations are
    /// failed when it passes.
    pub fn goaway(&self, drain: Option<std::time::Duration>) -> Result<(), ConnectionError> {
        self.command(Command::GoAway { drain })
    }

    /// Closes the connection now with `code`.
    pub fn close(&self, code: ErrorCode, message: impl Into<String>) -> Result<(), ConnectionError> {
        self.command(Command::Close { code, message: message.into() })
    }

    /// Waits until the connection has ended, and says why.
    pub async fn closed(&self) -> CloseReason {
        let rx = {
            let mut shared = self.shared.lock().expect("lock");
            if let Some(reason) = &shared.closed {
                return reason.clone();
            }
            let (tx, rx) = oneshot::channel();
            shared.close_watchers.push(tx);
            rx
        };
        rx.await.unwrap_or_else(|_| CloseReason {
            code: ErrorCode::INTERNAL,
            message: "the driver stopped".into(),
            initiator: asp_proto::Initiator::Local,
        })
    }

    /// True once the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().expect("lock").closed.is_some() || self.tx.is_closed()
    }

    /// The session's counters.
    pub async fn stats(&self) -> Result<Stats, ConnectionError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Stats { reply })?;
        answer.await.map_err(|_| self.closed_error())
    }
}
