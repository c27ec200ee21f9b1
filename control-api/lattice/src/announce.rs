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
    /// Names of workloads it runs: all of them, or the first
    /// [`MAX_LISTED_WORKLOADS`] when it runs more ([`HostHeartbeat::workload_count`]
    /// says how many), so a heartbeat stays small whatever the count.
    pub workloads: Vec<String>,
    /// How many workloads it runs.
    #[serde(default)]
    pub workload_count: u64,
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

/// The most workload names a heartbeat lists: 100 names of at most 63
/// bytes keep it far below any server's `max_payload`.
pub const MAX_LISTED_WORKLOADS: usize = 100;

impl HostHeartbeat {
    /// What a heartbeat says of `names` (every workload a host runs): the
    /// first [`MAX_LISTED_WORKLOADS`] of them, and their count.
    pub fn listed_workloads(mut names: Vec<String>) -> (Vec<String>, u64) {
        let count = names.len() as u64;
        names.truncate(MAX_LISTED_WORKLOADS);
        (names, count)
    }

    /// The workloads as people read them: the names, and how many more.
    pub fn workloads_text(&self) -> String {
        let listed = self.workloads.join(",");
        let more = self
            .workload_count
            .saturating_sub(self.workloads.len() as u64);
        if more == 0 {
            listed
        } else {
            format!("{listed},… ({} in all)", self.workload_count)
        }
    }
}

#[cfg(test)]
mod listed_tests {
    use super::*;

    #[test]
    fn ten_thousand_workloads_list_a_hundred_and_count_all() {
        let names: Vec<String> = (0..10_000).map(|i| format!("w{i}")).collect();
        let (listed, count) = HostHeartbeat::listed_workloads(names);
        assert_eq!((listed.len(), count), (MAX_LISTED_WORKLOADS, 10_000));
        let (listed, count) = HostHeartbeat::listed_workloads(vec!["a".into()]);
        assert_eq!((listed, count), (vec!["a".to_string()], 1));
    }
}
