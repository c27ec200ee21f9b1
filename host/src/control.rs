//! The control API (`trellis:control/host`) as this host serves it, at
//! `trellis.<lattice>.host.<id>`: what the scheduler and the CLI use to start,
//! stop and inspect workloads. Every call gets a typed reply, and calls run
//! concurrently, so a slow start never delays a status.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use tracing::Instrument as _;
use trellis_control_api::{Refusal, WorkloadState, WorkloadStatus, host_of};
use trellis_lattice::{BoundedServer, ServerLimits};
use trellis_manifest::Workload;
use wrpc_transport_nats::NatsContext;

use crate::Host;
use crate::lattice::{Lattice, LatticeError};

/// The `agent` world generated from the WIT: the handler trait a control API server
/// implements and the `serve` function that subscribes it. Public so that tools
/// (the placement benchmark's simulated hosts) serve exactly the same API.
#[allow(missing_docs)] // generated; the WIT carries the docs
pub mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../wit/deps/control",
        world: "trellis:control/agent",
        with: {
            "trellis:control/types@0.1.0": trellis_control_api::bindings::trellis::control::types,
        },
    });
}

use bindings::exports::trellis::control::host::{self as api, HostInfo};

/// What this host says about itself in `describe`.
pub struct Identity {
    /// Its ID, the first part of every workload ID addressed to it.
    pub id: String,
    /// Its placement labels.
    pub labels: BTreeMap<String, String>,
}

/// One workload ID's record on this host.
struct Entry {
    name: String,
    state: WorkloadState,
    last_error: Option<String>,
}

