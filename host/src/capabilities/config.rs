//! `wasi:config/store`, fed from the component's `config` in the manifest.

use std::sync::Arc;

use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::state::InstanceState;

/// `wasi:config/store`: the component's `config`, read once per version and
/// shared by all its instances.
pub(crate) struct Config;

impl Capability for Config {
    const INTERFACES: &'static [BuiltinInterface] =
        &[BuiltinInterface::new("wasi:config/store", |l| {
            wasmtime_wasi_config::add_to_linker(l, |s: &mut InstanceState| {
                WasiConfig::new(&s.caps().config)
            })
        })];
    type Host = ();
    type Prepared = Arc<WasiConfigVariables>;
    type State = Arc<WasiConfigVariables>;

    fn prepare(_: &(), cx: &PrepareContext<'_>) -> Result<Self::Prepared, CapabilityError> {
        let mut vars = WasiConfigVariables::new();
        for (key, value) in &cx.component.config {
            vars.insert(key, value);
        }
        Ok(Arc::new(vars))
    }

    fn instantiate(vars: &Self::Prepared) -> Result<Self::State, CapabilityError> {
        Ok(vars.clone())
    }
}
