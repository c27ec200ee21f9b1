//! Named interfaces: one component's `wasi:keyvalue/store` bound twice, by the bucket
//! identifier it opens, to two backends (the in-memory store and keyvalue-nats).

use std::net::SocketAddr;
use std::time::Duration;

use crate::lattice::{Nats, host, keyvalue_provider};
use crate::python::python_component;
use crate::support::{Reply, TestResult, post, scratch};

/// POST with a client-side bound, so a hang fails the test instead of stalling it.
async fn bump(addr: SocketAddr, path: &str) -> Result<Reply, Box<dyn std::error::Error>> {
    tokio::time::timeout(Duration::from_secs(10), post(addr, path, Vec::new()))
        .await
        .map_err(|_| "the request hung")?
}

fn manifest(wasm: &std::path::Path, extra_binding: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1
kind: Workload
name: named
components:
  app:
    source: {}
    bindings:
      wasi:*: host
      wasi:keyvalue/store#shared: {{provider: kv, config: {{bucket: shareddata}}}}
      {extra_binding}
routes:
  - component: app
",
        wasm.display()
    )
}

#[tokio::test]
async fn two_named_keyvalue_bindings_reach_two_backends() -> TestResult {
    let wasm = python_component("buckets")?;
    let nats = Nats::start("named")?;
    let mut provider = keyvalue_provider(&nats, "kv")?;
    let dir = scratch("named")?;
    let file = dir.join("named.yaml");
    std::fs::write(&file, manifest(&wasm, ""))?;

    let h = host(&nats, &[&file], &[])?;
    for n in 1..=2 {
        let reply = bump(h.addr, "/shared/hits").await?;
        assert_eq!((reply.status, reply.body), (200, n.to_string()));
    }
    let reply = bump(h.addr, "/local/hits").await?;
    assert_eq!((reply.status, reply.body), (200, "1".to_string()));

    // A new host: the provider's bucket kept its count, the host's memory did not.
    drop(h);
    let h = host(&nats, &[&file], &[])?;
    let reply = bump(h.addr, "/shared/hits").await?;
    assert_eq!((reply.status, reply.body), (200, "3".to_string()));
    let reply = bump(h.addr, "/local/hits").await?;
    assert_eq!((reply.status, reply.body), (200, "1".to_string()));

    // The data sits in provider `kv`'s own store, under this workload and the
    // bucket the binding's config names; the host-bound one never got there.
    let js = async_nats::jetstream::new(nats.client().await?);
    let store = js.get_key_value("trellis_default_data_kv").await?;
    let keys: Vec<String> = futures::TryStreamExt::try_collect(store.keys().await?).await?;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("named.shareddata."), "{keys:?}");

    // Without the provider only the named binding fails; the other keeps working.
    provider.kill();
    let reply = bump(h.addr, "/shared/hits").await?;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("provider `kv`"), "{}", reply.body);
    let reply = bump(h.addr, "/local/hits").await?;
    assert_eq!((reply.status, reply.body), (200, "2".to_string()));
    Ok(())
}

#[tokio::test]
async fn a_name_on_an_interface_without_instances_is_refused() -> TestResult {
    let wasm = python_component("buckets")?;
    let nats = Nats::start("named-bad")?;
    let _provider = keyvalue_provider(&nats, "kv")?;
    let dir = scratch("named-bad")?;
    let file = dir.join("bad.yaml");
    std::fs::write(&file, manifest(&wasm, "wasi:config/store#x: host"))?;
    let err = host(&nats, &[&file], &[]).err().ok_or("the host started")?;
    assert!(
        err.contains("binding `wasi:config/store#x` names an instance of `wasi:config/store`, but only these interfaces have named instances: wasi:keyvalue/store"),
        "{err}"
    );
    assert!(err.contains("bad.yaml:10:"), "{err}");
    Ok(())
}

#[tokio::test]
async fn oversized_values_get_a_clear_error_and_the_provider_keeps_serving() -> TestResult {
    let wasm = python_component("buckets")?;
    let nats = Nats::start("oversized")?;
    let mut provider = keyvalue_provider(&nats, "kv")?;
    let dir = scratch("oversized")?;
    let file = dir.join("named.yaml");
    std::fs::write(&file, manifest(&wasm, ""))?;
    let h = host(&nats, &[&file], &[])?;

    // Just under and well over the server's 1 MiB message limit.
    let fits = vec![b'a'; 512 * 1024];
    let reply = crate::support::put(h.addr, "/shared/fits", fits.clone()).await?;
    assert_eq!(
        (reply.status, reply.body),
        (200, format!("stored {} bytes\n", fits.len()))
    );
    let reply = crate::support::get(h.addr, "localhost", "/shared/fits").await?;
    assert_eq!(reply.body.len(), fits.len());

    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        crate::support::put(h.addr, "/shared/huge", vec![b'b'; 3 << 20]),
    )
    .await
    .map_err(|_| "the oversized request hung")??;
    // The 3 MiB crossed wRPC (the transport splits it); the provider refuses what
    // JetStream cannot hold and says why.
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply.body.contains("the value for key `huge` is 3145728 bytes; this NATS server takes at most 1048576 bytes per value"),
        "{}",
        reply.body
    );

    // Nothing was lost: the provider and the host serve the next calls.
    let reply = bump(h.addr, "/shared/hits").await?;
    assert_eq!((reply.status, reply.body), (200, "1".to_string()));
    assert!(!provider.stderr_text().contains("panicked"));
    Ok(())
}
