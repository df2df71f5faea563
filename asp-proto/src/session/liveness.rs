//! Liveness: PING/PONG on the heartbeat, RTT, dead peers (SPEC.md §9).

use super::*;

/// The heartbeat: the interval, the PING in flight, and how many went
/// unanswered.
#[derive(Debug)]
pub(super) struct Liveness {
    /// The PING interval (the server's `hb`).
    pub(super) interval: Duration,
    pub(super) ping_seq: u32,
    /// The PING whose PONG would be an RTT sample, and when it left.
    pub(super) outstanding: Option<(u32, Instant)>,
    pub(super) missed: u32,
}

impl Liveness {
    pub(super) fn new(config: &SessionConfig) -> Self {
        Liveness { interval: config.heartbeat_interval, ping_seq: 0, outstanding: None, missed: 0 }
    }
}

impl Session {
    /// Sends a PING carrying our acknowledgement. With `now`, its PONG is a
    /// round-trip sample (and counts for the heartbeat); without, the point
    /// is only the acknowledgement the PONG carries.
    pub(super) fn send_ping(&mut self, now: Option<Instant>) {
        self.liveness.ping_seq = self.liveness.ping_seq.wrapping_add(1);
        let recv = self.resumption.active.then_some(self.resumption.recv_seq);
        if let Some(now) = now {
            self.liveness.outstanding = Some((self.liveness.ping_seq, now));
            self.resumption.recv_since_ack = 0;
            self.resumption.recv_bytes_since_ack = 0;
        }
        let _ = self.send(&Frame::Ping(Ping { seq: self.liveness.ping_seq, recv }));
    }

    /// Sends a PING now, to measure the round trip or acknowledge frames.
    pub fn ping(&mut self, now: Instant) -> Result<(), SendError> {
        match self.state {
            SessionState::Open | SessionState::Draining if self.transport => {
                self.send_ping(Some(now));
                Ok(())
            }
            state => Err(SendError::WrongState(state)),
        }
    }

    pub(super) fn on_heartbeat(&mut self, now: Instant) {
        if !matches!(self.state, SessionState::Open | SessionState::Draining) || !self.transport {
            return;
        }
        if self.liveness.outstanding.is_some() {
            self.liveness.missed += 1;
            if self.liveness.missed >= self.config.missed_pings {
                if self.resumption.active {
                    return self.detach(now, DetachReason::PeerUnresponsive);
                }
                return self.protocol_error(
                    ErrorCode::PEER_UNRESPONSIVE,
                    format!("{} PINGs went unanswered", self.liveness.missed),
                );
            }
        }
        self.send_ping(Some(now));
        self.timers.set(Timer::Heartbeat, now + self.liveness.interval);
    }

    pub(super) fn on_ping(&mut self, ping: Ping) {
        let recv = self.resumption.active.then_some(self.resumption.recv_seq);
        self.resumption.recv_since_ack = 0;
        self.resumption.recv_bytes_since_ack = 0;
        let _ = self.send(&Frame::Pong(Pong { seq: ping.seq, recv }));
        self.on_ack(ping.recv);
    }

    pub(super) fn on_pong(&mut self, now: Instant, pong: Pong) {
        self.liveness.missed = 0;
        self.resumption.ack_requested = false;
        if let Some((seq, sent)) = self.liveness.outstanding {
            if seq == pong.seq {
                let sample = now.saturating_duration_since(sent);
                self.stats.rtt = Some(match self.stats.rtt {
                    None => sample,
                    Some(srtt) => (srtt * 7 + sample) / 8,
                });
                self.liveness.outstanding = None;
            }
        }
        self.on_ack(pong.recv);
    }
}
