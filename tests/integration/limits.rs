//! Enforced limits: a failing component gets a clear status and the rest keep serving.

use std::time::Duration;

use crate::support::{Dev, TestResult, get, repo};

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
    let addr = dev.addr;
    let looping = tokio::spawn(async move {
        get(addr, "localhost", "/loop")
            .await
            .map_err(|e| e.to_string())
    });
    // While the loop spins, the healthy component answers every request.
    tokio::time::sleep(Duration::from_millis(200)).await;
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

#[tokio::test]
async fn requests_past_the_concurrency_limit_get_503_at_once() -> TestResult {
    let dev = Dev::start(&limits())?;
    let addr = dev.addr;
    let first = tokio::spawn(async move {
        get(addr, "localhost", "/loop")
            .await
            .map_err(|e| e.to_string())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The loop component allows one instance; the second request is refused, not queued.
    let second = get(dev.addr, "localhost", "/loop").await?;
    assert!(
        !first.is_finished(),
        "the refusal must come while the first request still runs"
    );
    assert_eq!(second.status, 503);
    assert!(
        second.body.contains("is at its concurrency limit of 1"),
        "{}",
        second.body
    );
    assert_eq!(first.await??.status, 504);
    Ok(())
}
