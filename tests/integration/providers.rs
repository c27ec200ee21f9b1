//! Provider bindings on a real lattice: nats-server, the keyvalue-nats provider and
//! `trellis host`, each its own process.

use std::time::Duration;

use crate::lattice::{Nats, host, keyvalue_provider};
use crate::support::{TestResult, eventually, example_manifest, get, repo, scratch};

fn counter() -> std::path::PathBuf {
    repo().join("examples/counter/lattice.yaml")
}

/// GET with a client-side bound, so a hang fails the test instead of stalling it.
pub async fn visit(
    addr: std::net::SocketAddr,
) -> Result<crate::support::Reply, Box<dyn std::error::Error>> {
    tokio::time::timeout(Duration::from_secs(10), get(addr, "localhost", "/"))
        .await
        .map_err(|_| "the request hung")?
}

#[tokio::test]
async fn keyvalue_goes_through_the_provider_and_survives_its_crash() -> TestResult {
    let nats = Nats::start("kv")?;
    let mut provider = keyvalue_provider(&nats, "keyvalue")?;
    let h = host(&nats, &[&counter()], &[])?;
    // Watch both transports' subjects (a plain subscriber sees queue-group traffic too).
    let client = nats.client().await?;
    let mut lean = client
        .subscribe("trellis.default.provider.keyvalue.rr.>")
        .await?;
    let mut standard = client
        .subscribe("trellis.default.provider.keyvalue.wrpc.>")
        .await?;
    client.flush().await?;
    for n in 1..=3 {
        let reply = visit(h.addr).await?;
        assert_eq!(
            (reply.status, reply.body),
            (200, format!("Hello, trellis! You are visitor #{n}.\n"))
        );
    }
    // The provider announces trellis-rr/1, so each keyvalue call is one request.
    let count = |sub: &mut async_nats::Subscriber| {
        let mut n = 0;
        while let Some(Some(_)) = futures::FutureExt::now_or_never(futures::StreamExt::next(sub)) {
            n += 1;
        }
        n
    };
    let mut lean_calls = 0;
    eventually(
        Duration::from_secs(5),
        "three lean calls seen",
        async || {
            lean_calls += count(&mut lean);
            (lean_calls >= 3).then_some(())
        },
    )
    .await?;
    let standard_calls = count(&mut standard);
    assert_eq!(standard_calls, 0, "calls went over wrpc-transport-nats");

    // The count lives in JetStream, not in the host: a new host continues it.
    drop(h);
    let mut h = host(&nats, &[&counter()], &[])?;
    let reply = visit(h.addr).await?;
    assert_eq!(reply.body, "Hello, trellis! You are visitor #4.\n");

    // The provider crashes: requests fail fast with a 5xx, nothing hangs.
    provider.kill();
    let reply = visit(h.addr).await?;
    assert!(reply.status >= 500, "{} {}", reply.status, reply.body);

    // It comes back: the same host recovers without a restart.
    let mut back = keyvalue_provider(&nats, "keyvalue")?;
    let reply = visit(h.addr).await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "Hello, trellis! You are visitor #5.\n"),
        "host:\n{}\nprovider:\n{}",
        h.stderr_text(),
        back.stderr_text()
    );
    Ok(())
}

