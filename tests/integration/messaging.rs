//! The messaging-nats provider, reached through the host's dynamic wRPC polyfill: a
//! Python component publishes and requests on core NATS.

use std::time::Duration;

use futures::StreamExt as _;

use crate::lattice::{Nats, host, provider};
use crate::python::python_component;
use crate::support::{Reply, TestResult, post, scratch};

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
    let wasm = python_component("messenger")?;
    let nats = Nats::start("messaging")?;
    let mut messaging = provider(&nats, "trellis-messaging-nats", "messaging")?;
    let dir = scratch("messaging")?;
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
      trellis:messaging/producer: {{provider: messaging, timeout: 2s}}
routes:
  - component: app
",
            wasm.display()
        ),
    )?;
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
    let reply = send(h.addr, "/request/nobody.home", b"?").await?;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(
        reply.body.contains("nobody answers on `nobody.home`"),
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

    // Without the provider the polyfilled call traps at once: a 500 naming it.
    messaging.kill();
    let reply = send(h.addr, "/publish/orders.new", b"x").await?;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.contains("provider `messaging`"),
        "{}",
        reply.body
    );
    Ok(())
}
