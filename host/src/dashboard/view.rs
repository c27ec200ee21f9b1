//! What the dashboard knows of the lattice: hosts and providers from their
//! heartbeats, workloads from the scheduler's status, and the events seen
//! between two looks. Everything is bounded: a lattice cannot make it grow
//! without limit, however many heartbeats it sends.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use trellis_lattice::{
    HEARTBEAT_INTERVAL, HostHeartbeat, PROVIDER_HEARTBEAT_INTERVAL, ProviderInfo,
};
use trellis_scheduler::{Desired, Status};

/// Hosts kept at most (each needs a host identity of its own: a heartbeat
/// counts only on its own host's subject); more wait until some go.
const MAX_MEMBERS: usize = 10_000;
/// Replicas kept per provider name: a provider picks its replicas' IDs
/// freely, so one identity could otherwise fill the table.
const MAX_REPLICAS: usize = 256;
/// Events kept, newest first.
const MAX_EVENTS: usize = 100;
/// A host unheard for three heartbeats is gone.
const SILENCE: Duration = Duration::from_secs(HEARTBEAT_INTERVAL.as_secs() * 3);
/// A provider replica unheard for three of its heartbeats is gone.
const PROVIDER_SILENCE: Duration = Duration::from_secs(PROVIDER_HEARTBEAT_INTERVAL.as_secs() * 3);

