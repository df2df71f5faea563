//! [`PySession`] (`agent_socket._core.Session`): asp-proto's `Session`, in
//! the client or the server role, with Python-shaped inputs and outputs
//! (through `asp_bindings`, as the JS binding has them).

use asp_bindings::{ClientOptions, EventSource, InvokeOptions};
use asp_proto::{ErrorCode, Progress, RequestId, SendError, Session, ToolOp, ToolSpec, Value};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{bad, refused};

/// Session randomness (connection ids, resume tickets) from the OS.
struct OsEntropy;

impl asp_proto::Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the operating system's random number generator failed");
    }
}

/// The session configuration and event source both constructors make.
fn configure(
    options: Option<&Bound<'_, PyAny>>,
    tools: Option<&Bound<'_, PyAny>>,
    now: f64,
) -> PyResult<(asp_proto::SessionConfig, EventSource)> {
    let options: ClientOptions = match options {
        Some(o) if !o.is_none() => pythonize::depythonize(o).map_err(|e| bad("options", e))?,
        _ => ClientOptions::default(),
    };
    let tools: Vec<ToolSpec> = match tools {
        Some(t) if !t.is_none() => pythonize::depythonize(t).map_err(|e| bad("tools", e))?,
        _ => Vec::new(),
    };
    Ok((options.into_config(tools), EventSource::new(now, 1.0)))
}

/// A session, made with `Session.client(…)` (HELLO is queued: send
/// `poll_transmit()` once the WebSocket is open) or `Session.server(…)`
/// (answer its `helloReceived` event with `accept` or `reject`). Use it
/// from the event loop's thread: a call from another thread while one runs
/// raises `RuntimeError` (PyO3's borrow check) instead of racing, and the
/// garbage collector may drop it on any thread.
#[pyclass(name = "Session", module = "agent_socket._core")]
pub(crate) struct PySession {
    session: Session,
    /// Events out (chunks merged) and the caller's clock (seconds).
    events: EventSource,
}

#[pymethods]
impl PySession {
    /// A client session. `options`: a dict with any of `token`, `name`,
    /// `resume`, `caps`, `heartbeatMs`, `handshakeTimeoutMs`,
    /// `invocationWindow`, `connectionWindow`, `maxFramePayload`; `tools`:
    /// the tools the server may call; `now`: `loop.time()`.
    #[staticmethod]
    #[pyo3(signature = (options=None, tools=None, now=0.0))]
    fn client(options: Option<&Bound<'_, PyAny>>, tools: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<Self> {
        let (config, events) = configure(options, tools, now)?;
        Ok(PySession { session: Session::client(config, events.at(now)), events })
    }

    /// A server session for one accepted WebSocket: the same `options`
    /// (`resume` is off unless given: resuming across transports needs the
    /// routing the Rust servers do), `tools` the tools we offer.
    #[staticmethod]
    #[pyo3(signature = (options=None, tools=None, now=0.0))]
    fn server(options: Option<&Bound<'_, PyAny>>, tools: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<Self> {
        let (mut config, events) = configure(options, tools, now)?;
        if options.is_none_or(|o| o.is_none() || o.get_item("resume").is_err()) {
            config.resume = false;
        }
        Ok(PySession { session: Session::server(config, events.at(now), Box::new(OsEntropy)), events })
    }

    /// Server: accept the client whose HELLO arrived (a resume it asked for
    /// is refused: it gets a new session and `resumeError`).
    fn accept(&mut self, py: Python<'_>, now: f64) -> PyResult<()> {
        let now = self.events.at(now);
        self.session.accept(now).map_err(|e| refused(py, e))
    }

    /// Server: the bearer token from the upgrade request's `Authorization`
    /// header, used when HELLO carries none (SPEC §3).
    fn set_transport_token(&mut self, token: String) {
        self.session.set_transport_token(Some(token));
    }

    /// Server: refuse the client with `code` (e.g. 100 `UNAUTHENTICATED`).
    fn reject(&mut self, code: u16, message: String) {
        self.session.reject(ErrorCode(code), message);
    }

    /// Starts a graceful drain (GOAWAY): the peer starts nothing new.
    #[pyo3(signature = (now, message=None))]
    fn goaway(&mut self, py: Python<'_>, now: f64, message: Option<String>) -> PyResult<()> {
        let now = self.events.at(now);
        self.session.goaway(now, message, None).map_err(|e| refused(py, e))
    }

    /// A binary WebSocket message arrived.
    fn handle_message(&mut self, data: &[u8], now: f64) {
        let now = self.events.at(now);
        self.session.handle_message(now, Bytes::copy_from_slice(data));
    }

    /// A text WebSocket message arrived (a protocol error in ASP/1).
    fn handle_text_message(&mut self, now: f64) {
        let now = self.events.at(now);
        self.session.handle_text_message(now);
    }

    /// The WebSocket closed or failed.
    fn handle_transport_closed(&mut self, now: f64) {
        let now = self.events.at(now);
        self.session.handle_transport_closed(now);
    }

    /// The time `poll_timeout()` gave has come.
    fn handle_timeout(&mut self, now: f64) {
        let now = self.events.at(now);
        self.session.handle_timeout(now);
    }

    /// A new WebSocket is open after the old one was lost: resume on it.
    fn reconnect(&mut self, py: Python<'_>, now: f64) -> PyResult<()> {
        let now = self.events.at(now);
        self.session.reconnect(now).map_err(|e| refused(py, e))
    }

