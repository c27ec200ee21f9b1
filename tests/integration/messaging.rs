//! The messaging-nats provider, reached through the host's dynamic wRPC polyfill: a
//! Python component publishes and requests on core NATS, handles the subjects its
//! binding subscribes to, and consumes a JetStream stream.

use std::time::Duration;

use futures::StreamExt as _;

use crate::lattice::{Nats, host, provider};
use crate::python::python_component;
use crate::support::{Reply, TestResult, eventually, post, scratch};

async fn send(
    addr: std::net::SocketAddr,
    path: &str,
    body: &[u8],
) -> Result<Reply, Box<dyn std::error::Error>> {
    tokio::time::timeout(Duration::from_secs(10), post(addr, path, body.to_vec()))
        .await
        .map_err(|_| "the request hung")?
}

#[tokio::test]
async fn components_publish_and_request_through_the_provider() -> TestResult {
    let nats = Nats::start("messaging")?;
    let mut messaging = provider(&nats, "trellis-messaging-nats", "messaging")?;
    let file = messenger("messaging", "{}")?;
    let h = host(&nats, &[&file], &[])?;

    // Publish: the message reaches a plain NATS subscriber.
    let client = nats.client().await?;
    let mut orders = client.subscribe("orders.new").await?;
    client.flush().await?;
    let reply = send(h.addr, "/publish/orders.new", b"one pizza").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "published"));
    let message = tokio::time::timeout(Duration::from_secs(5), orders.next())
        .await?
        .ok_or("no message")?;
    assert_eq!(&message.payload[..], b"one pizza");

    // Request: a plain NATS responder answers the component.
    let mut upper = client.subscribe("svc.upper").await?;
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(m) = upper.next().await {
            if let Some(reply) = m.reply {
                let body = m.payload.to_ascii_uppercase();
                let _ = responder.publish(reply, body.into()).await;
            }
        }
    });
    client.flush().await?;
    let reply = send(h.addr, "/request/svc.upper", b"abc").await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ABC"));

    // The provider's errors reach the component as values.
    let reply = send(h.addr, "/request/svc.nobody", b"?").await?;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(
        reply.body.contains("nobody answers on `svc.nobody`"),
        "{}",
        reply.body
    );
    // A subject the lattice did not grant the provider: refused at once, by name.
    let reply = send(h.addr, "/request/nobody.home", b"?").await?;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("`nobody.home` is outside this provider's application subjects"),
        "{}",
        reply.body
    );
    let reply = send(
        h.addr,
        "/publish/trellis.default.provider.keyvalue.info",
        b"x",
    )
    .await?;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.body.contains("is reserved"), "{}", reply.body);

    // Without the provider the polyfilled call traps at once: a 503 (nobody
    // serves it, see `CallError::http_status`) naming it.
    messaging.kill();
    let reply = send(h.addr, "/publish/orders.new", b"x").await?;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply.body.contains("provider `messaging`"),
        "{}",
        reply.body
    );
    Ok(())
}

/// The messenger component as workload `messenger`, its messaging binding's
/// config `config` (YAML flow mapping), its handler exported; `test` names the
/// scratch folder the manifest is written to.
pub(crate) fn messenger(
    test: &str,
    config: &str,
) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let wasm = python_component("messenger")?;
    let dir = scratch(test)?;
    let file = dir.join("messenger.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: trellis.dev/v1alpha1
kind: Workload
name: messenger
components:
  app:
    source: {}
    bindings:
      wasi:*: host
      trellis:messaging: {{provider: messaging, timeout: 2s, config: {config}}}
exports:
  - interface: trellis:messaging/handler@0.1.0
    component: app
routes:
  - component: app
",
            wasm.display()
        ),
    )?;
    Ok(file)
}

#[tokio::test]
async fn subscribed_subjects_reach_the_handler_once_each() -> TestResult {
    let nats = Nats::start("delivery")?;
    let mut replicas = [
        provider(&nats, "trellis-messaging-nats", "messaging")?,
        provider(&nats, "trellis-messaging-nats", "messaging")?,
    ];
    let file = messenger("delivery", "{subscribe: \"greet.*, fail.*\"}")?;
    let _h = host(&nats, &[&file], &[])?;
    let client = nats.client().await?;

    // The providers learn of the binding through its link; wait until one answers.
    let answered = eventually(
        Duration::from_secs(30),
        "a handler answers greet.world",
        async || {
            let reply = tokio::time::timeout(
                Duration::from_millis(200),
                client.request("greet.world", "trellis".into()),
            )
            .await;
            Some(reply.ok()?.ok()?.payload)
        },
    )
    .await?;
    assert_eq!(&answered[..], b"hello, trellis (world)");

    // Both replicas subscribe in one queue group: each message is handled once.
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    for n in 0..20 {
        client
            .publish_with_reply(format!("greet.n{n}"), inbox.clone(), format!("{n}").into())
            .await?;
    }
    client.flush().await?;
    let mut got = Vec::new();
    while let Ok(Some(reply)) = tokio::time::timeout(Duration::from_secs(2), replies.next()).await {
        got.push(String::from_utf8_lossy(&reply.payload).into_owned());
    }
    got.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("hello, {n} (n{n})")).collect();
    expected.sort();
    assert_eq!(got, expected);

    // A handler's error is logged by the provider that delivered it; nobody replies.
    let failed = tokio::time::timeout(
        Duration::from_secs(3),
        client.request("fail.now", "x".into()),
    )
    .await;
    assert!(!matches!(failed, Ok(Ok(_))), "a failed message got a reply");
    let logged = replicas.iter_mut().any(|p| {
        p.wait_for("refusing fail.now", Duration::from_secs(1))
            .is_ok()
    });
    assert!(logged, "no provider logged the handler's error");
    Ok(())
}

