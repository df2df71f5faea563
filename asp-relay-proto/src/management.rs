//! The management API (SPEC.md §15.3): how a function reaches a client after
//! its call ended. Requests arrive as plain data; the adapter runs the HTTP
//! server.

use std::time::Instant;

use bytes::Bytes;
use serde_json::json;
use subtle::ConstantTimeEq;

use asp_proto::session::SessionState;
use asp_proto::{ErrorCode, Frame};

use super::{Relay, SessionKey};

/// One HTTP request to the management API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagementRequest {
    /// `GET`, `POST` or `DELETE`.
    pub method: String,
    /// The request path, e.g. `/v1/connections/c-1f…/frames`.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The body (frames for `POST …/frames`).
    pub body: Bytes,
}

/// The answer: a status and a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagementResponse {
    /// HTTP status.
    pub status: u16,
    /// `application/json`, possibly empty (204).
    pub body: Bytes,
}

impl ManagementResponse {
    fn json(status: u16, value: serde_json::Value) -> Self {
        ManagementResponse { status, body: Bytes::from(value.to_string()) }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, json!({ "error": message.into() }))
    }
}

/// True when `authorization` (an `Authorization` header) carries the
/// management `secret`, compared in constant time. Without a secret nothing
/// is authorized. Adapters check this before they read a request's body, so
/// an unauthenticated client cannot make the relay read 1 MiB.
pub fn management_authorized(secret: Option<&str>, authorization: Option<&str>) -> bool {
    match (secret, authorization) {
        (Some(secret), Some(header)) => {
            header.strip_prefix("Bearer ").is_some_and(|given| bool::from(given.as_bytes().ct_eq(secret.as_bytes())))
        }
        _ => false,
    }
}

/// The frames of a `POST /v1/connections/{cid}/frames` body, checked as the
/// relay checks them (TOOL_DEF and GOAWAY only, each within `max_frame`),
/// or the 400 to answer. A cluster node queueing a push for a connection
/// whose node is gone checks it the same way.
pub fn connection_push_frames(body: Bytes, max_frame: u32) -> Result<Vec<Frame>, ManagementResponse> {
    push_frames_of(body, max_frame, |f| matches!(f, Frame::ToolDef(_) | Frame::GoAway(_)), "TOOL_DEF and GOAWAY")
}

/// The frames of a push body, when they are all of the kinds `allowed`.
fn push_frames_of(
    body: Bytes,
    max_frame: u32,
    allowed: fn(&Frame) -> bool,
    kinds: &str,
) -> Result<Vec<Frame>, ManagementResponse> {
    let frames = asp_proto::decode_all(body, max_frame)
        .map_err(|e| ManagementResponse::error(400, format!("invalid frames: {e}")))?;
    if let Some(bad) = frames.iter().find(|f| !allowed(f)) {
        let message = format!("only {kinds} may be pushed, not {:?}", bad.frame_type());
        return Err(ManagementResponse::error(400, message));
    }
    Ok(frames)
}

enum Target {
    Live(SessionKey),
    Closed,
    Unknown,
}

impl Relay {
    /// Answers one management request: `GET /v1/connections/{cid}` (200
    /// with JSON), `POST /v1/connections/{cid}/frames` (202; TOOL_DEF and
    /// GOAWAY frames only, else 400), `DELETE /v1/connections/{cid}` (204:
    /// GOAWAY, then close), `POST /v1/frames` (202: TOOL_DEF frames for every
    /// connection held here). Unknown connections are 404, recently closed
    /// ones 410, a missing or wrong secret 401.
    pub fn handle_management(&mut self, now: Instant, request: &ManagementRequest) -> ManagementResponse {
        if !management_authorized(self.config.management_secret.as_deref(), request.authorization.as_deref()) {
            return ManagementResponse::error(401, "a valid `Authorization: Bearer <management secret>` is required");
        }
        if request.path == "/v1/frames" {
            return match request.method.as_str() {
                "POST" => self.broadcast_frames(now, request.body.clone()),
                _ => ManagementResponse::error(405, "method not allowed"),
            };
        }
        let Some(rest) = request.path.strip_prefix("/v1/connections/") else {
            return ManagementResponse::error(404, "no such endpoint");
        };
        let (cid, action) = match rest.split_once('/') {
            Some((cid, action)) => (cid, Some(action)),
            None => (rest, None),
        };
        let target = match self.by_cid.get(cid) {
            Some(key) => Target::Live(*key),
            None if self.closed_set.contains(cid) => Target::Closed,
            None => Target::Unknown,
        };
        let key = match target {
            Target::Live(key) => key,
            Target::Closed => return ManagementResponse::error(410, format!("connection {cid} is closed")),
            Target::Unknown => return ManagementResponse::error(404, format!("no connection {cid}")),
        };
        match (request.method.as_str(), action) {
            ("GET", None) => self.connection_info(key),
            ("DELETE", None) => self.disconnect(now, key),
            ("POST", Some("frames")) => self.push_frames(now, key, request.body.clone()),
            (_, None | Some("frames")) => ManagementResponse::error(405, "method not allowed"),
            _ => ManagementResponse::error(404, "no such endpoint"),
        }
    }