#[tokio::test]
async fn a_binding_to_a_missing_provider_or_interface_is_refused_before_start() -> TestResult {
    let nats = Nats::start("missing")?;
    let dir = scratch("missing-provider")?;
    let text = example_manifest("lattice.yaml")?;

    let nobody = dir.join("nobody.yaml");
    std::fs::write(
        &nobody,
        text.replace("provider: keyvalue", "provider: nobody"),
    )?;
    let err = host(&nats, &[&nobody], &[])
        .err()
        .ok_or("the host started")?;
    assert!(
        err.contains("provider `nobody` is not running on lattice `default`"),
        "{err}"
    );

    let _provider = keyvalue_provider(&nats, "keyvalue")?;
    let wrong = dir.join("wrong.yaml");
    std::fs::write(
        &wrong,
        text.replace("wasi:http: host", "wasi:http: {provider: keyvalue}"),
    )?;
    let err = host(&nats, &[&wrong], &[])
        .err()
        .ok_or("the host started")?;
    assert!(
        err.contains("provider `keyvalue` does not serve `wasi:http/types@"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn garbage_on_provider_subjects_does_not_stop_it() -> TestResult {
    let nats = Nats::start("garbage")?;
    let mut provider = keyvalue_provider(&nats, "keyvalue")?;
    let h = host(&nats, &[&counter()], &[])?;
    let client = nats.client().await?;
    // Both transports: wrpc-transport-nats, and the lean one (trellis-rr/1).
    for prefix in [
        "trellis.default.provider.keyvalue.wrpc.0.0.1",
        "trellis.default.provider.keyvalue.rr",
    ] {
        for func in [
            "wasi:keyvalue/store@0.2.0-draft.open",
            "wasi:keyvalue/store@0.2.0-draft.bucket.get",
            "wasi:keyvalue/atomics@0.2.0-draft.increment",
        ] {
            for payload in [
                &b""[..],
                b"\xff\xff\xff\xff\xff",
                b"\x05hello",
                &[0u8; 4096],
            ] {
                client
                    .publish(format!("{prefix}.{func}"), payload.to_vec().into())
                    .await?;
                // A request with a reply subject, as a confused client would send.
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    client.request(format!("{prefix}.{func}"), payload.to_vec().into()),
                )
                .await;
            }
        }
    }
    client.flush().await?;
    // Invocations that never send their parameters hold their function for at most
    // the SDK's idle limit each (wrpc-transport decodes a function's calls in order);
    // then the provider serves again.
    let reply = eventually(
        Duration::from_secs(30),
        "the provider serves again",
        async || {
            let reply = visit(h.addr).await.ok()?;
            (reply.status == 200).then_some(reply)
        },
    )
    .await?;
    assert!(
        reply.status == 200 && reply.body.starts_with("Hello, trellis! You are visitor #"),
        "{} {}; provider stderr:\n{}",
        reply.status,
        reply.body,
        provider.stderr_text()
    );
    let reply = visit(h.addr).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(provider.stderr_text().contains("bad invocation"));
    assert!(!provider.stderr_text().contains("panicked"));
    Ok(())
}

#[tokio::test]
async fn two_replicas_share_the_load_and_one_dying_fails_nothing_after_the_timeout() -> TestResult {
    let nats = Nats::start("replicas")?;
    let mut first = keyvalue_provider(&nats, "keyvalue")?;
    let _second = keyvalue_provider(&nats, "keyvalue")?;
    let h = host(&nats, &[&counter()], &[])?;

    // Both replicas answer discovery, each for itself (not in a queue group).
    let client = nats.client_as("host", "prober").await?;
    let answers = trellis_lattice::micro::gather(
        &client,
        "$SRV.INFO.keyvalue".into(),
        Duration::from_millis(500),
        false,
        |info: trellis_lattice::micro::Info| {
            trellis_lattice::ProviderInfo::from_micro(&info, "default")
        },
    )
    .await?;
    let instances: std::collections::BTreeSet<String> =
        answers.into_iter().map(|p| p.instance).collect();
    assert_eq!(instances.len(), 2, "{instances:?}");
    // `trellis get providers` sees both replicas too.
    let (code, out, err) = crate::lattice::cli(&nats, &["get", "providers", "-o", "json"])?;
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    assert_eq!(listed.len(), 2, "{out}");
    assert!(listed.iter().all(|p| p["name"] == "keyvalue"), "{out}");

    let mut ok = 0;
    for _ in 0..20 {
        assert_eq!(visit(h.addr).await?.status, 200);
        ok += 1;
    }
    first.kill();
    // Calls caught by the crash may fail (each within the binding's 1 s bound)...
    let window = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < window {
        if visit(h.addr).await?.status == 200 {
            ok += 1;
        }
    }
    // ...after it, not one does, and no count was lost or doubled.
    for _ in 0..40 {
        let reply = visit(h.addr).await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
        ok += 1;
        assert_eq!(
            reply.body,
            format!("Hello, trellis! You are visitor #{ok}.\n")
        );
    }
    Ok(())
}
