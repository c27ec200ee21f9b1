//! The lattice data plane against its anchors, all on one nats-server started here:
//!
//! 1. transport: a 1 KiB echo through wRPC against a raw NATS request/reply of
//!    the same payload, with 1 and 64 concurrent callers: Trellis's calls
//!    (`trellis-rr/1`, served by the SDK's `DualServer` through the stock
//!    `serve_values`), and stock wrpc-transport-nats on the same server;
//! 2. the provider hop: HTTP requests/s of `tests/components/kvget.wat` (one
//!    `open` + one `get` per request; the host keeps a bucket's handle after its
//!    first `open`, so one wRPC call per request) with wasi:keyvalue bound to the
//!    keyvalue-nats provider, against the same component with the in-memory store;
//!    then the same hop to the Python provider (trellis-keyvalue-sqlite) beside it;
//! 3. a component call: the example counter with its greeter linked in process,
//!    against the greeter as a `workload` binding on a second host (wRPC);
//! 4. atomics: `increment` of one key by 1, 16 and 64 concurrent callers (JetStream
//!    counters in keyvalue-nats), against plain `get`s by as many callers, each
//!    one `trellis-rr/1` request as a host makes it.
//!
//! Run with `scripts/bench lattice` (it builds the provider and installs wrk and
//! nats-server). Settings: BENCH_SECONDS (3 per round), BENCH_ROUNDS (3),
//! BENCH_CONNECTIONS (64), BENCH_PAYLOAD (1024 bytes).

mod support;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt as _;
use support::{
    alternate, compare, keyvalue_provider, kv_manifest as manifest, median, nats_server,
    python_keyvalue_provider, setting, trellis_host, wait_for_provider,
};
use tokio::time::Instant;
use trellis_lattice::lean::{DualServer, LeanClient};
use trellis_lattice::{BoundedServer, ServerLimits};
use trellis_wire::{Param, Shape, Signature, Signatures};
use wrpc_transport::{InvokeExt as _, ServeExt as _};

const NO_PATHS: [&[Option<usize>]; 0] = [];
/// The longest one transport call may take before it counts as lost.
const CALL_LIMIT: Duration = Duration::from_secs(5);

