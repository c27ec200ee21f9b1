//! `trellis-rr/1`: a lean wRPC transport for calls without async values.
//!
//! wrpc-transport-nats spends five NATS messages on every call (invocation,
//! handshake, parameter end, results, result end). A call whose parameters and
//! results are plain values needs two: this transport sends the encoded
//! parameters as one NATS request and gets the encoded results as its reply,
//! with the same wRPC value encoding, so generated bindings use it unchanged.
//!
//! Providers built with the SDK serve both protocols and announce this one in
//! their info; a host uses it only with a provider that announces it, and falls
//! back to wrpc-transport-nats for anything else (calls with streams, parameters
//! larger than the server's `max_payload`), so any wRPC peer still works.

mod arrivals;
mod client;
mod server;
mod streams;

pub use arrivals::Arrival;
pub use client::LeanClient;
pub use server::{DualServer, Served};
pub use streams::{Failer, LeanIncoming, LeanOutgoing};

/// The protocol's name in a provider's `transports`.
pub const PROTOCOL: &str = "trellis-rr/1";

/// The reply header that carries a server-side failure instead of results.
pub const ERROR_HEADER: &str = "Trellis-Error";

/// The reply header that names the failure's [`CallErrorKind`](crate::CallErrorKind)
/// (`busy`, `too-large`, `refused`, …) beside [`ERROR_HEADER`].
pub const ERROR_KIND_HEADER: &str = "Trellis-Error-Kind";

/// Room kept for headers when deciding whether parameters fit one message.
const HEADROOM: usize = 8 << 10;

/// Where `instance.func` is served under `prefix`.
pub fn subject(prefix: &str, instance: &str, func: &str) -> String {
    format!("{prefix}.rr.{instance}.{func}")
}
