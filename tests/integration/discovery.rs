//! Providers are NATS micro services (ADR-32): read back here with async-nats's
//! own `service` types, as `nats micro` would; hosts and `trellis get
//! providers` keep only their lattice's; a stock wRPC server that announces
//! nothing is bound when its binding says so.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use async_nats::service::{Info, PingResponse, Stats};
use futures::StreamExt as _;

use crate::lattice::{
    Nats, Process, cli, host, keyvalue_provider, provider_with, workspace_binary,
};
use crate::support::{TestResult, get, repo, scratch};

/// Every answer to `subject` within half a second, as `T`.
async fn ask<T: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
) -> Result<Vec<T>, Box<dyn std::error::Error>> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subject.to_string(), inbox, "".into())
        .await?;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await {
        seen.push(serde_json::from_slice(&message.payload)?);
    }
    Ok(seen)
}

fn counter() -> std::path::PathBuf {
    repo().join("examples/counter/lattice.yaml")
}

#[tokio::test]
async fn providers_answer_nats_micro_discovery_and_survive_hostile_questions() -> TestResult {
    let nats = Nats::start("discovery")?;
    let mut kv = keyvalue_provider(&nats, "keyvalue")?;
    let h = host(&nats, &[&counter()], &[])?;
    for _ in 0..2 {
        assert_eq!(get(h.addr, "localhost", "/").await?.status, 200);
    }
    // The lattice's admin asks as `nats --inbox-prefix _INBOX.default.admin.test micro` does.
    let admin = nats.client().await?;
    let pings: Vec<PingResponse> = ask(&admin, "$SRV.PING").await?;
    let [ping] = pings.as_slice() else {
        return Err(format!("{} answers to $SRV.PING", pings.len()).into());
    };
    assert_eq!(ping.kind, "io.nats.micro.v1.ping_response");
    assert_eq!(ping.name, "keyvalue");
    assert_eq!(ping.metadata["trellis.lattice"], "default");

    let infos: Vec<Info> = ask(&admin, &format!("$SRV.INFO.keyvalue.{}", ping.id)).await?;
    let [info] = infos.as_slice() else {
        return Err(format!("{} answers to INFO by ID", infos.len()).into());
    };
    assert!(
        info.metadata["trellis.interfaces"].contains("wasi:keyvalue/atomics@0.2.0-draft"),
        "{:?}",
        info.metadata
    );
    assert_eq!(
        info.metadata["trellis.transports"],
        "wrpc.0.0.1,trellis-rr/1"
    );
    assert!(!info.description.is_empty());
    // Each function is an endpoint on the subscription that serves it.
    let open = info
        .endpoints
        .iter()
        .find(|e| e.metadata.get("trellis.function").map(String::as_str) == Some("open"))
        .ok_or_else(|| format!("no endpoint for open: {:?}", info.endpoints))?;
    assert_eq!(
        open.subject,
        "trellis.default.provider.keyvalue.rr.wasi:keyvalue/store@0.2.0-draft.open"
    );
    assert_eq!(open.queue_group, "trellis.default.provider.keyvalue");

    // The operator sees the calls the counter made.
    let operator = nats.client_as("operator", "operator").await?;
    let stats: Vec<Stats> = ask(&operator, "$SRV.STATS").await?;
    let increments = stats
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.name == "wasi_keyvalue_atomics_0_2_0-draft_increment")
        .ok_or("no increment endpoint in STATS")?;
    assert_eq!(increments.requests, 2, "{increments:?}");
    assert_eq!(increments.errors, 0);
    let (code, out, err) = cli(&nats, &["get", "providers", "-o", "json"])?;
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["instance"], ping.id.as_str());
    assert!(
        listed[0]["requests"].as_u64().is_some_and(|n| n >= 3),
        "{out}"
    );

    // Questions without a reply subject, with junk, or for other services:
    // nothing breaks, and discovery still answers.
    for subject in [
        "$SRV.PING",
        "$SRV.INFO.keyvalue",
        "$SRV.STATS.keyvalue.nobody",
    ] {
        admin.publish(subject, "junk".into()).await?;
        admin
            .publish_with_reply(
                subject,
                "_INBOX.default.admin.test.gone",
                vec![0xff; 4096].into(),
            )
            .await?;
    }
    let pings: Vec<PingResponse> = ask(&admin, "$SRV.PING.keyvalue").await?;
    assert_eq!(pings.len(), 1);
    assert!(kv.alive(), "{}", kv.stderr_text());
    Ok(())
}

