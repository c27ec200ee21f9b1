//! Built-in capabilities: the interfaces a `host` binding can name.
//!
//! Every capability is one module implementing [`Capability`], one lifecycle
//! in four phases (after Spin's factors and wasmtime's `add_to_linker`):
//!
//! 1. **link**: its [`BuiltinInterface`]s say how to add each interface to a
//!    linker; the resolver links those a component's bindings send to the host.
//! 2. **prepare**, once per component of a workload version: resolve its
//!    bindings and backends, validate its config; problems are diagnostics.
//! 3. **instantiate**, once per store: the state its host functions reach
//!    through the store's data, without any lookup.
//! 4. **release**: prepared values are dropped when the last request of a
//!    stopped version ends; per-workload data ([`PerWorkload`]) goes with the
//!    last version of that workload name on the host.
//!
//! The [`capabilities!`] table below is the only list of them: adding one is
//! a module plus a line there. The rest of the host sees only the generated
//! [`CapabilityHosts`], [`ComponentCapabilities`] and [`CapabilityStates`].

pub mod blobstore;
mod config;
mod http;
pub mod keyvalue;
mod logging;
mod secrets;
mod wasi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use wasmtime::component::Linker;

use crate::lattice::CallTarget;
use crate::state::InstanceState;
use trellis_manifest::{Binding, Component};

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

/// One built-in capability's lifecycle (see the module docs).
pub(crate) trait Capability {
    /// The interfaces it implements, and how to link each.
    const INTERFACES: &'static [BuiltinInterface];
    /// Host-wide state, made once per host (in-memory data of every workload).
    type Host: Default + Send + Sync + 'static;
    /// What it prepared for one component of one workload version.
    type Prepared: Send + Sync + 'static;
    /// Its state inside one store.
    type State: Send + 'static;

    /// Resolves what the component in `cx` needs of this capability.
    fn prepare(
        host: &Self::Host,
        cx: &PrepareContext<'_>,
    ) -> Result<Self::Prepared, CapabilityError>;

    /// Fresh state for one store.
    fn instantiate(prepared: &Self::Prepared) -> Result<Self::State, CapabilityError>;
}

/// What a capability sees of the component it prepares for.
pub(crate) struct PrepareContext<'a> {
    /// The workload's name.
    pub(crate) workload: &'a str,
    /// The component, with its bindings, config and grants.
    pub(crate) component: &'a Component,
    /// The call target of a binding that goes over the lattice, if it does.
    pub(crate) remote: &'a dyn Fn(&Binding) -> Option<CallTarget>,
    /// The host's bounds on what the component's grants may reach.
    pub(crate) sandbox: &'a Arc<crate::sandbox::Sandbox>,
    /// The lattice this host is on, if any.
    pub(crate) lattice: Option<&'a Arc<crate::lattice::Lattice>>,
}

/// Why a capability could not make a store's state.
#[derive(Debug, thiserror::Error)]
#[error("capability `{capability}`: {message}")]
pub struct CapabilityError {
    /// The capability.
    pub capability: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Declares the capabilities: generates the per-host, per-version and
/// per-store structs with one field per capability, and their phases.
macro_rules! capabilities {
    ($($field:ident: $cap:ty),* $(,)?) => {
        /// Every capability's host-wide state.
        #[derive(Default)]
        pub(crate) struct CapabilityHosts {
            $(pub(crate) $field: <$cap as Capability>::Host,)*
        }

        /// What every capability prepared for one component of a workload version.
        pub(crate) struct ComponentCapabilities {
            $(pub(crate) $field: <$cap as Capability>::Prepared,)*
        }

        /// Every capability's state for one component inside one store.
        pub(crate) struct CapabilityStates {
            $(pub(crate) $field: <$cap as Capability>::State,)*
        }

        /// Every interface a `host` binding can satisfy.
        pub fn builtin_interfaces() -> impl Iterator<Item = &'static BuiltinInterface> {
            [$(<$cap as Capability>::INTERFACES),*].into_iter().flatten()
        }

        impl ComponentCapabilities {
            /// Prepares every capability for the component in `cx`, or says
            /// every problem any of them found.
            pub(crate) fn prepare(
                hosts: &CapabilityHosts,
                cx: &PrepareContext<'_>,
            ) -> Result<Self, Vec<CapabilityError>> {
                let mut problems = Vec::new();
                $(let $field = <$cap as Capability>::prepare(&hosts.$field, cx)
                    .map_err(|p| problems.push(p))
                    .ok();)*
                match ($($field,)*) {
                    ($(Some($field),)*) => Ok(ComponentCapabilities { $($field,)* }),
                    _ => Err(problems),
                }
            }

            /// Fresh state for one store.
            pub(crate) fn instantiate(&self) -> Result<CapabilityStates, CapabilityError> {
                Ok(CapabilityStates {
                    $($field: <$cap as Capability>::instantiate(&self.$field)?,)*
                })
            }
        }
    };
}

