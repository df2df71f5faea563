//! The relay core's test adapter: a [`Relay`] with real client sessions in
//! memory, on a virtual clock (the relay's counterpart of [`Pair`](crate::Pair)).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use asp_proto::{Entropy, ErrorCode, ErrorInfo, Event, Invoke, Metrics, RequestId, Session, SessionConfig, Value};
use asp_relay_proto::{
    CallId, Command, FunctionCall, ManagementRequest, ManagementResponse, Relay, RelayConfig, ResponseHead, TransportId,
};
use bytes::Bytes;

use crate::TestEntropy;

/// One client of the relay: a real client session and its transport.
pub struct RelayClient {
    /// Its transport while attached.
    pub transport: Option<TransportId>,
    /// The client session.
    pub session: Session,
    /// Every event the session produced, in order.
    pub events: Vec<Event>,
}

/// A [`Relay`] with real client sessions, on a virtual clock: the adapter
/// the relay core's tests and its fuzz target share. It moves transmits
/// both ways, applies `Close` commands to the clients, keeps every command
/// for the test to inspect, and checks that body credit returned never
/// exceeds what was handed in ([`chunk`](Self::chunk)).
pub struct RelayHarness {
    /// The virtual clock.
    pub now: Instant,
    /// The core under test.
    pub relay: Relay,
    /// The clients, in the order they connected.
    pub clients: Vec<RelayClient>,
    /// Commands the relay gave, oldest first (tests drain them).
    pub commands: Vec<Command>,
    /// Body bytes handed to the core per call and not yet credited back.
    outstanding: HashMap<CallId, usize>,
}

fn entropy() -> impl FnMut() -> Box<dyn Entropy> + Send {
    let mut seed = 0u64;
    move || {
        seed += 1;
        Box::new(TestEntropy(seed)) as Box<dyn Entropy>
    }
}

impl RelayHarness {
    /// A relay with `config` and no clients.
    pub fn new(config: RelayConfig) -> RelayHarness {
        RelayHarness {
            now: Instant::now(),
            relay: Relay::new(config, entropy()),
            clients: Vec::new(),
            commands: Vec::new(),
            outstanding: HashMap::new(),
        }
    }

    /// A relay whose management secret is `s3cret` (see [`manage`](Self::manage)).
    pub fn with_secret() -> RelayHarness {
        RelayHarness::new(RelayConfig { management_secret: Some("s3cret".into()), ..RelayConfig::default() })
    }

    /// Opens a transport (with `token` as its upgrade's bearer token) for
    /// a new client, without pumping; returns the client's index.
    pub fn open(&mut self, config: SessionConfig, token: Option<String>) -> usize {
        let session = Session::client(config, self.now);
        let transport = self.relay.handle_client_open(self.now, token);
        self.clients.push(RelayClient { transport: Some(transport), session, events: Vec::new() });
        self.clients.len() - 1
    }

    /// Opens a client and completes its handshake; returns its index.
    pub fn connect(&mut self, config: SessionConfig) -> usize {
        let client = self.open(config, None);
        self.pump();
        client
    }

    /// Client `client`'s transport dies (both sides notice) and the client
    /// opens a new one (with `token` as its upgrade's bearer token) and
    /// sends its resuming HELLO; pumps. Returns the new transport.
    pub fn reconnect(&mut self, client: usize, token: Option<String>) -> TransportId {
        if let Some(old) = self.clients[client].transport.take() {
            self.relay.handle_client_closed(self.now, old);
        }
        self.clients[client].session.handle_transport_closed(self.now);
        self.pump();
        let transport = self.relay.handle_client_open(self.now, token);
        self.clients[client].transport = Some(transport);
        self.clients[client].session.reconnect(self.now).expect("a detached client session reconnects");
        self.pump();
        transport
    }

    /// Moves everything both ways until nothing moves.
    pub fn pump(&mut self) {
        self.pump_rounds(usize::MAX);
    }

