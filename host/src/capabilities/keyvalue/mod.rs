//! `wasi:keyvalue` (store, atomics, batch) over a pluggable backend.
//!
//! The guest-facing half lives here; where the data lives is a
//! [`KeyValueBackend`]. Development uses [`MemoryKeyValue`]; NATS providers plug
//! in the same way.

mod memory;
mod remote;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use wasmtime::component::{HasData, Resource, ResourceTable};

pub use memory::{MemoryKeyValue, MemoryStores};
pub use remote::RemoteKeyValue;

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::state::InstanceState;
use trellis_manifest::{Binding, find_binding, find_named_binding};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::KeyValueError,
        },
    });
}

use generated::wasi::keyvalue::{atomics, batch, store};

/// The interface whose binding decides a component's keyvalue backend; atomics
/// and batch act on its buckets, so they follow it. Its named bindings
/// (`wasi:keyvalue/store#NAME`) choose a backend per bucket identifier.
pub(crate) const STORE: &str = "wasi:keyvalue/store@0.2.0-draft";

/// A failure of a keyvalue backend, as the guest will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyValueError {
    /// The store named in `open` does not exist.
    #[error("no such store")]
    NoSuchStore,
    /// The caller may not use this store.
    #[error("access denied")]
    AccessDenied,
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// A failed provider call reaches the guest as `error::other`, naming the
/// provider, the function and the kind of failure.
impl From<crate::lattice::CallError> for KeyValueError {
    fn from(e: crate::lattice::CallError) -> Self {
        KeyValueError::Other(e.to_string())
    }
}

impl From<wasmtime::component::ResourceTableError> for KeyValueError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KeyValueError::Other(e.to_string())
    }
}

/// A page of keys and the cursor of the next page.
pub type KeyPage = (Vec<String>, Option<u64>);

/// Where a workload's key-value data lives. One backend per binding. `open` turns
/// the identifier the guest passes into a handle of the backend's choosing (the
/// bucket name in memory, the provider's resource handle over wRPC), which every
/// other call gets back as `bucket`.
#[async_trait::async_trait]
pub trait KeyValueBackend: Send + Sync + 'static {
    /// Opens the bucket `identifier` names, returning its handle.
    async fn open(&self, identifier: &str) -> Result<Bytes, KeyValueError>;
    /// The value of `key`, if any.
    async fn get(&self, bucket: &Bytes, key: &str) -> Result<Option<Vec<u8>>, KeyValueError>;
    /// Stores `value` under `key`.
    async fn set(&self, bucket: &Bytes, key: &str, value: Vec<u8>) -> Result<(), KeyValueError>;
    /// Removes `key`; absent keys are fine.
    async fn delete(&self, bucket: &Bytes, key: &str) -> Result<(), KeyValueError>;
    /// Whether `key` has a value.
    async fn exists(&self, bucket: &Bytes, key: &str) -> Result<bool, KeyValueError>;
    /// One page of keys from `cursor` on.
    async fn list_keys(
        &self,
        bucket: &Bytes,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KeyValueError>;
    /// Adds `delta` to the little-endian u64 under `key` (absent is 0) and returns the sum.
    async fn increment(&self, bucket: &Bytes, key: &str, delta: u64) -> Result<u64, KeyValueError>;
}

/// A component's keyvalue backends: the one its `wasi:keyvalue/store` binding
/// names, and one per named binding (`wasi:keyvalue/store#NAME`), chosen by
/// the identifier the guest passes to `open`.
#[derive(Clone)]
pub struct KeyValueBackends {
    default: Arc<dyn KeyValueBackend>,
    named: Arc<HashMap<String, Arc<dyn KeyValueBackend>>>,
}

impl KeyValueBackends {
    /// Every bucket goes to `default` unless `named` has its identifier.
    pub fn new(
        default: Arc<dyn KeyValueBackend>,
        named: HashMap<String, Arc<dyn KeyValueBackend>>,
    ) -> Self {
        KeyValueBackends {
            default,
            named: Arc::new(named),
        }
    }

    /// The backend that holds the bucket `identifier`.
    pub fn for_bucket(&self, identifier: &str) -> &Arc<dyn KeyValueBackend> {
        self.named.get(identifier).unwrap_or(&self.default)
    }
}

/// `wasi:keyvalue`: per component version, the backends its bindings choose;
/// in-memory data belongs to the workload name on this host.
pub(crate) struct KeyValue;

impl Capability for KeyValue {
    const INTERFACES: &'static [BuiltinInterface] = INTERFACES;
    type Host = MemoryStores;
    type Prepared = KeyValueBackends;
    type State = KeyValueBackends;

    fn prepare(
        memory: &MemoryStores,
        cx: &PrepareContext<'_>,
    ) -> Result<Self::Prepared, CapabilityError> {
        Ok(backends(memory, cx))
    }

    fn instantiate(backends: &KeyValueBackends) -> Result<Self::State, CapabilityError> {
        Ok(backends.clone())
    }
}

/// The backends the component's bindings choose: memory for `host`, the
/// provider's client for a binding that goes over the lattice.
fn backends(memory: &MemoryStores, cx: &PrepareContext<'_>) -> KeyValueBackends {
    let backend = |binding: Option<&Binding>| -> Arc<dyn KeyValueBackend> {
        match binding.and_then(cx.remote) {
            Some(target) => Arc::new(RemoteKeyValue::new(target)),
            None => memory.for_workload(cx.workload),
        }
    };
    let bindings = &cx.component.bindings;
    let named = bindings
        .iter()
        .filter_map(|b| b.import.name())
        .map(|name| {
            let binding = find_named_binding(bindings, STORE, name);
            (name.to_string(), backend(binding))
        })
        .collect();
    KeyValueBackends::new(backend(find_binding(bindings, STORE)), named)
}

