//! Placement: given one workload's desired state and what every live host runs,
//! which copies to start and which to stop. Pure, so it is tested without NATS.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::store::{Desired, parse_id};

/// One copy of a workload as a host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Its workload ID.
    pub id: String,
    /// `starting`, `running` or `failed`.
    pub state: String,
    /// The host's error, for a failed copy.
    pub last_error: Option<String>,
}

/// A live host as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// Its ID.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Instances busy right now, from its heartbeat.
    pub load: u32,
    /// What it runs.
    pub copies: Vec<Copy>,
    /// Whether it can be told anything now: false for a host that did not
    /// answer this pass and for the hosts of a silent leaf site, whose
    /// copies are those they last reported.
    pub reachable: bool,
    /// Whether its whole leaf site is silent (a cut link, most likely).
    pub partitioned: bool,
    /// Its leaf site's JetStream domain, for a host at a site.
    pub site: Option<String>,
}

/// What to do for one workload.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// `(host, id)` to start.
    pub start: Vec<(String, String)>,
    /// `(host, id)` to stop.
    pub stop: Vec<(String, String)>,
}

/// One copy of a workload, as found in the inventory.
struct Held<'a> {
    host: usize,
    id: &'a str,
    version: &'a str,
    state: &'a str,
    last_error: Option<&'a str>,
}

/// What the live hosts run, indexed by workload name once per pass, so planning a
/// workload costs its own copies, not a scan of every host.
pub struct Inventory<'a> {
    hosts: &'a [HostView],
    by_name: HashMap<&'a str, Vec<Held<'a>>>,
    /// Starts under way: (name, version) -> host indices.
    pending: HashMap<(String, String), HashSet<usize>>,
}

impl<'a> Inventory<'a> {
    /// Indexes `hosts`; `pending` are IDs whose start is under way.
    pub fn new(hosts: &'a [HostView], pending: &HashSet<String>) -> Self {
        let mut by_name: HashMap<&str, Vec<Held<'_>>> = HashMap::new();
        let mut index = HashMap::new();
        for (i, host) in hosts.iter().enumerate() {
            index.insert(host.id.as_str(), i);
            for copy in &host.copies {
                if let Some((_, name, version)) = parse_id(&copy.id) {
                    by_name.entry(name).or_default().push(Held {
                        host: i,
                        id: &copy.id,
                        version,
                        state: &copy.state,
                        last_error: copy.last_error.as_deref(),
                    });
                }
            }
        }
        let mut starting: HashMap<(String, String), HashSet<usize>> = HashMap::new();
        for id in pending {
            if let Some((host, name, version)) = parse_id(id)
                && let Some(&i) = index.get(host)
            {
                starting
                    .entry((name.to_string(), version.to_string()))
                    .or_default()
                    .insert(i);
            }
        }
        Inventory {
            hosts,
            by_name,
            pending: starting,
        }
    }
}

impl Inventory<'_> {
    /// Every copy of workload `name`: host, ID, version, state and the host's error.
    pub fn copies_of(
        &self,
        name: &str,
    ) -> impl Iterator<Item = (&HostView, &str, &str, &str, Option<&str>)> {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .map(|h| (&self.hosts[h.host], h.id, h.version, h.state, h.last_error))
    }
}

