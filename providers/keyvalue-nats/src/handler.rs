//! The wRPC handlers: each call names its caller, whose workload owns the bucket.

use bytes::Bytes;
use tracing::Instrument as _;
use trellis_provider_sdk::lattice::trace::jetstream_span;
use trellis_provider_sdk::{Caller, NatsContext};
use wrpc_transport::{ResourceBorrow, ResourceOwn};

use crate::bindings::exports::wasi::keyvalue::{atomics, batch, store};
use crate::buckets::{Bucket, Buckets, Stored};
use crate::counters::{Counters, wrapped};

type Result<T> = anyhow::Result<std::result::Result<T, store::Error>>;
type BucketRef = ResourceBorrow<store::Bucket>;

/// Keys returned per `list-keys` page.
const PAGE: usize = 1000;

/// Serves every keyvalue function on JetStream KV, and atomics on
/// JetStream counters.
#[derive(Clone)]
pub struct Handler {
    buckets: Buckets,
    counters: Counters,
    nats: async_nats::Client,
}

impl Handler {
    /// A handler keeping its data in `buckets` and its counters in `counters`.
    pub fn new(nats: async_nats::Client, buckets: Buckets, counters: Counters) -> Self {
        Handler {
            buckets,
            counters,
            nats,
        }
    }

    /// The value of `key`: its entry, or the total of its counter.
    async fn value(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> std::result::Result<Option<Bytes>, store::Error> {
        let key = bucket.key(key);
        match self.buckets.read(&key).await.map_err(other)? {
            Stored::Missing { .. } => Ok(None),
            Stored::Value { value, .. } => Ok(Some(value)),
            Stored::Counter => match self.counters.total(&key).await.map_err(other)? {
                Some(total) => {
                    let value = wrapped(&total).map_err(other)?;
                    Ok(Some(Bytes::copy_from_slice(&value.to_le_bytes())))
                }
                None => Ok(None),
            },
        }
    }

    /// `set`: the value replaces the key's counter, if it had one.
    async fn write(
        &self,
        bucket: &Bucket,
        key: &str,
        value: Bytes,
    ) -> std::result::Result<(), store::Error> {
        let stored = bucket.key(key);
        let (put, cleared) =
            tokio::join!(self.put(bucket, key, value), self.counters.clear(&stored));
        put?;
        cleared.map_err(other)
    }

    /// `delete`: the entry and the counter.
    async fn remove(&self, bucket: &Bucket, key: &str) -> std::result::Result<(), store::Error> {
        let stored = bucket.key(key);
        let kv = self.buckets.store();
        let (deleted, cleared) = tokio::join!(kv.delete(&stored), self.counters.clear(&stored));
        deleted.map_err(other)?;
        cleared.map_err(other)
    }

    /// Adds `delta` to `key`'s counter: one publish, whose acknowledgement
    /// carries the new total. The first increment since the key was set or
    /// made also points its entry at the counter, folding a set value in.
    async fn add(
        &self,
        bucket: &Bucket,
        key: &str,
        delta: u64,
    ) -> std::result::Result<u64, store::Error> {
        let key = bucket.key(key);
        let total = self.counters.add(&key, delta).await.map_err(other)?;
        if total != delta.to_string() {
            return wrapped(&total).map_err(other);
        }
        let total = match self.buckets.read(&key).await.map_err(other)? {
            Stored::Counter => total,
            Stored::Missing { sequence } => {
                self.buckets
                    .mark_counter(&key, sequence)
                    .await
                    .map_err(other)?;
                total
            }
            Stored::Value { value, sequence } => {
                let Ok(set) = <[u8; 8]>::try_from(value.as_ref()) else {
                    // Undone: the key keeps the value it had.
                    self.counters.clear(&key).await.map_err(other)?;
                    return Err(other(format!(
                        "the value is {} bytes, not an 8-byte counter",
                        value.len()
                    )));
                };
                let total = self
                    .counters
                    .add(&key, u64::from_le_bytes(set))
                    .await
                    .map_err(other)?;
                // A `set` since the read wins; its value stands.
                self.buckets
                    .mark_counter(&key, sequence)
                    .await
                    .map_err(other)?;
                total
            }
        };
        wrapped(&total).map_err(other)
    }

    /// Stores `value` under `key`, refusing at once what the server would refuse
    /// (a message over its `max_payload`) with a sentence that says so.
    async fn put(
        &self,
        bucket: &Bucket,
        key: &str,
        value: Bytes,
    ) -> std::result::Result<(), store::Error> {
        let kv = self.buckets.store();
        let limit = self.nats.server_info().max_payload;
        if value.len() + key.len() > limit {
            return Err(other(format!(
                "the value for key `{key}` is {} bytes; this NATS server takes at most {limit} bytes per value (max_payload)",
                value.len()
            )));
        }
        kv.put(bucket.key(key), value)
            .await
            .map(|_| ())
            .map_err(other)
    }

    /// The caller's bucket behind a bucket handle.
    async fn bucket(
        &self,
        cx: &NatsContext,
        bucket: &BucketRef,
    ) -> std::result::Result<Bucket, store::Error> {
        let caller = Caller::from_context(cx).map_err(refused)?;
        let handle = std::str::from_utf8(bucket.as_ref())
            .map_err(|_| store::Error::Other("malformed bucket handle".into()))?;
        self.buckets
            .owned(&caller, handle)
            .ok_or(store::Error::AccessDenied)
    }
}

/// The caller is not a Trellis host (or sent a bad config header).
fn refused(why: impl std::fmt::Display) -> store::Error {
    tracing::warn!(%why, "refused a call");
    store::Error::AccessDenied
}

fn other(e: impl std::fmt::Display) -> store::Error {
    let message = e.to_string();
    tracing::warn!(error = %message, "call failed");
    store::Error::Other(message)
}

impl store::Handler<NatsContext> for Handler {
    async fn open(
        &self,
        cx: NatsContext,
        identifier: String,
    ) -> Result<ResourceOwn<store::Bucket>> {
        let caller = match Caller::from_context(&cx) {
            Ok(caller) => caller,
            Err(e) => return Ok(Err(refused(e))),
        };
        Ok(match self.buckets.handle_for(&caller, &identifier) {
            Ok(handle) => Ok(ResourceOwn::new(Bytes::from(handle))),
            Err(e) => Err(other(e)),
        })
    }
}

impl store::HandlerBucket<NatsContext> for Handler {
    async fn get(&self, cx: NatsContext, bucket: BucketRef, key: String) -> Result<Option<Bytes>> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            self.value(&bucket, &key).await
        }
        .instrument(jetstream_span("get"))
        .await)
    }

    async fn set(
        &self,
        cx: NatsContext,
        bucket: BucketRef,
        key: String,
        value: Bytes,
    ) -> Result<()> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            self.write(&bucket, &key, value).await
        }
        .instrument(jetstream_span("set"))
        .await)
    }

    async fn delete(&self, cx: NatsContext, bucket: BucketRef, key: String) -> Result<()> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            self.remove(&bucket, &key).await
        }
        .instrument(jetstream_span("delete"))
        .await)
    }

    async fn exists(&self, cx: NatsContext, bucket: BucketRef, key: String) -> Result<bool> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            let stored = self.buckets.read(&bucket.key(&key)).await.map_err(other)?;
            Ok(!matches!(stored, Stored::Missing { .. }))
        }
        .instrument(jetstream_span("exists"))
        .await)
    }

    async fn list_keys(
        &self,
        cx: NatsContext,
        bucket: BucketRef,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            let mut keys = self.buckets.keys(&bucket).await.map_err(other)?;
            keys.sort();
            let start = cursor.unwrap_or(0) as usize;
            let page: Vec<String> = keys.iter().skip(start).take(PAGE).cloned().collect();
            let next = start + page.len();
            Ok(store::KeyResponse {
                cursor: (next < keys.len()).then_some(next as u64),
                keys: page,
            })
        }
        .instrument(jetstream_span("list-keys"))
        .await)
    }
}

