//! Workloads: a manifest turned into compiled, linked, pre-instantiated components.
//!
//! Loading is done once per workload version and fails whole, with every
//! problem named; serving a request only instantiates from what was prepared.

mod admit;
mod artifacts;
mod compile;
mod compiled;
mod exports;
mod links;
mod remote;
mod resolve;
mod shapes;

pub use compile::{CompileError, read_binary};
pub use compiled::CompiledComponents;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::component::InstancePre;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::capabilities::{ComponentCapabilities, HostServices, PrepareContext};
use crate::engine::HostEngine;
use crate::lattice::RoutedInvoke;
use crate::state::{InstanceState, RemoteCalls, Slot};
pub(crate) use admit::Admitted;
pub use admit::InvokeError;
pub(crate) use exports::ExportServer;
use trellis_manifest::{
    BindingTarget, ComponentSource, Diagnostic, Limits, ManifestError, Workload,
};

/// The export that makes a component an HTTP handler.
const HTTP_HANDLER: &str = "wasi:http/incoming-handler";

/// Why a [`LoadedWorkload::probe`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The workload has no component of that name.
    #[error("the workload has no component `{0}`")]
    NoSuchComponent(String),
    /// The component did not instantiate.
    #[error("component `{component}` failed to instantiate: {message}")]
    Instantiate {
        /// The component probed.
        component: String,
        /// What went wrong.
        message: String,
    },
}

/// A workload version, ready to serve.
pub struct LoadedWorkload {
    /// The manifest it was loaded from.
    pub manifest: Workload,
    pub(crate) components: Vec<LoadedComponent>,
    exports: Vec<exports::ServedExport>,
    /// Keeps its fetched artifacts in the host's cache while it is loaded.
    _artifacts: Vec<trellis_artifacts::Pin>,
    /// Keeps its compiled components shared with other workloads of the same bytes.
    _compiled: Vec<Arc<wasmtime::component::Component>>,
}

/// One component of a loaded workload.
pub(crate) struct LoadedComponent {
    pub(crate) name: String,
    pub(crate) limits: Limits,
    pre: InstancePre<InstanceState>,
    pub(crate) proxy: Option<ProxyPre<InstanceState>>,
    caps: ComponentCapabilities,
    /// The transport of its polyfilled imports.
    remote: RoutedInvoke,
    /// Components to instantiate before this one, dependencies first.
    plan: Vec<usize>,
    pub(crate) concurrency: Arc<Semaphore>,
}

impl LoadedWorkload {
    /// Compiles, links and pre-instantiates every component of `manifest`.
    /// `file` names the manifest in errors.
    pub async fn load(
        engine: &HostEngine,
        services: &HostServices,
        manifest: Workload,
        file: &Path,
    ) -> Result<Arc<LoadedWorkload>, ManifestError> {
        let mut diagnostics = Vec::new();
        let remotes = remote::connect(services, &manifest, &mut diagnostics).await;
        if !diagnostics.is_empty() {
            return Err(ManifestError::new(file, diagnostics));
        }
        let fetched = artifacts::fetch(&services.artifacts, &services.sandbox, &manifest).await;
        let engine = engine.clone();
        let services = services.clone();
        let file = file.to_path_buf();
        // Compilation is CPU-bound: keep it off the request threads.
        tokio::task::spawn_blocking(move || {
            prepare(&engine, &services, manifest, &file, &remotes, fetched)
        })
        .await
        .unwrap_or_else(|e| {
            Err(ManifestError::new(
                Path::new("<loader>"),
                vec![Diagnostic::new(
                    Default::default(),
                    format!("loader panicked: {e}"),
                )],
            ))
        })
    }

