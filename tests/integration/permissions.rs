//! The lattice's permissions as nats-server enforces them: each role reaches
//! what it needs and nothing else. Every refusal is checked twice: the call
//! fails, and the server's log says a permission stopped it.

use std::time::Duration;

use async_nats::HeaderMap;
use trellis_control_api::ControlClient;
use trellis_lattice::{NatsArgs, Role, Subjects};

use crate::lattice::{Nats, cli, host, host_with, keyvalue_provider, provider};
use crate::support::{TestResult, get, repo, scratch};

/// JetStream with a short request bound: a refused request gets no reply.
fn jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client)
}

#[tokio::test]
async fn only_the_lattices_own_identities_get_in() -> TestResult {
    let nats = Nats::start("perm-in")?;
    assert!(
        nats.anonymous().await.is_err(),
        "an anonymous client got in"
    );
    // A well-formed nkey the lattice never made.
    let dir = scratch("perm-stranger")?;
    let seed = dir.join("stranger.nk");
    std::fs::write(&seed, nkeys::KeyPair::new_user().seed()?)?;
    let mut stranger = NatsArgs::new(&nats.url);
    stranger.nkey = Some(seed);
    assert!(stranger.connect(&Role::Operator, true).await.is_err());
    nats.client_as("operator", "operator").await?;
    // The CLI without an identity says why, at once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["get", "hosts", "--nats", &nats.url])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("authorization violation"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn only_the_operator_and_the_scheduler_call_a_host() -> TestResult {
    let nats = Nats::start("perm-control")?;
    let _h = host(&nats, &[], &["--id", "h1"])?;
    let h1 = nats.host_id("h1")?;
    let subjects = Subjects::new("default");
    for (kind, name) in [("operator", "operator"), ("scheduler", "scheduler")] {
        let control = ControlClient::new(
            nats.client_as(kind, name).await?,
            &subjects,
            &h1,
            Duration::from_secs(10),
        )
        .await?;
        assert_eq!(control.describe().await?.id, h1, "{kind}");
    }
    for (kind, name) in [("provider", "keyvalue"), ("host", "h2")] {
        let control = ControlClient::new(
            nats.client_as(kind, name).await?,
            &subjects,
            &h1,
            Duration::from_secs(2),
        )
        .await?;
        assert!(
            control.describe().await.is_err(),
            "{kind} reached the control API"
        );
    }
    nats.refused("Publish", &format!("trellis.default.host.{h1}."))?;
    Ok(())
}

#[tokio::test]
async fn only_hosts_call_providers_so_their_identity_headers_hold() -> TestResult {
    let nats = Nats::start("perm-forge")?;
    let _kv = keyvalue_provider(&nats, "keyvalue")?;
    let h = host(&nats, &[&repo().join("examples/counter/lattice.yaml")], &[])?;
    assert_eq!(get(h.addr, "localhost", "/").await?.status, 200);
    let open = "trellis.default.provider.keyvalue.rr.wasi:keyvalue/store@0.2.0-draft.open";
    let mut forged = HeaderMap::new();
    forged.insert("Trellis-Workload", "counter");
    forged.insert("Trellis-Component", "api");
    forged.insert("Trellis-Binding", "wasi:keyvalue/*");
    forged.insert("Trellis-Config", "{}");
    // `open("")`: one string parameter, empty.
    let payload = bytes::Bytes::from_static(&[0]);
    for (kind, name) in [
        ("operator", "operator"),
        ("scheduler", "scheduler"),
        ("provider", "blobstore"),
    ] {
        let client = nats.client_as(kind, name).await?;
        let call = client.request_with_headers(open, forged.clone(), payload.clone());
        let answer = tokio::time::timeout(Duration::from_secs(2), call).await;
        assert!(
            !matches!(answer, Ok(Ok(_))),
            "{kind} called the provider with forged headers"
        );
        // Nor may it serve the provider's subjects, to catch hosts' calls.
        let _ = client
            .subscribe("trellis.default.provider.keyvalue.>")
            .await?;
        client.flush().await?;
    }
    nats.refused("Publish", "trellis.default.provider.keyvalue.rr.")?;
    nats.refused("Subscription", "trellis.default.provider.keyvalue.>")?;
    // A host's call, with the same payload, is answered.
    let host_client = nats.client_as("host", "prober").await?;
    let reply = host_client
        .request_with_headers(open, forged, payload)
        .await?;
    assert!(
        reply
            .headers
            .is_none_or(|h| h.get("Trellis-Error").is_none())
    );
    // Workload exports too: only hosts call them.
    let operator = nats.client_as("operator", "operator").await?;
    operator
        .publish("trellis.default.workload.counter.rr.x.y", "".into())
        .await?;
    operator.flush().await?;
    nats.refused("Publish", "trellis.default.workload.counter.")?;
    Ok(())
}

