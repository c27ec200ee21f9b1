//! Every subject Trellis uses, in one place (the design's subject table).

use crate::Role;

/// The lattice a process joins when none is named.
pub const DEFAULT_LATTICE: &str = "default";

/// The lattice's artifact store, a JetStream object store
/// (`trellis_<lattice>_artifacts`): components by digest, written by the operator.
pub const ARTIFACTS_BUCKET: &str = "artifacts";
/// The artifacts' signatures, a KV bucket (`trellis_<lattice>_signatures`).
pub const SIGNATURES_BUCKET: &str = "signatures";

/// The subjects of one lattice: `trellis.<lattice>.…`, and the JetStream
/// domain this process keeps its buckets and streams in (a leaf site's own,
/// so they stay reachable when the link to the hub is down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    root: String,
    domain: Option<String>,
}

impl Subjects {
    /// The subjects of `lattice`, in the JetStream domain of the server the
    /// process connects to.
    pub fn new(lattice: &str) -> Self {
        Subjects {
            root: format!("trellis.{lattice}"),
            domain: None,
        }
    }

    /// The same subjects, for a process at a leaf site of JetStream domain
    /// `domain` (checked against the server's at connect, carried in heartbeats).
    pub fn with_domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
    }

    /// The JetStream domain named with `--js-domain`, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// A JetStream context on the connected server's own domain: every
    /// bucket, object store and stream of the lattice is opened through it.
    /// Plain `$JS.API` never crosses a leaf link between two domains, so at a
    /// site this is the site's JetStream, and the permissions need no domain
    /// form (only `trellis mirror` names the hub's).
    pub fn jetstream(&self, client: async_nats::Client) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(client)
    }

    /// The wRPC prefix of host `id`'s control API.
    pub fn host(&self, id: &str) -> String {
        format!("{}.host.{id}", self.root)
    }

    /// Where host `id` publishes its JSON heartbeat.
    pub fn host_heartbeat(&self, id: &str) -> String {
        format!("{}.evt.host.{id}.heartbeat", self.root)
    }

    /// The wRPC prefix of provider `name`; its replicas share a queue group.
    pub fn provider(&self, name: &str) -> String {
        format!("{}.provider.{name}", self.root)
    }

    /// Where each provider replica publishes its [`ProviderInfo`](super::ProviderInfo) periodically.
    pub fn provider_heartbeat(&self, name: &str) -> String {
        format!("{}.evt.provider.{name}.heartbeat", self.root)
    }

    /// Every host's heartbeat (a wildcard, for the scheduler and `trellis get hosts`).
    pub fn host_heartbeats(&self) -> String {
        format!("{}.evt.host.*.heartbeat", self.root)
    }

    /// Every provider replica's heartbeat (a wildcard, for `trellis get providers`).
    pub fn provider_heartbeats(&self) -> String {
        format!("{}.evt.provider.*.heartbeat", self.root)
    }

    /// JetStream KV bucket `what` of this lattice (`desired`, `status`, `scheduler`).
    pub fn bucket(&self, what: &str) -> String {
        format!("{}_{what}", self.root.replace('.', "_"))
    }

    /// Where `role` receives replies: `_INBOX.<lattice>.<kind>[.<name>]`. Every
    /// process connects with its role's prefix, so the server can let each one
    /// subscribe to its own replies only.
    pub fn inbox(&self, role: &Role) -> String {
        let lattice = self.lattice();
        match role {
            Role::Operator | Role::Scheduler => format!("_INBOX.{lattice}.{}", role.kind()),
            Role::Host(name) | Role::Provider(name) | Role::Admin(name) => {
                format!("_INBOX.{lattice}.{}.{name}", role.kind())
            }
        }
    }

    /// The inboxes of every process of `kind` (`host`, `provider`, …): where a
    /// server of theirs may send replies.
    pub fn inboxes_of(&self, kind: &str) -> String {
        format!("_INBOX.{}.{kind}.>", self.lattice())
    }

    /// The JetStream KV bucket and object store (same name) where provider
    /// `name` keeps its workloads' data: one of each per provider, so a NATS
    /// permission can name them exactly.
    pub fn provider_data(&self, name: &str) -> String {
        self.bucket(&format!("data_{name}"))
    }

    /// Where host `id` asks the secret store for a secret of a workload it
    /// starts; only that host may publish here.
    pub fn secret_request(&self, id: &str) -> String {
        format!("{}.secrets.get.{id}", self.root)
    }

    /// Where the secret store answers with its xkey public key, which
    /// `trellis secret put` seals values to.
    pub fn secret_store_key(&self) -> String {
        format!("{}.secrets.key", self.root)
    }

    /// Every subject the secret store serves.
    pub fn secret_store(&self) -> String {
        format!("{}.secrets.>", self.root)
    }

    /// The lattice's name.
    pub fn lattice(&self) -> &str {
        self.root.strip_prefix("trellis.").unwrap_or(&self.root)
    }

    /// The wRPC prefix of the exports workload `name` serves.
    pub fn workload(&self, name: &str) -> String {
        format!("{}.workload.{name}", self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_design_table() {
        let s = Subjects::new("edge");
        assert_eq!(s.host("N1"), "trellis.edge.host.N1");
        assert_eq!(s.host_heartbeat("N1"), "trellis.edge.evt.host.N1.heartbeat");
        assert_eq!(s.provider("kv"), "trellis.edge.provider.kv");
        assert_eq!(s.workload("shop"), "trellis.edge.workload.shop");
        assert_eq!(s.inbox(&Role::Scheduler), "_INBOX.edge.scheduler");
        assert_eq!(
            s.inbox(&Role::Provider("kv".into())),
            "_INBOX.edge.provider.kv"
        );
        assert_eq!(s.provider_data("kv"), "trellis_edge_data_kv");
    }
}
