//! The payload fuzz suite: random and mutated wRPC payloads (valid encodings
//! with truncations, four-billion-element lengths, flipped bits, trailing and
//! random bytes) at every function of every provider, the control API and a
//! workload export, over `trellis-rr/1` and wrpc-transport-nats. Afterwards
//! every process is alive, answers a real call, and held little memory.
//!
//! `TRELLIS_FUZZ_PAYLOADS` sets how many payloads in all (default 10,000);
//! `scripts/fuzz` runs more.

mod values;

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use trellis_lattice::headers;
use trellis_lattice::lean::ERROR_KIND_HEADER;
use trellis_wire::{Param, Shape, Signature, Signatures};
use wrpc_transport::Invoke as _;

use crate::lattice::{Nats, control_client, host, provider};
use crate::support::{TestResult, repo};
use values::Kind;

/// How long any one call may take before it counts as hung.
const CALL_BOUND: Duration = Duration::from_secs(10);
/// Calls in flight at once.
const PARALLEL: usize = 32;
/// How much more memory a process may hold after the suite than before.
const MEMORY_GROWTH: u64 = 256 << 20;

/// A server under attack: where it serves and what.
struct Target {
    /// Who attacks it: an identity the lattice lets call it (a host for
    /// providers and exports, the operator for a control API), so the payloads
    /// get past the permissions to the server.
    caller: async_nats::Client,
    prefix: String,
    signatures: Signatures,
    lean: bool,
}

fn wit(package: &str, world: &str) -> Result<Signatures, Box<dyn std::error::Error>> {
    Ok(trellis_wire::signatures_of_world(
        &repo().join("wit/deps").join(package),
        world,
    )?)
}

fn identity() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(headers::WORKLOAD, "fuzz");
    h.insert(headers::COMPONENT, "app");
    h.insert(headers::BINDING, "fuzz");
    h
}

/// One payload's outcome.
#[derive(Default)]
struct Tally {
    sent: usize,
    refused_invalid: usize,
    answered: usize,
}

/// Sends one lean call and checks the reply agrees with the checker's verdict.
async fn lean(
    nats: &async_nats::Client,
    subject: String,
    signature: &Signature,
    headers: HeaderMap,
    payload: Vec<u8>,
) -> Result<bool, String> {
    let verdict = trellis_wire::check(signature, &payload);
    let reply = tokio::time::timeout(
        CALL_BOUND,
        nats.request_with_headers(subject.clone(), headers, payload.clone().into()),
    )
    .await
    .map_err(|_| format!("{subject}: no reply within {CALL_BOUND:?} to {payload:02x?}"))?
    .map_err(|e| format!("{subject}: {e} for {payload:02x?}"))?;
    let kind = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(ERROR_KIND_HEADER))
        .map(|v| v.as_str().to_string());
    match (&verdict, kind.as_deref()) {
        (Err(_), Some("invalid")) => Ok(true),
        (Ok(()), Some("invalid")) => Err(format!(
            "{subject}: a valid payload was refused: {payload:02x?}"
        )),
        (Err(e), other) => Err(format!(
            "{subject}: an invalid payload ({e}) got {other:?}: {payload:02x?}"
        )),
        (Ok(()), _) => Ok(false),
    }
}

/// Sends one wrpc-transport-nats call and reads until the server ends it.
async fn standard(
    client: &wrpc_transport_nats::Client,
    instance: &str,
    func: &str,
    headers: HeaderMap,
    payload: Vec<u8>,
) -> Result<(), String> {
    let call = async {
        let no_paths: [&[Option<usize>]; 0] = [];
        let Ok((mut tx, mut rx)) = client
            .invoke(
                Some(headers),
                instance,
                func,
                Bytes::from(payload.clone()),
                no_paths,
            )
            .await
        else {
            return; // refused at once: fine
        };
        let _ = tx.shutdown().await;
        let mut sink = Vec::new();
        let _ = rx.read_to_end(&mut sink).await;
    };
    tokio::time::timeout(CALL_BOUND, call)
        .await
        .map_err(|_| format!("{instance}.{func}: hung on {payload:02x?}"))
}

async fn attack(targets: &[Target], total: usize) -> Result<Tally, String> {
    let mut jobs = Vec::new();
    for target in targets {
        for (instance, func, signature) in target.signatures.functions() {
            for lean_call in [true, false] {
                if lean_call && !target.lean {
                    continue;
                }
                jobs.push((target, instance, func, signature, lean_call));
            }
        }
    }
    let per_job = total.div_ceil(jobs.len());
    let mut tally = Tally::default();
    let mut calls = Vec::new();
    let mut rng = fastrand::Rng::with_seed(0x007e_1115);
    for (target, instance, func, signature, lean_call) in &jobs {
        let nats = &target.caller;
        let client = wrpc_transport_nats::Client::new(nats.clone(), target.prefix.as_str(), None)
            .await
            .map_err(|e| e.to_string())?;
        for _ in 0..per_job {
            let (kind, payload) = values::payload(&mut rng, signature);
            // A quarter of the valid ones carry a workload's identity and do real work.
            let headers = if kind == Kind::Valid && rng.u8(0..4) == 0 {
                identity()
            } else {
                HeaderMap::new()
            };
            let subject = trellis_lattice::lean::subject(&target.prefix, instance, func);
            let (client, nats) = (client.clone(), nats.clone());
            let (lean_call, signature) = (*lean_call, (*signature).clone());
            let (instance, func) = (instance.to_string(), func.to_string());
            calls.push(async move {
                if lean_call {
                    lean(&nats, subject, &signature, headers, payload).await
                } else {
                    standard(&client, &instance, &func, headers, payload)
                        .await
                        .map(|()| false)
                }
            });
        }
    }
    let mut results = futures::stream::iter(calls).buffer_unordered(PARALLEL);
    while let Some(result) = results.next().await {
        tally.sent += 1;
        if result? {
            tally.refused_invalid += 1;
        } else {
            tally.answered += 1;
        }
    }
    Ok(tally)
}

