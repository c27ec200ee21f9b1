//! A secured lattice on disk. `trellis lattice init` makes one NATS identity
//! per process (an nkey; an xkey too for those that receive secrets), the
//! allow lists nats-server enforces for each role, and the nats.conf that
//! admits those identities and nobody else. The permissions are the reason a
//! provider can trust the identity headers of a call: only hosts may call it.
#![deny(missing_docs)]

mod conf;
mod directory;
mod permissions;
mod tls;

pub use conf::{account, unsafe_stream, unsafe_subject};
pub use directory::{
    Cluster, DEFAULT_PROVIDERS, Description, DirectoryError, Identity, InitOptions, Kind,
    LatticeDir, Site,
};
pub use permissions::{Permissions, ProviderGrants};
