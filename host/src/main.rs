//! The `trellis` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trellis_host::{EngineSettings, Host, dev};

/// Trellis: a distributed WebAssembly platform.
#[derive(Parser)]
#[command(name = "trellis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload on this machine, no NATS needed, reloading on change.
    ///
    /// TARGET is a workload manifest (.yaml) or a bare component (.wasm or .wat);
    /// a bare component gets every `wasi:` import bound to the host and every path.
    Dev {
        /// The manifest or component to run.
        target: PathBuf,
        /// Address for HTTP.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        /// Largest linear memory any instance may have, e.g. `1GiB`.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        max_instance_memory: u64,
        /// Instances that may be alive at once on this host.
        #[arg(long, default_value_t = 1000)]
        max_instances: u32,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    trellis_control_api::parse_size(text)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Dev {
            target,
            listen,
            max_instance_memory,
            max_instances,
        } => runtime.block_on(run_dev(
            target,
            listen,
            EngineSettings {
                max_instances,
                max_instance_memory,
            },
        )),
    }
}

async fn run_dev(
    target: PathBuf,
    listen: SocketAddr,
    settings: EngineSettings,
) -> anyhow::Result<()> {
    let host = Arc::new(Host::new(settings)?);
    let workload = dev::load_into(&host, &target).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "trellis dev: serving workload `{}` on http://{addr}",
        workload.name
    );
    dev::print_routes(&host);
    tokio::spawn(dev::watch(host.clone(), target, Some(workload)));
    host.serve(listener, shutdown_signal()).await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
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
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}
