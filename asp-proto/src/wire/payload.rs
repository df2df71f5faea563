//! The MsgPack payloads of every frame type but STREAM output (SPEC.md §6).
//!
//! Each struct is the wire schema: field names are the keys (renamed where the
//! key is shorter than a good Rust name), `Option`/empty fields are optional
//! keys and are left out when unset, everything else is required. Unknown keys
//! are ignored on input so that later versions can add keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;

use super::msgpack::{invalid, MapPayload};
use super::PayloadError;
use crate::limits::{
    MAX_CONNECTION_ID_LEN, MAX_RESUME_TICKET_LEN, MAX_WINDOW, MIN_MAX_FRAME_PAYLOAD, MIN_RESUME_TICKET_LEN,
};
use crate::ErrorCode;

/// Any MsgPack value: tool arguments, results, error data, schemas.
pub use rmpv::Value;

fn is_nil(v: &Value) -> bool {
    v.is_nil()
}

fn nil() -> Value {
    Value::Nil
}

/// For optional keys whose Rust type has no "absent" of its own (lists,
/// maps): an explicit nil means absent, as for every other optional key.
fn nil_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The limits a peer announces in its HELLO (`limits`): each bounds what the
/// announcing peer will *receive*. An absent key means the default of
/// SPEC.md §12.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLimits {
    /// Largest frame payload accepted (`max_frame`), at least 16 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame: Option<u32>,
    /// Most invocations the peer may have open towards us at once (`max_inv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inv: Option<u16>,
    /// Initial STREAM credit for each invocation, in bytes (`win`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win: Option<u32>,
    /// Initial STREAM credit for the whole connection, in bytes (`cwin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwin: Option<u32>,
}

impl PeerLimits {
    /// True when no limit is announced (the key is then left out).
    pub fn is_empty(&self) -> bool {
        *self == PeerLimits::default()
    }

    fn validate(&self) -> Result<(), PayloadError> {
        if let Some(m) = self.max_frame {
            if m < MIN_MAX_FRAME_PAYLOAD {
                return Err(invalid("limits.max_frame", format!("must be at least {MIN_MAX_FRAME_PAYLOAD}")));
            }
        }
        for (key, w) in [("limits.win", self.win), ("limits.cwin", self.cwin)] {
            if w.is_some_and(|w| w > MAX_WINDOW) {
                return Err(invalid(key, format!("must be at most {MAX_WINDOW}")));
            }
        }
        Ok(())
    }
}

/// A tool a peer offers (SPEC.md §6.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Unique name within the offering peer (`name`).
    pub name: String,
    /// Human-readable description (`desc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// JSON Schema of the arguments, as a MsgPack map (`input`).
    #[serde(default = "nil", skip_serializing_if = "is_nil")]
    pub input: Value,
    /// JSON Schema of the result (`output`).
    #[serde(default = "nil", skip_serializing_if = "is_nil")]
    pub output: Value,
    /// Free-form annotations (`meta`).
    #[serde(default = "nil", skip_serializing_if = "is_nil")]
    pub meta: Value,
}

impl ToolSpec {
    /// A tool with a name and nothing else.
    pub fn named(name: impl Into<String>) -> Self {
        ToolSpec { name: name.into(), desc: None, input: Value::Nil, output: Value::Nil, meta: Value::Nil }
    }
}

fn validate_tools(key: &str, tools: &[ToolSpec]) -> Result<(), PayloadError> {
    for (i, tool) in tools.iter().enumerate() {
        if tool.name.is_empty() {
            return Err(invalid(&format!("{key}[{i}].name"), "must not be empty"));
        }
    }
    Ok(())
}

/// The client's resume request inside HELLO (`resume`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRequest {
    /// The ticket the server issued (`ticket`, bin, 16–64 bytes).
    pub ticket: ByteBuf,
    /// How many sequenced frames the client has received in the session (`recv`).
    pub recv: u64,
}

