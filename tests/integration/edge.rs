//! Hub and spoke: a hub and two leaf sites, each site its own nats-server and
//! JetStream domain (from `trellis lattice init --leafnodes` and `trellis
//! lattice add site`), site A's leaf connection through a link the test cuts
//! for 30 s under steady HTTP load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;

use crate::lattice::{Nats, cli, control_client, host, provider_with, scheduler_with};
use crate::link::Link;
use crate::support::{Dev, TestResult, eventually, get, holds_for, post, repo, scratch};

/// How long site A is cut off.
const CUT: Duration = Duration::from_secs(30);
/// Messages a component at site A publishes while it is cut off.
const MESSAGES: usize = 1000;

/// The example counter as workload `name`, routed on Host `route`, placed on
/// hosts with the `selector` labels (a YAML flow mapping).
fn counter(dir: &Path, name: &str, route: &str, selector: &str) -> std::io::Result<PathBuf> {
    let examples = repo().join("examples/counter");
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: trellis.dev/v1alpha1
kind: Workload
name: {name}
components:
  api:
    source: {}
    limits: {{memory: 16MiB, timeout: 2s, concurrency: 64}}
    bindings:
      wasi:io: host
      wasi:http: host
      wasi:keyvalue: {{provider: keyvalue, timeout: 1s, config: {{bucket: visits}}}}
      trellis:example/greeter: {{component: greeter}}
  greeter:
    source: {}
routes:
  - component: api
    host: {route}
deploy:
  selector: {selector}
",
            examples.join("api.wat").display(),
            examples.join("greeter.wat").display(),
        ),
    )?;
    Ok(file)
}

/// The messaging test's messenger, placed at site A.
fn messenger() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let file = crate::messaging::messenger("edge-messenger", "{}")?;
    let mut text = std::fs::read_to_string(&file)?;
    text.push_str("deploy:\n  selector: {site: a}\n");
    std::fs::write(&file, text)?;
    Ok(file)
}

/// Runs the CLI against `nats`; it must succeed. Returns stdout.
fn ok(nats: &Nats, args: &[&str]) -> Result<String, String> {
    let (code, out, err) = cli(nats, args)?;
    if code != 0 {
        return Err(format!("trellis {args:?} exited with {code}: {err}"));
    }
    Ok(out)
}

/// Visits the counter at `route` on `addr` in a loop until `stop`: the count
/// of every answer, or why it failed.
fn load(
    addr: std::net::SocketAddr,
    route: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Result<u64, String>>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let visit = tokio::time::timeout(Duration::from_secs(5), get(addr, route, "/")).await;
            seen.push(match visit {
                Ok(Ok(reply)) if reply.status == 200 => reply
                    .body
                    .trim()
                    .trim_end_matches('.')
                    .rsplit('#')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or(format!("no count in {:?}", reply.body)),
                Ok(Ok(reply)) => Err(format!("{}: {}", reply.status, reply.body)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer within 5 s".into()),
            });
        }
        seen
    })
}

/// Every visit answered, each count one more than the one before.
fn continuous(what: &str, seen: &[Result<u64, String>]) -> Result<(), String> {
    let counts: Vec<u64> = seen
        .iter()
        .map(|r| {
            r.clone()
                .map_err(|e| format!("{what}: a visit failed: {e}"))
        })
        .collect::<Result<_, _>>()?;
    for pair in counts.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(format!(
                "{what}: the count jumped from {} to {}",
                pair[0], pair[1]
            ));
        }
    }
    Ok(())
}

