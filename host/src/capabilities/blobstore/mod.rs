//! `wasi:blobstore` (blobstore, container, types) over a pluggable backend.
//!
//! The guest-facing half lives here and in `host.rs`; where the objects live is
//! a [`BlobstoreBackend`]. Development uses [`MemoryBlobstore`]; NATS providers
//! plug in the same way. Object bodies travel through the host's real
//! `wasi:io` streams.

mod body;
mod host;
mod memory;
mod remote;

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use wasmtime::component::{HasData, ResourceTable};

pub use body::{IncomingValue, OutgoingValue};
pub use generated::wasi::blobstore::types::{ContainerMetadata, ObjectId, ObjectMetadata};
pub use memory::{MemoryBlobstore, MemoryBlobstores};
pub use remote::RemoteBlobstore;

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::state::InstanceState;
use trellis_manifest::find_binding;

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

/// The most an `outgoing-value` buffers before `write-data` starts its upload,
/// the most `incoming-value-consume-sync` returns, and the largest object the
/// in-memory store keeps: what the host may hold of one object at once.
pub const MAX_OBJECT_SIZE: usize = 64 << 20;

/// Object bytes on their way; an `Err` item means the transfer failed there.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobstoreError>> + Send>>;

/// An object's bytes as a backend delivers them: how many, then the bytes.
pub struct ObjectBody {
    /// How many bytes `chunks` will yield; fewer means the read was cut off.
    pub len: u64,
    /// The bytes.
    pub chunks: ByteStream,
}

impl ObjectBody {
    /// A body already in memory.
    pub fn whole(data: Bytes) -> Self {
        ObjectBody {
            len: data.len() as u64,
            chunks: Box::pin(futures::stream::once(async move { Ok(data) })),
        }
    }
}

/// A failure of a blobstore backend, as the guest will see it: a sentence
/// naming the container or object concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BlobstoreError(pub String);

/// A failed provider call reaches the guest as the interface's error string,
/// naming the provider, the function and the kind of failure.
impl From<crate::lattice::CallError> for BlobstoreError {
    fn from(e: crate::lattice::CallError) -> Self {
        BlobstoreError(e.to_string())
    }
}

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
    /// Bytes `start..=end` of `object`, with [`byte_range`]'s rules, as they arrive.
    async fn read_object(
        &self,
        container: &str,
        object: &str,
        start: u64,
        end: u64,
    ) -> Result<ObjectBody, BlobstoreError>;
    /// Stores `body` as `object`, replacing it if present, and returns its size.
    /// `body` ends with an error when the writer gave up: then nothing changes.
    async fn write_object(
        &self,
        container: &str,
        object: &str,
        body: ByteStream,
    ) -> Result<u64, BlobstoreError>;
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

/// The interface whose binding decides a component's blobstore backend; the
/// container and types interfaces act on what it opens, so they follow it.
pub(crate) const BLOBSTORE: &str = "wasi:blobstore/blobstore@0.2.0-draft";

/// `wasi:blobstore`: per component version, the backend its binding chooses;
/// in-memory containers belong to the workload name on this host.
pub(crate) struct Blobstore;

impl Capability for Blobstore {
    const INTERFACES: &'static [BuiltinInterface] = INTERFACES;
    type Host = MemoryBlobstores;
    type Prepared = Arc<dyn BlobstoreBackend>;
    type State = Arc<dyn BlobstoreBackend>;

    fn prepare(
        memory: &MemoryBlobstores,
        cx: &PrepareContext<'_>,
    ) -> Result<Self::Prepared, CapabilityError> {
        Ok(
            match find_binding(&cx.component.bindings, BLOBSTORE).and_then(cx.remote) {
                Some(target) => Arc::new(RemoteBlobstore::new(target)),
                None => memory.for_workload(cx.workload),
            },
        )
    }

    fn instantiate(backend: &Self::Prepared) -> Result<Self::State, CapabilityError> {
        Ok(backend.clone())
    }
}

/// The `wasi:blobstore` interfaces.
const INTERFACES: &[BuiltinInterface] = &[
    BuiltinInterface::new("wasi:blobstore/blobstore", |l| {
        blobstore::add_to_linker::<InstanceState, HasBlobstore>(l, view)
    })
    .provider_client(),
    BuiltinInterface::new("wasi:blobstore/container", |l| {
        container::add_to_linker::<InstanceState, HasBlobstore>(l, view)
    })
    .provider_client(),
    BuiltinInterface::new("wasi:blobstore/types", |l| {
        types::add_to_linker::<InstanceState, HasBlobstore>(l, view)
    })
    .provider_client(),
];
