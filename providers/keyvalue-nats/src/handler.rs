//! The wRPC handlers: each call names its caller, whose workload owns the bucket.

use bytes::Bytes;
use tracing::Instrument as _;
use trellis_provider_sdk::lattice::trace::jetstream_span;
use trellis_provider_sdk::{Caller, NatsContext};
use wrpc_transport::{ResourceBorrow, ResourceOwn};

use crate::bindings::exports::wasi::keyvalue::{atomics, batch, store};
use crate::buckets::{Bucket, Buckets};

type Result<T> = anyhow::Result<std::result::Result<T, store::Error>>;
type BucketRef = ResourceBorrow<store::Bucket>;

/// Keys returned per `list-keys` page.
const PAGE: usize = 1000;
/// Attempts of an `increment` compare-and-swap under contention.
const CAS_ATTEMPTS: usize = 64;

/// Serves every keyvalue function on JetStream KV.
#[derive(Clone)]
pub struct Handler {
    buckets: Buckets,
    nats: async_nats::Client,
}

type Store = async_nats::jetstream::kv::Store;

impl Handler {
    /// A handler keeping its data in `buckets`.
    pub fn new(nats: async_nats::Client, buckets: Buckets) -> Self {
        Handler { buckets, nats }
    }

    /// Stores `value` under `key`, refusing at once what the server would refuse
    /// (a message over its `max_payload`) with a sentence that says so.
    async fn put(
        &self,
        (kv, bucket): &(Store, Bucket),
        key: &str,
        value: Bytes,
    ) -> std::result::Result<(), store::Error> {
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

    /// The store and the caller's bucket behind a bucket handle.
    async fn store(
        &self,
        cx: &NatsContext,
        bucket: &BucketRef,
    ) -> std::result::Result<(Store, Bucket), store::Error> {
        let caller = Caller::from_context(cx).map_err(refused)?;
        let handle = std::str::from_utf8(bucket.as_ref())
            .map_err(|_| store::Error::Other("malformed bucket handle".into()))?;
        let bucket = self
            .buckets
            .owned(&caller, handle)
            .ok_or(store::Error::AccessDenied)?;
        Ok((self.buckets.store().clone(), bucket))
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
            let (kv, bucket) = self.store(&cx, &bucket).await?;
            kv.get(bucket.key(&key)).await.map_err(other)
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
            let target = self.store(&cx, &bucket).await?;
            self.put(&target, &key, value).await
        }
        .instrument(jetstream_span("set"))
        .await)
    }

    async fn delete(&self, cx: NatsContext, bucket: BucketRef, key: String) -> Result<()> {
        Ok(async {
            let (kv, bucket) = self.store(&cx, &bucket).await?;
            kv.delete(bucket.key(&key)).await.map_err(other)
        }
        .instrument(jetstream_span("delete"))
        .await)
    }

    async fn exists(&self, cx: NatsContext, bucket: BucketRef, key: String) -> Result<bool> {
        Ok(async {
            let (kv, bucket) = self.store(&cx, &bucket).await?;
            kv.get(bucket.key(&key))
                .await
                .map(|v| v.is_some())
                .map_err(other)
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
            let (_, bucket) = self.store(&cx, &bucket).await?;
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
            let (kv, bucket) = self.store(&cx, &bucket).await?;
            let key = bucket.key(&key);
            for _ in 0..CAS_ATTEMPTS {
                let entry = kv.entry(key.as_str()).await.map_err(other)?;
                let (current, revision) = match &entry {
                    Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put => {
                        (counter(&e.value)?, Some(e.revision))
                    }
                    Some(e) => (0, Some(e.revision)),
                    None => (0, None),
                };
                let next = current.wrapping_add(delta);
                let value = Bytes::copy_from_slice(&next.to_le_bytes());
                let written = match revision {
                    Some(revision) => kv.update(key.as_str(), value, revision).await.is_ok(),
                    None => kv.create(key.as_str(), value).await.is_ok(),
                };
                if written {
                    return Ok(next);
                }
            }
            Err(other(format!(
                "increment gave up after {CAS_ATTEMPTS} conflicting writers"
            )))
        }
        .instrument(jetstream_span("increment"))
        .await)
    }
}

/// Counters are 8 little-endian bytes, as in the host's in-memory store.
fn counter(value: &[u8]) -> std::result::Result<u64, store::Error> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_le_bytes)
        .map_err(|_| {
            other(format!(
                "the value is {} bytes, not an 8-byte counter",
                value.len()
            ))
        })
}

impl batch::Handler<NatsContext> for Handler {
    async fn get_many(
        &self,
        cx: NatsContext,
        bucket: BucketRef,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Bytes)>>> {
        Ok(async {
            let (kv, bucket) = self.store(&cx, &bucket).await?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let value = kv.get(bucket.key(&key)).await.map_err(other)?;
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
            let target = self.store(&cx, &bucket).await?;
            for (key, value) in key_values {
                self.put(&target, &key, value).await?;
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
            let (kv, bucket) = self.store(&cx, &bucket).await?;
            for key in keys {
                kv.delete(bucket.key(&key)).await.map_err(other)?;
            }
            Ok(())
        }
        .instrument(jetstream_span("delete-many"))
        .await)
    }
}
