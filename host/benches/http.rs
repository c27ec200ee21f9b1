//! HTTP serving: `trellis dev` against `wasmtime serve` on the same hello component, in
//! alternating rounds of wrk load, then the per-request instantiation time in process.
//!
//! Run with `scripts/bench http`, which installs the anchors (wrk, wasmtime-cli 48.0.8).
//! Settings: BENCH_SECONDS (5 per round), BENCH_ROUNDS (3), BENCH_CONNECTIONS (64).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use support::{Load, compare, median, setting, trellis_dev, wasmtime_serve, wrk};
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
    wrk(&trellis_url, 1, connections)?; // warm-up
    wrk(&anchor_url, 1, connections)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let t = wrk(&trellis_url, seconds, connections)?;
        let a = wrk(&anchor_url, seconds, connections)?;
        println!(
            "  round {round}: trellis {} | wasmtime serve {}",
            show(&t),
            show(&a)
        );
        ours.push(t);
        theirs.push(a);
    }
    println!("median of rounds (anchor: wasmtime serve 48.0.8):");
    compare(
        "requests/s",
        "req/s",
        median(&ours, |l| l.rps),
        median(&theirs, |l| l.rps),
    );
    let ms = |l: &Load, p: fn(&Load) -> Duration| p(l).as_secs_f64() * 1e3;
    compare(
        "latency p50",
        "ms",
        median(&ours, |l| ms(l, |l| l.p50)),
        median(&theirs, |l| ms(l, |l| l.p50)),
    );
    compare(
        "latency p99",
        "ms",
        median(&ours, |l| ms(l, |l| l.p99)),
        median(&theirs, |l| ms(l, |l| l.p99)),
    );
    let errors: u64 = ours.iter().chain(&theirs).map(|l| l.errors).sum();
    println!("errors (non-2xx + socket), both servers: {errors}");
    drop((trellis, anchor));

    instantiation(&wasm)?;
    let _ = std::fs::remove_file(&wasm);
    Ok(())
}

fn show(l: &Load) -> String {
    format!(
        "{:>8.0} req/s p50 {:>7.2?} p99 {:>7.2?}",
        l.rps, l.p50, l.p99
    )
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
