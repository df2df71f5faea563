//! Resuming on another server (SPEC.md §11.4): what a server saves so that
//! a peer of its cluster can adopt a session it held, and the restart that
//! adopts it.
//!
//! The server that held the session is gone, and with it its replay buffer,
//! so a restart keeps the session's identity (`cid`, ticket lookup key),
//! its tool set and whatever the application saved with it, and nothing
//! in flight: both sides count sequenced frames from 0 again, flow control
//! starts afresh, and every invocation that was open ends with
//! [`ErrorCode::NODE_LOST`] on the client.

use serde::{Deserialize, Serialize};

use super::*;

/// What a server saves of a session for another server to adopt it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    /// The connection id the session keeps.
    pub cid: String,
    /// The current resume ticket: the adopting server checks the client's
    /// ticket against it. A store holding snapshots holds bearer secrets.
    #[serde(with = "serde_bytes")]
    pub ticket: Vec<u8>,
    /// The server's tool set (what it announced and pushed since).
    pub tools: Vec<ToolSpec>,
    /// The application's own data (a relay keeps the function's state here).
    #[serde(with = "serde_bytes")]
    pub app: Vec<u8>,
}

impl SessionSnapshot {
    /// MsgPack, for the store.
    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a snapshot always encodes")
    }

    /// Reads [`to_bytes`](Self::to_bytes)'s output; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<SessionSnapshot> {
        rmp_serde::from_slice(bytes).ok()
    }

    /// The lookup key of the ticket, as servers index sessions by it.
    pub fn resume_key(&self) -> Option<ResumeKey> {
        ResumeKey::of(&self.ticket)
    }
}

impl Session {
    /// Server: what another server needs to adopt this session, with the
    /// application's `app` data; `None` unless the session is resumable.
    pub fn snapshot(&self, app: Vec<u8>) -> Option<SessionSnapshot> {
        if self.role != Role::Server || !self.resumption.active {
            return None;
        }
        Some(SessionSnapshot {
            cid: self.cid.clone()?,
            ticket: self.resumption.ticket.clone()?,
            tools: self.local_tools.iter().cloned().collect(),
            app,
        })
    }

    /// Server, fresh session whose HELLO asks to resume a session this
    /// server does not hold: adopts `snapshot` of it, saved by the server
    /// that held it (SPEC.md §11.4). The client's ticket must be the
    /// snapshot's, compared in constant time; otherwise this is
    /// `RESUME_UNKNOWN_SESSION` and nothing changed (answer with
    /// [`accept_refusing_resume`](Self::accept_refusing_resume)). On success
    /// the session answers as resumed with `restart`, keeping the `cid`,
    /// the ticket's lookup key (with a new secret) and the tool set.
    pub fn accept_restart(&mut self, now: Instant, snapshot: &SessionSnapshot) -> Result<(), ErrorCode> {
        if self.role != Role::Server || self.state != SessionState::Authenticating || !self.config.resume {
            return Err(ErrorCode::RESUME_REJECTED);
        }
        let hello = self.client_hello.as_ref().expect("Authenticating holds the HELLO");
        let Some(request) = &hello.resume else { return Err(ErrorCode::RESUME_REJECTED) };
        if !hello.caps.iter().any(|c| c == caps::RESTART) {
            // It would take a restart for an ordinary resume (SPEC.md §11.4).
            return Err(ErrorCode::RESUME_UNKNOWN_SESSION);
        }
        let ticket = &snapshot.ticket;
        if ticket.len() != request.ticket.len() || !bool::from(ticket.ct_eq(&request.ticket)) || ticket.len() < 8 {
            return Err(ErrorCode::RESUME_UNKNOWN_SESSION);
        }
        let hello = self.client_hello.take().expect("checked above");
        let mut ticket = snapshot.ticket.clone();
        self.fill_random(&mut ticket[8..]);
        self.resumption.ticket = Some(ticket.clone());
        self.resumption.active = true;
        self.local_tools = ToolSet::new(snapshot.tools.clone());
        let reply = ServerHello {
            resume: Some(ResumeOffer { ticket: ticket.into(), grace: duration_ms(self.config.resume_grace) }),
            resumed: Some(Resumed { recv: 0, restart: true }),
            tools: self.own_tools(),
            ..self.own_server_hello(snapshot.cid.clone())
        };
        self.peer_caps = hello.caps.clone();
        self.apply_peer_limits(&hello.limits);
        self.peer_tools = ToolSet::new(hello.tools.unwrap_or_default());
        self.send(&Frame::HelloReply(reply)).expect("our own HELLO is valid");
        self.cid = Some(snapshot.cid.clone());
        self.established(now);
        self.announce_tools();
        self.events.push_back(Event::Connected { cid: snapshot.cid.clone(), resumed: true, resume_error: None });
        Ok(())
    }

    /// Client: the server resumed the session with `restart`: what was in
    /// flight is lost, everything else goes on as after a new handshake.
    pub(super) fn restart_client_session(&mut self) {
        self.fail_all(ErrorCode::NODE_LOST, "the relay node holding the session was lost; retry");
        self.reset_session();
    }
}