/// POSTs `body` to `path` and returns the reply's body, checking its status.
async fn js(
    addr: std::net::SocketAddr,
    path: &str,
    body: &str,
    status: u16,
) -> Result<String, Box<dyn std::error::Error>> {
    let reply = send(addr, path, body.as_bytes()).await?;
    assert_eq!(reply.status, status, "{path}: {}", reply.body);
    Ok(reply.body)
}

/// `(sequence, delivered, body, token)` of each line a fetch returned.
fn fetched(lines: &str) -> Vec<(u64, u64, String, String)> {
    lines
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((
                f[0].parse().ok()?,
                f[1].parse().ok()?,
                f[3].to_string(),
                f[4].to_string(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn jetstream_consumers_ack_redeliver_and_replay() -> TestResult {
    let nats = Nats::start("jetstream")?;
    let _messaging = provider(&nats, "trellis-messaging-nats", "messaging")?;
    let h = host(&nats, &[&messenger("jetstream", "{streams: ORDERS}")?], &[])?;
    let client = nats.client().await?;
    let js_ctx = async_nats::jetstream::new(client.clone());
    js_ctx
        .create_stream(async_nats::jetstream::stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await?;
    for body in ["a", "b", "c"] {
        js_ctx.publish("orders.new", body.into()).await?.await?;
    }

    let created = js(h.addr, "/js/create/ORDERS/proc?ack-wait=1000", "", 200).await?;
    assert_eq!(created, "created");
    let first = fetched(&js(h.addr, "/js/fetch/ORDERS/proc?max=10", "", 200).await?);
    let seen: Vec<(u64, u64, &str)> = first.iter().map(|m| (m.0, m.1, m.2.as_str())).collect();
    assert_eq!(seen, [(1, 1, "a"), (2, 1, "b"), (3, 1, "c")]);

    // Two are acknowledged; the third comes again after the ack wait.
    for m in &first[..2] {
        assert_eq!(js(h.addr, "/js/ack", &m.3, 200).await?, "acked");
    }
    // Redelivered once its 1 s ack wait has passed; nothing comes back before.
    let again = eventually(
        Duration::from_secs(10),
        "the unacked message comes again",
        async || {
            let again = fetched(&js(h.addr, "/js/fetch/ORDERS/proc", "", 200).await.ok()?);
            (!again.is_empty()).then_some(again)
        },
    )
    .await?;
    assert_eq!(
        again.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        [(3, 2)]
    );

    // A nak hands it back at once.
    assert_eq!(js(h.addr, "/js/nak", &again[0].3, 200).await?, "naked");
    let naked = fetched(&js(h.addr, "/js/fetch/ORDERS/proc", "", 200).await?);
    assert_eq!(
        naked.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        [(3, 3)]
    );

    // Replay from sequence 2: the consumer is replaced and starts there.
    js(h.addr, "/js/create/ORDERS/proc?from=2", "", 200).await?;
    let replay = fetched(&js(h.addr, "/js/fetch/ORDERS/proc", "", 200).await?);
    assert_eq!(
        replay.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        [(2, 1), (3, 1)]
    );

    // Other workloads' consumers and the lattice's own streams are out of reach.
    // Tokens are read field by field: a consumer of workload `messenger-x`
    // is not this workload's, though its name starts with `messenger-`.
    for forged in [
        "$JS.ACK.ORDERS.other_proc.1.1.1.1.0",
        "$JS.ACK.ORDERS.messenger-x_proc.1.1.1.1.0",
        "$JS.ACK.ORDERS.x.messenger_proc.1.1.1.0",
    ] {
        let refused = js(h.addr, "/js/ack", forged, 502).await?;
        assert!(
            refused.contains("is not an ack token of this workload"),
            "{forged}: {refused}"
        );
    }
    // A stream the binding does not grant is out of reach.
    let other = js(h.addr, "/js/create/BILLING/x", "", 502).await?;
    assert!(
        other.contains("not among this binding's `streams`"),
        "{other}"
    );
    let kv = js(h.addr, "/js/create/KV_trellis_default_links/x", "", 502).await?;
    assert!(kv.contains("holds a key-value bucket"), "{kv}");
    let name = js(h.addr, "/js/create/ORDERS/bad.name", "", 502).await?;
    assert!(name.contains("is not a valid name"), "{name}");
    Ok(())
}
