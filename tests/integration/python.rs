//! A second guest language: a componentize-py component runs unchanged, bare or from a manifest.

use std::process::Command;

use crate::support::{Dev, TestResult, get, post, repo, scratch};

/// Builds (or finds cached) the Python component `name`; the script installs componentize-py.
pub fn python_component(name: &str) -> Result<std::path::PathBuf, String> {
    let script = repo().join("tests/components/python/build");
    let out = Command::new(&script)
        .arg(name)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(path.into())
}

#[tokio::test]
async fn a_componentize_py_component_serves_http_bare_and_configured() -> TestResult {
    let wasm = python_component("hello")?;

    let bare = Dev::start(&wasm)?;
    let reply = get(bare.addr, "localhost", "/from/python?q=1").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "hello from python: GET /from/python?q=1 (0 bytes)\n")
    );
    drop(bare);

    let dir = scratch("python")?;
    let manifest = dir.join("workload.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: py\ncomponents:\n  app:\n    source: {}\n    config:\n      greeting: bonjour\n    bindings:\n      \"wasi:*\": host\nroutes:\n  - path: /\n    component: app\n",
            wasm.display()
        ),
    )?;
    let dev = Dev::start(&manifest)?;
    let reply = post(dev.addr, "/upload", vec![b'x'; 100_000]).await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "bonjour from python: OTHER /upload (100000 bytes)\n")
    );
    Ok(())
}
