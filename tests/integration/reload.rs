//! `trellis dev` reloads on change and shuts down gracefully.

use std::time::Duration;

use crate::support::{Dev, TestResult, eventually, get, repo, scratch};

fn manifest(path: &str, hello: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: live\ncomponents:\n  web:\n    source: {hello}\n    bindings: {{wasi:*: host}}\nroutes:\n  - {{component: web, path: {path}}}\n"
    )
}

async fn wait_for(addr: std::net::SocketAddr, path: &str, status: u16) -> Result<(), String> {
    eventually(
        Duration::from_secs(10),
        &format!("{path} answers {status}"),
        async || {
            let got = get(addr, "localhost", path).await.ok()?.status;
            (got == status).then_some(())
        },
    )
    .await
}

#[tokio::test]
async fn edits_reload_and_broken_versions_keep_the_old_one() -> TestResult {
    let dir = scratch("reload")?;
    let hello = repo()
        .join("tests/components/hello.wat")
        .display()
        .to_string();
    let file = dir.join("workload.yaml");
    std::fs::write(&file, manifest("/one", &hello))?;
    let dev = Dev::start(&file)?;
    assert_eq!(get(dev.addr, "localhost", "/one").await?.status, 200);

    std::fs::write(&file, manifest("/two", &hello))?;
    wait_for(dev.addr, "/two", 200).await?;
    assert_eq!(get(dev.addr, "localhost", "/one").await?.status, 404);

    std::fs::write(
        &file,
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: live\ncomponents: {web: {sorce: x}}\n",
    )?;
    let mut seen = String::new();
    eventually(
        Duration::from_secs(5),
        "the broken version is reported",
        async || {
            seen.push_str(&dev.stderr());
            seen.contains("reload failed, still serving the previous version of `live`")
                .then_some(())
        },
    )
    .await?;
    assert_eq!(get(dev.addr, "localhost", "/two").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() -> TestResult {
    let dev = Dev::start(&repo().join("tests/manifests/limits.yaml"))?;
    // The loop request takes its whole 1s timeout; SIGTERM arrives in the middle,
    // once a second one has been refused (so the first surely holds the slot).
    let (refused, _, in_flight) = crate::limits::two_loops(dev.addr).await?;
    assert_eq!(refused.status, 503, "{}", refused.body);
    let status = tokio::task::spawn_blocking(move || dev.terminate()).await??;
    assert!(status.success(), "trellis exited with {status}");
    assert_eq!(in_flight.await??.status, 504);
    Ok(())
}

#[tokio::test]
async fn a_reload_keeps_the_workloads_in_memory_data() -> TestResult {
    let dir = scratch("reload-data")?;
    let examples = repo().join("examples/counter");
    for file in ["workload.yaml", "api.wat", "greeter.wat"] {
        std::fs::copy(examples.join(file), dir.join(file))?;
    }
    let file = dir.join("workload.yaml");
    let dev = Dev::start(&file)?;
    for n in 1..=2 {
        let reply = get(dev.addr, "localhost", "/").await?;
        assert_eq!(
            reply.body,
            format!("Hello, trellis! You are visitor #{n}.\n")
        );
    }
    // A new version of the same workload: the count goes on.
    let text = std::fs::read_to_string(&file)?;
    std::fs::write(&file, text.replace("memory: 16MiB", "memory: 17MiB"))?;
    let mut seen = String::new();
    eventually(
        Duration::from_secs(10),
        "the edit is reloaded",
        async || {
            seen.push_str(&dev.stderr());
            seen.contains("reloaded").then_some(())
        },
    )
    .await?;
    let reply = get(dev.addr, "localhost", "/").await?;
    assert_eq!(reply.body, "Hello, trellis! You are visitor #3.\n");
    Ok(())
}
