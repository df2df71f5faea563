//! The session's timers: one small table, each entry with its reason, so
//! `poll_timeout` is a minimum over a handful of slots (quinn's `TimerTable`).

use web_time::Instant;

/// Why the session wants to be woken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The handshake must complete by then.
    Handshake,
    /// Time to send the next PING (and count a missed PONG).
    Heartbeat,
    /// A detached session is given up.
    Grace,
    /// A GOAWAY drain ends; open invocations are failed.
    Drain,
}

const TIMERS: [Timer; 4] = [Timer::Handshake, Timer::Heartbeat, Timer::Grace, Timer::Drain];

#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    slots: [Option<Instant>; 4],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.slots[timer as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.slots[timer as usize] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.slots[timer as usize]
    }

    pub(crate) fn stop_all(&mut self) {
        self.slots = [None; 4];
    }

    /// Takes the earliest timer due at `now`, if any.
    pub(crate) fn expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = TIMERS
            .into_iter()
            .filter(|t| self.slots[*t as usize].is_some_and(|at| at <= now))
            .min_by_key(|t| self.slots[*t as usize])?;
        self.slots[timer as usize] = None;
        Some(timer)
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }
}
