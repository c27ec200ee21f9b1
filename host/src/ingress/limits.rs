//! What the HTTP ingress takes from clients: every bound has a default and a
//! flag, so a slow or idle client costs a connection for a bounded time and
//! a flood of them a bounded number of connections.

use std::time::Duration;

/// The ingress's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers (HTTP/1.1);
    /// a client that trickles them is dropped at this bound.
    pub header_timeout: Duration,
    /// How long a connection may stay open with nothing in flight and no
    /// bytes either way.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// HTTP/2 streams a connection may have open at once.
    pub max_streams: u32,
    /// The largest header block a request may send, in bytes.
    pub max_header_bytes: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_streams: 200,
            max_header_bytes: 64 << 10,
            drain_timeout: Duration::from_secs(10),
        }
    }
}
