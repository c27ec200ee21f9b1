//! Write a Trellis capability provider: a standalone wRPC server for WIT interfaces
//! on a NATS lattice, shared by many workloads.
//!
//! A provider generates its server with `wit_bindgen_wrpc::generate!`, then:
//!
//! ```no_run
//! # async fn run(invocations: trellis_provider_sdk::Invocations) -> anyhow::Result<()> {
//! use clap::Parser;
//! use trellis_provider_sdk::{Provider, ProviderArgs};
//!
//! let args = ProviderArgs::parse();
//! let provider = Provider::connect(&args, "kv", env!("CARGO_PKG_VERSION"), &["wasi:keyvalue/store@0.2.0-draft"]).await?;
//! // let invocations = bindings::serve(provider.wrpc(), handler).await?;
//! provider.run(invocations).await
//! # }
//! ```
//!
//! Every call's [`Caller`] says which workload, component and binding it came from,
//! with the binding's config, so one provider keeps many workloads apart.

mod caller;
mod links;
mod provider;
mod scope;

pub use caller::{Caller, CallerError};
pub use links::LinkChange;
pub use provider::{Invocations, Provider, ProviderArgs};
pub use scope::{WorkloadScope, check_name};
pub use trellis_lattice as lattice;
pub use trellis_lattice::{BoundedIncoming, BoundedServer, IDLE_LIMIT};
pub use trellis_process::init_logging;
pub use wrpc_transport_nats::NatsContext;
