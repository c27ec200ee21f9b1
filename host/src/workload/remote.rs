//! Remote bindings of a workload: before anything is compiled, every provider a
//! binding names is asked what it serves, and a call target is made per
//! `provider` and `workload` binding.

use std::collections::HashMap;

use trellis_lattice::{ProviderInfo, lean};
use trellis_manifest::{Binding, BindingTarget, Diagnostic, Workload};

use crate::capabilities::HostServices;
use crate::lattice::{CallTarget, DEFAULT_CALL_TIMEOUT};

/// One binding's remote end.
pub(crate) struct Remote {
    /// What the provider said it serves; `None` for a workload, which may start
    /// after its callers (a call before it serves fails with "no responders"),
    /// and for a provider bound with `announced: false`.
    pub(crate) info: Option<ProviderInfo>,
    /// Where its calls go.
    pub(crate) target: CallTarget,
}

/// Every remote binding of a workload, by component and import pattern.
#[derive(Default)]
pub(crate) struct RemoteBindings {
    by_binding: HashMap<(String, String), Remote>,
}

impl RemoteBindings {
    fn insert(
        &mut self,
        component: &trellis_manifest::Component,
        binding: &Binding,
        info: Option<ProviderInfo>,
        target: CallTarget,
    ) {
        self.by_binding.insert(
            (component.name.clone(), binding.import.as_str().to_string()),
            Remote { info, target },
        );
    }

    /// The remote end of `binding` of `component`, if it has one.
    pub(crate) fn get(&self, component: &str, binding: &Binding) -> Option<&Remote> {
        self.by_binding
            .get(&(component.to_string(), binding.import.as_str().to_string()))
    }
}

/// Asks each provider `manifest` names for its info and makes the call targets;
/// a provider that does not answer is a diagnostic at the binding that names it.
pub(crate) async fn connect(
    services: &HostServices,
    manifest: &Workload,
    diagnostics: &mut Vec<Diagnostic>,
) -> RemoteBindings {
    let mut remotes = RemoteBindings::default();
    let Some(lattice) = &services.lattice else {
        return remotes; // `trellis dev`: the resolver explains.
    };
    let mut infos: HashMap<String, Result<ProviderInfo, crate::lattice::LatticeError>> =
        HashMap::new();
    for component in &manifest.components {
        for binding in &component.bindings {
            if let BindingTarget::Workload { name, timeout } = &binding.target {
                // Trellis hosts serve exports over both transports.
                let to = Destination {
                    prefix: lattice.subjects().workload(name),
                    lean: true,
                    config: &Default::default(),
                    timeout: *timeout,
                    describe: format!("workload `{name}`"),
                };
                match call_target(lattice, manifest, component, binding, to).await {
                    Ok(target) => remotes.insert(component, binding, None, target),
                    Err(e) => diagnostics.push(e),
                }
                continue;
            }
            let BindingTarget::Provider {
                name,
                timeout,
                config,
                secrets,
                announced,
            } = &binding.target
            else {
                continue;
            };
            if !announced {
                // A server that answers no discovery: wrpc-transport-nats only,
                // nothing checked, nothing sealed.
                if !secrets.is_empty() {
                    diagnostics.push(Diagnostic::new(
                        binding.pos,
                        format!(
                            "component `{}`: its binding to provider `{name}` passes secrets in config, and a provider bound with `announced: false` has no xkey to seal them to",
                            component.name
                        ),
                    ));
                    continue;
                }
                let to = Destination {
                    prefix: lattice.subjects().provider(name),
                    lean: false,
                    config,
                    timeout: *timeout,
                    describe: format!("provider `{name}`"),
                };
                match call_target(lattice, manifest, component, binding, to).await {
                    Ok(target) => remotes.insert(component, binding, None, target),
                    Err(e) => diagnostics.push(e),
                }
                continue;
            }
            if !infos.contains_key(name) {
                let info = lattice.provider_info(name).await;
                infos.insert(name.clone(), info);
            }
            let info = match infos.get(name) {
                Some(Ok(info)) => info.clone(),
                Some(Err(error)) => {
                    diagnostics.push(
                        Diagnostic::new(
                            binding.pos,
                            format!("component `{}`: {error}", component.name),
                        )
                        .with_hint(format!(
                            "start the provider, or bind `{}` elsewhere",
                            binding.import
                        )),
                    );
                    continue;
                }
                None => continue,
            };
            let to = Destination {
                prefix: lattice.subjects().provider(name),
                lean: info.transports.iter().any(|t| t == lean::PROTOCOL),
                config,
                timeout: *timeout,
                describe: format!("provider `{name}`"),
            };
            let mut target = match call_target(lattice, manifest, component, binding, to).await {
                Ok(target) => target,
                Err(e) => {
                    diagnostics.push(e);
                    continue;
                }
            };
            if !secrets.is_empty() {
                match sealed_config(lattice, &manifest.name, component, name, &info, secrets).await
                {
                    Ok(sealed) => target = target.with_sealed_config(&sealed),
                    Err(e) => {
                        diagnostics.push(Diagnostic::new(
                            binding.pos,
                            format!("component `{}`: {e}", component.name),
                        ));
                        continue;
                    }
                }
            }
            remotes.insert(component, binding, Some(info), target);
        }
    }
    remotes
}

