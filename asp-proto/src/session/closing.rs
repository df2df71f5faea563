//! GOAWAY, close, protocol errors and the end of a session (SPEC.md §13).

use super::*;

/// Which side announced a drain (GOAWAY).
#[derive(Debug, Default)]
pub(super) struct GoAwayState {
    pub(super) local: bool,
    pub(super) peer: bool,
}

impl GoAwayState {
    /// Either side is draining: no new invocations.
    pub(super) fn any(&self) -> bool {
        self.local || self.peer
    }
}

impl Session {
    /// Starts a graceful drain: GOAWAY, no new invocations either way, and
    /// the session closes (`NO_ERROR`) once the open ones end — or, with a
    /// `drain` limit, when it passes, failing what is left with `GOING_AWAY`.
    pub fn goaway(&mut self, now: Instant, message: Option<String>, drain: Option<Duration>) -> Result<(), SendError> {
        self.accepting_commands()?;
        if self.goaway.local {
            return Ok(());
        }
        self.send(&Frame::GoAway(GoAway { code: None, message }))?;
        self.goaway.local = true;
        if self.state == SessionState::Open {
            self.state = SessionState::Draining;
        }
        if let Some(limit) = drain {
            self.timers.set(Timer::Drain, now + limit);
        }
        self.maybe_finish_drain();
        Ok(())
    }

    pub(super) fn on_goaway(&mut self, goaway: GoAway) {
        self.goaway.peer = true;
        if self.state == SessionState::Open {
            self.state = SessionState::Draining;
        }
        self.events
            .push_back(Event::GoAway { code: goaway.code.unwrap_or(ErrorCode::NO_ERROR), message: goaway.message });
    }

    /// The GOAWAY's sender closes once nothing is open, with ERROR(0,
    /// NO_ERROR) (SPEC.md §13): a peer that still had an INVOKE on its way
    /// learns the session ended rather than seeing a lost transport.
    pub(super) fn maybe_finish_drain(&mut self) {
        if self.goaway.local && self.invocations.is_empty() && self.state == SessionState::Draining {
            self.close(ErrorCode::NO_ERROR, "drained");
        }
    }

    pub(super) fn on_drain_deadline(&mut self) {
        let handled: Vec<RequestId> =
            self.invocations.iter().filter(|(_, i)| i.role == InvocationRole::Handler).map(|(id, _)| *id).collect();
        for id in handled {
            let _ = self.send(&Frame::Error(id, ErrorInfo::new(ErrorCode::GOING_AWAY, "drain deadline passed")));
        }
        self.end(ErrorCode::GOING_AWAY, "drain deadline passed".into(), Initiator::Local);
    }

    /// Ends the session now. With a code other than `NO_ERROR` the peer is
    /// told with ERROR (request id 0). Open invocations fail with `code`.
    pub fn close(&mut self, code: ErrorCode, message: impl Into<String>) {
        if self.is_closed() {
            return;
        }
        let message = message.into();
        if self.transport && self.state != SessionState::Detached {
            let _ = self.send(&Frame::Error(RequestId::CONNECTION, ErrorInfo::new(code, message.clone())));
        }
        self.end(code, message, Initiator::Local);
    }

    pub(super) fn protocol_error(&mut self, code: ErrorCode, message: String) {
        if self.is_closed() {
            return;
        }
        if self.transport {
            let _ = self.send(&Frame::Error(RequestId::CONNECTION, ErrorInfo::new(code, message.clone())));
        }
        self.end(code, message, Initiator::Local);
    }

    pub(super) fn on_peer_fatal(&mut self, error: ErrorInfo) {
        self.end(error.code, error.message, Initiator::Peer);
    }

    /// Fails every open invocation with `code`: `Failed` for ours,
    /// `Interrupted` for the peer's.
    pub(super) fn fail_all(&mut self, code: ErrorCode, message: &str) {
        let mut ids: Vec<RequestId> = self.invocations.keys().copied().collect();
        ids.sort();
        for id in ids {
            let inv = self.close_invocation(id).expect("listed");
            match inv.role {
                InvocationRole::Invoker if inv.state != InvocationState::TimedOut => {
                    self.events.push_back(Event::Failed { id, error: ErrorInfo::new(code, message) })
                }
                InvocationRole::Invoker => {}
                InvocationRole::Handler => self.events.push_back(Event::Interrupted { id, code }),
            }
        }
    }

    pub(super) fn end(&mut self, code: ErrorCode, message: String, initiator: Initiator) {
        if self.is_closed() {
            return;
        }
        let fail_code = if code == ErrorCode::NO_ERROR { ErrorCode::GOING_AWAY } else { code };
        self.fail_all(fail_code, &message);
        self.state = SessionState::Closed;
        self.timers.stop_all();
        self.deadlines.clear();
        self.resumption.replay.clear();
        self.resumption.unacked_bytes = 0;
        self.outbound.forget_sequenced();
        self.events.push_back(Event::Closed(CloseReason { code, message, initiator }));
    }
}
