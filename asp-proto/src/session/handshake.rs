//! The handshake: HELLO both ways, authentication as an application
//! decision, limits, capabilities and tools (SPEC.md §8).

use super::*;

impl Session {
    pub(super) fn on_client_hello(&mut self, now: Instant, hello: ClientHello) {
        if !hello.versions.contains(&FrameHeader::VERSION) {
            let offered = format!("{:?}", hello.versions);
            return self.protocol_error(
                now,
                ErrorCode::UNSUPPORTED_VERSION,
                format!("no common version: client offers {offered}, server speaks [1]"),
            );
        }
        let info = HelloInfo {
            token: hello.token.clone().or_else(|| self.transport_token.clone()),
            name: hello.name.clone(),
            caps: hello.caps.clone(),
            resume_requested: hello.resume.is_some(),
        };
        self.client_hello = Some(hello);
        self.state = SessionState::Authenticating;
        self.events.push_back(Event::HelloReceived(info));
    }

    /// Server: accept the client (authenticated) and start a new session.
    /// A resume request in its HELLO that the application did not satisfy
    /// with [`resume`](Self::resume) is refused as `RESUME_UNKNOWN_SESSION`.
    pub fn accept(&mut self, now: Instant) -> Result<(), SendError> {
        let refused = self.resume_request().map(|_| ErrorCode::RESUME_UNKNOWN_SESSION);
        self.accept_with(now, refused)
    }

    /// Server: accept the client, refusing the session it asked to resume
    /// with `code` (a resume code from [`resume`](Self::resume)).
    pub fn accept_refusing_resume(&mut self, now: Instant, code: ErrorCode) -> Result<(), SendError> {
        self.accept_with(now, Some(code))
    }

    pub(super) fn accept_with(&mut self, now: Instant, resume_error: Option<ErrorCode>) -> Result<(), SendError> {
        if self.state != SessionState::Authenticating {
            return Err(SendError::WrongState(self.state));
        }
        let hello = self.client_hello.take().expect("Authenticating holds the HELLO");
        let mut cid_bytes = [0u8; 8];
        self.fill_random(&mut cid_bytes);
        let cid = format!("c-{}", hex_string(&cid_bytes));
        let resume_offer = self.config.resume && hello.caps.iter().any(|c| c == caps::RESUME);
        let resume = resume_offer.then(|| {
            let mut ticket = vec![0u8; TICKET_LEN];
            self.fill_random(&mut ticket);
            self.ticket = Some(ticket.clone());
            ResumeOffer { ticket: ticket.into(), grace: duration_ms(self.config.resume_grace) }
        });
        let reply = ServerHello {
            limits: self.own_limits(),
            hb: Some(duration_ms(self.config.heartbeat_interval)),
            caps: self.own_caps(),
            resume,
            resume_error: resume_error.filter(|_| hello.resume.is_some()),
            tools: self.own_tools(),
            ..ServerHello::new(cid.clone())
        };
        self.resume_active = resume_offer;
        self.peer_caps = hello.caps.clone();
        self.apply_peer_limits(&hello.limits);
        self.peer_tools = ToolSet::new(hello.tools.unwrap_or_default());
        self.send(&Frame::HelloReply(reply)).expect("our own HELLO is valid");
        self.cid = Some(cid.clone());
        self.established(now);
        self.announce_tools();
        self.events.push_back(Event::Connected { cid, resumed: false, resume_error });
        Ok(())
    }

    /// Server: refuse the client (authentication failed, or any other
    /// reason): ERROR with `code`, then the session closes.
    pub fn reject(&mut self, now: Instant, code: ErrorCode, message: impl Into<String>) {
        self.protocol_error(now, code, message.into());
    }

    pub(super) fn on_server_hello(&mut self, now: Instant, hello: ServerHello) {
        if hello.version != FrameHeader::VERSION {
            return self.protocol_error(
                now,
                ErrorCode::UNSUPPORTED_VERSION,
                format!("server chose version {}, which was not offered", hello.version),
            );
        }
        let resuming = self.state == SessionState::Detached;
        if resuming {
            if let Some(resumed) = &hello.resumed {
                return self.finish_client_resume(now, hello.clone(), resumed.recv);
            }
            // A new session: the old one and its invocations are lost.
            self.fail_all(ErrorCode::SESSION_LOST, "the session could not be resumed");
            self.reset_session();
        }
        self.heartbeat = Duration::from_millis(hello.hb.unwrap_or(limits::DEFAULT_HEARTBEAT_MS).into());
        self.peer_caps = hello.caps.clone();
        self.apply_peer_limits(&hello.limits);
        self.peer_tools = ToolSet::new(hello.tools.clone().unwrap_or_default());
        self.resume_active = self.config.resume && hello.resume.is_some();
        if let Some(offer) = &hello.resume {
            self.ticket = Some(offer.ticket.to_vec());
            self.grace = Duration::from_millis(offer.grace.into());
        }
        self.cid = Some(hello.cid.clone());
        self.established(now);
        self.announce_tools();
        let resume_error = if resuming { Some(hello.resume_error.unwrap_or(ErrorCode::RESUME_REJECTED)) } else { None };
        self.events.push_back(Event::Connected { cid: hello.cid, resumed: false, resume_error });
        if !self.peer_tools.is_empty() {
            self.events.push_back(Event::PeerToolsChanged);
        }
    }

    pub(super) fn apply_peer_limits(&mut self, announced: &PeerLimits) {
        self.peer = Limits::of(announced);
        self.conn_send_window = self.peer.cwin;
    }

    /// The handshake is done: limits apply, timers start.
    pub(super) fn established(&mut self, now: Instant) {
        self.state = if self.local_goaway || self.peer_goaway { SessionState::Draining } else { SessionState::Open };
        self.decoder.set_max_payload(self.config.max_frame_payload);
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Grace);
        self.timers.set(Timer::Heartbeat, now + self.heartbeat);
        self.missed = 0;
        self.ping_outstanding = None;
        // A PING asking for an acknowledgement may have died with the old
        // transport: a blocked sender must be able to ask again.
        self.ack_requested = false;
    }

    /// Forgets the old session after a refused resume: a new one starts.
    pub(super) fn reset_session(&mut self) {
        self.sent_seq = 0;
        self.recv_seq = 0;
        self.unacked_bytes = 0;
        self.replay.clear();
        self.pending.clear();
        self.recv_since_ack = 0;
        self.recv_bytes_since_ack = 0;
        self.replay_blocked = false;
        self.invocations.clear();
        self.deadlines.clear();
        self.conn_recv_window = self.config.connection_window;
        self.conn_unconsumed = 0;
        self.conn_pending_grant = 0;
        self.conn_blocked = false;
        self.local_goaway = false;
        self.peer_goaway = false;
        self.ticket = None;
    }

    pub(super) fn fill_random(&mut self, buf: &mut [u8]) {
        self.entropy.as_mut().expect("server sessions have entropy").fill(buf);
    }
}
