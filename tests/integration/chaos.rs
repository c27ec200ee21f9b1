//! The lattice under NATS trouble: every process stops on SIGTERM within its
//! drain timeout with NATS gone, and under steady HTTP load through a
//! provider, NATS restarts twice and a provider and a host are killed while
//! no request hangs, nothing applied is lost, and a later apply is placed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::lattice::{Nats, cli, host, provider_with, scheduler_with};
use crate::support::{TestResult, eventually, example_manifest, get, repo, scratch};

/// How long any one request may take before it counts as hung: the
/// component's 2 s timeout, the binding's 1 s, and room for a slow machine.
const REQUEST_BOUND: Duration = Duration::from_secs(15);

#[tokio::test]
async fn every_process_stops_within_its_drain_timeout_with_nats_gone() -> TestResult {
    let mut nats = Nats::start("drain")?;
    let drain = ["--drain-timeout", "1s"];
    let mut kv = provider_with(&nats, "trellis-keyvalue-nats", "keyvalue", &drain)?;
    let greetings = repo().join("examples/counter/greetings.yaml");
    let mut h = host(&nats, &[&greetings], &drain)?;
    let mut sched = scheduler_with(&nats, &drain)?;
    // Keep a keep-alive HTTP connection open, as a client would.
    let _idle = std::net::TcpStream::connect(h.addr)?;
    nats.kill();
    for (name, took) in [
        ("the host", h.terminate(Duration::from_secs(20))?),
        ("the provider", kv.terminate(Duration::from_secs(20))?),
        (
            "the scheduler",
            sched.process.terminate(Duration::from_secs(20))?,
        ),
    ] {
        eprintln!("{name} stopped {took:?} after SIGTERM with NATS gone");
    }
    Ok(())
}

/// `manifest` (the example, absolute paths) with a deploy block, in `dir`.
fn applied(dir: &Path, file: &str, deploy: &str) -> Result<std::path::PathBuf, std::io::Error> {
    let out = dir.join(file);
    std::fs::write(
        &out,
        format!("{}deploy:\n{deploy}", example_manifest(file)?),
    )?;
    Ok(out)
}

/// The `running` count `get workloads` shows for `name`.
fn running(nats: &Nats, name: &str) -> Option<u64> {
    let (code, out, _) = cli(nats, &["get", "workloads", "-o", "json"]).ok()?;
    if code != 0 {
        return None;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
    rows.iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["running"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lattice_rides_out_nats_restarts_and_killed_processes() -> TestResult {
    let dir = scratch("chaos")?;
    let mut nats = Nats::start("chaos")?;
    let mut providers = [
        provider_with(&nats, "trellis-keyvalue-nats", "keyvalue", &[])?,
        provider_with(&nats, "trellis-keyvalue-nats", "keyvalue", &[])?,
    ];
    let h1 = host(&nats, &[], &["--id", "h1"])?;
    let mut h2 = host(&nats, &[], &["--id", "h2"])?;
    let _sched = scheduler_with(&nats, &[])?;
    let counter = applied(&dir, "lattice.yaml", "  replicas: 2\n")?;
    let counter = counter.display().to_string();
    let (code, _, err) = cli(&nats, &["apply", "-f", &counter])?;
    assert_eq!(code, 0, "{err}");
    eventually(Duration::from_secs(30), "both replicas run", async || {
        (running(&nats, "counter")? == 2).then_some(())
    })
    .await?;

    // Steady load on both hosts; every request must end within its bound.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, hung) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut load = Vec::new();
    for addr in [h1.addr, h2.addr] {
        let (stop, ok, failed, hung) = (stop.clone(), ok.clone(), failed.clone(), hung.clone());
        load.push(tokio::spawn(async move {
            // A refused connection (a killed host) answers at once: at most one
            // request per 5 ms, a slow one followed at once by the next.
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                match tokio::time::timeout(REQUEST_BOUND, get(addr, "localhost", "/")).await {
                    Ok(Ok(reply)) if reply.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => failed.fetch_add(1, Ordering::Relaxed),
                    Err(_) => hung.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let served_again = async |what: &str| {
        let before = ok.load(Ordering::Relaxed);
        eventually(Duration::from_secs(30), what, async || {
            (ok.load(Ordering::Relaxed) > before + 10).then_some(())
        })
        .await
    };
    served_again("requests succeed under load").await?;
    for round in 1..=2 {
        nats.restart()?;
        served_again(&format!("requests succeed after NATS restart {round}")).await?;
    }
    providers[0].kill();
    served_again("requests succeed with one provider killed").await?;
    h2.kill();
    served_again("requests succeed on the surviving host").await?;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await?;
    }
    let (ok, failed, hung) = (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        hung.load(Ordering::Relaxed),
    );
    eprintln!("chaos: {ok} requests served, {failed} failed within their bound, {hung} hung");
    assert_eq!(hung, 0, "requests hung");
    assert!(providers[1].alive(), "the surviving provider died");

    // Nothing applied was lost, and an apply made now is placed.
    let (code, out, err) = cli(&nats, &["get", "workloads", "-o", "json"])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"counter\""),
        "the applied workload was lost: {out}"
    );
    let greetings = applied(&dir, "greetings.yaml", "  replicas: 1\n")?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &greetings.display().to_string()])?;
    assert_eq!(code, 0, "{err}");
    eventually(
        Duration::from_secs(30),
        "the new workload runs",
        async || (running(&nats, "greetings")? == 1).then_some(()),
    )
    .await?;
    Ok(())
}
