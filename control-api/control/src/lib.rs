//! The control API (`trellis:control`, wit/deps/control): its types, and the client
//! the CLI and the scheduler use to tell a host what to run. Hosts serve it
//! (`trellis_host::control`); this crate is what its callers compile.
//!
//! Every host serves the `host` interface over wRPC at `trellis.<lattice>.host.<id>`.
//! Workload IDs are `<host-id>:<rest>`, so an ID says which host it is for.

#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod client;

pub use client::{ControlClient, ControlError};

/// Types generated from the WIT; hosts implement the matching `agent` world.
#[allow(missing_docs)] // generated; the WIT carries the docs
pub mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../../wit/deps/control",
        world: "trellis:control/controller",
    });
}

pub use bindings::trellis::control::types::{
    Error as Refusal, HostInfo, WorkloadState, WorkloadStatus,
};

/// The signatures of `trellis:control/host`, which a host serves: every
/// control-API payload is checked against them before it is decoded.
pub fn host_signatures() -> Result<trellis_wire::Signatures, serde_json::Error> {
    trellis_wire::Signatures::from_json(include_str!(concat!(env!("OUT_DIR"), "/signatures.json")))
}

/// The host a workload ID is for: the part before the first `:`.
pub fn host_of(id: &str) -> Option<&str> {
    id.split_once(':')
        .map(|(host, _)| host)
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use wrpc_transport::Encode;
    use wrpc_transport::frame::Outgoing;

    /// The bytes a value travels as (the wRPC value encoding).
    fn wire<V: Encode<Outgoing>>(value: V) -> Vec<u8> {
        let mut encoder = V::Encoder::default();
        let mut buf = BytesMut::new();
        let encoded = tokio_util::codec::Encoder::encode(&mut encoder, value, &mut buf);
        assert!(encoded.is_ok(), "cannot encode");
        buf.to_vec()
    }

    /// Pins the control API's encodings: a change here breaks every deployed
    /// scheduler and CLI, so it must be a new package version, not an edit.
    /// Expected bytes follow the wRPC value definition: strings and lists are a
    /// LEB128 length then the items, enums and variants a LEB128 case index, then
    /// the payload; options and results a 0/1 byte, then the payload.
    #[test]
    fn the_wire_encoding_is_pinned() {
        assert_eq!(wire(WorkloadState::Starting), [0]);
        assert_eq!(wire(WorkloadState::Failed), [2]);
        assert_eq!(wire(Refusal::Invalid("x".into())), [0, 1, b'x']);
        assert_eq!(wire(Refusal::WrongHost("no".into())), [1, 2, b'n', b'o']);
        assert_eq!(wire(Refusal::NotFound("x".into())), [2, 1, b'x']);
        assert_eq!(wire(Refusal::StartFailed("x".into())), [3, 1, b'x']);
        assert_eq!(wire(Refusal::Unavailable("x".into())), [4, 1, b'x']);
        let status = WorkloadStatus {
            id: "H:a@v".into(),
            name: "a".into(),
            state: WorkloadState::Running,
            routes: vec!["*/ -> x".into()],
            last_error: Some("e".into()),
        };
        let mut expected = vec![5];
        expected.extend(b"H:a@v");
        expected.extend([1, b'a', 1, 1, 7]);
        expected.extend(b"*/ -> x");
        expected.extend([1, 1, b'e']);
        assert_eq!(wire(status), expected);
    }

    #[test]
    fn an_id_names_its_host() {
        assert_eq!(host_of("H1:shop-1"), Some("H1"));
        assert_eq!(host_of("H1:a:b"), Some("H1"));
        assert_eq!(host_of(":shop"), None);
        assert_eq!(host_of("shop"), None);
    }
}
