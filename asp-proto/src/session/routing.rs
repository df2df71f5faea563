//! Routing a resuming client to its old session (SPEC.md §11.3), written
//! once for every server: the direct server's connection tasks, the relay
//! core and the test pair all follow the same three steps.
//!
//! 1. A *fresh* server session reads the client's HELLO; the application
//!    accepts the client, and [`Session::resume_request`] holds the ticket.
//! 2. [`ResumeIndex::find`] names the *old* session that ticket belongs to
//!    (by its [`ResumeKey`]); [`Session::resume`] on that old session checks
//!    the ticket's secret, the grace period and the replay buffer.
//! 3. The fresh session concludes with [`Session::conclude_resume`]: on
//!    [`ResumeOutcome::Resumed`] it is dropped and the old session gets the
//!    transport; otherwise it starts a new session whose HELLO reply carries
//!    the reason the old one could not be resumed.
//!
//! How the old session is reached is the caller's business (a map entry in
//! the relay, a channel to another task in the driver), which is why the
//! index is generic over what it holds.

use std::collections::HashMap;
use web_time::Instant;

use super::{ResumeKey, SendError, Session};
use crate::{ErrorCode, ResumeRequest};

/// Resumable sessions by [`ResumeKey`], each as whatever reaches it (`H`):
/// how every server routes a resuming client to its old session
/// (SPEC.md §11.3), in three steps.
///
/// 1. A *fresh* server session reads the client's HELLO; the application
///    accepts the client, and [`Session::resume_request`] holds the ticket.
/// 2. [`find`](Self::find) names the *old* session that ticket belongs to;
///    [`Session::resume`] on the old session checks the ticket's secret, the
///    grace period and the replay buffer.
/// 3. The fresh session concludes with [`Session::conclude_resume`]: on
///    [`ResumeOutcome::Resumed`] it is dropped and the old session gets the
///    transport; otherwise it starts a new session whose HELLO reply says
///    why the old one could not be resumed.
///
/// How the old session is reached is the caller's business (a map key in the
/// relay, a channel to another task in the driver), hence `H`.
#[derive(Debug, Clone)]
pub struct ResumeIndex<H> {
    by_key: HashMap<ResumeKey, H>,
}

impl<H> Default for ResumeIndex<H> {
    fn default() -> Self {
        ResumeIndex { by_key: HashMap::new() }
    }
}

impl<H> ResumeIndex<H> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes a session under `key` (its [`Session::resume_key`] once
    /// connected); replaces what was there.
    pub fn insert(&mut self, key: ResumeKey, holder: H) {
        self.by_key.insert(key, holder);
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &ResumeKey) -> Option<H> {
        self.by_key.remove(key)
    }

    /// What holds the session `request` asks to resume, if it is indexed.
    pub fn find(&self, request: &ResumeRequest) -> Option<&H> {
        ResumeKey::of(&request.ticket).and_then(|key| self.by_key.get(&key))
    }

    /// What is indexed under `key`.
    pub fn get(&self, key: &ResumeKey) -> Option<&H> {
        self.by_key.get(key)
    }

    /// Sessions indexed.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// What became of a resume request, as the fresh session must conclude it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ResumeOutcome {
    /// The old session resumed: the fresh session is done with.
    Resumed,
    /// The old session refused ([`Session::resume`]'s code).
    Refused(ErrorCode),
    /// No indexed session has that ticket (`RESUME_UNKNOWN_SESSION`).
    NotFound,
}

impl From<Result<(), ErrorCode>> for ResumeOutcome {
    fn from(result: Result<(), ErrorCode>) -> Self {
        match result {
            Ok(()) => ResumeOutcome::Resumed,
            Err(code) => ResumeOutcome::Refused(code),
        }
    }
}

impl Session {
    /// Server, fresh session whose accepted HELLO asked to resume: step 3
    /// of the [routing](ResumeIndex). Returns `true` when the old session resumed
    /// and this one must be dropped (its transport now belongs to the old
    /// session); otherwise this session starts afresh and answers the
    /// client with the refusal.
    pub fn conclude_resume(&mut self, now: Instant, outcome: ResumeOutcome) -> Result<bool, SendError> {
        match outcome {
            ResumeOutcome::Resumed => Ok(true),
            ResumeOutcome::Refused(code) => self.accept_refusing_resume(now, code).map(|()| false),
            ResumeOutcome::NotFound => self.accept(now).map(|()| false),
        }
    }
}
