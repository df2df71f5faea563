//! What a binding reads from its caller (client options, invoke options)
//! and how it names a refused command.

use std::collections::BTreeMap;
use std::time::Duration;

use asp_proto::{Invoke, SendError, SessionConfig, ToolSpec, Value};
use serde::Deserialize;

/// A client session's options; every field optional (camelCase keys).
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ClientOptions {
    /// Bearer token sent in HELLO.
    pub token: Option<String>,
    /// Client name announced in HELLO.
    pub name: Option<String>,
    /// Resume after a lost transport (default true).
    pub resume: Option<bool>,
    /// Capabilities announced in HELLO.
    pub caps: Option<Vec<String>>,
    /// PING interval.
    pub heartbeat_ms: Option<u64>,
    /// Limit for the server's HELLO.
    pub handshake_timeout_ms: Option<u64>,
    /// Credit per invocation we receive output for.
    pub invocation_window: Option<u32>,
    /// Credit for the whole connection.
    pub connection_window: Option<u32>,
    /// Largest frame payload we accept.
    pub max_frame_payload: Option<u32>,
}

impl ClientOptions {
    /// The session configuration: these options over asp-proto's defaults.
    pub fn into_config(self, tools: Vec<ToolSpec>) -> SessionConfig {
        let mut config = SessionConfig {
            token: self.token,
            name: self.name,
            caps: self.caps.unwrap_or_default(),
            tools: tools.into(),
            ..Default::default()
        };
        config.resume = self.resume.unwrap_or(config.resume);
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        config.heartbeat_interval = ms(self.heartbeat_ms, config.heartbeat_interval);
        config.handshake_timeout = ms(self.handshake_timeout_ms, config.handshake_timeout);
        config.invocation_window = self.invocation_window.unwrap_or(config.invocation_window);
        config.connection_window = self.connection_window.unwrap_or(config.connection_window);
        config.max_frame_payload = self.max_frame_payload.unwrap_or(config.max_frame_payload);
        config
    }
}

/// Options of one invocation (camelCase keys).
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct InvokeOptions {
    /// The INVOKE's `timeout`, ms.
    pub timeout_ms: Option<u32>,
    /// The INVOKE's `trace`.
    pub trace: Option<String>,
    /// The INVOKE's `meta`; `Option` so that an explicit null (JS
    /// `undefined`, Python `None`) reads as absent.
    pub meta: Option<BTreeMap<String, String>>,
}

impl InvokeOptions {
    /// The INVOKE frame's content.
    pub fn into_invoke(self, tool: String, args: Value) -> Invoke {
        Invoke {
            timeout: self.timeout_ms,
            trace: self.trace,
            meta: self.meta.unwrap_or_default(),
            ..Invoke::new(tool, args)
        }
    }
}

/// The name a binding gives a refused command (`blocked`, `notOpen`,
/// `wrongState`, `tooManyInvocations`, `goingAway`, `tooLarge`, `invalid`).
pub fn refusal_kind(error: &SendError) -> &'static str {
    match error {
        SendError::Blocked => "blocked",
        SendError::NotOpen(_) => "notOpen",
        SendError::WrongState(_) => "wrongState",
        SendError::TooManyInvocations(_) => "tooManyInvocations",
        SendError::GoingAway => "goingAway",
        SendError::TooLarge { .. } => "tooLarge",
        _ => "invalid",
    }
}
