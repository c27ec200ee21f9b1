//! A workload's component bytes before compilation: registry and lattice
//! sources fetched (through the host's cache), and, on a host that trusts
//! signers, local files signature-checked too.

use trellis_artifacts::{Artifact, Fetcher, Pin};
use trellis_manifest::{ComponentSource, Digest, Workload};

use crate::sandbox::Sandbox;

/// What the loader compiles for each component, in manifest order.
pub(crate) enum Fetched {
    /// A local file the loader reads itself (no signature required).
    File,
    /// Bytes already fetched and verified.
    Bytes { bytes: Vec<u8>, pin: Option<Pin> },
    /// Why there are none.
    Failed(String),
}

/// Fetches every component that is not a plain local file.
pub(crate) async fn fetch(
    fetcher: &Fetcher,
    sandbox: &Sandbox,
    manifest: &Workload,
) -> Vec<Fetched> {
    let mut fetched = Vec::with_capacity(manifest.components.len());
    for component in &manifest.components {
        let one = match &component.source {
            ComponentSource::File(path) if fetcher.signatures_required() => {
                local_signed(fetcher, sandbox, path).await
            }
            ComponentSource::File(_) => Fetched::File,
            source => match fetcher.fetch(source).await {
                Ok(Artifact { bytes, pin, .. }) => Fetched::Bytes { bytes, pin },
                Err(e) => Fetched::Failed(e.to_string()),
            },
        };
        fetched.push(one);
    }
    fetched
}

/// A local file on a host that runs only signed artifacts: read once, and
/// those very bytes are checked and compiled.
async fn local_signed(fetcher: &Fetcher, sandbox: &Sandbox, path: &std::path::Path) -> Fetched {
    let path = match sandbox.files.check(path) {
        Ok(path) => path,
        Err(e) => return Fetched::Failed(e.to_string()),
    };
    // Checked and compiled in binary form, whose digest `trellis sign` names.
    let bytes = match super::compile::read_binary(&path, sandbox.files.may_quote()) {
        Ok(bytes) => bytes,
        Err(e) => return Fetched::Failed(e.to_string()),
    };
    match fetcher.check_signature(&Digest::of(&bytes)).await {
        Ok(()) => Fetched::Bytes { bytes, pin: None },
        Err(e) => Fetched::Failed(e.to_string()),
    }
}
