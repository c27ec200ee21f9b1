//! What every benchmark needs: servers as child processes, a load generator, and a
//! report that prints Trellis beside its anchor with the ratio.

#![allow(dead_code)] // Each bench binary uses a different part.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `trellis dev TARGET` on a free port; waits for the address it prints.
pub fn trellis_dev(target: &Path) -> Result<Server> {
    trellis(&["dev".as_ref(), target.as_os_str()], &[])
}

/// Starts `trellis host` on `nats` with `manifests`; waits for the address it prints.
pub fn trellis_host(nats: &Server, manifests: &[&Path]) -> Result<Server> {
    let mut extra: Vec<&std::ffi::OsStr> = Vec::new();
    for m in manifests {
        extra.extend(["--manifest".as_ref(), m.as_os_str()]);
    }
    trellis_host_with(&format!("nats://{}", nats.addr), &extra)
}

/// Starts `trellis host` on the NATS at `url` with `extra` options.
pub fn trellis_host_with(url: &str, extra: &[&std::ffi::OsStr]) -> Result<Server> {
    trellis_host_in_env(url, extra, &[])
}

/// [`trellis_host_with`], the process's environment extended by `env`.
pub fn trellis_host_in_env(
    url: &str,
    extra: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
) -> Result<Server> {
    // Bench manifests name components in the repository and in temp dirs.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = std::env::temp_dir();
    let mut args: Vec<&std::ffi::OsStr> = vec!["host".as_ref(), "--nats".as_ref(), url.as_ref()];
    args.extend(["--allow-dir".as_ref(), repo.as_os_str()]);
    args.extend(["--allow-dir".as_ref(), tmp.as_os_str()]);
    args.extend(extra);
    trellis(&args, env)
}

/// An example manifest from `examples/counter` with its component paths made
/// absolute, so it can be written anywhere or sent to a host.
pub fn example_manifest(file: &str) -> Result<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/counter");
    let mut text = std::fs::read_to_string(dir.join(file))?;
    for source in ["api.wat", "greeter.wat"] {
        text = text.replace(
            &format!("source: {source}"),
            &format!("source: {}", dir.join(source).display()),
        );
    }
    Ok(text)
}

fn trellis(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Result<Server> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .envs(env.iter().copied())
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start trellis")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let addr = lines
        .find_map(|line| line.split("http://").nth(1).map(|a| a.trim().to_string()))
        .context("trellis exited before serving")?;
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Server {
        child,
        addr: addr.parse()?,
    })
}

