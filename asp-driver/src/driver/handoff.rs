//! Moving a transport between sessions (SPEC.md §11.3).
//!
//! Server: a new connection whose HELLO asks to resume hands its transport
//! to the task of the old session (found in the [`ResumeRegistry`]), which
//! resumes and keeps it, or hands it back with the refusal. The steps are
//! asp-proto's [routing](asp_proto::session::ResumeIndex); only the
//! carrying between tasks is here. Client: while detached, one reconnect
//! attempt at a time, with backoff.

use std::time::Instant;

use asp_proto::{ResumeOutcome, ResumeRequest, SessionState};
use futures::channel::oneshot;

use super::{Driver, RECONNECT_BACKOFF_MAX};
use crate::resume::{Handoff, Resumption};
use crate::Runtime;

impl<T, R> Driver<T, R>
where
    T: crate::Transport,
    R: Runtime,
{
    /// Server, new connection: offers this transport to the session the
    /// client asks to resume. True when that session took it.
    pub(super) async fn hand_off(&mut self, request: ResumeRequest) -> bool {
        let outcome = match self.offer_transport(request).await {
            Ok(outcome) => outcome,
            // The old task ended while holding the transport: it is gone.
            Err(()) => return true,
        };
        let resumed = self.session.conclude_resume(self.rt.now(), outcome);
        resumed == Ok(true)
    }

    /// Carries the transport to the old session's task and waits for its
    /// answer; a refused transport comes back. `Err` when the transport was
    /// lost on the way.
    async fn offer_transport(&mut self, request: ResumeRequest) -> Result<ResumeOutcome, ()> {
        let Resumption::Server(registry) = &self.resumption else { return Ok(ResumeOutcome::NotFound) };
        // Look first: the transport stays with this session unless there is
        // a session to hand it to.
        let Some(driver) = registry.find(&request) else { return Ok(ResumeOutcome::NotFound) };
        let Some(transport) = self.transport.take() else { return Ok(ResumeOutcome::NotFound) };
        let (reply, answer) = oneshot::channel();
        if let Err(e) = driver.unbounded_send(Handoff { transport, request, reply }) {
            // That task has just ended: resume is impossible, carry on.
            self.transport = Some(e.into_inner().transport);
            return Ok(ResumeOutcome::NotFound);
        }
        match answer.await {
            Ok(Ok(())) => Ok(ResumeOutcome::Resumed),
            Ok(Err((code, transport))) => {
                self.transport = Some(transport);
                Ok(ResumeOutcome::Refused(code))
            }
            Err(_) => Err(()),
        }
    }

    /// Server, old session: a resuming client's transport arrived.
    pub(super) fn adopt(&mut self, now: Instant, handoff: Handoff<T>) {
        match self.session.resume(now, &handoff.request) {
            Ok(()) => {
                tracing::debug!("session resumed on a new transport");
                // Replacing the old transport (if the session still had
                // one) drops and closes it.
                self.transport = Some(handoff.transport);
                let _ = handoff.reply.send(Ok(()));
            }
            Err(code) => {
                let _ = handoff.reply.send(Err((code, handoff.transport)));
            }
        }
    }

    /// Server: index this session for resumption under its current key.
    pub(super) fn register(&mut self) {
        if let (Resumption::Server(registry), Some(key)) = (&self.resumption, self.session.resume_key()) {
            if self.registered != Some(key) {
                if let Some(old) = self.registered.take() {
                    registry.remove(&old);
                }
                registry.insert(key, self.handoffs.0.clone());
                self.registered = Some(key);
            }
        }
    }

    /// Server: this session can no longer be resumed here.
    pub(super) fn unregister(&mut self) {
        if let (Resumption::Server(registry), Some(key)) = (&self.resumption, self.registered.take()) {
            registry.remove(&key);
        }
    }

    /// Leaves without closing anything: this connection's transport now
    /// belongs to another task.
    pub(super) fn forget(mut self) {
        self.unregister();
        self.tools.unsubscribe(&self.conn);
    }

    /// Client: while detached, keep one reconnect attempt under way.
    pub(super) fn start_reconnect(&mut self) {
        let Resumption::Client(connect) = &mut self.resumption else { return };
        if self.reconnecting.is_some() || self.transport.is_some() || self.session.state() != SessionState::Detached {
            return;
        }
        let delay = self.rt.sleep_until(self.rt.now() + self.backoff);
        let attempt = connect();
        self.attempts += 1;
        let state = crate::ConnectionState::Reconnecting { attempt: self.attempts, delay: self.backoff };
        tracing::info!(attempt = self.attempts, delay_ms = self.backoff.as_millis() as u64, "reconnecting");
        self.conn.shared.lock().expect("lock").publish(state);
        self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
        self.reconnecting = Some(Box::pin(async move {
            delay.await;
            attempt.await
        }));
    }

    pub(super) fn reconnected(&mut self, now: Instant, result: Result<T, String>) {
        self.reconnecting = None;
        match result {
            Ok(transport) if self.session.state() == SessionState::Detached => {
                tracing::debug!("reconnected; resuming");
                self.transport = Some(transport);
                if self.session.reconnect(now).is_err() {
                    self.transport = None;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reconnect failed"),
        }
    }
}
