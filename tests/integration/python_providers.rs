//! Providers in Python (providers/python): the SDK's value encoding checked
//! against wrpc-transport's over both transports, and a keyvalue provider on
//! SQLite that a workload uses end to end, held to the Rust provider's tests.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt as _;

use crate::lattice::{Nats, Process, host, workspace_binary};
use crate::providers::visit;
use crate::support::{TestResult, eventually, repo, scratch};

/// The venv `scripts/install-python-providers` makes (once per run).
fn venv() -> Result<PathBuf, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let out = Command::new(repo().join("scripts/install-python-providers"))
            .output()
            .map_err(|e| format!("cannot run scripts/install-python-providers: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/install-python-providers failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
    .clone()
}

/// A Python provider `program` (a command in the venv, or a script run by its
/// python) as provider `name` on `nats`, once it serves.
fn python_provider(
    nats: &Nats,
    program: &str,
    name: &str,
    extra: &[&str],
) -> Result<Process, String> {
    let venv = venv()?;
    let mut command = if program.ends_with(".py") {
        let mut c = Command::new(venv.join("bin/python"));
        c.arg(repo().join(program));
        c
    } else {
        Command::new(venv.join("bin").join(program))
    };
    command
        .args(["--nats", &nats.url, "--name", name])
        .args(nats.auth("provider", name)?)
        .args(extra);
    let (mut process, _) = Process::spawn(command)?;
    process.wait_for("serving", Duration::from_secs(30))?;
    Ok(process)
}

/// The SQLite keyvalue provider as `keyvalue`, its data in `db`.
fn sqlite_keyvalue(nats: &Nats, db: &std::path::Path) -> Result<Process, String> {
    python_provider(
        nats,
        "trellis-keyvalue-sqlite",
        "keyvalue",
        &["--db", &db.to_string_lossy()],
    )
}

/// Runs the Rust conformance caller over `transport` as host `caller`.
fn conform(nats: &Nats, transport: &str) -> Result<String, String> {
    let caller = "conformance-caller";
    let mut command = Command::new(workspace_binary("trellis-conformance")?);
    command.args([
        nats.url.as_str(),
        "trellis.default.provider.conformance",
        transport,
        &format!("_INBOX.default.host.{}", nats.host_id(caller)?),
    ]);
    command.args(nats.auth("host", caller)?.get(1));
    let out = command.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.split("Stack backtrace").next().unwrap_or_default();
        return Err(format!("trellis-conformance {transport}: {first}"));
    }
    Ok(stdout)
}

#[tokio::test]
async fn the_python_sdk_encodes_every_wit_type_as_wrpc_transport_does() -> TestResult {
    // The encoding byte by byte, and hostile bytes refused, in Python.
    let venv = venv()?;
    let unit = Command::new(venv.join("bin/python"))
        .args(["-m", "unittest", "discover", "-s"])
        .arg(repo().join("providers/python/sdk/tests"))
        .output()?;
    assert!(
        unit.status.success(),
        "{}",
        String::from_utf8_lossy(&unit.stderr)
    );

    // Rust encodes, Python decodes and checks; Python encodes, Rust decodes
    // and checks: over wrpc-transport-nats and over trellis-rr/1 (whose
    // 2.5 MB call goes over wrpc-transport-nats, in chunks both ways).
    let nats = Nats::start("py-conformance")?;
    let mut server = python_provider(
        &nats,
        "providers/python/sdk/tests/conformance_server.py",
        "conformance",
        &[],
    )?;
    for transport in ["wrpc", "rr"] {
        let out =
            conform(&nats, transport).map_err(|e| format!("{e}\n{}", server.stderr_text()))?;
        assert_eq!(out.trim(), format!("10 calls conform over {transport}"));
    }

    // It answers NATS micro discovery as the Rust SDK does, with the xkey
    // the lattice gave it.
    let client = nats.client().await?;
    let answers = trellis_lattice::micro::gather(
        &client,
        trellis_lattice::micro::Verb::Info.subject(Some("conformance"), None),
        Duration::from_secs(1),
        true,
        |info: trellis_lattice::micro::Info| Some(info),
    )
    .await?;
    let info = answers.first().ok_or("no INFO answer")?;
    let provider =
        trellis_lattice::ProviderInfo::from_micro(info, "default").ok_or("not our lattice's")?;
    assert_eq!(provider.interfaces, ["trellis:conformance/types@0.1.0"]);
    assert!(
        provider.transports.iter().any(|t| t == "trellis-rr/1"),
        "{provider:?}"
    );
    let identity = nats
        .identity("provider", "conformance")?
        .ok_or("no identity")?;
    assert_eq!(provider.xkey, identity.xkey);
    assert_eq!(info.endpoints.len(), 10);

    // Garbage on both transports' subjects: refused, and it keeps serving.
    let host_client = nats.client_as("host", "prober").await?;
    for subject in [
        "trellis.default.provider.conformance.rr.trellis:conformance/types@0.1.0.scalars",
        "trellis.default.provider.conformance.wrpc.0.0.1.trellis:conformance/types@0.1.0.lists",
    ] {
        for payload in [&b""[..], b"\xff\xff\xff\xff\x0f", b"\x05hi", &[0x80; 4096]] {
            let reply = tokio::time::timeout(
                Duration::from_secs(2),
                host_client.request(subject, bytes::Bytes::copy_from_slice(payload)),
            )
            .await;
            if subject.contains(".rr.") {
                let reply = reply.map_err(|_| "no reply")??;
                let kind = reply
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Trellis-Error-Kind"));
                assert_eq!(kind.map(|k| k.as_str()), Some("invalid"), "{payload:02x?}");
            }
        }
    }
    let out = conform(&nats, "rr")?;
    assert_eq!(out.trim(), "10 calls conform over rr");

    // Callers that never finish their parameters hold at most 32 slots: one
    // more is ended at once (a handshake, then results that end empty), and
    // trellis-rr/1 calls go on meanwhile.
    let wrpc =
        "trellis.default.provider.conformance.wrpc.0.0.1.trellis:conformance/types@0.1.0.scalars";
    for _ in 0..40 {
        host_client
            .publish_with_reply(wrpc, host_client.new_inbox(), "".into())
            .await?;
    }
    let probe = host_client.new_inbox();
    let mut answers = host_client.subscribe(format!("{probe}.>")).await?;
    let mut handshake = host_client.subscribe(probe.clone()).await?;
    host_client
        .publish_with_reply(wrpc, probe.clone(), "".into())
        .await?;
    let within = Duration::from_millis(1500);
    tokio::time::timeout(within, handshake.next())
        .await?
        .ok_or("no handshake")?;
    let end = tokio::time::timeout(within, answers.next())
        .await?
        .ok_or("no end")?;
    assert_eq!(
        (end.subject.as_str(), end.payload.len()),
        (format!("{probe}.results").as_str(), 0)
    );
    let nothing = "trellis.default.provider.conformance.rr.trellis:conformance/types@0.1.0.nothing";
    let reply = tokio::time::timeout(within, host_client.request(nothing, "".into())).await??;
    assert!(
        reply.headers.is_none() && reply.payload.is_empty(),
        "{reply:?}"
    );
    // Once their 2 s without parameters are up, the slots are free again.
    eventually(
        Duration::from_secs(15),
        "wrpc calls served again",
        async || conform(&nats, "wrpc").ok(),
    )
    .await?;
    assert!(server.alive(), "{}", server.stderr_text());
    Ok(())
}

