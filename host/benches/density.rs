//! Density: N copies of the hello component on one `trellis host`, each its
//! own workload with its own Host route, against the same host with one.
//!
//! For each N (BENCH_DENSITY, default `1,1000,10000`): the time from start
//! until the last route serves, the host's RSS and RSS per workload past the
//! one-workload host's, and wrk -c16 on the first and the last route beside
//! the one-workload host's rps (the anchor, measured in the same run); then
//! BENCH_DISTINCT (1000) workloads of as many distinct components, each
//! compiled: the time until all serve.
//! Settings: BENCH_SECONDS (3), BENCH_CONNECTIONS (16).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use support::{Server, compare, nats_server, setting, trellis_host_with, wrk_with};

/// Writes `n` hello workloads `d0`… into `dir`, routed on Host `d<i>.density`;
/// `distinct`: each its own component (its greeting names it), else all one.
fn manifests(dir: &Path, n: usize, distinct: bool) -> Result<Vec<PathBuf>> {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/components/hello.wat");
    let text = std::fs::read_to_string(&shared)?;
    std::fs::create_dir_all(dir)?;
    (0..n)
        .map(|i| {
            let hello = if distinct {
                let own = dir.join(format!("d{i}.wat"));
                // The same length as "hello from trellis\n", so offsets hold.
                std::fs::write(
                    &own,
                    text.replace("hello from trellis\\n", &format!("hello from d{i:05}!\\n")),
                )?;
                own
            } else {
                shared.clone()
            };
            let file = dir.join(format!("d{i}.yaml"));
            std::fs::write(
                &file,
                format!(
                    "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: d{i}\ncomponents:\n  hello:\n    source: {}\n    bindings:\n      \"wasi:*\": host\nroutes:\n  - {{component: hello, host: d{i}.density}}\n",
                    hello.display()
                ),
            )?;
            Ok(file)
        })
        .collect()
}

/// The resident set of process `pid`, in bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kib << 10)
}

/// Whether `host` on `addr` answers 200: `trellis host` prints its address
/// only once every `--manifest` workload serves, so one request checks it.
fn served(addr: std::net::SocketAddr, host: &str) -> Result<()> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr)?;
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    if !reply.starts_with("HTTP/1.1 200") {
        bail!(
            "{host} does not serve: {}",
            reply.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

struct Loaded {
    host: Server,
    start: Duration,
    rss: u64,
}

fn load(url: &str, dir: &Path, n: usize, distinct: bool) -> Result<Loaded> {
    let files = manifests(dir, n, distinct)?;
    let mut args: Vec<&std::ffi::OsStr> = Vec::new();
    for f in &files {
        args.extend(["--manifest".as_ref(), f.as_os_str()]);
    }
    let started = Instant::now();
    let host = trellis_host_with(url, &args)?;
    let start = started.elapsed();
    served(host.addr, &format!("d{}.density", n - 1))?;
    let rss = rss(host.pid())?;
    Ok(Loaded { host, start, rss })
}

fn rps(host: &Server, route: &str, seconds: u64, connections: u32) -> Result<f64> {
    let url = format!("http://{}/", host.addr);
    let header = format!("Host: {route}");
    wrk_with(&url, 1, connections, &[&header])?; // warm-up
    Ok(wrk_with(&url, seconds, connections, &[&header])?.rps)
}

fn main() -> Result<()> {
    let seconds = setting("BENCH_SECONDS", 3);
    let connections = setting("BENCH_CONNECTIONS", 16) as u32;
    let counts: Vec<usize> = std::env::var("BENCH_DENSITY")
        .unwrap_or_else(|_| "1,1000,10000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .context("BENCH_DENSITY: comma-separated counts")
        })
        .collect::<Result<_>>()?;
    let dir = std::env::temp_dir().join(format!("trellis-bench-density-{}", std::process::id()));
    let nats = nats_server(&dir.join("js"))?;
    let url = format!("nats://{}", nats.addr);

    // The anchor: a host with one workload, measured in this run.
    let one = load(&url, &dir.join("one"), 1, false)?;
    let anchor = rps(&one.host, "d0.density", seconds, connections)?;
    println!(
        "one workload: serving after {:.2} s, RSS {} MiB, {anchor:.0} req/s",
        one.start.as_secs_f64(),
        one.rss >> 20
    );
    let base_rss = one.rss;
    drop(one);

    for n in counts.into_iter().filter(|&n| n > 1) {
        let many = load(&url, &dir.join(format!("n{n}")), n, false)?;
        println!(
            "\n{n} workloads: all serving after {:.2} s, RSS {} MiB, {:.1} KiB per workload past one",
            many.start.as_secs_f64(),
            many.rss >> 20,
            (many.rss.saturating_sub(base_rss)) as f64 / 1024.0 / n as f64
        );
        let first = rps(&many.host, "d0.density", seconds, connections)?;
        let last = rps(
            &many.host,
            &format!("d{}.density", n - 1),
            seconds,
            connections,
        )?;
        compare("first route req/s (anchor: 1)", "req/s", first, anchor);
        compare("last route req/s (anchor: 1)", "req/s", last, anchor);
    }

    let distinct = setting("BENCH_DISTINCT", 1000) as usize;
    if distinct > 0 {
        let many = load(&url, &dir.join("distinct"), distinct, true)?;
        println!(
            "\n{distinct} distinct components: all serving after {:.2} s, RSS {} MiB",
            many.start.as_secs_f64(),
            many.rss >> 20
        );
    }
    Ok(())
}
