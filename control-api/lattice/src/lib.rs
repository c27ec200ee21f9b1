//! How the processes of one lattice find each other on NATS: subject names, the
//! headers every wRPC call carries, the connection options every binary takes, and
//! the JSON that providers and hosts announce themselves with, and the two wRPC
//! transports (wrpc-transport-nats and [`lean`], `trellis-rr/1`).
//!
//! It is everything a provider needs and nothing more: no manifest parser, no
//! scheduler. Every other Trellis crate builds on it; it depends on none of them.
//!
//! ```
//! use trellis_lattice::Subjects;
//!
//! let subjects = Subjects::new("edge");
//! assert_eq!(subjects.provider("keyvalue"), "trellis.edge.provider.keyvalue");
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![doc(test(attr(deny(warnings))))]

mod announce;
mod bounded;
mod buckets;
mod connect;
mod failure;
pub mod headers;
pub mod lean;
mod links;
pub mod micro;
mod names;
mod roles;
mod secrets;
mod subjects;
pub mod trace;

pub use announce::{HEARTBEAT_INTERVAL, HostHeartbeat, PROVIDER_HEARTBEAT_INTERVAL, ProviderInfo};
pub use bounded::{BoundedIncoming, BoundedServer, Held, ServerLimits};
pub use buckets::{BucketError, open_bucket};
pub use connect::{ConnectError, NatsArgs};
pub use failure::{CallErrorKind, Failure};
pub use links::{LINK_TTL, LINKS_BUCKET, Link, LinkedBinding, links_bucket, provider_links};
pub use names::{InvalidName, NameKind, check_name};
pub use roles::Role;
pub use secrets::{
    MAX_SECRET_BYTES, SECRET_TIMEOUT, SECRETS_BUCKET, Sealed, SecretError, SecretReply,
    SecretRequest, fetch_secret, read_xkey,
};
pub use subjects::{ARTIFACTS_BUCKET, DEFAULT_LATTICE, SIGNATURES_BUCKET, Subjects};
