//! Enforced limits: a failing component gets a clear status and the rest keep serving.

use std::time::Duration;

use std::time::Instant;

use crate::support::{Dev, Reply, TestResult, get, repo};

fn limits() -> std::path::PathBuf {
    repo().join("tests/manifests/limits.yaml")
}

#[tokio::test]
async fn a_trap_is_a_500_that_names_it() -> TestResult {
    let dev = Dev::start(&limits())?;
    let reply = get(dev.addr, "localhost", "/trap").await?;
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .body
            .contains("component `trap` of workload `limits` trapped"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("unreachable"), "{}", reply.body);
    assert_eq!(get(dev.addr, "localhost", "/hello").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn a_memory_hog_fails_at_its_limit() -> TestResult {
    let dev = Dev::start(&limits())?;
    let reply = get(dev.addr, "localhost", "/hog").await?;
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .body
            .contains("component `hog` exceeded its memory limit of 8 MiB"),
        "{}",
        reply.body
    );
    assert_eq!(get(dev.addr, "localhost", "/hello").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn an_infinite_loop_times_out_while_others_are_served() -> TestResult {
    let dev = Dev::start(&limits())?;
    // Once one of two loop requests is refused, the other is surely spinning.
    let (refused, _, looping) = two_loops(dev.addr).await?;
    assert_eq!(refused.status, 503, "{}", refused.body);
    // While the loop spins, the healthy component answers every request.
    for _ in 0..20 {
        assert_eq!(get(dev.addr, "localhost", "/hello").await?.status, 200);
    }
    assert!(!looping.is_finished(), "the loop should still be running");
    let reply = looping.await??;
    assert_eq!(reply.status, 504);
    assert_eq!(
        reply.body,
        "component `loop` of workload `limits` exceeded its timeout of 1s\n"
    );
    Ok(())
}

/// Sends two requests to the `loop` component (one instance at a time) at
/// once: whichever arrives second is refused. Returns (refused, held), the held
/// one still running, with the time the refusal took.
pub async fn two_loops(
    addr: std::net::SocketAddr,
) -> Result<
    (
        Reply,
        Duration,
        tokio::task::JoinHandle<Result<Reply, String>>,
    ),
    String,
> {
    let call = move || {
        tokio::spawn(async move {
            get(addr, "localhost", "/loop")
                .await
                .map_err(|e| e.to_string())
        })
    };
    let start = Instant::now();
    let (mut a, mut b) = (call(), call());
    // The refusal comes first; the other request holds the slot until its timeout.
    tokio::select! {
        refused = &mut a => Ok((refused.map_err(|e| e.to_string())??, start.elapsed(), b)),
        refused = &mut b => Ok((refused.map_err(|e| e.to_string())??, start.elapsed(), a)),
    }
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_get_503_at_once() -> TestResult {
    let dev = Dev::start(&limits())?;
    // The loop component allows one instance; the second request is refused, not queued.
    let (refused, took, held) = two_loops(dev.addr).await?;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("is at its concurrency limit of 1"),
        "{}",
        refused.body
    );
    assert!(
        took < Duration::from_millis(900),
        "the refusal took {took:?}"
    );
    assert!(
        !held.is_finished(),
        "the refusal must come while the other still runs"
    );
    assert_eq!(held.await??.status, 504);
    Ok(())
}