/// The page's data, sent whole on every change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Snapshot {
    lattice: String,
    hosts: Vec<HostRow>,
    workloads: Vec<WorkloadRow>,
    providers: Vec<ProviderRow>,
    events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct HostRow {
    id: String,
    labels: BTreeMap<String, String>,
    version: String,
    workloads: Vec<String>,
    /// All its workloads; `workloads` lists the first hundred.
    workload_count: u64,
    instances_in_use: u32,
    max_instances: u32,
    domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct WorkloadRow {
    name: String,
    version: String,
    desired: u32,
    running: u32,
    replicas: Vec<ReplicaRow>,
    last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct ReplicaRow {
    id: String,
    host: String,
    version: String,
    state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct ProviderRow {
    name: String,
    version: String,
    interfaces: Vec<String>,
    replicas: usize,
    in_flight: u64,
}

/// Something that happened, as the page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Event {
    /// Milliseconds since the Unix epoch.
    at: u64,
    kind: &'static str,
    message: String,
}

/// The lattice as heard so far.
pub(crate) struct LatticeView {
    lattice: String,
    hosts: BTreeMap<String, (Instant, HostHeartbeat)>,
    providers: HashMap<String, (Instant, ProviderInfo)>,
    workloads: Vec<WorkloadRow>,
    events: VecDeque<Event>,
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl LatticeView {
    pub(crate) fn new(lattice: &str) -> Self {
        LatticeView {
            lattice: lattice.to_string(),
            hosts: BTreeMap::new(),
            providers: HashMap::new(),
            workloads: Vec::new(),
            events: VecDeque::new(),
        }
    }

    fn event(&mut self, kind: &'static str, message: String) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_back();
        }
        self.events.push_front(Event {
            at: now_millis(),
            kind,
            message,
        });
    }

    /// A host's heartbeat.
    pub(crate) fn host_heard(&mut self, beat: HostHeartbeat, at: Instant) {
        if !self.hosts.contains_key(&beat.id) {
            if self.hosts.len() >= MAX_MEMBERS {
                return;
            }
            self.event("host-joined", format!("host {} joined", beat.id));
        }
        self.hosts.insert(beat.id.clone(), (at, beat));
    }

    /// A provider replica's heartbeat or announcement.
    pub(crate) fn provider_heard(&mut self, info: ProviderInfo, at: Instant) {
        if !self.providers.contains_key(&info.instance) {
            let replicas = self
                .providers
                .values()
                .filter(|(_, p)| p.name == info.name)
                .count();
            if self.providers.len() >= MAX_MEMBERS || replicas >= MAX_REPLICAS {
                return;
            }
            self.event(
                "provider-joined",
                format!("provider {} replica {} joined", info.name, info.instance),
            );
        }
        self.providers.insert(info.instance.clone(), (at, info));
    }

    /// Forgets hosts and replicas unheard for three heartbeats.
    pub(crate) fn expire(&mut self, now: Instant) {
        let gone: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, (seen, _))| now.duration_since(*seen) > SILENCE)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.hosts.remove(&id);
            self.event("host-lost", format!("host {id} went silent"));
        }
        let gone: Vec<(String, String)> = self
            .providers
            .iter()
            .filter(|(_, (seen, _))| now.duration_since(*seen) > PROVIDER_SILENCE)
            .map(|(instance, (_, info))| (instance.clone(), info.name.clone()))
            .collect();
        for (instance, name) in gone {
            self.providers.remove(&instance);
            self.event(
                "provider-lost",
                format!("provider {name} replica {instance} went silent"),
            );
        }
    }

    /// The scheduler's desired state and status; what changed since the last
    /// read becomes events.
    pub(crate) fn workloads_read(&mut self, desired: Vec<Desired>, status: Vec<Status>) {
        let mut status: HashMap<String, Status> =
            status.into_iter().map(|s| (s.name.clone(), s)).collect();
        let rows: Vec<WorkloadRow> = desired
            .into_iter()
            .map(|d| {
                let s = status.remove(&d.name);
                let current = s.as_ref().filter(|s| s.version == d.version);
                WorkloadRow {
                    version: d.version,
                    desired: d.replicas,
                    running: current.map_or(0, |s| s.running),
                    last_error: current.and_then(|s| s.last_error.clone()),
                    replicas: s
                        .map(|s| {
                            s.replicas
                                .into_iter()
                                .map(|r| ReplicaRow {
                                    id: r.id,
                                    host: r.host,
                                    version: r.version,
                                    state: r.state,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    name: d.name,
                }
            })
            .collect();
        let before: HashMap<&str, &WorkloadRow> = self
            .workloads
            .iter()
            .map(|w| (w.name.as_str(), w))
            .collect();
        let mut events = Vec::new();
        for row in &rows {
            let old = before.get(row.name.as_str());
            match old {
                None => events.push(("applied", format!("{} {} applied", row.name, row.version))),
                Some(old) if old.version != row.version => events.push((
                    "applied",
                    format!("{} {} replaces {}", row.name, row.version, old.version),
                )),
                _ => {}
            }
            for replica in &row.replicas {
                let was = old.and_then(|o| o.replicas.iter().find(|r| r.id == replica.id));
                if was.is_none() {
                    events.push(("placed", format!("{} placed on {}", row.name, replica.host)));
                }
                if replica.state == "failed" && was.is_none_or(|w| w.state != "failed") {
                    events.push(("failed", format!("{} failed on {}", row.name, replica.host)));
                }
            }
            if row.last_error.is_some()
                && old.and_then(|o| o.last_error.as_ref()) != row.last_error.as_ref()
            {
                let error = row.last_error.clone().unwrap_or_default();
                events.push(("failed", format!("{}: {error}", row.name)));
            }
        }
        for old in &self.workloads {
            if !rows.iter().any(|r| r.name == old.name) {
                events.push(("deleted", format!("{} deleted", old.name)));
            }
        }
        for (kind, message) in events {
            self.event(kind, message);
        }
        self.workloads = rows;
    }

    /// The page's data now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut providers: BTreeMap<&str, ProviderRow> = BTreeMap::new();
        for (_, info) in self.providers.values() {
            let row = providers.entry(&info.name).or_insert_with(|| ProviderRow {
                name: info.name.clone(),
                version: info.version.clone(),
                interfaces: info.interfaces.clone(),
                replicas: 0,
                in_flight: 0,
            });
            row.replicas += 1;
            row.in_flight += info.in_flight;
        }
        Snapshot {
            lattice: self.lattice.clone(),
            hosts: self
                .hosts
                .values()
                .map(|(_, b)| HostRow {
                    id: b.id.clone(),
                    labels: b.labels.clone(),
                    version: b.version.clone(),
                    workloads: b.workloads.clone(),
                    workload_count: b.workload_count,
                    instances_in_use: b.instances_in_use,
                    max_instances: b.max_instances,
                    domain: b.domain.clone(),
                })
                .collect(),
            workloads: self.workloads.clone(),
            providers: providers.into_values().collect(),
            events: self.events.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str) -> HostHeartbeat {
        HostHeartbeat {
            id: id.into(),
            labels: BTreeMap::new(),
            version: "0".into(),
            uptime_seconds: 0,
            workloads: vec![],
            workload_count: 0,
            max_instances: 10,
            instances_in_use: 0,
            interfaces: vec![],
            http_listen: None,
            domain: None,
        }
    }

    #[test]
    fn hosts_join_and_go_silent_as_events() {
        let mut view = LatticeView::new("default");
        let start = Instant::now();
        view.host_heard(beat("A"), start);
        view.host_heard(beat("A"), start);
        assert_eq!(view.snapshot().hosts.len(), 1);
        view.expire(start + SILENCE + Duration::from_secs(1));
        let snapshot = view.snapshot();
        assert!(snapshot.hosts.is_empty());
        let kinds: Vec<&str> = snapshot.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["host-lost", "host-joined"]);
    }

    #[test]
    fn the_host_table_is_bounded() {
        let mut view = LatticeView::new("default");
        let now = Instant::now();
        for n in 0..MAX_MEMBERS + 5 {
            view.host_heard(beat(&format!("H{n}")), now);
        }
        let snapshot = view.snapshot();
        assert_eq!(snapshot.hosts.len(), MAX_MEMBERS);
        assert_eq!(snapshot.events.len(), MAX_EVENTS);
    }
}