/// Plans `desired` over the inventory's hosts. `placed` counts the copies this
/// pass has already put on each host, so workloads planned in one pass spread
/// instead of piling onto one idle host.
pub fn plan(
    desired: &Desired,
    inventory: &Inventory<'_>,
    placed: &mut HashMap<String, usize>,
) -> Plan {
    let mut plan = Plan::default();
    let hosts = inventory.hosts;
    // Copies at a silent site count as there unless the workload asks otherwise.
    let held: Vec<&Held<'_>> = inventory
        .by_name
        .get(desired.name.as_str())
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|h| !hosts[h.host].partitioned || !desired.reschedule_on_partition)
        .collect();
    let matches = |host: &HostView| {
        desired
            .selector
            .iter()
            .all(|(k, v)| host.labels.get(k) == Some(v))
    };
    let spread_value = |host: &HostView| {
        desired
            .spread
            .as_ref()
            .and_then(|key| host.labels.get(key).cloned())
    };
    let this_version = |h: &&&Held<'_>| h.version == desired.version;
    let mut current: HashSet<usize> = held
        .iter()
        .filter(this_version)
        .filter(|h| h.state != "failed")
        .map(|h| h.host)
        .collect();
    // Held means held whatever the version: a rollout during the cut does
    // not place the new version elsewhere; the site's copy is replaced in
    // place once it is heard again.
    if !desired.reschedule_on_partition {
        current.extend(
            held.iter()
                .filter(|h| !hosts[h.host].reachable && h.state != "failed")
                .map(|h| h.host),
        );
    }
    if let Some(starting) = inventory
        .pending
        .get(&(desired.name.clone(), desired.version.clone()))
    {
        current.extend(starting);
    }
    let failed: HashSet<usize> = held
        .iter()
        .filter(this_version)
        .filter(|h| h.state == "failed")
        .map(|h| h.host)
        .collect();
    let older: HashSet<usize> = held
        .iter()
        .filter(|h| h.version != desired.version)
        .map(|h| h.host)
        .collect();

    let mut holders: Vec<usize> = current
        .iter()
        .copied()
        .filter(|&i| matches(&hosts[i]))
        .collect();
    holders.sort_unstable();
    let mut per_spread: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for &i in &holders {
        *per_spread.entry(spread_value(&hosts[i])).or_default() += 1;
    }
    let wanted = desired.replicas as usize;

    // Too few: place on eligible hosts, least-used spread value first, then hosts
    // already running an older version (replaced in place), then the least loaded.
    let mut count = holders.len();
    if count < wanted {
        let mut candidates: Vec<usize> = (0..hosts.len())
            .filter(|i| {
                hosts[*i].reachable
                    && matches(&hosts[*i])
                    && !current.contains(i)
                    && !failed.contains(i)
            })
            .collect();
        while count < wanted && !candidates.is_empty() {
            let best = candidates
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| {
                    let h = &hosts[**i];
                    (
                        per_spread.get(&spread_value(h)).copied().unwrap_or(0),
                        !older.contains(*i),
                        h.load,
                        h.copies.len() + placed.get(&h.id).copied().unwrap_or(0),
                        h.id.as_str(),
                    )
                })
                .map(|(at, _)| at);
            let Some(at) = best else { break };
            let host = &hosts[candidates.swap_remove(at)];
            *per_spread.entry(spread_value(host)).or_default() += 1;
            plan.start.push((host.id.clone(), desired.id_on(&host.id)));
            *placed.entry(host.id.clone()).or_default() += 1;
            count += 1;
        }
    }

    // Enough running: retire other versions, copies on hosts that no longer match, and surplus.
    let running = held
        .iter()
        .filter(this_version)
        .filter(|h| h.state == "running" && matches(&hosts[h.host]))
        .count();
    // A silent site is told nothing; what it should stop waits until it is heard.
    for h in held.iter().filter(|h| hosts[h.host].reachable) {
        let is_current = h.version == desired.version;
        let stale = !is_current && running >= wanted;
        let misplaced = is_current && !matches(&hosts[h.host]);
        if stale || misplaced {
            plan.stop.push((hosts[h.host].id.clone(), h.id.to_string()));
        }
    }
    // Surplus waits while any holder is unreachable: stopping a copy that
    // serves, while the one kept is out of reach, would serve nothing here.
    let all_reachable = holders.iter().all(|&i| hosts[i].reachable);
    if holders.len() > wanted && all_reachable {
        let mut surplus: Vec<&HostView> = holders
            .iter()
            .map(|&i| &hosts[i])
            .filter(|h| h.reachable)
            .collect();
        surplus.sort_by_key(|h| std::cmp::Reverse((h.load, h.id.clone())));
        for host in surplus.into_iter().take(holders.len() - wanted) {
            plan.stop.push((host.id.clone(), desired.id_on(&host.id)));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The planner over a freshly built inventory.
    fn plan(
        desired: &Desired,
        hosts: &[HostView],
        pending: &HashSet<String>,
        placed: &mut HashMap<String, usize>,
    ) -> Plan {
        super::plan(desired, &Inventory::new(hosts, pending), placed)
    }

    fn desired(replicas: u32, selector: &[(&str, &str)], spread: Option<&str>) -> Desired {
        Desired {
            name: "shop".into(),
            version: "v2".into(),
            manifest: String::new(),
            replicas,
            selector: selector
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            spread: spread.map(String::from),
            reschedule_on_partition: false,
            secrets: Vec::new(),
        }
    }

    fn host(id: &str, labels: &[(&str, &str)], load: u32, copies: &[(&str, &str)]) -> HostView {
        HostView {
            id: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            load,
            copies: copies
                .iter()
                .map(|(id, state)| Copy {
                    id: id.to_string(),
                    state: state.to_string(),
                    last_error: None,
                })
                .collect(),
            reachable: true,
            partitioned: false,
            site: None,
        }
    }

    #[test]
    fn places_by_labels_and_load() {
        let hosts = [
            host("A", &[("zone", "a")], 5, &[]),
            host("B", &[("zone", "b")], 0, &[]),
            host("C", &[("zone", "a")], 1, &[]),
        ];
        let p = plan(
            &desired(1, &[("zone", "a")], None),
            &hosts,
            &HashSet::new(),
            &mut HashMap::new(),
        );
        assert_eq!(p.start, vec![("C".into(), "C:shop@v2".into())]);
        assert!(p.stop.is_empty());
    }

    #[test]
    fn spreads_across_a_label() {
        let hosts = [
            host("A", &[("zone", "a")], 0, &[("A:shop@v2", "running")]),
            host("B", &[("zone", "a")], 0, &[]),
            host("C", &[("zone", "b")], 9, &[]),
        ];
        let p = plan(
            &desired(2, &[], Some("zone")),
            &hosts,
            &HashSet::new(),
            &mut HashMap::new(),
        );
        assert_eq!(p.start, vec![("C".into(), "C:shop@v2".into())]);
    }

    #[test]
    fn a_rollout_replaces_in_place_and_retires_only_when_running() {
        let old = [
            host("A", &[], 0, &[("A:shop@v1", "running")]),
            host("B", &[], 0, &[]),
        ];
        let p = plan(
            &desired(1, &[], None),
            &old,
            &HashSet::new(),
            &mut HashMap::new(),
        );
        assert_eq!(p.start, vec![("A".into(), "A:shop@v2".into())]);
        assert!(
            p.stop.is_empty(),
            "the old version stays until the new one runs"
        );

        // The new version failed on A: the old one keeps running, nothing is retried there.
        let failed = [host(
            "A",
            &[],
            0,
            &[("A:shop@v1", "running"), ("A:shop@v2", "failed")],
        )];
        assert_eq!(
            plan(
                &desired(1, &[], None),
                &failed,
                &HashSet::new(),
                &mut HashMap::new()
            ),
            Plan::default()
        );

        let done = [
            host("A", &[], 0, &[("A:shop@v2", "running")]),
            host("B", &[], 0, &[("B:shop@v1", "running")]),
        ];
        let p = plan(
            &desired(1, &[], None),
            &done,
            &HashSet::new(),
            &mut HashMap::new(),
        );
        assert_eq!(p.stop, vec![("B".into(), "B:shop@v1".into())]);
    }

    #[test]
    fn scales_down_from_the_most_loaded_and_counts_pending_starts() {
        let hosts = [
            host("A", &[], 1, &[("A:shop@v2", "running")]),
            host("B", &[], 7, &[("B:shop@v2", "running")]),
        ];
        let p = plan(
            &desired(1, &[], None),
            &hosts,
            &HashSet::new(),
            &mut HashMap::new(),
        );
        assert_eq!(p.stop, vec![("B".into(), "B:shop@v2".into())]);

        let idle = [host("A", &[], 0, &[]), host("B", &[], 0, &[])];
        let pending = HashSet::from(["A:shop@v2".to_string()]);
        let p = plan(&desired(1, &[], None), &idle, &pending, &mut HashMap::new());
        assert!(p.start.is_empty(), "{p:?}");
    }

    #[test]
    fn one_pass_spreads_several_workloads_over_idle_hosts() {
        let hosts = [
            host("A", &[], 0, &[]),
            host("B", &[], 0, &[]),
            host("C", &[], 0, &[]),
        ];
        let mut placed = HashMap::new();
        let mut chosen = Vec::new();
        for name in ["a", "b", "c"] {
            let mut d = desired(1, &[], None);
            d.name = name.into();
            let p = plan(&d, &hosts, &HashSet::new(), &mut placed);
            chosen.extend(p.start.into_iter().map(|(host, _)| host));
        }
        chosen.sort();
        assert_eq!(chosen, ["A", "B", "C"]);
    }

    #[test]
    fn a_silent_site_keeps_its_copies_unless_the_workload_reschedules() {
        let mut site = host("S", &[("tier", "edge")], 0, &[("S:shop@v2", "unreachable")]);
        (site.reachable, site.partitioned) = (false, true);
        let hosts = [site, host("B", &[("tier", "edge")], 0, &[])];
        let d = desired(1, &[("tier", "edge")], None);
        assert_eq!(
            plan(&d, &hosts, &HashSet::new(), &mut HashMap::new()),
            Plan::default(),
            "held: no second copy, and nothing sent to the silent host"
        );
        let mut moving = d.clone();
        moving.reschedule_on_partition = true;
        let p = plan(&moving, &hosts, &HashSet::new(), &mut HashMap::new());
        assert_eq!(p.start, vec![("B".into(), "B:shop@v2".into())]);
        assert!(p.stop.is_empty(), "{p:?}");

        // Scaled down during the cut: the copy that serves is kept until the
        // site is heard again, then the surplus is stopped.
        let mut site = host("S", &[], 0, &[("S:shop@v2", "unreachable")]);
        (site.reachable, site.partitioned) = (false, true);
        let mut hosts = [site, host("B", &[], 0, &[("B:shop@v2", "running")])];
        let one = desired(1, &[], None);
        let p = plan(&one, &hosts, &HashSet::new(), &mut HashMap::new());
        assert_eq!(p, Plan::default());
        hosts[0] = host("S", &[], 0, &[("S:shop@v2", "running")]);
        let p = plan(&one, &hosts, &HashSet::new(), &mut HashMap::new());
        assert_eq!(p.stop.len(), 1, "{p:?}");

        // A rollout during the cut: the site's old copy holds its place; no
        // new version elsewhere. Heard again, it is replaced in place.
        let mut site = host("S", &[("tier", "edge")], 0, &[("S:shop@v1", "unreachable")]);
        (site.reachable, site.partitioned) = (false, true);
        let mut hosts = [site, host("B", &[("tier", "edge")], 0, &[])];
        let v2 = desired(1, &[("tier", "edge")], None);
        let p = plan(&v2, &hosts, &HashSet::new(), &mut HashMap::new());
        assert_eq!(p, Plan::default());
        hosts[0] = host("S", &[("tier", "edge")], 0, &[("S:shop@v1", "running")]);
        let p = plan(&v2, &hosts, &HashSet::new(), &mut HashMap::new());
        assert_eq!(p.start, vec![("S".into(), "S:shop@v2".into())]);

        // A site host that missed one listing (its site still heard) is not
        // partitioned: its copy counts even for a rescheduling workload.
        let mut slow = host("S", &[("tier", "edge")], 0, &[("S:shop@v2", "unreachable")]);
        slow.reachable = false;
        let hosts = [slow, host("B", &[("tier", "edge")], 0, &[])];
        let p = plan(&moving, &hosts, &HashSet::new(), &mut HashMap::new());
        assert_eq!(p, Plan::default());
        // Never a placement on a silent host.
        let mut silent = host("S", &[], 0, &[]);
        (silent.reachable, silent.partitioned) = (false, true);
        let p = plan(
            &desired(1, &[], None),
            &[silent],
            &HashSet::new(),
            &mut HashMap::new(),
        );
        assert_eq!(p, Plan::default());
    }
}
