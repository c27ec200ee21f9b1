//! Where a caller's bucket lives in JetStream, and how guest keys become KV keys.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::{self, kv};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::RwLock;
use trellis_provider_sdk::{Caller, WorkloadScope};

/// JetStream KV stores, opened once and shared by every call.
#[derive(Clone)]
pub struct Buckets {
    js: jetstream::Context,
    scope: WorkloadScope,
    open: Arc<RwLock<HashMap<String, kv::Store>>>,
}

impl Buckets {
    /// Buckets of `lattice` on `nats`.
    pub fn new(nats: async_nats::Client, lattice: &str) -> Self {
        Buckets {
            js: jetstream::new(nats),
            scope: WorkloadScope::new(lattice),
            open: Arc::default(),
        }
    }

    /// The JetStream bucket `caller` means by `identifier` (or its binding's `bucket` config).
    pub fn name_for(&self, caller: &Caller, identifier: &str) -> Result<String, String> {
        let bucket = caller
            .config
            .get("bucket")
            .map(String::as_str)
            .unwrap_or(identifier);
        self.scope
            .resource(caller, "bucket", bucket)
            .map_err(|e| e.to_string())
    }

    /// Whether the bucket `name` (from a handle) belongs to `caller`'s workload.
    pub fn owned_by(&self, caller: &Caller, name: &str) -> bool {
        self.scope.local(caller, name).is_some()
    }

    /// The store called `name`, created on first use.
    pub async fn store(&self, name: &str) -> Result<kv::Store, String> {
        if let Some(store) = self.open.read().await.get(name) {
            return Ok(store.clone());
        }
        let store = match self.js.get_key_value(name).await {
            Ok(store) => store,
            Err(_) => self
                .js
                .create_key_value(kv::Config {
                    bucket: name.to_string(),
                    history: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("cannot create JetStream bucket `{name}`: {e}"))?,
        };
        self.open
            .write()
            .await
            .insert(name.to_string(), store.clone());
        Ok(store)
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
