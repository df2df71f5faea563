//! Reading the function's response: the head (status, state, CPU time,
//! plain or frames mode), body chunks, the end, and failures below HTTP.

use std::time::Instant;

use asp_proto::{ErrorCode, ErrorInfo, Frame, Output, RequestId, Value};
use bytes::Bytes;

use crate::call::{BodyMode, CallFailure, CallKind, ResponseHead};
use crate::request::{decode_state, parse_cpu_time};
use crate::{CallId, Relay, SessionKey, FRAMES_CONTENT_TYPE};

impl Relay {
    /// The response head of a call arrived.
    pub fn handle_call_head(&mut self, now: Instant, call_id: CallId, head: ResponseHead) {
        let max_state = self.config.max_state_bytes;
        let max_frame = self.config.session.max_frame_payload;
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        if call.head_at.is_some() {
            return;
        }
        call.head_at = Some(now);
        call.last_body = now;
        let ok = (200..300).contains(&head.status);
        let conn_key = call.conn;
        if call.kind != CallKind::Invoke {
            // Lifecycle calls only carry state; their bodies are ignored.
            call.mode = BodyMode::Done;
            if call.kind == CallKind::Connect && ok {
                // A bad state from /connect is ignored: no invocation to fail.
                if let Some(Ok(state)) = head.state.as_deref().map(|v| checked_state(v, max_state)) {
                    self.set_state(conn_key, state);
                }
            }
            return self.arm_call(call_id);
        }
        if !ok {
            let status = head.status;
            // 404 to `/invoke` is the function's way to say it has no such
            // tool (SPEC.md §15.2).
            let mut error = match status {
                404 => ErrorInfo::new(ErrorCode::UNKNOWN_TOOL, "the function has no such tool (HTTP 404)"),
                _ => ErrorInfo::new(ErrorCode::BACKEND_STATUS, format!("the function answered HTTP {status}")),
            };
            error.data = Value::Map(vec![(Value::from("status"), Value::from(status))]);
            call.queue(Output::Fail(error), 0);
            return self.progress(now, call_id);
        }
        match head.state.as_deref().map(|v| checked_state(v, max_state)) {
            Some(Err(error)) => {
                call.queue(Output::Fail(error), 0);
                return self.progress(now, call_id);
            }
            Some(Ok(state)) => self.set_state(conn_key, state),
            None => {}
        }
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        call.cpu_us = head.cpu_time.as_deref().and_then(parse_cpu_time);
        let frames = head
            .content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(FRAMES_CONTENT_TYPE));
        call.mode =
            if frames { BodyMode::Frames(Box::new(asp_proto::Decoder::new(max_frame))) } else { BodyMode::Plain };
        self.arm_call(call_id);
    }

    /// A chunk of a call's body. The adapter hands over at most
    /// [`body_window`](crate::RelayConfig::body_window) bytes not yet returned by
    /// [`Command::Credit`](crate::Command::Credit).
    pub fn handle_call_chunk(&mut self, now: Instant, call_id: CallId, data: Bytes) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        let len = data.len();
        call.uncredited += len;
        if call.kind != CallKind::Invoke || call.head_at.is_none() || call.finished() {
            return self.credit(call_id, len);
        }
        call.last_body = now;
        match &mut call.mode {
            BodyMode::Plain => call.queue(Output::Data(data), len),
            BodyMode::Frames(decoder) => {
                let items = decode_frames(decoder, data, call.id, call.cpu_us);
                let count = items.len();
                for (i, item) in items.into_iter().enumerate() {
                    let credit = if i + 1 == count { len } else { 0 };
                    if !call.finished() {
                        call.queue(item, credit);
                    }
                }
                if count == 0 {
                    return self.credit(call_id, len);
                }
            }
            BodyMode::AwaitingHead | BodyMode::Done => {}
        }
        self.progress(now, call_id);
    }

    /// A call's body ended normally.
    pub fn handle_call_end(&mut self, now: Instant, call_id: CallId) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        call.body_ended = true;
        if call.kind != CallKind::Invoke {
            return self.end_call(call_id, false);
        }
        match &call.mode {
            BodyMode::Plain => {
                let cpu = call.cpu_us;
                call.queue(Output::Complete { result: Value::Nil, cpu_us: cpu }, 0);
            }
            BodyMode::Frames(decoder) => {
                let message = if decoder.is_idle() {
                    "the function's frames ended without COMPLETE or ERROR"
                } else {
                    "the function's frames ended inside a frame"
                };
                call.queue(Output::Fail(ErrorInfo::new(ErrorCode::BACKEND_TRUNCATED, message)), 0);
            }
            BodyMode::AwaitingHead => {
                let error = ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, "the call ended without a response");
                call.queue(Output::Fail(error), 0);
            }
            BodyMode::Done => {}
        }
        self.progress(now, call_id);
    }

    /// A call failed below HTTP (connection refused, body cut short…). The
    /// adapter reports nothing more about it.
    pub fn handle_call_failed(&mut self, now: Instant, call_id: CallId, failure: CallFailure) {
        let Some(call) = self.calls.get_mut(&call_id) else { return };
        call.body_ended = true;
        if call.kind != CallKind::Invoke {
            return self.end_call(call_id, false);
        }
        if !call.finished() {
            // The client learns the class of failure; the detail (the
            // function's address, OS errors) is the adapter's to log, not
            // the client's to read.
            let (code, message) = match failure {
                CallFailure::Unavailable(_) => (ErrorCode::BACKEND_UNAVAILABLE, "the function could not be reached"),
                CallFailure::Truncated(_) => (ErrorCode::BACKEND_TRUNCATED, "the function's response was cut short"),
                CallFailure::Timeout(_) => (ErrorCode::BACKEND_TIMEOUT, "the function did not answer in time"),
                CallFailure::Invalid(_) => {
                    (ErrorCode::BACKEND_INVALID_RESPONSE, "the function's response was not HTTP")
                }
            };
            call.queue(Output::Fail(ErrorInfo::new(code, message)), 0);
        }
        self.progress(now, call_id);
    }
}

