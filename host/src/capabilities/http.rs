//! `wasi:http` types and outgoing requests, from wasmtime-wasi-http.
//!
//! Incoming requests are the ingress's job (`crate::ingress`); this module only
//! links the interfaces a component imports.

use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::bindings::http as wasi_http;
use wasmtime_wasi_http::p2::{WasiHttp, WasiHttpCtxView, WasiHttpView, default_hooks};

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::state::InstanceState;

/// `wasi:http`: a context per store; nothing to prepare.
pub(crate) struct Http;

impl Capability for Http {
    const INTERFACES: &'static [BuiltinInterface] = INTERFACES;
    type Host = ();
    type Prepared = ();
    type State = WasiHttpCtx;

    fn prepare(_: &(), _: &PrepareContext<'_>) -> Result<(), CapabilityError> {
        Ok(())
    }

    fn instantiate(_: &()) -> Result<WasiHttpCtx, CapabilityError> {
        Ok(WasiHttpCtx::new())
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (caps, table) = self.caps_and_table();
        WasiHttpCtxView {
            ctx: &mut caps.http,
            table,
            hooks: default_hooks(),
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
