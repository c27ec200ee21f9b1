//! `wasi:blobstore` (blobstore, container, types) over a pluggable backend.
//!
//! The guest-facing half lives here and in `host.rs`; where the objects live is
//! a [`BlobstoreBackend`]. Development uses [`MemoryBlobstore`]; NATS providers
//! plug in the same way. Object bodies travel through the host's real
//! `wasi:io` streams.

mod host;
mod memory;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::{HasData, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

pub use generated::wasi::blobstore::types::{ContainerMetadata, ObjectId, ObjectMetadata};
pub use memory::{MemoryBlobstore, MemoryBlobstores};

use super::BuiltinInterface;
use crate::state::InstanceState;

mod generated {
    wasmtime::component::bindgen!({
        path: ["../wit/deps/io", "../wit/deps/blobstore"],
        world: "wasi:blobstore/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi_io::bindings::wasi::io,
            "wasi:blobstore/container.container": super::Container,
            "wasi:blobstore/container.stream-object-names": super::StreamObjectNames,
            "wasi:blobstore/types.outgoing-value": super::OutgoingValue,
            "wasi:blobstore/types.incoming-value": super::IncomingValue,
        },
        trappable_error_type: {
            "wasi:blobstore/types.error" => super::BlobstoreError,
        },
    });
}

use generated::wasi::blobstore::{blobstore, container, types};

/// The largest object one `outgoing-value` can carry, so a guest cannot make
/// the host buffer without bound; past it the body stream reports `closed`.
pub const MAX_OBJECT_SIZE: usize = 64 << 20;

/// A failure of a blobstore backend, as the guest will see it: a sentence
/// naming the container or object concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BlobstoreError(pub String);

impl From<wasmtime::component::ResourceTableError> for BlobstoreError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        BlobstoreError(e.to_string())
    }
}

/// Where a workload's containers and objects live. One backend per binding;
/// containers are the names the guest passes to `create-container`.
#[async_trait::async_trait]
pub trait BlobstoreBackend: Send + Sync + 'static {
    /// Creates empty container `name`; an existing one is an error.
    async fn create_container(&self, name: &str) -> Result<ContainerMetadata, BlobstoreError>;
    /// The metadata of container `name`; a missing one is an error.
    async fn container_info(&self, name: &str) -> Result<ContainerMetadata, BlobstoreError>;
    /// Removes container `name` and its objects; a missing one is an error.
    async fn delete_container(&self, name: &str) -> Result<(), BlobstoreError>;
    /// Whether container `name` exists.
    async fn container_exists(&self, name: &str) -> Result<bool, BlobstoreError>;
    /// The names of the objects in `container`, sorted.
    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobstoreError>;
    /// The metadata of `object`, `None` if absent; a missing container is an error.
    async fn object_info(
        &self,
        container: &str,
        object: &str,
    ) -> Result<Option<ObjectMetadata>, BlobstoreError>;
    /// Bytes `start..=end` of `object`, with [`byte_range`]'s rules.
    async fn read_object(
        &self,
        container: &str,
        object: &str,
        start: u64,
        end: u64,
    ) -> Result<Bytes, BlobstoreError>;
    /// Stores `data` as `object`, replacing it if present.
    async fn write_object(
        &self,
        container: &str,
        object: &str,
        data: Bytes,
    ) -> Result<(), BlobstoreError>;
    /// Removes `objects` from `container`; absent objects are fine.
    async fn delete_objects(
        &self,
        container: &str,
        objects: &[String],
    ) -> Result<(), BlobstoreError>;
    /// Removes every object of `container`.
    async fn clear(&self, container: &str) -> Result<(), BlobstoreError>;
    /// Copies `src` to `dest` (whose container must exist), replacing `dest`.
    async fn copy_object(&self, src: &ObjectId, dest: &ObjectId) -> Result<(), BlobstoreError>;
    /// Moves `src` to `dest` (whose container must exist), replacing `dest`.
    async fn move_object(&self, src: &ObjectId, dest: &ObjectId) -> Result<(), BlobstoreError>;
}

/// The byte range `get-data(start, end)` means for an object of `size` bytes:
/// `end` is inclusive and clamped to the last byte; a start past the end, or
/// after `end`, is an error. Shared so every backend answers alike.
pub fn byte_range(
    object: &str,
    size: usize,
    start: u64,
    end: u64,
) -> Result<Range<usize>, BlobstoreError> {
    if start > end {
        return Err(BlobstoreError(format!(
            "bad range for object `{object}`: start {start} is after end {end}"
        )));
    }
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    if start > size {
        return Err(BlobstoreError(format!(
            "bad range for object `{object}`: start {start} is past its end ({size} bytes)"
        )));
    }
    let end = usize::try_from(end).unwrap_or(usize::MAX).saturating_add(1);
    Ok(start..end.min(size))
}

/// An open container, as held in the resource table.
pub struct Container {
    name: String,
}

/// A snapshot of a container's object names, read a page at a time.
pub struct StreamObjectNames {
    names: std::vec::IntoIter<String>,
}

/// A value being written: its body collects in memory; `write-data` stores it
/// and `finish` stores it again wherever the body grew since.
pub struct OutgoingValue {
    body: MemoryOutputPipe,
    stream_taken: bool,
    /// Container, object and body length of every `write-data` so far.
    written: Vec<(String, String, usize)>,
}

/// A value read from the store.
pub struct IncomingValue {
    data: Bytes,
}

/// What the blobstore host functions see of the store's data.
pub(crate) struct BlobstoreView<'a> {
    backend: &'a Arc<dyn BlobstoreBackend>,
    table: &'a mut ResourceTable,
}

struct HasBlobstore;
impl HasData for HasBlobstore {
    type Data<'a> = BlobstoreView<'a>;
}

fn view(s: &mut InstanceState) -> BlobstoreView<'_> {
    let (caps, table) = s.caps_and_table();
    BlobstoreView {
        backend: &caps.blobstore,
        table,
    }
}

/// The `wasi:blobstore` interfaces.
pub(crate) const INTERFACES: &[BuiltinInterface] = &[
    BuiltinInterface::new("wasi:blobstore/blobstore", |l| {
        blobstore::add_to_linker::<InstanceState, HasBlobstore>(l, view)
    }),
    BuiltinInterface::new("wasi:blobstore/container", |l| {
        container::add_to_linker::<InstanceState, HasBlobstore>(l, view)
    }),
    BuiltinInterface::new("wasi:blobstore/types", |l| {
        types::add_to_linker::<InstanceState, HasBlobstore>(l, view)
    }),
];
