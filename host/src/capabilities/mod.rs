//! Built-in capabilities: the interfaces a `host` binding can name.
//!
//! Each capability is a module with the same shape: an `INTERFACES` table
//! (interface name and how to link it) and, where it keeps state, a value
//! prepared once per component version and cloned into each instance. The
//! rest of the host sees only [`BuiltinInterface`], [`ComponentCapabilities`]
//! and [`CapabilityStates`].

pub mod blobstore;
mod config;
mod http;
pub mod keyvalue;
mod logging;
mod wasi;

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_config::WasiConfigVariables;

use crate::lattice::CallTarget;
use crate::state::InstanceState;
use blobstore::{BlobstoreBackend, MemoryBlobstores};
use keyvalue::{KeyValueBackends, MemoryStores};
use trellis_control_api::{Binding, Component};

type LinkFn = fn(&mut Linker<InstanceState>) -> wasmtime::Result<()>;

/// One interface the host implements itself.
pub struct BuiltinInterface {
    /// The interface name without version, e.g. `wasi:keyvalue/store`.
    pub name: &'static str,
    /// Whether named bindings (`iface#name`) can send its instances to different backends.
    pub routes_names: bool,
    /// Whether a `provider` binding of it goes through the capability's typed
    /// wRPC client (otherwise the host's dynamic polyfill carries the calls).
    pub provider_client: bool,
    link: LinkFn,
}

impl BuiltinInterface {
    const fn new(name: &'static str, link: LinkFn) -> Self {
        BuiltinInterface {
            name,
            routes_names: false,
            provider_client: false,
            link,
        }
    }

    /// Marks an interface whose instances named bindings can route apart.
    const fn named(mut self) -> Self {
        self.routes_names = true;
        self
    }

    /// Marks an interface whose capability calls providers through its own client.
    const fn provider_client(mut self) -> Self {
        self.provider_client = true;
        self
    }

    /// Adds this interface's host functions to `linker`.
    pub(crate) fn link(&self, linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        (self.link)(linker)
    }
}

/// Every interface a `host` binding can satisfy.
pub fn builtin_interfaces() -> impl Iterator<Item = &'static BuiltinInterface> {
    [
        wasi::INTERFACES,
        http::INTERFACES,
        config::INTERFACES,
        logging::INTERFACES,
        keyvalue::INTERFACES,
        blobstore::INTERFACES,
    ]
    .into_iter()
    .flatten()
}

/// The built-in implementation of `interface` (unversioned name), if there is one.
pub fn find_builtin(interface: &str) -> Option<&'static BuiltinInterface> {
    builtin_interfaces().find(|b| b.name == interface)
}

/// One value per workload name, created on first use and kept across reloads of
/// that workload, so development data survives an edit.
#[derive(Debug)]
pub struct PerWorkload<T> {
    values: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<T>>>>,
}

impl<T> Default for PerWorkload<T> {
    fn default() -> Self {
        PerWorkload {
            values: Arc::default(),
        }
    }
}

impl<T> Clone for PerWorkload<T> {
    fn clone(&self) -> Self {
        PerWorkload {
            values: self.values.clone(),
        }
    }
}

impl<T: Default> PerWorkload<T> {
    /// The value of `workload`, created on first use.
    pub fn for_workload(&self, workload: &str) -> Arc<T> {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.entry(workload.to_string()).or_default().clone()
    }
}

/// Host-wide services the built-in capabilities draw on.
#[derive(Clone, Default)]
pub struct HostServices {
    /// The lattice that `provider` bindings call over; none in `trellis dev`.
    pub lattice: Option<Arc<crate::lattice::Lattice>>,
    /// In-memory keyvalue data, per workload.
    pub memory_keyvalue: MemoryStores,
    /// In-memory blobstore containers, per workload.
    pub memory_blobstore: MemoryBlobstores,
}

/// A component's capability settings, prepared once per workload version.
pub(crate) struct ComponentCapabilities {
    component: Component,
    config: Arc<WasiConfigVariables>,
    log: logging::LogSource,
    keyvalue: KeyValueBackends,
    blobstore: Arc<dyn BlobstoreBackend>,
}

/// One component's capability state inside one store.
pub(crate) struct CapabilityStates {
    pub(crate) wasi: WasiCtx,
    pub(crate) config: Arc<WasiConfigVariables>,
    pub(crate) log: logging::LogSource,
    pub(crate) keyvalue: KeyValueBackends,
    pub(crate) blobstore: Arc<dyn BlobstoreBackend>,
}

impl ComponentCapabilities {
    /// Resolves what `component` of `workload` needs from the host's services.
    /// `remote` gives the call target of a binding that goes over the lattice.
    pub(crate) fn prepare(
        workload: &str,
        component: &Component,
        services: &HostServices,
        remote: impl Fn(&Binding) -> Option<CallTarget>,
    ) -> Self {
        let keyvalue = keyvalue::backends(workload, component, services, &remote);
        ComponentCapabilities {
            component: component.clone(),
            config: config::variables(component),
            log: logging::LogSource {
                workload: workload.into(),
                component: component.name.as_str().into(),
            },
            keyvalue,
            blobstore: blobstore::backend(workload, component, services, &remote),
        }
    }

    /// Fresh per-instance state.
    pub(crate) fn instantiate(&self) -> Result<CapabilityStates, String> {
        Ok(CapabilityStates {
            wasi: wasi::context(&self.component)?,
            config: self.config.clone(),
            log: self.log.clone(),
            keyvalue: self.keyvalue.clone(),
            blobstore: self.blobstore.clone(),
        })
    }
}
