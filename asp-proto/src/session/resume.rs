//! Resume: detaching, acknowledgements, the replay buffer, reconnecting
//! and resuming on both sides (SPEC.md §11).

use super::*;

/// What resuming needs: the ticket, the sequence numbers both ways, the
/// replay buffer and the acknowledgement bookkeeping.
#[derive(Debug)]
pub(super) struct Resumption {
    /// Both sides agreed to resume (SPEC.md §11).
    pub(super) active: bool,
    pub(super) ticket: Option<Vec<u8>>,
    pub(super) grace: Duration,
    /// Sequenced frames sent and received.
    pub(super) sent_seq: u64,
    pub(super) recv_seq: u64,
    /// Sequenced frames sent that the peer has acknowledged.
    pub(super) peer_acked: u64,
    /// Bytes of sent frames the peer has not acknowledged.
    pub(super) unacked_bytes: usize,
    pub(super) replay: ReplayBuffer,
    /// Received since we last acknowledged (an ack goes out every
    /// `ACK_EVERY_FRAMES` frames or half the replay bound).
    pub(super) recv_since_ack: u64,
    pub(super) recv_bytes_since_ack: usize,
    /// A send found the replay buffer full.
    pub(super) replay_blocked: bool,
    /// A PING asking for an acknowledgement is on its way (replay full).
    pub(super) ack_requested: bool,
}

impl Resumption {
    pub(super) fn new(config: &SessionConfig) -> Self {
        Resumption {
            active: false,
            ticket: None,
            grace: config.resume_grace,
            sent_seq: 0,
            recv_seq: 0,
            peer_acked: 0,
            unacked_bytes: 0,
            replay: ReplayBuffer::default(),
            recv_since_ack: 0,
            recv_bytes_since_ack: 0,
            replay_blocked: false,
            ack_requested: false,
        }
    }
}

impl Session {
    /// Sequenced frames this side has sent in the session (SPEC.md §11.1),
    /// and how many of them the peer has acknowledged (§11.2): the frame
    /// numbered `n` has reached the peer once `acknowledged > n`. A relay
    /// uses it to know when a push has arrived.
    pub fn sequenced(&self) -> (u64, u64) {
        (self.resumption.sent_seq, self.resumption.peer_acked)
    }

    pub(super) fn detach(&mut self, now: Instant, reason: DetachReason) {
        self.transport = false;
        self.outbound.flush_to_replay(&mut self.resumption.replay);
        self.decoder = Session::handshake_decoder(&self.config);
        self.timers.stop(Timer::Heartbeat);
        self.timers.stop(Timer::Handshake);
        let drained = matches!(self.state, SessionState::Draining) && self.invocations.is_empty();
        let alive = matches!(self.state, SessionState::Open | SessionState::Draining | SessionState::Detached);
        if alive && self.resumption.active && !drained {
            let deadline = match (self.state, self.timers.get(Timer::Grace)) {
                (SessionState::Detached, Some(at)) => at,
                _ => now + self.resumption.grace,
            };
            self.state = SessionState::Detached;
            self.timers.set(Timer::Grace, deadline);
            self.events.push_back(Event::Detached { reason, deadline });
        } else if drained {
            self.end(ErrorCode::NO_ERROR, "drained".into(), Initiator::Transport);
        } else {
            let code = match reason {
                DetachReason::TransportClosed => ErrorCode::SESSION_LOST,
                DetachReason::PeerUnresponsive => ErrorCode::PEER_UNRESPONSIVE,
            };
            self.end(code, "the transport closed".into(), Initiator::Transport);
        }
    }

    /// Client: a new transport is open for a detached session; queues the
    /// resuming HELLO.
    pub fn reconnect(&mut self, now: Instant) -> Result<(), SendError> {
        if self.role != Role::Client || self.state != SessionState::Detached || self.transport {
            return Err(SendError::WrongState(self.state));
        }
        let ticket = self.resumption.ticket.clone().ok_or(SendError::WrongState(self.state))?;
        self.transport = true;
        self.timers.set(Timer::Handshake, now + self.config.handshake_timeout);
        let hello =
            self.own_client_hello(Some(ResumeRequest { ticket: ticket.into(), recv: self.resumption.recv_seq }));
        self.send(&Frame::Hello(hello)).expect("our own HELLO is valid");
        Ok(())
    }

