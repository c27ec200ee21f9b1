//! One provider process: its lattice connection, its served interfaces, its info
//! and heartbeat, and a drain on SIGTERM.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{Stream, StreamExt as _};
use tokio::task::JoinSet;
use tracing::Instrument as _;
use trellis_lattice::{NatsArgs, ProviderInfo, Subjects};

use trellis_lattice::lean::{self, DualServer};
use trellis_lattice::{BoundedServer, ServerLimits};
use trellis_wire::Signatures;

/// What a provider is, fixed when it is built: its default name, version,
/// the interfaces it announces and the signatures of the functions it
/// serves (from its WIT, by its build script). [`describe!`](crate::describe)
/// fills in the version and signatures.
#[derive(Debug, Clone, Copy)]
pub struct Description {
    /// The name bindings use unless `--name` says otherwise.
    pub name: &'static str,
    /// The provider's version, announced in its info.
    pub version: &'static str,
    /// What it is, in a sentence: its NATS micro service description.
    pub about: &'static str,
    /// The interfaces announced; a host refuses a binding to any other.
    pub interfaces: &'static [&'static str],
    /// `trellis_wire::Signatures` as JSON: every payload is checked against them.
    pub signatures: &'static str,
}

/// A provider's [`Description`]: its name and interfaces, with the crate's
/// version and the signatures its build script wrote
/// (`trellis_wire::build_script(WIT_DIR, WORLD)` in `build.rs`).
#[macro_export]
macro_rules! describe {
    ($name:expr, $interfaces:expr $(,)?) => {
        $crate::Description {
            name: $name,
            version: env!("CARGO_PKG_VERSION"),
            about: env!("CARGO_PKG_DESCRIPTION"),
            interfaces: $interfaces,
            signatures: include_str!(concat!(env!("OUT_DIR"), "/signatures.json")),
        }
    };
}

/// What `wit_bindgen_wrpc::generate!`'s `serve` returns: per function, a stream of
/// invocations to run.
pub type Invocations = Vec<(
    &'static str,
    &'static str,
    Pin<
        Box<
            dyn Stream<
                    Item = anyhow::Result<
                        Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>,
                    >,
                > + Send
                + 'static,
        >,
    >,
)>;

/// How often a provider publishes its heartbeat.
const HEARTBEAT: Duration = trellis_lattice::PROVIDER_HEARTBEAT_INTERVAL;
/// How long [`Provider::require_jetstream`] waits for JetStream.
const JETSTREAM_CHECK: Duration = Duration::from_secs(10);

/// Command-line options every provider takes.
#[derive(Debug, Clone, clap::Parser)]
pub struct ProviderArgs {
    /// NATS connection and lattice.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// The provider name bindings use (`provider: NAME`); replicas share it.
    #[arg(long, env = "TRELLIS_PROVIDER_NAME")]
    pub name: Option<String>,
    /// How long a SIGTERM waits for calls in flight (and NATS) before the
    /// process exits anyway.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// An application subject the lattice grants this provider (repeatable;
    /// what `trellis lattice add provider --subject` granted): providers that
    /// publish for components refuse others at once. None: no restriction
    /// beyond the reserved subjects.
    #[arg(long = "subject", value_name = "PATTERN")]
    pub subjects: Vec<String>,
    /// The xkey seed secrets in binding config are sealed to (from `trellis
    /// lattice init`); default: the `.xk` file beside `--nats-nkey`.
    #[arg(long, value_name = "FILE")]
    pub xkey: Option<std::path::PathBuf>,
    /// Metrics and traces.
    #[command(flatten)]
    pub telemetry: trellis_process::TelemetryArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as `10s`"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!(
            "`{text}` is not a duration such as `10s` or `500ms`"
        )),
    }
}