/// The replicas the hub's status records for `workload`: (host, state).
async fn replicas(
    js: &jetstream::Context,
    workload: &str,
) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let status = js.get_key_value("trellis_default_status").await?;
    let Some(value) = status.get(workload).await? else {
        return Ok(Vec::new());
    };
    let status: serde_json::Value = serde_json::from_slice(&value)?;
    Ok(status["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("host"), text("state"))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_site_keeps_serving_and_forwards_everything_once() -> TestResult {
    let leaf_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let link = Link::start(([127, 0, 0, 1], leaf_port).into()).await?;
    let (hub, sites) = Nats::start_edge(
        "edge",
        leaf_port,
        &[("a", link.addr.port()), ("b", leaf_port)],
        &["site-a", "site-b"],
        false,
    )?;
    let (a, b) = (&sites[0], &sites[1]);
    let dir = scratch("edge")?;

    // The hub: the scheduler, and a keyvalue provider of the same name as
    // the sites' (a dataset of its own, which site hosts never reach).
    let mut scheduler = scheduler_with(&hub, &["--js-domain", "hub"])?;
    let kv = "trellis-keyvalue-nats";
    let _hub_kv = provider_with(&hub, kv, "keyvalue", &["--js-domain", "hub"])?;
    let _kv_a = provider_with(a, kv, "keyvalue", &["--js-domain", "a"])?;
    let _messaging_a = provider_with(
        a,
        "trellis-messaging-nats",
        "messaging",
        &["--js-domain", "a"],
    )?;
    let _kv_b = provider_with(b, kv, "keyvalue", &["--js-domain", "b"])?;

    // Desired state at the hub; a component for the cut pushed there too.
    let edge = counter(&dir, "counter", "counter.edge", "{tier: edge}")?;
    let pinned_b = counter(&dir, "counter-b", "counter-b.edge", "{site: b}")?;
    for file in [edge, pinned_b, messenger()?] {
        ok(&hub, &["apply", "-f", &file.to_string_lossy()])?;
    }
    let hello = repo().join("tests/components/hello.wat");
    let pushed = ok(&hub, &["push", &hello.to_string_lossy()])?;
    let hello_ref = pushed.trim().to_string();
    for (site, domain) in [(a, "a"), (b, "b")] {
        ok(
            site,
            &["mirror", "--hub-domain", "hub", "--js-domain", domain],
        )?;
    }

    // Site A's host first, so the edge-wide counter lands there.
    let host_a = host(
        a,
        &[],
        &[
            "--id",
            "site-a",
            "--js-domain",
            "a",
            "--label",
            "tier=edge",
            "--label",
            "site=a",
        ],
    )?;
    eventually(
        Duration::from_secs(60),
        "the counter to serve at site A",
        async || {
            get(host_a.addr, "counter.edge", "/")
                .await
                .ok()
                .filter(|r| r.status == 200)
        },
    )
    .await?;
    let host_b = host(
        b,
        &[],
        &[
            "--id",
            "site-b",
            "--js-domain",
            "b",
            "--label",
            "tier=edge",
            "--label",
            "site=b",
        ],
    )?;
    eventually(
        Duration::from_secs(60),
        "counter-b to serve at site B",
        async || {
            get(host_b.addr, "counter-b.edge", "/")
                .await
                .ok()
                .filter(|r| r.status == 200)
        },
    )
    .await?;
    eventually(
        Duration::from_secs(60),
        "the messenger to serve at site A",
        async || {
            post(host_a.addr, "/publish/orders.warmup", b"w".to_vec())
                .await
                .ok()
                .filter(|r| r.status == 200)
        },
    )
    .await?;

    // Store and forward: the site's stream takes `orders.>`; the hub's
    // stream sources it across domains and takes nothing directly.
    let js_a = jetstream::with_domain(a.client().await?, "a");
    let js_hub = jetstream::with_domain(hub.client().await?, "hub");
    js_a.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await?;
    let forwarded = js_hub
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            sources: Some(vec![stream::Source {
                name: "ORDERS".into(),
                external: Some(stream::External {
                    api_prefix: "$JS.a.API".into(),
                    delivery_prefix: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        })
        .await?;
    // The pushed component has reached site A's mirror of the artifact store.
    let hex = hello_ref
        .trim_start_matches("lattice://sha256:")
        .to_string();
    eventually(
        Duration::from_secs(30),
        "the artifact mirrored at site A",
        async || {
            let store = js_a
                .get_object_store("trellis_default_artifacts")
                .await
                .ok()?;
            store.info(&hex).await.ok()
        },
    )
    .await?;

    // Steady load at both sites, then the cut.
    let stop = Arc::new(AtomicBool::new(false));
    let at_a = load(host_a.addr, "counter.edge", stop.clone());
    let at_b = load(host_b.addr, "counter-b.edge", stop.clone());
    let site_a_id = hub.host_id("site-a")?;
    let site_b_id = hub.host_id("site-b")?;
    eventually(
        Duration::from_secs(30),
        "the hub to see the counter at site A",
        async || {
            let r = replicas(&js_hub, "counter").await.ok()?;
            (r == [(site_a_id.clone(), "running".to_string())]).then_some(())
        },
    )
    .await?;
    link.cut();
    let cut_at = tokio::time::Instant::now();

    // Site A goes on: it publishes durably, answers `trellis get` from its
    // mirrors, and runs a `lattice://` component from its copy of the store.
    for n in 0..MESSAGES {
        let reply = post(
            host_a.addr,
            &format!("/publish/orders.{n}"),
            n.to_string().into_bytes(),
        )
        .await?;
        assert_eq!(reply.status, 200, "publish {n}: {}", reply.body);
    }
    let listed = ok(a, &["get", "workloads", "--js-domain", "a"])?;
    for name in ["counter", "counter-b", "messenger"] {
        assert!(listed.contains(name), "{listed}");
    }
    let mut options = vec![
        "--nats".to_string(),
        a.url.clone(),
        "--js-domain".into(),
        "a".into(),
    ];
    options.extend(a.auth("operator", "operator")?);
    options.extend([
        "--cache-dir".into(),
        dir.join("dev-cache").to_string_lossy().into_owned(),
    ]);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let dev = Dev::start_with(Path::new(&hello_ref), &options)?;
    let reply = get(dev.addr, "localhost", "/").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "hello from trellis\n")
    );
    drop(dev);

    // The hub holds site A's copy (unreachable, still counted) and places no
    // second one at site B, whose own work goes on.
    let mut last = Vec::new();
    let marked = eventually(
        Duration::from_secs(20),
        "the hub to mark site A unreachable",
        async || {
            last = replicas(&js_hub, "counter").await.ok()?;
            (last == [(site_a_id.clone(), "unreachable".to_string())]).then_some(())
        },
    )
    .await;
    marked.map_err(|e| {
        format!(
            "{e}; the status has {last:?}; scheduler: {}",
            scheduler.process.stderr_text()
        )
    })?;
    // A scheduler that takes the lease during the cut has never heard site
    // A: it holds site A's copy from the status the last leader wrote.
    scheduler.process.terminate(Duration::from_secs(15))?;
    let mut scheduler = scheduler_with(&hub, &["--js-domain", "hub"])?;
    scheduler
        .process
        .wait_for("scheduler leadership changed", Duration::from_secs(20))?;
    let at_site_b = control_client(&hub, "site-b", Duration::from_secs(2)).await?;
    let remaining = CUT.saturating_sub(cut_at.elapsed());
    let mut seen = (Vec::new(), Vec::new());
    let held = holds_for(remaining, "no second copy of the counter", async || {
        let copies = at_site_b.workloads().await.unwrap_or_default();
        seen.0 = copies.iter().map(|w| w.id.clone()).collect();
        seen.1 = replicas(&js_hub, "counter").await.unwrap_or_default();
        !seen.0.iter().any(|id| id.contains(":counter@"))
            && seen.1.len() == 1
            && seen.1[0].0 == site_a_id
            && replicas(&js_hub, "counter-b")
                .await
                .is_ok_and(|r| r == [(site_b_id.clone(), "running".to_string())])
    })
    .await;
    held.map_err(|e| {
        format!(
            "{e}; site B runs {:?}, the counter's status {:?}; scheduler: {}",
            seen.0,
            seen.1,
            scheduler.process.stderr_text()
        )
    })?;
    link.restore();

    // Every message forwarded once, in order; the copy reconciled, not doubled.
    eventually(
        Duration::from_secs(60),
        "the hub's stream to catch up",
        async || {
            let mut s = js_hub.get_stream("ORDERS").await.ok()?;
            let info = s.info().await.ok()?;
            (info.state.messages >= MESSAGES as u64).then_some(())
        },
    )
    .await?;
    let consumer: consumer::PullConsumer = forwarded
        .create_consumer(consumer::pull::Config {
            durable_name: Some("hq".into()),
            ..Default::default()
        })
        .await?;
    let mut bodies = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(MESSAGES)
            .expires(Duration::from_secs(1))
            .messages()
            .await?;
        let before = bodies.len();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| e.to_string())?;
            bodies.push(String::from_utf8_lossy(&message.payload).into_owned());
            message.ack().await.map_err(|e| e.to_string())?;
        }
        if bodies.len() == before {
            break; // nothing more to come
        }
    }
    // The warm-up went before the streams existed: exactly the cut's messages.
    let expected: Vec<String> = (0..MESSAGES).map(|n| n.to_string()).collect();
    assert_eq!(bodies, expected, "forwarded in order, each once");
    eventually(
        Duration::from_secs(30),
        "the counter to be running at site A again",
        async || {
            let r = replicas(&js_hub, "counter").await.ok()?;
            (r == [(site_a_id.clone(), "running".to_string())]).then_some(())
        },
    )
    .await?;
    let copies = at_site_b.workloads().await?;
    assert!(
        !copies.iter().any(|w| w.id.contains(":counter@")),
        "{copies:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let (seen_a, seen_b) = (at_a.await?, at_b.await?);
    continuous("site A", &seen_a)?;
    continuous("site B", &seen_b)?;
    assert!(seen_a.len() > 100, "only {} visits at site A", seen_a.len());

    // Every site call stayed at the site: the hub's provider stored nothing.
    let mut hub_data = js_hub
        .get_stream("KV_trellis_default_data_keyvalue")
        .await?;
    assert_eq!(
        hub_data.info().await?.state.messages,
        0,
        "a site call reached the hub"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_site_joins_with_its_own_certificate_and_states_its_domain_truly() -> TestResult {
    let leaf_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // Returns once the site's leaf connection (TLS, the site's own server
    // certificate, the lattice's client certificate) is up.
    let (hub, sites) = Nats::start_edge("edge-tls", leaf_port, &[("a", leaf_port)], &[], true)?;
    let a = &sites[0];

    // Messages cross the TLS leaf link.
    let at_hub = hub.client().await?;
    let mut pings = at_hub.subscribe("edge.tls.ping").await?;
    at_hub.flush().await?;
    let at_site = a.client().await?;
    eventually(
        Duration::from_secs(10),
        "a message from the site reaching the hub",
        async || {
            at_site
                .publish("edge.tls.ping", "hello".into())
                .await
                .ok()?;
            at_site.flush().await.ok()?;
            let m = tokio::time::timeout(Duration::from_millis(200), pings.next())
                .await
                .ok()??;
            (&m.payload[..] == b"hello").then_some(())
        },
    )
    .await?;

    // `--js-domain` must be the server's: a site process claiming the hub's
    // domain is refused at connect, with both names.
    let (code, _, err) = cli(a, &["get", "workloads", "--js-domain", "hub"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains("--js-domain is `hub`") && err.contains("`a`"),
        "{err}"
    );
    // A reader makes no bucket (it would stand where the mirror goes).
    let (code, _, err) = cli(a, &["get", "workloads", "--js-domain", "a"])?;
    assert_ne!(code, 0);
    assert!(err.contains("trellis mirror"), "{err}");

    // `trellis mirror` takes only a mirror of the hub's for one: a bucket of
    // the site's own under the name is refused, and left alone.
    let js_site = jetstream::new(at_site.clone());
    js_site
        .create_key_value(jetstream::kv::Config {
            bucket: "trellis_default_signatures".into(),
            ..Default::default()
        })
        .await?;
    let (code, _, err) = cli(a, &["mirror", "--hub-domain", "hub", "--js-domain", "a"])?;
    assert_ne!(code, 0);
    assert!(
        err.contains("KV_trellis_default_signatures") && err.contains("no mirror"),
        "{err}"
    );
    js_site
        .delete_key_value("trellis_default_signatures")
        .await?;
    ok(a, &["mirror", "--hub-domain", "hub", "--js-domain", "a"])?;
    let again = ok(a, &["mirror", "--hub-domain", "hub", "--js-domain", "a"])?;
    assert_eq!(again.matches("mirrored already").count(), 5, "{again}");
    ok(a, &["get", "workloads", "--js-domain", "a"])?;

    // A scheduler at the site would lead over a read-only copy: refused.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["scheduler", "--nats", &a.url, "--js-domain", "a"])
        .args(a.auth("scheduler", "scheduler")?)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("read-only mirror"), "{err}");

    // Only the operator may call the hub's JetStream from a site.
    let host = a.client_as("host", "host").await?;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        host.request("$JS.hub.API.INFO", "".into()),
    )
    .await;
    a.refused("Publish", "$JS.hub.API.INFO")?;
    Ok(())
}
