//! One relay node, several cores. A node's sessions are split among N core
//! tasks (shards), each owning its own [`Relay`](asp_relay_proto::Relay),
//! so protocol work spreads over the CPUs. A new client goes to the next
//! shard in turn; a resuming client to the shard that holds its session
//! (found by its ticket's lookup key); a management request to the shard
//! that holds its connection (by `cid`). The index is built from the cores'
//! directory announcements, the same ones a cluster's directory is built from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asp_proto::session::ResumeKey;
use asp_proto::Frame;
use asp_relay_proto::{DirectoryChange, ManagementRequest, ManagementResponse, RelayStats};
use tokio::sync::{mpsc, oneshot};

use crate::messages::Input;

/// The core tasks of one node and where each session lives.
pub(crate) struct Shards {
    cores: Vec<mpsc::Sender<Input>>,
    index: Mutex<Index>,
    next: AtomicUsize,
    /// Client transports whose tasks are still running (writing their last
    /// frames and close): a drain waits for them, not only for the cores.
    transports: Arc<AtomicUsize>,
    /// Told to drain: no longer ready for new clients.
    draining: std::sync::atomic::AtomicBool,
}

/// Counts a client transport's task while it runs.
pub(crate) struct TransportGuard(Arc<AtomicUsize>);

impl Drop for TransportGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Index {
    by_cid: HashMap<String, usize>,
    /// Resume key (hex) → shard.
    by_key: HashMap<String, usize>,
    /// cid → its resume key (hex), to forget it with the session.
    key_of: HashMap<String, String>,
}

