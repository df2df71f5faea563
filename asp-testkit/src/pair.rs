//! An in-memory client–server pair with a virtual clock, for tests, fuzzing
//! and benchmarks (after quinn-proto's `tests/util.rs` `Pair`).
//!
//! It plays both adapters: moves each transmit to the other side split at
//! random points, accepts clients, routes a resuming HELLO to the detached
//! server session the way a server adapter indexes sessions by
//! [`ResumeKey`](asp_proto::ResumeKey), and can drop the transport at any moment. Not part of the
//! public API.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use asp_proto::{Entropy, Event, ResumeIndex, ResumeOutcome, Session, SessionConfig, SessionState};

/// Deterministic "randomness" for server sessions in tests (splitmix64).
#[derive(Debug, Clone)]
pub struct TestEntropy(pub u64);

impl Entropy for TestEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Which end of the pair.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The client session.
    Client,
    /// The server session.
    Server,
}

/// A client and a server session joined by an in-memory transport.
pub struct Pair {
    /// The client.
    pub client: Session,
    /// The server (after a resume: the resumed, old session).
    pub server: Session,
    /// The virtual clock.
    pub now: Instant,
    /// Events the client produced, oldest first; tests drain them.
    pub client_events: VecDeque<Event>,
    /// Events the server produced.
    pub server_events: VecDeque<Event>,
    /// Largest chunk a transmit is split into on delivery.
    pub max_chunk: usize,
    /// Accept every HELLO (`true` by default).
    pub auto_accept: bool,
    /// Deliver nothing (the network is a black hole) while set.
    pub blackhole: bool,
    server_config: SessionConfig,
    entropy_seed: u64,
    rng: u64,
    to_server: VecDeque<Bytes>,
    to_client: VecDeque<Bytes>,
    /// Bytes moved in each direction since creation.
    pub wire_bytes: (u64, u64),
    /// When set, every chunk delivered is recorded here (fuzz seeds).
    pub transcript: Option<Vec<(Side, Bytes)>>,
}

