//! The `trellis` command.

/// Prints a line to stdout, ignoring a closed stdout: a server must not die
/// because whoever started it stopped reading.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod cli;
mod mirror;
mod publish;
mod setup;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trellis_artifacts::{DiskCache, Fetcher, MAX_ARTIFACT_BYTES, Trust};
use trellis_host::control::{ControlAgent, Identity};
use trellis_host::lattice::{HostIdentity, Lattice, publish_heartbeats};
use trellis_host::sandbox::{FileAccess, HttpCeiling, Sandbox};
use trellis_host::{CompiledCache, EngineSettings, Host, HttpLimits, dev};
use trellis_lattice::NatsArgs;
use trellis_process::TelemetryArgs;

/// Trellis: a distributed WebAssembly platform.
#[derive(Parser)]
#[command(name = "trellis", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload on this machine, no NATS needed, reloading on change.
    ///
    /// TARGET is a workload manifest (.yaml), a bare component (.wasm or .wat),
    /// a component in a registry (`oci://REGISTRY/REPO:TAG` or `…@sha256:…`) or
    /// in a lattice's store (`lattice://sha256:…`, read through the NATS options,
    /// as the operator; NATS is contacted only for such sources); a bare
    /// component gets every `wasi:` import bound to the host and every path.
    Dev {
        /// The manifest, component file or reference (`oci://…`, `lattice://…`) to run.
        target: PathBuf,
        /// Address for HTTP.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        artifacts: ArtifactArgs,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Join a lattice: run workloads whose bindings may call providers and other
    /// workloads over NATS, serve the control API, and announce this host with heartbeats.
    Host {
        #[command(flatten)]
        nats: Box<NatsArgs>,
        /// A label for placement, `key=value` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// A workload manifest to run (repeatable), as workload ID `<host-id>:<name>`;
        /// without any, the host waits for the control API.
        #[arg(long = "manifest", value_name = "FILE")]
        manifests: Vec<PathBuf>,
        /// This host's ID; with `--nats-nkey` it is the nkey's public key (another
        /// value is refused), else random by default.
        #[arg(long)]
        id: Option<String>,
        /// The xkey seed lattice secrets are sealed to for this host (from
        /// `trellis lattice init`); default: the `.xk` file beside `--nats-nkey`.
        #[arg(long, value_name = "FILE")]
        xkey: Option<PathBuf>,
        /// Address for HTTP.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        /// A directory workloads may read component sources and preopens from
        /// (repeatable); default: the working directory. What `--manifest`
        /// files name (their components' folders, their preopens) is allowed too.
        #[arg(long = "allow-dir", value_name = "DIR")]
        allow_dirs: Vec<PathBuf>,
        /// A host outgoing HTTP may reach at most (repeatable; `api.example.com`,
        /// `*.example.com`, `host:port`, `*`): a component reaches only hosts
        /// both this and its `grants.http` allow. Default: none.
        #[arg(long = "allow-http", value_name = "PATTERN")]
        allow_http: Vec<String>,
        /// Honour components' `grants.network` (wasi:sockets). Default: refused.
        #[arg(long)]
        allow_network: bool,
        /// Run only components signed by this nkey public key (repeatable; the
        /// operator's, from `lattice.json`), whatever their source. Default:
        /// signatures are not checked.
        #[arg(long = "trust", value_name = "PUBLIC_KEY")]
        trust: Vec<String>,
        #[command(flatten)]
        engine: EngineArgs,
        #[command(flatten)]
        artifacts: ArtifactArgs,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        telemetry: TelemetryArgs,
    },
    /// Record a workload's desired state in the lattice (idempotent), local
    /// components uploaded and registry tags pinned to digests; the scheduler
    /// places it. Exit codes: 0 done, 1 refused, 2 invalid, 3 unreachable.
    Apply {
        /// The workload manifest; its `deploy` block says how many and where.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Sign every component the manifest names with the operator's nkey
        /// (`--nats-nkey`), for hosts started with `--trust`.
        #[arg(long)]
        sign: bool,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Store a component in the lattice's artifact store (and, given a
    /// reference, in that OCI registry); prints `lattice://sha256:…` (and the
    /// registry reference pinned to its digest).
    Push {
        /// The component (.wasm, or component text).
        file: PathBuf,
        /// Also push to this registry reference, `oci://REGISTRY/REPO:TAG`.
        #[arg(value_parser = parse_oci)]
        reference: Option<trellis_manifest::OciReference>,
        /// Sign the component's digest with the operator's nkey (`--nats-nkey`).
        #[arg(long)]
        sign: bool,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Sign a component with the operator's nkey (`--nats-nkey`) and record
    /// the signature in the lattice, for hosts started with `--trust`.
    Sign {
        /// `lattice://sha256:…`, `oci://…` (pulled to learn its digest) or a file.
        reference: String,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// List workloads (desired and running), hosts or providers.
    Get {
        /// What to list.
        what: Listing,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: cli::Format,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Show one workload: desired state, status, every replica.
    Describe {
        /// Only `workload` for now.
        kind: Kind,
        /// The workload's name.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: cli::Format,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Remove a workload from the desired state; the scheduler stops its replicas.
    Delete {
        /// Only `workload` for now.
        kind: Kind,
        /// The workload's name.
        name: String,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Set up a secured lattice: identities, permissions and nats.conf.
    Lattice {
        #[command(subcommand)]
        command: setup::LatticeCommand,
    },
    /// Keep the lattice's desired state true: place workloads on hosts by labels
    /// and load, roll out new versions, reschedule from hosts that stop heartbeating.
    /// Run several; one leads.
    Scheduler {
        #[command(flatten)]
        nats: Box<NatsArgs>,
        /// How long a SIGTERM may take, whatever NATS is doing.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// Serve the lattice's secret store with this xkey seed (the store key,
        /// `scheduler.xk` from `trellis lattice init`).
        #[arg(long, value_name = "FILE")]
        secrets_key: Option<PathBuf>,
        /// Hold the copies of a leaf site whose hosts are all silent this long
        /// (a cut link); then forget its hosts, so their workloads may be
        /// placed elsewhere.
        #[arg(long, default_value = "168h", value_parser = parse_duration)]
        forget_silent_sites_after: Duration,
        #[command(flatten)]
        telemetry: TelemetryArgs,
    },
    /// Serve a live web page of the lattice: hosts with their labels and
    /// usage, workloads with desired and running replicas and their last
    /// errors, providers, and recent events. Read-only; runs as the operator.
    Dashboard {
        /// Address for the page.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// A host name the page may be reached by (repeatable), beside
        /// `localhost` and IP addresses: requests naming anything else are
        /// refused, so no web page elsewhere can read the lattice through DNS
        /// rebinding.
        #[arg(long = "allow-host", value_name = "NAME")]
        allow_hosts: Vec<String>,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// At a leaf site (`--js-domain SITE`): mirror the hub's desired state,
    /// status, artifacts and signatures into the site's domain, so `trellis
    /// get` answers and hosts fetch `lattice://` components through a cut link.
    Mirror {
        /// The hub's JetStream domain.
        #[arg(long, value_name = "DOMAIN")]
        hub_domain: String,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
    /// Manage the lattice's secrets; values are sealed to the secret store's key
    /// before they leave this machine.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
}

/// `trellis secret …`
#[derive(Subcommand)]
enum SecretCommand {
    /// Store the value read from stdin (or --file) as secret NAME.
    Put {
        /// The secret's store key, as manifests name it (`NAME: lattice`).
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        nats: Box<NatsArgs>,
    },
}

/// What `trellis get` lists.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Listing {
    /// Desired workloads with their running replicas.
    Workloads,
    /// Hosts heard from in the last two seconds.
    Hosts,
    /// Provider replicas that answer a ping within half a second.
    Providers,
}

/// The kinds `describe` and `delete` take.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// A workload.
    Workload,
}

/// Capacity options every host mode takes.
#[derive(clap::Args)]
struct EngineArgs {
    /// Largest linear memory any instance may have, e.g. `1GiB`.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    max_instance_memory: u64,
    /// Instances that may be alive at once on this host.
    #[arg(long, default_value_t = 1000)]
    max_instances: u32,
}

/// Where a host gets components from and keeps them and the code it compiles.
#[derive(clap::Args)]
struct ArtifactArgs {
    /// Pull only from this registry (repeatable; `host[:port]` exactly as
    /// references name it). Default: any registry a manifest names.
    #[arg(long = "allow-registry", value_name = "REGISTRY")]
    allow_registries: Vec<String>,
    /// Cache directory: fetched components (by digest, verified on every
    /// read) in `artifacts/`, compiled code in `compiled/`. Default:
    /// `$XDG_CACHE_HOME/trellis`, else `~/.cache/trellis`.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The bound on each of the two caches, e.g. `4GiB`; the least recently
    /// used entries go first, never one a workload on this host needs.
    #[arg(long, default_value = "2GiB", value_parser = parse_size)]
    cache_size: u64,
    /// Keep nothing on disk: fetch and compile on every start.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl ArtifactArgs {
    /// The cache directory, unless caching is off or there is no home.
    fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
                .map(|base| base.join("trellis"))
        })
    }

    /// The engine settings with the compiled-code cache, if any.
    fn engine(&self, args: EngineArgs) -> EngineSettings {
        EngineSettings {
            max_instances: args.max_instances,
            max_instance_memory: args.max_instance_memory,
            compiled_cache: self.dir().map(|dir| CompiledCache {
                dir: dir.join("compiled"),
                max_bytes: self.cache_size,
            }),
        }
    }

    /// The artifact fetcher: this cache, `nats` for lattice sources and
    /// signatures, and the signers to require.
    fn fetcher(
        &self,
        nats: Option<(async_nats::Client, trellis_lattice::Subjects)>,
        trust: &[String],
    ) -> anyhow::Result<Fetcher> {
        let cache = self
            .dir()
            .map(|dir| DiskCache::open(&dir.join("artifacts"), self.cache_size))
            .transpose()?;
        let trust = Trust::keys(trust).context("--trust")?;
        let fetcher = Fetcher::new(cache, nats, trust, MAX_ARTIFACT_BYTES);
        Ok(if self.allow_registries.is_empty() {
            fetcher
        } else {
            fetcher.allow_registries(self.allow_registries.clone())
        })
    }
}

/// The HTTP ingress's bounds (see `trellis_host::HttpLimits`).
#[derive(Debug, Clone, clap::Args)]
struct HttpArgs {
    /// How long a client may take to send a request's headers.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// How long a connection may sit idle before it is closed.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// HTTP connections open at once; more are closed as they arrive.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// HTTP/2 streams per connection.
    #[arg(long, default_value_t = 200)]
    max_streams: u32,
    /// The largest request header block, e.g. `64KiB`.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    max_header_size: u64,
    /// How long a SIGTERM waits for requests and calls in flight.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
}

impl From<HttpArgs> for HttpLimits {
    fn from(args: HttpArgs) -> Self {
        HttpLimits {
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections,
            max_streams: args.max_streams,
            max_header_bytes: usize::try_from(args.max_header_size).unwrap_or(usize::MAX),
            drain_timeout: args.drain_timeout,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    trellis_manifest::parse_duration(text).map_err(|e| e.to_string())
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("label `{text}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("label `{text}` has an empty key"));
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_oci(text: &str) -> Result<trellis_manifest::OciReference, String> {
    if !text.starts_with("oci://") {
        return Err(format!(
            "`{text}` is not a registry reference: write oci://REGISTRY/REPO:TAG"
        ));
    }
    text.parse()
        .map_err(|e: trellis_manifest::ReferenceError| e.to_string())
}

fn parse_size(text: &str) -> Result<u64, trellis_manifest::UnitError> {
    trellis_manifest::parse_size(text)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    trellis_process::install_crypto_provider();
    if let Some(outcome) = operate(&cli) {
        return outcome.exit();
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the operator commands, which report through exit codes; `None` for the others.
fn operate(cli: &Cli) -> Option<cli::Outcome> {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            return Some(cli::Outcome::Unreachable(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    Some(match &cli.command {
        Command::Apply { file, sign, nats } => runtime.block_on(cli::apply(nats, file, *sign)),
        Command::Push {
            file,
            reference,
            sign,
            nats,
        } => runtime.block_on(publish::push(nats, file, reference.as_ref(), *sign)),
        Command::Sign { reference, nats } => {
            runtime.block_on(publish::sign_artifact(nats, reference))
        }
        Command::Get { what, output, nats } => runtime.block_on(async {
            match what {
                Listing::Workloads => cli::get_workloads(nats, *output).await,
                Listing::Hosts => cli::get_hosts(nats, *output).await,
                Listing::Providers => cli::get_providers(nats, *output).await,
            }
        }),
        Command::Describe {
            kind: Kind::Workload,
            name,
            output,
            nats,
        } => runtime.block_on(cli::describe_workload(nats, name, *output)),
        Command::Delete {
            kind: Kind::Workload,
            name,
            nats,
        } => runtime.block_on(cli::delete(nats, name)),
        Command::Scheduler {
            nats,
            drain_timeout,
            secrets_key,
            forget_silent_sites_after,
            telemetry,
        } => {
            let telemetry = match trellis_process::Telemetry::init("trellis-scheduler", telemetry) {
                Ok(telemetry) => telemetry,
                Err(e) => return Some(cli::Outcome::Invalid(e.to_string())),
            };
            let outcome = runtime.block_on(async {
                if let Err(e) = telemetry.serve_metrics().await {
                    return cli::Outcome::Invalid(e.to_string());
                }
                cli::scheduler(
                    nats,
                    cli::SchedulerOptions {
                        drain: *drain_timeout,
                        secrets_key: secrets_key.as_deref(),
                        forget_silent_sites_after: *forget_silent_sites_after,
                    },
                    trellis_process::shutdown_signal(),
                )
                .await
            });
            telemetry.shutdown();
            outcome
        }
        Command::Secret {
            command: SecretCommand::Put { name, file, nats },
        } => runtime.block_on(cli::put_secret(nats, name, file.as_deref())),
        Command::Lattice { command } => setup::run(command),
        Command::Mirror { hub_domain, nats } => runtime.block_on(mirror::mirror(nats, hub_domain)),
        Command::Dev { .. } | Command::Host { .. } | Command::Dashboard { .. } => return None,
    })
}

/// Runs a long-lived process's `main` with its telemetry: started before,
/// `/metrics` served during, buffered spans and metrics flushed after.
fn with_telemetry(
    service: &str,
    args: &TelemetryArgs,
    runtime: &tokio::runtime::Runtime,
    main: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let telemetry = trellis_process::Telemetry::init(service, args)?;
    let result = runtime.block_on(async {
        telemetry.serve_metrics().await?;
        main.await
    });
    telemetry.shutdown();
    result
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Dev {
            target,
            listen,
            engine,
            artifacts,
            http,
            nats,
        } => runtime.block_on(async {
            trellis_process::init_logging();
            let fetcher = artifacts.fetcher(dev_lattice(&target, &nats).await?, &[])?;
            run_dev(
                target,
                listen,
                artifacts.engine(engine),
                fetcher,
                http.into(),
            )
            .await
        }),
        Command::Host {
            nats,
            labels,
            manifests,
            id,
            xkey,
            listen,
            allow_dirs,
            allow_http,
            allow_network,
            trust,
            engine,
            artifacts,
            http,
            telemetry,
        } => with_telemetry(
            "trellis-host",
            &telemetry,
            &runtime,
            run_host(
                HostOptions {
                    nats: *nats,
                    labels: labels.into_iter().collect(),
                    manifests,
                    id,
                    xkey,
                    listen,
                    allow_dirs,
                    allow_http,
                    allow_network,
                    trust,
                    http: http.into(),
                },
                artifacts.engine(engine),
                artifacts,
            ),
        ),
        Command::Dashboard {
            listen,
            allow_hosts,
            nats,
        } => runtime.block_on(async {
            trellis_process::init_logging();
            let shutdown = trellis_process::shutdown_signal();
            trellis_host::dashboard::run(&nats, listen, allow_hosts, shutdown).await
        }),
        // The operator commands ran in `operate`.
        _ => Ok(()),
    }
}

struct HostOptions {
    nats: NatsArgs,
    labels: BTreeMap<String, String>,
    manifests: Vec<PathBuf>,
    id: Option<String>,
    xkey: Option<PathBuf>,
    listen: SocketAddr,
    allow_dirs: Vec<PathBuf>,
    allow_http: Vec<String>,
    allow_network: bool,
    trust: Vec<String>,
    http: HttpLimits,
}

/// What workloads on this host may read: the allowed directories (the
/// working directory unless some are given), and what the operator's own
/// `--manifest` files name (the folders of their component sources and
/// their preopens).
fn file_access(options: &HostOptions) -> anyhow::Result<FileAccess> {
    let mut dirs = options.allow_dirs.clone();
    if dirs.is_empty() {
        dirs.push(std::env::current_dir().context("cannot read the working directory")?);
    }
    for file in &options.manifests {
        let workload = trellis_manifest::Workload::from_file(file)?;
        for component in &workload.components {
            if let trellis_manifest::ComponentSource::File(source) = &component.source {
                let folder = source.parent().filter(|p| !p.as_os_str().is_empty());
                dirs.push(folder.unwrap_or(Path::new(".")).to_path_buf());
            }
            dirs.extend(component.grants.preopens.iter().map(|p| p.host.clone()));
        }
    }
    Ok(FileAccess::under(&dirs)?)
}

/// The host's ID: its nkey public key when it authenticates with an nkey (the
/// lattice's permissions let that identity serve only that ID's subjects, so
/// another `--id` is refused here rather than failing on NATS), else `--id`,
/// else a random one.
fn host_id(id: Option<String>, public_key: Option<String>) -> anyhow::Result<String> {
    let id = match (id, public_key) {
        (Some(id), Some(key)) if id != key => anyhow::bail!(
            "--id `{id}` is not this host's nkey public key `{key}`: a host that \
             authenticates with an nkey has that key as its ID (leave out --id)"
        ),
        (_, Some(key)) => key,
        (Some(id), None) => id,
        (None, None) => format!("H{}", uuid::Uuid::new_v4().simple()).to_uppercase(),
    };
    trellis_lattice::check_name(trellis_lattice::NameKind::Host, &id)?;
    Ok(id)
}

async fn run_host(
    options: HostOptions,
    settings: EngineSettings,
    artifacts: ArtifactArgs,
) -> anyhow::Result<()> {
    let sandbox = Sandbox {
        files: file_access(&options)?,
        http: if options.allow_http.is_empty() {
            HttpCeiling::None
        } else {
            HttpCeiling::Only(options.allow_http.clone())
        },
        network: options.allow_network,
    };
    let id = host_id(options.id.clone(), options.nats.nkey_public_key()?)?;
    let nats = options
        .nats
        .connect(&trellis_lattice::Role::Host(id.clone()), true)
        .await?;
    let mut lattice = Lattice::new(nats, options.nats.subjects());
    let beside_nkey = options.nats.nkey.as_ref().map(|p| p.with_extension("xk"));
    let xkey = options.xkey.clone().or(beside_nkey.filter(|p| p.exists()));
    if let Some(path) = xkey {
        let xkey = trellis_lattice::read_xkey(&path).map_err(anyhow::Error::msg)?;
        lattice = lattice.with_identity(HostIdentity {
            id: id.clone(),
            xkey,
        });
    }
    let lattice = Arc::new(lattice);
    let fetcher = artifacts.fetcher(
        Some((lattice.nats().clone(), lattice.subjects().clone())),
        &options.trust,
    )?;
    let host = Arc::new(
        Host::with_lattice(settings, Some(lattice.clone()))?
            .sandboxed(sandbox)
            .with_artifacts(fetcher),
    );
    trellis_host::telemetry::observe(&host);
    let agent = ControlAgent::new(
        host.clone(),
        Identity {
            id: id.clone(),
            labels: options.labels.clone(),
        },
        &lattice,
    );
    let mut loaded = Vec::with_capacity(options.manifests.len());
    for file in &options.manifests {
        let workload = trellis_manifest::Workload::from_file(file)?;
        let name = workload.name.clone();
        loaded.push(host.load(workload, file).await?);
        agent.adopt(format!("{id}:{name}"), &name);
    }
    host.run_all(loaded)
        .await
        .context("cannot serve the --manifest workloads")?;
    let control = tokio::spawn(
        agent
            .serve(&lattice)
            .await
            .context("cannot serve the control API")?,
    );
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    say!(
        "trellis host `{id}`: lattice `{}`, serving on http://{addr}",
        lattice.name()
    );
    if options.manifests.is_empty() {
        say!(
            "no manifests: waiting for the control API on {}",
            lattice.subjects().host(&id)
        );
    }
    dev::print_routes(&host);
    let heartbeats = tokio::spawn(publish_heartbeats(
        lattice.clone(),
        host.clone(),
        id,
        options.labels,
        Some(addr.to_string()),
    ));
    host.serve(listener, options.http, trellis_process::shutdown_signal())
        .await;
    heartbeats.abort();
    control.abort();
    // NATS may be gone: the last flush is bounded like the drain.
    let _ = tokio::time::timeout(options.http.drain_timeout, lattice.nats().flush()).await;
    Ok(())
}

/// The lattice `trellis dev` reads `lattice://` sources from, connected (as
/// the operator) only when the target names one.
async fn dev_lattice(
    target: &Path,
    nats: &NatsArgs,
) -> anyhow::Result<Option<(async_nats::Client, trellis_lattice::Subjects)>> {
    let Ok(workload) = dev::read_workload(target) else {
        return Ok(None); // Reported when it is loaded.
    };
    let needs = workload
        .components
        .iter()
        .any(|c| matches!(c.source, trellis_manifest::ComponentSource::Lattice(_)));
    if !needs {
        return Ok(None);
    }
    let client = nats
        .connect(&trellis_lattice::Role::Operator, true)
        .await
        .context("lattice:// sources are read from the lattice")?;
    Ok(Some((client, nats.subjects())))
}

async fn run_dev(
    target: PathBuf,
    listen: SocketAddr,
    settings: EngineSettings,
    fetcher: Fetcher,
    limits: HttpLimits,
) -> anyhow::Result<()> {
    let host = Arc::new(Host::new(settings)?.with_artifacts(fetcher));
    let workload = dev::load_into(&host, &target).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    say!(
        "trellis dev: serving workload `{}` on http://{addr}",
        workload.name
    );
    dev::print_routes(&host);
    tokio::spawn(dev::watch(host.clone(), target, Some(workload)));
    host.serve(listener, limits, trellis_process::shutdown_signal())
        .await;
    Ok(())
}
