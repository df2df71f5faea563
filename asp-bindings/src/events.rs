//! Session events as tagged records (a JS object, a Python dict), one
//! `type` each, keys in camelCase:
//!
//! | `type` | fields |
//! |---|---|
//! | `helloReceived` | `token`, `name`, `caps`, `resumeRequested` (server: accept or reject) |
//! | `connected` | `cid`, `resumed`, `resumeError` (code or null) |
//! | `invoked` | `id`, `tool`, `args`, `timeout`, `trace`, `meta` (the server calls one of our tools) |
//! | `interrupted` | `id`, `code` (stop that tool) |
//! | `chunk` | `id`, `data` (`Uint8Array`) |
//! | `progress` | `id`, `progress`, `total`, `message` |
//! | `completed` | `id`, `result`, `wallUs`, `cpuUs` |
//! | `failed` | `id`, `code`, `name`, `message` |
//! | `writable` | `id` (0: the connection) |
//! | `toolsChanged` | — (read `peerTools()`) |
//! | `goaway` | `code`, `message` |
//! | `detached` | `reason` (`transportClosed`, `peerUnresponsive`), `deadline` (on the caller's clock) |
//! | `closed` | `code`, `name`, `message`, `byPeer`, `websocketCode` |

use std::collections::BTreeMap;

use asp_proto::{DetachReason, ErrorCode, Event, Initiator, Value};
use serde::Serialize;

/// One event, shaped for a foreign language (the table above says what
/// each field is).
#[allow(missing_docs)]
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ShapedEvent {
    HelloReceived {
        token: Option<String>,
        name: Option<String>,
        caps: Vec<String>,
        resume_requested: bool,
    },
    Connected {
        cid: String,
        resumed: bool,
        resume_error: Option<u16>,
    },
    Invoked {
        id: u16,
        tool: String,
        #[serde(serialize_with = "crate::values::safe_value")]
        args: Value,
        timeout: Option<u32>,
        trace: Option<String>,
        meta: BTreeMap<String, String>,
    },
    Interrupted {
        id: u16,
        code: u16,
    },
    Chunk {
        id: u16,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Progress {
        id: u16,
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    },
    Completed {
        id: u16,
        #[serde(serialize_with = "crate::values::safe_value")]
        result: Value,
        wall_us: u64,
        cpu_us: Option<u64>,
    },
    Failed {
        id: u16,
        code: u16,
        name: Option<&'static str>,
        message: String,
    },
    Writable {
        id: u16,
    },
    ToolsChanged,
    Goaway {
        code: u16,
        message: Option<String>,
    },
    Detached {
        reason: &'static str,
        deadline: f64,
    },
    Closed {
        code: u16,
        name: Option<&'static str>,
        message: String,
        by_peer: bool,
        websocket_code: u16,
    },
}

/// The event as the binding shows it, or `None` for one no binding uses.
/// `deadline` maps a session instant to the caller's clock.
pub fn shape(event: Event, deadline: impl Fn(web_time::Instant) -> f64) -> Option<ShapedEvent> {
    Some(match event {
        Event::HelloReceived(hello) => ShapedEvent::HelloReceived {
            token: hello.token,
            name: hello.name,
            caps: hello.caps,
            resume_requested: hello.resume_requested,
        },
        Event::Connected { cid, resumed, resume_error } => {
            ShapedEvent::Connected { cid, resumed, resume_error: resume_error.map(|c| c.0) }
        }
        Event::Invoked { id, invoke } => ShapedEvent::Invoked {
            id: id.0,
            tool: invoke.tool,
            args: invoke.args,
            timeout: invoke.timeout,
            trace: invoke.trace,
            meta: invoke.meta,
        },
        Event::Interrupted { id, code } => ShapedEvent::Interrupted { id: id.0, code: code.0 },
        Event::Chunk { id, data } => ShapedEvent::Chunk { id: id.0, data: data.to_vec() },
        Event::Progress { id, progress } => ShapedEvent::Progress {
            id: id.0,
            progress: progress.progress,
            total: progress.total,
            message: progress.message,
        },
        Event::Completed { id, result, metrics } => {
            ShapedEvent::Completed { id: id.0, result, wall_us: metrics.wall_us, cpu_us: metrics.cpu_us }
        }
        Event::Failed { id, error } => {
            ShapedEvent::Failed { id: id.0, code: error.code.0, name: error.code.name(), message: error.message }
        }
        Event::Writable { id } => ShapedEvent::Writable { id: id.0 },
        Event::PeerToolsChanged => ShapedEvent::ToolsChanged,
        Event::GoAway { code, message } => ShapedEvent::Goaway { code: code.0, message },
        Event::Detached { reason, deadline: at } => ShapedEvent::Detached {
            reason: match reason {
                DetachReason::TransportClosed => "transportClosed",
                _ => "peerUnresponsive",
            },
            deadline: deadline(at),
        },
        Event::Closed(reason) => ShapedEvent::Closed {
            code: reason.code.0,
            name: ErrorCode::name(reason.code),
            websocket_code: reason.websocket_code(),
            message: reason.message,
            by_peer: reason.initiator == Initiator::Peer,
        },
        // Resume routing between transports: the Rust servers' job.
        _ => return None,
    })
}