/// A provider connected to its lattice.
pub struct Provider {
    nats: async_nats::Client,
    drain: Duration,
    wrpc: DualServer,
    subjects: Subjects,
    info: ProviderInfo,
    description: &'static str,
    started: Instant,
    in_flight: Arc<AtomicU64>,
}

impl Provider {
    /// A provider process from start to end: logging, arguments, the
    /// connection, then `serve` (which builds the handler and calls the
    /// generated `serve`), then [`Provider::run`] until SIGINT or SIGTERM.
    pub async fn main<F>(description: Description, serve: F) -> anyhow::Result<()>
    where
        F: AsyncFnOnce(&Provider, &ProviderArgs) -> anyhow::Result<Invocations>,
    {
        let args = <ProviderArgs as clap::Parser>::parse();
        let service = args.name.as_deref().unwrap_or(description.name).to_string();
        let telemetry = trellis_process::Telemetry::init(&service, &args.telemetry)?;
        telemetry.serve_metrics().await?;
        let provider = Provider::connect(&args, description).await?;
        let invocations = serve(&provider, &args).await?;
        let result = provider.run(invocations).await;
        telemetry.shutdown();
        result
    }

    /// Connects, and prepares to serve the described interfaces under the
    /// name from `args` (else the description's) in a queue group shared by
    /// its replicas.
    pub async fn connect(
        args: &ProviderArgs,
        description: Description,
    ) -> anyhow::Result<Provider> {
        let signatures = Signatures::from_json(description.signatures)
            .context("the provider's built-in signatures do not parse")?;
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| description.name.to_string());
        trellis_lattice::check_name(trellis_lattice::NameKind::Provider, &name)?;
        let xkey_file = args.xkey.clone().or_else(|| {
            let beside = args.nats.nkey.as_ref()?.with_extension("xk");
            beside.exists().then_some(beside)
        });
        let xkey = match xkey_file {
            Some(path) => {
                let key = trellis_lattice::read_xkey(&path).map_err(anyhow::Error::msg)?;
                let public = key.public_key();
                crate::caller::use_xkey(key);
                Some(public)
            }
            None => None,
        };
        let nats = args
            .nats
            .connect(&trellis_lattice::Role::Provider(name.clone()), true)
            .await?;
        let subjects = args.nats.subjects();
        let prefix = subjects.provider(&name);
        let wrpc = wrpc_transport_nats::Client::new(
            nats.clone(),
            prefix.as_str(),
            Some(prefix.as_str().into()),
        )
        .await
        .context("cannot set up the wRPC client")?;
        let wrpc = DualServer::new(
            BoundedServer::new(wrpc, Arc::new(signatures), ServerLimits::default()),
            nats.clone(),
            prefix.as_str(),
            prefix.as_str(),
        )
        .with_arrivals();
        Ok(Provider {
            info: ProviderInfo {
                name,
                instance: nats
                    .new_inbox()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                version: description.version.to_string(),
                interfaces: description
                    .interfaces
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                uptime_seconds: 0,
                in_flight: 0,
                transports: vec![lean::PROTOCOL.to_string()],
                xkey,
            },
            description: description.about,
            nats,
            drain: args.drain_timeout,
            wrpc,
            subjects,
            started: Instant::now(),
            in_flight: Arc::default(),
        })
    }

    /// Checks that JetStream answers on this connection, for providers whose
    /// data lives there: call it before serving, so a provider never announces
    /// itself before its backend is reachable, and its first call does not pay
    /// for setting up the JetStream request path.
    pub async fn require_jetstream(&self) -> anyhow::Result<()> {
        let js = self.jetstream();
        match tokio::time::timeout(JETSTREAM_CHECK, js.query_account()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!(
                "JetStream is not available on this NATS account: {e}"
            )),
            Err(_) => Err(anyhow::anyhow!(
                "JetStream did not answer within {JETSTREAM_CHECK:?}"
            )),
        }
    }

    /// The wRPC server to hand to the generated `serve`: it takes calls over
    /// wrpc-transport-nats and `trellis-rr/1` alike.
    pub fn wrpc(&self) -> &DualServer {
        &self.wrpc
    }

    /// The provider's name (replicas share it).
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The subjects of its lattice.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The NATS connection, for the provider's backend (JetStream, …).
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// JetStream in the provider's domain (`--js-domain`): where its data
    /// lives, at a leaf site the site's own.
    pub fn jetstream(&self) -> async_nats::jetstream::Context {
        self.subjects.jetstream(self.nats.clone())
    }

    /// Serves `invocations` until SIGINT or SIGTERM, then stops taking calls and
    /// lets those in flight finish, all within `--drain-timeout` whatever NATS
    /// is doing.
    pub async fn run(self, invocations: Invocations) -> anyhow::Result<()> {
        let discovery = Arc::new(crate::discovery::Discovery::new(
            self.info.clone(),
            self.subjects.lattice(),
            self.description,
            &self.subjects.provider(&self.info.name),
            self.wrpc.served(),
        ));
        // Each replica answers NATS micro discovery itself (`nats micro ls`).
        let mut questions = discovery
            .subscribe(&self.nats)
            .await
            .context("cannot subscribe to the $SRV discovery subjects")?;
        let mut calls = futures::stream::select_all(
            invocations
                .into_iter()
                .map(|(instance, name, stream)| stream.map(move |call| (instance, name, call))),
        );
        // Announced as serving only once the server has every subscription.
        self.nats
            .flush()
            .await
            .context("cannot reach NATS to start serving")?;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut tasks = JoinSet::new();
        let shutdown = trellis_process::shutdown_signal();
        tokio::pin!(shutdown);
        tracing::info!(provider = %self.info.name, interfaces = ?self.info.interfaces, "serving");
        loop {
            tokio::select! {
                Some((instance, name, call)) = calls.next() => match call {
                    Ok(call) => {
                        let in_flight = self.in_flight.clone();
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        let arrival = self.wrpc.arrival(instance, name);
                        let span = arrival.as_ref().map_or_else(tracing::Span::none, |a| a.span.clone());
                        let discovery = discovery.clone();
                        tasks.spawn(async move {
                            let started = Instant::now();
                            let result = call.instrument(span).await;
                            let error = result.as_ref().err().map(|e| format!("{e:#}"));
                            if let Some(error) = &error {
                                tracing::warn!(instance, name, error, "call failed");
                            }
                            discovery.served(instance, name, started.elapsed(), error.as_deref());
                            if let Some(arrival) = arrival {
                                crate::metrics::served(instance, name, &arrival, result.is_ok());
                            }
                            in_flight.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                    Err(e) => {
                        // Its arrival, if any, goes with it.
                        drop(self.wrpc.arrival(instance, name));
                        tracing::warn!(instance, name, error = format!("{e:#}"), "bad invocation");
                    }
                },
                Some(question) = questions.next() => {
                    crate::discovery::respond(&discovery, &self.nats, question).await;
                }
                _ = heartbeat.tick() => {
                    let _ = self.nats.publish(self.subjects.provider_heartbeat(&self.info.name), self.info_json().into()).await;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        tracing::info!(in_flight = tasks.len(), "draining");
        let drain = async {
            // A draining replica stops being found, then stops taking calls.
            for mut subscriber in questions.into_iter() {
                let _ = subscriber.unsubscribe().await;
            }
            drop(calls);
            while tasks.join_next().await.is_some() {}
            let _ = self.nats.flush().await;
        };
        if tokio::time::timeout(self.drain, drain).await.is_err() {
            tracing::warn!(timeout = ?self.drain, "drain timed out; exiting");
        }
        Ok(())
    }

    fn info_json(&self) -> String {
        let info = ProviderInfo {
            uptime_seconds: self.started.elapsed().as_secs(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            ..self.info.clone()
        };
        serde_json::to_string(&info).unwrap_or_default()
    }
}
