//! `trellis scheduler`: keeps the lattice's desired state (JetStream KV) true.
//!
//! Level-triggered: every tick (and at once when the desired state changes) the
//! leader reads the desired workloads and what
//! each live host runs (its control API), plans each workload
//! ([`placement::plan`]), starts and stops copies, and writes a status. Hosts are
//! live while their heartbeats arrive. Several schedulers may run; the one holding
//! the KV lease acts, and another takes over when the lease lapses.
//!
//! Hosts at a leaf site (their heartbeats name a JetStream domain other than
//! the scheduler's) are judged by site: one silent host among heard ones is
//! dead, but a site whose hosts are all silent is cut off, and its copies are
//! held — still counted, told nothing — per the workload's `deploy.partition`.

#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod lease;
pub mod placement;
mod secrets;
mod store;
mod telemetry;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

pub use lease::Lease;
use placement::{Copy, HostView};
pub use secrets::{secrets_bucket, serve_secrets};
use store::refuse_mirror;
pub use store::{Applied, Desired, LEASE_TTL, Replica, SiteCopy, Status, Store, parse_id};
use trellis_control_api::{ControlClient, WorkloadState};
use trellis_lattice::{HEARTBEAT_INTERVAL, HostHeartbeat, NameKind, Subjects};

/// A host is gone when no heartbeat came for this long.
pub const HOST_DEAD_AFTER: Duration = Duration::from_secs(3);
/// How often the leader reconciles.
pub const TICK: Duration = Duration::from_millis(500);
/// The most hosts tracked at once; heartbeats of more are ignored.
const MAX_HOSTS: usize = 100_000;
/// How long a silent site's hosts are held by default.
pub const FORGET_SILENT_SITES_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the leader lets a burst of desired-state changes gather before acting.
const SETTLE: Duration = Duration::from_millis(50);
/// Bound on one control call to a host (a start may compile).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on asking a host what it runs.
const LIST_TIMEOUT: Duration = Duration::from_secs(1);

/// Why scheduling state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A scheduling bucket could not be opened.
    #[error(transparent)]
    Bucket(#[from] trellis_lattice::BucketError),
    /// A JetStream KV operation on a scheduling bucket failed.
    #[error("JetStream KV {op} failed: {source}")]
    Kv {
        /// The operation (`entry`, `put`, `watch`, …).
        op: &'static str,
        /// What JetStream said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A desired-state record would not fit one NATS message.
    #[error(
        "workload `{name}` is {size} bytes as desired state; this NATS server takes at most {max}"
    )]
    TooLarge {
        /// The workload.
        name: String,
        /// Its record's size.
        size: usize,
        /// The most the server takes.
        max: usize,
    },
    /// The pass outlived this scheduler's lease and stopped acting.
    #[error("the scheduler lease may have lapsed; the pass stopped")]
    LeaseLost,
    /// Concurrent applies of one workload kept winning the compare-and-set.
    #[error("workload `{name}` changed under {attempts} applies in a row; try again")]
    Contended {
        /// The workload.
        name: String,
        /// How many writes lost.
        attempts: usize,
    },
    /// A subscription the scheduler needs was refused.
    #[error("cannot subscribe to `{subject}`: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What NATS said.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// A host's control client could not be made.
    #[error(transparent)]
    Control(#[from] trellis_control_api::ControlError),
    /// A stored record is not what this version writes.
    #[error("unreadable record `{key}`: {source}")]
    Record {
        /// Its key.
        key: String,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
    /// The desired state here is a mirror (a leaf site's): schedulers run
    /// where it is written, at the hub.
    #[error(
        "the desired-state bucket `{bucket}` here is a read-only mirror (of {origin}); \
         run the scheduler at the hub, in the domain the mirror copies"
    )]
    Mirror {
        /// The bucket.
        bucket: String,
        /// What it mirrors.
        origin: String,
    },
    /// A reader found no scheduling bucket here.
    #[error(
        "no bucket `{bucket}` in this JetStream domain ({source}): the scheduler makes it at \
         the hub; at a leaf site, `trellis mirror` copies it"
    )]
    NoState {
        /// The bucket.
        bucket: String,
        /// What JetStream said.
        #[source]
        source: async_nats::jetstream::context::KeyValueError,
    },
    /// A record could not be encoded.
    #[error("cannot encode a record: {0}")]
    Encode(#[source] serde_json::Error),
}