fn validate_ticket(key: &str, ticket: &[u8]) -> Result<(), PayloadError> {
    if !(MIN_RESUME_TICKET_LEN..=MAX_RESUME_TICKET_LEN).contains(&ticket.len()) {
        return Err(invalid(
            key,
            format!("must be {MIN_RESUME_TICKET_LEN} to {MAX_RESUME_TICKET_LEN} bytes, got {}", ticket.len()),
        ));
    }
    Ok(())
}

/// HELLO from the client: the offer (SPEC.md §6.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Protocol versions the client speaks, most preferred first (`v`).
    #[serde(rename = "v")]
    pub versions: Vec<u8>,
    /// Client software name and version, for logs (`name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Capability tokens (`caps`).
    #[serde(default, deserialize_with = "nil_as_default", skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Bearer token, for clients that cannot set an `Authorization` header (`token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Present when reconnecting to an existing session (`resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeRequest>,
    /// What the client accepts (`limits`).
    #[serde(default, deserialize_with = "nil_as_default", skip_serializing_if = "PeerLimits::is_empty")]
    pub limits: PeerLimits,
    /// Tools the client offers to the server (`tools`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
}

impl ClientHello {
    /// An offer of ASP/1 with nothing else: no token, no resume, default
    /// limits, no tools.
    pub fn new() -> Self {
        ClientHello {
            versions: vec![crate::FrameHeader::VERSION],
            name: None,
            caps: Vec::new(),
            token: None,
            resume: None,
            limits: PeerLimits::default(),
            tools: None,
        }
    }
}

impl Default for ClientHello {
    fn default() -> Self {
        ClientHello::new()
    }
}

impl MapPayload for ClientHello {
    fn validate(&self) -> Result<(), PayloadError> {
        if self.versions.is_empty() {
            return Err(invalid("v", "must list at least one version"));
        }
        if let Some(resume) = &self.resume {
            validate_ticket("resume.ticket", &resume.ticket)?;
        }
        self.limits.validate()?;
        validate_tools("tools", self.tools.as_deref().unwrap_or_default())
    }
}

/// The session a server offers to keep for resumption (`resume` in its HELLO).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeOffer {
    /// The secret the client presents to resume (`ticket`, bin, 16–64 bytes).
    pub ticket: ByteBuf,
    /// How long the session outlives a dropped transport, in ms (`grace`).
    pub grace: u32,
}

/// Sent by the server when it resumed the session the client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    /// How many sequenced frames the server has received in the session (`recv`).
    pub recv: u64,
    /// The session was resumed by a server other than the one that held it
    /// (a relay cluster, SPEC.md §11.4): its identity, tools and state carry
    /// over, but nothing is replayed, both sides count sequenced frames from
    /// 0 again, flow control starts afresh, and every invocation that was
    /// open ends with `NODE_LOST` (`restart`, omitted when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

/// HELLO from the server or relay: the answer (flag `HELLO_REPLY`, SPEC.md §6.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerHello {
    /// The version chosen from the client's list (`v`).
    #[serde(rename = "v")]
    pub version: u8,
    /// The connection id, for logs, relays and the management API (`cid`).
    pub cid: String,
    /// What the server accepts (`limits`).
    #[serde(default, deserialize_with = "nil_as_default", skip_serializing_if = "PeerLimits::is_empty")]
    pub limits: PeerLimits,
    /// PING interval in ms (`hb`); absent means 15000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hb: Option<u32>,
    /// Capability tokens (`caps`).
    #[serde(default, deserialize_with = "nil_as_default", skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Present when this session can be resumed later (`resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeOffer>,
    /// Present when this HELLO resumed the session the client asked for (`resumed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<Resumed>,
    /// Why the requested resume was refused (`resume_error`); a new session starts instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_error: Option<ErrorCode>,
    /// The server's tools, when it sends them with the handshake (`tools`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolSpec>>,
}

