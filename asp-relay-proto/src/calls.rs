//! The life of a function call: issued for an INVOKE or a lifecycle event,
//! its output moved into the session as the client's credit allows, body
//! credit returned to the adapter, its three timers, its end.

use std::time::Instant;

use asp_proto::{ErrorCode, ErrorInfo, Invoke, Output, QueueState, RequestId};
use bytes::Bytes;

use crate::call::{Call, CallKind, FunctionCall};
use crate::request::{self, InvokeBody};
use crate::{CallId, Command, Relay, SessionEntry, SessionKey, TimerKey};

/// What a new function call is for, and its body.
pub(crate) struct CallSpec<'a> {
    pub key: SessionKey,
    pub kind: CallKind,
    /// The invocation (`CONNECTION` for lifecycle calls).
    pub id: RequestId,
    pub cid: &'a str,
    pub trace: Option<&'a str>,
    pub body: Bytes,
}

impl Relay {
    pub(crate) fn on_invoked(&mut self, now: Instant, key: SessionKey, id: RequestId, invoke: Invoke) {
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        if self.invoke_calls >= self.config.max_calls {
            let max = self.config.max_calls;
            let _ = conn.session.fail(id, ErrorCode::BACKEND_OVERLOADED, format!("{max} function calls are in flight"));
            return;
        }
        if conn.calls.len() >= self.config.max_calls_per_connection {
            let max = self.config.max_calls_per_connection;
            let message = format!("this connection has {max} function calls in flight, its share");
            let _ = conn.session.fail(id, ErrorCode::BACKEND_OVERLOADED, message);
            return;
        }
        let cid = conn.cid.clone().unwrap_or_default();
        let body =
            InvokeBody { cid: &cid, id, invoke: &invoke, state: conn.state.as_deref() }.encode(self.config.encoding);
        let trace = invoke.trace.as_deref();
        let call = self.issue_call(now, CallSpec { key, kind: CallKind::Invoke, id, cid: &cid, trace, body });
        if let Some(conn) = self.sessions.get_mut(&key) {
            conn.calls.insert(id, call);
        }
        self.invoke_calls += 1;
    }

    pub(crate) fn start_lifecycle_call(&mut self, now: Instant, key: SessionKey, kind: CallKind) {
        if let Some(conn) = self.sessions.remove(&key) {
            self.lifecycle_call(now, key, &conn, kind);
            self.sessions.insert(key, conn);
        }
    }

    /// `POST /connect` or `/disconnect` for the session `conn` (which may
    /// already be out of the index, on its way out).
    pub(crate) fn lifecycle_call(&mut self, now: Instant, key: SessionKey, conn: &SessionEntry, kind: CallKind) {
        // Lifecycle calls are notifications: past the call limit they are
        // skipped, so clients that churn connections cannot make the relay
        // hold unbounded calls to the function (found by the relay fuzzer).
        if self.calls.len() >= self.config.max_calls {
            return;
        }
        let cid = conn.cid.as_deref().unwrap_or_default();
        let body =
            request::lifecycle_body(self.config.encoding, cid, conn.name.as_deref(), &conn.caps, conn.state.as_deref());
        self.issue_call(now, CallSpec { key, kind, id: RequestId::CONNECTION, cid, trace: None, body });
    }

