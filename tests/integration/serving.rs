//! Serving HTTP: components answer, routes route, both protocols work.

use crate::support::{Dev, TestResult, get, get_h2, repo};

#[tokio::test]
async fn a_bare_component_answers_on_every_path() -> TestResult {
    let dev = Dev::start(&repo().join("tests/components/hello.wat"))?;
    for path in ["/", "/any/where?x=1"] {
        let reply = get(dev.addr, "localhost", path).await?;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "hello from trellis\n")
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_example_counts_in_keyvalue_and_greets_through_a_link() -> TestResult {
    let dev = Dev::start(&repo().join("examples/counter/workload.yaml"))?;
    for n in 1..=3 {
        let reply = get(dev.addr, "localhost", "/").await?;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            format!("Hello, trellis! You are visitor #{n}.\n")
        );
    }
    Ok(())
}

#[tokio::test]
async fn h2c_and_http1_share_the_listener() -> TestResult {
    let dev = Dev::start(&repo().join("tests/components/hello.wat"))?;
    let reply = get_h2(dev.addr, "/").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "hello from trellis\n")
    );
    Ok(())
}

#[tokio::test]
async fn routes_match_host_and_path_and_the_rest_is_404() -> TestResult {
    let dev = Dev::start(&repo().join("tests/manifests/limits.yaml"))?;
    assert_eq!(get(dev.addr, "hello.example", "/").await?.status, 200);
    assert_eq!(
        get(dev.addr, "hello.example:8000", "/deep/path")
            .await?
            .status,
        200
    );
    assert_eq!(
        get(dev.addr, "other.example", "/hello/x").await?.status,
        200
    );
    let missing = get(dev.addr, "other.example", "/nothing").await?;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        "no route for host `other.example` and path `/nothing`\n"
    );
    // `/hellox` is not under the `/hello` prefix.
    assert_eq!(get(dev.addr, "other.example", "/hellox").await?.status, 404);
    Ok(())
}

#[tokio::test]
async fn a_thousand_concurrent_requests_all_succeed() -> TestResult {
    let dev = Dev::start(&repo().join("tests/manifests/limits.yaml"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let addr = dev.addr;
        tasks.spawn(async move {
            get(addr, "localhost", "/hello")
                .await
                .map(|r| r.status)
                .map_err(|e| e.to_string())
        });
    }
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result??, 200);
        ok += 1;
    }
    assert_eq!(ok, 1000);
    Ok(())
}
