//! The host's periodic heartbeat: who it is and what it runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use trellis_lattice::HostHeartbeat;

use super::Lattice;
use crate::Host;

pub use trellis_lattice::HEARTBEAT_INTERVAL;

/// Publishes `host`'s heartbeat every few seconds until the task is dropped.
/// Publishing while NATS is away fails quietly; the next beat tries again.
pub async fn publish_heartbeats(
    lattice: Arc<Lattice>,
    host: Arc<Host>,
    id: String,
    labels: BTreeMap<String, String>,
    http_listen: Option<String>,
) {
    let started = Instant::now();
    let subject = lattice.subjects().host_heartbeat(&id);
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    let mut links = tokio::time::interval(trellis_lattice::LINK_TTL / 3);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = links.tick() => {
                lattice.links().refresh().await;
                continue;
            }
        }
        let (workloads, workload_count) = HostHeartbeat::listed_workloads(host.workload_names());
        let beat = HostHeartbeat {
            id: id.clone(),
            labels: labels.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: started.elapsed().as_secs(),
            workloads,
            workload_count,
            max_instances: host.max_instances(),
            instances_in_use: host.instances_in_use(),
            interfaces: crate::capabilities::builtin_interfaces()
                .map(|b| b.name.to_string())
                .collect(),
            http_listen: http_listen.clone(),
            domain: lattice.subjects().domain().map(str::to_string),
        };
        let Ok(json) = serde_json::to_vec(&beat) else {
            continue;
        };
        if let Err(e) = lattice.nats().publish(subject.clone(), json.into()).await {
            tracing::debug!(error = %e, "heartbeat not sent");
        }
    }
}