/// Where one remote binding's calls go.
struct Destination<'a> {
    prefix: String,
    /// Whether the callee takes `trellis-rr/1`.
    lean: bool,
    config: &'a std::collections::BTreeMap<String, String>,
    timeout: Option<std::time::Duration>,
    /// The callee in errors: ``provider `kv` ``.
    describe: String,
}

/// The call target of `binding` of `component`, or the diagnostic at the binding.
async fn call_target(
    lattice: &crate::lattice::Lattice,
    manifest: &Workload,
    component: &trellis_manifest::Component,
    binding: &Binding,
    to: Destination<'_>,
) -> Result<CallTarget, Diagnostic> {
    let client = lattice
        .lean_client(&to.prefix, to.lean)
        .await
        .map_err(|e| Diagnostic::new(binding.pos, e.to_string()))?;
    Ok(CallTarget::new(
        client,
        &manifest.name,
        &component.name,
        binding.import.as_str(),
        to.config,
        to.timeout.unwrap_or(DEFAULT_CALL_TIMEOUT),
        to.describe,
    ))
}

/// The binding's secret config values, each resolved like the component's
/// secrets and sealed to provider `provider`'s announced xkey, as the JSON of
/// the `Trellis-Secrets` header. Resolved once per version, not per call.
async fn sealed_config(
    lattice: &crate::lattice::Lattice,
    workload: &str,
    component: &trellis_manifest::Component,
    provider: &str,
    info: &trellis_lattice::ProviderInfo,
    secrets: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let recipient = info.xkey.as_deref().ok_or_else(|| {
        format!(
            "its binding to provider `{provider}` passes secrets in config, and the provider \
             announces no xkey to seal them to (start it with --xkey)"
        )
    })?;
    let sender = nkeys::XKey::new();
    let mut sealed = std::collections::BTreeMap::new();
    for (key, name) in secrets {
        let secret = component
            .secrets
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| {
                format!("config `{key}` names secret `{name}`, which it does not list")
            })?;
        let value = match &secret.source {
            trellis_manifest::SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                format!("secret `{name}`: this host has no environment variable `{var}`")
            })?,
            trellis_manifest::SecretSource::Lattice(store_key) => lattice
                .secret(workload, &component.name, store_key)
                .await
                .map_err(|e| format!("secret `{name}`: {e}"))?,
        };
        let boxed = trellis_lattice::Sealed::seal(name, value.as_bytes(), &sender, recipient)
            .map_err(|e| e.to_string())?;
        sealed.insert(key.clone(), boxed);
    }
    serde_json::to_string(&sealed).map_err(|e| e.to_string())
}
