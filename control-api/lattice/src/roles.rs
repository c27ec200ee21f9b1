//! Who a process is on the lattice. A role decides which subjects its NATS
//! identity may use (see `trellis-identity`), and each process keeps its reply
//! inboxes under a prefix of its own role, so the server can let it subscribe
//! to its own replies and nothing else.

use std::fmt;

/// The part a process plays in a lattice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The CLI of whoever runs the lattice: applies workloads, reads state.
    Operator,
    /// The scheduler: desired state, placements, the secret store.
    Scheduler,
    /// A host, by its ID (its nkey public key when it authenticates with one).
    Host(String),
    /// A capability provider, by its name; its replicas share the identity.
    Provider(String),
    /// Full access to the lattice's account, for troubleshooting with the `nats` CLI.
    Admin(String),
}

impl Role {
    /// The role's kind as a subject token: `operator`, `scheduler`, `host`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Scheduler => "scheduler",
            Role::Host(_) => "host",
            Role::Provider(_) => "provider",
            Role::Admin(_) => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Operator | Role::Scheduler => f.write_str(self.kind()),
            Role::Host(name) | Role::Provider(name) | Role::Admin(name) => {
                write!(f, "{} `{name}`", self.kind())
            }
        }
    }
}
