//! Component artifacts for a lattice of real machines: no shared filesystem,
//! no absolute paths. A component is named by its digest and kept in the
//! lattice's own store (a JetStream object store) or an OCI registry; every
//! host keeps a verified, size-bounded cache on disk, and may require a
//! trusted signature before it runs anything.
//!
//! The CLI pushes and signs ([`LatticeStore`], [`Registries`], [`sign`]); a
//! host fetches through one [`Fetcher`].
#![deny(missing_docs)]

mod cache;
mod fetch;
mod oci;
mod progress;
mod signing;
mod store;

pub use cache::{CacheError, DiskCache, Pin};
pub use fetch::{Artifact, FETCH_TIMEOUT, FetchError, Fetcher};
pub use oci::{Located, OciError, Pulled, Registries, WASM_CONFIG, WASM_LAYER};
pub use progress::Progress;
pub use signing::{SignatureError, Trust, sign};
pub use store::{LatticeStore, StoreError};

/// The largest component any Trellis process fetches or pushes.
pub const MAX_ARTIFACT_BYTES: u64 = 256 << 20;
