//! Artifacts on real processes (nats-server, Debian's docker-registry, hosts, a
//! scheduler), each figure beside its anchor:
//!
//! 1. control-API `start` → first 200 of a component already in the host's
//!    cache (fetched and compiled before), against the target of 20 ms;
//! 2. `trellis apply` → first 200 with the CLI process excluded (the desired
//!    state written from this process, as the CLI does after its upload),
//!    against the target of 60 ms; and with the CLI included, for reference;
//! 3. a host restart serving the componentize-py component (about 18 MB) with
//!    a warm compiled-code cache, against the same restart with `--no-cache`;
//! 4. a pull of that component from the lattice store, against the same pull
//!    from the registry.
//!
//! Run with `scripts/bench artifacts`. Settings: BENCH_ROUNDS (5).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use support::{compare, median, nats_server, setting};
use trellis_artifacts::{LatticeStore, MAX_ARTIFACT_BYTES, Progress, Registries};
use trellis_control_api::ControlClient;
use trellis_lattice::Subjects;
use trellis_manifest::{ComponentSource, OciReference};
use trellis_scheduler::{Desired, Store};

fn main() -> Result<()> {
    trellis_process::install_crypto_provider();
    let rounds = setting("BENCH_ROUNDS", 5);
    let dir = std::env::temp_dir().join(format!("trellis-bench-artifacts-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nats = nats_server(&dir.join("js"))?;
    let url = format!("nats://{}", nats.addr);
    let registry = Registry::start(&dir.join("registry"))?;
    let runtime = tokio::runtime::Runtime::new()?;

    let hello = repo().join("tests/components/hello.wat");
    let hello_ref = pushed(&trellis(&[
        "push",
        &hello.to_string_lossy(),
        "--nats",
        &url,
    ])?)?;
    let host = support::trellis_host_with(
        &url,
        &[
            "--id".as_ref(),
            "h1".as_ref(),
            "--cache-dir".as_ref(),
            dir.join("cache-h1").as_os_str(),
        ],
    )?;
    let _scheduler = Process::spawn(Command::new(env!("CARGO_BIN_EXE_trellis")).args([
        "scheduler",
        "--nats",
        &url,
    ]))?;

    runtime.block_on(async {
        let client = async_nats::connect(&url).await?;
        let subjects = Subjects::new("default");
        let control =
            ControlClient::new(client.clone(), &subjects, "h1", Duration::from_secs(30)).await?;
        // 1. Control-API start of a cached component.
        let mut started = Vec::new();
        for round in 0..=rounds {
            let name = format!("c{round}");
            let manifest = workload(&name, &hello_ref, "");
            let start = Instant::now();
            control.start(&format!("h1:{name}"), &manifest).await?;
            first_200(host.addr, &format!("/{name}")).await?;
            // Round 0 fetched and compiled: it only warms the cache.
            if round > 0 {
                started.push(ms(start));
            }
        }

        // 2. Apply -> first 200, the desired state written from here.
        let store = Store::open(client.clone(), &subjects).await?;
        let (mut applied, mut with_cli) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let name = format!("a{round}");
            let text = workload(&name, &hello_ref, "deploy:\n  replicas: 1\n");
            let file = dir.join(format!("{name}.yaml"));
            let desired = Desired::from_manifest(&text, &file, &dir)?;
            let start = Instant::now();
            store.apply(&desired).await?;
            first_200(host.addr, &format!("/{name}")).await?;
            applied.push(ms(start));

            let name = format!("l{round}");
            let file = dir.join(format!("{name}.yaml"));
            std::fs::write(
                &file,
                workload(&name, &hello.to_string_lossy(), "deploy:\n  replicas: 1\n"),
            )?;
            let start = Instant::now();
            trellis(&["apply", "-f", &file.to_string_lossy(), "--nats", &url])?;
            first_200(host.addr, &format!("/{name}")).await?;
            with_cli.push(ms(start));
        }
        println!("median of {rounds} rounds:");
        compare(
            "control start -> 200, cached",
            "ms",
            median(&started, |v| *v),
            20.0,
        );
        compare(
            "apply -> 200, CLI excluded",
            "ms",
            median(&applied, |v| *v),
            60.0,
        );
        compare(
            "apply -> 200, CLI + upload",
            "ms",
            median(&with_cli, |v| *v),
            60.0,
        );
        anyhow::Ok(())
    })?;
    drop(host);

    // 3. Host restarts serving the Python component.
    let python = python_component()?;
    let manifest = dir.join("python.yaml");
    std::fs::write(&manifest, workload("py", &python.to_string_lossy(), ""))?;
    let cache = dir.join("cache-python");
    restart(
        &url,
        &manifest,
        &["--cache-dir".as_ref(), cache.as_os_str()],
    )?; // warms the cache
    let (mut warm, mut cold) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let w = restart(
            &url,
            &manifest,
            &["--cache-dir".as_ref(), cache.as_os_str()],
        )?;
        let c = restart(&url, &manifest, &["--no-cache".as_ref()])?;
        println!("  round {round}: restart with compiled cache {w:.0} ms | without {c:.0} ms");
        warm.push(w);
        cold.push(c);
    }
    compare(
        "host restart -> 200, python",
        "ms",
        median(&warm, |v| *v),
        median(&cold, |v| *v),
    );

    // 4. Pulls of the Python component.
    let reference = format!("oci://{}/bench/python:v1", registry.addr);
    let out = trellis(&[
        "push",
        &python.to_string_lossy(),
        &reference,
        "--nats",
        &url,
    ])?;
    let lattice = pushed(&out)?;
    let Some(Ok(ComponentSource::Lattice(digest))) = ComponentSource::parse_reference(&lattice)
    else {
        bail!("push printed no lattice reference: {out}");
    };
    let reference: OciReference = reference.parse()?;
    let size = std::fs::metadata(&python)?.len() as f64 / 1e6;
    runtime.block_on(async {
        let client = async_nats::connect(&url).await?;
        let store = LatticeStore::open(client, &Subjects::new("default"), false).await?;
        let registries = Registries::new();
        let (mut from_store, mut from_registry) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let start = Instant::now();
            store.get(&digest, MAX_ARTIFACT_BYTES, &Progress::none()).await?;
            let s = ms(start);
            let start = Instant::now();
            registries
                .pull(&reference, MAX_ARTIFACT_BYTES, &Progress::none())
                .await?;
            let r = ms(start);
            println!("  round {round}: {size:.1} MB from the lattice store {s:.0} ms | from the registry {r:.0} ms");
            from_store.push(s);
            from_registry.push(r);
        }
        compare(
            "pull, lattice (anchor: registry)",
            "ms",
            median(&from_store, |v| *v),
            median(&from_registry, |v| *v),
        );
        anyhow::Ok(())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A one-component workload `name` on route `/name`.
fn workload(name: &str, source: &str, deploy: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: {name}\ncomponents:\n  app:\n    source: {source}\n    bindings:\n      \"wasi:*\": host\nroutes:\n  - path: /{name}\n    component: app\n{deploy}"
    )
}

/// The `lattice://…` line `trellis push` printed.
fn pushed(out: &str) -> Result<String> {
    out.lines()
        .find(|l| l.starts_with("lattice://"))
        .map(str::to_string)
        .with_context(|| format!("push printed no lattice reference: {out}"))
}

/// Runs the CLI; its stdout.
fn trellis(args: &[&str]) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("trellis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts a host serving `manifest`, waits for its first 200, stops it; the time taken.
fn restart(url: &str, manifest: &Path, extra: &[&std::ffi::OsStr]) -> Result<f64> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--manifest".as_ref(), manifest.as_os_str()];
    args.extend(extra);
    let start = Instant::now();
    let host = support::trellis_host_with(url, &args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(first_200(host.addr, "/py"))?;
    Ok(ms(start))
}

/// Asks GET `path` on a 1 ms cadence until it answers 200 (a route appears
/// with no notice to wait on; the cadence bounds what a figure can overstate).
async fn first_200(addr: SocketAddr, path: &str) -> Result<()> {
    let answered = async {
        let mut looks = tokio::time::interval(Duration::from_millis(1));
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            looks.tick().await;
            if status(addr, path).await.unwrap_or(0) == 200 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), answered)
        .await
        .with_context(|| format!("{path} gave no 200 within 120 s"))
}

async fn status(addr: SocketAddr, path: &str) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    std::str::from_utf8(&head[9..12])?
        .parse()
        .context("no status")
}

/// The componentize-py hello component, built by the tests' script.
fn python_component() -> Result<PathBuf> {
    let out = Command::new(repo().join("tests/components/python/build"))
        .arg("hello")
        .output()?;
    if !out.status.success() {
        bail!(
            "building the Python component: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A child process, killed on drop.
struct Process(Child);

impl Process {
    fn spawn(command: &mut Command) -> Result<Process> {
        Ok(Process(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        ))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A docker-registry (installed by scripts/install-registry) on a free port.
struct Registry {
    _process: Process,
    addr: SocketAddr,
}

impl Registry {
    fn start(dir: &Path) -> Result<Registry> {
        let out = Command::new(repo().join("scripts/install-registry")).output()?;
        if !out.status.success() {
            bail!(
                "scripts/install-registry: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let binary = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let addr = support::free_port()?;
        std::fs::create_dir_all(dir)?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let process = Process::spawn(Command::new(binary).arg("serve").arg(&config))?;
        support::wait_for_port(addr, Duration::from_secs(20))?;
        Ok(Registry {
            _process: process,
            addr,
        })
    }
}
