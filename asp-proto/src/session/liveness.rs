//! Liveness: PING/PONG on the heartbeat, RTT, dead peers (SPEC.md §9).

use super::*;

impl Session {
    pub(super) fn send_ping(&mut self, now: Instant) {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let recv = self.resume_active.then_some(self.recv_seq);
        self.ping_outstanding = Some((self.ping_seq, now));
        self.recv_since_ack = 0;
        self.recv_bytes_since_ack = 0;
        let _ = self.send(&Frame::Ping(Ping { seq: self.ping_seq, recv }));
    }

    /// Sends a PING now, to measure the round trip or acknowledge frames.
    pub fn ping(&mut self, now: Instant) -> Result<(), SendError> {
        match self.state {
            SessionState::Open | SessionState::Draining if self.transport => {
                self.send_ping(now);
                Ok(())
            }
            state => Err(SendError::WrongState(state)),
        }
    }

    pub(super) fn on_heartbeat(&mut self, now: Instant) {
        if !matches!(self.state, SessionState::Open | SessionState::Draining) || !self.transport {
            return;
        }
        if self.ping_outstanding.is_some() {
            self.missed += 1;
            if self.missed >= self.config.missed_pings {
                if self.resume_active {
                    return self.detach(now, DetachReason::PeerUnresponsive);
                }
                return self.protocol_error(
                    now,
                    ErrorCode::PEER_UNRESPONSIVE,
                    format!("{} PINGs went unanswered", self.missed),
                );
            }
        }
        self.send_ping(now);
        self.timers.set(Timer::Heartbeat, now + self.heartbeat);
    }

    pub(super) fn on_ping(&mut self, now: Instant, ping: Ping) {
        let recv = self.resume_active.then_some(self.recv_seq);
        self.recv_since_ack = 0;
        self.recv_bytes_since_ack = 0;
        let _ = self.send(&Frame::Pong(Pong { seq: ping.seq, recv }));
        self.on_ack(now, ping.recv);
    }

    pub(super) fn on_pong(&mut self, now: Instant, pong: Pong) {
        self.missed = 0;
        self.ack_requested = false;
        if let Some((seq, sent)) = self.ping_outstanding {
            if seq == pong.seq {
                let sample = now.saturating_duration_since(sent);
                self.stats.rtt = Some(match self.stats.rtt {
                    None => sample,
                    Some(srtt) => (srtt * 7 + sample) / 8,
                });
                self.ping_outstanding = None;
            }
        }
        self.on_ack(now, pong.recv);
    }
}
