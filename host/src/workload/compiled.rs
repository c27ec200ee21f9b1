//! Compiled components shared by content: the same bytes compile once per
//! engine, however many workloads (or versions) use them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;

/// Compiled components by the SHA-256 of their bytes. An entry lives as long
/// as a loaded workload holds its `Arc`; the map keeps only weak references,
/// so a component no workload uses any more costs nothing here.
#[derive(Clone, Default)]
pub struct CompiledComponents {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Default)]
struct Entries {
    by_digest: HashMap<[u8; 32], Weak<Component>>,
    /// Entries after the last sweep of dead ones: sweeps stay amortized O(1).
    swept_at: usize,
}

impl CompiledComponents {
    /// The component `bytes` compile to: the one already compiled, or what
    /// `compile` makes of them (run without the lock held).
    pub(crate) fn get_or_compile<E>(
        &self,
        bytes: &[u8],
        compile: impl FnOnce() -> Result<Component, E>,
    ) -> Result<Arc<Component>, E> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(found) = self.lock().by_digest.get(&digest).and_then(Weak::upgrade) {
            return Ok(found);
        }
        let compiled = Arc::new(compile()?);
        let mut entries = self.lock();
        // Another load compiled the same bytes meanwhile: keep one.
        if let Some(found) = entries.by_digest.get(&digest).and_then(Weak::upgrade) {
            return Ok(found);
        }
        if entries.by_digest.len() >= 2 * entries.swept_at + 16 {
            entries.by_digest.retain(|_, c| c.strong_count() > 0);
            entries.swept_at = entries.by_digest.len();
        }
        entries.by_digest.insert(digest, Arc::downgrade(&compiled));
        Ok(compiled)
    }

    /// Distinct components compiled and still in use.
    pub fn live(&self) -> usize {
        self.lock()
            .by_digest
            .values()
            .filter(|c| c.strong_count() > 0)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_compile_once_while_in_use() -> Result<(), wasmtime::Error> {
        let engine = wasmtime::Engine::default();
        let cache = CompiledComponents::default();
        let text = "(component)";
        let compiles = std::cell::Cell::new(0);
        let compile = || {
            compiles.set(compiles.get() + 1);
            Component::new(&engine, text)
        };
        let first = cache.get_or_compile(text.as_bytes(), compile)?;
        let second = cache.get_or_compile(text.as_bytes(), compile)?;
        assert_eq!(compiles.get(), 1);
        assert_eq!(cache.live(), 1);
        drop((first, second));
        assert_eq!(cache.live(), 0);
        let _third = cache.get_or_compile(text.as_bytes(), compile)?;
        assert_eq!(compiles.get(), 2);
        Ok(())
    }
}
