//! `wasi:http` types and outgoing requests, from wasmtime-wasi-http.
//!
//! Incoming requests are the ingress's job (`crate::ingress`); this module only
//! links the interfaces a component imports.

use wasmtime_wasi_http::p2::bindings::http as wasi_http;
use wasmtime_wasi_http::p2::{WasiHttp, WasiHttpView};

use super::BuiltinInterface;
use crate::state::InstanceState;

type S = InstanceState;

/// The `wasi:http` interfaces a component may import.
pub(crate) const INTERFACES: &[BuiltinInterface] = &[
    BuiltinInterface::new("wasi:http/types", |l| {
        wasi_http::types::add_to_linker::<S, WasiHttp>(l, &Default::default(), S::http)
    }),
    BuiltinInterface::new("wasi:http/outgoing-handler", |l| {
        wasi_http::outgoing_handler::add_to_linker::<S, WasiHttp>(l, S::http)
    }),
];