impl Pair {
    /// A pair that has not exchanged anything yet.
    pub fn new(client: SessionConfig, server: SessionConfig, seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            client: Session::client(client, now),
            server: Session::server(server.clone(), now, Box::new(TestEntropy(seed))),
            now,
            client_events: VecDeque::new(),
            server_events: VecDeque::new(),
            max_chunk: 1 << 16,
            auto_accept: true,
            blackhole: false,
            server_config: server,
            entropy_seed: seed,
            rng: seed | 1,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            wire_bytes: (0, 0),
            transcript: None,
        }
    }

    /// A pair with default configurations, connected.
    pub fn connected(client: SessionConfig, server: SessionConfig, seed: u64) -> Pair {
        let mut pair = Pair::new(client, server, seed);
        pair.drive();
        pair
    }

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Moves bytes and events until neither side has anything to say.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the pair did not settle in 10000 steps");
    }

    /// One round: collect transmits and events, deliver. Returns whether
    /// anything happened.
    pub fn step(&mut self) -> bool {
        let mut busy = self.collect();
        if self.blackhole {
            self.to_server.clear();
            self.to_client.clear();
            return busy;
        }
        while let Some(bytes) = self.to_server.pop_front() {
            busy = true;
            self.wire_bytes.0 += bytes.len() as u64;
            self.deliver(Side::Server, bytes);
        }
        while let Some(bytes) = self.to_client.pop_front() {
            busy = true;
            self.wire_bytes.1 += bytes.len() as u64;
            self.deliver(Side::Client, bytes);
        }
        busy |= self.collect();
        busy
    }

    fn deliver(&mut self, to: Side, mut bytes: Bytes) {
        let now = self.now;
        while !bytes.is_empty() {
            let size = 1 + (self.next_rand() as usize % self.max_chunk.max(1));
            let chunk = bytes.split_to(size.min(bytes.len()));
            if let Some(t) = self.transcript.as_mut() {
                t.push((to, chunk.clone()));
            }
            match to {
                Side::Server => self.server.handle_input(now, &chunk),
                Side::Client => self.client.handle_input(now, &chunk),
            }
        }
    }

    /// Drains both sessions' transmits and events; answers HELLOs.
    fn collect(&mut self) -> bool {
        let mut busy = false;
        while let Some(t) = self.client.poll_transmit() {
            self.to_server.push_back(t);
            busy = true;
        }
        while let Some(t) = self.server.poll_transmit() {
            self.to_client.push_back(t);
            busy = true;
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push_back(e);
            busy = true;
        }
        while let Some(e) = self.server.poll_event() {
            if let Event::HelloReceived(_) = e {
                if self.auto_accept {
                    let now = self.now;
                    self.server.accept(now).expect("accept");
                }
            }
            self.server_events.push_back(e);
            busy = true;
        }
        busy
    }

    /// Advances the clock by `by`, fires due timers on both sides, drives.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.drive();
    }

    /// Jumps to the earliest deadline of either side (if any) and fires it.
    pub fn advance_to_next_timeout(&mut self) -> bool {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()].into_iter().flatten().min();
        match next {
            Some(at) => {
                let by = at.saturating_duration_since(self.now);
                self.advance(by);
                true
            }
            None => false,
        }
    }

    /// The transport dies: bytes in flight are lost and both sides are told.
    pub fn kill_transport(&mut self) {
        self.kill_transport_after(0);
    }

    /// The transport dies after delivering `per_255`/255 of the bytes in
    /// flight in each direction (cutting frames anywhere); the rest is lost.
    pub fn kill_transport_after(&mut self, per_255: u8) {
        self.collect();
        for side in [Side::Server, Side::Client] {
            let queue = match side {
                Side::Server => std::mem::take(&mut self.to_server),
                Side::Client => std::mem::take(&mut self.to_client),
            };
            let total: usize = queue.iter().map(|b| b.len()).sum();
            let mut budget = total * usize::from(per_255) / 255;
            for bytes in queue {
                let n = budget.min(bytes.len());
                budget -= n;
                if n > 0 {
                    self.deliver(side, bytes.slice(..n));
                }
            }
        }
        let now = self.now;
        self.client.handle_transport_closed(now);
        self.server.handle_transport_closed(now);
        self.collect();
    }

    /// A new transport: the client reconnects, a fresh server session reads
    /// its HELLO, and — as a server adapter would — the resume request is
    /// routed to the detached session when its key matches. Returns whether
    /// the old session was resumed.
    pub fn reconnect(&mut self) -> bool {
        let now = self.now;
        self.client.reconnect(now).expect("client can reconnect");
        self.entropy_seed = self.entropy_seed.wrapping_add(1);
        let mut fresh = Session::server(self.server_config.clone(), now, Box::new(TestEntropy(self.entropy_seed)));
        while let Some(t) = self.client.poll_transmit() {
            fresh.handle_input(now, &t);
        }
        let Some(Event::HelloReceived(info)) = fresh.poll_event() else {
            panic!("the fresh server session must see the HELLO");
        };
        // The routing every server does (asp_proto::session::routing), with
        // an index that holds the one old session.
        let mut index = ResumeIndex::new();
        if let Some(key) = self.server.resume_key().filter(|_| !self.server.is_closed()) {
            index.insert(key, ());
        }
        let outcome = match fresh.resume_request().cloned() {
            Some(req) if info.resume_requested && index.find(&req).is_some() => self.server.resume(now, &req).into(),
            _ => ResumeOutcome::NotFound,
        };
        let resumed = fresh.conclude_resume(now, outcome).expect("accept");
        if !resumed {
            self.server = fresh;
        }
        self.drive();
        resumed
    }

    /// Takes the events of one side matching `f`.
    pub fn take_events(&mut self, side: Side, mut f: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let queue = match side {
            Side::Client => &mut self.client_events,
            Side::Server => &mut self.server_events,
        };
        let (taken, kept): (Vec<Event>, Vec<Event>) = queue.drain(..).partition(|e| f(e));
        queue.extend(kept);
        taken
    }

    /// True when both sessions finished the handshake.
    pub fn is_connected(&self) -> bool {
        matches!(self.client.state(), SessionState::Open | SessionState::Draining)
            && matches!(self.server.state(), SessionState::Open | SessionState::Draining)
    }

    /// Sends raw bytes to one side, as if its peer had written them.
    pub fn inject(&mut self, to: Side, bytes: &[u8]) {
        let now = self.now;
        match to {
            Side::Server => self.server.handle_input(now, bytes),
            Side::Client => self.client.handle_input(now, bytes),
        }
        self.drive();
    }
}
