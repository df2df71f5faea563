//! A relay as one node of a cluster (SPEC.md §15.4).
//!
//! Every node records the connections it holds in the shared store's
//! directory (`asp:conn:{cid}` → node id, with a lease it renews), listens
//! on its own topic (`asp:node:{id}`) and on the broadcast topic. A
//! management request for a connection another node holds is sent to that
//! node's topic and answered with the owner's response; a broadcast push
//! goes to every node. The relay core knows nothing of this: it only
//! announces its connections ([`DirectoryChange`]).

mod redis_store;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asp_proto::session::SessionSnapshot;
use asp_proto::Value;
use asp_relay_proto::{connection_push_frames, DirectoryChange, ManagementRequest, ManagementResponse, RelayConfig};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use redis_store::RedisStore;
pub use store::{ClusterStore, StoreError};

use crate::messages::Input;
use crate::shards::Shards;

/// How long a directory entry outlives its node's last renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(15);
/// How often a node renews its entries (and re-registers them after the
/// store was lost).
const RENEW: Duration = Duration::from_secs(5);
/// How long a node waits for another to answer a forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// The topic every node listens on.
const BROADCAST_TOPIC: &str = "asp:broadcast";

fn connection_key(cid: &str) -> String {
    format!("asp:conn:{cid}")
}

/// Where a session's snapshot is kept, by its resume key (hex).
fn session_key(resume_key: &str) -> String {
    format!("asp:session:{resume_key}")
}

/// Which resume key (hex) a connection's snapshot is under: the store knows
/// the session while no node holds it.
fn cid_key(cid: &str) -> String {
    format!("asp:cid:{cid}")
}

/// Pushes for a connection no node holds, waiting for the node that adopts it.
fn push_queue_key(cid: &str) -> String {
    format!("asp:pushes:{cid}")
}

/// Pushes kept for one connection while no node holds it.
const MAX_QUEUED_PUSHES: usize = 256;

fn node_topic(node: &str) -> String {
    format!("asp:node:{node}")
}

/// What nodes send each other, as MsgPack arrays.
#[derive(Debug, PartialEq)]
enum Message {
    /// A management request for the receiving node's core.
    Request { from: String, id: u64, method: String, path: String, body: Bytes },
    /// The answer to request `id`.
    Reply { id: u64, status: u16, body: Bytes },
}

impl Message {
    fn encode(&self) -> Bytes {
        let value = match self {
            Message::Request { from, id, method, path, body } => Value::Array(vec![
                0.into(),
                from.as_str().into(),
                (*id).into(),
                method.as_str().into(),
                path.as_str().into(),
                Value::Binary(body.to_vec()),
            ]),
            Message::Reply { id, status, body } => {
                Value::Array(vec![1.into(), (*id).into(), (*status).into(), Value::Binary(body.to_vec())])
            }
        };
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &value).expect("writing to a Vec cannot fail");
        out.into()
    }

    /// `None` for anything that is not a message of ours.
    fn decode(bytes: &[u8]) -> Option<Message> {
        let value = rmpv::decode::read_value(&mut &bytes[..]).ok()?;
        let items = value.as_array()?;
        let text = |i: usize| items.get(i)?.as_str().map(str::to_owned);
        let number = |i: usize| items.get(i)?.as_u64();
        let binary = |i: usize| items.get(i)?.as_slice().map(Bytes::copy_from_slice);
        match number(0)? {
            0 => Some(Message::Request {
                from: text(1)?,
                id: number(2)?,
                method: text(3)?,
                path: text(4)?,
                body: binary(5)?,
            }),
            1 => Some(Message::Reply { id: number(1)?, status: u16::try_from(number(2)?).ok()?, body: binary(3)? }),
            _ => None,
        }
    }
}