fn main() -> Result<()> {
    let seconds = setting("BENCH_SECONDS", 3);
    let rounds = setting("BENCH_ROUNDS", 3);
    let connections = setting("BENCH_CONNECTIONS", 64) as u32;
    let payload = setting("BENCH_PAYLOAD", 1024) as usize;

    let dir = std::env::temp_dir().join(format!("trellis-bench-lattice-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nats = nats_server(&dir.join("js"))?;
    let url = format!("nats://{}", nats.addr);
    let runtime = tokio::runtime::Runtime::new()?;

    println!("1. transport: {payload}-byte echo, {rounds} alternating rounds of {seconds}s");
    runtime.block_on(transport(&url, payload, rounds, seconds))?;

    println!(
        "\n2. provider hop: kvget (open + get per request), wrk -t1 -c{connections}, {rounds} rounds of {seconds}s"
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let kvget = repo.join("tests/components/kvget.wat");
    let remote = manifest(&dir, "kv-remote", &kvget, "/remote", "{provider: keyvalue}")?;
    let memory = manifest(&dir, "kv-memory", &kvget, "/memory", "host")?;
    let python = manifest(
        &dir,
        "kv-python",
        &kvget,
        "/python",
        "{provider: keyvalue-py}",
    )?;
    let _provider = keyvalue_provider(&nats, "keyvalue")?;
    let _python_provider = python_keyvalue_provider(&url, "keyvalue-py", &dir.join("kv.sqlite"))?;
    runtime.block_on(wait_for_provider(&url, "keyvalue"))?;
    runtime.block_on(wait_for_provider(&url, "keyvalue-py"))?;
    let host = trellis_host(&nats, &[&remote, &memory, &python])?;
    alternate(
        &format!("http://{}/remote", host.addr),
        &format!("http://{}/memory", host.addr),
        "in-memory store",
        rounds,
        seconds,
        connections,
    )?;
    println!("the same hop to the Python provider (trellis-keyvalue-sqlite) beside keyvalue-nats:");
    alternate(
        &format!("http://{}/python", host.addr),
        &format!("http://{}/remote", host.addr),
        "keyvalue-nats (Rust)",
        rounds,
        seconds,
        connections,
    )?;
    drop(host);

    println!(
        "\n3. component call: counter -> greeter over wRPC vs in process, wrk -t1 -c{connections}, {rounds} rounds of {seconds}s"
    );
    let examples = repo.join("examples/counter");
    let _greetings = trellis_host(&nats, &[&examples.join("greetings.yaml")])?;
    let distributed = trellis_host(&nats, &[&examples.join("distributed.yaml")])?;
    let in_process = trellis_host(&nats, &[&examples.join("workload.yaml")])?;
    alternate(
        &format!("http://{}/", distributed.addr),
        &format!("http://{}/", in_process.addr),
        "in-process link",
        rounds,
        seconds,
        connections,
    )?;
    drop((distributed, in_process));

    println!(
        "\n4. atomics: increments of one key vs plain gets, keyvalue-nats, {rounds} alternating rounds of {seconds}s"
    );
    runtime.block_on(atomics(&url, rounds, seconds))?;
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Echo servers on both transports, then alternating rounds per caller count.
async fn transport(url: &str, size: usize, rounds: u64, seconds: u64) -> Result<()> {
    let server = async_nats::connect(url).await?;
    let client = async_nats::connect(url).await?;

    let mut raw = server.subscribe("bench.raw").await?;
    let responder = server.clone();
    tokio::spawn(async move {
        while let Some(message) = raw.next().await {
            if let Some(reply) = message.reply {
                let _ = responder.publish(reply, message.payload).await;
            }
        }
    });
    let wrpc_server =
        wrpc_transport_nats::Client::new(server.clone(), "bench.wrpc", Some("bench.wrpc".into()))
            .await?;
    // The echo's payload is checked as every server's is.
    let mut signatures = Signatures::default();
    signatures.insert(
        "bench:echo/echo",
        "echo",
        Signature::new(vec![Param::new(
            "payload",
            Shape::List(Box::new(Shape::U8)),
        )]),
    );
    let dual = DualServer::new(
        BoundedServer::new(wrpc_server, signatures.into(), ServerLimits::default()),
        server.clone(),
        "bench.wrpc",
        "bench.wrpc",
    );
    let invocations = dual
        .serve_values::<(Bytes,), (Bytes,)>("bench:echo/echo", "echo", Vec::new())
        .await?;
    tokio::spawn(async move {
        let mut invocations = std::pin::pin!(invocations);
        while let Some(invocation) = invocations.next().await {
            if let Ok((_, (payload,), _, reply)) = invocation {
                tokio::spawn(reply((payload,)));
            }
        }
    });
    server.flush().await?;

    let payload = Bytes::from(vec![7u8; size]);
    let wrpc = wrpc_transport_nats::Client::new(client.clone(), "bench.wrpc", None).await?;
    let raw_call = {
        let (client, payload) = (client.clone(), payload.clone());
        move || {
            let (client, payload) = (client.clone(), payload.clone());
            async move {
                let reply = client.request("bench.raw", payload).await?;
                anyhow::ensure!(reply.payload.len() == size, "short echo");
                Ok(())
            }
        }
    };
    let lean = LeanClient::new(client.clone(), "bench.wrpc", wrpc.clone(), true);
    let echo = |wrpc: LeanClient| {
        let payload = payload.clone();
        move || {
            let (wrpc, payload) = (wrpc.clone(), payload.clone());
            async move {
                let (echo,): (Bytes,) = wrpc
                    .invoke_values_blocking(None, "bench:echo/echo", "echo", (payload,), NO_PATHS)
                    .await?;
                anyhow::ensure!(echo.len() == size, "short echo");
                Ok(())
            }
        }
    };
    let lean_call = echo(lean);
    // The same client type with the lean protocol off: stock wrpc-transport-nats.
    let stock_call = echo(LeanClient::new(client.clone(), "bench.wrpc", wrpc, false));
    for callers in [1, 64] {
        for call in [&lean_call, &stock_call] {
            measure(callers, 1, call.clone()).await?; // warm-up
        }
        measure(callers, 1, raw_call.clone()).await?;
        let (mut ours, mut stock, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(measure(callers, seconds, lean_call.clone()).await?);
            stock.push(measure(callers, seconds, stock_call.clone()).await?);
            theirs.push(measure(callers, seconds, raw_call.clone()).await?);
        }
        for (name, calls) in [
            ("Trellis (trellis-rr/1)", &ours),
            ("stock wrpc-transport-nats", &stock),
        ] {
            println!(
                "{callers} caller(s), {name}, median of rounds (anchor: raw NATS request/reply):"
            );
            compare(
                "calls/s",
                "call/s",
                median(calls, |c| c.rate),
                median(&theirs, |c| c.rate),
            );
            compare(
                "latency p50",
                "us",
                median(calls, |c| c.p50),
                median(&theirs, |c| c.p50),
            );
            compare(
                "latency p99",
                "us",
                median(calls, |c| c.p99),
                median(&theirs, |c| c.p99),
            );
        }
        let errors = |calls: &[Calls]| calls.iter().map(|c| c.errors).sum::<u64>();
        println!(
            "errors: Trellis {}, stock wRPC {}, raw NATS {}",
            errors(&ours),
            errors(&stock),
            errors(&theirs)
        );
    }
    Ok(())
}

/// One round's figures: calls per second and latency percentiles in µs.
#[derive(Clone, Copy)]
struct Calls {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

/// Runs `callers` tasks calling `call` back to back for `seconds`.
async fn measure<F, Fut>(callers: usize, seconds: u64, call: F) -> Result<Calls>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let call = call.clone();
        tasks.spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let start = Instant::now();
                // A call lost in transit counts as an error instead of stalling the bench.
                match tokio::time::timeout(CALL_LIMIT, call()).await {
                    Ok(Ok(())) => latencies.push(start.elapsed()),
                    Ok(Err(_)) | Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, e) = done.context("a caller panicked")?;
        all.extend(latencies);
        errors += e;
    }
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    Ok(Calls {
        rate: all.len() as f64 / seconds as f64,
        p50: at(0.50),
        p99: at(0.99),
        errors,
    })
}

/// A wRPC string, list<u8> or handle: its length, then its bytes.
fn push_bytes(out: &mut Vec<u8>, value: &[u8]) {
    let mut n = value.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(value);
}

/// One `trellis-rr/1` call of the keyvalue provider as workload `bench`; it
/// fails unless the result is `ok`.
async fn keyvalue_call(
    client: &async_nats::Client,
    instance: &str,
    func: &str,
    params: Bytes,
) -> Result<Bytes> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(trellis_lattice::headers::WORKLOAD, "bench");
    headers.insert(trellis_lattice::headers::COMPONENT, "bench");
    headers.insert(trellis_lattice::headers::BINDING, "wasi:keyvalue");
    let subject =
        trellis_lattice::lean::subject("trellis.default.provider.keyvalue", instance, func);
    let reply = client
        .request_with_headers(subject, headers, params)
        .await?;
    let failed = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(trellis_lattice::lean::ERROR_HEADER));
    anyhow::ensure!(failed.is_none(), "{instance}.{func} failed: {failed:?}");
    anyhow::ensure!(
        reply.payload.first() == Some(&0),
        "{instance}.{func} answered an error"
    );
    Ok(reply.payload)
}

/// Increments of one key against gets of a plain key, per caller count.
async fn atomics(url: &str, rounds: u64, seconds: u64) -> Result<()> {
    const STORE: &str = "wasi:keyvalue/store@0.2.0-draft";
    const ATOMICS: &str = "wasi:keyvalue/atomics@0.2.0-draft";
    let client = async_nats::connect(url).await?;
    let mut open = Vec::new();
    push_bytes(&mut open, b"atomics");
    let opened = keyvalue_call(&client, STORE, "open", open.into()).await?;
    // `ok`, then the handle (its length, its bytes), sent back as it came.
    let handle = opened.slice(1..);
    let keyed = |key: &[u8]| {
        let mut params = handle.to_vec();
        push_bytes(&mut params, key);
        params
    };
    let mut set = keyed(b"plain");
    push_bytes(&mut set, &[7u8; 8]);
    keyvalue_call(&client, STORE, "bucket.set", set.into()).await?;
    let call = |instance: &'static str, func: &'static str, params: Vec<u8>| {
        let (client, params) = (client.clone(), Bytes::from(params));
        move || {
            let (client, params) = (client.clone(), params.clone());
            async move {
                keyvalue_call(&client, instance, func, params)
                    .await
                    .map(drop)
            }
        }
    };
    let mut increment = keyed(b"hits");
    increment.push(1); // delta 1
    let increment = call(ATOMICS, "increment", increment);
    let get = call(STORE, "bucket.get", keyed(b"plain"));
    for callers in [1, 16, 64] {
        measure(callers, 1, increment.clone()).await?; // warm-up
        measure(callers, 1, get.clone()).await?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(measure(callers, seconds, increment.clone()).await?);
            theirs.push(measure(callers, seconds, get.clone()).await?);
        }
        println!("{callers} caller(s), increments, median of rounds (anchor: plain gets):");
        compare(
            "calls/s",
            "call/s",
            median(&ours, |c| c.rate),
            median(&theirs, |c| c.rate),
        );
        compare(
            "latency p50",
            "us",
            median(&ours, |c| c.p50),
            median(&theirs, |c| c.p50),
        );
        let errors = |calls: &[Calls]| calls.iter().map(|c| c.errors).sum::<u64>();
        println!(
            "errors: increments {}, gets {}",
            errors(&ours),
            errors(&theirs)
        );
    }
    Ok(())
}
