//! Write a Trellis capability provider: a standalone wRPC server for WIT interfaces
//! on a NATS lattice, shared by many workloads.
//!
//! A provider generates its server with `wit_bindgen_wrpc::generate!`, then
//! hands its handler to [`Provider::main`], which does what every provider
//! process does alike: logging, arguments, the connection, serving, and a
//! drain on SIGTERM:
//!
//! ```no_run
//! # async fn serve(_: &trellis_lattice::lean::DualServer) -> anyhow::Result<trellis_provider_sdk::Invocations> { Ok(Vec::new()) }
//! use trellis_provider_sdk::{Description, Provider};
//!
//! # async fn run() -> anyhow::Result<()> {
//! // In a provider crate: `trellis_provider_sdk::describe!("kv", INTERFACES)`,
//! // with `trellis_wire::build_script("../../wit/deps/keyvalue", "provider")` in build.rs.
//! let description = Description {
//!     name: "kv",
//!     version: env!("CARGO_PKG_VERSION"),
//!     about: "wasi:keyvalue on something",
//!     interfaces: &["wasi:keyvalue/store@0.2.0-draft"],
//!     signatures: "{}",
//! };
//! Provider::main(
//!     description,
//!     async |provider, _args| serve(provider.wrpc()).await, // bindings::serve(provider.wrpc(), handler)
//! )
//! .await
//! # }
//! ```
//!
//! Every payload is checked against the signatures before the generated
//! decoders see it, and calls in flight are bounded (see
//! [`trellis_lattice::BoundedServer`]).
//!
//! Every call's [`Caller`] says which workload, component and binding it came from,
//! with the binding's config, so one provider keeps many workloads apart.

mod caller;
mod discovery;
mod links;
mod metrics;
mod provider;
mod scope;

pub use caller::{Caller, CallerError};
pub use links::LinkChange;
pub use provider::{Description, Invocations, Provider, ProviderArgs};
pub use scope::{NameError, check_name};
pub use trellis_lattice as lattice;
pub use trellis_lattice::{BoundedIncoming, BoundedServer, ServerLimits};
pub use trellis_process::init_logging;
pub use wrpc_transport_nats::NatsContext;