/// Serves the control API for `host`.
#[derive(Clone)]
pub struct ControlAgent {
    host: Arc<Host>,
    identity: Arc<Identity>,
    lattice: String,
    /// Where relative component paths in manifests resolve.
    base: PathBuf,
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl ControlAgent {
    /// An agent for `host`, known on the lattice as `identity`.
    pub fn new(host: Arc<Host>, identity: Identity, lattice: &Lattice) -> Self {
        ControlAgent {
            host,
            identity: Arc::new(identity),
            lattice: lattice.name().to_string(),
            base: std::env::current_dir().unwrap_or_default(),
            entries: Arc::default(),
        }
    }

    /// Records a workload this host was started with (`--manifest`), under `id`.
    pub fn adopt(&self, id: String, name: &str) {
        self.lock().insert(
            id,
            Entry {
                name: name.to_string(),
                state: WorkloadState::Running,
                last_error: None,
            },
        );
    }

    /// Subscribes to the API's subjects, then returns the loop that answers them
    /// (each call in its own task) until the lattice connection ends. Calls made
    /// after this returns are answered.
    pub async fn serve(
        self,
        lattice: &Lattice,
    ) -> Result<impl Future<Output = ()> + Send + 'static, LatticeError> {
        let prefix = lattice.subjects().host(&self.identity.id);
        let client =
            wrpc_transport_nats::Client::new(lattice.nats().clone(), prefix.as_str(), None)
                .await
                .map_err(|source| LatticeError::Wrpc {
                    what: "make the control API's client",
                    source,
                })?;
        let signatures =
            trellis_control_api::host_signatures().map_err(|e| LatticeError::Wrpc {
                what: "read the control API's signatures",
                source: e.into(),
            })?;
        let server = BoundedServer::new(client, Arc::new(signatures), ServerLimits::default());
        let invocations =
            bindings::serve(&server, self)
                .await
                .map_err(|source| LatticeError::Wrpc {
                    what: "serve the control API",
                    source,
                })?;
        tracing::info!(%prefix, "serving the control API");
        Ok(async move {
            let mut calls = futures::stream::select_all(
                invocations
                    .into_iter()
                    .map(|(_, name, stream)| stream.map(move |call| (name, call))),
            );
            while let Some((name, call)) = calls.next().await {
                match call {
                    Ok(call) => {
                        tokio::spawn(async move {
                            if let Err(e) = call.await {
                                tracing::warn!(call = name, "control call failed: {e:#}");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(call = name, "bad control invocation: {e:#}"),
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self, id: &str, entry: &Entry) -> WorkloadStatus {
        let routes = self
            .host
            .routes()
            .into_iter()
            .filter(|r| r.workload == entry.name)
            .map(|r| format!("{}{} -> {}", r.host, r.path, r.component))
            .collect();
        WorkloadStatus {
            id: id.to_string(),
            name: entry.name.clone(),
            state: entry.state,
            routes,
            last_error: entry.last_error.clone(),
        }
    }

    /// Refuses an ID that is not addressed to this host.
    fn check_host(&self, id: &str) -> Result<(), Refusal> {
        match host_of(id) {
            Some(host) if host == self.identity.id => Ok(()),
            Some(host) => Err(Refusal::WrongHost(format!(
                "workload `{id}` is for host `{host}`; this is host `{}`",
                self.identity.id
            ))),
            None => Err(Refusal::WrongHost(format!(
                "`{id}` is not a workload ID: write `<host-id>:<name>`, e.g. `{}:{id}`",
                self.identity.id
            ))),
        }
    }

    fn settle(
        &self,
        id: &str,
        name: &str,
        result: Result<(), StartError>,
    ) -> Result<WorkloadStatus, Refusal> {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(id) else {
            // Stopped while it loaded. If it went live, it replaced any other version
            // of its name, so nothing of that name is left running.
            if result.is_ok() {
                self.host.stop(name);
                entries.retain(|_, e| e.name != name);
            }
            return Err(Refusal::NotFound(format!(
                "workload `{id}` was stopped while it started"
            )));
        };
        match result {
            Ok(()) => {
                entry.state = WorkloadState::Running;
                entry.last_error = None;
                let name = entry.name.clone();
                let status = self.status(id, entry);
                // The new version replaced any other ID of the same name on this host.
                entries.retain(|other, e| other == id || e.name != name);
                Ok(status)
            }
            Err(error) => {
                let message = error.to_string();
                entry.state = WorkloadState::Failed;
                entry.last_error = Some(message.clone());
                Err(Refusal::StartFailed(message))
            }
        }
    }
}

/// The most failed entries a host keeps (for `inspect` and the scheduler);
/// past it the oldest-named are forgotten, so failed starts cannot grow it
/// without bound.
const MAX_FAILED: usize = 256;

fn forget_old_failures(entries: &mut BTreeMap<String, Entry>) {
    let failed: Vec<String> = entries
        .iter()
        .filter(|(_, e)| e.state == WorkloadState::Failed)
        .map(|(id, _)| id.clone())
        .collect();
    for id in failed
        .iter()
        .take(failed.len().saturating_sub(MAX_FAILED - 1))
    {
        entries.remove(id);
    }
}

type Reply<T> = anyhow::Result<T>;

/// Why a started workload did not come to serve.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// It did not compile or link.
    #[error(transparent)]
    Load(#[from] trellis_manifest::ManifestError),
    /// A component did not instantiate.
    #[error(transparent)]
    Unhealthy(#[from] crate::ProbeError),
    /// Its exports could not be served.
    #[error(transparent)]
    Serve(#[from] LatticeError),
}

/// The readiness check of a new version: every component instantiates on this
/// host exactly as a request would make it.
async fn healthy(loaded: &crate::LoadedWorkload) -> Result<(), crate::ProbeError> {
    for component in &loaded.manifest.components {
        loaded.probe(&component.name).await?;
    }
    Ok(())
}

impl ControlAgent {
    async fn start_workload(
        &self,
        id: String,
        manifest: String,
    ) -> Reply<Result<WorkloadStatus, Refusal>> {
        if let Err(refusal) = self.check_host(&id) {
            return Ok(Err(refusal));
        }
        let file = PathBuf::from(format!("<workload {id}>"));
        let workload = match Workload::from_yaml(&manifest, &file, &self.base) {
            Ok(workload) => workload,
            Err(e) => return Ok(Err(Refusal::Invalid(e.to_string()))),
        };
        {
            let mut entries = self.lock();
            if let Some(entry) = entries.get(&id)
                && entry.state != WorkloadState::Failed
            {
                // A repeated start returns the existing state; a failed one is tried again.
                return Ok(Ok(self.status(&id, entry)));
            }
            forget_old_failures(&mut entries);
            entries.insert(
                id.clone(),
                Entry {
                    name: workload.name.clone(),
                    state: WorkloadState::Starting,
                    last_error: None,
                },
            );
        }
        tracing::info!(workload = %workload.name, %id, "starting");
        let name = workload.name.clone();
        let started: Result<(), StartError> = async {
            let loaded = self.host.load(workload, Path::new(&file)).await?;
            // Only a version that instantiates replaces the running one.
            healthy(&loaded).await?;
            Ok(self.host.run(loaded).await?)
        }
        .await;
        if let Err(e) = &started {
            tracing::warn!(%id, "start failed: {e}");
        }
        Ok(self.settle(&id, &name, started))
    }

    fn stop_workload(&self, id: &str) -> Reply<Result<(), Refusal>> {
        let id = id.to_string();
        if let Err(refusal) = self.check_host(&id) {
            return Ok(Err(refusal));
        }
        let Some(entry) = self.lock().remove(&id) else {
            return Ok(Err(Refusal::NotFound(format!(
                "no workload `{id}` on host `{}`",
                self.identity.id
            ))));
        };
        tracing::info!(workload = %entry.name, %id, "stopping");
        // A host runs one version per name: only a running entry is that version.
        // Forgetting a failed or starting one must not stop the version serving.
        if entry.state == WorkloadState::Running {
            self.host.stop(&entry.name);
        }
        Ok(Ok(()))
    }

    fn list(&self) -> Vec<WorkloadStatus> {
        let entries = self.lock();
        entries
            .iter()
            .map(|(id, entry)| self.status(id, entry))
            .collect()
    }
}

/// The server span of control call `func`, continuing the caller's trace.
fn control_span(func: &str, cx: &NatsContext) -> tracing::Span {
    trellis_lattice::trace::server_span(CONTROL_INTERFACE, func, cx.headers.as_ref())
}

/// The control API's interface, as spans name it.
const CONTROL_INTERFACE: &str = "trellis:control/host";

impl api::Handler<NatsContext> for ControlAgent {
    async fn start(
        &self,
        cx: NatsContext,
        id: String,
        manifest: String,
    ) -> Reply<Result<WorkloadStatus, Refusal>> {
        let span = control_span("start", &cx);
        self.start_workload(id, manifest).instrument(span).await
    }

    async fn stop(&self, cx: NatsContext, id: String) -> Reply<Result<(), Refusal>> {
        let _span = control_span("stop", &cx).entered();
        self.stop_workload(&id)
    }

    async fn workloads(&self, cx: NatsContext) -> Reply<Vec<WorkloadStatus>> {
        let _span = control_span("workloads", &cx).entered();
        Ok(self.list())
    }

    async fn inspect(
        &self,
        _cx: NatsContext,
        id: String,
    ) -> Reply<Result<WorkloadStatus, Refusal>> {
        if let Err(refusal) = self.check_host(&id) {
            return Ok(Err(refusal));
        }
        let entries = self.lock();
        Ok(match entries.get(&id) {
            Some(entry) => Ok(self.status(&id, entry)),
            None => Err(Refusal::NotFound(format!(
                "no workload `{id}` on host `{}`",
                self.identity.id
            ))),
        })
    }

    async fn describe(&self, _cx: NatsContext) -> Reply<HostInfo> {
        Ok(HostInfo {
            id: self.identity.id.clone(),
            lattice: self.lattice.clone(),
            labels: self
                .identity
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_instances: self.host.max_instances(),
            workloads: self.list(),
        })
    }
}
