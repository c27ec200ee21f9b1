//! Trellis workload manifests: the types every part of Trellis shares, parsed
//! from YAML with every problem reported at once, each with its line and column.
//!
//! This crate knows nothing of NATS: `trellis dev`, the host, the CLI and the
//! scheduler read manifests through it, and a provider never compiles it.
//!
//! ```
//! use std::path::Path;
//! use trellis_manifest::{BindingTarget, Workload, find_binding};
//!
//! let yaml = r#"
//! apiVersion: trellis.dev/v1alpha1
//! kind: Workload
//! name: hello
//! components:
//!   web:
//!     source: Cargo.toml   # any existing file; the host checks it is a component
//!     bindings:
//!       wasi:*: host
//! routes:
//!   - component: web
//!     path: /
//! "#;
//! let workload = Workload::from_yaml(yaml, Path::new("hello.yaml"), Path::new("."))
//!     .map_err(|e| e.to_string())?;
//! let web = &workload.components[0];
//! let binding = find_binding(&web.bindings, "wasi:http/types@0.2.6");
//! assert_eq!(binding.map(|b| &b.target), Some(&BindingTarget::Host));
//! # Ok::<(), String>(())
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![doc(test(attr(deny(warnings))))]

mod binding;
mod decode;
mod diagnostics;
mod manifest;
mod source;
mod units;
mod validate;
pub mod yaml;

pub use binding::{
    Binding, BindingTarget, ImportName, ImportPattern, PatternError, find_binding,
    find_named_binding,
};
pub use diagnostics::{Diagnostic, ManifestError};
pub use manifest::{
    API_VERSION, BINDING_FIELDS, COMPONENT_FIELDS, Component, EXPORT_FIELDS, Export, GRANTS_FIELDS,
    Grants, LIMITS_FIELDS, Limits, MAX_MANIFEST_BYTES, PREOPEN_FIELDS, Partition, ROUTE_FIELDS,
    Route, SECRET_SOURCES, SecretRef, SecretSource, WORKLOAD_FIELDS, Workload, http_patterns_allow,
    read_manifest, valid_secret_key,
};
pub use source::{ComponentSource, Digest, OciReference, OciVersion, ReferenceError};
pub use units::{UnitError, parse_duration, parse_size};

#[cfg(test)]
mod tests;
