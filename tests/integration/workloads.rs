//! `workload` bindings: a component on host B calls an export that a workload on host
//! A serves over wRPC, and a dead or stalled callee is an error, never a hang.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use crate::lattice::{Nats, host};
use crate::support::{Reply, TestResult, get, repo};

async fn visit(
    addr: std::net::SocketAddr,
) -> Result<(Reply, Duration), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(10), get(addr, "localhost", "/"))
        .await
        .map_err(|_| "the request hung")??;
    Ok((reply, start.elapsed()))
}

#[tokio::test]
async fn a_workload_on_one_host_calls_an_export_served_on_another() -> TestResult {
    let nats = Nats::start("workloads")?;
    let examples = repo().join("examples/counter");
    let mut a = host(&nats, &[&examples.join("greetings.yaml")], &[])?;
    let mut b = host(&nats, &[&examples.join("distributed.yaml")], &[])?;
    for n in 1..=3 {
        let (reply, _) = visit(b.addr).await?;
        assert_eq!(
            (reply.status, reply.body),
            (200, format!("Hello, trellis! You are visitor #{n}.\n"))
        );
    }

    // Garbage straight to the export's subject: host A shrugs it off and keeps serving.
    let client = nats.client().await?;
    let subject =
        "trellis.default.workload.greetings.wrpc.0.0.1.trellis:example/greeter@0.1.0.greet";
    for payload in [&b""[..], b"\xff\xff\xff\xff\xff", &[0u8; 4096]] {
        client.publish(subject, payload.to_vec().into()).await?;
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            client.request(subject, payload.to_vec().into()),
        )
        .await;
    }
    client.flush().await?;
    let (reply, _) = visit(b.addr).await?;
    assert_eq!(
        (reply.status, reply.body),
        (200, "Hello, trellis! You are visitor #4.\n".to_string())
    );

    // Host A dies: host B's requests fail at once with a 5xx naming the callee.
    a.kill();
    let (reply, took) = visit(b.addr).await?;
    assert!(reply.status >= 500, "{} {}", reply.status, reply.body);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(
        reply.body.contains("workload `greetings`"),
        "{}\n{}",
        reply.body,
        b.stderr_text()
    );

    // A comes back: B recovers without a restart.
    let _a = host(&nats, &[&examples.join("greetings.yaml")], &[])?;
    let (reply, _) = visit(b.addr).await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    Ok(())
}

#[tokio::test]
async fn a_callee_that_never_answers_times_out() -> TestResult {
    let nats = Nats::start("stalled")?;
    // Something takes the calls and never replies.
    let stall = nats.client().await?;
    let mut calls = stall
        .subscribe("trellis.default.workload.greetings.>")
        .await?;
    stall.flush().await?;
    let b = host(
        &nats,
        &[&repo().join("examples/counter/distributed.yaml")],
        &[],
    )?;
    let (reply, took) = visit(b.addr).await?;
    assert!(reply.status >= 500, "{} {}", reply.status, reply.body);
    assert!(
        reply.body.contains("did not answer") && reply.body.contains("within 1s"),
        "{}",
        reply.body
    );
    // The binding's 1 s bound, not the component's 2 s timeout, ended it.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "took {took:?}"
    );
    assert!(calls.next().await.is_some(), "the call never reached NATS");
    Ok(())
}
