//! Resolving a component's imports against its bindings, once per workload version.
//!
//! Produces the component's linker, or a diagnostic for every import that
//! cannot be satisfied, naming the component and the import.

use std::collections::BTreeSet;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::capabilities::{BuiltinInterface, find_builtin};
use crate::state::InstanceState;
use trellis_control_api::{
    BindingTarget, Component as ComponentSpec, Diagnostic, ImportName, find_binding,
};

/// A compiled component beside its manifest entry.
pub(crate) struct Compiled<'a> {
    pub(crate) spec: &'a ComponentSpec,
    pub(crate) component: Component,
}

/// Builds the linker of `components[index]` from its bindings.
pub(crate) fn linker_for(
    engine: &Engine,
    components: &[Compiled<'_>],
    index: usize,
    remotes: &super::remote::RemoteBindings,
    diagnostics: &mut Vec<Diagnostic>,
) -> Linker<InstanceState> {
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
                    .err(),
                    None => Some(format!("component `{target}` does not exist")),
                }
            }
            BindingTarget::Provider { name: provider, .. } if let Some(remote) = remote => {
                match find_builtin(name.unversioned) {
                    _ if !remote.info.serves(import) => Some(format!(
                        "provider `{provider}` does not serve `{import}` (it serves: {})",
                        remote.info.interfaces.join(", ")
                    )),
                    // The capability calls the provider through its typed client.
                    Some(builtin) => link_builtin(builtin),
                    None => Some(format!(
                        "binding `{}` sends `{import}` to provider `{provider}`, but this host has no client for `{}` yet (provider bindings cover wasi:keyvalue)",
                        binding.import, name.unversioned
                    )),
                }
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
    linker
}
