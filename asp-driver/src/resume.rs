//! Resuming sessions across transports (SPEC.md §11), for the adapters.
//!
//! A server indexes every resumable session's driver by its [`ResumeKey`].
//! When a new connection's HELLO asks to resume, its driver hands the new
//! WebSocket to the old session's driver, which resumes and adopts it — or
//! hands it back with the reason it refused. A client's driver reconnects
//! with backoff while its session is detached.

use std::sync::{Arc, Mutex};

use asp_proto::{ErrorCode, ResumeIndex, ResumeKey, ResumeRequest};
use futures::channel::{mpsc, oneshot};
use futures::{Sink, Stream};
use tungstenite::Message;

use crate::BoxFuture;

/// A WebSocket as the driver sees it: a stream and sink of tungstenite
/// messages. `tokio-tungstenite` and `async-tungstenite` streams are ones.
pub trait Transport:
    Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message, Error = tungstenite::Error> + Unpin + Send + 'static
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Unpin
        + Send
        + 'static
{
}

/// A boxed transport, so that one resume registry serves connections of
/// any stream type (TLS or not).
pub type BoxTransport = Box<dyn Transport>;

/// A new transport offered to a detached (or stale) session.
pub(crate) struct Handoff<T> {
    pub(crate) transport: T,
    pub(crate) request: ResumeRequest,
    /// `Err` gives the transport back with the reason resume was refused.
    pub(crate) reply: oneshot::Sender<Result<(), (ErrorCode, T)>>,
}

/// Where a server finds the task of a session to resume: asp-proto's
/// [`ResumeIndex`] shared by every connection task of one server.
pub(crate) struct ResumeRegistry<T> {
    drivers: Arc<Mutex<ResumeIndex<mpsc::UnboundedSender<Handoff<T>>>>>,
}

impl<T> Clone for ResumeRegistry<T> {
    fn clone(&self) -> Self {
        ResumeRegistry { drivers: self.drivers.clone() }
    }
}

impl<T> Default for ResumeRegistry<T> {
    fn default() -> Self {
        ResumeRegistry { drivers: Arc::default() }
    }
}

impl<T> ResumeRegistry<T> {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.drivers.lock().expect("lock").len()
    }

    pub(crate) fn insert(&self, key: ResumeKey, driver: mpsc::UnboundedSender<Handoff<T>>) {
        self.drivers.lock().expect("lock").insert(key, driver);
    }

    pub(crate) fn remove(&self, key: &ResumeKey) {
        self.drivers.lock().expect("lock").remove(key);
    }

    pub(crate) fn find(&self, request: &ResumeRequest) -> Option<mpsc::UnboundedSender<Handoff<T>>> {
        self.drivers.lock().expect("lock").find(request).cloned()
    }
}

/// Opens a new transport to the same server, for a client's reconnect.
pub(crate) type Reconnect<T> = Box<dyn FnMut() -> BoxFuture<Result<T, String>> + Send>;

/// How a connection's driver resumes sessions.
pub(crate) enum Resumption<T> {
    /// It does not: a lost transport ends the session (a client on a
    /// transport the application opened).
    Off,
    /// Server: index resumable sessions here, and hand resuming clients to
    /// the sessions they ask for.
    Server(ResumeRegistry<T>),
    /// Client: open new transports with this while detached.
    Client(Reconnect<T>),
}