impl atomics::Handler<NatsContext> for Handler {
    async fn increment(
        &self,
        cx: NatsContext,
        bucket: BucketRef,
        key: String,
        delta: u64,
    ) -> Result<u64> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            self.add(&bucket, &key, delta).await
        }
        .instrument(jetstream_span("increment"))
        .await)
    }
}

impl batch::Handler<NatsContext> for Handler {
    async fn get_many(
        &self,
        cx: NatsContext,
        bucket: BucketRef,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Bytes)>>> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let value = self.value(&bucket, &key).await?;
                out.push(value.map(|v| (key, v)));
            }
            Ok(out)
        }
        .instrument(jetstream_span("get-many"))
        .await)
    }

    async fn set_many(
        &self,
        cx: NatsContext,
        bucket: BucketRef,
        key_values: Vec<(String, Bytes)>,
    ) -> Result<()> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            for (key, value) in key_values {
                self.write(&bucket, &key, value).await?;
            }
            Ok(())
        }
        .instrument(jetstream_span("set-many"))
        .await)
    }

    async fn delete_many(
        &self,
        cx: NatsContext,
        bucket: BucketRef,
        keys: Vec<String>,
    ) -> Result<()> {
        Ok(async {
            let bucket = self.bucket(&cx, &bucket).await?;
            for key in keys {
                self.remove(&bucket, &key).await?;
            }
            Ok(())
        }
        .instrument(jetstream_span("delete-many"))
        .await)
    }
}