#[tokio::test]
async fn a_host_announces_and_serves_only_itself() -> TestResult {
    let nats = Nats::start("perm-host")?;
    let _h1 = host(&nats, &[], &["--id", "h1"])?;
    let h1 = nats.host_id("h1")?;
    let h2 = nats.client_as("host", "h2").await?;
    let subjects = Subjects::new("default");
    h2.publish(subjects.host_heartbeat(&h1), "{}".into())
        .await?;
    let _ = h2.subscribe(format!("{}.>", subjects.host(&h1))).await?;
    // Nor may it read another host's replies.
    let _ = h2.subscribe(format!("_INBOX.default.host.{h1}.>")).await?;
    h2.flush().await?;
    nats.refused("Publish", &subjects.host_heartbeat(&h1))?;
    nats.refused("Subscription", &subjects.host(&h1))?;
    nats.refused("Subscription", &format!("_INBOX.default.host.{h1}."))?;

    // `--id` must be the nkey's public key.
    let auth = nats.auth("host", "h2")?;
    let mut options: Vec<&str> = auth.iter().map(String::as_str).collect();
    options.extend(["--id", &h1]);
    let refused = host_with(&nats, &[], &options)
        .err()
        .ok_or("a host started under another host's ID")?;
    assert!(
        refused.contains("is not this host's nkey public key"),
        "{refused}"
    );
    Ok(())
}

#[tokio::test]
async fn only_its_provider_reaches_a_workloads_data_in_jetstream() -> TestResult {
    let nats = Nats::start("perm-data")?;
    let _kv = keyvalue_provider(&nats, "keyvalue")?;
    let _blobs = provider(&nats, "trellis-blobstore-nats", "blobstore")?;
    let _messaging = provider(&nats, "trellis-messaging-nats", "messaging")?;
    let h = host(&nats, &[&repo().join("examples/counter/lattice.yaml")], &[])?;
    assert_eq!(get(h.addr, "localhost", "/").await?.status, 200);
    let kv = "trellis_default_data_keyvalue";
    let blobs = "trellis_default_data_blobstore";
    let outsiders = [
        ("host", "h1", true, true),
        ("operator", "operator", true, true),
        ("scheduler", "scheduler", true, true),
        ("provider", "messaging", true, true),
        ("provider", "blobstore", true, false),
        ("provider", "keyvalue", false, true),
    ];
    for (kind, name, not_kv, not_blobs) in outsiders {
        let js = jetstream(nats.client_as(kind, name).await?);
        if not_kv {
            assert!(
                js.get_key_value(kv).await.is_err(),
                "{kind} {name} read {kv}"
            );
            assert!(
                js.get_stream(format!("KV_{kv}")).await.is_err(),
                "{kind} {name} read KV_{kv}"
            );
        }
        if not_blobs {
            assert!(
                js.get_object_store(blobs).await.is_err(),
                "{kind} {name} read {blobs}"
            );
        }
    }
    nats.refused("Publish", &format!("$JS.API.STREAM.INFO.KV_{kv}"))?;
    nats.refused("Publish", &format!("$JS.API.STREAM.INFO.OBJ_{blobs}"))?;
    // The owner itself does.
    let owner = jetstream(nats.client_as("provider", "keyvalue").await?);
    assert!(owner.get_key_value(kv).await.is_ok());
    Ok(())
}

#[tokio::test]
async fn the_messaging_provider_reaches_its_application_subjects_only() -> TestResult {
    let nats = Nats::start("perm-messaging")?;
    // Flushed and waited on generously: under a loaded CI machine the
    // delivery, not the permission, is what takes time.
    let observer = nats.client().await?;
    let mut orders = observer.subscribe("orders.new").await?;
    observer.flush().await?;
    let messaging = nats.client_as("provider", "messaging").await?;
    messaging.publish("orders.new", "one".into()).await?;
    messaging.flush().await?;
    let got = tokio::time::timeout(
        Duration::from_secs(20),
        futures::StreamExt::next(&mut orders),
    )
    .await?
    .ok_or("no message")?;
    assert_eq!(&got.payload[..], b"one");
    // The reserved subjects stay closed, granted application subjects or not.
    for subject in [
        "trellis.default.host.x.wrpc",
        "trellis.default.evt.host.x.heartbeat",
        "$KV.trellis_default_desired.x",
        "unlisted.subject",
    ] {
        messaging.publish(subject, "x".into()).await?;
    }
    for subject in ["trellis.>", ">", "_INBOX.default.host.>", "$JS.>"] {
        let _ = messaging.subscribe(subject).await?;
    }
    messaging.flush().await?;
    for subject in [
        "trellis.default.host.x",
        "trellis.default.evt.host.x",
        "$KV.trellis_default_desired",
        "unlisted.subject",
    ] {
        nats.refused("Publish", subject)?;
    }
    for subject in ["trellis.>", ">", "_INBOX.default.host.>", "$JS.>"] {
        nats.refused("Subscription", subject)?;
    }
    // The operator's own commands still work on the secured lattice.
    let (code, _, err) = cli(&nats, &["get", "hosts"])?;
    assert_eq!(code, 0, "{err}");
    Ok(())
}