    /// Instances of its components serving a request or call right now.
    pub fn instances_in_use(&self) -> u32 {
        self.components
            .iter()
            .map(|c| {
                c.limits
                    .concurrency
                    .saturating_sub(c.concurrency.available_permits() as u32)
            })
            .sum()
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Index of the component called `name`.
    pub(crate) fn component_index(&self, name: &str) -> Option<usize> {
        self.components.iter().position(|c| c.name == name)
    }

    /// Instantiates `component` and everything it links to exactly as a request
    /// would, then drops the instance: proves the component starts on this host
    /// (a readiness check) and lets benchmarks time the per-request cost.
    pub async fn probe(&self, component: &str) -> Result<(), ProbeError> {
        let index = self
            .component_index(component)
            .ok_or_else(|| ProbeError::NoSuchComponent(component.to_string()))?;
        let failed = |e: wasmtime::Error| ProbeError::Instantiate {
            component: component.to_string(),
            message: format!("{e:#}"),
        };
        let mut store = self.store_for(index).await.map_err(failed)?;
        self.components[index]
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// A store for one request to `entry`, with its links instantiated and its
    /// deadline set. The caller instantiates `entry` itself.
    pub(crate) async fn store_for(&self, entry: usize) -> wasmtime::Result<Store<InstanceState>> {
        let component = &self.components[entry];
        let mut slots = Vec::with_capacity(self.components.len());
        for c in &self.components {
            slots.push(Slot {
                caps: c.caps.instantiate().map_err(wasmtime::Error::from)?,
                remote: RemoteCalls::new(c.remote.clone()),
                memory_limit: c.limits.memory,
                name: c.name.clone(),
                instance: None,
            });
        }
        let mut store = Store::new(component.pre.engine(), InstanceState::new(slots, entry));
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        let deadline = tokio::time::Instant::now() + component.limits.timeout;
        let name = component.name.clone();
        let timeout = component.limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if tokio::time::Instant::now() >= deadline {
                return Err(wasmtime::Error::from(crate::Timeout {
                    component: name.clone(),
                    timeout,
                }));
            }
            Ok(UpdateDeadline::Yield(1))
        });
        for &dep in &component.plan {
            store.data_mut().enter(dep);
            let instance = self.components[dep]
                .pre
                .instantiate_async(&mut store)
                .await?;
            if let Some(slot) = store.data_mut().slot_mut(dep) {
                slot.instance = Some(instance);
            }
        }
        store.data_mut().enter(entry);
        Ok(store)
    }
}