    /// Server: resume this (old) session on the transport whose new session
    /// received `request` in its HELLO. On success this session answers the
    /// client and replays what it lacks; drop the new session and give this
    /// one the transport. On failure answer the new session with
    /// [`accept_refusing_resume`](Self::accept_refusing_resume) and the code.
    pub fn resume(&mut self, now: Instant, request: &ResumeRequest) -> Result<(), ErrorCode> {
        if self.role != Role::Server || !self.resumption.active {
            return Err(ErrorCode::RESUME_REJECTED);
        }
        let Some(ticket) = self.resumption.ticket.as_deref() else {
            return Err(ErrorCode::RESUME_REJECTED);
        };
        if ticket.len() != request.ticket.len() || !bool::from(ticket.ct_eq(&request.ticket)) {
            return Err(ErrorCode::RESUME_UNKNOWN_SESSION);
        }
        // From here the request holds this session's ticket: its holder is
        // resuming. A refusal now ends the session (SPEC.md §11.3.4): the
        // client is told its invocations are lost, and so is this side.
        if self.state == SessionState::Closed {
            return Err(ErrorCode::RESUME_EXPIRED);
        }
        if self.state == SessionState::Detached && self.timers.get(Timer::Grace).is_some_and(|at| at <= now) {
            return Err(self.refuse_resume(ErrorCode::RESUME_EXPIRED, "its grace period passed"));
        }
        if matches!(self.state, SessionState::Open | SessionState::Draining) {
            // Still attached (the old transport died silently): the new
            // transport replaces it (§11.3.3).
            self.detach(now, DetachReason::TransportClosed);
        }
        if self.state != SessionState::Detached {
            return Err(self.refuse_resume(ErrorCode::RESUME_EXPIRED, "it had ended"));
        }
        let frames: Option<Vec<Bytes>> =
            self.resumption.replay.since(request.recv, self.resumption.sent_seq).map(|f| f.collect());
        let frames = match frames {
            Some(frames) => frames,
            None if request.recv > self.resumption.sent_seq => {
                let why = format!("the client claims {} frames; {} were sent", request.recv, self.resumption.sent_seq);
                return Err(self.refuse_resume(ErrorCode::RESUME_REJECTED, &why));
            }
            None => {
                let why = format!("frame {} is no longer in the replay buffer", request.recv);
                return Err(self.refuse_resume(ErrorCode::RESUME_BUFFER_EXCEEDED, &why));
            }
        };
        // The client has what it acknowledged by asking: drop it from the buffer.
        self.on_ack_value(request.recv);
        let mut ticket = self.resumption.ticket.clone().expect("checked above");
        self.fill_random(&mut ticket[8..]);
        self.resumption.ticket = Some(ticket.clone());
        self.transport = true;
        let cid = self.cid.clone().expect("a resumable session has a cid");
        let reply = ServerHello {
            resume: Some(ResumeOffer { ticket: ticket.into(), grace: duration_ms(self.config.resume_grace) }),
            resumed: Some(Resumed { recv: self.resumption.recv_seq, restart: false }),
            ..self.own_server_hello(cid)
        };
        self.send(&Frame::HelloReply(reply)).expect("our own HELLO is valid");
        for frame in &frames {
            self.outbound.push_replayed(frame);
        }
        self.established(now);
        let cid = self.cid.clone().expect("cid");
        self.events.push_back(Event::Connected { cid, resumed: true, resume_error: None });
        self.wake_blocked();
        Ok(())
    }

    /// Ends this session because its ticket's holder could not resume it;
    /// returns the code the new session's HELLO reports.
    fn refuse_resume(&mut self, code: ErrorCode, why: &str) -> ErrorCode {
        self.end(ErrorCode::SESSION_LOST, format!("the session could not be resumed: {why}"), Initiator::Local);
        code
    }

    pub(super) fn finish_client_resume(&mut self, now: Instant, hello: ServerHello, peer_recv: u64) {
        let frames: Option<Vec<Bytes>> =
            self.resumption.replay.since(peer_recv, self.resumption.sent_seq).map(|f| f.collect());
        let Some(frames) = frames else {
            let sent = self.resumption.sent_seq;
            if peer_recv > sent {
                let why = format!("the server claims {peer_recv} frames; {sent} were sent");
                return self.protocol_error(ErrorCode::RESUME_REJECTED, why);
            }
            return self
                .protocol_error(ErrorCode::RESUME_BUFFER_EXCEEDED, format!("cannot replay from frame {peer_recv}"));
        };
        self.on_ack_value(peer_recv);
        if let Some(offer) = &hello.resume {
            self.resumption.ticket = Some(offer.ticket.to_vec());
            self.resumption.grace = Duration::from_millis(offer.grace.into());
        }
        for frame in &frames {
            self.outbound.push_replayed(frame);
        }
        self.established(now);
        self.events.push_back(Event::Connected { cid: hello.cid, resumed: true, resume_error: None });
        self.wake_blocked();
    }

    pub(super) fn maybe_ack(&mut self, now: Instant) {
        if !self.resumption.active || self.liveness.outstanding.is_some() {
            return;
        }
        let half_bound = self.config.replay_buffer_bytes / 2;
        if self.resumption.recv_since_ack >= ACK_EVERY_FRAMES || self.resumption.recv_bytes_since_ack >= half_bound {
            self.send_ping(Some(now));
        }
    }

    pub(super) fn on_ack_value(&mut self, acked: u64) {
        self.resumption.peer_acked = self.resumption.peer_acked.max(acked);
        let freed = self.resumption.replay.ack(acked);
        self.resumption.unacked_bytes = self.resumption.unacked_bytes.saturating_sub(freed);
        if freed > 0 && self.resumption.replay_blocked {
            self.resumption.replay_blocked = false;
            self.events.push_back(Event::Writable { id: RequestId::CONNECTION });
        }
    }

    pub(super) fn on_ack(&mut self, acked: Option<u64>) {
        let Some(acked) = acked else { return };
        if acked > self.resumption.sent_seq {
            return self.protocol_error(
                ErrorCode::PROTOCOL_VIOLATION,
                format!("acknowledges {acked} frames; {} were sent", self.resumption.sent_seq),
            );
        }
        self.on_ack_value(acked);
    }

    /// After a resume, senders that were blocked may try again.
    pub(super) fn wake_blocked(&mut self) {
        self.resumption.replay_blocked = false;
        self.events.push_back(Event::Writable { id: RequestId::CONNECTION });
    }
}
