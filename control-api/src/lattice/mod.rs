//! How the processes of one lattice find each other on NATS: subject names, the
//! headers every wRPC call carries, the connection options every binary takes, and
//! the JSON that providers and hosts announce themselves with.

mod announce;
mod bounded;
mod connect;
pub mod headers;
mod subjects;

pub use announce::{HostHeartbeat, ProviderInfo};
pub use bounded::{BoundedIncoming, BoundedServer, IDLE_LIMIT};
pub use connect::{ConnectError, NatsArgs};
pub use subjects::{DEFAULT_LATTICE, Subjects};
