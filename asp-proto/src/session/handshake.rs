//! The handshake: HELLO both ways, authentication as an application
//! decision, limits, capabilities and tools (SPEC.md §8).

use super::*;

impl Session {
    pub(super) fn on_client_hello(&mut self, hello: ClientHello) {
        if !hello.versions.contains(&FrameHeader::VERSION) {
            let offered = format!("{:?}", hello.versions);
            return self.protocol_error(
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
        let tools = ToolSet::new(hello.tools.clone().unwrap_or_default());
        if !self.peer_tools_fit(&tools) {
            return;
        }
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
            self.resumption.ticket = Some(ticket.clone());
            ResumeOffer { ticket: ticket.into(), grace: duration_ms(self.config.resume_grace) }
        });
        let reply = ServerHello {
            resume,
            resume_error: resume_error.filter(|_| hello.resume.is_some()),
            tools: self.own_tools(),
            ..self.own_server_hello(cid.clone())
        };
        self.resumption.active = resume_offer;
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
    pub fn reject(&mut self, code: ErrorCode, message: impl Into<String>) {
        self.protocol_error(code, message.into());
    }

    pub(super) fn on_server_hello(&mut self, now: Instant, hello: ServerHello) {
        if hello.version != FrameHeader::VERSION {
            return self.protocol_error(
                ErrorCode::UNSUPPORTED_VERSION,
                format!("server chose version {}, which was not offered", hello.version),
            );
        }
        let resuming = self.state == SessionState::Detached;
        let mut restarted = false;
        if resuming {
            match &hello.resumed {
                Some(resumed) if !resumed.restart => {
                    return self.finish_client_resume(now, hello.clone(), resumed.recv);
                }
                // Resumed by another server (SPEC.md §11.4): the session
                // goes on, what was in flight is lost.
                Some(_) => {
                    restarted = true;
                    self.restart_client_session();
                }
                None => {
                    // A new session: the old one and its invocations are lost.
                    self.fail_all(ErrorCode::SESSION_LOST, "the session could not be resumed");
                    self.reset_session();
                }
            }
        }
        let tools = ToolSet::new(hello.tools.clone().unwrap_or_default());
        if !self.peer_tools_fit(&tools) {
            return;
        }
        self.liveness.interval = Duration::from_millis(hello.hb.unwrap_or(limits::DEFAULT_HEARTBEAT_MS).into());
        self.peer_caps = hello.caps.clone();
        self.apply_peer_limits(&hello.limits);
        self.peer_tools = tools;
        self.resumption.active = self.config.resume && hello.resume.is_some();
        if let Some(offer) = &hello.resume {
            self.resumption.ticket = Some(offer.ticket.to_vec());
            self.resumption.grace = Duration::from_millis(offer.grace.into());
        }
        self.cid = Some(hello.cid.clone());
        self.established(now);
        self.announce_tools();
        let resume_error = match resuming && !restarted {
            true => Some(hello.resume_error.unwrap_or(ErrorCode::RESUME_REJECTED)),
            false => None,
        };
        self.events.push_back(Event::Connected { cid: hello.cid, resumed: restarted, resume_error });
        if !self.peer_tools.is_empty() {
            self.events.push_back(Event::PeerToolsChanged);
        }
    }

    pub(super) fn apply_peer_limits(&mut self, announced: &PeerLimits) {
        self.peer = Limits::of(announced);
        self.conn_flow.send_window = self.peer.cwin;
    }

    /// The handshake is done: limits apply, timers start.
    pub(super) fn established(&mut self, now: Instant) {
        self.state = if self.goaway.any() { SessionState::Draining } else { SessionState::Open };
        self.decoder.set_max_payload(self.config.max_frame_payload);
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Grace);
        self.timers.set(Timer::Heartbeat, now + self.liveness.interval);
        self.liveness.missed = 0;
        self.liveness.outstanding = None;
        // A PING asking for an acknowledgement may have died with the old
        // transport: a blocked sender must be able to ask again.
        self.resumption.ack_requested = false;
    }

