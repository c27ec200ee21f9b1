//! Harness for lattice tests: a real nats-server with JetStream on a free port, provider
//! and host processes, each killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::support::{repo, served_address};

/// A child process, killed on drop; its stderr lines are collected.
pub struct Process {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    fn spawn(mut command: Command) -> Result<(Process, Option<std::process::ChildStdout>), String> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let (tx, stderr) = mpsc::channel();
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let stdout = child.stdout.take();
        Ok((
            Process {
                child,
                stderr,
                seen: Vec::new(),
            },
            stdout,
        ))
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.seen.iter().any(|l| l.contains(needle)) {
                return Ok(());
            }
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        }
        Err(format!(
            "no `{needle}` within {limit:?}; stderr:\n{}",
            self.stderr_text()
        ))
    }

    /// Everything it wrote to stderr, once it has exited and its stderr
    /// closed (at most `limit` of waiting).
    pub fn all_stderr(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break, // closed, or out of time
            }
        }
        self.seen.join("\n")
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&mut self) -> String {
        self.seen.extend(self.stderr.try_iter());
        self.seen.join("\n")
    }

    /// The most memory it has held so far (VmHWM, bytes), from /proc.
    pub fn peak_memory(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .map_err(|e| format!("cannot read the process status: {e}"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or("no VmHWM in /proc status")?;
        Ok(kib * 1024)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits at most `limit` for it to exit; how long it took.
    pub fn terminate(&mut self, limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        while started.elapsed() < limit {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(started.elapsed()),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!(
            "still running {limit:?} after SIGTERM:\n{}",
            self.stderr_text()
        ))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A nats-server with JetStream on a free 127.0.0.1 port.
pub struct Nats {
    process: Process,
    /// Its client URL.
    pub url: String,
    dir: PathBuf,
}

impl Nats {
    /// Starts one (installing nats-server through the project's script if needed).
    pub fn start(name: &str) -> Result<Nats, String> {
        Self::start_with(name, "")
    }

    /// [`Nats::start`] with `config` (nats-server configuration text) as well.
    pub fn start_with(name: &str, config: &str) -> Result<Nats, String> {
        let dir = crate::support::scratch(&format!("nats-{name}")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("nats.conf"), config).map_err(|e| e.to_string())?;
        let (process, url) = Self::spawn(&dir, "-1")?;
        Ok(Nats { process, url, dir })
    }

    fn spawn(dir: &Path, port: &str) -> Result<(Process, String), String> {
        let mut command = Command::new(nats_server()?);
        command
            .arg("-c")
            .arg(dir.join("nats.conf"))
            .args(["-a", "127.0.0.1", "-p", port, "-js", "-sd"])
            .arg(dir.join("js"));
        let (mut process, _) = Process::spawn(command)?;
        // nats-server says where it listens, then that it is ready (JetStream too).
        process.wait_for("Server is ready", Duration::from_secs(20))?;
        let text = process.stderr_text();
        let url = text
            .lines()
            .find_map(|l| l.split("Listening for client connections on ").nth(1))
            .map(|addr| format!("nats://{}", addr.trim()))
            .ok_or_else(|| format!("nats-server named no client address:\n{text}"))?;
        Ok((process, url))
    }

    /// Kills the server, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Kills the server and starts it again on the same port and store.
    pub fn restart(&mut self) -> Result<(), String> {
        self.process.kill();
        let port = self.url.rsplit(':').next().unwrap_or("-1").to_string();
        let (process, _) = Self::spawn(&self.dir, &port)?;
        self.process = process;
        Ok(())
    }

    /// A client of this server.
    pub async fn client(&self) -> Result<async_nats::Client, String> {
        async_nats::connect(&self.url)
            .await
            .map_err(|e| e.to_string())
    }
}

fn nats_server() -> Result<PathBuf, String> {
    let out = Command::new(repo().join("scripts/install-nats-server"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "scripts/install-nats-server failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().into())
}

/// A binary of another workspace package, built once per test run.
fn workspace_binary(package: &str) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--locked",
                "-p",
                "trellis-keyvalue-nats",
                "-p",
                "trellis-blobstore-nats",
                "-p",
                "trellis-messaging-nats",
            ])
            .current_dir(repo())
            .status()
            .map_err(|e| e.to_string())?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| "building the providers failed".to_string())
    });
    built.clone()?;
    // This test binary lives in target/<profile>/deps.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?;
    Ok(dir.join(package))
}

