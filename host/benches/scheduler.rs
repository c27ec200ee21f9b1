//! The control plane's speed on real processes (nats-server, two hosts, a scheduler):
//!
//! 1. apply → first 200: `trellis apply` of the example counter (to a scheduler
//!    that already knows the hosts) until a host answers 200, against `trellis dev`
//!    of the same manifest from process start to first 200 (the same compile and
//!    instantiate, without the lattice);
//! 2. reschedule: kill -9 of the host running the only replica until the other host
//!    answers 200, beside the design's target (5 s).
//!
//! Run with `scripts/bench scheduler`. Settings: BENCH_ROUNDS (3).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use support::{Server, compare, median, nats_server, setting};

fn main() -> Result<()> {
    let rounds = setting("BENCH_ROUNDS", 3);
    let dir = std::env::temp_dir().join(format!("trellis-bench-sched-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (mut applied, mut dev, mut rescheduled) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let nats = nats_server(&dir.join(format!("js-{round}")))?;
        let url = format!("nats://{}", nats.addr);
        let mut hosts = vec![host(&url, "h1")?, host(&url, "h2")?];
        let _scheduler = Process(
            Command::new(env!("CARGO_BIN_EXE_trellis"))
                .args(["scheduler", "--nats", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        // A scheduler that has been running knows the hosts from their heartbeats.
        std::thread::sleep(Duration::from_millis(2250));
        let file = manifest(&dir, round)?;
        let start = Instant::now();
        trellis(&["apply", "-f", &file.to_string_lossy(), "--nats", &url])?;
        let first = wait_for_200(&hosts.iter().map(|h| h.addr).collect::<Vec<_>>())
            .context("the applied workload never served")?;
        applied.push(start.elapsed().as_secs_f64() * 1e3);

        let start = Instant::now();
        let dev_server = support::trellis_dev(&file)?;
        wait_for_200(&[dev_server.addr]).context("trellis dev never served")?;
        dev.push(start.elapsed().as_secs_f64() * 1e3);
        drop(dev_server);

        let survivor = hosts.remove(1 - first);
        let victim = hosts.remove(0);
        let start = Instant::now();
        drop(victim); // kill -9
        wait_for_200(&[survivor.addr]).context("the workload was not rescheduled")?;
        rescheduled.push(start.elapsed().as_secs_f64() * 1e3);
        println!(
            "  round {round}: apply -> 200 {:.0} ms | trellis dev -> 200 {:.0} ms | reschedule {:.0} ms",
            applied[applied.len() - 1],
            dev[dev.len() - 1],
            rescheduled[rescheduled.len() - 1]
        );
        drop((survivor, nats));
    }
    println!("median of {rounds} rounds:");
    compare(
        "apply -> first 200 (anchor: dev)",
        "ms",
        median(&applied, |v| *v),
        median(&dev, |v| *v),
    );
    compare(
        "reschedule after kill -9 (anchor: target)",
        "ms",
        median(&rescheduled, |v| *v),
        5000.0,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A child process, killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host(url: &str, id: &str) -> Result<Server> {
    support::trellis_host_with(url, &["--id".as_ref(), id.as_ref()])
}

fn trellis(args: &[&str]) -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("trellis {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The example counter with absolute paths, one replica; `round` makes each a new workload.
fn manifest(dir: &Path, round: u64) -> Result<PathBuf> {
    let text = support::example_manifest("workload.yaml")?;
    let file = dir.join(format!("counter-{round}.yaml"));
    std::fs::write(&file, format!("{text}deploy:\n  replicas: 1\n"))?;
    Ok(file)
}

/// Polls GET / on each address until one answers 200; returns its index.
fn wait_for_200(addrs: &[std::net::SocketAddr]) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for (i, addr) in addrs.iter().enumerate() {
            if status(*addr).unwrap_or(0) == 200 {
                return Ok(i);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("no 200 within 60 s")
}

fn status(addr: std::net::SocketAddr) -> Result<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    std::str::from_utf8(&head[9..12])?
        .parse()
        .context("no status")
}
