//! How the processes of one lattice find each other on NATS: subject names, the
//! headers every wRPC call carries, the connection options every binary takes, and
//! the JSON that providers and hosts announce themselves with.

mod announce;
mod bounded;
mod buckets;
mod connect;
pub mod headers;
pub mod lean;
mod links;
mod subjects;

pub use announce::{HostHeartbeat, ProviderInfo};
pub use bounded::{BoundedIncoming, BoundedServer, IDLE_LIMIT};
pub use buckets::open_bucket;
pub use connect::{ConnectError, NatsArgs};
pub use links::{LINKS_BUCKET, Link, LinkedBinding, links_bucket, provider_links};
pub use subjects::{DEFAULT_LATTICE, Subjects};