#[tokio::test]
async fn an_open_server_still_runs_a_lattice_without_identities() -> TestResult {
    // Development without `trellis lattice init`: nobody authenticates, nothing is enforced.
    let nats = Nats::open("perm-open")?;
    let _kv = keyvalue_provider(&nats, "keyvalue")?;
    let h = host(&nats, &[&repo().join("examples/counter/lattice.yaml")], &[])?;
    let reply = get(h.addr, "localhost", "/").await?;
    assert_eq!(reply.body, "Hello, trellis! You are visitor #1.\n");
    assert!(nats.anonymous().await.is_ok());
    Ok(())
}

#[tokio::test]
async fn a_cluster_from_one_generated_config_serves_the_lattice() -> TestResult {
    let mut servers = Nats::start_cluster("perm-cluster", 3)?;
    for server in &mut servers {
        // Routes authenticate with the password `init` made, and JetStream
        // (clustered) elects its meta leader.
        server
            .wait_for_log(
                "JetStream cluster new metadata leader",
                Duration::from_secs(30),
            )
            .or_else(|_| {
                server.wait_for_log(
                    "Self is new JetStream cluster metadata leader",
                    Duration::from_secs(1),
                )
            })?;
    }
    // The provider on one server, the host on another: calls and data cross the routes.
    let _kv = keyvalue_provider(&servers[2], "keyvalue")?;
    let h = host(
        &servers[0],
        &[&repo().join("examples/counter/lattice.yaml")],
        &["--id", "host"],
    )?;
    for n in 1..=2 {
        let reply = get(h.addr, "localhost", "/").await?;
        assert_eq!(
            reply.body,
            format!("Hello, trellis! You are visitor #{n}.\n")
        );
    }
    // The route port admits no server without the password.
    let conf = std::fs::read_to_string(servers[0].lattice_file("nats.conf")?)?;
    assert!(conf.contains("authorization"), "{conf}");
    Ok(())
}

#[tokio::test]
async fn a_tls_lattice_serves_its_own_and_refuses_clients_without_its_certificates() -> TestResult {
    // `trellis lattice init --tls`: every process presents the lattice's client
    // certificate and trusts only its CA, beside its nkey.
    let nats = Nats::start_tls("perm-tls")?;
    let _kv = keyvalue_provider(&nats, "keyvalue")?;
    let h = host(
        &nats,
        &[&repo().join("examples/counter/lattice.yaml")],
        &["--id", "edge"],
    )?;
    let reply = get(h.addr, "localhost", "/").await?;
    assert_eq!(reply.body, "Hello, trellis! You are visitor #1.\n");
    let (code, out, err) = cli(&nats, &["get", "hosts"])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&nats.host_id("edge")?), "{out}");

    let operator = nats.lattice_file("operator.nk")?;
    let tls = nats.lattice_file("tls")?;
    // The operator's nkey without TLS: the server's certificate is not trusted.
    let mut plain = NatsArgs::new(&nats.url);
    plain.nkey = Some(operator.clone());
    assert!(plain.connect(&Role::Operator, true).await.is_err());
    // Trusting the CA but presenting no client certificate (`verify: true`).
    let mut no_certificate = NatsArgs::new(&nats.url);
    no_certificate.nkey = Some(operator.clone());
    no_certificate.tls_ca = Some(tls.join("ca.pem"));
    assert!(no_certificate.connect(&Role::Operator, true).await.is_err());
    // A certificate from another CA.
    let other = scratch("perm-tls-other")?.join("lattice");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["lattice", "init", "--tls"])
        .arg(&other)
        .output()?;
    assert!(made.status.success(), "{made:?}");
    let other = other.join("tls");
    let mut stranger = NatsArgs::new(&nats.url);
    stranger.nkey = Some(operator);
    stranger.tls_ca = Some(tls.join("ca.pem"));
    stranger.tls_cert = Some(other.join("client.pem"));
    stranger.tls_key = Some(other.join("client-key.pem"));
    assert!(stranger.connect(&Role::Operator, true).await.is_err());
    Ok(())
}
