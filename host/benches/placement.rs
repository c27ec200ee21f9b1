//! Placement at scale: the real scheduler (in process) places BENCH_WORKLOADS
//! workloads (10,000) over BENCH_HOSTS simulated hosts (1,000) and the time to
//! converge is measured. A simulated host is a task that serves the real control
//! API (`trellis:control/host`) over wRPC and publishes heartbeats; it records
//! starts instead of running components. There is no same-run anchor for this one;
//! the figure is printed with its rate.
//!
//! Run with `scripts/bench placement`.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt as _;
use support::{nats_server, setting};
use trellis_control_api::{Refusal, WorkloadState, WorkloadStatus};
use trellis_lattice::{HostHeartbeat, Subjects};
use trellis_scheduler::{Desired, Scheduler, Store};
use wrpc_transport_nats::NatsContext;

use trellis_host::control::bindings;
use trellis_host::control::bindings::exports::trellis::control::host::{self as api, HostInfo};

/// A host that records what it is told to run.
#[derive(Clone)]
struct SimulatedHost {
    id: String,
    running: Arc<Mutex<BTreeMap<String, String>>>,
    total: Arc<AtomicUsize>,
}

impl api::Handler<NatsContext> for SimulatedHost {
    async fn start(
        &self,
        _: NatsContext,
        id: String,
        _manifest: String,
    ) -> anyhow::Result<Result<WorkloadStatus, Refusal>> {
        let name = id.split(':').nth(1).unwrap_or_default().to_string();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.insert(id.clone(), name.clone()).is_none() {
            self.total.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Ok(status(&id, &name)))
    }

    async fn stop(&self, _: NatsContext, id: String) -> anyhow::Result<Result<(), Refusal>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.remove(&id) {
            Some(_) => {
                self.total.fetch_sub(1, Ordering::Relaxed);
                Ok(Ok(()))
            }
            None => Ok(Err(Refusal::NotFound(id))),
        }
    }

    async fn workloads(&self, _: NatsContext) -> anyhow::Result<Vec<WorkloadStatus>> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        Ok(running.iter().map(|(id, name)| status(id, name)).collect())
    }

    async fn inspect(
        &self,
        _: NatsContext,
        id: String,
    ) -> anyhow::Result<Result<WorkloadStatus, Refusal>> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match running.get(&id) {
            Some(name) => Ok(status(&id, name)),
            None => Err(Refusal::NotFound(id)),
        })
    }

    async fn describe(&self, cx: NatsContext) -> anyhow::Result<HostInfo> {
        Ok(HostInfo {
            id: self.id.clone(),
            lattice: "default".into(),
            labels: Vec::new(),
            version: "simulated".into(),
            max_instances: 1000,
            workloads: self.workloads(cx).await?,
        })
    }
}

fn status(id: &str, name: &str) -> WorkloadStatus {
    WorkloadStatus {
        id: id.to_string(),
        name: name.to_string(),
        state: WorkloadState::Running,
        routes: Vec::new(),
        last_error: None,
    }
}

/// Serves one simulated host's control API and heartbeat until the process ends.
async fn simulate(nats: async_nats::Client, subjects: Subjects, host: SimulatedHost) -> Result<()> {
    let wrpc =
        wrpc_transport_nats::Client::new(nats.clone(), subjects.host(&host.id), None).await?;
    let invocations = bindings::serve(&wrpc, host.clone()).await?;
    let mut calls =
        futures::stream::select_all(invocations.into_iter().map(|(_, _, stream)| stream));
    let beat_subject = subjects.host_heartbeat(&host.id);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let beat = HostHeartbeat {
                id: host.id.clone(),
                labels: BTreeMap::new(),
                version: "simulated".into(),
                uptime_seconds: 0,
                workloads: Vec::new(),
                workload_count: 0,
                max_instances: 1000,
                instances_in_use: 0,
                interfaces: Vec::new(),
                http_listen: None,
                domain: None,
            };
            if let Ok(json) = serde_json::to_vec(&beat) {
                let _ = nats.publish(beat_subject.clone(), json.into()).await;
            }
        }
    });
    while let Some(call) = calls.next().await {
        if let Ok(call) = call {
            tokio::spawn(call);
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let workloads = setting("BENCH_WORKLOADS", 10_000) as usize;
    let hosts = setting("BENCH_HOSTS", 1_000) as usize;
    let dir = std::env::temp_dir().join(format!("trellis-bench-place-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nats = nats_server(&dir.join("js"))?;
    let url = format!("nats://{}", nats.addr);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let subjects = Subjects::new("default");
        let total = Arc::new(AtomicUsize::new(0));
        // A connection per 100 simulated hosts.
        let mut connections = Vec::new();
        for _ in 0..hosts.div_ceil(100) {
            connections.push(async_nats::connect(&url).await?);
        }
        for i in 0..hosts {
            let host = SimulatedHost {
                id: format!("sim{i:04}"),
                running: Arc::default(),
                total: total.clone(),
            };
            let nats = connections[i / 100].clone();
            let subjects = subjects.clone();
            tokio::spawn(async move {
                if let Err(e) = simulate(nats, subjects, host).await {
                    eprintln!("simulated host failed: {e:#}");
                }
            });
        }
        let client = async_nats::connect(&url).await?;
        let scheduler = Scheduler::new(client.clone(), subjects.clone(), "bench").await?;
        tokio::spawn(scheduler.run(std::future::pending()));
        tokio::time::sleep(Duration::from_millis(2500)).await; // every host heartbeats

        let template = support::example_manifest("workload.yaml")?;
        let store = Store::open(client, &subjects).await?;
        let start = Instant::now();
        for i in 0..workloads {
            let text = template.replace("name: counter", &format!("name: w{i:05}"));
            let desired = Desired::from_manifest(&text, &dir.join("w.yaml"), &dir)?;
            store.apply(&desired).await?;
        }
        let applied = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(600);
        while total.load(Ordering::Relaxed) < workloads && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let converged = start.elapsed();
        let placed = total.load(Ordering::Relaxed);
        println!("{workloads} workloads over {hosts} simulated hosts (real scheduler, real control API over NATS):");
        println!("  applied (KV writes) in      {:>8.2} s", applied.as_secs_f64());
        println!("  converged (all running) in  {:>8.2} s   ({placed} placed, {:.0} workloads/s)", converged.as_secs_f64(), placed as f64 / converged.as_secs_f64());
        anyhow::Ok(())
    })?;
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