/// The nats-server binary scripts/install-nats-server installs.
fn nats_binary() -> Result<String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(repo.join("scripts/install-nats-server")).output()?;
    if !out.status.success() {
        bail!(
            "scripts/install-nats-server failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Starts nats-server with JetStream on a free port (installed by scripts/install-nats-server).
pub fn nats_server(store: &Path) -> Result<Server> {
    spawn_nats(&["-js".as_ref(), "-sd".as_ref(), store.as_os_str()])
}

/// Starts the keyvalue-nats provider as `name` (scripts/bench builds it beside this bench).
pub fn keyvalue_provider(nats: &Server, name: &str) -> Result<Server> {
    keyvalue_provider_with(&format!("nats://{}", nats.addr), name, &[])
}

/// [`keyvalue_provider`] on the NATS at `url`, with `extra` options.
pub fn keyvalue_provider_with(url: &str, name: &str, extra: &[&str]) -> Result<Server> {
    keyvalue_provider_in_env(url, name, extra, &[])
}

/// [`keyvalue_provider_with`], the process's environment extended by `env`.
pub fn keyvalue_provider_in_env(
    url: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Server> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("no target directory")?;
    let child = Command::new(dir.join("trellis-keyvalue-nats"))
        .envs(env.iter().copied())
        .args(["--nats", url, "--name", name])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start trellis-keyvalue-nats (scripts/bench builds it)")?;
    let addr = url.trim_start_matches("nats://").parse()?;
    Ok(Server { child, addr })
}

/// Starts the Python keyvalue provider (trellis-keyvalue-sqlite, installed by
/// scripts/install-python-providers) as `name` on `url`, its data in `db`.
pub fn python_keyvalue_provider(url: &str, name: &str, db: &Path) -> Result<Server> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(repo.join("scripts/install-python-providers")).output()?;
    if !out.status.success() {
        bail!(
            "scripts/install-python-providers failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let venv = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let child = Command::new(venv.join("bin/trellis-keyvalue-sqlite"))
        .args(["--nats", url, "--name", name, "--db"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start trellis-keyvalue-sqlite")?;
    let addr = url.trim_start_matches("nats://").parse()?;
    Ok(Server { child, addr })
}

/// Waits until a replica of provider `name` answers discovery (`$SRV.PING.<name>`) on `url`.
pub async fn wait_for_provider(url: &str, name: &str) -> Result<()> {
    let nats = async_nats::connect(url).await?;
    let subject = format!("$SRV.PING.{name}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Asked every 100 ms: "no responders" comes back at once until it serves.
    let mut asks = tokio::time::interval(Duration::from_millis(100));
    while tokio::time::Instant::now() < deadline {
        asks.tick().await;
        if nats.request(subject.clone(), "".into()).await.is_ok() {
            return Ok(());
        }
    }
    bail!("provider `{name}` did not start")
}

/// Starts nats-server from the configuration `conf` on a free client port.
pub fn nats_server_with(conf: &Path) -> Result<Server> {
    spawn_nats(&["-c".as_ref(), conf.as_os_str()])
}

/// nats-server with `args` on a free 127.0.0.1 port, once it accepts connections.
fn spawn_nats(args: &[&std::ffi::OsStr]) -> Result<Server> {
    let addr = free_port()?;
    let child = Command::new(nats_binary()?)
        .args(args)
        .args(["-a", "127.0.0.1", "-p", &addr.port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start nats-server")?;
    let server = Server { child, addr };
    wait_for_port(addr, Duration::from_secs(20))?;
    Ok(server)
}

/// A one-component workload of `wasm` on `path` whose wasi:keyvalue goes to `keyvalue`.
pub fn kv_manifest(
    dir: &Path,
    name: &str,
    wasm: &Path,
    path: &str,
    keyvalue: &str,
) -> Result<PathBuf> {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: {name}\ncomponents:\n  kvget:\n    source: {}\n    limits: {{concurrency: 1000}}\n    bindings:\n      wasi:*: host\n      wasi:keyvalue: {keyvalue}\nroutes:\n  - {{component: kvget, path: {path}}}\n",
            wasm.display()
        ),
    )?;
    Ok(file)
}

/// Starts `wasmtime serve WASM` on a free port; waits until it accepts connections.
pub fn wasmtime_serve(wasm: &Path) -> Result<Server> {
    let addr = free_port()?;
    let child = Command::new("wasmtime")
        .args(["serve", "--addr", &addr.to_string()])
        .arg(wasm)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `wasmtime` (scripts/bench installs wasmtime-cli 48.0.8)")?;
    let server = Server { child, addr };
    wait_for_port(addr, Duration::from_secs(60))?;
    Ok(server)
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until something accepts connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if start.elapsed() > limit {
            bail!("nothing listens on {addr} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// One load run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Responses that were not 2xx/3xx, plus socket errors.
    pub errors: u64,
}

/// Runs wrk against `url` for `seconds` with `connections` connections on one thread.
pub fn wrk(url: &str, seconds: u64, connections: u32) -> Result<Load> {
    wrk_with(url, seconds, connections, &[])
}

/// [`wrk`] with extra request `headers` (`Host: a.example`).
pub fn wrk_with(url: &str, seconds: u64, connections: u32, headers: &[&str]) -> Result<Load> {
    let out = Command::new("wrk")
        .args(["-t1", "--latency"])
        .args(headers.iter().flat_map(|h| ["-H", h]))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg(url)
        .output()
        .context("cannot run `wrk` (scripts/bench installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<Load> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(str::trim))
    };
    let rps = field("Requests/sec:")?.parse().ok()?;
    let p50 = wrk_duration(field("50%")?)?;
    let p99 = wrk_duration(field("99%")?)?;
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let socket: u64 = field("Socket errors:")
        .map(|l| {
            l.split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Some(Load {
        rps,
        p50,
        p99,
        errors: non_2xx + socket,
    })
}

/// wrk prints `812.00us`, `1.23ms` or `2.01s`.
fn wrk_duration(s: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * scale))
}

/// The median of `values` by `key`.
pub fn median<T: Copy>(values: &[T], key: impl Fn(&T) -> f64) -> f64 {
    let mut keys: Vec<f64> = values.iter().map(key).collect();
    keys.sort_by(f64::total_cmp);
    keys.get(keys.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Prints one comparison line: Trellis, its anchor, and Trellis ÷ anchor.
pub fn compare(what: &str, unit: &str, trellis: f64, anchor: f64) {
    println!(
        "{what:<34} trellis {trellis:>10.1} {unit:<6} anchor {anchor:>10.1} {unit:<6} ratio {:.2}x",
        trellis / anchor
    );
}

/// `rounds` alternating wrk runs against `ours` and `anchor`, each printed, then the
/// median of each figure beside its anchor.
pub fn alternate(
    ours: &str,
    anchor: &str,
    anchor_name: &str,
    rounds: u64,
    seconds: u64,
    connections: u32,
) -> Result<()> {
    wrk(ours, 1, connections)?; // warm-up
    wrk(anchor, 1, connections)?;
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let t = wrk(ours, seconds, connections)?;
        let a = wrk(anchor, seconds, connections)?;
        println!(
            "  round {round}: trellis {} | {anchor_name} {}",
            show(&t),
            show(&a)
        );
        mine.push(t);
        theirs.push(a);
    }
    println!("median of rounds (anchor: {anchor_name}):");
    compare(
        "requests/s",
        "req/s",
        median(&mine, |l| l.rps),
        median(&theirs, |l| l.rps),
    );
    let ms = |l: &Load, p: fn(&Load) -> Duration| p(l).as_secs_f64() * 1e3;
    compare(
        "latency p50",
        "ms",
        median(&mine, |l| ms(l, |l| l.p50)),
        median(&theirs, |l| ms(l, |l| l.p50)),
    );
    compare(
        "latency p99",
        "ms",
        median(&mine, |l| ms(l, |l| l.p99)),
        median(&theirs, |l| ms(l, |l| l.p99)),
    );
    let errors = |loads: &[Load]| loads.iter().map(|l| l.errors).sum::<u64>();
    println!(
        "errors (non-2xx + socket): trellis {}, {anchor_name} {}",
        errors(&mine),
        errors(&theirs)
    );
    Ok(())
}

fn show(l: &Load) -> String {
    format!(
        "{:.0} req/s p50 {:.2} ms p99 {:.2} ms",
        l.rps,
        l.p50.as_secs_f64() * 1e3,
        l.p99.as_secs_f64() * 1e3
    )
}

/// Reads a numeric setting from the environment.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
