//! The in-memory keyvalue backend for development: one per workload, kept
//! across reloads of that workload so state survives an edit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::{KeyPage, KeyValueBackend, KeyValueError};

/// In memory, a bucket's handle is its name.
fn name(handle: &Bytes) -> &str {
    std::str::from_utf8(handle).unwrap_or_default()
}

/// Keys returned per `list-keys` page.
const PAGE: usize = 1_000;

type Buckets = HashMap<String, BTreeMap<String, Vec<u8>>>;

/// One workload's buckets, in memory.
#[derive(Debug, Default)]
pub struct MemoryKeyValue {
    buckets: Mutex<Buckets>,
}

impl MemoryKeyValue {
    fn lock(&self) -> MutexGuard<'_, Buckets> {
        // A panic while holding the lock cannot leave a map half-updated.
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl KeyValueBackend for MemoryKeyValue {
    async fn open(&self, identifier: &str) -> Result<Bytes, KeyValueError> {
        Ok(Bytes::copy_from_slice(identifier.as_bytes()))
    }

    async fn get(&self, bucket: &Bytes, key: &str) -> Result<Option<Vec<u8>>, KeyValueError> {
        Ok(self
            .lock()
            .get(name(bucket))
            .and_then(|b| b.get(key))
            .cloned())
    }

    async fn set(&self, bucket: &Bytes, key: &str, value: Vec<u8>) -> Result<(), KeyValueError> {
        self.lock()
            .entry(name(bucket).to_string())
            .or_default()
            .insert(key.to_string(), value);
        Ok(())
    }

    async fn delete(&self, bucket: &Bytes, key: &str) -> Result<(), KeyValueError> {
        if let Some(b) = self.lock().get_mut(name(bucket)) {
            b.remove(key);
        }
        Ok(())
    }

    async fn exists(&self, bucket: &Bytes, key: &str) -> Result<bool, KeyValueError> {
        Ok(self
            .lock()
            .get(name(bucket))
            .is_some_and(|b| b.contains_key(key)))
    }

    async fn list_keys(
        &self,
        bucket: &Bytes,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KeyValueError> {
        let buckets = self.lock();
        let Some(b) = buckets.get(name(bucket)) else {
            return Ok((Vec::new(), None));
        };
        let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let keys: Vec<String> = b.keys().skip(start).take(PAGE).cloned().collect();
        let next = start.saturating_add(keys.len());
        let cursor = (next < b.len()).then_some(next as u64);
        Ok((keys, cursor))
    }

    async fn increment(&self, bucket: &Bytes, key: &str, delta: u64) -> Result<u64, KeyValueError> {
        let mut buckets = self.lock();
        let slot = buckets
            .entry(name(bucket).to_string())
            .or_default()
            .entry(key.to_string())
            .or_default();
        let current = match slot.len() {
            0 => 0,
            8 => u64::from_le_bytes(<[u8; 8]>::try_from(slot.as_slice()).unwrap_or_default()),
            n => {
                return Err(KeyValueError::Other(format!(
                    "`{key}` holds {n} bytes, not a counter (8 bytes, little endian)"
                )));
            }
        };
        let next = current.wrapping_add(delta);
        *slot = next.to_le_bytes().to_vec();
        Ok(next)
    }
}

/// The in-memory keyvalue stores of every workload on a host.
pub type MemoryStores = crate::capabilities::PerWorkload<MemoryKeyValue>;
