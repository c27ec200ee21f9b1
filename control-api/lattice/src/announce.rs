//! The JSON documents hosts and providers publish about themselves; readable with
//! `nats sub 'trellis.*.evt.>'`.

use serde::{Deserialize, Serialize};

/// What a provider replica serves. Published as its heartbeat and returned by its
/// info subject, which is also its health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// The provider name bindings use.
    pub name: String,
    /// This replica's unique ID.
    pub instance: String,
    /// The provider's version.
    pub version: String,
    /// Versioned interfaces it serves, e.g. `wasi:keyvalue/store@0.2.0-draft`.
    pub interfaces: Vec<String>,
    /// Seconds since the replica started.
    pub uptime_seconds: u64,
    /// Calls being handled right now.
    pub in_flight: u64,
    /// Transports it takes besides wrpc-transport-nats (`trellis-rr/1`, see
    /// [`super::lean`]); absent for other wRPC servers.
    #[serde(default)]
    pub transports: Vec<String>,
    /// The xkey public key secrets in binding config are sealed to; absent
    /// for a provider started without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xkey: Option<String>,
}

impl ProviderInfo {
    /// Whether it serves `interface` (versioned, or unversioned to match any version).
    pub fn serves(&self, interface: &str) -> bool {
        self.interfaces
            .iter()
            .any(|i| i == interface || i.split('@').next() == Some(interface))
    }
}

/// How often a host publishes its heartbeat: what the scheduler listens
/// for before its first pass.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a provider replica publishes its info on its heartbeat subject:
/// watchers that miss three in a row may count the replica gone.
pub const PROVIDER_HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A host's periodic heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostHeartbeat {
    /// The host's ID.
    pub id: String,
    /// Its labels, `key=value`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Trellis version.
    pub version: String,
    /// Seconds since the host started.
    pub uptime_seconds: u64,
    /// Names of the workloads it runs.
    pub workloads: Vec<String>,
    /// Most instances it can run at once.
    pub max_instances: u32,
    /// Instances serving a request or call right now.
    pub instances_in_use: u32,
    /// The interfaces it implements itself (what `host` bindings can name).
    pub interfaces: Vec<String>,
    /// The address its HTTP ingress listens on.
    pub http_listen: Option<String>,
    /// The JetStream domain it keeps its data in (`--js-domain`): at a leaf
    /// site, the site's. The scheduler tells a cut site from dead hosts by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}