impl ServerHello {
    /// An answer choosing ASP/1 for connection `cid`, with defaults for
    /// everything else.
    pub fn new(cid: impl Into<String>) -> Self {
        ServerHello {
            version: crate::FrameHeader::VERSION,
            cid: cid.into(),
            limits: PeerLimits::default(),
            hb: None,
            caps: Vec::new(),
            resume: None,
            resumed: None,
            resume_error: None,
            tools: None,
        }
    }
}

impl MapPayload for ServerHello {
    fn validate(&self) -> Result<(), PayloadError> {
        if self.cid.is_empty() || self.cid.len() > MAX_CONNECTION_ID_LEN {
            return Err(invalid("cid", format!("must be 1 to {MAX_CONNECTION_ID_LEN} bytes")));
        }
        if self.hb == Some(0) {
            return Err(invalid("hb", "must be positive"));
        }
        if let Some(offer) = &self.resume {
            validate_ticket("resume.ticket", &offer.ticket)?;
        }
        if self.resumed.is_some() && self.resume_error.is_some() {
            return Err(invalid("resume_error", "cannot be sent with `resumed`"));
        }
        self.limits.validate()?;
        validate_tools("tools", self.tools.as_deref().unwrap_or_default())
    }
}

/// INVOKE: open an invocation (SPEC.md §6.6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invoke {
    /// The tool to run (`tool`).
    pub tool: String,
    /// Its arguments (`args`); absent means nil.
    #[serde(default = "nil", skip_serializing_if = "is_nil")]
    pub args: Value,
    /// Relative deadline in ms from receipt (`timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// W3C `traceparent` of the caller's span (`trace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// String metadata, like HTTP headers (`meta`).
    #[serde(default, deserialize_with = "nil_as_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

impl Invoke {
    /// An invocation of `tool` with `args`.
    pub fn new(tool: impl Into<String>, args: Value) -> Self {
        Invoke { tool: tool.into(), args, timeout: None, trace: None, meta: BTreeMap::new() }
    }
}

impl MapPayload for Invoke {
    fn validate(&self) -> Result<(), PayloadError> {
        if self.tool.is_empty() {
            return Err(invalid("tool", "must not be empty"));
        }
        Ok(())
    }
}

/// A progress update: a STREAM frame with flag `STREAM_PROGRESS` (SPEC.md §6.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Work done so far, finite and non-negative (`progress`).
    pub progress: f64,
    /// Total work, when known (`total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// What is happening, for display (`message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Progress {
    /// `progress` units of work done, total unknown, no message.
    pub fn new(progress: f64) -> Self {
        Progress { progress, total: None, message: None }
    }

    /// The same, with the total work.
    pub fn total(mut self, total: f64) -> Self {
        self.total = Some(total);
        self
    }

    /// The same, with a message for display.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

impl MapPayload for Progress {
    fn validate(&self) -> Result<(), PayloadError> {
        for (key, v) in [("progress", Some(self.progress)), ("total", self.total)] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(invalid(key, "must be a finite, non-negative number"));
            }
        }
        Ok(())
    }
}

/// INTERRUPT: the invoker asks the handler to stop (SPEC.md §6.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interrupt {
    /// Why, for logs (`reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MapPayload for Interrupt {}

/// What a TOOL_DEF frame does to the sender's tool set.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolOp {
    /// Add the tools, replacing any of the same name.
    Add,
    /// Remove the tools with these names (other keys of each entry are ignored).
    Remove,
    /// The listed tools are now the whole set.
    Replace,
}

/// TOOL_DEF: change the sender's tool set (SPEC.md §6.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDef {
    /// The operation (`op`: `"add"`, `"remove"` or `"replace"`).
    pub op: ToolOp,
    /// The tools it applies to (`tools`).
    pub tools: Vec<ToolSpec>,
}