#[tokio::test]
async fn hosts_and_the_cli_keep_only_their_lattices_providers() -> TestResult {
    // An open server: two lattices share `$SRV`, and both call a provider `keyvalue`.
    let nats = Nats::open("discovery-lattices")?;
    let _ours = keyvalue_provider(&nats, "keyvalue")?;
    let _theirs = provider_with(
        &nats,
        "trellis-keyvalue-nats",
        "keyvalue",
        &["--lattice", "other"],
    )?;
    let client = nats.client().await?;
    let all: Vec<Info> = ask(&client, "$SRV.INFO.keyvalue").await?;
    let lattices: BTreeSet<&str> = all
        .iter()
        .map(|i| i.metadata["trellis.lattice"].as_str())
        .collect();
    assert_eq!(lattices, BTreeSet::from(["default", "other"]));
    let (code, out, err) = cli(&nats, &["get", "providers", "-o", "json"])?;
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    assert_eq!(listed.len(), 1, "{out}");
    let ours = all
        .iter()
        .find(|i| i.metadata["trellis.lattice"] == "default")
        .ok_or("no answer from our lattice")?;
    assert_eq!(listed[0]["instance"], ours.id.as_str());
    let h = host(&nats, &[&counter()], &[])?;
    let reply = get(h.addr, "localhost", "/").await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    Ok(())
}

/// The stock server, on the provider identity `name`.
fn stock_greeter(nats: &Nats, name: &str) -> Result<Process, String> {
    let mut command = Command::new(workspace_binary("trellis-stock-greeter")?);
    command.args([
        nats.url.as_str(),
        &format!("trellis.default.provider.{name}"),
        &format!("_INBOX.default.provider.{name}"),
    ]);
    if let Some(seed) = nats.auth("provider", name)?.get(1) {
        command.arg(seed);
    }
    let (mut process, _) = Process::spawn(command)?;
    process.wait_for("serving", Duration::from_secs(30))?;
    Ok(process)
}

#[tokio::test]
async fn a_stock_wrpc_server_is_bound_when_the_binding_says_it_announces_nothing() -> TestResult {
    let nats = Nats::start("stock")?;
    let mut stock = stock_greeter(&nats, "greeter")?;
    let manifest = |announced: &str| -> Result<std::path::PathBuf, std::io::Error> {
        let dir = scratch("stock")?;
        let file = dir.join(format!("stock{}.yaml", announced.len()));
        std::fs::write(
            &file,
            format!(
                "apiVersion: trellis.dev/v1alpha1
kind: Workload
name: counter
components:
  api:
    source: {}
    bindings:
      wasi:io: host
      wasi:http: host
      wasi:keyvalue: host
      trellis:example/greeter: {{provider: greeter, timeout: 2s{announced}}}
routes:
  - component: api
    path: /
",
                repo().join("examples/counter/api.wat").display()
            ),
        )?;
        Ok(file)
    };
    // Discovery finds nothing, and the refusal says how to bind it anyway.
    let refused = match host(&nats, &[&manifest("")?], &[]) {
        Ok(_) => return Err("a binding to a server that announces nothing was taken".into()),
        Err(stderr) => stderr,
    };
    assert!(
        refused.contains("provider `greeter` is not running")
            && refused.contains("announced: false"),
        "{refused}"
    );
    let h = host(&nats, &[&manifest(", announced: false")?], &[])?;
    let reply = get(h.addr, "localhost", "/").await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("Hello from a stock wRPC server, trellis!"),
        "{}",
        reply.body
    );
    // Without it, a call is an error at once, not a hang.
    stock.kill();
    let reply = get(h.addr, "localhost", "/").await?;
    assert!(reply.status >= 500, "{} {}", reply.status, reply.body);
    Ok(())
}
