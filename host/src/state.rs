//! The data of one store: what every host function reaches through `&mut T`.
//!
//! One store serves one request. It holds one slot per component of the
//! workload (the entry component and the ones it links to in process), and
//! `current` says whose code is running, so host calls see that component's
//! config, environment and limits without any lookup.

use wasmtime::ResourceLimiter;
use wasmtime::component::{Instance, ResourceTable};
use wrpc_runtime_wasmtime::{SharedResourceTable, WrpcCtx, WrpcCtxView, WrpcView};

use crate::capabilities::CapabilityStates;
use crate::lattice::RoutedInvoke;

/// What the wRPC polyfill sees of one component: the transport of its
/// `provider` and `workload` imports, and the guest resources it shares.
#[derive(Default)]
pub(crate) struct RemoteCalls {
    invoke: RoutedInvoke,
    shared: SharedResourceTable,
}

impl RemoteCalls {
    pub(crate) fn new(invoke: RoutedInvoke) -> Self {
        RemoteCalls {
            invoke,
            shared: SharedResourceTable::default(),
        }
    }
}

impl WrpcCtx<RoutedInvoke> for RemoteCalls {
    fn context(&self) {}

    fn client(&self) -> &RoutedInvoke {
        &self.invoke
    }

    fn shared_resources(&mut self) -> &mut SharedResourceTable {
        &mut self.shared
    }
}

/// One component's place in a store.
pub(crate) struct Slot {
    pub(crate) caps: CapabilityStates,
    /// Where its polyfilled imports go.
    pub(crate) remote: RemoteCalls,
    pub(crate) memory_limit: u64,
    pub(crate) name: String,
    /// Set once the component is instantiated in this store.
    pub(crate) instance: Option<Instance>,
}

/// The `T` of every `Store<T>` in Trellis.
pub struct InstanceState {
    table: ResourceTable,
    slots: Vec<Slot>,
    current: usize,
}

impl InstanceState {
    pub(crate) fn new(slots: Vec<Slot>, current: usize) -> Self {
        InstanceState {
            table: ResourceTable::new(),
            slots,
            current,
        }
    }

    /// The running component's capability state.
    pub(crate) fn caps(&mut self) -> &mut CapabilityStates {
        &mut self.slots[self.current].caps
    }

    pub(crate) fn caps_and_table(&mut self) -> (&mut CapabilityStates, &mut ResourceTable) {
        (&mut self.slots[self.current].caps, &mut self.table)
    }

    /// Makes `index` the running component; returns the previous one to restore.
    pub(crate) fn enter(&mut self, index: usize) -> usize {
        std::mem::replace(&mut self.current, index)
    }

    pub(crate) fn slot(&self, index: usize) -> Option<&Slot> {
        self.slots.get(index)
    }

    pub(crate) fn slot_mut(&mut self, index: usize) -> Option<&mut Slot> {
        self.slots.get_mut(index)
    }
}

impl WrpcView for InstanceState {
    type Invoke = RoutedInvoke;

    fn wrpc(&mut self) -> WrpcCtxView<'_, RoutedInvoke> {
        WrpcCtxView {
            ctx: &mut self.slots[self.current].remote,
            table: &mut self.table,
        }
    }
}

/// The error a guest gets when it grows past its memory limit.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "component `{component}` exceeded its memory limit of {limit_mib} MiB (it tried to grow to {desired_bytes} bytes)"
)]
pub struct MemoryLimitExceeded {
    /// The component that grew.
    pub component: String,
    /// The limit in MiB.
    pub limit_mib: u64,
    /// The size it tried to grow to.
    pub desired_bytes: u64,
}

impl ResourceLimiter for InstanceState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let slot = &self.slots[self.current];
        if desired as u64 > slot.memory_limit {
            return Err(wasmtime::Error::from(MemoryLimitExceeded {
                component: slot.name.clone(),
                limit_mib: slot.memory_limit >> 20,
                desired_bytes: desired as u64,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
