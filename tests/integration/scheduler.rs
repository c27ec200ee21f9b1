//! `trellis scheduler` with real processes: nats-server, three labelled hosts, one or
//! two schedulers, and the CLI. Placement, scaling, rollouts, a bad version, a host
//! killed and restarted, a scheduler killed, and bad input through the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lattice::{LatticeHost, Nats, cli, host, scheduler};
use crate::support::{TestResult, eventually, example_manifest, get, holds_for, scratch};

/// The example counter as a scheduled workload, with absolute component paths.
fn manifest(dir: &Path, deploy: &str, greeting_binding: &str) -> Result<PathBuf, std::io::Error> {
    let text = example_manifest("workload.yaml")?.replace("wasi:keyvalue: host", greeting_binding);
    let file = dir.join("counter.yaml");
    std::fs::write(&file, format!("{text}deploy:\n{deploy}"))?;
    Ok(file)
}

/// `get workloads -o json` as name -> row.
fn workloads(nats: &Nats) -> Result<BTreeMap<String, Value>, String> {
    let (code, out, err) = cli(nats, &["get", "workloads", "-o", "json"])?;
    if code != 0 {
        return Err(err);
    }
    let rows: Vec<Value> = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
    Ok(rows
        .into_iter()
        .map(|r| (r["name"].as_str().unwrap_or_default().to_string(), r))
        .collect())
}

