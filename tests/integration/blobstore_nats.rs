//! The blobstore-nats provider: a Python component's wasi:blobstore calls go to the
//! JetStream object store through `trellis host`, each its own process.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use crate::blobstore::{exercise, noise};
use crate::lattice::{Nats, host, provider};
use crate::python::python_component;
use crate::support::{TestResult, get, holds_for, put, scratch};

/// A manifest for the `blobs` component as workload `name`, blobstore bound to
/// the provider, serving requests for Host `route` (any Host if `None`).
fn manifest(
    dir: &std::path::Path,
    name: &str,
    route: Option<&str>,
) -> Result<std::path::PathBuf, String> {
    let wasm = python_component("blobs")?;
    let file = dir.join(format!("{name}.yaml"));
    let text = format!(
        "apiVersion: trellis.dev/v1alpha1
kind: Workload
name: {name}
components:
  app:
    source: {}
    limits: {{request-body: 128MiB}}    # the large-object test uploads 100 MiB
    bindings:
      wasi:blobstore: {{provider: blobstore, timeout: 3s}}
      wasi:*: host
routes:
  - component: app
{}",
        wasm.display(),
        route
            .map(|h| format!("    host: {h}\n"))
            .unwrap_or_default()
    );
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    Ok(file)
}

#[tokio::test]
async fn objects_live_in_the_object_store_apart_per_workload() -> TestResult {
    let nats = Nats::start("blobs")?;
    let _blobstore = provider(&nats, "trellis-blobstore-nats", "blobstore")?;
    let dir = scratch("blobstore-nats")?;
    let one = manifest(&dir, "one", None)?;
    let two = manifest(&dir, "two", Some("two"))?;
    let h = host(&nats, &[&one, &two], &[])?;
    exercise(h.addr).await?;

    // Workload `two` uses the same container name, and sees none of `one`'s objects.
    let reply = get(h.addr, "two", "/c").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, "blobstore error: container `c` does not exist\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_large_object_streams_through_without_being_held_whole() -> TestResult {
    const SIZE: usize = (100 << 20) + 7;
    let nats = Nats::start("big-blobs")?;
    let blobstore = provider(&nats, "trellis-blobstore-nats", "blobstore")?;
    let dir = scratch("blobstore-big")?;
    let h = host(&nats, &[&manifest(&dir, "big", None)?], &[])?;
    let before = (h.peak_memory()?, blobstore.peak_memory()?);

    let data = noise(SIZE);
    let reply = put(h.addr, "/c/big", data.clone()).await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, format!("stored big ({SIZE} bytes)\n").as_str())
    );
    let reply = get(h.addr, "localhost", "/c/big").await?;
    assert_eq!(
        reply.status,
        200,
        "{}",
        &reply.body[..reply.body.len().min(200)]
    );
    assert!(
        reply.body.as_bytes() == data,
        "the object came back different ({} bytes)",
        reply.body.len()
    );

    // Neither process grew by anything near the object's size.
    let after = (h.peak_memory()?, blobstore.peak_memory()?);
    let grew = (
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1),
    );
    eprintln!(
        "peak memory growth: host {} MiB, provider {} MiB",
        grew.0 >> 20,
        grew.1 >> 20
    );
    assert!(
        grew.0 < (SIZE / 4) as u64,
        "the host grew by {} MiB",
        grew.0 >> 20
    );
    assert!(
        grew.1 < (SIZE / 4) as u64,
        "the provider grew by {} MiB",
        grew.1 >> 20
    );
    Ok(())
}

#[tokio::test]
async fn an_upload_cut_off_midway_leaves_the_old_object() -> TestResult {
    let nats = Nats::start("cut-blobs")?;
    let _blobstore = provider(&nats, "trellis-blobstore-nats", "blobstore")?;
    let dir = scratch("blobstore-cut")?;
    let h = host(&nats, &[&manifest(&dir, "cut", None)?], &[])?;
    let reply = put(h.addr, "/c/doc", b"version one".to_vec()).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // A client promises 10 MB, sends 1 MB and hangs up.
    let mut socket = tokio::net::TcpStream::connect(h.addr).await?;
    socket
        .write_all(b"PUT /c/doc HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10000000\r\n\r\n")
        .await?;
    socket.write_all(&noise(1 << 20)).await?;
    socket.flush().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);

    // The half-sent body never replaces the object, and the host keeps serving.
    holds_for(
        Duration::from_secs(5),
        "the old object stays in place",
        async || {
            get(h.addr, "localhost", "/c/doc")
                .await
                .is_ok_and(|r| r.status == 200 && r.body == "version one")
        },
    )
    .await?;
    Ok(())
}
