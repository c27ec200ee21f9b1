//! The Trellis host: runs workloads of WebAssembly components in wasmtime and
//! serves their HTTP routes. Embed it in a binary, or run `trellis dev`.
//!
//! ```no_run
//! use std::path::Path;
//! use trellis_host::{Host, EngineSettings, HttpLimits};
//! use trellis_manifest::Workload;
//!
//! # async fn run() -> anyhow::Result<()> {
//! let host = Host::new(EngineSettings::default())?;
//! let file = Path::new("examples/counter/workload.yaml");
//! let loaded = host.load(Workload::from_file(file)?, file).await?;
//! host.run(loaded).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! host.serve(listener, HttpLimits::default(), std::future::pending()).await;
//! # Ok(()) }
//! ```
#![deny(rustdoc::broken_intra_doc_links)]

pub mod capabilities;
pub mod control;
pub mod dashboard;
pub mod dev;
mod engine;
mod ingress;
pub mod lattice;
pub mod sandbox;
mod state;
pub mod telemetry;
mod workload;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use engine::{CompiledCache, EngineError, EngineSettings, HostEngine};
pub use ingress::{HttpLimits, RouteInfo};
pub use state::{InstanceState, MemoryLimitExceeded};
pub use workload::{CompileError, InvokeError, LoadedWorkload, ProbeError, read_binary};

use capabilities::HostServices;
use ingress::{RouteTable, SharedRoutes};
use trellis_manifest::{ManifestError, Workload};

/// The error a guest gets when its request outlives its timeout.
#[derive(Debug, thiserror::Error)]
#[error("component `{component}` exceeded its timeout of {timeout:?}")]
pub struct Timeout {
    /// The component that ran too long.
    pub component: String,
    /// Its limit.
    pub timeout: Duration,
}

/// A host: the engine, the running workloads and the routes into them.
pub struct Host {
    engine: HostEngine,
    services: HostServices,
    workloads: Mutex<BTreeMap<String, Arc<LoadedWorkload>>>,
    exports: Mutex<BTreeMap<String, workload::ExportServer>>,
    routes: SharedRoutes,
}

impl Host {
    /// A host with no workloads and no lattice (`trellis dev`).
    pub fn new(settings: EngineSettings) -> Result<Self, EngineError> {
        Self::with_lattice(settings, None)
    }

    /// A host whose `provider` and `workload` bindings call over `lattice`.
    pub fn with_lattice(
        settings: EngineSettings,
        lattice: Option<Arc<lattice::Lattice>>,
    ) -> Result<Self, EngineError> {
        Ok(Host {
            engine: HostEngine::new(settings)?,
            services: HostServices {
                lattice,
                ..HostServices::default()
            },
            workloads: Mutex::default(),
            exports: Mutex::default(),
            routes: Arc::new(RwLock::new(Arc::new(RouteTable::default()))),
        })
    }

    /// A host that runs manifests it did not write (`trellis host`): every
    /// workload stays inside `sandbox`, whatever its manifest grants. By
    /// default (`trellis dev`) the sandbox is open.
    pub fn sandboxed(mut self, sandbox: sandbox::Sandbox) -> Self {
        self.services.sandbox = Arc::new(sandbox);
        self
    }

    /// A host that fetches registry and lattice sources through `fetcher`
    /// (its cache, its lattice, the signers it trusts).
    pub fn with_artifacts(mut self, fetcher: trellis_artifacts::Fetcher) -> Self {
        self.services.artifacts = Arc::new(fetcher);
        self
    }

    /// Compiles and links `manifest` without running it; `file` names it in errors.
    pub async fn load(
        &self,
        manifest: Workload,
        file: &Path,
    ) -> Result<Arc<LoadedWorkload>, ManifestError> {
        LoadedWorkload::load(&self.engine, &self.services, manifest, file).await
    }

    /// Starts serving `workload` (its routes, and on a lattice its exports and
    /// the links its providers watch), replacing any running version of the same name. Requests and calls already
    /// in flight finish on the version they started on.
    pub async fn run(&self, workload: Arc<LoadedWorkload>) -> Result<(), lattice::LatticeError> {
        self.run_all(vec![workload]).await
    }

    /// [`Host::run`] for many workloads at once: the routing table is rebuilt
    /// once for all of them (a host started with ten thousand `--manifest`s).
    pub async fn run_all(
        &self,
        workloads: Vec<Arc<LoadedWorkload>>,
    ) -> Result<(), lattice::LatticeError> {
        let mut manifests = Vec::with_capacity(workloads.len());
        let mut served = Vec::with_capacity(workloads.len());
        for workload in workloads {
            let exports = self.exports_of(&workload).await?;
            manifests.push(workload.manifest.clone());
            served.push((workload, exports));
        }
        {
            let mut workloads = self.workloads.lock().unwrap_or_else(|p| p.into_inner());
            let mut servers = self.exports.lock().unwrap_or_else(|p| p.into_inner());
            for (workload, exports) in served {
                let name = workload.name().to_string();
                workloads.insert(name.clone(), workload);
                match exports {
                    Some(server) => servers.insert(name, server),
                    None => servers.remove(&name),
                };
            }
            self.publish(&workloads);
        }
        if let Some(lattice) = &self.services.lattice {
            for manifest in &manifests {
                lattice.links().put(manifest).await;
            }
        }
        Ok(())
    }

    /// The server of `workload`'s exports, subscribed before an old version's are dropped.
    async fn exports_of(
        &self,
        workload: &Arc<LoadedWorkload>,
    ) -> Result<Option<workload::ExportServer>, lattice::LatticeError> {
        let name = workload.name().to_string();
        Ok(match &self.services.lattice {
            Some(lattice) => workload.serve_exports(lattice).await?,
            None => {
                if !workload.manifest.exports.is_empty() {
                    tracing::info!(workload = %name, "exports are served only on a lattice (`trellis host`)");
                }
                None
            }
        })
    }

    /// Stops serving the workload called `name`; false if there was none.
    pub fn stop(&self, name: &str) -> bool {
        let mut workloads = self.workloads.lock().unwrap_or_else(|p| p.into_inner());
        let removed = workloads.remove(name).is_some();
        self.publish(&workloads);
        drop(workloads);
        self.exports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(lattice) = self.services.lattice.clone() {
            let name = name.to_string();
            tokio::spawn(async move { lattice.links().remove(&name).await });
        }
        removed
    }

    /// Names of the running workloads.
    pub fn workload_names(&self) -> Vec<String> {
        let workloads = self.workloads.lock().unwrap_or_else(|p| p.into_inner());
        workloads.keys().cloned().collect()
    }

    /// Instances serving a request or call right now, across all workloads.
    pub fn instances_in_use(&self) -> u32 {
        let workloads = self.workloads.lock().unwrap_or_else(|p| p.into_inner());
        workloads.values().map(|w| w.instances_in_use()).sum()
    }

    /// Most instances this host runs at once.
    pub fn max_instances(&self) -> u32 {
        self.engine.settings().max_instances
    }

    /// Every route, in match order.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .routes()
    }

    /// Serves HTTP on `listener` under `limits` until `shutdown` resolves,
    /// then drains in-flight requests (within `limits.drain_timeout`).
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        limits: HttpLimits,
        shutdown: impl Future<Output = ()>,
    ) {
        ingress::serve(listener, self.routes.clone(), limits, shutdown).await
    }

    fn publish(&self, workloads: &BTreeMap<String, Arc<LoadedWorkload>>) {
        let table = Arc::new(RouteTable::new(workloads.values()));
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = table;
    }
}