capabilities! {
    wasi: wasi::Wasi,
    http: http::Http,
    config: config::Config,
    logging: logging::Logging,
    keyvalue: keyvalue::KeyValue,
    blobstore: blobstore::Blobstore,
    secrets: secrets::Secrets,
}

/// The built-in implementation of `interface` (unversioned name), if there is one.
pub fn find_builtin(interface: &str) -> Option<&'static BuiltinInterface> {
    builtin_interfaces().find(|b| b.name == interface)
}

/// One value per workload name, shared by every version of it that is loaded
/// on this host: a reload or a rollout keeps it, and it is freed when the last
/// version holding it is gone, so a workload deleted and applied again starts
/// empty.
pub struct PerWorkload<T> {
    values: Mutex<HashMap<String, Weak<T>>>,
}

impl<T> Default for PerWorkload<T> {
    fn default() -> Self {
        PerWorkload {
            values: Mutex::default(),
        }
    }
}

impl<T: Default> PerWorkload<T> {
    /// The value of `workload`: the one its loaded versions hold, else a new one.
    pub fn for_workload(&self, workload: &str) -> Arc<T> {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = values.get(workload).and_then(Weak::upgrade) {
            return value;
        }
        values.retain(|_, v| v.strong_count() > 0);
        let value = Arc::new(T::default());
        values.insert(workload.to_string(), Arc::downgrade(&value));
        value
    }

    /// How many workloads hold a value now.
    pub fn len(&self) -> usize {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.values().filter(|v| v.strong_count() > 0).count()
    }

    /// Whether no workload holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Host-wide services the built-in capabilities draw on.
#[derive(Clone)]
pub struct HostServices {
    /// The lattice that `provider` bindings call over; none in `trellis dev`.
    pub lattice: Option<Arc<crate::lattice::Lattice>>,
    /// Every capability's host-wide state.
    pub(crate) capabilities: Arc<CapabilityHosts>,
    /// The host's bounds on every workload (open until [`crate::Host::sandboxed`]).
    pub sandbox: Arc<crate::sandbox::Sandbox>,
    /// Where registry and lattice sources come from (no cache, no lattice,
    /// no signatures required until [`crate::Host::with_artifacts`]).
    pub artifacts: Arc<trellis_artifacts::Fetcher>,
}

impl Default for HostServices {
    fn default() -> Self {
        HostServices {
            lattice: None,
            capabilities: Arc::default(),
            sandbox: Arc::new(crate::sandbox::Sandbox::open()),
            artifacts: Arc::new(trellis_artifacts::Fetcher::new(
                None,
                None,
                trellis_artifacts::Trust::default(),
                trellis_artifacts::MAX_ARTIFACT_BYTES,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_workload_values_live_while_a_version_holds_them() {
        let values = PerWorkload::<Mutex<u32>>::default();
        let v1 = values.for_workload("shop");
        *v1.lock().unwrap_or_else(|p| p.into_inner()) = 7;
        // A rollout: the new version is prepared while the old one runs.
        let v2 = values.for_workload("shop");
        drop(v1);
        assert_eq!(*v2.lock().unwrap_or_else(|p| p.into_inner()), 7);
        // The last version stops: the next one starts empty.
        drop(v2);
        assert!(values.is_empty());
        let v3 = values.for_workload("shop");
        assert_eq!(*v3.lock().unwrap_or_else(|p| p.into_inner()), 0);
        assert_eq!(values.len(), 1);
    }

    #[test]
    fn every_interface_has_one_capability() {
        let mut names: Vec<_> = builtin_interfaces().map(|b| b.name).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "an interface is listed twice");
    }
}
