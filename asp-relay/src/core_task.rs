//! The one task that owns the relay core: it applies inputs from client and
//! call tasks, then routes the core's transmits and commands back out.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use asp_relay_proto::{CallId, Command, Relay, TransportId};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;

use crate::function::{self, FunctionClient};
use crate::messages::{Backlog, Input, ToClient, CLIENT_BACKLOG};
use crate::shards::Announcement;

struct RunningCall {
    task: AbortHandle,
    credit: Arc<Semaphore>,
}

/// Inputs applied before the outputs are routed: batching them keeps one
/// busy client from paying a full loop per message.
const BATCH: usize = 64;

pub(crate) struct CoreTask {
    relay: Relay,
    rx: mpsc::Receiver<Input>,
    tx: mpsc::Sender<Input>,
    http: FunctionClient,
    writers: HashMap<TransportId, (mpsc::UnboundedSender<ToClient>, Arc<Backlog>)>,
    calls: HashMap<CallId, RunningCall>,
    /// This core's shard number and where its directory announcements go
    /// (the shard index, and a cluster's directory), when anyone listens.
    directory: Option<(usize, mpsc::UnboundedSender<Announcement>)>,
}

impl CoreTask {
    pub(crate) fn new(
        relay: Relay,
        rx: mpsc::Receiver<Input>,
        tx: mpsc::Sender<Input>,
        http: FunctionClient,
        directory: Option<(usize, mpsc::UnboundedSender<Announcement>)>,
    ) -> Self {
        CoreTask { relay, rx, tx, http, writers: HashMap::new(), calls: HashMap::new(), directory }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let deadline = self.relay.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let input = tokio::select! {
                input = self.rx.recv() => match input {
                    Some(input) => Some(input),
                    None => return,
                },
                () = sleep => None,
            };
            let now = Instant::now();
            if let Some(input) = input {
                self.apply(now, input);
                for _ in 1..BATCH {
                    match self.rx.try_recv() {
                        Ok(input) => self.apply(now, input),
                        Err(_) => break,
                    }
                }
            }
            // Re-read the clock rather than trust the sleep (quinn does the same).
            self.relay.handle_timeout(Instant::now());
            self.route(now);
        }
    }

    fn apply(&mut self, now: Instant, input: Input) {
        let relay = &mut self.relay;
        match input {
            Input::Opened { token, writer, backlog, reply } => {
                metrics::counter!("asp_relay_transports_opened_total").increment(1);
                let client = relay.handle_client_open(now, token);
                self.writers.insert(client, (writer, backlog));
                // Anything already queued for it (a refusal) is routed after
                // this input, when its writer is known.
                let _ = reply.send(client);
            }
            Input::Message(client, bytes) => relay.handle_client_message(now, client, bytes),
            Input::Drained(client) => relay.handle_client_backlog(now, client, false),
            Input::Text(client) => relay.handle_client_text(now, client),
            Input::Closed(client) => {
                self.writers.remove(&client);
                relay.handle_client_closed(now, client);
            }
            Input::Head(call, head) => {
                let status = head.status.to_string();
                metrics::counter!("asp_relay_function_responses_total", "status" => status).increment(1);
                relay.handle_call_head(now, call, head)
            }
            Input::Chunk(call, bytes) => relay.handle_call_chunk(now, call, bytes),
            Input::End(call) => {
                self.calls.remove(&call);
                relay.handle_call_end(now, call);
            }
            Input::Failed(call, failure) => {
                let class = match &failure {
                    asp_relay_proto::CallFailure::Unavailable(_) => "unavailable",
                    asp_relay_proto::CallFailure::Truncated(_) => "truncated",
                    asp_relay_proto::CallFailure::Timeout(_) => "timeout",
                    asp_relay_proto::CallFailure::Invalid(_) => "invalid",
                    _ => "other",
                };
                metrics::counter!("asp_relay_function_failures_total", "class" => class).increment(1);
                self.calls.remove(&call);
                relay.handle_call_failed(now, call, failure);
            }
            Input::Manage(request, reply) => {
                let _ = reply.send(relay.handle_management(now, &request));
            }
            Input::Drain(drain) => relay.handle_drain(now, drain),
            Input::Lookup(client, snapshot, pushes) => relay.handle_lookup(now, client, snapshot.as_deref(), &pushes),
            Input::Stats(reply) => {
                let _ = reply.send(relay.stats());
            }
        }
    }

    /// Transmits first, then commands: a client's last ERROR goes out before
    /// the close that follows it.
    fn route(&mut self, now: Instant) {
        while let Some((client, bytes)) = self.relay.poll_transmit() {
            if let Some((writer, backlog)) = self.writers.get(&client) {
                let queued = backlog.bytes.fetch_add(bytes.len(), Ordering::SeqCst) + bytes.len();
                let _ = writer.send(ToClient::Message(bytes));
                if queued > CLIENT_BACKLOG && !backlog.blocked.swap(true, Ordering::SeqCst) {
                    // The client is not taking its bytes: hold its calls.
                    self.relay.handle_client_backlog(now, client, true);
                    // Its task may have drained everything before it could
                    // see the flag: then nobody else would lift it.
                    if backlog.bytes.load(Ordering::SeqCst) < CLIENT_BACKLOG / 2
                        && backlog.blocked.swap(false, Ordering::SeqCst)
                    {
                        self.relay.handle_client_backlog(now, client, false);
                    }
                }
            }
        }
        while let Some(command) = self.relay.poll_command() {
            match command {
                Command::Call(call) => {
                    metrics::counter!("asp_relay_function_calls_total").increment(1);
                    let id = call.call;
                    let credit = Arc::new(Semaphore::new(self.http.body_window()));
                    let task = tokio::spawn(function::run(self.http.clone(), call, credit.clone(), self.tx.clone()));
                    self.calls.insert(id, RunningCall { task: task.abort_handle(), credit });
                }
                Command::Abort(call) => {
                    if let Some(running) = self.calls.remove(&call) {
                        running.task.abort();
                    }
                }
                Command::Credit { call, bytes } => {
                    if let Some(running) = self.calls.get(&call) {
                        running.credit.add_permits(bytes);
                    }
                }
                Command::Close { transport: client, code, reason } => {
                    if let Some((writer, _)) = self.writers.remove(&client) {
                        let _ = writer.send(ToClient::Close(code, reason));
                    }
                }
                Command::Directory(change) => {
                    if let Some((shard, directory)) = &self.directory {
                        let _ = directory.send((*shard, change));
                    }
                }
                _ => {}
            }
        }
    }
}
