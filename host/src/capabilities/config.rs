//! `wasi:config/store`, fed from the component's `config` in the manifest.

use std::sync::Arc;

use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::BuiltinInterface;
use crate::state::InstanceState;
use trellis_control_api::Component;

/// The `wasi:config` interface.
pub(crate) const INTERFACES: &[BuiltinInterface] =
    &[BuiltinInterface::new("wasi:config/store", |l| {
        wasmtime_wasi_config::add_to_linker(l, |s: &mut InstanceState| {
            WasiConfig::new(&s.caps().config)
        })
    })];

/// The component's config values, shared by all its instances.
pub(crate) fn variables(component: &Component) -> Arc<WasiConfigVariables> {
    let mut vars = WasiConfigVariables::new();
    for (key, value) in &component.config {
        vars.insert(key, value);
    }
    Arc::new(vars)
}