impl MapPayload for ToolDef {
    fn validate(&self) -> Result<(), PayloadError> {
        validate_tools("tools", &self.tools)
    }
}

/// ERROR: an invocation (request id ≠ 0) or the connection (0) failed (SPEC.md §6.7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The error code (`code`).
    pub code: ErrorCode,
    /// Human-readable explanation (`message`).
    pub message: String,
    /// Structured detail (`data`).
    #[serde(default = "nil", skip_serializing_if = "is_nil")]
    pub data: Value,
}

/// The one shape of "code, message, data" everywhere above the wire too:
/// a tool's failure, an invocation's error, an authentication verdict.
impl ErrorInfo {
    /// An error with a code and message and no data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorInfo { code, message: message.into(), data: Value::Nil }
    }

    /// The tool ran and failed (`TOOL_FAILED`).
    pub fn failed(message: impl Into<String>) -> Self {
        ErrorInfo::new(ErrorCode::TOOL_FAILED, message)
    }

    /// The arguments were wrong (`INVALID_ARGUMENTS`).
    pub fn invalid_arguments(message: impl Into<String>) -> Self {
        ErrorInfo::new(ErrorCode::INVALID_ARGUMENTS, message)
    }

    /// The same error with structured detail.
    pub fn with_data(mut self, data: impl Into<Value>) -> Self {
        self.data = data.into();
        self
    }
}

/// A tool's own failure described in words: `TOOL_FAILED` with that message
/// (so a handler can write `Err("no such city".into())` or `?` on an error
/// it has turned into a string).
impl From<String> for ErrorInfo {
    fn from(message: String) -> Self {
        ErrorInfo::failed(message)
    }
}

impl From<&str> for ErrorInfo {
    fn from(message: &str) -> Self {
        ErrorInfo::failed(message)
    }
}

/// An I/O failure inside a tool: `TOOL_FAILED` with the error's text.
impl From<std::io::Error> for ErrorInfo {
    fn from(error: std::io::Error) -> Self {
        ErrorInfo::failed(error.to_string())
    }
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorInfo {}

impl MapPayload for ErrorInfo {}

/// How an invocation ran, reported in COMPLETE (`metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Wall-clock time from receipt of INVOKE to COMPLETE, in µs (`wall_us`).
    pub wall_us: u64,
    /// CPU time spent, in µs, when the handler knows it (`cpu_us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us: Option<u64>,
}

/// COMPLETE: an invocation's result (SPEC.md §6.8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Complete {
    /// The result (`result`); absent means nil.
    #[serde(default = "nil", skip_serializing_if = "is_nil")]
    pub result: Value,
    /// How it ran (`metrics`).
    pub metrics: Metrics,
}

impl MapPayload for Complete {}

/// PING: liveness probe, carrying the receive count for resume (SPEC.md §6.9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Sequence number the PONG echoes (`seq`).
    pub seq: u32,
    /// Sequenced frames received so far in the session, when resume is on (`recv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv: Option<u64>,
}

impl MapPayload for Ping {}

/// PONG: answer to PING (SPEC.md §6.9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The `seq` of the PING answered (`seq`).
    pub seq: u32,
    /// Sequenced frames received so far in the session, when resume is on (`recv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv: Option<u64>,
}

impl MapPayload for Pong {}

/// WINDOW: more STREAM credit (SPEC.md §6.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Bytes of credit added, 1 to 2^31 − 1 (`credit`).
    pub credit: u32,
}

impl MapPayload for Window {
    fn validate(&self) -> Result<(), PayloadError> {
        if self.credit == 0 || self.credit > MAX_WINDOW {
            return Err(invalid("credit", format!("must be 1 to {MAX_WINDOW}")));
        }
        Ok(())
    }
}

/// GOAWAY: the sender drains (SPEC.md §6.11).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoAway {
    /// Why (`code`); absent means `NO_ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Human-readable explanation (`message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MapPayload for GoAway {}