/// A real call still answers: `payload` to `instance.func`, with an identity.
async fn still_answers(
    nats: &async_nats::Client,
    prefix: &str,
    instance: &str,
    func: &str,
    payload: &[u8],
) -> Result<Bytes, String> {
    let subject = trellis_lattice::lean::subject(prefix, instance, func);
    let reply = tokio::time::timeout(
        CALL_BOUND,
        nats.request_with_headers(subject.clone(), identity(), payload.to_vec().into()),
    )
    .await
    .map_err(|_| format!("{subject}: no answer after the fuzzing"))?
    .map_err(|e| format!("{subject}: {e}"))?;
    match reply
        .headers
        .as_ref()
        .and_then(|h| h.get(ERROR_KIND_HEADER))
    {
        Some(kind) => Err(format!("{subject}: refused after the fuzzing ({kind})")),
        None => Ok(reply.payload),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_survives_hostile_payloads() -> TestResult {
    let total: usize = std::env::var("TRELLIS_FUZZ_PAYLOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let nats = Nats::start("fuzz")?;
    let mut providers = [
        provider(&nats, "trellis-keyvalue-nats", "keyvalue")?,
        provider(&nats, "trellis-blobstore-nats", "blobstore")?,
        provider(&nats, "trellis-messaging-nats", "messaging")?,
    ];
    let greetings = repo().join("examples/counter/greetings.yaml");
    let mut h = host(&nats, &[&greetings], &["--id", "fuzzed"])?;
    let client = nats.client_as("host", "fuzzer").await?;
    let operator = nats.client_as("operator", "operator").await?;
    let root = "trellis.default";
    let mut export = Signatures::default();
    export.insert(
        "trellis:example/greeter@0.1.0",
        "greet",
        Signature::new(vec![Param::new("name", Shape::String)]),
    );
    let provider_target =
        |name: &str, package: &str| -> Result<Target, Box<dyn std::error::Error>> {
            Ok(Target {
                caller: client.clone(),
                prefix: format!("{root}.provider.{name}"),
                signatures: wit(package, "provider")?,
                lean: true,
            })
        };
    let targets = [
        provider_target("keyvalue", "keyvalue")?,
        provider_target("blobstore", "trellis-blobstore")?,
        provider_target("messaging", "messaging")?,
        Target {
            caller: operator,
            prefix: format!("{root}.host.{}", nats.host_id("fuzzed")?),
            signatures: wit("control", "agent")?,
            lean: false,
        },
        Target {
            caller: client.clone(),
            prefix: format!("{root}.workload.greetings"),
            signatures: export,
            lean: true,
        },
    ];
    let before: Vec<u64> = providers
        .iter()
        .map(|p| p.peak_memory())
        .chain([h.peak_memory()])
        .collect::<Result<_, _>>()?;

    let tally = attack(&targets, total).await?;
    eprintln!(
        "fuzz: {} payloads to {} servers: {} refused as invalid over trellis-rr/1, {} answered or ended",
        tally.sent,
        targets.len(),
        tally.refused_invalid,
        tally.answered
    );
    assert!(tally.sent >= total, "sent {} of {total}", tally.sent);
    assert!(
        tally.refused_invalid > total / 4,
        "{}",
        tally.refused_invalid
    );

    // Every process is alive, answers a real call, and held little more memory.
    for (p, name) in providers
        .iter_mut()
        .zip(["keyvalue", "blobstore", "messaging"])
    {
        assert!(p.alive(), "the {name} provider died:\n{}", p.stderr_text());
    }
    assert!(h.alive(), "the host died:\n{}", h.stderr_text());
    let kv = &targets[0].prefix;
    still_answers(
        &client,
        kv,
        "wasi:keyvalue/store@0.2.0-draft",
        "open",
        b"\x04fuzz",
    )
    .await?;
    let blobs = &targets[1].prefix;
    still_answers(
        &client,
        blobs,
        "trellis:blobstore/objects@0.1.0",
        "container-exists",
        b"\x01c",
    )
    .await?;
    let messaging = &targets[2].prefix;
    still_answers(
        &client,
        messaging,
        "trellis:messaging/producer@0.1.0",
        "publish",
        b"\x05fuzz1\x00",
    )
    .await?;
    let greeting = still_answers(
        &client,
        &targets[4].prefix,
        "trellis:example/greeter@0.1.0",
        "greet",
        b"\x01x",
    )
    .await?;
    assert!(
        String::from_utf8_lossy(&greeting).contains("Hello, x!"),
        "{greeting:?}"
    );
    let control = control_client(&nats, "fuzzed", Duration::from_secs(5)).await?;
    assert_eq!(control.describe().await?.id, nats.host_id("fuzzed")?);
    let after: Vec<u64> = providers
        .iter()
        .map(|p| p.peak_memory())
        .chain([h.peak_memory()])
        .collect::<Result<_, _>>()?;
    for ((target, before), after) in ["keyvalue", "blobstore", "messaging", "host"]
        .iter()
        .zip(&before)
        .zip(&after)
    {
        assert!(
            after.saturating_sub(*before) < MEMORY_GROWTH,
            "{target} grew from {} MiB to {} MiB",
            before >> 20,
            after >> 20
        );
    }
    Ok(())
}