#[tokio::test]
async fn a_python_keyvalue_provider_serves_the_counter_and_survives_its_crash() -> TestResult {
    let nats = Nats::start("py-kv")?;
    let db = scratch("py-kv")?.join("keyvalue.sqlite");
    let mut provider = sqlite_keyvalue(&nats, &db)?;
    let client = nats.client().await?;
    let mut lean = client
        .subscribe("trellis.default.provider.keyvalue.rr.>")
        .await?;
    client.flush().await?;
    let h = host(&nats, &[&repo().join("examples/counter/lattice.yaml")], &[])?;
    for n in 1..=3 {
        let reply = visit(h.addr).await?;
        assert_eq!(
            (reply.status, reply.body),
            (200, format!("Hello, trellis! You are visitor #{n}.\n"))
        );
    }
    // It announced trellis-rr/1: each keyvalue call was one request.
    let mut calls = 0;
    eventually(Duration::from_secs(5), "lean calls seen", async || {
        while let Some(Some(_)) = futures::FutureExt::now_or_never(lean.next()) {
            calls += 1;
        }
        (calls >= 3).then_some(())
    })
    .await?;

    // A bucket named in sealed config is opened with its xkey; a box sealed
    // to another key is refused.
    let xkey = nats
        .identity("provider", "keyvalue")?
        .and_then(|i| i.xkey)
        .ok_or("no xkey")?;
    let prober = nats.client_as("host", "prober").await?;
    let open = |to: String| {
        let prober = prober.clone();
        async move {
            let sealed =
                trellis_lattice::Sealed::seal("bucket", b"sealed_b", &nkeys::XKey::new(), &to)?;
            let mut h = async_nats::HeaderMap::new();
            h.insert("Trellis-Workload", "counter");
            h.insert("Trellis-Component", "api");
            h.insert(
                "Trellis-Secrets",
                serde_json::json!({ "bucket": sealed }).to_string().as_str(),
            );
            let subject =
                "trellis.default.provider.keyvalue.rr.wasi:keyvalue/store@0.2.0-draft.open";
            let reply = prober
                .request_with_headers(subject, h, bytes::Bytes::from_static(b"\x01x"))
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(reply.payload.to_vec())
        }
    };
    assert_eq!(open(xkey).await?, b"\x00\x10counter.sealed_b");
    assert_eq!(open(nkeys::XKey::new().public_key()).await?, [1, 1]);

    // It crashes: requests fail fast with a 5xx, nothing hangs.
    provider.kill();
    let reply = visit(h.addr).await?;
    assert!(reply.status >= 500, "{} {}", reply.status, reply.body);

    // It comes back on the same file: the count goes on.
    let mut back = sqlite_keyvalue(&nats, &db)?;
    let reply = visit(h.addr).await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "Hello, trellis! You are visitor #4.\n"),
        "provider:\n{}",
        back.stderr_text()
    );

    // SIGTERM: it stops being found, drains and exits.
    back.terminate(Duration::from_secs(15))?;
    assert!(
        back.stderr_text().contains("draining"),
        "{}",
        back.stderr_text()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_keyvalue_provider_counts_exactly_and_keeps_workloads_apart() -> TestResult {
    let nats = Nats::start("py-atomics")?;
    let db = scratch("py-atomics")?.join("keyvalue.sqlite");
    let _kv = sqlite_keyvalue(&nats, &db)?;
    crate::atomics::atomics_hold(&nats).await
}