/// An open bucket, as held in the resource table: its backend's handle, and
/// the backend, so atomics and batch calls follow the bucket.
pub struct Bucket {
    handle: Bytes,
    backend: Arc<dyn KeyValueBackend>,
}

/// What the keyvalue host functions see of the store's data.
pub(crate) struct KeyValueView<'a> {
    backends: &'a KeyValueBackends,
    table: &'a mut ResourceTable,
}

impl KeyValueView<'_> {
    fn bucket(
        &self,
        bucket: &Resource<Bucket>,
    ) -> Result<(Arc<dyn KeyValueBackend>, Bytes), KeyValueError> {
        let bucket = self.table.get(bucket)?;
        Ok((bucket.backend.clone(), bucket.handle.clone()))
    }
}

struct HasKeyValue;
impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

fn view(s: &mut InstanceState) -> KeyValueView<'_> {
    let (caps, table) = s.caps_and_table();
    KeyValueView {
        backends: &caps.keyvalue,
        table,
    }
}

type Result<T, E = wasmtime::Error> = std::result::Result<T, E>;

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KeyValueError> {
        let backend = self.backends.for_bucket(&identifier).clone();
        let handle = backend.open(&identifier).await?;
        Ok(self.table.push(Bucket { handle, backend })?)
    }

    fn convert_error(&mut self, err: KeyValueError) -> Result<store::Error> {
        Ok(match err {
            KeyValueError::NoSuchStore => store::Error::NoSuchStore,
            KeyValueError::AccessDenied => store::Error::AccessDenied,
            KeyValueError::Other(message) => store::Error::Other(message),
        })
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        backend.get(&name, &key).await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        backend.set(&name, &key, value).await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        backend.delete(&name, &key).await
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<bool, KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        backend.exists(&name, &key).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        let (keys, cursor) = backend.list_keys(&name, cursor).await?;
        Ok(store::KeyResponse { keys, cursor })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        backend.increment(&name, &key, delta).await
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = backend.get(&name, &key).await?;
            out.push(value.map(|v| (key, v)));
        }
        Ok(out)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        for (key, value) in entries {
            backend.set(&name, &key, value).await?;
        }
        Ok(())
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KeyValueError> {
        let (backend, name) = self.bucket(&bucket)?;
        for key in keys {
            backend.delete(&name, &key).await?;
        }
        Ok(())
    }
}

/// The `wasi:keyvalue` interfaces.
const INTERFACES: &[BuiltinInterface] = &[
    BuiltinInterface::new("wasi:keyvalue/store", |l| {
        store::add_to_linker::<InstanceState, HasKeyValue>(l, view)
    })
    .named()
    .provider_client(),
    BuiltinInterface::new("wasi:keyvalue/atomics", |l| {
        atomics::add_to_linker::<InstanceState, HasKeyValue>(l, view)
    })
    .provider_client(),
    BuiltinInterface::new("wasi:keyvalue/batch", |l| {
        batch::add_to_linker::<InstanceState, HasKeyValue>(l, view)
    })
    .provider_client(),
];

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_manifest::Workload;

    /// A component whose keyvalue bindings are `bindings` (YAML flow mappings).
    fn component(bindings: &str) -> Result<trellis_manifest::Component, String> {
        let yaml = format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: shop\ncomponents:\n  web:\n    source: Cargo.toml\n    bindings: {{{bindings}}}\n"
        );
        let workload = Workload::from_yaml(
            &yaml,
            std::path::Path::new("w.yaml"),
            std::path::Path::new("."),
        )
        .map_err(|e| e.to_string())?;
        workload
            .components
            .into_iter()
            .next()
            .ok_or_else(|| "no component".into())
    }

    #[tokio::test]
    async fn host_bindings_share_the_workloads_memory() -> Result<(), Box<dyn std::error::Error>> {
        let memory = MemoryStores::default();
        let spec = component("'wasi:keyvalue': host, 'wasi:keyvalue/store#cache': host")?;
        let no_lattice = |_: &Binding| None;
        let cx = PrepareContext {
            workload: "shop",
            component: &spec,
            remote: &no_lattice,
            sandbox: &Arc::new(crate::sandbox::Sandbox::open()),
            lattice: None,
        };
        let first = KeyValue::prepare(&memory, &cx)?;
        let second = KeyValue::prepare(&memory, &cx)?;
        // Both versions reach the same data; the named binding does too.
        let bucket = first.for_bucket("visits").open("visits").await?;
        first
            .for_bucket("visits")
            .set(&bucket, "n", b"1".to_vec())
            .await?;
        assert_eq!(
            second.for_bucket("visits").get(&bucket, "n").await?,
            Some(b"1".to_vec())
        );
        let cache = second.for_bucket("cache").open("visits").await?;
        assert_eq!(
            second.for_bucket("cache").get(&cache, "n").await?,
            Some(b"1".to_vec())
        );
        assert_eq!(memory.len(), 1);
        drop((first, second));
        assert!(memory.is_empty(), "the data outlived its last version");
        Ok(())
    }
}
