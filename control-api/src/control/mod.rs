//! The control API (`trellis:control`, wit/deps/control): its types, and the client
//! the CLI and the scheduler use to tell a host what to run.
//!
//! Every host serves the `host` interface over wRPC at `trellis.<lattice>.host.<id>`.
//! Workload IDs are `<host-id>:<rest>`, so an ID says which host it is for.

mod client;

pub use client::{ControlClient, ControlError};

/// Types generated from the WIT; hosts implement the matching `agent` world.
#[allow(missing_docs)] // generated; the WIT carries the docs
pub mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../wit/deps/control",
        world: "trellis:control/controller",
    });
}

pub use bindings::trellis::control::types::{
    Error as Refusal, HostInfo, WorkloadState, WorkloadStatus,
};

/// The host a workload ID is for: the part before the first `:`.
pub fn host_of(id: &str) -> Option<&str> {
    id.split_once(':')
        .map(|(host, _)| host)
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn an_id_names_its_host() {
        assert_eq!(host_of("H1:shop-1"), Some("H1"));
        assert_eq!(host_of("H1:a:b"), Some("H1"));
        assert_eq!(host_of(":shop"), None);
        assert_eq!(host_of("shop"), None);
    }
}