impl Relay {
    /// Stores a connection's state from `X-Asp-State` (empty clears it).
    fn set_state(&mut self, key: SessionKey, state: Vec<u8>) {
        if let Some(conn) = self.sessions.get_mut(&key) {
            conn.state = (!state.is_empty()).then_some(state);
        }
    }
}

/// An `X-Asp-State` value, decoded and within the relay's bound.
fn checked_state(value: &str, max_state: usize) -> Result<Vec<u8>, ErrorInfo> {
    match decode_state(value) {
        Err(e) => Err(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, e)),
        Ok(state) if state.len() > max_state => {
            let message = format!("the function returned {} bytes of state; the bound is {max_state}", state.len());
            Err(ErrorInfo::new(ErrorCode::STATE_TOO_LARGE, message))
        }
        Ok(state) => Ok(state),
    }
}

/// Turns frames the function wrote (frames mode) into queued output.
fn decode_frames(decoder: &mut asp_proto::Decoder, mut data: Bytes, id: RequestId, cpu_us: Option<u64>) -> Vec<Output> {
    let mut items = Vec::new();
    loop {
        let frame = match decoder.decode(&mut data) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                let message = format!("the function's frames are invalid: {e}");
                items.push(Output::Fail(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, message)));
                break;
            }
        };
        let rid = frame.request_id();
        if !(rid.is_connection() || rid == id) {
            let message = format!("the function wrote a frame for request {rid}; this call is {id}");
            items.push(Output::Fail(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, message)));
            break;
        }
        let item = match frame {
            Frame::Stream(_, bytes) => Output::Data(bytes),
            Frame::Progress(_, p) => Output::Progress(p),
            Frame::ToolDef(def) => Output::Tools(def.op, def.tools),
            Frame::Complete(_, c) => Output::Complete { result: c.result, cpu_us: c.metrics.cpu_us.or(cpu_us) },
            Frame::Error(_, error) => Output::Fail(error),
            other => {
                let message = format!("a function may not write {:?} frames", other.frame_type());
                Output::Fail(ErrorInfo::new(ErrorCode::BACKEND_INVALID_RESPONSE, message))
            }
        };
        let terminal = matches!(item, Output::Complete { .. } | Output::Fail(_));
        items.push(item);
        if terminal {
            break;
        }
    }
    items
}
