//! [`ClientSession`]: asp-proto's client `Session` with JS-shaped inputs
//! and outputs.

use asp_bindings::{refusal_kind, ClientOptions, EventSource, InvokeOptions};
use asp_proto::{ErrorCode, Progress, RequestId, SendError, Session, ToolOp, ToolSpec};
use bytes::Bytes;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use web_time::Instant;

use crate::values::{from_js, to_js};

/// A refused command, thrown to JS as `{ kind, message }`.
#[derive(Serialize)]
struct Refusal {
    kind: &'static str,
    message: String,
}

fn refused(error: SendError) -> JsValue {
    to_js(&Refusal { kind: refusal_kind(&error), message: error.to_string() })
}

fn bad(what: &str, error: impl std::fmt::Display) -> JsValue {
    to_js(&Refusal { kind: "invalid", message: format!("{what}: {error}") })
}

/// A client session: HELLO is queued at construction; write
/// `pollTransmit()` to the WebSocket once it opens.
#[wasm_bindgen]
pub struct ClientSession {
    session: Session,
    /// Events out (chunks merged) and the caller's clock (ms).
    events: EventSource,
}

#[wasm_bindgen]
impl ClientSession {
    /// A client session. `config`: `{ token, name, resume, caps,
    /// heartbeatMs, handshakeTimeoutMs, invocationWindow,
    /// connectionWindow, maxFramePayload }`, all optional; `tools`: the
    /// tools the server may call (`[{ name, desc, input, output }]`).
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue, tools: JsValue, now_ms: f64) -> Result<ClientSession, JsValue> {
        let options: ClientOptions = if config.is_undefined() || config.is_null() {
            ClientOptions::default()
        } else {
            serde_wasm_bindgen::from_value(config).map_err(|e| bad("config", e))?
        };
        let tools: Vec<ToolSpec> = if tools.is_undefined() || tools.is_null() {
            Vec::new()
        } else {
            serde_wasm_bindgen::from_value(tools).map_err(|e| bad("tools", e))?
        };
        let events = EventSource::new(now_ms, 1000.0);
        Ok(ClientSession { session: Session::client(options.into_config(tools), events.at(now_ms)), events })
    }

    fn at(&self, now_ms: f64) -> Instant {
        self.events.at(now_ms)
    }

    /// A binary WebSocket message arrived.
    #[wasm_bindgen(js_name = handleMessage)]
    pub fn handle_message(&mut self, bytes: &[u8], now_ms: f64) {
        let now = self.at(now_ms);
        self.session.handle_message(now, Bytes::copy_from_slice(bytes));
    }

    /// A text WebSocket message arrived (a protocol error in ASP/1).
    #[wasm_bindgen(js_name = handleTextMessage)]
    pub fn handle_text_message(&mut self, now_ms: f64) {
        let now = self.at(now_ms);
        self.session.handle_text_message(now);
    }

    /// The WebSocket closed or failed.
    #[wasm_bindgen(js_name = handleTransportClosed)]
    pub fn handle_transport_closed(&mut self, now_ms: f64) {
        let now = self.at(now_ms);
        self.session.handle_transport_closed(now);
    }

    /// The time `pollTimeout()` gave has come.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) {
        let now = self.at(now_ms);
        self.session.handle_timeout(now);
    }

    /// A new WebSocket is open for a detached session: queues the resuming
    /// HELLO.
    pub fn reconnect(&mut self, now_ms: f64) -> Result<(), JsValue> {
        let now = self.at(now_ms);
        self.session.reconnect(now).map_err(refused)
    }

    /// The next message to send, or `undefined`.
    #[wasm_bindgen(js_name = pollTransmit)]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.session.poll_transmit().map(|b| b.to_vec())
    }

    /// The next event (an object with a `type`), or `undefined`.
    #[wasm_bindgen(js_name = pollEvent)]
    pub fn poll_event(&mut self) -> JsValue {
        match self.events.next(&mut self.session) {
            Some(event) => to_js(&event),
            None => JsValue::UNDEFINED,
        }
    }

    /// When to call `handleTimeout`, in ms on the caller's clock, or
    /// `undefined` when no timer runs.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.session.poll_timeout().map(|at| self.events.caller_time(at))
    }

    /// Invokes `tool` on the server; returns the request id. `options`:
    /// `{ timeoutMs, trace, meta }`.
    pub fn invoke(&mut self, tool: String, args: JsValue, options: JsValue, now_ms: f64) -> Result<u16, JsValue> {
        let opts: InvokeOptions = if options.is_undefined() || options.is_null() {
            InvokeOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options).map_err(|e| bad("invoke options", e))?
        };
        let args = from_js(args).map_err(JsValue::from)?;
        let invoke = opts.into_invoke(tool, args);
        let now = self.at(now_ms);
        self.session.invoke(now, invoke).map(|id| id.0).map_err(refused)
    }

    /// Stops invocation `id` (INTERRUPT).
    pub fn interrupt(&mut self, id: u16, reason: Option<String>) -> Result<(), JsValue> {
        self.session.interrupt(RequestId(id), reason).map_err(refused)
    }

    /// The application consumed `bytes` of `id`'s output: credit flows back.
    pub fn grant(&mut self, id: u16, bytes: u32) {
        self.session.grant(RequestId(id), bytes as usize);
    }

    /// Sends output of a tool we handle; returns how many bytes from the
    /// end of `data` could not go (no credit): send them after a
    /// `writable` event.
    #[wasm_bindgen(js_name = sendChunk)]
    pub fn send_chunk(&mut self, id: u16, data: &[u8]) -> Result<u32, JsValue> {
        let mut rest = Bytes::copy_from_slice(data);
        match self.session.send_chunk(RequestId(id), &mut rest) {
            Ok(()) => Ok(0),
            Err(SendError::Blocked) => Ok(rest.len() as u32),
            Err(e) => Err(refused(e)),
        }
    }

    /// Progress of a tool we handle.
    #[wasm_bindgen(js_name = sendProgress)]
    pub fn send_progress(
        &mut self,
        id: u16,
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> Result<(), JsValue> {
        let update = Progress { progress, total, message };
        self.session.send_progress(RequestId(id), update).map_err(refused)
    }

    /// A tool we handle finished with `result`.
    pub fn complete(&mut self, id: u16, result: JsValue, now_ms: f64) -> Result<(), JsValue> {
        let result = from_js(result).map_err(JsValue::from)?;
        let now = self.at(now_ms);
        self.session.complete(now, RequestId(id), result, None).map_err(refused)
    }

    /// A tool we handle failed with `code` (e.g. 304 `TOOL_FAILED`).
    pub fn fail(&mut self, id: u16, code: u16, message: String) -> Result<(), JsValue> {
        self.session.fail(RequestId(id), ErrorCode(code), message).map_err(refused)
    }

    /// Changes the tools we offer: `op` is `add`, `remove` or `replace`.
    #[wasm_bindgen(js_name = pushTools)]
    pub fn push_tools(&mut self, op: &str, tools: JsValue) -> Result<(), JsValue> {
        let op = match op {
            "add" => ToolOp::Add,
            "remove" => ToolOp::Remove,
            "replace" => ToolOp::Replace,
            other => return Err(bad("op", format!("{other:?} is not add, remove or replace"))),
        };
        let tools: Vec<ToolSpec> = serde_wasm_bindgen::from_value(tools).map_err(|e| bad("tools", e))?;
        self.session.push_tools(op, tools).map_err(refused)
    }

    /// Starts a graceful drain (GOAWAY).
    pub fn goaway(&mut self, message: Option<String>, now_ms: f64) -> Result<(), JsValue> {
        let now = self.at(now_ms);
        self.session.goaway(now, message, None).map_err(refused)
    }

    /// Ends the session (ERROR(0, code) unless `code` is 0).
    pub fn close(&mut self, code: u16, message: String) {
        self.session.close(ErrorCode(code), message);
    }

    /// The server's tools: `[{ name, desc, input, output, meta }]`.
    #[wasm_bindgen(js_name = peerTools)]
    pub fn peer_tools(&self) -> JsValue {
        let tools: Vec<&ToolSpec> = self.session.peer_tools().iter().collect();
        to_js(&tools)
    }

    /// The connection id, once connected.
    #[wasm_bindgen(js_name = connectionId)]
    pub fn connection_id(&self) -> Option<String> {
        self.session.connection_id().map(str::to_owned)
    }

    /// `handshaking`, `open`, `draining`, `detached` or `closed`.
    pub fn state(&self) -> String {
        format!("{:?}", self.session.state()).to_lowercase()
    }

    /// The smoothed round-trip time from PING/PONG, in ms.
    #[wasm_bindgen(js_name = rttMs)]
    pub fn rtt_ms(&self) -> Option<f64> {
        self.session.rtt().map(|d| d.as_secs_f64() * 1000.0)
    }

    /// Counters: `{ framesIn, framesOut, bytesIn, bytesOut, openInvocations, bufferedBytes }`.
    pub fn stats(&self) -> JsValue {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct JsStats {
            frames_in: u64,
            frames_out: u64,
            bytes_in: u64,
            bytes_out: u64,
            open_invocations: usize,
            buffered_bytes: usize,
        }
        let s = self.session.stats();
        to_js(&JsStats {
            frames_in: s.frames_in,
            frames_out: s.frames_out,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            open_invocations: s.open_invocations,
            buffered_bytes: s.buffered_bytes,
        })
    }

    /// True once the `closed` event has been taken.
    #[wasm_bindgen(js_name = isClosed)]
    pub fn is_closed(&self) -> bool {
        self.events.closed() || self.session.is_closed()
    }
}
