//! Where a caller's bucket lives, and how guest keys become KV keys.
//!
//! The provider keeps every workload's buckets in one JetStream KV bucket of
//! its own, `trellis_<lattice>_data_<provider>`: the lattice's permissions
//! name that bucket exactly, so no other identity can read it. A guest's
//! bucket is a key prefix, `<workload>.<bucket>.`, and a handle names it.

use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy, push};
use async_nats::jetstream::{self, kv};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::StreamExt as _;
use trellis_provider_sdk::{Caller, check_name};

/// The provider's one KV bucket.
#[derive(Clone)]
pub struct Buckets {
    store: kv::Store,
    js: jetstream::Context,
    nats: async_nats::Client,
}

/// What a key's KV entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Nothing (or a deletion); `sequence` is the deletion's, 0 if none.
    Missing { sequence: u64 },
    /// A value `set` wrote.
    Value { value: Bytes, sequence: u64 },
    /// A marker: the value is the key's counter.
    Counter,
}

/// One caller's bucket: a key prefix in the provider's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    prefix: String,
}

impl Buckets {
    /// Opens (or creates) the store called `name` through `js` (the provider's domain).
    pub async fn open(js: jetstream::Context, name: &str) -> anyhow::Result<Self> {
        let config = kv::Config {
            bucket: name.to_string(),
            history: 1,
            ..Default::default()
        };
        let store = match js.get_key_value(name).await {
            Ok(store) => store,
            Err(_) => match js.create_key_value(config).await {
                Ok(store) => store,
                // Another replica created it first.
                Err(_) => js.get_key_value(name).await.map_err(|e| {
                    anyhow::anyhow!("cannot open or create the JetStream bucket `{name}`: {e}")
                })?,
            },
        };
        Ok(Buckets {
            store,
            nats: js.client(),
            js,
        })
    }

    /// The store.
    pub fn store(&self) -> &kv::Store {
        &self.store
    }

    /// What the entry of store key `key` holds, in one direct get.
    pub async fn read(&self, key: &str) -> anyhow::Result<Stored> {
        use async_nats::jetstream::stream::DirectGetErrorKind;
        let subject = format!("{}{key}", self.store.prefix);
        let message = match self.store.stream.direct_get_last_for_subject(subject).await {
            Ok(message) => message,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                return Ok(Stored::Missing { sequence: 0 });
            }
            Err(e) => return Err(e.into()),
        };
        let removed = message
            .headers
            .get("KV-Operation")
            .is_some_and(|op| op.as_str() != "PUT");
        Ok(if removed {
            Stored::Missing {
                sequence: message.sequence,
            }
        } else if message.headers.get(crate::counters::MARKER).is_some() {
            Stored::Counter
        } else {
            Stored::Value {
                value: message.payload,
                sequence: message.sequence,
            }
        })
    }

    /// Makes store key `key` point at its counter, unless its entry changed
    /// since `sequence` (a `set` in between wins).
    pub async fn mark_counter(&self, key: &str, sequence: u64) -> anyhow::Result<bool> {
        let prefix = self.store.put_prefix.as_ref().unwrap_or(&self.store.prefix);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(crate::counters::MARKER, "1");
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            sequence.to_string().as_str(),
        );
        let ack = self
            .js
            .publish_with_headers(format!("{prefix}{key}"), headers, Bytes::new())
            .await?
            .await;
        Ok(ack.is_ok())
    }

    /// The bucket `caller` means by `identifier` (or its binding's `bucket`
    /// config), as the handle `open` returns.
    pub fn handle_for(&self, caller: &Caller, identifier: &str) -> Result<String, String> {
        let bucket = caller
            .config
            .get("bucket")
            .map(String::as_str)
            .unwrap_or(identifier);
        check_name("bucket", bucket).map_err(|e| e.to_string())?;
        Ok(format!("{}.{bucket}", caller.workload))
    }

    /// Every guest key in `bucket`, read from the store's latest entries.
    pub async fn keys(&self, bucket: &Bucket) -> anyhow::Result<Vec<String>> {
        let store = &self.store;
        let consumer = store
            .stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.nats.new_inbox(),
                filter_subject: format!("{}{}>", store.prefix, bucket.prefix),
                headers_only: true,
                replay_policy: ReplayPolicy::Instant,
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await?;
        let mut keys = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(keys);
        }
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let message = message?;
            let removed = message
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|op| op.as_str() != "PUT");
            let stored = message
                .subject
                .strip_prefix(store.prefix.as_str())
                .and_then(|s| s.strip_prefix(bucket.prefix.as_str()));
            if let (false, Some(key)) = (removed, stored.and_then(decode_key)) {
                keys.push(key);
            }
            if message.info().map_err(anyhow::Error::msg)?.pending == 0 {
                break;
            }
        }
        Ok(keys)
    }

    /// The bucket behind `handle`, if it is one of `caller`'s workload.
    pub fn owned(&self, caller: &Caller, handle: &str) -> Option<Bucket> {
        let bucket = handle
            .strip_prefix(caller.workload.as_str())?
            .strip_prefix('.')?;
        check_name("bucket", bucket).ok()?;
        Some(Bucket {
            prefix: format!("{handle}."),
        })
    }
}

impl Bucket {
    /// The store key of guest key `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, encode_key(key))
    }
}

/// Guest keys are any string; KV keys allow few characters, so every key is
/// stored base64url-encoded (reversible, and never ambiguous).
pub fn encode_key(key: &str) -> String {
    if key.is_empty() {
        return "=".into();
    }
    URL_SAFE_NO_PAD.encode(key)
}

/// The guest key of a stored key; `None` for keys not written by this provider.
pub fn decode_key(stored: &str) -> Option<String> {
    if stored == "=" {
        return Some(String::new());
    }
    String::from_utf8(URL_SAFE_NO_PAD.decode(stored).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for key in ["", "a", "visits", "with space/and.dots", "ünïcødé", "*>"] {
            assert_eq!(decode_key(&encode_key(key)).as_deref(), Some(key));
        }
    }
}