    /// Like [`pump`](Self::pump), for at most `rounds` rounds.
    pub fn pump_rounds(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let mut moved = false;
            while let Some((to, bytes)) = self.relay.poll_transmit() {
                moved = true;
                if let Some(c) = self.clients.iter_mut().find(|c| c.transport == Some(to)) {
                    c.session.handle_message(self.now, bytes);
                }
            }
            while let Some(command) = self.relay.poll_command() {
                if let Command::Close { transport: client, .. } = &command {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.transport == Some(*client)) {
                        c.transport = None;
                        c.session.handle_transport_closed(self.now);
                    }
                }
                if let Command::Credit { call, bytes } = &command {
                    let held = self.outstanding.entry(*call).or_default();
                    assert!(*bytes <= *held, "{call}: {bytes} bytes credited, {held} outstanding");
                    *held -= bytes;
                }
                self.commands.push(command);
            }
            for c in &mut self.clients {
                while let Some(e) = c.session.poll_event() {
                    c.events.push(e);
                }
                while let Some(bytes) = c.session.poll_transmit() {
                    if let Some(t) = c.transport {
                        moved = true;
                        self.relay.handle_client_message(self.now, t, bytes);
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Client `client` invokes `tool`; pumps.
    pub fn invoke(&mut self, client: usize, tool: &str, args: Value) -> RequestId {
        let id = self.clients[client].session.invoke(self.now, Invoke::new(tool, args)).unwrap();
        self.pump();
        id
    }

    /// The calls issued so far (and forgets them).
    pub fn calls(&mut self) -> Vec<FunctionCall> {
        let mut calls = Vec::new();
        self.commands.retain(|c| match c {
            Command::Call(call) => {
                calls.push(call.clone());
                false
            }
            _ => true,
        });
        calls
    }

    /// The one call issued since the last look (panics otherwise).
    pub fn one_call(&mut self) -> FunctionCall {
        let mut calls = self.calls();
        assert_eq!(calls.len(), 1, "expected one call, got {calls:?}");
        calls.pop().unwrap()
    }

    /// The function answers `call` with `head`; pumps.
    pub fn head(&mut self, call: CallId, head: ResponseHead) {
        self.relay.handle_call_head(self.now, call, head);
        self.pump();
    }

    /// The function answers `call` with 200 and no headers; pumps.
    pub fn ok(&mut self, call: CallId) {
        self.head(call, ResponseHead { status: 200, ..Default::default() });
    }

    /// A chunk of `call`'s body (counted as outstanding until credited); pumps.
    pub fn chunk(&mut self, call: CallId, data: &[u8]) {
        self.hand_chunk(call, Bytes::copy_from_slice(data));
        self.pump();
    }

    /// Hands a chunk of `call`'s body to the core without pumping, counting
    /// it as outstanding until the core credits it back.
    pub fn hand_chunk(&mut self, call: CallId, data: Bytes) {
        *self.outstanding.entry(call).or_default() += data.len();
        self.relay.handle_call_chunk(self.now, call, data);
    }

    /// Body bytes of `call` handed to the core and not yet credited back.
    pub fn outstanding(&self, call: CallId) -> usize {
        self.outstanding.get(&call).copied().unwrap_or(0)
    }

    /// `call`'s body ends; pumps.
    pub fn end(&mut self, call: CallId) {
        self.relay.handle_call_end(self.now, call);
        self.pump();
    }

    /// Moves the clock on by `by` and wakes the relay and the clients; pumps.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.relay.handle_timeout(self.now);
        for c in &mut self.clients {
            c.session.handle_timeout(self.now);
        }
        self.pump();
    }

    /// The output client `client` received for `id`, concatenated.
    pub fn output(&self, client: usize, id: RequestId) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.clients[client].events {
            if let Event::Chunk { id: i, data } = e {
                if *i == id {
                    out.extend_from_slice(data);
                }
            }
        }
        out
    }

    /// How `id` ended for client `client`, if it has.
    pub fn outcome(&self, client: usize, id: RequestId) -> Option<Result<(Value, Metrics), ErrorInfo>> {
        self.clients[client].events.iter().find_map(|e| match e {
            Event::Completed { id: i, result, metrics } if *i == id => Some(Ok((result.clone(), metrics.clone()))),
            Event::Failed { id: i, error } if *i == id => Some(Err(error.clone())),
            _ => None,
        })
    }

    /// The code `id` failed with for client `client` (panics otherwise).
    pub fn error_code(&self, client: usize, id: RequestId) -> ErrorCode {
        match self.outcome(client, id) {
            Some(Err(e)) => e.code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// The relay asked to abort `call`.
    pub fn aborted(&self, call: CallId) -> bool {
        self.commands.iter().any(|c| *c == Command::Abort(call))
    }

    /// Body bytes of `call` credited back so far.
    pub fn credited(&self, call: CallId) -> usize {
        self.commands
            .iter()
            .map(|c| match c {
                Command::Credit { call: c, bytes } if *c == call => *bytes,
                _ => 0,
            })
            .sum()
    }

    /// The connection id client `client` was given.
    pub fn cid(&self, client: usize) -> String {
        self.clients[client]
            .events
            .iter()
            .find_map(|e| match e {
                Event::Connected { cid, .. } => Some(cid.clone()),
                _ => None,
            })
            .expect("connected")
    }

    /// A management request with the secret `s3cret`; pumps.
    pub fn manage(&mut self, method: &str, path: &str, body: Bytes) -> ManagementResponse {
        let request = ManagementRequest {
            method: method.into(),
            path: path.into(),
            authorization: Some("Bearer s3cret".into()),
            body,
        };
        let response = self.relay.handle_management(self.now, &request);
        self.pump();
        response
    }
}
