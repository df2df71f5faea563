//! Invocations in both roles: ids, limits, interrupts, deadlines, terminal
//! frames (SPEC.md §5).

use super::*;

impl Session {
    pub(super) fn accepting_commands(&self) -> Result<(), SendError> {
        match self.state {
            SessionState::Open | SessionState::Draining | SessionState::Detached => Ok(()),
            state => Err(SendError::WrongState(state)),
        }
    }

    pub(super) fn open_count(&self, role: InvocationRole) -> usize {
        self.invocations.values().filter(|i| i.role == role).count()
    }

    /// Opens an invocation of the peer's tool `invoke.tool`. Its deadline,
    /// if any, runs from `now`.
    pub fn invoke(&mut self, now: Instant, invoke: Invoke) -> Result<RequestId, SendError> {
        self.accepting_commands()?;
        if self.goaway.any() {
            return Err(SendError::GoingAway);
        }
        if self.open_count(InvocationRole::Invoker) >= self.peer.max_inv as usize {
            return Err(SendError::TooManyInvocations(self.peer.max_inv));
        }
        let id = self.allocate_id().ok_or(SendError::TooManyInvocations(self.peer.max_inv))?;
        let timeout = invoke.timeout;
        let tool = invoke.tool.clone();
        self.send(&Frame::Invoke(id, invoke))?;
        self.advance_id(id);
        let inv = Invocation::new(InvocationRole::Invoker, tool, now, self.config.invocation_window);
        self.open_invocation(now, id, inv, timeout);
        Ok(id)
    }

    /// Records an open invocation and its deadline, `timeout_ms` from `now`.
    fn open_invocation(&mut self, now: Instant, id: RequestId, mut inv: Invocation, timeout_ms: Option<u32>) {
        // `timeout: 0` means no deadline (SPEC.md §5.5).
        if let Some(ms) = timeout_ms.filter(|ms| *ms > 0) {
            let at = now + Duration::from_millis(ms.into());
            inv.deadline = Some(at);
            self.deadlines.insert((at, id));
        }
        self.invocations.insert(id, inv);
    }

    pub(super) fn allocate_id(&self) -> Option<RequestId> {
        let first = self.next_id;
        let mut id = first;
        loop {
            if !self.invocations.contains_key(&RequestId(id)) {
                return Some(RequestId(id));
            }
            id = next_of_parity(id);
            if id == first {
                return None;
            }
        }
    }

    pub(super) fn advance_id(&mut self, used: RequestId) {
        self.next_id = next_of_parity(used.0);
    }

    pub(super) fn on_invoke(&mut self, now: Instant, id: RequestId, invoke: Invoke) {
        if id.initiator() != Some(self.role.peer()) {
            return self.protocol_error(
                ErrorCode::INVALID_REQUEST_ID,
                format!("INVOKE {id} has the wrong parity for the {:?}", self.role.peer()),
            );
        }
        if self.invocations.contains_key(&id) {
            return self.protocol_error(ErrorCode::REQUEST_ID_IN_USE, format!("INVOKE reuses open id {id}"));
        }
        let refuse = if self.goaway.any() {
            // Either side announced the drain: the GOAWAY's sender starts
            // no new invocation, and its receiver takes none from it (§13).
            Some((ErrorCode::GOING_AWAY, "draining: no new invocations".to_owned()))
        } else if self.open_count(InvocationRole::Handler) >= self.config.max_concurrent_invocations as usize {
            let max = self.config.max_concurrent_invocations;
            Some((ErrorCode::TOO_MANY_INVOCATIONS, format!("at most {max} concurrent invocations")))
        } else if self.config.check_tools && !self.local_tools.contains(&invoke.tool) {
            Some((ErrorCode::UNKNOWN_TOOL, format!("no tool named `{}`", invoke.tool)))
        } else {
            None
        };
        if let Some((code, message)) = refuse {
            let _ = self.send_error(id, ErrorInfo::new(code, message));
            return;
        }
        let inv = Invocation::new(InvocationRole::Handler, invoke.tool.clone(), now, self.peer.win);
        self.open_invocation(now, id, inv, invoke.timeout);
        self.events.push_back(Event::Invoked { id, invoke });
    }

    pub(super) fn on_interrupt(&mut self, id: RequestId) {
        if !self.invocations.get(&id).is_some_and(|i| i.role == InvocationRole::Handler) {
            return; // crossed our terminal frame
        }
        self.stop_handler(id, ErrorCode::CANCELLED, "interrupted by the invoker");
    }

    /// Ends an invocation we handle from our side: its terminal ERROR goes
    /// out now and the application is told to stop the tool.
    pub(super) fn stop_handler(&mut self, id: RequestId, code: ErrorCode, message: &str) {
        self.close_invocation(id);
        let _ = self.send_error(id, ErrorInfo::new(code, message));
        self.events.push_back(Event::Interrupted { id, code });
        self.maybe_finish_drain();
    }

