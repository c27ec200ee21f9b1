//! OpenTelemetry for every Trellis process: traces and metrics over OTLP/HTTP
//! (configured by the standard `OTEL_*` variables, off when no endpoint is set)
//! and a Prometheus text endpoint (`--metrics ADDR`).
//!
//! One subscriber carries both logs and spans, so a log line written inside a
//! traced request names the trace and span it belongs to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::log_format::WithTraceIds;

/// Set once spans leave the process: callers inject trace context only then,
/// so a process without a collector pays nothing per call.
static TRACES_EXPORTED: AtomicBool = AtomicBool::new(false);
/// Set once a metrics reader exists (OTLP or Prometheus).
static METRICS_RECORDED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: the cheap check before building trace context.
pub fn traces_exported() -> bool {
    TRACES_EXPORTED.load(Ordering::Relaxed)
}

/// Whether metrics are read by anyone: the cheap check before building attributes.
pub fn metrics_recorded() -> bool {
    METRICS_RECORDED.load(Ordering::Relaxed)
}

/// The telemetry options every long-running Trellis process takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Serve Prometheus metrics in text format at `http://ADDR/metrics`
    /// (e.g. `127.0.0.1:9464`). Traces and OTLP metrics follow the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME` and
    /// `OTEL_TRACES_SAMPLER` variables instead.
    #[arg(long, env = "TRELLIS_METRICS", value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built from the `OTEL_*` variables.
    #[error("cannot build the OTLP {signal} exporter (check OTEL_EXPORTER_OTLP_*): {source}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// What the exporter said.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// `OTEL_TRACES_SAMPLER[_ARG]` name no sampler Trellis can apply.
    #[error(transparent)]
    Sampler(#[from] crate::SamplerError),
    /// The Prometheus exporter could not be registered.
    #[error("cannot start the Prometheus exporter: {0}")]
    Prometheus(String),
    /// The metrics address could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Listen {
        /// The `--metrics` address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The process's telemetry; [`Telemetry::shutdown`] flushes what is buffered.
#[must_use = "dropping it does not flush; call shutdown before exit"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    registry: Option<prometheus::Registry>,
    metrics_addr: Option<SocketAddr>,
}

/// The OTLP endpoint the environment names, for any signal.
fn otlp_endpoint(signal: &str) -> Option<String> {
    [
        format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"),
        "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
    ]
    .iter()
    .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
}

impl Telemetry {
    /// Starts logs on stderr (filtered by `RUST_LOG`, default `info`) and, where
    /// configured, span and metric export, for a process whose service name is
    /// `service` unless `OTEL_SERVICE_NAME` says otherwise. Calling it twice
    /// keeps the first subscriber.
    pub fn init(service: &str, args: &TelemetryArgs) -> Result<Telemetry, TelemetryError> {
        crate::install_crypto_provider();
        // The blocking HTTP client must not be built (or dropped) on an async
        // runtime's thread; a scoped thread keeps this callable from anywhere.
        std::thread::scope(|s| {
            s.spawn(|| Self::build(service, args))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn build(service: &str, args: &TelemetryArgs) -> Result<Telemetry, TelemetryError> {
        let resource = resource(service);
        let tracer = match otlp_endpoint("TRACES") {
            None => None,
            Some(_) => {
                let policy = crate::sampling::Policy::from_env()?;
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .build()
                    .map_err(|source| TelemetryError::Exporter {
                        signal: "traces",
                        source,
                    })?;
                // Trellis decides at every entry (crate::sample) before a
                // span exists; what reaches the exporter is already sampled.
                policy.install();
                Some(
                    SdkTracerProvider::builder()
                        .with_resource(resource.clone())
                        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
                        .with_batch_exporter(exporter)
                        .build(),
                )
            }
        };
        let registry = args.metrics.map(|_| prometheus::Registry::new());
        let otlp_metrics = otlp_endpoint("METRICS").is_some();
        let meter = if registry.is_some() || otlp_metrics {
            let mut builder = SdkMeterProvider::builder().with_resource(resource);
            if let Some(registry) = &registry {
                let exporter = opentelemetry_prometheus::exporter()
                    .with_registry(registry.clone())
                    .without_target_info()
                    .build()
                    .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
                builder = builder.with_reader(exporter);
            }
            if otlp_metrics {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .build()
                    .map_err(|source| TelemetryError::Exporter {
                        signal: "metrics",
                        source,
                    })?;
                builder = builder.with_periodic_exporter(exporter);
            }
            Some(builder.build())
        } else {
            None
        };
        if let Some(meter) = &meter {
            opentelemetry::global::set_meter_provider(meter.clone());
            METRICS_RECORDED.store(true, Ordering::Relaxed);
        }
        install_subscriber(tracer.as_ref(), service);
        Ok(Telemetry {
            tracer,
            meter,
            registry,
            metrics_addr: args.metrics,
        })
    }

    /// Serves `/metrics` at the `--metrics` address until the process ends;
    /// nothing when none was given.
    pub async fn serve_metrics(&self) -> Result<(), TelemetryError> {
        let (Some(addr), Some(registry)) = (self.metrics_addr, self.registry.clone()) else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| TelemetryError::Listen { addr, source })?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!(address = %bound, "serving Prometheus metrics at /metrics");
        tokio::spawn(crate::metrics_endpoint::serve(listener, registry));
        Ok(())
    }

    /// Flushes buffered spans and metrics (bounded by the exporters' timeouts).
    pub fn shutdown(self) {
        let Telemetry { tracer, meter, .. } = self;
        let flush = move || {
            if let Some(tracer) = tracer
                && let Err(e) = tracer.shutdown()
            {
                tracing::warn!("cannot flush spans: {e}");
            }
            if let Some(meter) = meter
                && let Err(e) = meter.shutdown()
            {
                tracing::warn!("cannot flush metrics: {e}");
            }
        };
        std::thread::scope(|s| {
            let _ = s.spawn(flush).join();
        });
    }
}

/// What every span and metric of this process is attributed to.
fn resource(service: &str) -> Resource {
    let builder = Resource::builder();
    // OTEL_SERVICE_NAME (read by the builder) wins over the default name.
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name(service.to_string()).build()
    }
}

/// One subscriber: `RUST_LOG`-filtered logs on stderr, and every span at
/// `info` and above but the [`UNTRACED`](crate::UNTRACED) ones to the tracer
/// when there is one (whatever `RUST_LOG` says). Logs name the trace and span they were written in.
fn install_subscriber(tracer: Option<&SdkTracerProvider>, service: &str) {
    use tracing_subscriber::Layer as _;
    let logs = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layers: Vec<Boxed> = match tracer {
        None => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            vec![fmt.with_ansi(ansi).with_filter(logs()).boxed()]
        }
        Some(provider) => vec![
            // No per-poll timing, thread or source attributes: each costs
            // work on every span, sampled or not (docs/telemetry.md).
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(service.to_string()))
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_location(false)
                .with_target(false)
                .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    *m.level() <= tracing::Level::INFO && m.target() != crate::UNTRACED
                }))
                .boxed(),
            fmt.with_ansi(false)
                .event_format(WithTraceIds::default())
                .with_filter(logs())
                .boxed(),
        ],
    };
    let installed = tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .is_ok();
    if installed && tracer.is_some() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        TRACES_EXPORTED.store(true, Ordering::Relaxed);
    }
}
