//! [`ClusterStore`] on Redis: keys with `PX` leases, pub/sub topics.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::store::{ClusterStore, StoreError};

/// How long one command may take before the store counts as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// For each KEYS[i]: sets it to ARGV[i + 1] with a lease of ARGV[1] ms,
/// unless it holds another value.
const RENEW: &str = r"
for i, key in ipairs(KEYS) do
  local now = redis.call('GET', key)
  if not now or now == ARGV[i + 1] then redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1]) end
end
return 0";

/// RPUSH ARGV[1] to KEYS[1] unless it holds ARGV[2] values; PEXPIRE ARGV[3].
/// Returns the new length, or -1 when full.
const ENQUEUE: &str = r"
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n";

/// Deletes KEYS[1] only while it holds ARGV[1].
const DELETE_IF: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// A Redis server (or anything speaking its protocol, e.g. Valkey).
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    delete_if: redis::Script,
    renew: redis::Script,
    enqueue: redis::Script,
}

fn error(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT[/DB]`) and checks that the
    /// server answers. The connection reconnects by itself later.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError(format!("{url}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conn =
            client.get_connection_manager_with_config(config).await.map_err(|e| StoreError(format!("{url}: {e}")))?;
        let _: String =
            redis::cmd("PING").query_async(&mut conn).await.map_err(|e| StoreError(format!("{url}: {e}")))?;
        Ok(RedisStore {
            client,
            conn,
            delete_if: redis::Script::new(DELETE_IF),
            renew: redis::Script::new(RENEW),
            enqueue: redis::Script::new(ENQUEUE),
        })
    }
}

fn millis(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl ClusterStore for RedisStore {
    fn put(&self, entries: Vec<(String, Bytes)>, lease: Duration) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            for batch in entries.chunks(1000) {
                let mut pipe = redis::pipe();
                for (key, value) in batch {
                    pipe.cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(millis(lease)).ignore();
                }
                pipe.query_async::<()>(&mut conn).await.map_err(error)?;
            }
            Ok(())
        })
    }

    fn renew(&self, entries: Vec<(String, Bytes)>, lease: Duration) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            for batch in entries.chunks(1000) {
                let mut call = self.renew.prepare_invoke();
                call.arg(millis(lease));
                for (key, value) in batch {
                    call.key(key).arg(value.as_ref());
                }
                call.invoke_async::<i64>(&mut conn).await.map_err(error)?;
            }
            Ok(())
        })
    }

    fn delete_if(&self, key: String, value: Bytes) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let deleted: i64 =
                self.delete_if.key(key).arg(value.as_ref()).invoke_async(&mut conn).await.map_err(error)?;
            Ok(deleted > 0)
        })
    }

    fn get(&self, key: String) -> BoxFuture<'_, Result<Option<Bytes>, StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await.map_err(error)?;
            Ok(value.map(Bytes::from))
        })
    }

    fn enqueue(
        &self,
        key: String,
        value: Bytes,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Option<usize>, StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let mut call = self.enqueue.key(key);
            call.arg(value.as_ref()).arg(max).arg(millis(lease));
            let n: i64 = call.invoke_async(&mut conn).await.map_err(error)?;
            Ok(usize::try_from(n).ok())
        })
    }

    fn dequeue(&self, key: String, n: usize) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let _: redis::Value = redis::cmd("LPOP").arg(key).arg(n).query_async(&mut conn).await.map_err(error)?;
            Ok(())
        })
    }

    fn queued(&self, key: String) -> BoxFuture<'_, Result<Vec<Bytes>, StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let values: Vec<Vec<u8>> =
                redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query_async(&mut conn).await.map_err(error)?;
            Ok(values.into_iter().map(Bytes::from).collect())
        })
    }

    fn delete(&self, key: String) -> BoxFuture<'_, Result<(), StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move { redis::cmd("DEL").arg(key).query_async(&mut conn).await.map_err(error) })
    }

    fn publish(&self, topic: String, message: Bytes) -> BoxFuture<'_, Result<usize, StoreError>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("PUBLISH").arg(topic).arg(message.as_ref()).query_async(&mut conn).await.map_err(error)
        })
    }

    fn subscribe(&self, topics: Vec<String>) -> BoxFuture<'_, Result<BoxStream<'static, (String, Bytes)>, StoreError>> {
        Box::pin(async move {
            let mut pubsub = tokio::time::timeout(COMMAND_TIMEOUT, self.client.get_async_pubsub())
                .await
                .map_err(|_| StoreError("timed out".into()))?
                .map_err(error)?;
            for topic in topics {
                pubsub.subscribe(topic).await.map_err(error)?;
            }
            let messages = pubsub
                .into_on_message()
                .map(|msg| (msg.get_channel_name().to_owned(), Bytes::copy_from_slice(msg.get_payload_bytes())));
            Ok(messages.boxed())
        })
    }
}
