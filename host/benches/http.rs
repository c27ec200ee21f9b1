//! HTTP serving: `trellis dev` against `wasmtime serve` on the same hello component, in
//! alternating rounds of wrk load, then the per-request instantiation time in process.
//!
//! Run with `scripts/bench http`, which installs the anchors (wrk, wasmtime-cli 48.0.8).
//! Settings: BENCH_SECONDS (5 per round), BENCH_ROUNDS (3), BENCH_CONNECTIONS (64).

mod support;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use support::{alternate, setting, trellis_dev, wasmtime_serve};
use trellis_host::{EngineSettings, Host};

fn main() -> Result<()> {
    let seconds = setting("BENCH_SECONDS", 5);
    let rounds = setting("BENCH_ROUNDS", 3);
    let connections = setting("BENCH_CONNECTIONS", 64) as u32;

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm =
        std::env::temp_dir().join(format!("trellis-bench-hello-{}.wasm", std::process::id()));
    let binary = wat::parse_file(repo.join("tests/components/hello.wat"))
        .context("cannot compile tests/components/hello.wat")?;
    std::fs::write(&wasm, binary)?;

    let trellis = trellis_dev(&wasm)?;
    let anchor = wasmtime_serve(&wasm)?;
    let trellis_url = format!("http://{}/", trellis.addr);
    let anchor_url = format!("http://{}/", anchor.addr);
    println!(
        "hello component, {rounds} alternating rounds of {seconds}s, {connections} connections, wrk -t1"
    );
    alternate(
        &trellis_url,
        &anchor_url,
        "wasmtime serve 48.0.8",
        rounds,
        seconds,
        connections,
    )?;
    drop((trellis, anchor));

    instantiation(&wasm)?;
    let _ = std::fs::remove_file(&wasm);
    Ok(())
}

/// Times `LoadedWorkload::probe`: a store, capability state and an instance from the
/// pre-instantiated component, as each request gets.
fn instantiation(wasm: &Path) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let host = Host::new(EngineSettings::default())?;
        let workload = trellis_host::dev::read_workload(wasm)?;
        let component = workload.components[0].name.clone();
        let loaded = host.load(workload, wasm).await?;
        for _ in 0..1_000 {
            loaded.probe(&component).await?;
        }
        let n = 20_000;
        let start = Instant::now();
        for _ in 0..n {
            loaded.probe(&component).await?;
        }
        let each = start.elapsed() / n;
        println!(
            "per-request instantiation (store + capabilities + instance), mean of {n}: {each:.2?}"
        );
        Ok(())
    })
}