/// The replicas of `name`, from `describe workload -o json`.
fn replicas(nats: &Nats, name: &str) -> Result<Value, String> {
    let (code, out, err) = cli(nats, &["describe", "workload", name, "-o", "json"])?;
    if code != 0 {
        return Err(err);
    }
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

/// Waits until `check` holds for the described workload, returning it.
async fn wait_until(
    nats: &Nats,
    name: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let mut last = Value::Null;
    let found = eventually(limit, "the workload's state", async || {
        let v = replicas(nats, name).ok()?;
        if check(&v) {
            return Some(v);
        }
        last = v;
        None
    })
    .await;
    found.map_err(|e| format!("{e}; last: {last}"))
}

fn running(v: &Value) -> u64 {
    v["status"]["running"].as_u64().unwrap_or(0)
}

/// Hosts of replicas of the current version in state `running`.
/// The hosts running the current version, by the names the tests gave them.
fn current_hosts(nats: &Nats, v: &Value) -> Vec<String> {
    let version = v["version"].as_str().unwrap_or_default();
    let mut hosts: Vec<String> = v["status"]["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["version"] == version && r["state"] == "running")
        .filter_map(|r| r["host"].as_str().map(|id| nats.host_name(id)))
        .collect();
    hosts.sort();
    hosts
}

struct Lattice {
    nats: Nats,
    hosts: BTreeMap<String, LatticeHost>,
}

impl Lattice {
    fn start(name: &str) -> Result<Lattice, String> {
        let nats = Nats::start(name)?;
        let mut hosts = BTreeMap::new();
        for (id, zone) in [("H1", "a"), ("H2", "a"), ("H3", "b")] {
            let zone = format!("zone={zone}");
            hosts.insert(
                id.to_string(),
                host(&nats, &[], &["--id", id, "--label", &zone])?,
            );
        }
        Ok(Lattice { nats, hosts })
    }

    async fn visit(&self, id: &str) -> Result<u16, Box<dyn std::error::Error>> {
        let addr = self.hosts.get(id).ok_or("no such host")?.addr;
        Ok(
            tokio::time::timeout(Duration::from_secs(5), get(addr, "localhost", "/"))
                .await??
                .status,
        )
    }
}

#[tokio::test]
async fn the_scheduler_places_scales_rolls_out_and_reschedules() -> TestResult {
    let mut lattice = Lattice::start("sched")?;
    let _s = scheduler(&lattice.nats)?;
    let dir = scratch("sched")?;
    let nats = &lattice.nats;

    // Placement by labels: one replica, zone a only.
    let file = manifest(
        &dir,
        "  replicas: 1\n  selector: {zone: a}\n",
        "wasi:keyvalue: host",
    )?;
    let file_arg = file.to_string_lossy().to_string();
    let (code, out, err) = cli(nats, &["apply", "-f", &file_arg])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("workload/counter created"), "{out}");
    let v = wait_until(nats, "counter", Duration::from_secs(15), |v| {
        running(v) == 1
    })
    .await?;
    let placed = current_hosts(nats, &v);
    assert!(placed == ["H1"] || placed == ["H2"], "{v}");
    assert_eq!(lattice.visit(&placed[0]).await?, 200);
    let (code, out, _) = cli(nats, &["apply", "-f", &file_arg])?;
    assert_eq!((code, out.contains("unchanged")), (0, true), "{out}");

    // Scale up within the selector: only two hosts match, so two run and one waits.
    manifest(
        &dir,
        "  replicas: 3\n  selector: {zone: a}\n",
        "wasi:keyvalue: host",
    )?;
    cli(nats, &["apply", "-f", &file_arg])?;
    let v = wait_until(nats, "counter", Duration::from_secs(15), |v| {
        running(v) == 2
    })
    .await?;
    assert_eq!(current_hosts(nats, &v), ["H1", "H2"], "{v}");

    // A new version everywhere (no selector): rolled out, old copies retired, and a host
    // that served before keeps answering 200 throughout.
    manifest(&dir, "  replicas: 3\n", "wasi:keyvalue: host")?;
    cli(nats, &["apply", "-f", &file_arg])?;
    // Every look also checks that H1 answers; the first miss is kept.
    let mut outage = None;
    let v = eventually(
        Duration::from_secs(20),
        "the rollout finishes",
        async || {
            let status = lattice.visit("H1").await.ok();
            if status != Some(200) {
                outage.get_or_insert(status);
            }
            let v = replicas(nats, "counter").ok()?;
            let replicas = v["status"]["replicas"].as_array().map_or(0, Vec::len);
            (current_hosts(nats, &v) == ["H1", "H2", "H3"] && replicas == 3).then_some(v)
        },
    )
    .await?;
    assert_eq!(outage, None, "H1 stopped serving during the rollout");
    let good_version = v["version"].clone();

    // A version that cannot start: the old one keeps serving, the error is visible.
    manifest(&dir, "  replicas: 3\n", "wasi:keyvalue: {provider: nobody}")?;
    cli(nats, &["apply", "-f", &file_arg])?;
    let v = wait_until(nats, "counter", Duration::from_secs(15), |v| {
        v["status"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("provider `nobody`"))
    })
    .await?;
    assert_eq!(running(&v), 0, "{v}");
    for id in ["H1", "H2", "H3"] {
        assert_eq!(lattice.visit(id).await?, 200, "{id} lost the old version");
    }
    let (_, table, _) = cli(nats, &["get", "workloads"])?;
    assert!(table.contains("provider `nobody`"), "{table}");

    // Back to the good manifest (and down to 2): forgetting the failed copies must not
    // stop the good version, so at least two hosts serve at every moment.
    manifest(&dir, "  replicas: 2\n", "wasi:keyvalue: host")?;
    cli(nats, &["apply", "-f", &file_arg])?;
    let mut fewest = 3;
    let v = eventually(
        Duration::from_secs(15),
        "the workload settles at 2",
        async || {
            let mut serving = 0;
            for id in ["H1", "H2", "H3"] {
                if lattice.visit(id).await.ok() == Some(200) {
                    serving += 1;
                }
            }
            fewest = fewest.min(serving);
            let v = replicas(nats, "counter").ok()?;
            let copies = v["status"]["replicas"].as_array().map_or(0, Vec::len);
            (running(&v) == 2 && copies == 2).then_some(v)
        },
    )
    .await?;
    assert!(
        fewest >= 2,
        "only {fewest} hosts served during the recovery"
    );
    assert_eq!(v["version"], good_version, "scaling is not a new version");
    let victim = current_hosts(nats, &v)[0].clone();
    let killed = Instant::now();
    lattice.hosts.get_mut(&victim).ok_or("no victim")?.kill();
    let v = wait_until(nats, "counter", Duration::from_secs(15), |v| {
        let hosts = current_hosts(nats, v);
        hosts.len() == 2 && !hosts.contains(&victim)
    })
    .await?;
    eprintln!(
        "rescheduled {:?} after kill -9 of {victim}",
        killed.elapsed()
    );

    // The host comes back: nothing is duplicated on it.
    let zone = if victim == "H3" { "zone=b" } else { "zone=a" };
    let back = host(nats, &[], &["--id", &victim, "--label", zone])?;
    lattice.hosts.insert(victim.clone(), back);
    let before = current_hosts(nats, &v);
    holds_for(
        Duration::from_secs(3),
        "no copy is added or moved",
        async || replicas(nats, "counter").is_ok_and(|after| current_hosts(nats, &after) == before),
    )
    .await?;
    let after = replicas(nats, "counter")?;
    assert_eq!(current_hosts(nats, &after), before, "{after}");
    assert_eq!(
        after["status"]["replicas"].as_array().map_or(0, Vec::len),
        2
    );

    // Scale down, then delete.
    manifest(&dir, "  replicas: 1\n", "wasi:keyvalue: host")?;
    cli(nats, &["apply", "-f", &file_arg])?;
    wait_until(nats, "counter", Duration::from_secs(15), |v| {
        v["status"]["replicas"].as_array().map_or(0, Vec::len) == 1
    })
    .await?;
    let (code, out, _) = cli(nats, &["delete", "workload", "counter"])?;
    assert_eq!((code, out.trim()), (0, "workload/counter deleted"));
    eventually(
        Duration::from_secs(10),
        "every host answers 404",
        async || {
            let mut statuses = Vec::new();
            for id in ["H1", "H2", "H3"] {
                statuses.push(lattice.visit(id).await.ok()?);
            }
            (statuses == [404, 404, 404]).then_some(())
        },
    )
    .await?;
    assert!(workloads(nats)?.is_empty());
    Ok(())
}

#[tokio::test]
async fn another_scheduler_takes_over_when_the_leader_dies() -> TestResult {
    let lattice = Lattice::start("takeover")?;
    let nats = &lattice.nats;
    // `get hosts` lists every host from its heartbeat.
    let (code, out, err) = cli(nats, &["get", "hosts", "-o", "json"])?;
    assert_eq!(code, 0, "{err}");
    let hosts: Vec<Value> = serde_json::from_str(&out)?;
    let mut ids: Vec<String> = hosts
        .iter()
        .filter_map(|h| h["id"].as_str())
        .map(|id| nats.host_name(id))
        .collect();
    ids.sort();
    assert_eq!(ids, ["H1", "H2", "H3"]);
    let h3 = nats.host_id("H3")?;
    let third = hosts
        .iter()
        .find(|h| h["id"] == h3.as_str())
        .ok_or("no H3")?;
    assert_eq!(third["labels"]["zone"], "b");
    let (_, table, _) = cli(nats, &["get", "hosts"])?;
    assert!(
        table.starts_with("ID") && table.contains("zone=b"),
        "{table}"
    );

    let mut first = scheduler(nats)?;
    first
        .process
        .wait_for("leading=true", Duration::from_secs(10))?;
    let mut second = scheduler(nats)?;
    let dir = scratch("takeover")?;
    let file = manifest(&dir, "  replicas: 1\n", "wasi:keyvalue: host")?;
    cli(nats, &["apply", "-f", &file.to_string_lossy()])?;
    wait_until(nats, "counter", Duration::from_secs(15), |v| {
        running(v) == 1
    })
    .await?;

    let (_, yaml, _) = cli(nats, &["describe", "workload", "counter", "-o", "yaml"])?;
    let described: Value = serde_yaml_ng::from_str(&yaml)?;
    assert_eq!(described["name"], "counter", "{yaml}");
    assert_eq!(described["status"]["running"], 1, "{yaml}");

    first.process.kill();
    second
        .process
        .wait_for("leading=true", Duration::from_secs(10))?;
    // The new leader acts: a scale-up is placed.
    manifest(&dir, "  replicas: 2\n", "wasi:keyvalue: host")?;
    cli(nats, &["apply", "-f", &file.to_string_lossy()])?;
    wait_until(nats, "counter", Duration::from_secs(15), |v| {
        running(v) == 2
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_cli_reports_bad_input_with_exit_codes() -> TestResult {
    let nats = Nats::start("cli")?;
    let dir = scratch("cli")?;

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: Bad_Name\n",
    )?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &bad.to_string_lossy()])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.yaml:3:7: the workload name `Bad_Name` is not a valid name"),
        "{err}"
    );

    let zero = manifest(&dir, "  replicas: 0\n", "wasi:keyvalue: host")?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &zero.to_string_lossy()])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("deploy.replicas is 0, which would run nothing"),
        "{err}"
    );

    let (code, _, err) = cli(&nats, &["describe", "workload", "nothing"])?;
    assert_eq!(
        (code, err.trim()),
        (1, "error: workload `nothing` not found")
    );
    let (code, _, _) = cli(&nats, &["delete", "workload", "nothing"])?;
    assert_eq!(code, 1);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["get", "workloads", "--nats", "nats://127.0.0.1:1"])
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Concurrent applies: the same workload twice and two others at once.
    let mut files = Vec::new();
    for name in ["alpha", "beta"] {
        let file = dir.join(format!("{name}.yaml"));
        let text =
            std::fs::read_to_string(manifest(&dir, "  replicas: 1\n", "wasi:keyvalue: host")?)?
                .replace("name: counter", &format!("name: {name}"));
        std::fs::write(&file, text)?;
        files.push(file.to_string_lossy().to_string());
    }
    files.push(files[0].clone());
    let url = nats.url.clone();
    let auth = nats.auth("operator", "operator")?;
    let runs: Vec<_> = files
        .into_iter()
        .map(|f| {
            let (url, auth) = (url.clone(), auth.clone());
            std::thread::spawn(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
                    .args(["apply", "-f", &f, "--nats", &url])
                    .args(auth)
                    .output()
            })
        })
        .collect();
    for run in runs {
        let out = run.join().map_err(|_| "apply panicked")??;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let names: Vec<String> = workloads(&nats)?.into_keys().collect();
    assert_eq!(names, ["alpha", "beta"]);
    Ok(())
}

