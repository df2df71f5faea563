//! What the session's events mean for the application: the handshake's
//! verdict, invocations to run, output and results for the application's
//! invocations, credit for blocked output, tool changes and the end.

use std::time::Instant;

use asp_proto::{CloseReason, ErrorCode, Event, HelloInfo, RequestId, SessionState};
use bytes::Bytes;

use super::{Driver, RECONNECT_BACKOFF_MIN};
use crate::caller::{Caller, Verdict};
use crate::invocation::{Completion, InvocationEvent};
use crate::resume::Resumption;
use crate::Runtime;

impl<T, R> Driver<T, R>
where
    T: crate::Transport,
    R: Runtime,
{
    /// Acts on the auth hook's verdict on `hello`: the caller's identity is
    /// kept for the tools, then the client is accepted (or handed to the
    /// session it resumes), or refused.
    pub(super) fn authenticated(&mut self, now: Instant, hello: &HelloInfo, verdict: Verdict) {
        match verdict {
            Ok(identity) => {
                self.conn.shared.lock().expect("lock").caller = Caller::new(hello, identity);
                if hello.resume_requested && matches!(self.resumption, Resumption::Server(_)) {
                    self.handoff_request = self.session.resume_request().cloned();
                } else {
                    let _ = self.session.accept(now);
                }
            }
            Err(error) => {
                tracing::warn!(code = %error.code, reason = %error.message, "client refused by the auth hook");
                self.session.reject(error.code, error.message)
            }
        }
    }

    pub(super) fn dispatch_events(&mut self, now: Instant) {
        let mut batch: Option<(RequestId, Vec<Bytes>)> = None;
        while let Some(event) = self.session.poll_event() {
            if !matches!(event, Event::Chunk { .. }) {
                // Anything else about an invocation comes after its output.
                self.deliver(batch.take());
            }
            match event {
                Event::HelloReceived(info) => {
                    let Some(auth) = self.auth.clone() else {
                        self.authenticated(now, &info, Ok(None));
                        continue;
                    };
                    // A hook that answers at once (a token lookup) is done
                    // here; one that waits (a JWKS fetch) is awaited by the
                    // loop while the session's handshake timer runs.
                    let mut verdict = auth(info.clone());
                    let waker = futures::task::noop_waker();
                    match verdict.as_mut().poll(&mut std::task::Context::from_waker(&waker)) {
                        std::task::Poll::Ready(verdict) => self.authenticated(now, &info, verdict),
                        std::task::Poll::Pending => self.authenticating = Some((info, verdict)),
                    }
                }
                Event::Connected { cid, resumed, .. } => {
                    if !resumed && !self.counted {
                        self.counted = true;
                        crate::metrics::connection_opened(self.session.role());
                    }
                    tracing::Span::current().record("cid", cid.as_str());
                    tracing::info!(%cid, resumed, "connected");
                    let mut shared = self.conn.shared.lock().expect("lock");
                    if let Some(gate) = shared.handshake_gate.take() {
                        gate.open();
                    }
                    shared.cid = Some(cid.clone());
                    shared.peer_tools = self.session.peer_tools().clone();
                    shared.publish(if resumed {
                        crate::ConnectionState::Resumed { cid }
                    } else {
                        crate::ConnectionState::Connected { cid }
                    });
                    drop(shared);
                    self.attempts = 0;
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    self.backoff = RECONNECT_BACKOFF_MIN;
                    self.register();
                }
                // Drop the transport (dead or silent); a client reconnects.
                // A resume that replaced a transport the session still held
                // detached and re-attached it at once: the transport now is
                // the new one (SPEC §11.3.3), and stays.
                Event::Detached { .. } if self.session.state() == SessionState::Detached => {
                    self.transport = None;
                }
                Event::Invoked { id, invoke } => self.start_handler(now, id, invoke),
                Event::Interrupted { id, code } => {
                    tracing::debug!(%id, %code, "handler stopped");
                    if let Some(handler) = self.handlers.remove(&id) {
                        handler.interrupted(now);
                    }
                }
                Event::Chunk { id, data } => {
                    // Chunks of one message go to their reader as one batch.
                    match batch.as_mut() {
                        Some((batch_id, chunks)) if *batch_id == id => chunks.push(data),
                        _ => {
                            self.deliver(batch.take());
                            batch = Some((id, vec![data]));
                        }
                    }
                    continue;
                }
                Event::Progress { id, progress } => {
                    if let Some((_, tx)) = self.invocations.get(&id) {
                        let _ = tx.unbounded_send(InvocationEvent::Progress(progress));
                    }
                }
                Event::Completed { id, result, metrics } => {
                    if let Some((_, tx)) = self.invocations.remove(&id) {
                        let _ = tx.unbounded_send(InvocationEvent::Done(Ok(Completion { result, metrics })));
                    }
                }
                Event::Failed { id, error } => {
                    if let Some((_, tx)) = self.invocations.remove(&id) {
                        let _ = tx.unbounded_send(InvocationEvent::Done(Err(error)));
                    }
                }
                Event::Writable { .. } => self.flush_blocked(now),
                Event::PeerToolsChanged => {
                    // The handshake's tools were published with `Connected`
                    // already; a watcher added after `connect` returned must
                    // not see them as a change.
                    let mut shared = self.conn.shared.lock().expect("lock");
                    if shared.peer_tools != *self.session.peer_tools() {
                        shared.peer_tools = self.session.peer_tools().clone();
                        shared.tool_watchers.retain(|w| w.unbounded_send(()).is_ok());
                    }
                }
                Event::GoAway { message, .. } => {
                    tracing::info!(message = message.as_deref(), "the peer is draining (GOAWAY)");
                    self.conn.shared.lock().expect("lock").publish(crate::ConnectionState::Draining { message });
                }
                Event::Closed(reason) => self.on_closed(reason),
                _ => {}
            }
        }
        self.deliver(batch.take());
    }

    /// Hands a batch of output to its invocation's reader; output nobody
    /// will read gets its credit back at once.
    fn deliver(&mut self, batch: Option<(RequestId, Vec<Bytes>)>) {
        let Some((id, chunks)) = batch else { return };
        let len: usize = chunks.iter().map(Bytes::len).sum();
        let delivered =
            self.invocations.get(&id).is_some_and(|(_, tx)| tx.unbounded_send(InvocationEvent::Chunks(chunks)).is_ok());
        if !delivered {
            self.session.grant(id, len);
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        let cid = self.conn.connection_id().unwrap_or_default();
        // A client's application hears why from `closed()`; a server's
        // operator hears it here.
        let expected = matches!(reason.code, ErrorCode::NO_ERROR | ErrorCode::GOING_AWAY);
        if expected || self.session.role() == asp_proto::Role::Client {
            tracing::info!(%cid, code = %reason.code, reason = %reason.message, "closed");
        } else {
            tracing::warn!(%cid, code = %reason.code, reason = %reason.message, "closed");
        }
        for handler in self.handlers.values_mut() {
            handler.drop_output();
        }
        let mut shared = self.conn.shared.lock().expect("lock");
        shared.closed = Some(reason.clone());
        for watcher in shared.close_watchers.drain(..) {
            let _ = watcher.send(reason.clone());
        }
        shared.publish(crate::ConnectionState::Closed(reason.clone()));
        shared.state_watchers.clear();
        drop(shared);
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(reason));
        }
    }
}
