//! What tracing costs: the hello component and the provider hop (kvget through
//! keyvalue-nats) on a host and provider exporting every trace, and one in ten,
//! each against the same pair with telemetry off, in the same run. Spans go
//! over OTLP/HTTP to a receiver here that reads and drops them, so the
//! exporter's whole path (batching, encoding, HTTP) is paid.
//!
//! Run with `scripts/bench tracing`. Settings: BENCH_SECONDS (3 per round),
//! BENCH_ROUNDS (3), BENCH_CONNECTIONS (64).

mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use support::{
    Server, alternate, keyvalue_provider_in_env, kv_manifest, nats_server, setting,
    trellis_host_in_env, wait_for_provider,
};

fn main() -> Result<()> {
    let seconds = setting("BENCH_SECONDS", 3);
    let rounds = setting("BENCH_ROUNDS", 3);
    let connections = setting("BENCH_CONNECTIONS", 64) as u32;
    let dir = std::env::temp_dir().join(format!("trellis-bench-tracing-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let endpoint = runtime.block_on(sink())?;
    let nats = nats_server(&dir.join("js"))?;
    let url = format!("nats://{}", nats.addr);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let hello = hello_manifest(&dir, &repo.join("tests/components/hello.wat"))?;
    let kvget = repo.join("tests/components/kvget.wat");

    // One host and one provider per setting; the provider's name keeps them apart.
    let mut started = Vec::new();
    for (name, sampler) in [("off", None), ("all", Some("1.0")), ("tenth", Some("0.1"))] {
        let provider = format!("kv-{name}");
        let remote = kv_manifest(
            &dir,
            &format!("kv-{name}"),
            &kvget,
            "/remote",
            &format!("{{provider: {provider}}}"),
        )?;
        let env: Vec<(&str, &str)> = match sampler {
            None => vec![],
            Some(ratio) => vec![
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", ratio),
            ],
        };
        let kv = keyvalue_provider_in_env(&url, &provider, &[], &env)?;
        runtime.block_on(wait_for_provider(&url, &provider))?;
        let extra = [
            "--manifest".as_ref(),
            hello.as_os_str(),
            "--manifest".as_ref(),
            remote.as_os_str(),
        ];
        let host = trellis_host_in_env(&url, &extra, &env)?;
        started.push((name, kv, host));
    }
    let address = |name: &str| -> Result<String> {
        let (_, _, host): &(&str, Server, Server) = started
            .iter()
            .find(|(n, _, _)| *n == name)
            .context("no such setting")?;
        Ok(format!("http://{}", host.addr))
    };
    let (off, all, tenth) = (address("off")?, address("all")?, address("tenth")?);
    for (what, path) in [("hello", "/hello"), ("provider hop (kvget)", "/remote")] {
        for (traced, label) in [(&all, "100%"), (&tenth, "10%")] {
            println!(
                "\n{what}: traces exported at {label} sampling vs telemetry off, wrk -t1 -c{connections}, {rounds} rounds of {seconds}s"
            );
            alternate(
                &format!("{traced}{path}"),
                &format!("{off}{path}"),
                "telemetry off",
                rounds,
                seconds,
                connections,
            )?;
        }
    }
    drop(started);
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A workload of the hello component on `/hello`.
fn hello_manifest(dir: &Path, wat: &Path) -> Result<PathBuf> {
    let file = dir.join("hello.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: hello\ncomponents:\n  hello:\n    source: {}\n    limits: {{concurrency: 1000}}\n    bindings:\n      wasi:*: host\nroutes:\n  - {{component: hello, path: /hello}}\n",
            wat.display()
        ),
    )?;
    Ok(file)
}

/// An OTLP/HTTP endpoint that reads every export and drops it; its traces URL.
async fn sink() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/traces", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Empty::<
                            bytes::Bytes,
                        >::new()))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}