/// This node's part in the cluster.
pub(crate) struct Cluster {
    node: String,
    store: Arc<dyn ClusterStore>,
    /// Put on requests from other nodes (they were authenticated there; the
    /// secret itself never travels through the store).
    secret: Option<String>,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<ManagementResponse>>>,
    next_id: AtomicU64,
    /// How long a snapshot outlives its node's last renewal: the resume
    /// grace, so a client of a dead node can resume elsewhere within it.
    grace: Duration,
    /// The largest frame payload a push may carry.
    max_frame: u32,
}

fn unavailable(message: String) -> ManagementResponse {
    ManagementResponse { status: 503, body: serde_json::json!({ "error": message }).to_string().into() }
}

impl Cluster {
    pub(crate) fn new(node: String, store: Arc<dyn ClusterStore>, config: &RelayConfig) -> Arc<Cluster> {
        Arc::new(Cluster {
            node,
            store,
            secret: config.management_secret.clone(),
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
            grace: config.session.resume_grace,
            max_frame: config.session.max_frame_payload,
        })
    }

    /// This node's id (random per process start).
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Starts the directory and inbox tasks.
    /// `changes` are the cores' directory announcements, each with the core
    /// that made it (lookups are answered to it).
    pub(crate) fn start(
        self: &Arc<Self>,
        changes: mpsc::UnboundedReceiver<(mpsc::Sender<Input>, DirectoryChange)>,
        shards: Arc<Shards>,
    ) -> [JoinHandle<()>; 2] {
        [tokio::spawn(self.clone().directory(changes)), tokio::spawn(self.clone().inbox(shards))]
    }

    /// Keeps this node's connections and their snapshots in the store:
    /// each change as it comes, and all of them every [`RENEW`], which also
    /// registers them again once a lost store is back. Lookups are answered
    /// to the core without holding the rest up.
    async fn directory(self: Arc<Self>, mut changes: mpsc::UnboundedReceiver<(mpsc::Sender<Input>, DirectoryChange)>) {
        // cid → the entries last saved for it: its snapshot, and its resume key.
        let mut held: HashMap<String, Option<Vec<(String, Bytes)>>> = HashMap::new();
        let mut renew = tokio::time::interval(RENEW);
        let mut healthy = true;
        let node = Bytes::from(self.node.clone());
        loop {
            let result = tokio::select! {
                change = changes.recv() => match change {
                    Some((_, DirectoryChange::Added { cid, .. })) => {
                        held.entry(cid.clone()).or_default();
                        // Plain SET: a session adopted here takes its entry over.
                        self.store.put(vec![(connection_key(&cid), node.clone())], LEASE).await
                    }
                    Some((_, DirectoryChange::Saved { cid, key, snapshot })) => {
                        let entries = vec![(session_key(&key), snapshot), (cid_key(&cid), Bytes::from(key))];
                        held.insert(cid, Some(entries.clone()));
                        self.store.put(entries, self.grace).await
                    }
                    Some((_, DirectoryChange::Removed(cid))) => {
                        let saved = held.remove(&cid).flatten().unwrap_or_default();
                        self.forget(&cid, &node, saved).await
                    }
                    Some((_, DirectoryChange::Acknowledged { cid, pushes })) => {
                        self.store.dequeue(push_queue_key(&cid), pushes).await
                    }
                    Some((core, DirectoryChange::Lookup { transport, key })) => {
                        let store = self.store.clone();
                        tokio::spawn(async move {
                            // A store that cannot answer is a session it does not have.
                            let snapshot = store.get(session_key(&key)).await.ok().flatten();
                            let cid = snapshot.as_deref().and_then(SessionSnapshot::from_bytes).map(|s| s.cid);
                            let pushes = match cid {
                                Some(cid) => store.queued(push_queue_key(&cid)).await.unwrap_or_default(),
                                None => Vec::new(),
                            };
                            let _ = core.send(Input::Lookup(transport, snapshot, pushes)).await;
                        });
                        Ok(())
                    }
                    None => return,
                },
                _ = renew.tick() => {
                    let connections = held.keys().map(|cid| (connection_key(cid), node.clone())).collect();
                    let sessions = held.values().flatten().flatten().cloned().collect();
                    let mut result = self.store.renew(connections, LEASE).await;
                    if result.is_ok() {
                        result = self.store.renew(sessions, self.grace).await;
                    }
                    if result.is_ok() && !healthy {
                        tracing::info!(node = %self.node, connections = held.len(), "cluster store is back: connections registered again");
                    }
                    healthy = result.is_ok();
                    result
                }
            };
            if let Err(e) = result {
                if std::mem::replace(&mut healthy, false) {
                    tracing::warn!(node = %self.node, "{e}; local clients keep working, cross-node requests answer 503");
                }
            }
        }
    }

