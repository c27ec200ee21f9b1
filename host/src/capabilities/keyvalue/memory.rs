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

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), KeyValueError>;

    #[tokio::test]
    async fn values_live_in_their_bucket() -> TestResult {
        let kv = MemoryKeyValue::default();
        let (a, b) = (kv.open("a").await?, kv.open("b").await?);
        kv.set(&a, "k", b"1".to_vec()).await?;
        assert_eq!(kv.get(&a, "k").await?, Some(b"1".to_vec()));
        assert_eq!(kv.get(&b, "k").await?, None);
        assert!(kv.exists(&a, "k").await?);
        kv.delete(&a, "k").await?;
        kv.delete(&a, "never-there").await?;
        assert!(!kv.exists(&a, "k").await?);
        Ok(())
    }

    #[tokio::test]
    async fn keys_come_in_pages() -> TestResult {
        let kv = MemoryKeyValue::default();
        let bucket = kv.open("many").await?;
        for i in 0..(PAGE + 5) {
            kv.set(&bucket, &format!("{i:05}"), Vec::new()).await?;
        }
        let (first, cursor) = kv.list_keys(&bucket, None).await?;
        assert_eq!((first.len(), cursor), (PAGE, Some(PAGE as u64)));
        let (rest, end) = kv.list_keys(&bucket, cursor).await?;
        assert_eq!((rest.len(), end), (5, None));
        // A cursor from a guest is anything: past the end is an empty page.
        assert_eq!(
            kv.list_keys(&bucket, Some(u64::MAX)).await?,
            (Vec::new(), None)
        );
        Ok(())
    }

    #[tokio::test]
    async fn counters_are_little_endian_u64s() -> TestResult {
        let kv = MemoryKeyValue::default();
        let bucket = kv.open("c").await?;
        assert_eq!(kv.increment(&bucket, "n", 2).await?, 2);
        assert_eq!(kv.increment(&bucket, "n", 3).await?, 5);
        assert_eq!(
            kv.get(&bucket, "n").await?,
            Some(5u64.to_le_bytes().to_vec())
        );
        kv.set(&bucket, "text", b"abc".to_vec()).await?;
        let refused = kv.increment(&bucket, "text", 1).await;
        assert!(
            matches!(&refused, Err(KeyValueError::Other(m)) if m.contains("not a counter")),
            "{refused:?}"
        );
        Ok(())
    }
}
