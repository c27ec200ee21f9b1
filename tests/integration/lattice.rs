//! Harness for lattice tests: a real nats-server with JetStream on a free port, provider
//! and host processes, each killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use trellis_identity::{Identity, Kind, LatticeDir};
use trellis_lattice::Role;

use crate::support::{repo, served_address};

/// A child process, killed on drop; its stderr lines are collected.
pub struct Process {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Mutex<Vec<String>>,
}

impl Process {
    /// Starts `command` with its stdout handed back and its stderr collected.
    pub fn spawn(
        mut command: Command,
    ) -> Result<(Process, Option<std::process::ChildStdout>), String> {
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
                seen: Mutex::default(),
            },
            stdout,
        ))
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.lines().iter().any(|l| l.contains(needle)) {
                return Ok(());
            }
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(50)) {
                self.lines().push(line);
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
                Ok(line) => self.lines().push(line),
                Err(_) => break, // closed, or out of time
            }
        }
        self.lines().join("\n")
    }

    /// How many stderr lines so far contain `needle` (read without taking them).
    fn count(&self, needle: &str) -> usize {
        let mut seen = self.lines();
        seen.extend(self.stderr.try_iter());
        seen.iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits, at most `limit`, for stderr lines to hold `needle` more than
    /// `before` times, blocking on the lines as they arrive.
    fn wait_for_count(&self, needle: &str, before: usize, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while self.count(needle) <= before {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("no `{needle}` within {limit:?}"))?;
            if let Ok(line) = self.stderr.recv_timeout(left) {
                self.lines().push(line);
            }
        }
        Ok(())
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&mut self) -> String {
        let mut seen = self.lines();
        seen.extend(self.stderr.try_iter());
        seen.join("\n")
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

/// A nats-server with JetStream on a free 127.0.0.1 port. [`Nats::start`]
/// secures it the way a user would: its configuration comes from `trellis
/// lattice init`, and every process the harness starts connects with its own
/// identity from that lattice directory.
pub struct Nats {
    process: Process,
    /// Its client URL.
    pub url: String,
    dir: PathBuf,
    /// The lattice directory; `None` for an open server.
    lattice: Option<PathBuf>,
    /// Serialises `trellis lattice add` and the reloads after it.
    adding: Mutex<()>,
    /// Whether the server requires TLS (certificates under `lattice/tls/`).
    tls: bool,
}

/// The application subjects and streams the tests' messaging components use.
const MESSAGING_GRANTS: [&str; 5] = [
    "--subject=messaging=orders.>",
    "--subject=messaging=svc.>",
    "--subject=messaging=greet.>",
    "--subject=messaging=fail.>",
    "--stream=messaging=ORDERS",
];

impl Nats {
    /// Starts a secured server (installing nats-server through the project's
    /// script if needed).
    pub fn start(name: &str) -> Result<Nats, String> {
        Self::start_with(name, "")
    }

    /// [`Nats::start`] with `config` (nats-server configuration text) as well.
    pub fn start_with(name: &str, config: &str) -> Result<Nats, String> {
        Self::start_secured(name, config, false)
    }

    /// [`Nats::start`] with `trellis lattice init --tls`: the server demands
    /// TLS with client certificates, and every process the harness starts
    /// presents the lattice's.
    pub fn start_tls(name: &str) -> Result<Nats, String> {
        Self::start_secured(name, "", true)
    }

    fn start_secured(name: &str, config: &str, tls: bool) -> Result<Nats, String> {
        let dir = crate::support::scratch(&format!("nats-{name}")).map_err(|e| e.to_string())?;
        let lattice = dir.join("lattice");
        let mut init = vec!["lattice".to_string(), "init".into()];
        init.push(lattice.to_string_lossy().into_owned());
        init.extend(MESSAGING_GRANTS.iter().map(|g| g.to_string()));
        if tls {
            init.push("--tls".into());
        }
        trellis(&init)?;
        trellis(&[
            "lattice",
            "add",
            "admin",
            &lattice.to_string_lossy(),
            "test",
        ])?;
        std::fs::write(
            dir.join("nats.conf"),
            format!("include ./lattice/nats.conf\n{config}"),
        )
        .map_err(|e| e.to_string())?;
        let (process, url) = Self::spawn(&dir, "-1")?;
        Ok(Nats::secured(process, url, dir, lattice, tls))
    }

    /// Starts `size` servers as one cluster, all from the one nats.conf that
    /// `trellis lattice init --cluster` writes (each with its own name, route
    /// port and store, as deploy/README.md says). They share one lattice
    /// directory: use the identities `init` made (adding one reloads only the
    /// server it is asked of).
    pub fn start_cluster(name: &str, size: usize) -> Result<Vec<Nats>, String> {
        let dir = crate::support::scratch(&format!("nats-{name}")).map_err(|e| e.to_string())?;
        let lattice = dir.join("lattice");
        let ports = (0..size)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<u16>, String>>()?;
        let mut init = vec![
            "lattice".to_string(),
            "init".into(),
            lattice.to_string_lossy().into_owned(),
            "--cluster".into(),
            "trellis-test".into(),
        ];
        init.extend(ports.iter().map(|p| format!("--route=127.0.0.1:{p}")));
        trellis(&init)?;
        trellis(&[
            "lattice",
            "add",
            "admin",
            &lattice.to_string_lossy(),
            "test",
        ])?;
        let mut servers = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let mut command = Command::new(nats_server()?);
            command
                .arg("-c")
                .arg(lattice.join("nats.conf"))
                .args(["-a", "127.0.0.1", "-p", "-1", "-n", &format!("n{i}")])
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{port}"))
                .arg("-sd")
                .arg(dir.join(format!("js{i}")));
            let (mut process, _) = Process::spawn(command)?;
            let url = ready_url(&mut process)?;
            servers.push(Nats::secured(
                process,
                url,
                dir.clone(),
                lattice.clone(),
                false,
            ));
        }
        Ok(servers)
    }

    /// A hub and its leaf sites, secured the way deploy/README.md says:
    /// `trellis lattice init --js-domain hub --leafnodes` for the hub and
    /// `trellis lattice add site` for each site, every server started from
    /// the configuration those write. `sites` are each site's name (also its
    /// JetStream domain) and the port its leaf connection dials (the hub's
    /// `leaf_port`, or a [`crate::link::Link`] in front of it, which the hub
    /// then advertises so the site reconnects through it too); `hosts` are
    /// the host identities made up front (a site's server is not reloaded
    /// when one is added later). Returns once every site's leaf is up.
    pub fn start_edge(
        name: &str,
        leaf_port: u16,
        sites: &[(&str, u16)],
        hosts: &[&str],
        tls: bool,
    ) -> Result<(Nats, Vec<Nats>), String> {
        let dir = crate::support::scratch(&format!("nats-{name}")).map_err(|e| e.to_string())?;
        let lattice = dir.join("lattice");
        let path = lattice.to_string_lossy().into_owned();
        let leafnodes = format!("--leafnodes=127.0.0.1:{leaf_port}");
        let mut init = vec!["lattice", "init", &path, "--js-domain=hub", &leafnodes];
        let relayed = sites.iter().find(|(_, port)| *port != leaf_port);
        let advertise = relayed.map(|(_, port)| format!("--leafnodes-advertise=127.0.0.1:{port}"));
        init.extend(advertise.as_deref());
        init.extend(MESSAGING_GRANTS);
        if tls {
            init.push("--tls");
        }
        trellis(&init)?;
        trellis(&["lattice", "add", "admin", &path, "test"])?;
        for host in hosts {
            trellis(&["lattice", "add", "host", &path, host])?;
        }
        for (site, port) in sites {
            trellis(&[
                "lattice",
                "add",
                "site",
                &path,
                site,
                &format!("--hub=127.0.0.1:{port}"),
            ])?;
        }
        std::fs::write(dir.join("nats.conf"), "include ./lattice/nats.conf\n")
            .map_err(|e| e.to_string())?;
        let (process, url) = Self::spawn(&dir, "-1")?;
        let hub = Nats::secured(process, url, dir.clone(), lattice.clone(), tls);
        let mut leaves = Vec::new();
        for (site, _) in sites {
            // A site's nats.conf names its files relative to its directory.
            let site_dir = lattice.join("sites").join(site);
            let mut command = Command::new(nats_server()?);
            command
                .current_dir(&site_dir)
                .args(["-c", "nats.conf"])
                .args(["-a", "127.0.0.1", "-p", "-1", "-n", site]);
            let (mut process, _) = Process::spawn(command)?;
            let url = ready_url(&mut process)?;
            process.wait_for("Leafnode connection created", Duration::from_secs(20))?;
            leaves.push(Nats::secured(
                process,
                url,
                lattice.join("sites").join(site),
                lattice.clone(),
                tls,
            ));
        }
        Ok((hub, leaves))
    }

    /// A server of the lattice directory `lattice`, as the harness started it.
    fn secured(process: Process, url: String, dir: PathBuf, lattice: PathBuf, tls: bool) -> Nats {
        Nats {
            process,
            url,
            dir,
            lattice: Some(lattice),
            adding: Mutex::new(()),
            tls,
        }
    }

    /// Waits until the server's stderr says `needle` (cluster formation, …).
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> Result<(), String> {
        self.process.wait_for(needle, limit)
    }

    /// Starts a server that admits anyone, for tests about the open case.
    pub fn open(name: &str) -> Result<Nats, String> {
        let dir = crate::support::scratch(&format!("nats-{name}")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("nats.conf"), "").map_err(|e| e.to_string())?;
        let (process, url) = Self::spawn(&dir, "-1")?;
        Ok(Nats {
            process,
            url,
            dir,
            lattice: None,
            adding: Mutex::new(()),
            tls: false,
        })
    }

    fn spawn(dir: &Path, port: &str) -> Result<(Process, String), String> {
        let mut command = Command::new(nats_server()?);
        command
            .arg("-c")
            .arg(dir.join("nats.conf"))
            .args(["-a", "127.0.0.1", "-p", port]);
        if !dir.join("lattice").exists() {
            // An open server: JetStream from flags (a lattice's config has its own).
            command.args(["-js", "-sd"]).arg(dir.join("js"));
        }
        let (mut process, _) = Process::spawn(command)?;
        let url = ready_url(&mut process)?;
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

    /// The seed file of identity `kind` `name` (`host`, `provider`, `admin`),
    /// added to the lattice (and the server reloaded) on first use; the
    /// operator's and the scheduler's are `("operator", "operator")` and
    /// `("scheduler", "scheduler")`. Empty for an open server.
    pub fn identity(&self, kind: &str, name: &str) -> Result<Option<Identity>, String> {
        let Some(dir) = &self.lattice else {
            return Ok(None);
        };
        let _adding = self.adding.lock().map_err(|e| e.to_string())?;
        let parsed = match kind {
            "operator" => Kind::Operator,
            "scheduler" => Kind::Scheduler,
            "host" => Kind::Host,
            "provider" => Kind::Provider,
            "admin" => Kind::Admin,
            other => return Err(format!("no identity kind `{other}`")),
        };
        let lattice = LatticeDir::open(dir).map_err(|e| e.to_string())?;
        if let Some(found) = lattice.find(parsed, name) {
            return Ok(Some(found.clone()));
        }
        trellis(&["lattice", "add", kind, &dir.to_string_lossy(), name])?;
        self.reload()?;
        let lattice = LatticeDir::open(dir).map_err(|e| e.to_string())?;
        let found = lattice
            .find(parsed, name)
            .ok_or("trellis lattice add made no identity")?;
        Ok(Some(found.clone()))
    }

    /// The options that make a process connect as `kind` `name`.
    pub fn auth(&self, kind: &str, name: &str) -> Result<Vec<String>, String> {
        let Some(identity) = self.identity(kind, name)? else {
            return Ok(Vec::new());
        };
        let dir = self.lattice.as_ref().ok_or("no lattice")?;
        let mut options = vec![
            "--nats-nkey".into(),
            dir.join(format!("{}.nk", identity.file))
                .to_string_lossy()
                .into_owned(),
        ];
        if self.tls {
            for (option, file) in [
                ("--nats-tls-ca", "ca.pem"),
                ("--nats-tls-cert", "client.pem"),
                ("--nats-tls-key", "client-key.pem"),
            ] {
                options.push(option.into());
                options.push(dir.join("tls").join(file).to_string_lossy().into_owned());
            }
        }
        Ok(options)
    }

    /// The `--subject` options that tell provider `name` what the lattice grants it.
    pub fn grants(&self, name: &str) -> Result<Vec<String>, String> {
        let Some(identity) = self.identity("provider", name)? else {
            return Ok(Vec::new());
        };
        Ok(identity
            .grants
            .subjects
            .iter()
            .map(|s| format!("--subject={s}"))
            .collect())
    }

    /// The file `name` in the lattice directory (a seed, an xkey).
    pub fn lattice_file(&self, name: &str) -> Result<PathBuf, String> {
        Ok(self
            .lattice
            .as_ref()
            .ok_or("an open server has no lattice")?
            .join(name))
    }

    /// The ID of the host the tests call `name` (its nkey public key).
    pub fn host_id(&self, name: &str) -> Result<String, String> {
        Ok(self
            .identity("host", name)?
            .map(|i| i.public_key)
            .unwrap_or_else(|| name.to_string()))
    }

    /// The name the tests gave the host with ID `id`.
    pub fn host_name(&self, id: &str) -> String {
        self.lattice
            .as_ref()
            .and_then(|dir| LatticeDir::open(dir).ok())
            .and_then(|l| {
                l.description
                    .identities
                    .iter()
                    .find(|i| i.public_key == id)
                    .map(|i| i.name.clone())
            })
            .unwrap_or_else(|| id.to_string())
    }

    /// Has nats-server read its configuration again, and waits until it has.
    fn reload(&self) -> Result<(), String> {
        const RELOADED: &str = "Reloaded server configuration";
        let before = self.process.count(RELOADED);
        Command::new("kill")
            .args(["-HUP", &self.process.child.id().to_string()])
            .status()
            .map_err(|e| e.to_string())?;
        self.process
            .wait_for_count(RELOADED, before, Duration::from_secs(10))
            .map_err(|e| format!("nats-server did not reload its configuration: {e}"))
    }

    /// A client with full access (the lattice's `admin` identity): the tests'
    /// own observer.
    pub async fn client(&self) -> Result<async_nats::Client, String> {
        self.client_as("admin", "test").await
    }

    /// A client connected as identity `kind` `name`, with that role's inbox prefix.
    pub async fn client_as(&self, kind: &str, name: &str) -> Result<async_nats::Client, String> {
        let mut args = trellis_lattice::NatsArgs::new(&self.url);
        let role = match kind {
            "operator" => Role::Operator,
            "scheduler" => Role::Scheduler,
            "host" => Role::Host(self.host_id(name)?),
            "provider" => Role::Provider(name.into()),
            _ => Role::Admin(name.into()),
        };
        if let Some(identity) = self.identity(kind, name)? {
            let dir = self.lattice.as_ref().ok_or("no lattice")?;
            args.nkey = Some(dir.join(format!("{}.nk", identity.file)));
            if self.tls {
                let tls = dir.join("tls");
                args.tls_ca = Some(tls.join("ca.pem"));
                args.tls_cert = Some(tls.join("client.pem"));
                args.tls_key = Some(tls.join("client-key.pem"));
            }
        }
        args.connect(&role, true).await.map_err(|e| e.to_string())
    }

    /// Waits (at most 5 s) until nats-server logs that it refused `what`
    /// ("Publish", "Subscription") on a subject starting with `subject`: proof
    /// that a permission, not something else, stopped it.
    pub fn refused(&self, what: &str, subject: &str) -> Result<(), String> {
        let needle = format!("{what} Violation - Subject \"{subject}");
        self.process
            .wait_for_count(&needle, 0, Duration::from_secs(5))
            .map_err(|_| format!("nats-server never refused: {needle}"))
    }

    /// A client that presents no credentials.
    pub async fn anonymous(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        async_nats::connect(&self.url).await
    }
}

impl Drop for Nats {
    /// Shows what the server refused, beside a failing test's output.
    fn drop(&mut self) {
        for line in self.process.stderr_text().lines() {
            if line.contains("Violation") || line.contains("Authorization Error") {
                eprintln!("nats-server: {line}");
            }
        }
    }
}

/// Waits until nats-server is ready (JetStream too) and returns its client URL.
fn ready_url(process: &mut Process) -> Result<String, String> {
    process.wait_for("Server is ready", Duration::from_secs(20))?;
    let text = process.stderr_text();
    text.lines()
        .find_map(|l| l.split("Listening for client connections on ").nth(1))
        .map(|addr| format!("nats://{}", addr.trim()))
        .ok_or_else(|| format!("nats-server named no client address:\n{text}"))
}

/// Runs the `trellis` CLI, which must succeed.
fn trellis<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "trellis failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
pub fn workspace_binary(package: &str) -> Result<PathBuf, String> {
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
                "-p",
                "trellis-stock-greeter",
                "-p",
                "trellis-conformance",
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
    provider_in_env(nats, package, name, extra, &[])
}

/// [`provider_with`], the process's environment extended by `env`.
pub fn provider_in_env(
    nats: &Nats,
    package: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Process, String> {
    let mut command = Command::new(workspace_binary(package)?);
    command
        .envs(env.iter().copied())
        .args(["--nats", &nats.url, "--name", name])
        .args(nats.auth("provider", name)?)
        .args(nats.grants(name)?)
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

/// Starts `trellis host` with `manifests` as the host the tests call by the
/// `--id` in `extra` (a fresh name without one), on that host's identity;
/// Err carries stderr when it does not start.
pub fn host(nats: &Nats, manifests: &[&Path], extra: &[&str]) -> Result<LatticeHost, String> {
    host_env(nats, manifests, extra, &[])
}

/// [`host`], the process's environment extended by `env`.
pub fn host_env(
    nats: &Nats,
    manifests: &[&Path],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<LatticeHost, String> {
    static HOSTS: AtomicUsize = AtomicUsize::new(0);
    let mut options: Vec<String> = Vec::new();
    let mut name = None;
    let mut given = extra.iter();
    while let Some(option) = given.next() {
        if *option == "--id" {
            name = given.next().map(|n| n.to_string());
        } else {
            options.push(option.to_string());
        }
    }
    let name = name.unwrap_or_else(|| format!("host{}", HOSTS.fetch_add(1, Ordering::Relaxed)));
    let auth = nats.auth("host", &name)?;
    if auth.is_empty() {
        options.extend(["--id".to_string(), name]);
    }
    options.splice(0..0, auth);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    host_in_env(nats, manifests, &options, env)
}

/// Starts `trellis host` with exactly the options `extra` (no identity of its own).
pub fn host_with(nats: &Nats, manifests: &[&Path], extra: &[&str]) -> Result<LatticeHost, String> {
    host_in_env(nats, manifests, extra, &[])
}

/// [`host_with`], the process's environment extended by `env`.
pub fn host_in_env(
    nats: &Nats,
    manifests: &[&Path],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<LatticeHost, String> {
    let mut command = host_command(nats, extra);
    command.envs(env.iter().copied());
    // Test manifests name components anywhere in the repository.
    command.arg("--allow-dir").arg(crate::support::repo());
    for m in manifests {
        command.arg("--manifest").arg(m);
    }
    start_host(command)
}

/// A host of the test's name `name` running in `dir` and allowed to read
/// only there: it has no access to the repository or the operator's files.
pub fn host_in_dir(
    nats: &Nats,
    name: &str,
    dir: &Path,
    extra: &[&str],
) -> Result<LatticeHost, String> {
    let mut options = nats.auth("host", name)?;
    if options.is_empty() {
        options.extend(["--id".to_string(), name.to_string()]);
    }
    options.extend(extra.iter().map(|o| o.to_string()));
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let mut command = host_command(nats, &options);
    command.current_dir(dir).arg("--allow-dir").arg(dir);
    start_host(command)
}

/// `trellis host` on `nats` with `extra`, and a cache of its own unless
/// `extra` names one: tests must not share what one host fetched.
fn host_command(nats: &Nats, extra: &[&str]) -> Command {
    static CACHES: AtomicUsize = AtomicUsize::new(0);
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .args(["host", "--nats", &nats.url, "--listen", "127.0.0.1:0"])
        .args(extra);
    if !extra
        .iter()
        .any(|o| *o == "--cache-dir" || *o == "--no-cache")
    {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "host-cache-{}-{}",
            std::process::id(),
            CACHES.fetch_add(1, Ordering::Relaxed)
        ));
        command.arg("--cache-dir").arg(cache);
    }
    command
}

fn start_host(command: Command) -> Result<LatticeHost, String> {
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

/// A control API client, as the operator, of the host the tests call `name`
/// on `nats`'s default lattice, each call bounded by `timeout`.
pub async fn control_client(
    nats: &Nats,
    name: &str,
    timeout: Duration,
) -> Result<trellis_control_api::ControlClient, Box<dyn std::error::Error>> {
    Ok(trellis_control_api::ControlClient::new(
        nats.client_as("operator", "operator").await?,
        &trellis_lattice::Subjects::new("default"),
        &nats.host_id(name)?,
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
    scheduler_in_env(nats, extra, &[])
}

/// [`scheduler_with`], the process's environment extended by `env`.
pub fn scheduler_in_env(
    nats: &Nats,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<SchedulerProcess, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .envs(env.iter().copied())
        .args(["scheduler", "--nats", &nats.url])
        .args(nats.auth("scheduler", "scheduler")?)
        .args(extra);
    let (mut process, _) = Process::spawn(command)?;
    process.wait_for("scheduler started", Duration::from_secs(30))?;
    Ok(SchedulerProcess { process })
}

/// Runs the `trellis` CLI with `args` against `nats` as the operator; returns
/// exit code, stdout, stderr.
pub fn cli(nats: &Nats, args: &[&str]) -> Result<(i32, String, String), String> {
    cli_in_env(nats, args, &[])
}

/// [`cli`], the process's environment extended by `env`.
pub fn cli_in_env(
    nats: &Nats,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Result<(i32, String, String), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .envs(env.iter().copied())
        .args(args)
        .args(["--nats", &nats.url])
        .args(nats.auth("operator", "operator")?)
        .output()
        .map_err(|e| e.to_string())?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