    fn connection_info(&self, key: SessionKey) -> ManagementResponse {
        let conn = &self.sessions[&key];
        let stats = conn.session.stats();
        let state = match conn.session.state() {
            SessionState::Open => "open",
            SessionState::Draining => "draining",
            SessionState::Detached => "detached",
            _ => "closing",
        };
        let tools: Vec<&str> = conn.session.local_tools().iter().map(|t| t.name.as_str()).collect();
        ManagementResponse::json(
            200,
            json!({
                "connection_id": conn.cid,
                "state": state,
                "client": { "name": conn.name, "caps": conn.caps },
                "tools": tools,
                "open_invocations": stats.open_invocations,
                "calls": conn.calls.len(),
                "buffered_bytes": stats.buffered_bytes,
                "state_bytes": conn.state.as_ref().map_or(0, Vec::len),
                "rtt_us": stats.rtt.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            }),
        )
    }

    /// `POST /v1/frames`: TOOL_DEF frames for every connection this relay
    /// holds (a cluster sends the same request to every node). A connection
    /// that cannot take them now (closing) is skipped.
    fn broadcast_frames(&mut self, now: Instant, body: Bytes) -> ManagementResponse {
        let max = self.config.session.max_frame_payload;
        let frames = match push_frames_of(body, max, |f| matches!(f, Frame::ToolDef(_)), "TOOL_DEF") {
            Ok(frames) => frames,
            Err(response) => return response,
        };
        let keys: Vec<SessionKey> = self.by_cid.values().copied().collect();
        let mut reached = 0;
        for key in keys {
            let Some(conn) = self.sessions.get_mut(&key) else { continue };
            let mut ok = true;
            for frame in &frames {
                if let Frame::ToolDef(def) = frame {
                    ok &= conn.session.push_tools(def.op, def.tools.clone()).is_ok();
                }
            }
            reached += usize::from(ok);
            self.settle(now, key);
            self.save(key);
        }
        ManagementResponse::json(202, json!({ "frames": frames.len(), "connections": reached }))
    }

    fn push_frames(&mut self, now: Instant, key: SessionKey, body: Bytes) -> ManagementResponse {
        let frames = match connection_push_frames(body, self.config.session.max_frame_payload) {
            Ok(frames) => frames,
            Err(response) => return response,
        };
        let count = frames.len();
        let result = self.apply_pushed(now, key, frames);
        if result.is_ok() {
            self.push_sent(key);
        }
        self.settle(now, key);
        self.save(key);
        match result {
            Ok(()) => ManagementResponse::json(202, json!({ "frames": count })),
            Err(e) => ManagementResponse::error(409, format!("the connection cannot take frames now: {e}")),
        }
    }

    /// Sends checked push frames ([`connection_push_frames`]) to a session,
    /// in order, up to the first it cannot take.
    pub(crate) fn apply_pushed(
        &mut self,
        now: Instant,
        key: SessionKey,
        frames: Vec<Frame>,
    ) -> Result<(), asp_proto::session::SendError> {
        let drain = self.config.disconnect_drain;
        let conn = self.sessions.get_mut(&key).expect("live");
        for frame in frames {
            match frame {
                Frame::ToolDef(def) => conn.session.push_tools(def.op, def.tools)?,
                Frame::GoAway(goaway) => conn.session.goaway(now, goaway.message, Some(drain))?,
                _ => unreachable!("connection_push_frames lets only these through"),
            }
        }
        Ok(())
    }

    fn disconnect(&mut self, now: Instant, key: SessionKey) -> ManagementResponse {
        let conn = self.sessions.get_mut(&key).expect("live");
        if conn.session.state() == SessionState::Detached {
            conn.session.close(ErrorCode::NO_ERROR, "closed by the function");
        } else {
            let message = Some("closed by the function".to_owned());
            let _ = conn.session.goaway(now, message, Some(self.config.disconnect_drain));
        }
        self.settle(now, key);
        ManagementResponse { status: 204, body: Bytes::new() }
    }
}