    pub(super) fn on_terminal(&mut self, id: RequestId, outcome: Result<Complete, ErrorInfo>) {
        let Some(inv) = self.invocations.get(&id).filter(|i| i.role == InvocationRole::Invoker) else {
            return self.protocol_error(
                ErrorCode::UNKNOWN_REQUEST,
                format!("terminal frame for request {id}, which is not open"),
            );
        };
        let report = inv.state != InvocationState::TimedOut;
        self.close_invocation(id);
        if report {
            self.events.push_back(match outcome {
                Ok(c) => Event::Completed { id, result: c.result, metrics: c.metrics },
                Err(error) => Event::Failed { id, error },
            });
        }
        self.maybe_finish_drain();
    }

    pub(super) fn close_invocation(&mut self, id: RequestId) -> Option<Invocation> {
        let inv = self.invocations.remove(&id)?;
        if let Some(at) = inv.deadline {
            self.deadlines.remove(&(at, id));
        }
        Some(inv)
    }

    pub(super) fn handler(&mut self, id: RequestId) -> Result<&mut Invocation, SendError> {
        self.accepting_commands()?;
        self.invocations.get_mut(&id).filter(|i| i.role == InvocationRole::Handler).ok_or(SendError::NotOpen(id))
    }

    /// Ends invocation `id` (which we handle) with its result. Wall time is
    /// measured from the INVOKE's arrival; `cpu_us` is the handler's CPU
    /// time when it knows it. A result larger than the invoker accepts ends
    /// the invocation with ERROR(`FRAME_TOO_LARGE`) instead, and returns
    /// [`SendError::TooLarge`].
    pub fn complete(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Value,
        cpu_us: Option<u64>,
    ) -> Result<(), SendError> {
        let started = self.handler(id)?.started;
        let wall_us = u64::try_from(now.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX);
        let sent = self.send(&Frame::Complete(id, Complete { result, metrics: Metrics { wall_us, cpu_us } }));
        if let Err(SendError::TooLarge { len, max }) = sent {
            // The invoker would reject the frame; it still gets exactly one
            // terminal frame (SPEC.md §5.2).
            let message = format!("the result is {len} bytes; the invoker accepts frames of at most {max}");
            self.send_error(id, ErrorInfo::new(ErrorCode::FRAME_TOO_LARGE, message))?;
        } else {
            sent.clone()?;
        }
        self.close_invocation(id);
        self.maybe_finish_drain();
        sent
    }

    /// Ends invocation `id` (which we handle) with an error.
    pub fn fail(&mut self, id: RequestId, code: ErrorCode, message: impl Into<String>) -> Result<(), SendError> {
        self.fail_with(id, ErrorInfo::new(code, message))
    }

    /// Ends invocation `id` (which we handle) with an error that carries
    /// structured `data` (a relay's `BACKEND_STATUS` holds the HTTP status).
    pub fn fail_with(&mut self, id: RequestId, error: ErrorInfo) -> Result<(), SendError> {
        self.handler(id)?;
        self.send_error(id, error)?;
        self.close_invocation(id);
        self.maybe_finish_drain();
        Ok(())
    }

    /// Asks the handler of invocation `id` (which we made) to stop. Its
    /// terminal frame still arrives: `Failed` with `CANCELLED`, or
    /// `Completed` if it finished first.
    pub fn interrupt(&mut self, id: RequestId, reason: Option<String>) -> Result<(), SendError> {
        self.accepting_commands()?;
        let inv = self
            .invocations
            .get_mut(&id)
            .filter(|i| i.role == InvocationRole::Invoker && i.state == InvocationState::Open)
            .ok_or(SendError::NotOpen(id))?;
        inv.state = InvocationState::Interrupting;
        self.send(&Frame::Interrupt(id, Interrupt { reason }))?;
        Ok(())
    }

    pub(super) fn on_deadline(&mut self, id: RequestId) {
        let Some(inv) = self.invocations.get_mut(&id) else {
            return;
        };
        inv.deadline = None;
        match inv.role {
            InvocationRole::Handler => {
                self.stop_handler(id, ErrorCode::DEADLINE_EXCEEDED, "deadline exceeded");
            }
            InvocationRole::Invoker => {
                let was_open = inv.state == InvocationState::Open;
                inv.state = InvocationState::TimedOut;
                if was_open {
                    let _ = self.send(&Frame::Interrupt(id, Interrupt { reason: Some("deadline exceeded".into()) }));
                }
                self.events.push_back(Event::Failed {
                    id,
                    error: ErrorInfo::new(ErrorCode::DEADLINE_EXCEEDED, "deadline exceeded"),
                });
            }
        }
    }
}

pub(super) fn next_of_parity(id: u16) -> u16 {
    match id.checked_add(2) {
        Some(n) => n,
        None => {
            if id % 2 == 1 {
                1
            } else {
                2
            }
        }
    }
}

impl Session {
    /// Sends ERROR(id). One that would not fit the peer's `max_frame` goes
    /// out with its message cut to [`limits::MAX_FITTED_ERROR_MESSAGE`]
    /// bytes and no `data`: the peer always learns the invocation ended.
    pub(super) fn send_error(&mut self, id: RequestId, error: ErrorInfo) -> Result<(), SendError> {
        match self.send(&Frame::Error(id, error.clone())) {
            Err(SendError::TooLarge { .. }) => {
                let mut message = error.message;
                let mut cut = message.len().min(limits::MAX_FITTED_ERROR_MESSAGE);
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
                self.send(&Frame::Error(id, ErrorInfo::new(error.code, message)))
            }
            other => other,
        }
    }
}
