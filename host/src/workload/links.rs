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

/// Why an import cannot be linked to a co-located component's export.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The import is a function or a type, not an interface.
    #[error("`{0}` is not an interface; only interfaces can be linked to a component")]
    NotAnInterface(String),
    /// The target does not export what is imported.
    #[error("component `{component}` does not export `{export}`")]
    Missing { component: String, export: String },
    /// The interface carries something other than functions.
    #[error(
        "`{import}` exports `{item}`, which is not a function; in-process links carry functions and plain values only"
    )]
    NotAFunction { import: String, item: String },
    /// wasmtime's linker refused the definition.
    #[error("{0}")]
    Linker(String),
}

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
) -> Result<(), LinkError> {
    let missing = |export: String| LinkError::Missing {
        component: target_name.to_string(),
        export,
    };
    let ComponentItem::ComponentInstance(wanted) = import_item else {
        return Err(LinkError::NotAnInterface(import.to_string()));
    };
    let unversioned = ImportName::parse(import).unversioned;
    let export_name = target
        .component_type()
        .exports(engine)
        .map(|(name, _)| name)
        .find(|name| ImportName::parse(name).unversioned == unversioned)
        .map(str::to_string)
        .ok_or_else(|| missing(unversioned.to_string()))?;
    let instance_index = target
        .get_export_index(None, &export_name)
        .ok_or_else(|| missing(export_name.clone()))?;
    let mut instance = linker
        .instance(import)
        .map_err(|e| LinkError::Linker(format!("{e:#}")))?;
    for (func, item) in wanted.exports(engine) {
        match item {
            ComponentItem::ComponentFunc(_) => {}
            ComponentItem::Type(_) => continue,
            _ => {
                return Err(LinkError::NotAFunction {
                    import: import.to_string(),
                    item: func.to_string(),
                });
            }
        }
        let export = target
            .get_export_index(Some(&instance_index), func)
            .ok_or_else(|| missing(format!("{export_name}#{func}")))?;
        instance
            .func_new_async(func, move |store, _ty, params, results| {
                Box::new(forward(store, target_index, export, params, results))
            })
            .map_err(|e| LinkError::Linker(format!("{e:#}")))?;
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
