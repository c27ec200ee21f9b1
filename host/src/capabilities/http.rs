//! `wasi:http` types and outgoing requests, from wasmtime-wasi-http.
//!
//! Incoming requests are the ingress's job (`crate::ingress`); this module
//! links the interfaces a component imports, and sends its outgoing requests
//! only to the hosts its `grants.http` lists (by default any under `trellis
//! dev` and none under `trellis host`), so a component cannot reach
//! loopback or a metadata address unless granted.

use std::sync::Arc;

use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::bindings::http as wasi_http;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::p2::{
    HttpResult, WasiHttp, WasiHttpCtxView, WasiHttpHooks, WasiHttpView, default_send_request,
};

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::state::InstanceState;

/// `wasi:http`: a context per store, and the component's outgoing grant.
pub(crate) struct Http;

/// Which hosts one component's outgoing requests may reach: its grants,
/// within the host's ceiling.
#[derive(Clone)]
pub(crate) struct Gate {
    grants: Arc<trellis_manifest::Grants>,
    sandbox: Arc<crate::sandbox::Sandbox>,
}

impl WasiHttpHooks for Gate {
    fn send_request(
        &mut self,
        mut request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        let uri = request.uri();
        // A URL without a port means the scheme's.
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed = uri
            .host()
            .is_some_and(|host| self.sandbox.http.allows(&self.grants, host, port));
        if !allowed {
            tracing::warn!(authority = ?uri.authority().map(|a| a.as_str()), "outgoing HTTP denied: not in grants.http or the host's --allow-http");
            return Err(ErrorCode::HttpRequestDenied.into());
        }
        // The callee continues the trace of the request this one serves.
        crate::telemetry::inject_http(request.headers_mut());
        Ok(default_send_request(request, config))
    }
}

/// A store's `wasi:http` state.
pub(crate) struct HttpState {
    ctx: WasiHttpCtx,
    gate: Gate,
}

impl Capability for Http {
    const INTERFACES: &'static [BuiltinInterface] = INTERFACES;
    type Host = ();
    type Prepared = Gate;
    type State = HttpState;

    fn prepare(_: &(), cx: &PrepareContext<'_>) -> Result<Gate, CapabilityError> {
        Ok(Gate {
            grants: Arc::new(cx.component.grants.clone()),
            sandbox: cx.sandbox.clone(),
        })
    }

    fn instantiate(gate: &Gate) -> Result<HttpState, CapabilityError> {
        Ok(HttpState {
            ctx: WasiHttpCtx::new(),
            gate: gate.clone(),
        })
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (caps, table) = self.caps_and_table();
        let HttpState { ctx, gate } = &mut caps.http;
        WasiHttpCtxView {
            ctx,
            table,
            hooks: gate,
        }
    }
}

type S = InstanceState;

/// The `wasi:http` interfaces a component may import.
const INTERFACES: &[BuiltinInterface] = &[
    BuiltinInterface::new("wasi:http/types", |l| {
        wasi_http::types::add_to_linker::<S, WasiHttp>(l, &Default::default(), S::http)
    }),
    BuiltinInterface::new("wasi:http/outgoing-handler", |l| {
        wasi_http::outgoing_handler::add_to_linker::<S, WasiHttp>(l, S::http)
    }),
];