    /// The next message to send, or None.
    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.session.poll_transmit().map(|b| PyBytes::new(py, &b))
    }

    /// The next event (a dict with a `"type"`), or None.
    fn poll_event<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.events.next(&mut self.session) {
            Some(event) => Ok(Some(pythonize::pythonize(py, &event).map_err(|e| bad("event", e))?)),
            None => Ok(None),
        }
    }

    /// When to call `handle_timeout` (on the `loop.time()` clock), or None.
    fn poll_timeout(&self) -> Option<f64> {
        self.session.poll_timeout().map(|at| self.events.caller_time(at))
    }

    /// Invokes `tool` with `args`; returns the request id. `options`: a
    /// dict with any of `timeoutMs`, `trace`, `meta`.
    #[pyo3(signature = (tool, args, now, options=None))]
    fn invoke(
        &mut self,
        py: Python<'_>,
        tool: String,
        args: &Bound<'_, PyAny>,
        now: f64,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u16> {
        let options: InvokeOptions = match options {
            Some(o) if !o.is_none() => pythonize::depythonize(o).map_err(|e| bad("invoke options", e))?,
            _ => InvokeOptions::default(),
        };
        let args: Value =
            if args.is_none() { Value::Nil } else { pythonize::depythonize(args).map_err(|e| bad("args", e))? };
        let now = self.events.at(now);
        self.session.invoke(now, options.into_invoke(tool, args)).map(|id| id.0).map_err(|e| refused(py, e))
    }

    /// Stops invocation `id` (INTERRUPT).
    #[pyo3(signature = (id, reason=None))]
    fn interrupt(&mut self, py: Python<'_>, id: u16, reason: Option<String>) -> PyResult<()> {
        self.session.interrupt(RequestId(id), reason).map_err(|e| refused(py, e))
    }

    /// The application consumed `size` bytes of `id`'s output: credit back.
    fn grant(&mut self, id: u16, size: usize) {
        self.session.grant(RequestId(id), size);
    }

    /// Sends output of one of our tools the server invoked; returns how many
    /// bytes from the end of `data` could not go (no credit): send them
    /// after a `writable` event.
    fn send_chunk(&mut self, py: Python<'_>, id: u16, data: &[u8]) -> PyResult<usize> {
        let mut rest = Bytes::copy_from_slice(data);
        match self.session.send_chunk(RequestId(id), &mut rest) {
            Ok(()) => Ok(0),
            Err(SendError::Blocked) => Ok(rest.len()),
            Err(e) => Err(refused(py, e)),
        }
    }

    /// Progress of one of our tools.
    #[pyo3(signature = (id, progress, total=None, message=None))]
    fn send_progress(
        &mut self,
        py: Python<'_>,
        id: u16,
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> PyResult<()> {
        self.session.send_progress(RequestId(id), Progress { progress, total, message }).map_err(|e| refused(py, e))
    }

    /// One of our tools finished with `result`.
    fn complete(&mut self, py: Python<'_>, id: u16, result: &Bound<'_, PyAny>, now: f64) -> PyResult<()> {
        let result: Value =
            if result.is_none() { Value::Nil } else { pythonize::depythonize(result).map_err(|e| bad("result", e))? };
        let now = self.events.at(now);
        self.session.complete(now, RequestId(id), result, None).map_err(|e| refused(py, e))
    }

    /// One of our tools failed with `code` (e.g. 304 `TOOL_FAILED`).
    fn fail(&mut self, py: Python<'_>, id: u16, code: u16, message: String) -> PyResult<()> {
        self.session.fail(RequestId(id), ErrorCode(code), message).map_err(|e| refused(py, e))
    }

    /// Changes the tools we offer: `op` is `add`, `remove` or `replace`.
    fn push_tools(&mut self, py: Python<'_>, op: &str, tools: &Bound<'_, PyAny>) -> PyResult<()> {
        let op = match op {
            "add" => ToolOp::Add,
            "remove" => ToolOp::Remove,
            "replace" => ToolOp::Replace,
            other => return Err(bad("op", format!("{other:?} is not add, remove or replace"))),
        };
        let tools: Vec<ToolSpec> = pythonize::depythonize(tools).map_err(|e| bad("tools", e))?;
        self.session.push_tools(op, tools).map_err(|e| refused(py, e))
    }

    /// Ends the session with `code` (0: NO_ERROR).
    fn close(&mut self, code: u16, message: String) {
        self.session.close(ErrorCode(code), message);
    }

    /// The server's tools: a list of dicts (`name`, `desc`, `input`, …).
    fn peer_tools<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tools: Vec<&ToolSpec> = self.session.peer_tools().iter().collect();
        pythonize::pythonize(py, &tools).map_err(|e| bad("tools", e))
    }

    /// The connection id, once connected.
    #[getter]
    fn connection_id(&self) -> Option<String> {
        self.session.connection_id().map(str::to_owned)
    }

    /// `handshaking`, `open`, `draining`, `detached` or `closed`.
    #[getter]
    fn state(&self) -> String {
        format!("{:?}", self.session.state()).to_lowercase()
    }

    /// The smoothed round-trip time from PING/PONG, in seconds.
    #[getter]
    fn rtt(&self) -> Option<f64> {
        self.session.rtt().map(|d| d.as_secs_f64())
    }

    /// True once the session has ended.
    #[getter]
    fn is_closed(&self) -> bool {
        self.events.closed() || self.session.is_closed()
    }
}
