//! An export call past the component's concurrency limit fails at once, over
//! both transports, instead of leaving its caller to wait out a timeout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use trellis_lattice::lean::ERROR_KIND_HEADER;
use wrpc_transport::Invoke as _;

use crate::lattice::{Nats, host};
use crate::support::{TestResult, eventually, repo};

const INSTANCE: &str = "trellis:example/greeter@0.1.0";
const LEAN: &str = "trellis.default.workload.stuck.rr.trellis:example/greeter@0.1.0.greet";

/// `greet("x")` in the wRPC value encoding.
fn params() -> Bytes {
    Bytes::from_static(&[1, b'x'])
}

fn error_kind(message: &async_nats::Message) -> Option<String> {
    let headers = message.headers.as_ref()?;
    Some(headers.get(ERROR_KIND_HEADER)?.as_str().to_string())
}

#[tokio::test]
async fn an_export_at_its_concurrency_limit_refuses_at_once() -> TestResult {
    let nats = Nats::start("busy")?;
    let _host = host(
        &nats,
        &[&repo().join("tests/manifests/stuck-greetings.yaml")],
        &[],
    )?;
    // The caller is a host: only hosts may call workload exports.
    let client = nats.client_as("host", "caller").await?;
    let observer = nats.client().await?;
    let mut beats = observer
        .subscribe("trellis.default.evt.host.*.heartbeat")
        .await?;
    observer.flush().await?;

    // One call takes the only slot and spins until the component's 3 s timeout.
    let holder = {
        let client = client.clone();
        tokio::spawn(async move { client.request(LEAN, params()).await })
    };
    eventually(
        Duration::from_secs(5),
        "the first call holds the slot",
        async || {
            let beat = beats.next().await?;
            let beat: serde_json::Value = serde_json::from_slice(&beat.payload).ok()?;
            (beat["instances_in_use"] == 1).then_some(())
        },
    )
    .await?;

    // trellis-rr/1: a typed `busy` reply, long before any timeout.
    let start = Instant::now();
    let reply = client.request(LEAN, params()).await?;
    let took = start.elapsed();
    assert_eq!(error_kind(&reply).as_deref(), Some("busy"), "{reply:?}");
    assert!(took < Duration::from_millis(500), "took {took:?}");

    // wrpc-transport-nats carries no error: the results end empty, at once.
    let standard =
        wrpc_transport_nats::Client::new(client.clone(), "trellis.default.workload.stuck", None)
            .await?;
    let start = Instant::now();
    let no_paths: [[Option<usize>; 0]; 0] = [];
    let (mut tx, mut rx) = standard
        .invoke(None, INSTANCE, "greet", params(), no_paths)
        .await?;
    tx.shutdown().await?;
    let mut results = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), rx.read_to_end(&mut results)).await;
    let took = start.elapsed();
    assert!(read.is_ok(), "the refused call hung");
    assert!(results.is_empty(), "a refused call returned {results:?}");
    assert!(took < Duration::from_millis(500), "took {took:?}");

    // The holder itself ends at its timeout with a typed reply, not silence.
    let held = holder.await??;
    assert_eq!(error_kind(&held).as_deref(), Some("timed-out"), "{held:?}");
    Ok(())
}