#[tokio::test]
async fn a_failed_start_is_tried_again_once_its_cause_is_gone() -> TestResult {
    let nats = Nats::start("retry")?;
    let _h = host(&nats, &[], &["--id", "H1"])?;
    let _sched = scheduler(&nats)?;
    let dir = scratch("retry")?;
    let file = manifest(&dir, "  replicas: 1\n", "wasi:keyvalue: {provider: later}")?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &file.display().to_string()])?;
    assert_eq!(code, 0, "{err}");
    wait_until(&nats, "counter", Duration::from_secs(15), |v| {
        v["status"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("provider `later`"))
    })
    .await?;
    // The provider comes; the scheduler tries the failed copy on H1 again (backoff 1 s, 2 s, …).
    let _later = crate::lattice::provider(&nats, "trellis-keyvalue-nats", "later")?;
    let v = wait_until(&nats, "counter", Duration::from_secs(30), |v| {
        running(v) == 1
    })
    .await?;
    assert_eq!(
        v["status"]["replicas"][0]["host"],
        nats.host_id("H1")?.as_str(),
        "{v}"
    );
    Ok(())
}

#[tokio::test]
async fn an_apply_larger_than_the_server_takes_fails_at_once() -> TestResult {
    let nats = Nats::start_with("small-payload", "max_payload: 65536\n")?;
    let dir = scratch("small-payload")?;
    let file = manifest(&dir, "  replicas: 1\n", "wasi:keyvalue: host")?;
    // 100 KiB of comment: under the manifest cap, over this server's messages.
    let mut text = std::fs::read_to_string(&file)?;
    text.push_str(&format!("# {}\n", "x".repeat(100 << 10)));
    std::fs::write(&file, text)?;
    let started = Instant::now();
    let (code, _, err) = cli(&nats, &["apply", "-f", &file.display().to_string()])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("this NATS server takes at most"), "{err}");
    eprintln!("refused in {:?}", started.elapsed());
    Ok(())
}
