//! Client sessions: every input that touches a session ends in `settle`,
//! which acts on its events (HELLO and auth, resume routing, invocations,
//! credit, close), moves its transmits out and re-arms its timer.

use std::time::Instant;

use asp_proto::session::{Event, HelloInfo, ResumeKey, ResumeOutcome, SessionSnapshot, SessionState};
use asp_proto::ErrorCode;
use bytes::Bytes;
use subtle::ConstantTimeEq;

use crate::call::CallKind;
use crate::{CallId, Command, DirectoryChange, Relay, SessionEntry, SessionKey, TimerKey, TransportId};

/// Lowercase hex, for resume keys in the directory.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Relay {
    /// Acts on a session's events, moves its transmits out and re-arms its
    /// timer. Every input that touched a session ends here.
    pub(crate) fn settle(&mut self, now: Instant, key: SessionKey) {
        loop {
            let Some(conn) = self.sessions.get_mut(&key) else { return };
            let Some(event) = conn.session.poll_event() else { break };
            match event {
                Event::HelloReceived(info) => self.on_hello(now, key, info),
                Event::Connected { cid, resumed: false, .. } => self.on_connected(now, key, cid),
                Event::Invoked { id, invoke } => self.on_invoked(now, key, id, invoke),
                Event::Interrupted { id, .. } => {
                    if let Some(call) = conn.calls.remove(&id) {
                        self.end_call(call, true);
                    }
                }
                Event::Writable { id } => {
                    let calls: Vec<CallId> = if id.is_connection() {
                        conn.calls.values().copied().collect()
                    } else {
                        conn.calls.get(&id).copied().into_iter().collect()
                    };
                    for call in calls {
                        self.flush_call(now, call);
                    }
                }
                // The session gave up on its transport (unanswered PINGs);
                // after a resume it is attached to a new one already.
                Event::Detached { .. } if conn.session.state() == SessionState::Detached => {
                    if let Some(client) = conn.transport.take() {
                        self.transports.remove(&client);
                        let code = ErrorCode::PEER_UNRESPONSIVE;
                        self.commands.push_back(Command::Close {
                            transport: client,
                            code: code.close_code(),
                            reason: "no answer to PING".into(),
                        });
                    }
                }
                Event::Closed(reason) => {
                    self.drain_transmits(key);
                    return self.remove_session(now, key, reason.websocket_code(), reason.message);
                }
                _ => {}
            }
        }
        self.drain_transmits(key);
        self.arm_conn(key);
        self.pushes_acknowledged(key);
    }

    /// A push went to the session (a cluster node tracks it until the
    /// client acknowledges it).
    pub(crate) fn push_sent(&mut self, key: SessionKey) {
        if !self.config.snapshots {
            return;
        }
        if let Some(conn) = self.sessions.get_mut(&key) {
            let (sent, _) = conn.session.sequenced();
            conn.pushes.push_back(sent);
        }
    }

    /// Announces the pushes the client has acknowledged since last time.
    fn pushes_acknowledged(&mut self, key: SessionKey) {
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        let (_, acked) = conn.session.sequenced();
        let mut pushes = 0;
        while conn.pushes.front().is_some_and(|&sent| sent <= acked) {
            conn.pushes.pop_front();
            pushes += 1;
        }
        if let (true, Some(cid)) = (pushes > 0, conn.cid.clone()) {
            self.commands.push_back(Command::Directory(DirectoryChange::Acknowledged { cid, pushes }));
        }
    }

    pub(crate) fn drain_transmits(&mut self, key: SessionKey) {
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        let Some(client) = conn.transport else { return };
        while let Some(bytes) = conn.session.poll_transmit() {
            self.out.push_back((client, bytes));
        }
    }

    pub(crate) fn arm_conn(&mut self, key: SessionKey) {
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        let next = conn.session.poll_timeout();
        if next != conn.armed {
            if let Some(at) = conn.armed {
                self.timers.remove(&(at, TimerKey::SessionEntry(key)));
            }
            if let Some(at) = next {
                self.timers.insert((at, TimerKey::SessionEntry(key)));
            }
            conn.armed = next;
        }
    }

    /// Authenticates the client (again on resume, SPEC.md §17), then
    /// routes a resume request to the old session (SPEC.md §11.3).
    pub(crate) fn on_hello(&mut self, now: Instant, key: SessionKey, info: HelloInfo) {
        let tokens = &self.config.client_tokens;
        let authorized = tokens.is_empty()
            || info
                .token
                .as_deref()
                .is_some_and(|t| tokens.iter().any(|ok| bool::from(ok.as_bytes().ct_eq(t.as_bytes()))));
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        conn.name = info.name;
        conn.caps = info.caps;
        if !authorized {
            let message = if info.token.is_some() { "invalid token" } else { "a bearer token is required" };
            tracing::warn!(client = conn.name.as_deref(), "client refused: {message}");
            return conn.session.reject(ErrorCode::UNAUTHENTICATED, message);
        }
        if self.draining {
            return conn.session.reject(ErrorCode::GOING_AWAY, "the relay is stopping");
        }
        // Sessions past their HELLO are what the cap counts; a resume
        // reuses one and is never refused for it.
        let max = self.config.max_connections;
        let full = self.by_cid.len() >= max;
        let refuse_full = |conn: &mut SessionEntry| {
            conn.session.reject(ErrorCode::RATE_LIMITED, format!("the relay holds its maximum of {max} connections"))
        };
        let Some(request) = conn.session.resume_request().cloned() else {
            if full {
                return refuse_full(conn);
            }
            let _ = conn.session.accept(now);
            return;
        };
        let old = self.by_resume.find(&request).copied().filter(|old| *old != key);
        if let (None, true, Some(transport)) = (old, self.config.directory, conn.transport) {
            if let Some(rk) = ResumeKey::of(&request.ticket) {
                // Perhaps held by another node: ask the store (the client
                // waits, within its handshake timeout).
                let key = hex(rk.as_bytes());
                self.commands.push_back(Command::Directory(DirectoryChange::Lookup { transport, key }));
                return;
            }
        }
        let outcome = match old.and_then(|old| self.sessions.get_mut(&old)) {
            Some(old_conn) => old_conn.session.resume(now, &request).into(),
            None => ResumeOutcome::NotFound,
        };
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        if full && outcome != ResumeOutcome::Resumed {
            refuse_full(conn);
            if let Some(old) = old {
                self.settle(now, old);
            }
            return;
        }
        let resumed = conn.session.conclude_resume(now, outcome) == Ok(true);
        match old {
            Some(old) if resumed => {
                self.move_transport(now, key, old);
                // The ticket rotated: the directory's snapshot must follow.
                self.save(old);
            }
            // A refusal to the ticket's holder ended the old session: let it go.
            Some(old) => self.settle(now, old),
            None => {}
        }
    }

    /// A resume succeeded on `old`: the new transport now reaches it, and the
    /// throwaway session that read the HELLO is dropped.
    pub(crate) fn move_transport(&mut self, now: Instant, new: SessionKey, old: SessionKey) {
        let Some(temp) = self.sessions.remove(&new) else { return };
        if let Some(at) = temp.armed {
            self.timers.remove(&(at, TimerKey::SessionEntry(new)));
        }
        let Some(client) = temp.transport else { return };
        let Some(conn) = self.sessions.get_mut(&old) else { return };
        conn.backlogged = false; // a new transport, with an empty queue
        if let Some(previous) = conn.transport.replace(client) {
            // The old transport had not been noticed dead yet.
            self.transports.remove(&previous);
            self.commands.push_back(Command::Close {
                transport: previous,
                code: 1000,
                reason: "the session resumed on another transport".into(),
            });
        }
        self.transports.insert(client, old);
        self.settle(now, old);
    }

    pub(crate) fn on_connected(&mut self, now: Instant, key: SessionKey, cid: String) {
        let name = self.sessions.get(&key).and_then(|conn| conn.name.clone());
        tracing::info!(%cid, client = name, "connected");
        self.register(key, cid);
        if self.config.lifecycle_calls {
            self.start_lifecycle_call(now, key, CallKind::Connect);
        }
    }

    /// Indexes a connected session by cid and resume key (and announces it
    /// to the directory).
    fn register(&mut self, key: SessionKey, cid: String) {
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        conn.cid = Some(cid.clone());
        if let Some(rk) = conn.session.resume_key() {
            self.by_resume.insert(rk, key);
        }
        if self.config.directory {
            let rk = conn.session.resume_key().map(|rk| hex(rk.as_bytes()));
            self.commands.push_back(Command::Directory(DirectoryChange::Added { cid: cid.clone(), key: rk }));
        }
        self.by_cid.insert(cid, key);
        self.save(key);
    }

    /// Saves the session's snapshot for the directory, when there is one.
    pub(crate) fn save(&mut self, key: SessionKey) {
        if !(self.config.directory && self.config.snapshots) {
            return;
        }
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        let Some(snapshot) = conn.session.snapshot(conn.state.clone().unwrap_or_default()) else { return };
        let (Some(cid), Some(rk)) = (conn.cid.clone(), snapshot.resume_key()) else { return };
        let bytes = Bytes::from(snapshot.to_bytes());
        if conn.saved.as_ref() == Some(&bytes) {
            return;
        }
        conn.saved = Some(bytes.clone());
        let saved = DirectoryChange::Saved { cid, key: hex(rk.as_bytes()), snapshot: bytes };
        self.commands.push_back(Command::Directory(saved));
    }

    /// A lookup's answer: adopts the snapshot when it is the client's
    /// session and no session here has its cid; else a new session.
    pub(crate) fn adopt(&mut self, now: Instant, transport: TransportId, snapshot: Option<&[u8]>, pushes: &[Bytes]) {
        let Some(&key) = self.transports.get(&transport) else { return };
        let snapshot = snapshot.and_then(SessionSnapshot::from_bytes).filter(|s| !self.by_cid.contains_key(&s.cid));
        let Some(conn) = self.sessions.get_mut(&key) else { return };
        if conn.session.state() != SessionState::Authenticating {
            return;
        }
        let adopted = match &snapshot {
            Some(snapshot) => conn.session.accept_restart(now, snapshot),
            None => Err(ErrorCode::RESUME_UNKNOWN_SESSION),
        };
        match (adopted, snapshot) {
            (Ok(()), Some(snapshot)) => {
                conn.state = (!snapshot.app.is_empty()).then_some(snapshot.app);
                // Pushes made while no node held the session, in order; a
                // body that does not check out is skipped (it was checked
                // when queued).
                // They stay queued until the client acknowledges them.
                for body in pushes {
                    let max = self.config.session.max_frame_payload;
                    if let Ok(frames) = crate::connection_push_frames(body.clone(), max) {
                        let _ = self.apply_pushed(now, key, frames);
                    }
                    self.push_sent(key);
                }
                self.register(key, snapshot.cid);
            }
            (Err(code), _) => {
                let _ = conn.session.accept_refusing_resume(now, code);
            }
            (Ok(()), None) => unreachable!("adopted without a snapshot"),
        }
        self.settle(now, key);
    }

    pub(crate) fn remove_session(&mut self, now: Instant, key: SessionKey, code: u16, message: String) {
        let Some(conn) = self.sessions.remove(&key) else { return };
        let cid = conn.cid.as_deref().unwrap_or_default();
        if code == 1000 || code == ErrorCode::GOING_AWAY.close_code() {
            tracing::info!(%cid, code, reason = %message, "closed");
        } else {
            tracing::warn!(%cid, code, reason = %message, "closed");
        }
        if let Some(client) = conn.transport {
            self.transports.remove(&client);
            let reason = asp_proto::limits::truncate_close_reason(message);
            self.commands.push_back(Command::Close { transport: client, code, reason });
        }
        if let Some(at) = conn.armed {
            self.timers.remove(&(at, TimerKey::SessionEntry(key)));
        }
        for call in conn.calls.values() {
            self.end_call(*call, true);
        }
        if let Some(rk) = conn.session.resume_key() {
            if self.by_resume.get(&rk) == Some(&key) {
                self.by_resume.remove(&rk);
            }
        }
        if let Some(cid) = &conn.cid {
            self.by_cid.remove(cid);
            if self.config.directory {
                self.commands.push_back(Command::Directory(DirectoryChange::Removed(cid.clone())));
            }
            self.remember_closed(cid.clone());
            if self.config.lifecycle_calls {
                self.lifecycle_call(now, key, &conn, CallKind::Disconnect);
            }
        }
    }

    pub(crate) fn remember_closed(&mut self, cid: String) {
        if self.config.closed_memory == 0 {
            return;
        }
        if self.closed.len() >= self.config.closed_memory {
            if let Some(old) = self.closed.pop_front() {
                self.closed_set.remove(&old);
            }
        }
        self.closed_set.insert(cid.clone());
        self.closed.push_back(cid);
    }
}
