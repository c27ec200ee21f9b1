//! Resolving a component's imports against its bindings, once per workload version.
//!
//! Produces the component's linker, or a diagnostic for every import that
//! cannot be satisfied, naming the component and the import.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};

use crate::capabilities::{BuiltinInterface, find_builtin};
use crate::lattice::{CallTarget, RoutedInvoke};
use crate::state::InstanceState;
use trellis_manifest::{
    BindingTarget, Component as ComponentSpec, Diagnostic, ImportName, find_binding,
};

/// A compiled component beside its manifest entry.
pub(crate) struct Compiled<'a> {
    pub(crate) spec: &'a ComponentSpec,
    pub(crate) component: std::sync::Arc<Component>,
}

/// Builds the linker of `components[index]` from its bindings, and the call
/// targets of its imports that the wRPC polyfill carries.
pub(crate) fn linker_for(
    engine: &Engine,
    components: &[Compiled<'_>],
    index: usize,
    remotes: &super::remote::RemoteBindings,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Linker<InstanceState>, RoutedInvoke) {
    let mut routes = HashMap::new();
    let me = &components[index];
    let mut linker = Linker::new(engine);
    let mut linked = BTreeSet::new();
    let component_type = me.component.component_type();
    for (import, item) in component_type.imports(engine) {
        let name = ImportName::parse(import);
        let Some(binding) = find_binding(&me.spec.bindings, import) else {
            let hint = match find_builtin(name.unversioned) {
                Some(_) => format!(
                    "the host implements it: add `{}: host` under components.{}.bindings",
                    name.unversioned, me.spec.name
                ),
                None => format!(
                    "bind it to a component, provider or workload under components.{}.bindings",
                    me.spec.name
                ),
            };
            diagnostics.push(
                Diagnostic::new(
                    me.spec.pos,
                    format!(
                        "component `{}` imports `{import}`, but no binding covers it",
                        me.spec.name
                    ),
                )
                .with_hint(hint),
            );
            continue;
        };
        let remote = remotes.get(&me.spec.name, binding);
        // Each built-in is linked once, whichever of its functions' imports comes first.
        let mut link_builtin = |builtin: &'static BuiltinInterface| {
            if !linked.insert(builtin.name) {
                return None;
            }
            builtin.link(&mut linker).err().map(|e| format!("{e:#}"))
        };
        let problem = match &binding.target {
            BindingTarget::Host => match find_builtin(name.unversioned) {
                Some(builtin) => link_builtin(builtin),
                None => Some(format!(
                    "binding `{}` sends `{import}` to the host, which has no built-in implementation of `{}`",
                    binding.import, name.unversioned
                )),
            },
            BindingTarget::Component { name: target } => {
                match components.iter().position(|c| &c.spec.name == target) {
                    Some(t) => super::links::define(
                        &mut linker,
                        engine,
                        import,
                        &item,
                        &components[t].component,
                        target,
                        t,
                    )
                    .err()
                    .map(|e| e.to_string()),
                    None => Some(format!("component `{target}` does not exist")),
                }
            }
            BindingTarget::Provider { name: provider, .. } if let Some(remote) = remote => {
                // An unannounced provider (`announced: false`) is taken at its word.
                let unserved = remote.info.as_ref().filter(|info| !info.serves(import));
                match find_builtin(name.unversioned) {
                    _ if let Some(info) = unserved => Some(format!(
                        "provider `{provider}` does not serve `{import}` (it serves: {})",
                        info.interfaces.join(", ")
                    )),
                    // The capability calls the provider through its typed client.
                    Some(builtin) if builtin.provider_client => link_builtin(builtin),
                    _ => polyfill(&mut linker, engine, import, &item, remote, &mut routes),
                }
            }
            BindingTarget::Workload { .. } if let Some(remote) = remote => {
                polyfill(&mut linker, engine, import, &item, remote, &mut routes)
            }
            BindingTarget::Provider { .. } | BindingTarget::Workload { .. } => Some(format!(
                "binding `{}` of `{import}` needs a lattice ({} bindings run on `trellis host` with NATS); `trellis dev` resolves only `host` and `component` bindings",
                binding.import,
                binding.target.kind()
            )),
        };
        if let Some(problem) = problem {
            diagnostics.push(Diagnostic::new(
                binding.pos,
                format!("component `{}`: {problem}", me.spec.name),
            ));
        }
    }
    for binding in me
        .spec
        .bindings
        .iter()
        .filter(|b| b.import.name().is_some())
    {
        if let Some(problem) = named_binding_problem(binding, remotes.get(&me.spec.name, binding)) {
            diagnostics.push(Diagnostic::new(
                binding.pos,
                format!("component `{}`: {problem}", me.spec.name),
            ));
        }
    }
    (linker, RoutedInvoke::new(routes))
}

/// Links `import` as wRPC calls to `remote`'s target through wrpc-runtime-wasmtime's
/// dynamic polyfill; values are encoded from the component's own types.
fn polyfill(
    linker: &mut Linker<InstanceState>,
    engine: &Engine,
    import: &str,
    item: &ComponentItem,
    remote: &super::remote::Remote,
    routes: &mut HashMap<String, CallTarget>,
) -> Option<String> {
    let no_resources: Arc<[ResourceType]> = Arc::from([]);
    let linked = wrpc_runtime_wasmtime::link_item(
        engine,
        &mut linker.root(),
        no_resources,
        HashMap::new(),
        item.clone(),
        "",
        import,
    );
    match linked {
        Ok(()) => {
            routes.insert(import.to_string(), remote.target.clone());
            None
        }
        Err(e) => Some(format!(
            "`{import}` cannot be called over wRPC: {e:#} (remote calls carry functions of plain values; resources are not supported yet)"
        )),
    }
}

/// Why a named binding (`ns:pkg/iface#name`) cannot be honoured, if it cannot.
/// The capability routes the instances itself, so only its targets are checked here.
fn named_binding_problem(
    binding: &trellis_manifest::Binding,
    remote: Option<&super::remote::Remote>,
) -> Option<String> {
    let interface = binding.import.interface().unwrap_or_default();
    if !find_builtin(interface).is_some_and(|b| b.routes_names) {
        let routed: Vec<_> = crate::capabilities::builtin_interfaces()
            .filter(|b| b.routes_names)
            .map(|b| b.name)
            .collect();
        return Some(format!(
            "binding `{}` names an instance of `{interface}`, but only these interfaces have named instances: {}",
            binding.import,
            routed.join(", ")
        ));
    }
    match (&binding.target, remote) {
        (BindingTarget::Host, _) => None,
        (BindingTarget::Provider { name, .. }, Some(remote)) => {
            let info = remote.info.as_ref()?;
            (!info.serves(interface)).then(|| {
                format!(
                    "provider `{name}` does not serve `{interface}` (it serves: {})",
                    info.interfaces.join(", ")
                )
            })
        }
        (BindingTarget::Provider { .. }, None) => Some(format!(
            "binding `{}` needs a lattice (provider bindings run on `trellis host` with NATS)",
            binding.import
        )),
        (target, _) => Some(format!(
            "binding `{}` sends a named instance to a {} target; named instances go to `host` or a `provider`",
            binding.import,
            target.kind()
        )),
    }
}
