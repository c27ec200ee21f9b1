//! What every Trellis process sets up the same way: logs on stderr through
//! `tracing`, and a shutdown future that resolves on SIGINT or SIGTERM.
//!
//! The host, the scheduler and every provider built on the SDK call these, so
//! they log alike, export telemetry alike ([`Telemetry`]) and stop alike.
//!
//! ```no_run
//! # async fn run() {
//! trellis_process::init_logging();
//! tracing::info!("serving");
//! trellis_process::shutdown_signal().await;
//! tracing::info!("draining");
//! # }
//! ```
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod log_format;
mod metrics_endpoint;
mod sampling;
mod small_http;
mod telemetry;

pub use sampling::{
    SamplerError, UNTRACED, current_sampling, sample, traceparent_sampled, unsampled_traceparent,
};
pub use small_http::{Body, Handler, SmallLimits, serve_small};
pub use telemetry::{Telemetry, TelemetryArgs, TelemetryError, metrics_recorded, traces_exported};

/// Installs the process-wide TLS crypto provider (ring, which async-nats
/// already uses) for the HTTP clients of registries and of the OTLP exporter,
/// which need one even for `http://`. Later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sends `tracing` events to stderr, filtered by `RUST_LOG` (default `info`),
/// coloured only on a terminal, for short-lived commands that export nothing;
/// long-running processes use [`Telemetry::init`]. Calling it twice keeps the
/// first set-up.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on the first SIGINT or SIGTERM: the moment a process stops taking
/// new work and drains what it has.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}
