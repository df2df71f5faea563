//! The store a cluster of relays shares (SPEC.md §15.4): a directory of
//! keys with leases, and topics to send messages on.
//!
//! Kept small so that another store can stand in for Redis: NATS JetStream
//! offers the same two things (a key-value bucket with a TTL, and subjects).

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// The store could not be reached or refused a command.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the cluster store is unreachable: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// What the relays of a cluster share.
pub trait ClusterStore: Send + Sync + 'static {
    /// Writes every `(key, value)` with a lease: the entry disappears by
    /// itself `lease` after its last write, so a dead node's entries expire.
    fn put(&self, entries: Vec<(String, Bytes)>, lease: Duration) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Like [`put`](Self::put), but leaves a key that holds another value
    /// alone: a node renewing its entries does not take back a connection
    /// another node has adopted meanwhile.
    fn renew(&self, entries: Vec<(String, Bytes)>, lease: Duration) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Deletes `key` if it still holds `value` (a connection that moved to
    /// another node is not removed by the node it left); whether it did.
    fn delete_if(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// The value at `key`, if any.
    fn get(&self, key: String) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>>;

    /// Appends `value` to the queue at `key` unless it holds `max` values
    /// already; the queue expires `lease` after the last append. Its new
    /// length, or `None` when it was full.
    fn enqueue(
        &self,
        key: String,
        value: Bytes,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Option<usize>, StoreError>>;

    /// Drops the oldest `n` values queued at `key`.
    fn dequeue(&self, key: String, n: usize) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Everything queued at `key`, oldest first.
    fn queued(&self, key: String) -> BoxFuture<'_, Result<Vec<Bytes>, StoreError>>;

    /// Deletes `key`, whatever it holds.
    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Sends `message` to whoever listens on `topic`; how many did.
    fn publish(&self, topic: String, message: Bytes) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Messages on `topics` as `(topic, message)`, for as long as the
    /// subscription lasts: the stream ends when the store is lost, and the
    /// caller subscribes again.
    fn subscribe(&self, topics: Vec<String>) -> BoxFuture<'_, Result<BoxStream<'static, (String, Bytes)>, StoreError>>;
}