    /// A session ended here: its entries go, unless another node has
    /// adopted it meanwhile (then they are that node's: its snapshot, its
    /// resume-key index, its pushes).
    async fn forget(&self, cid: &str, node: &Bytes, saved: Vec<(String, Bytes)>) -> Result<(), StoreError> {
        if !self.store.delete_if(connection_key(cid), node.clone()).await? {
            return Ok(());
        }
        self.store.delete(push_queue_key(cid)).await?;
        for (key, value) in saved {
            self.store.delete_if(key, value).await?;
        }
        Ok(())
    }

    /// Serves requests other nodes send here and collects their replies;
    /// subscribes again whenever the store is lost.
    async fn inbox(self: Arc<Self>, shards: Arc<Shards>) {
        let topics = vec![node_topic(&self.node), BROADCAST_TOPIC.to_owned()];
        loop {
            if let Ok(mut messages) = self.store.subscribe(topics.clone()).await {
                while let Some((_, bytes)) = messages.next().await {
                    match Message::decode(&bytes) {
                        Some(Message::Request { from, id, method, path, body }) if from != self.node => {
                            let authorization = self.secret.as_ref().map(|s| format!("Bearer {s}"));
                            let request = ManagementRequest { method, path, authorization, body };
                            tokio::spawn(self.clone().answer(shards.clone(), from, id, request));
                        }
                        Some(Message::Reply { id, status, body }) => {
                            if let Some(waiter) = self.pending.lock().expect("lock").get(&id) {
                                let _ = waiter.send(ManagementResponse { status, body });
                            }
                        }
                        _ => {} // our own broadcast, or not ours
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn answer(self: Arc<Self>, shards: Arc<Shards>, from: String, id: u64, request: ManagementRequest) {
        let Some(response) = shards.manage(request.clone()).await else { return };
        self.record_push(&request, &response).await;
        let message = Message::Reply { id, status: response.status, body: response.body };
        let _ = self.store.publish(node_topic(&from), message.encode()).await;
    }

    /// Sends `request` on `topic` and collects up to `expect` replies.
    async fn ask(
        &self,
        topic: String,
        request: &ManagementRequest,
        expect: Option<usize>,
    ) -> Result<Vec<ManagementResponse>, StoreError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.pending.lock().expect("lock").insert(id, tx);
        let message = Message::Request {
            from: self.node.clone(),
            id,
            method: request.method.clone(),
            path: request.path.clone(),
            body: request.body.clone(),
        };
        let result = async {
            let listeners = self.store.publish(topic, message.encode()).await?;
            // A broadcast reaches this node too, which does not answer it.
            let expect = expect.unwrap_or(listeners.saturating_sub(1)).min(listeners);
            let mut replies = Vec::new();
            let deadline = tokio::time::sleep(FORWARD_TIMEOUT);
            tokio::pin!(deadline);
            while replies.len() < expect {
                tokio::select! {
                    reply = rx.recv() => match reply { Some(reply) => replies.push(reply), None => break },
                    () = &mut deadline => break,
                }
            }
            Ok(replies)
        }
        .await;
        self.pending.lock().expect("lock").remove(&id);
        result
    }

    /// A request for connection `cid`, which this node's core does not
    /// hold: the owner's answer; for a push to a connection whose node is
    /// gone while its session can still be resumed, the push queued for
    /// the node that adopts it; `None` when no other node knows `cid`.
    pub(crate) async fn forward(&self, cid: &str, request: &ManagementRequest) -> Option<ManagementResponse> {
        let owner = match self.store.get(connection_key(cid)).await {
            Ok(Some(owner)) if owner != self.node.as_bytes() => Some(String::from_utf8_lossy(&owner).into_owned()),
            Ok(_) => None,
            Err(e) => return Some(unavailable(e.to_string())),
        };
        let silent = match &owner {
            Some(owner) => match self.ask(node_topic(owner), request, Some(1)).await {
                Ok(mut replies) if !replies.is_empty() => return Some(replies.remove(0)),
                Ok(_) => Some(format!("node {owner}, which holds {cid}, did not answer")),
                Err(e) => return Some(unavailable(e.to_string())),
            },
            None => None,
        };
        let push = request.method == "POST" && request.path.ends_with("/frames");
        match self.store.get(cid_key(cid)).await {
            Ok(Some(_)) if push => Some(self.queue_push(cid, request).await),
            Ok(_) => silent.map(unavailable),
            Err(e) => Some(unavailable(e.to_string())),
        }
    }

    /// A push this node's core accepted (202) for a connection it holds is
    /// also kept in the store until the client acknowledges it
    /// ([`DirectoryChange::Acknowledged`]), so that the node adopting the
    /// session, should this one die first, sends it again.
    pub(crate) async fn record_push(&self, request: &ManagementRequest, response: &ManagementResponse) {
        let cid = request.path.strip_prefix("/v1/connections/").and_then(|rest| rest.strip_suffix("/frames"));
        let (Some(cid), "POST", 202) = (cid, request.method.as_str(), response.status) else { return };
        let key = push_queue_key(cid);
        if let Err(e) = self.store.enqueue(key, request.body.clone(), MAX_QUEUED_PUSHES, self.grace).await {
            tracing::warn!(node = %self.node, %cid, "a push could not be kept in the store: {e}");
        }
    }

    /// Keeps a push for the node that will adopt `cid`'s session.
    async fn queue_push(&self, cid: &str, request: &ManagementRequest) -> ManagementResponse {
        let frames = match connection_push_frames(request.body.clone(), self.max_frame) {
            Ok(frames) => frames.len(),
            Err(refused) => return refused,
        };
        let queued = self.store.enqueue(push_queue_key(cid), request.body.clone(), MAX_QUEUED_PUSHES, self.grace).await;
        let json = |status, value: serde_json::Value| ManagementResponse { status, body: value.to_string().into() };
        match queued {
            Ok(Some(_)) => json(202, serde_json::json!({ "frames": frames, "queued": true })),
            Ok(None) => {
                json(429, serde_json::json!({ "error": format!("{MAX_QUEUED_PUSHES} pushes already wait for {cid}") }))
            }
            Err(e) => unavailable(e.to_string()),
        }
    }

    /// Whether the store answers now (for `/readyz`), within a second.
    pub(crate) async fn store_reachable(&self) -> Result<(), StoreError> {
        let probe = self.store.get(connection_key("readyz-probe"));
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError("no answer within 1 s".into())),
        }
    }

    /// A broadcast push, sent to every other node: their answers.
    pub(crate) async fn broadcast(&self, request: &ManagementRequest) -> Result<Vec<ManagementResponse>, StoreError> {
        self.ask(BROADCAST_TOPIC.to_owned(), request, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_ignored() {
        let request = Message::Request {
            from: "n-1".into(),
            id: 7,
            method: "POST".into(),
            path: "/v1/frames".into(),
            body: Bytes::from_static(b"\x00\x01"),
        };
        assert_eq!(Message::decode(&request.encode()), Some(request));
        let reply = Message::Reply { id: 9, status: 202, body: Bytes::from_static(b"{}") };
        assert_eq!(Message::decode(&reply.encode()), Some(reply));
        for garbage in [&b""[..], b"\xc1", b"\x93\x05\x01\x02", b"\x92\x01\xa1x", b"\xdd\xff\xff\xff\xff"] {
            assert_eq!(Message::decode(garbage), None);
        }
    }
}