fn prepare(
    engine: &HostEngine,
    services: &HostServices,
    manifest: Workload,
    file: &Path,
    remotes: &remote::RemoteBindings,
    fetched: Vec<artifacts::Fetched>,
) -> Result<Arc<LoadedWorkload>, ManifestError> {
    let fail = |diagnostics| ManifestError::new(file, diagnostics);
    let mut diagnostics = Vec::new();
    let mut fetched = fetched.into_iter();
    let mut pins = Vec::new();
    let max_memory = engine.settings().max_instance_memory;
    let mut compiled = Vec::new();
    for spec in &manifest.components {
        if spec.limits.memory > max_memory {
            diagnostics.push(Diagnostic::new(spec.pos, format!(
                "component `{}` asks for {} MiB of memory; this host allows at most {} MiB per instance",
                spec.name, spec.limits.memory >> 20, max_memory >> 20
            )));
        }
        let mut preopens = Ok(());
        for preopen in &spec.grants.preopens {
            if let Err(e) = services.sandbox.files.check(&preopen.host) {
                preopens = Err(format!("preopen {e}"));
            }
        }
        let quote = services.sandbox.files.may_quote();
        let compiled_one = preopens.and_then(|()| match (fetched.next(), &spec.source) {
            (Some(artifacts::Fetched::Bytes { bytes, pin }), source) => {
                pins.extend(pin);
                let name = PathBuf::from(source.to_string());
                compile::compile_bytes(engine, &bytes, &name, quote).map_err(|e| e.to_string())
            }
            (Some(artifacts::Fetched::Failed(message)), _) => Err(message),
            (_, ComponentSource::File(path)) => services
                .sandbox
                .files
                .check(path)
                .map_err(|e| e.to_string())
                .and_then(|path| compile::compile(engine, &path, quote).map_err(|e| e.to_string())),
            (_, source) => Err(format!("`{source}` was not fetched")),
        });
        match compiled_one {
            Ok(component) => compiled.push(resolve::Compiled { spec, component }),
            Err(message) => diagnostics.push(Diagnostic::new(
                spec.pos,
                format!("component `{}`: {message}", spec.name),
            )),
        }
    }
    if !diagnostics.is_empty() {
        return Err(fail(diagnostics));
    }
    let exports =
        exports::resolve(engine.engine(), &manifest, &compiled).unwrap_or_else(|mut problems| {
            diagnostics.append(&mut problems);
            Vec::new()
        });
    let mut components = Vec::new();
    for (index, c) in compiled.iter().enumerate() {
        let (linker, routed) =
            resolve::linker_for(engine.engine(), &compiled, index, remotes, &mut diagnostics);
        let pre = match linker.instantiate_pre(&c.component) {
            Ok(pre) => pre,
            Err(e) => {
                if diagnostics.is_empty() {
                    diagnostics.push(Diagnostic::new(
                        c.spec.pos,
                        format!("component `{}` cannot be linked: {e:#}", c.spec.name),
                    ));
                }
                continue;
            }
        };
        let proxy = c
            .component
            .component_type()
            .exports(engine.engine())
            .any(|(name, _)| name.starts_with(HTTP_HANDLER));
        let proxy = match proxy.then(|| ProxyPre::new(pre.clone())).transpose() {
            Ok(proxy) => proxy,
            Err(e) => {
                diagnostics.push(Diagnostic::new(
                    c.spec.pos,
                    format!(
                        "component `{}` exports `{HTTP_HANDLER}` of an unsupported version: {e:#}",
                        c.spec.name
                    ),
                ));
                None
            }
        };
        let remote = |binding: &trellis_manifest::Binding| {
            remotes.get(&c.spec.name, binding).map(|r| r.target.clone())
        };
        let cx = PrepareContext {
            workload: &manifest.name,
            component: c.spec,
            remote: &remote,
            sandbox: &services.sandbox,
            lattice: services.lattice.as_ref(),
        };
        let caps = match ComponentCapabilities::prepare(&services.capabilities, &cx) {
            Ok(caps) => caps,
            Err(problems) => {
                diagnostics.extend(problems.into_iter().map(|p| {
                    Diagnostic::new(c.spec.pos, format!("component `{}`: {p}", c.spec.name))
                }));
                continue;
            }
        };
        components.push(LoadedComponent {
            name: c.spec.name.clone(),
            limits: c.spec.limits,
            pre,
            proxy,
            caps,
            remote: routed,
            plan: link_plan(&manifest, index),
            concurrency: Arc::new(Semaphore::new(c.spec.limits.concurrency as usize)),
        });
    }
    for route in &manifest.routes {
        let handles_http = components
            .iter()
            .any(|c| c.name == route.component && c.proxy.is_some());
        if !handles_http && components.len() == manifest.components.len() {
            diagnostics.push(
                Diagnostic::new(
                    route.pos,
                    format!(
                        "route goes to component `{}`, which does not export `{HTTP_HANDLER}`",
                        route.component
                    ),
                )
                .with_hint("route only to components built for the wasi:http/proxy world"),
            );
        }
    }
    if !diagnostics.is_empty() {
        return Err(fail(diagnostics));
    }
    let shared = compiled.into_iter().map(|c| c.component).collect();
    Ok(Arc::new(LoadedWorkload {
        manifest,
        components,
        exports,
        _artifacts: pins,
        _compiled: shared,
    }))
}

/// The components `entry` links to, transitively, dependencies first.
fn link_plan(manifest: &Workload, entry: usize) -> Vec<usize> {
    fn visit(manifest: &Workload, index: usize, out: &mut Vec<usize>) {
        for binding in &manifest.components[index].bindings {
            if let BindingTarget::Component { name } = &binding.target
                && let Some(t) = manifest.components.iter().position(|c| &c.name == name)
                && !out.contains(&t)
            {
                visit(manifest, t, out);
                out.push(t);
            }
        }
    }
    let mut out = Vec::new();
    visit(manifest, entry, &mut out);
    out
}