    pub(crate) fn issue_call(&mut self, now: Instant, spec: CallSpec<'_>) -> CallId {
        let CallSpec { key, kind, id, cid, trace, body } = spec;
        let call = CallId(self.next_call);
        self.next_call += 1;
        let mut headers = vec![
            ("content-type", self.config.encoding.content_type().to_owned()),
            ("x-asp-connection-id", cid.to_owned()),
        ];
        if kind == CallKind::Invoke {
            headers.push(("x-asp-request-id", id.0.to_string()));
        }
        if let Some(trace) = trace {
            headers.push(("traceparent", trace.to_owned()));
        }
        if let Some(token) = &self.config.function_token {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        self.calls.insert(call, Call::new(key, kind, id, now));
        self.commands.push_back(Command::Call(FunctionCall { call, kind, headers, body }));
        self.arm_call(call);
        call
    }

    /// Sends what a call has queued, then settles its session.
    pub(crate) fn progress(&mut self, now: Instant, call_id: CallId) {
        let conn = self.calls.get(&call_id).map(|c| c.conn);
        self.flush_call(now, call_id);
        if let Some(conn) = conn {
            self.settle(now, conn);
        }
    }

    /// Moves a call's queued output into its session as far as credit goes.
    pub(crate) fn flush_call(&mut self, now: Instant, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let had_pending = !call.output.is_empty();
        let Some(conn) = self.sessions.get_mut(&call.conn) else {
            return self.end_call(call_id, true);
        };
        if conn.backlogged {
            // The client's writes are backed up: hold the output (and the
            // body credit it carries) until they drain.
            return self.arm_call(call_id);
        }
        let flushed = call.output.flush(&mut conn.session, now, call.id);
        let credit = flushed.released;
        let ended = match flushed.state {
            QueueState::Open => None,
            QueueState::Ended => Some(call.body_ended),
            // The invocation is gone (interrupted, session closed): stop the call.
            QueueState::Gone => Some(false),
        };
        if had_pending && call.output.is_empty() {
            // From here on the relay waits for the function, not the client.
            call.last_body = now;
        }
        if let Some(body_ended) = ended {
            let id = call.id;
            let conn_key = call.conn;
            if let Some(conn) = self.sessions.get_mut(&conn_key) {
                conn.calls.remove(&id);
            }
            return self.end_call(call_id, !body_ended);
        }
        self.credit(call_id, credit);
        self.arm_call(call_id);
    }

    pub(crate) fn credit(&mut self, call_id: CallId, bytes: usize) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let bytes = bytes.min(call.uncredited);
        if bytes > 0 {
            call.uncredited -= bytes;
            self.commands.push_back(Command::Credit { call: call_id, bytes });
        }
    }

    pub(crate) fn end_call(&mut self, call_id: CallId, abort: bool) {
        let Some(call) = self.calls.remove(&call_id) else { return };
        if call.kind == CallKind::Invoke {
            self.invoke_calls -= 1;
        }
        // Its state and tool pushes, for the directory.
        self.save(call.conn);
        if let Some(at) = call.armed {
            self.timers.remove(&(at, TimerKey::Call(call_id)));
        }
        if abort && !call.body_ended {
            self.commands.push_back(Command::Abort(call_id));
        }
    }

    pub(crate) fn arm_call(&mut self, call_id: CallId) {
        let config = &self.config;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let mut next = call.started + config.call_timeout;
        if call.head_at.is_none() {
            next = next.min(call.started + config.response_timeout);
        } else if call.waiting_for_body() {
            next = next.min(call.last_body + config.idle_timeout);
        }
        if Some(next) != call.armed {
            if let Some(at) = call.armed {
                self.timers.remove(&(at, TimerKey::Call(call_id)));
            }
            self.timers.insert((next, TimerKey::Call(call_id)));
            call.armed = Some(next);
        }
    }

    pub(crate) fn check_call_timers(&mut self, now: Instant, call_id: CallId) {
        let config = &self.config;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let why = if now >= call.started + config.call_timeout {
            Some(format!("the call ran longer than {} ms", request::millis(config.call_timeout)))
        } else if call.head_at.is_none() && now >= call.started + config.response_timeout {
            Some(format!("no response within {} ms", request::millis(config.response_timeout)))
        } else if call.head_at.is_some() && call.waiting_for_body() && now >= call.last_body + config.idle_timeout {
            Some(format!("the body stalled for {} ms", request::millis(config.idle_timeout)))
        } else {
            None
        };
        let Some(why) = why else { return self.arm_call(call_id) };
        if call.kind != CallKind::Invoke {
            return self.end_call(call_id, true);
        }
        // Output still waiting for credit is dropped: the call is over.
        let _ = call.output.clear();
        call.queue(Output::Fail(ErrorInfo::new(ErrorCode::BACKEND_TIMEOUT, why)), 0);
        self.progress(now, call_id);
    }
}

impl Call {
    /// The relay waits for the function's body (not for the client's credit).
    pub(crate) fn waiting_for_body(&self) -> bool {
        !self.finished() && !self.body_ended && self.output.is_empty()
    }
}
