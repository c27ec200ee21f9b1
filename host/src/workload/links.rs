//! In-process links: an import of one component served by an export of a
//! co-located component in the same store, without leaving the process.
//!
//! Each imported function is defined in the importer's linker as a forwarder
//! that switches the store's running component, calls the exporter's function
//! with the same values, and switches back.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, Linker};
use wasmtime::{Engine, format_err};

use crate::state::InstanceState;
use trellis_manifest::ImportName;

/// Defines every function of `import` (an instance import of `importer`) as a call
/// into the same-named export of `target`, the component at `target_index`.
pub(crate) fn define(
    linker: &mut Linker<InstanceState>,
    engine: &Engine,
    import: &str,
    import_item: &ComponentItem,
    target: &Component,
    target_name: &str,
    target_index: usize,
) -> Result<(), String> {
    let ComponentItem::ComponentInstance(wanted) = import_item else {
        return Err(format!(
            "`{import}` is not an interface; only interfaces can be linked to a component"
        ));
    };
    let unversioned = ImportName::parse(import).unversioned;
    let export_name = target
        .component_type()
        .exports(engine)
        .map(|(name, _)| name)
        .find(|name| ImportName::parse(name).unversioned == unversioned)
        .map(str::to_string)
        .ok_or_else(|| format!("component `{target_name}` does not export `{unversioned}`"))?;
    let instance_index = target
        .get_export_index(None, &export_name)
        .ok_or_else(|| format!("component `{target_name}` does not export `{export_name}`"))?;
    let mut instance = linker.instance(import).map_err(|e| format!("{e:#}"))?;
    for (func, item) in wanted.exports(engine) {
        match item {
            ComponentItem::ComponentFunc(_) => {}
            ComponentItem::Type(_) => continue,
            _ => {
                return Err(format!(
                    "`{import}` exports `{func}`, which is not a function; in-process links carry functions and plain values only"
                ));
            }
        }
        let export = target
            .get_export_index(Some(&instance_index), func)
            .ok_or_else(|| {
                format!("component `{target_name}` does not export `{export_name}#{func}`")
            })?;
        instance
            .func_new_async(func, move |store, _ty, params, results| {
                Box::new(forward(store, target_index, export, params, results))
            })
            .map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

async fn forward(
    mut store: wasmtime::StoreContextMut<'_, InstanceState>,
    target: usize,
    export: ComponentExportIndex,
    params: &[wasmtime::component::Val],
    results: &mut [wasmtime::component::Val],
) -> wasmtime::Result<()> {
    let instance = store
        .data()
        .slot(target)
        .and_then(|slot| slot.instance)
        .ok_or_else(|| format_err!("linked component is not instantiated in this store"))?;
    let func = instance
        .get_func(&mut store, export)
        .ok_or_else(|| format_err!("linked function is missing from its instance"))?;
    let previous = store.data_mut().enter(target);
    let outcome = func.call_async(&mut store, params, results).await;
    store.data_mut().enter(previous);
    outcome
}
