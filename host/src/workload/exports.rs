//! A workload's exports served over wRPC, so `workload` bindings elsewhere on the
//! lattice can call them: one queue-group subscription per exported function at
//! `trellis.<lattice>.workload.<name>`, and a fresh instance per call, exactly as
//! for an HTTP request (same limits, same concurrency bound).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use tracing::Instrument as _;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, Type};
use wrpc_transport::Serve as _;

use super::LoadedWorkload;
use crate::lattice::{Lattice, LatticeError};
use trellis_lattice::lean::{DualServer, LeanOutgoing};
use trellis_lattice::{BoundedServer, ServerLimits, headers};
use trellis_manifest::{Diagnostic, ImportName, Workload};

/// One exported interface, resolved against its component when the workload loads.
pub(crate) struct ServedExport {
    component: usize,
    /// The export's full name, which is also the wRPC instance name.
    instance: String,
    functions: Vec<ServedFunction>,
}

struct ServedFunction {
    name: String,
    index: ComponentExportIndex,
    signature: trellis_wire::Signature,
    params: Vec<Type>,
    results: Vec<Type>,
}

/// Resolves `manifest`'s exports against the compiled components, or says why not.
pub(crate) fn resolve(
    engine: &Engine,
    manifest: &Workload,
    components: &[super::resolve::Compiled<'_>],
) -> Result<Vec<ServedExport>, Vec<Diagnostic>> {
    let mut served = Vec::new();
    let mut problems = Vec::new();
    for export in &manifest.exports {
        let Some(index) = components
            .iter()
            .position(|c| c.spec.name == export.component)
        else {
            continue; // the manifest's own validation named it
        };
        match resolve_one(engine, &components[index].component, &export.interface) {
            Ok((instance, functions)) => served.push(ServedExport {
                component: index,
                instance,
                functions,
            }),
            Err(message) => problems.push(Diagnostic::new(
                export.pos,
                format!("component `{}` {message}", export.component),
            )),
        }
    }
    if problems.is_empty() {
        Ok(served)
    } else {
        Err(problems)
    }
}

fn resolve_one(
    engine: &Engine,
    component: &Component,
    interface: &str,
) -> Result<(String, Vec<ServedFunction>), String> {
    let ty = component.component_type();
    let (instance, item) = ty
        .exports(engine)
        .find(|(name, _)| ImportName::parse(name).unversioned == interface)
        .ok_or_else(|| format!("does not export `{interface}`"))?;
    let ComponentItem::ComponentInstance(item) = item else {
        return Err(format!("exports `{instance}`, which is not an interface"));
    };
    let instance_index = component
        .get_export_index(None, instance)
        .ok_or_else(|| format!("does not export `{instance}`"))?;
    let mut functions = Vec::new();
    for (name, item) in item.exports(engine) {
        match item {
            ComponentItem::ComponentFunc(func) => {
                let index = component
                    .get_export_index(Some(&instance_index), name)
                    .ok_or_else(|| format!("does not export `{instance}#{name}`"))?;
                functions.push(served_function(name, index, &func));
            }
            ComponentItem::Type(_) => {}
            _ => {
                return Err(format!(
                    "exports `{instance}#{name}`, which is not a function; workload exports carry functions of plain values"
                ));
            }
        }
    }
    Ok((instance.to_string(), functions))
}

fn served_function(
    name: &str,
    index: ComponentExportIndex,
    func: &ComponentFunc,
) -> ServedFunction {
    ServedFunction {
        name: name.to_string(),
        index,
        signature: super::shapes::signature(func),
        params: func.params().map(|(_, ty)| ty).collect(),
        results: func.results().collect(),
    }
}

/// The subscriptions of one running workload version; dropping it stops them.
/// Calls already being answered finish.
pub(crate) struct ExportServer {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ExportServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl LoadedWorkload {
    /// Starts serving this version's exports on `lattice`; `None` if it has none.
    pub(crate) async fn serve_exports(
        self: &Arc<Self>,
        lattice: &Lattice,
    ) -> Result<Option<ExportServer>, LatticeError> {
        if self.exports.is_empty() {
            return Ok(None);
        }
        let prefix = lattice.subjects().workload(self.name());
        // Replicas share the load through one queue group per workload; calls
        // come over wrpc-transport-nats or as `trellis-rr/1` requests.
        let standard = wrpc_transport_nats::Client::new(
            lattice.nats().clone(),
            prefix.as_str(),
            Some(prefix.as_str().into()),
        )
        .await
        .map_err(|source| LatticeError::Wrpc {
            what: "make the exports' server",
            source,
        })?;
        let mut signatures = trellis_wire::Signatures::default();
        for export in &self.exports {
            for function in &export.functions {
                signatures.insert(&export.instance, &function.name, function.signature.clone());
            }
        }
        let client = DualServer::new(
            BoundedServer::new(standard, Arc::new(signatures), ServerLimits::default()),
            lattice.nats().clone(),
            &prefix,
            &prefix,
        );
        let mut tasks = Vec::new();
        for (e, export) in self.exports.iter().enumerate() {
            for (f, function) in export.functions.iter().enumerate() {
                let no_async_params: [Box<[Option<usize>]>; 0] = [];
                let invocations = client
                    .serve(&export.instance, &function.name, no_async_params)
                    .await
                    .map_err(|source| LatticeError::Wrpc {
                        what: "serve an export",
                        source,
                    })?;
                let workload = self.clone();
                tasks.push(tokio::spawn(async move {
                    let mut invocations = std::pin::pin!(invocations);
                    while let Some(invocation) = invocations.next().await {
                        match invocation {
                            Ok((cx, tx, rx)) => {
                                tokio::spawn(workload.clone().answer(e, f, cx.headers, tx, rx));
                            }
                            Err(err) => tracing::warn!(
                                workload = %workload.name(),
                                "bad wRPC invocation of an export: {err:#}"
                            ),
                        }
                    }
                }));
            }
        }
        tracing::info!(workload = %self.name(), prefix = %prefix, "serving exports");
        Ok(Some(ExportServer { tasks }))
    }

    /// Answers one call of function `f` of export `e` in a fresh instance;
    /// a call the component cannot take (busy, trapped, timed out) fails at
    /// once with a typed reply.
    async fn answer<I, O>(
        self: Arc<Self>,
        e: usize,
        f: usize,
        cx: Option<async_nats::HeaderMap>,
        tx: LeanOutgoing<O>,
        rx: I,
    ) where
        I: tokio::io::AsyncRead + wrpc_transport::Index<I> + Send + Sync + Unpin + 'static,
        O: tokio::io::AsyncWrite + wrpc_transport::Index<O> + Send + Sync + Unpin + 'static,
    {
        let export = &self.exports[e];
        let function = &export.functions[f];
        let component = &self.components[export.component];
        let header = |name: &str| {
            cx.as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let sampled = trellis_process::sample(trellis_lattice::trace::caller_decision(cx.as_ref()));
        let span = trellis_process::entry_span!(
            sampled,
            "export",
            workload = %self.name(),
            component = %component.name,
            function = %format!("{}.{}", export.instance, function.name),
            caller = %header(headers::WORKLOAD).unwrap_or_default(),
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            rpc.system = tracing::field::Empty,
        );
        if sampled {
            span.record(
                "otel.name",
                format!("{}/{}", export.instance, function.name),
            );
            span.record("otel.kind", "server");
            span.record("rpc.system", "wrpc");
            trellis_lattice::trace::continue_from(&span, cx.as_ref());
        }
        // The call takes the results stream once it has an instance; a failure
        // (before that, or a timeout after) ends the call with a typed reply.
        let failer = tx.failer();
        let mut results = Some(tx);
        let call = self.invoke(export.component, async |store, instance| {
            let func = instance
                .get_func(&mut *store, function.index)
                .ok_or_else(|| {
                    wasmtime::format_err!("the function is missing from its instance")
                })?;
            let Some(tx) = results.take() else {
                return Err(wasmtime::format_err!("the call's results stream is gone"));
            };
            wrpc_runtime_wasmtime::call(
                &mut *store,
                rx,
                tx,
                &[],
                &HashMap::new(),
                &[],
                function.params.iter(),
                &function.results,
                func,
            )
            .await
            // The guest's own failure (a trap, its timeout) keeps its type.
            .map_err(|e| match e {
                wrpc_runtime_wasmtime::CallError::Call(guest) => guest,
                other => wasmtime::Error::from(other),
            })
        });
        let outcome = call.instrument(span.clone()).await;
        let _enter = span.enter();
        match outcome {
            Ok(()) => tracing::debug!("answered"),
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                tracing::warn!(%error, "call failed");
                failer.fail(error.failure());
            }
        }
    }
}