/// What the desired-state follower reports.
enum Followed {
    /// The whole state, read afresh.
    Snapshot(BTreeMap<String, (u64, Desired)>),
    /// One change after the snapshot.
    Change(kv::Entry),
    /// The watch ended: what is held may be stale until the next snapshot.
    Stale,
}

/// Keeps the desired state coming: a snapshot and a watch, again after any
/// failure, with a backoff between attempts.
async fn follow(store: Store, to: tokio::sync::mpsc::Sender<Followed>) {
    let mut backoff = Backoff::default();
    loop {
        match store.follow_desired().await {
            Ok((known, mut watch)) => {
                if to.send(Followed::Snapshot(known)).await.is_err() {
                    return;
                }
                backoff = Backoff::default();
                loop {
                    match watch.next().await {
                        Some(Ok(entry)) => {
                            if to.send(Followed::Change(entry)).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!("the desired-state watch failed: {e}");
                            break;
                        }
                        None => {
                            tracing::warn!("the desired-state watch ended");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot read the desired state: {e}"),
        }
        if to.send(Followed::Stale).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Doubling delays from 100 ms, at most 5 s.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        self.0 = (self.0 + 1).min(6);
        Duration::from_millis(100 << (self.0 - 1)).min(Duration::from_secs(5))
    }
}

/// When a copy that failed to start on a host is tried there again.
struct Retry {
    at: Instant,
    delay: Duration,
}

/// The first retry of a failed start waits this long; each next one twice as long.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries of a failed start.
const LAST_RETRY: Duration = Duration::from_secs(300);

/// A scheduler process.
pub struct Scheduler {
    nats: async_nats::Client,
    subjects: Subjects,
    store: Store,
    lease: Lease,
    hosts: Arc<Mutex<HashMap<String, (Instant, HostHeartbeat)>>>,
    /// What each host last reported running: a silent site's copies.
    last_copies: HashMap<String, Vec<Copy>>,
    /// Since when each site host has been silent with its whole site.
    silent_since: HashMap<String, SystemTime>,
    /// How long a silent site's hosts are held before they are forgotten.
    forget_after: Duration,
    clients: HashMap<String, ControlClient>,
    pending: Arc<Mutex<HashSet<String>>>,
    errors: Arc<Mutex<HashMap<String, String>>>,
    /// The desired state, by name, with each entry's KV revision.
    desired: BTreeMap<String, (u64, Desired)>,
    /// The status last written for each workload, so unchanged ones are not rewritten.
    written: HashMap<String, Status>,
    /// Failed copies, by ID, and when each is tried again.
    retries: HashMap<String, Retry>,
    /// How long a shutdown may take, whatever NATS is doing.
    drain: Duration,
}

impl Scheduler {
    /// A scheduler named `me` on the lattice `subjects` describes.
    pub async fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        me: &str,
    ) -> Result<Self, SchedulerError> {
        refuse_mirror(&nats, &subjects).await?;
        let store = Store::open(nats.clone(), &subjects).await?;
        let lease = Lease::new(store.lease().clone(), me);
        Ok(Scheduler {
            nats,
            subjects,
            store,
            lease,
            hosts: Arc::default(),
            last_copies: HashMap::new(),
            silent_since: HashMap::new(),
            forget_after: FORGET_SILENT_SITES_AFTER,
            clients: HashMap::new(),
            pending: Arc::default(),
            errors: Arc::default(),
            desired: BTreeMap::new(),
            written: HashMap::new(),
            retries: HashMap::new(),
            drain: Duration::from_secs(10),
        })
    }

    /// Bounds the shutdown (giving up the lease) by `drain`; 10 s by default.
    pub fn drain_timeout(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Forgets the hosts of a site silent for longer than `after` (7 days by
    /// default): their copies stop counting, and workloads they held are
    /// placed elsewhere if their selectors allow.
    pub fn forget_silent_sites_after(mut self, after: Duration) -> Self {
        self.forget_after = after;
        self
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), SchedulerError> {
        let mut beats = self
            .nats
            .subscribe(self.subjects.host_heartbeats())
            .await
            .map_err(|source| SchedulerError::Subscribe {
                subject: self.subjects.host_heartbeats(),
                source,
            })?;
        // Hosts are heard before the first pass: a scheduler that acted at
        // once would see none and hold every site it once recorded as cut.
        let listening = Instant::now();
        let hosts = self.hosts.clone();
        let mine = self.subjects.domain().map(str::to_string);
        let watcher = tokio::spawn(async move {
            while let Some(message) = beats.next().await {
                // A heartbeat counts only for the host its subject names, with
                // an ID that is one valid subject token.
                let Ok(beat) = serde_json::from_slice::<HostHeartbeat>(&message.payload) else {
                    continue;
                };
                let named = message.subject.split('.').nth(4) == Some(beat.id.as_str());
                if !named || trellis_lattice::check_name(NameKind::Host, &beat.id).is_err() {
                    tracing::debug!(subject = %message.subject, "ignoring a heartbeat whose ID does not match its subject");
                    continue;
                }
                let mut hosts = hosts.lock().unwrap_or_else(|p| p.into_inner());
                if hosts.len() >= MAX_HOSTS && !hosts.contains_key(&beat.id) {
                    // Dead hosts make room; a silent site's are held.
                    hosts.retain(|_, (seen, beat)| {
                        seen.elapsed() < HOST_DEAD_AFTER || at_other_site(beat, mine.as_deref())
                    });
                    if hosts.len() >= MAX_HOSTS {
                        tracing::warn!(max = MAX_HOSTS, "ignoring a heartbeat: too many hosts");
                        continue;
                    }
                }
                hosts.insert(beat.id.clone(), (Instant::now(), beat));
            }
        });
        // The desired state is held in memory and kept current by a KV watch, so a
        // tick reads nothing from JetStream and an apply is acted on at once.
        // Whatever ends the watch, the follower reads the whole state again and
        // watches anew; until it has, the state is stale and nobody acts on it.
        let (changed_tx, mut changes) = tokio::sync::mpsc::channel::<Followed>(1024);
        let follower = tokio::spawn(follow(self.store.clone(), changed_tx));
        let mut fresh = false;
        let mut tick = tokio::time::interval(TICK);
        tokio::pin!(shutdown);
        let mut leading = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(followed) = changes.recv() => {
                    fresh = self.take(followed, fresh);
                    // A burst of applies becomes one pass, not one pass each.
                    tokio::time::sleep(SETTLE).await;
                    while let Ok(followed) = changes.try_recv() {
                        fresh = self.take(followed, fresh);
                    }
                }
                () = &mut shutdown => break,
            }
            // A pass waits on NATS; a shutdown does not wait for the pass.
            let pass = async {
                let now_leading = self.lease.hold().await;
                if now_leading != leading {
                    tracing::info!(leading = now_leading, "scheduler leadership changed");
                    leading = now_leading;
                    if leading {
                        self.recall_sites().await;
                    }
                }
                if leading && !fresh {
                    tracing::debug!("not acting: the desired state is being read again");
                }
                let heard = listening.elapsed() > HEARTBEAT_INTERVAL + TICK / 2;
                if leading && fresh && heard {
                    let span = trellis_process::entry_span!(
                        trellis_process::sample(None),
                        "scheduler.pass",
                        otel.status_code = tracing::field::Empty
                    );
                    let started = Instant::now();
                    let result = self.reconcile().instrument(span.clone()).await;
                    telemetry::pass(started.elapsed(), result.is_ok());
                    if let Err(e) = result {
                        span.record("otel.status_code", "ERROR");
                        tracing::warn!(parent: &span, "reconcile failed: {e}");
                    }
                }
            };
            tokio::select! {
                () = pass => {}
                () = &mut shutdown => break,
            }
        }
        watcher.abort();
        follower.abort();
        if tokio::time::timeout(self.drain, self.lease.release())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.drain, "could not give up the lease in time; it lapses by itself");
        }
        Ok(())
    }

    /// Takes what the follower sends; returns whether the state is fresh now.
    fn take(&mut self, followed: Followed, fresh: bool) -> bool {
        match followed {
            Followed::Snapshot(known) => {
                self.desired = known;
                true
            }
            Followed::Change(entry) => {
                self.follow(entry);
                fresh
            }
            Followed::Stale => false,
        }
    }

    /// Applies one change of the desired state, ignoring what the initial read
    /// already had.
    fn follow(&mut self, entry: kv::Entry) {
        if self
            .desired
            .get(&entry.key)
            .is_some_and(|(revision, _)| *revision >= entry.revision)
        {
            return;
        }
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<Desired>(&entry.value) {
                Ok(desired) => {
                    self.desired.insert(entry.key, (entry.revision, desired));
                }
                Err(e) => tracing::warn!(key = %entry.key, "unreadable desired state: {e}"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                self.desired.remove(&entry.key);
            }
        }
    }

    /// Whether `beat` comes from a host at a leaf site (another JetStream domain).
    fn is_remote(&self, beat: &HostHeartbeat) -> bool {
        at_other_site(beat, self.subjects.domain())
    }

    /// Hosts by heartbeat: those heard lately, and those of leaf sites that
    /// are silent as a whole (kept until heard again, or forgotten after
    /// `forget_after`).
    fn known_hosts(&mut self) -> (Vec<HostHeartbeat>, Vec<HostHeartbeat>) {
        let mine = self.subjects.domain().map(str::to_string);
        let mine = mine.as_deref();
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let heard_sites: HashSet<Option<String>> = hosts
            .values()
            .filter(|(seen, _)| seen.elapsed() < HOST_DEAD_AFTER)
            .map(|(_, beat)| beat.domain.clone())
            .collect();
        let cut_off =
            |beat: &HostHeartbeat| at_other_site(beat, mine) && !heard_sites.contains(&beat.domain);
        let now = SystemTime::now();
        let (mut live, mut silent) = (Vec::new(), Vec::new());
        hosts.retain(|id, (seen, beat)| {
            if seen.elapsed() < HOST_DEAD_AFTER {
                self.silent_since.remove(id);
                live.push(beat.clone());
                return true;
            }
            if !cut_off(beat) {
                self.silent_since.remove(id);
                return seen.elapsed() < HOST_DEAD_AFTER * 10;
            }
            let since = *self.silent_since.entry(id.clone()).or_insert(now);
            if now.duration_since(since).unwrap_or_default() > self.forget_after {
                tracing::warn!(host = %id, site = ?beat.domain, "forgetting a host whose site has been silent too long");
                self.silent_since.remove(id);
                return false;
            }
            silent.push(beat.clone());
            true
        });
        (live, silent)
    }

    /// On taking the lease: the site copies the last leader recorded, so a
    /// site silent since before this scheduler started is held all the same.
    async fn recall_sites(&mut self) {
        let statuses = match self.store.all_status().await {
            Ok(statuses) => statuses,
            Err(e) => {
                tracing::warn!("cannot read the status to recall leaf sites: {e}");
                return;
            }
        };
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        // Old enough to count as silent until the host is heard.
        let unheard = Instant::now()
            .checked_sub(HOST_DEAD_AFTER)
            .unwrap_or_else(Instant::now);
        let listed: HashSet<String> = self.last_copies.keys().cloned().collect();
        let now = SystemTime::now();
        for replica in statuses.into_iter().flat_map(|s| s.replicas) {
            let Some(site) = replica.site else { continue };
            // The record is data like any other: a host ID or domain that is
            // no name, or a table already full, recalls nothing.
            let named = trellis_lattice::check_name(NameKind::Host, &replica.host).is_ok()
                && trellis_lattice::check_name(NameKind::Domain, &site.domain).is_ok();
            let room = hosts.len() < MAX_HOSTS || hosts.contains_key(&replica.host);
            if listed.contains(&replica.host) || !named || !room {
                continue;
            }
            hosts.entry(replica.host.clone()).or_insert_with(|| {
                (
                    unheard,
                    HostHeartbeat {
                        id: replica.host.clone(),
                        labels: site.labels.clone(),
                        version: String::new(),
                        uptime_seconds: 0,
                        workloads: Vec::new(),
                        workload_count: 0,
                        max_instances: 0,
                        instances_in_use: 0,
                        interfaces: Vec::new(),
                        http_listen: None,
                        domain: Some(site.domain.clone()),
                    },
                )
            });
            // A time past the clock's range, or in the future, is no time.
            let since = site
                .silent_since
                .and_then(|since| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(since)))
                .filter(|since| *since <= now);
            if let Some(since) = since {
                self.silent_since
                    .entry(replica.host.clone())
                    .or_insert(since);
            }
            self.last_copies
                .entry(replica.host)
                .or_default()
                .push(Copy {
                    id: replica.id,
                    state: replica.state,
                    last_error: None,
                });
        }
    }

    async fn client(&mut self, host: &str) -> Result<ControlClient, SchedulerError> {
        if let Some(client) = self.clients.get(host) {
            return Ok(client.clone());
        }
        let client =
            ControlClient::new(self.nats.clone(), &self.subjects, host, CONTROL_TIMEOUT).await?;
        self.clients.insert(host.to_string(), client.clone());
        Ok(client)
    }

    /// One level-triggered pass over every desired workload.
    async fn reconcile(&mut self) -> Result<(), SchedulerError> {
        let (live, silent) = self.known_hosts();
        // Clients of hosts that went away go with them.
        self.clients
            .retain(|id, _| live.iter().any(|beat| &beat.id == id));
        self.last_copies
            .retain(|id, _| live.iter().chain(&silent).any(|beat| &beat.id == id));
        let mut views_of = Vec::new();
        for beat in live {
            let client = self.client(&beat.id).await?;
            let remote = self.is_remote(&beat);
            views_of.push(async move {
                let copies = tokio::time::timeout(LIST_TIMEOUT, client.workloads()).await;
                let copies = match copies {
                    Ok(Ok(list)) => list,
                    _ => return Err(beat),
                };
                Ok(HostView {
                    id: beat.id,
                    labels: beat.labels,
                    load: beat.instances_in_use,
                    copies: copies
                        .into_iter()
                        .map(|w| Copy {
                            id: w.id,
                            state: state_name(w.state).to_string(),
                            last_error: w.last_error,
                        })
                        .collect(),
                    reachable: true,
                    partitioned: false,
                    site: remote.then_some(beat.domain).flatten(),
                })
            });
        }
        // A host here that does not answer is counted as absent this pass (a
        // crash shows as no responders at once). A site host that does not
        // answer may be behind a link that just failed: it keeps what it last
        // reported, as a silent site's hosts do until they are heard again,
        // but it is partitioned only once its whole site is silent.
        let mut views = Vec::new();
        let mut held: Vec<(HostHeartbeat, bool)> = silent.into_iter().map(|b| (b, true)).collect();
        for listed in futures::future::join_all(views_of).await {
            match listed {
                Ok(view) => {
                    self.last_copies
                        .insert(view.id.clone(), view.copies.clone());
                    views.push(view);
                }
                Err(beat) if self.is_remote(&beat) => held.push((beat, false)),
                Err(_) => {}
            }
        }
        for (beat, partitioned) in held {
            let mut copies = self.last_copies.get(&beat.id).cloned().unwrap_or_default();
            for copy in copies.iter_mut().filter(|c| c.state != "failed") {
                copy.state = "unreachable".into();
            }
            views.push(HostView {
                id: beat.id,
                labels: beat.labels,
                load: beat.instances_in_use,
                copies,
                reachable: false,
                partitioned,
                site: beat.domain,
            });
        }
        self.due_retries(&mut views);
        let desired: Vec<Desired> = self.desired.values().map(|(_, d)| d.clone()).collect();
        let names: HashSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let inventory = placement::Inventory::new(&views, &pending);
        let mut placed = HashMap::new();
        let mut plans = Vec::with_capacity(desired.len());
        for d in &desired {
            plans.push(placement::plan(d, &inventory, &mut placed));
        }
        let live: HashSet<&str> = views
            .iter()
            .filter(|v| v.reachable)
            .map(|v| v.id.as_str())
            .collect();
        for (d, plan) in desired.iter().zip(plans) {
            self.fence()?;
            // Copies this scheduler last saw on hosts that are gone now.
            let lost = self.written.get(&d.name).map_or(0, |status| {
                status
                    .replicas
                    .iter()
                    .filter(|r| r.version == d.version && !live.contains(r.host.as_str()))
                    .count()
            });
            telemetry::planned(
                &d.name,
                plan.start.len(),
                lost.min(plan.start.len()),
                plan.stop.len(),
            );
            for (host, id) in plan.start {
                self.start(&host, id, d).await?;
            }
            for (host, id) in plan.stop {
                self.stop(&host, id).await?;
            }
            let status = self.status_of(d, &inventory);
            if self.written.get(&d.name) != Some(&status) {
                self.store.put_status(&status).await?;
                self.written.insert(d.name.clone(), status);
            }
        }
        // Copies of workloads nobody wants any more (a silent site's wait).
        for view in views.iter().filter(|v| v.reachable) {
            for copy in &view.copies {
                if let Some((_, name, _)) = parse_id(&copy.id)
                    && !names.contains(name)
                {
                    self.fence()?;
                    self.stop(&view.id, copy.id.clone()).await?;
                    self.store.forget_status(name).await;
                    self.written.remove(name);
                }
            }
        }
        Ok(())
    }

    /// Stops a pass whose lease may have lapsed: another scheduler may lead now.
    fn fence(&self) -> Result<(), SchedulerError> {
        if self.lease.valid() {
            Ok(())
        } else {
            Err(SchedulerError::LeaseLost)
        }
    }

    /// Failed copies whose retry is due are taken out of the views, so the
    /// plan starts them again on the same host; the others wait, each twice
    /// as long as before.
    fn due_retries(&mut self, views: &mut [HostView]) {
        let now = Instant::now();
        let mut failed = HashSet::new();
        for view in views.iter_mut() {
            view.copies.retain(|copy| {
                if copy.state != "failed" {
                    return true;
                }
                failed.insert(copy.id.clone());
                let retry = self.retries.entry(copy.id.clone()).or_insert(Retry {
                    at: now + FIRST_RETRY,
                    delay: FIRST_RETRY,
                });
                if now < retry.at {
                    return true;
                }
                retry.delay = (retry.delay * 2).min(LAST_RETRY);
                retry.at = now + retry.delay;
                tracing::info!(id = %copy.id, next = ?retry.delay, "retrying a failed start");
                false
            });
        }
        // Copies that recovered or went away need no retry.
        self.retries.retain(|id, _| failed.contains(id));
    }

    async fn start(
        &mut self,
        host: &str,
        id: String,
        desired: &Desired,
    ) -> Result<(), SchedulerError> {
        let client = self.client(host).await?;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        tracing::info!(%id, "starting");
        let (pending, errors) = (self.pending.clone(), self.errors.clone());
        let (manifest, key) = (
            desired.manifest.clone(),
            format!("{}@{}", desired.name, desired.version),
        );
        tokio::spawn(
            async move {
                match client.start(&id, &manifest).await {
                    Ok(_) => {
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&key);
                    }
                    Err(e) => {
                        tracing::warn!(%id, "start failed: {e}");
                        errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key, e.to_string());
                    }
                }
                pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            }
            .in_current_span(),
        );
        Ok(())
    }

    async fn stop(&mut self, host: &str, id: String) -> Result<(), SchedulerError> {
        let client = self.client(host).await?;
        tracing::info!(%id, "stopping");
        tokio::spawn(
            async move {
                if let Err(e) = client.stop(&id).await {
                    tracing::warn!(%id, "stop failed: {e}");
                }
            }
            .in_current_span(),
        );
        Ok(())
    }

    fn status_of(&self, desired: &Desired, inventory: &placement::Inventory<'_>) -> Status {
        let mut replicas = Vec::new();
        let mut host_error = None;
        for (host, id, version, state, error) in inventory.copies_of(&desired.name) {
            if version == desired.version && error.is_some() {
                host_error = error.map(str::to_string);
            }
            let site = host.site.as_ref().map(|domain| store::SiteCopy {
                domain: domain.clone(),
                labels: host.labels.clone(),
                silent_since: self
                    .silent_since
                    .get(&host.id)
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
            });
            replicas.push(Replica {
                id: id.to_string(),
                host: host.id.clone(),
                version: version.to_string(),
                state: state.to_string(),
                site,
            });
        }
        replicas.sort_by(|a, b| a.id.cmp(&b.id));
        let key = format!("{}@{}", desired.name, desired.version);
        let last_error = self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
            .or(host_error);
        Status {
            name: desired.name.clone(),
            version: desired.version.clone(),
            desired: desired.replicas,
            running: replicas
                .iter()
                .filter(|r| r.version == desired.version && r.state == "running")
                .count() as u32,
            replicas,
            last_error,
        }
    }
}

/// Whether `beat` comes from a leaf site: a domain other than `mine`.
fn at_other_site(beat: &HostHeartbeat, mine: Option<&str>) -> bool {
    beat.domain.is_some() && beat.domain.as_deref() != mine
}

fn state_name(state: WorkloadState) -> &'static str {
    match state {
        WorkloadState::Starting => "starting",
        WorkloadState::Running => "running",
        WorkloadState::Failed => "failed",
    }
}

/// Labels as `k=v,k=v`, for tables.
pub fn show_labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
