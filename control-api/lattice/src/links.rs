//! Links: which workloads bind to which provider, kept where every provider
//! replica can watch them. A provider learns a binding's config on each call;
//! links tell it before any call, which is what a provider that acts on its
//! own (delivering subscribed messages) needs.
//!
//! Each host running a workload puts one entry per provider the workload binds,
//! under `<provider>.<workload>.<host instance>` in the lattice's `links` KV
//! bucket, and deletes it when the workload stops there. Entries expire after
//! [`LINK_TTL`] unless their host puts them again (every third of it), so the
//! links of a host that died go with it; the expiry reaches watchers as a
//! removal (a JetStream limit marker, NATS 2.11 and later).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `links` bucket's name part (see [`super::Subjects::bucket`]).
pub const LINKS_BUCKET: &str = "links";

/// How long a link entry lives unless its host puts it again.
pub const LINK_TTL: Duration = Duration::from_secs(60);

/// One workload's bindings to one provider, as run by one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The provider the bindings name.
    pub provider: String,
    /// The workload.
    pub workload: String,
    /// The host instance that runs it (one entry per host).
    pub host: String,
    /// The bindings, in manifest order.
    pub bindings: Vec<LinkedBinding>,
}

/// One binding of a [`Link`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedBinding {
    /// The importing component.
    pub component: String,
    /// The binding's import pattern.
    pub import: String,
    /// The binding's `config`.
    pub config: BTreeMap<String, String>,
}

impl Link {
    /// The entry's key: `<provider>.<workload>.<host>`.
    pub fn key(&self) -> String {
        format!("{}.{}.{}", self.provider, self.workload, self.host)
    }
}

/// The config of the links bucket called `name`: latest entry only.
pub fn links_bucket(name: &str) -> async_nats::jetstream::kv::Config {
    async_nats::jetstream::kv::Config {
        bucket: name.to_string(),
        history: 1,
        max_age: LINK_TTL,
        limit_markers: Some(Duration::from_secs(10)),
        ..Default::default()
    }
}

/// The key filter that watches every link of `provider`.
pub fn provider_links(provider: &str) -> String {
    format!("{provider}.>")
}