/// Starts the keyvalue-nats provider as `name` and waits until it serves.
pub fn keyvalue_provider(nats: &Nats, name: &str) -> Result<Process, String> {
    provider(nats, "trellis-keyvalue-nats", name)
}

/// Starts the provider binary `package` as `name` and waits until it serves.
pub fn provider(nats: &Nats, package: &str, name: &str) -> Result<Process, String> {
    provider_with(nats, package, name, &[])
}

/// [`provider`] with `extra` options.
pub fn provider_with(
    nats: &Nats,
    package: &str,
    name: &str,
    extra: &[&str],
) -> Result<Process, String> {
    let mut command = Command::new(workspace_binary(package)?);
    command
        .args(["--nats", &nats.url, "--name", name])
        .args(extra);
    let (mut process, _) = Process::spawn(command)?;
    process.wait_for("serving", Duration::from_secs(30))?;
    Ok(process)
}

/// A `trellis host` process serving HTTP.
pub struct LatticeHost {
    process: Process,
    /// Its HTTP address.
    pub addr: SocketAddr,
}

impl LatticeHost {
    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.process.alive()
    }

    /// Sends SIGTERM and waits at most `limit` for it to exit.
    pub fn terminate(&mut self, limit: Duration) -> Result<Duration, String> {
        self.process.terminate(limit)
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr_text(&mut self) -> String {
        self.process.stderr_text()
    }

    /// The most memory it has held so far, in bytes.
    pub fn peak_memory(&self) -> Result<u64, String> {
        self.process.peak_memory()
    }
}

/// Starts `trellis host` with `manifests`; Err carries stderr when it does not start.
pub fn host(nats: &Nats, manifests: &[&Path], extra: &[&str]) -> Result<LatticeHost, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .args(["host", "--nats", &nats.url, "--listen", "127.0.0.1:0"])
        // Test manifests name components anywhere in the repository.
        .arg("--allow-dir")
        .arg(crate::support::repo())
        .args(extra);
    for m in manifests {
        command.arg("--manifest").arg(m);
    }
    let (mut process, stdout) = Process::spawn(command)?;
    let stdout = stdout.ok_or("no stdout")?;
    match served_address(stdout).recv_timeout(Duration::from_secs(120)) {
        Ok(addr) => Ok(LatticeHost {
            addr: addr.parse().map_err(|e| format!("{e}: {addr}"))?,
            process,
        }),
        Err(_) => {
            process.kill();
            Err(process.all_stderr(Duration::from_secs(5)))
        }
    }
}

/// A control API client of host `id` on `nats`'s default lattice, each call
/// bounded by `timeout`.
pub async fn control_client(
    nats: &Nats,
    id: &str,
    timeout: Duration,
) -> Result<trellis_control_api::ControlClient, Box<dyn std::error::Error>> {
    Ok(trellis_control_api::ControlClient::new(
        nats.client().await?,
        &trellis_lattice::Subjects::new("default"),
        id,
        timeout,
    )
    .await?)
}

/// A `trellis scheduler` process, killed on drop.
pub struct SchedulerProcess {
    /// The process.
    pub process: Process,
}

/// Starts `trellis scheduler` and waits until it has joined the lattice.
pub fn scheduler(nats: &Nats) -> Result<SchedulerProcess, String> {
    scheduler_with(nats, &[])
}

/// [`scheduler`] with `extra` options.
pub fn scheduler_with(nats: &Nats, extra: &[&str]) -> Result<SchedulerProcess, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command.args(["scheduler", "--nats", &nats.url]).args(extra);
    let (mut process, _) = Process::spawn(command)?;
    process.wait_for("scheduler started", Duration::from_secs(30))?;
    Ok(SchedulerProcess { process })
}

/// Runs the `trellis` CLI with `args` against `nats`; returns exit code, stdout, stderr.
pub fn cli(nats: &Nats, args: &[&str]) -> Result<(i32, String, String), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .args(["--nats", &nats.url])
        .output()
        .map_err(|e| e.to_string())?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