    /// Forgets the old session after a refused resume: a new one starts.
    pub(super) fn reset_session(&mut self) {
        self.resumption = Resumption::new(&self.config);
        self.outbound.forget_sequenced();
        self.invocations.clear();
        self.deadlines.clear();
        self.conn_flow = ConnFlow::new(&self.config);
        self.goaway = GoAwayState::default();
    }

    pub(super) fn fill_random(&mut self, buf: &mut [u8]) {
        self.entropy.as_mut().expect("server sessions have entropy").fill(buf);
    }
}

// ------------------------------------------------------- what our HELLO says

impl Session {
    pub(super) fn own_caps(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.config.resume {
            out.push(caps::RESUME.to_owned());
            if self.role == Role::Client {
                out.push(caps::RESTART.to_owned());
            }
        }
        out.push(caps::PROGRESS.to_owned());
        if self.role == Role::Client && !self.local_tools.is_empty() {
            out.push(caps::CLIENT_TOOLS.to_owned());
        }
        out.extend(self.config.caps.iter().cloned());
        out
    }

    pub(super) fn own_limits(&self) -> PeerLimits {
        PeerLimits {
            max_frame: Some(self.config.max_frame_payload),
            max_inv: Some(self.config.max_concurrent_invocations),
            win: Some(self.config.invocation_window),
            cwin: Some(self.config.connection_window),
        }
    }

    /// Our tools for HELLO, or `None` when there are none or they would not
    /// fit the pre-handshake frame limit; then they follow in TOOL_DEF frames
    /// right after the handshake ([`announce_tools`](Self::announce_tools)).
    pub(super) fn own_tools(&self) -> Option<Vec<ToolSpec>> {
        if self.local_tools.is_empty() || !self.tools_fit_hello() {
            return None;
        }
        Some(self.local_tools.iter().cloned().collect())
    }

    pub(super) fn tools_fit_hello(&self) -> bool {
        let tools: Vec<&ToolSpec> = self.local_tools.iter().collect();
        let size = rmp_serde::to_vec_named(&tools).map_or(usize::MAX, |b| b.len());
        // Leave room for the rest of HELLO.
        size + 4096 <= limits::HANDSHAKE_MAX_FRAME_PAYLOAD as usize
    }

    /// Sends our tools as TOOL_DEF frames, one tool each, when they did not
    /// fit in HELLO. A tool larger than the peer's frame limit cannot be
    /// announced and is left out.
    pub(super) fn announce_tools(&mut self) {
        if self.local_tools.is_empty() || self.tools_fit_hello() {
            return;
        }
        let _ = self.send(&Frame::ToolDef(ToolDef { op: ToolOp::Replace, tools: Vec::new() }));
        let tools: Vec<ToolSpec> = self.local_tools.iter().cloned().collect();
        for tool in tools {
            let _ = self.send(&Frame::ToolDef(ToolDef { op: ToolOp::Add, tools: vec![tool] }));
        }
    }

    pub(super) fn own_client_hello(&self, resume: Option<ResumeRequest>) -> ClientHello {
        ClientHello {
            name: self.config.name.clone(),
            caps: self.own_caps(),
            token: self.config.token.clone(),
            resume,
            limits: self.own_limits(),
            tools: self.own_tools(),
            ..ClientHello::new()
        }
    }

    /// The server's HELLO for connection `cid`: our limits, heartbeat and
    /// capabilities; the caller adds resume, tools and errors.
    pub(super) fn own_server_hello(&self, cid: String) -> ServerHello {
        ServerHello {
            limits: self.own_limits(),
            hb: Some(duration_ms(self.config.heartbeat_interval)),
            caps: self.own_caps(),
            ..ServerHello::new(cid)
        }
    }
}
