//! The host's content-addressed cache on disk: component bytes by digest,
//! verified on every read, bounded in size, and never evicting what a
//! workload on the host still holds.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use trellis_manifest::Digest;

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A directory or file of the cache could not be created or written.
    #[error("the artifact cache at `{}` cannot be written: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A directory of artifacts named by digest, shared by every workload on a host.
#[derive(Debug, Clone)]
pub struct DiskCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    blobs: PathBuf,
    refs: PathBuf,
    signatures: PathBuf,
    max_bytes: u64,
    pinned: Mutex<HashMap<Digest, usize>>,
}

/// Keeps an artifact in the cache while it lives: a loaded workload holds one
/// per component, so eviction never removes what a running or parked
/// workload needs.
#[derive(Debug)]
pub struct Pin {
    cache: Arc<Inner>,
    digest: Digest,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pinned = self.cache.lock();
        if let Some(count) = pinned.get_mut(&self.digest) {
            *count -= 1;
            if *count == 0 {
                pinned.remove(&self.digest);
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, usize>> {
        self.pinned.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DiskCache {
    /// Opens (creating) the cache in `dir`, holding at most `max_bytes` of
    /// unpinned artifacts beyond those in use.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskCache, CacheError> {
        let blobs = dir.join("blobs").join("sha256");
        let refs = dir.join("refs");
        let signatures = dir.join("signatures");
        for path in [&blobs, &refs, &signatures] {
            std::fs::create_dir_all(path).map_err(|source| CacheError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(DiskCache {
            inner: Arc::new(Inner {
                blobs,
                refs,
                signatures,
                max_bytes,
                pinned: Mutex::default(),
            }),
        })
    }

    /// Keeps `digest` from eviction until the pin is dropped.
    pub fn pin(&self, digest: Digest) -> Pin {
        *self.inner.lock().entry(digest).or_insert(0) += 1;
        Pin {
            cache: self.inner.clone(),
            digest,
        }
    }

    fn blob(&self, digest: &Digest) -> PathBuf {
        self.inner.blobs.join(digest.hex())
    }

    /// The bytes of `digest`, if cached and intact. A file whose bytes no
    /// longer match its name is removed and reported as missing.
    pub fn get(&self, digest: &Digest, max_bytes: u64) -> Option<Vec<u8>> {
        let path = self.blob(digest);
        let size = std::fs::metadata(&path).ok()?.len();
        if size > max_bytes {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        if Digest::of(&bytes) != *digest {
            tracing::warn!(%digest, path = %path.display(), "cached artifact is corrupt; removed");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // Recently used: evicted last.
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(bytes)
    }

    /// Stores `bytes` as `digest` (which the caller verified), then evicts the
    /// least recently used unpinned artifacts past the size bound.
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), CacheError> {
        let path = self.blob(digest);
        write_atomically(&path, bytes)?;
        self.evict();
        Ok(())
    }

    /// What a pinned OCI manifest digest resolved to (the component's own
    /// digest), so a host with the artifact cached starts it with the
    /// registry down.
    pub fn reference(&self, manifest: &Digest) -> Option<Digest> {
        std::fs::read_to_string(self.inner.refs.join(manifest.hex()))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records that OCI manifest `manifest` holds component `content`.
    pub fn put_reference(&self, manifest: &Digest, content: &Digest) -> Result<(), CacheError> {
        write_atomically(
            &self.inner.refs.join(manifest.hex()),
            content.to_string().as_bytes(),
        )
    }

    /// A signature of `digest` by `signer` seen before (verified again by the caller).
    pub fn signature(&self, digest: &Digest, signer: &str) -> Option<Vec<u8>> {
        std::fs::read(
            self.inner
                .signatures
                .join(format!("{}.{signer}", digest.hex())),
        )
        .ok()
    }

    /// Keeps a verified signature, so a host cut off from the lattice still
    /// starts what it ran.
    pub fn put_signature(
        &self,
        digest: &Digest,
        signer: &str,
        signature: &[u8],
    ) -> Result<(), CacheError> {
        write_atomically(
            &self
                .inner
                .signatures
                .join(format!("{}.{signer}", digest.hex())),
            signature,
        )
    }

    /// The artifacts on disk, oldest use first, with their sizes.
    fn entries(&self) -> Vec<(SystemTime, u64, Digest)> {
        let Ok(dir) = std::fs::read_dir(&self.inner.blobs) else {
            return Vec::new();
        };
        let mut entries: Vec<_> = dir
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let digest = format!("sha256:{}", entry.file_name().to_str()?)
                    .parse()
                    .ok()?;
                let meta = entry.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), digest))
            })
            .collect();
        entries.sort();
        entries
    }

    fn evict(&self) {
        let entries = self.entries();
        let mut total: u64 = entries.iter().map(|(_, size, _)| size).sum();
        let pinned = self.inner.lock();
        for (_, size, digest) in entries {
            if total <= self.inner.max_bytes {
                break;
            }
            if pinned.contains_key(&digest) {
                continue;
            }
            if std::fs::remove_file(self.blob(&digest)).is_ok() {
                tracing::debug!(%digest, size, "evicted from the artifact cache");
                total -= size;
            }
        }
    }

    /// Bytes held on disk now.
    pub fn size(&self) -> u64 {
        self.entries().iter().map(|(_, size, _)| size).sum()
    }

    /// Whether `digest` is on disk (intact or not).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob(digest).is_file()
    }
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let io = |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Unique per write: two loads of one digest in a process must not share it.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trellis-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn eviction_keeps_pinned_and_recent_artifacts() -> Result<(), CacheError> {
        let cache = DiskCache::open(&scratch("evict"), 250)?;
        let [a, b, c] =
            [[1u8; 100], [2u8; 100], [3u8; 100]].map(|bytes| (Digest::of(&bytes), bytes));
        let _pinned = cache.pin(a.0);
        cache.put(&a.0, &a.1)?;
        cache.put(&b.0, &b.1)?;
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        let old = std::fs::File::options().append(true).open(cache.blob(&b.0));
        assert!(old.and_then(|f| f.set_modified(hour_ago)).is_ok());
        // 300 bytes > 250: the oldest unpinned (b) goes, not the pinned a.
        cache.put(&c.0, &c.1)?;
        assert!(cache.contains(&a.0) && cache.contains(&c.0));
        assert!(!cache.contains(&b.0));
        assert_eq!(cache.get(&a.0, 1 << 20).as_deref(), Some(&a.1[..]));
        Ok(())
    }

    #[test]
    fn a_corrupt_file_is_a_miss_and_is_removed() -> Result<(), CacheError> {
        let cache = DiskCache::open(&scratch("corrupt"), 1 << 20)?;
        let digest = Digest::of(b"component");
        cache.put(&digest, b"component")?;
        std::fs::write(cache.blob(&digest), b"tampered").map_err(|source| CacheError::Io {
            path: cache.blob(&digest),
            source,
        })?;
        assert_eq!(cache.get(&digest, 1 << 20), None);
        assert!(!cache.contains(&digest));
        Ok(())
    }
}