/// A directory announcement from core `shard`.
pub(crate) type Announcement = (usize, DirectoryChange);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Shards {
    pub(crate) fn new(cores: Vec<mpsc::Sender<Input>>) -> Arc<Shards> {
        Arc::new(Shards {
            cores,
            index: Mutex::default(),
            next: AtomicUsize::new(0),
            transports: Arc::default(),
            draining: Default::default(),
        })
    }

    /// Counts a client transport's task until the guard drops.
    pub(crate) fn transport(&self) -> TransportGuard {
        self.transports.fetch_add(1, Ordering::SeqCst);
        TransportGuard(self.transports.clone())
    }

    /// Client transport tasks still running.
    pub(crate) fn transports(&self) -> usize {
        self.transports.load(Ordering::SeqCst)
    }

    /// Core `shard`'s input.
    pub(crate) fn core(&self, shard: usize) -> &mpsc::Sender<Input> {
        &self.cores[shard]
    }

    /// The shard a new transport opens on: each in turn.
    pub(crate) fn next_shard(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.cores.len()
    }

    /// The shard holding the session that `first` (a client's first
    /// message) asks to resume, when it is a resuming HELLO of a session
    /// this node holds.
    pub(crate) fn resume_target(&self, first: &[u8]) -> Option<usize> {
        if self.cores.len() == 1 {
            return None;
        }
        let frames = asp_proto::decode_all(bytes::Bytes::copy_from_slice(first), u32::MAX).ok()?;
        let Some(Frame::Hello(hello)) = frames.first() else { return None };
        let key = ResumeKey::of(&hello.resume.as_ref()?.ticket)?;
        self.index.lock().expect("lock").by_key.get(&hex(key.as_bytes())).copied()
    }

    /// Learns where sessions are from a core's announcement.
    pub(crate) fn observe(&self, shard: usize, change: &DirectoryChange) {
        let mut index = self.index.lock().expect("lock");
        match change {
            DirectoryChange::Added { cid, key } => {
                index.by_cid.insert(cid.clone(), shard);
                if let Some(key) = key {
                    index.by_key.insert(key.clone(), shard);
                    index.key_of.insert(cid.clone(), key.clone());
                }
            }
            DirectoryChange::Removed(cid) => {
                if index.by_cid.get(cid) == Some(&shard) {
                    index.by_cid.remove(cid);
                    if let Some(key) = index.key_of.remove(cid) {
                        index.by_key.remove(&key);
                    }
                }
            }
            DirectoryChange::Saved { .. } | DirectoryChange::Acknowledged { .. } | DirectoryChange::Lookup { .. } => {}
        }
    }

    async fn ask(&self, shard: usize, request: ManagementRequest) -> Option<ManagementResponse> {
        let (reply, answer) = oneshot::channel();
        self.cores[shard].send(Input::Manage(request, reply)).await.ok()?;
        answer.await.ok()
    }

    /// The node's answer to a management request: from the shard holding
    /// the connection; for `POST /v1/frames`, from every shard, summed.
    /// `None` when the relay is stopping.
    pub(crate) async fn manage(&self, request: ManagementRequest) -> Option<ManagementResponse> {
        if self.cores.len() == 1 {
            return self.ask(0, request).await;
        }
        if request.path == "/v1/frames" {
            return self.broadcast(request).await;
        }
        let cid = request.path.strip_prefix("/v1/connections/").map(|rest| rest.split('/').next().unwrap_or(rest));
        let known = cid.and_then(|cid| self.index.lock().expect("lock").by_cid.get(cid).copied());
        if let Some(shard) = known {
            return self.ask(shard, request).await;
        }
        // Unknown here: a shard may still remember it closed (410).
        let mut answer = None;
        for shard in 0..self.cores.len() {
            let response = self.ask(shard, request.clone()).await?;
            if response.status != 404 {
                return Some(response);
            }
            answer = Some(response);
        }
        answer
    }

    async fn broadcast(&self, request: ManagementRequest) -> Option<ManagementResponse> {
        let mut total: Option<(ManagementResponse, serde_json::Value)> = None;
        for shard in 0..self.cores.len() {
            let response = self.ask(shard, request.clone()).await?;
            if response.status != 202 {
                return Some(response);
            }
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
            total = Some(match total {
                None => (response, body),
                Some((first, mut sum)) => {
                    let connections =
                        sum["connections"].as_u64().unwrap_or(0) + body["connections"].as_u64().unwrap_or(0);
                    sum["connections"] = connections.into();
                    (first, sum)
                }
            });
        }
        total.map(|(first, sum)| ManagementResponse { status: first.status, body: sum.to_string().into() })
    }

    /// Counters of every shard, summed.
    pub(crate) async fn stats(&self) -> RelayStats {
        let mut total = RelayStats::default();
        for core in &self.cores {
            let (reply, rx) = oneshot::channel();
            if core.send(Input::Stats(reply)).await.is_err() {
                continue;
            }
            let stats = rx.await.unwrap_or_default();
            total.connections += stats.connections;
            total.attached += stats.attached;
            total.calls += stats.calls;
        }
        total
    }

    /// The node is draining (for `/readyz`).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Tells every shard to drain.
    pub(crate) async fn drain(&self, drain: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        for core in &self.cores {
            let _ = core.send(Input::Drain(drain)).await;
        }
    }
}

/// Receives every core's directory announcements: keeps the shard index,
/// answers lookups when there is no cluster, and passes the rest on to the
/// cluster's directory with the core that made them.
pub(crate) async fn directory(
    shards: Arc<Shards>,
    mut announcements: mpsc::UnboundedReceiver<Announcement>,
    cluster: Option<mpsc::UnboundedSender<(mpsc::Sender<Input>, DirectoryChange)>>,
) {
    while let Some((shard, change)) = announcements.recv().await {
        shards.observe(shard, &change);
        let core = shards.core(shard).clone();
        match (&cluster, change) {
            (Some(cluster), change) => {
                let _ = cluster.send((core, change));
            }
            (None, DirectoryChange::Lookup { transport, .. }) => {
                let _ = core.send(Input::Lookup(transport, None, Vec::new())).await;
            }
            (None, _) => {}
        }
    }
}
