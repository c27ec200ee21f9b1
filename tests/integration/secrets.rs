//! Secrets end to end on a secured lattice: sealed by the CLI to the store's
//! key, re-sealed by the store to the host's xkey, revealed only to the
//! component whose manifest names them; never plain text on NATS or in a log.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;

use crate::lattice::{Nats, cli, host_in_env, scheduler_with};
use crate::python::python_component;
use crate::support::{TestResult, eventually, get, scratch};

const LATTICE_VALUE: &str = "lattice-PLAINTEXT-7f3a09";
const ENV_VALUE: &str = "env-PLAINTEXT-91c2d4";

/// `trellis secret put NAME` with `value` on stdin, as the operator.
fn put_secret(nats: &Nats, name: &str, value: &str) -> Result<String, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["secret", "put", name, "--nats", &nats.url])
        .args(nats.auth("operator", "operator")?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    writeln!(stdin, "{value}").map_err(|e| e.to_string())?;
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(text);
    }
    Ok(text)
}

/// A manifest of the `secrets` component as workload `name`, with `secrets`
/// (YAML flow mapping).
fn manifest(test: &str, name: &str, secrets: &str) -> Result<std::path::PathBuf, String> {
    let wasm = python_component("vault")?;
    let dir = scratch(test).map_err(|e| e.to_string())?;
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: {name}\ncomponents:\n  app:\n    source: {}\n    secrets: {secrets}\n    bindings:\n      wasi:*: host\n      trellis:secrets: host\nroutes:\n  - component: app\n",
            wasm.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(file)
}

#[tokio::test]
async fn a_component_reads_secrets_that_never_cross_nats_in_plain_text() -> TestResult {
    let nats = Nats::start("secrets")?;
    // A subscriber with full access records every message from here on.
    let observer = nats.client().await?;
    let mut everything = observer.subscribe(">").await?;
    observer.flush().await?;
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(message) = everything.next().await {
                let mut bytes = message.subject.as_bytes().to_vec();
                if let Some(headers) = &message.headers {
                    bytes.extend(format!("{headers:?}").into_bytes());
                }
                bytes.extend_from_slice(&message.payload);
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(bytes);
            }
        })
    };

    let key = nats.lattice_file("scheduler.xk")?;
    let mut store = scheduler_with(&nats, &["--secrets-key", &key.to_string_lossy()])?;
    store
        .process
        .wait_for("secret store serving", Duration::from_secs(10))?;
    let put = put_secret(&nats, "api-token", LATTICE_VALUE)?;
    assert!(put.contains("secret/api-token stored"), "{put}");

    let file = manifest(
        "secrets",
        "vault",
        "{api-token: lattice, from-env: {env: TRELLIS_TEST_SECRET}}",
    )?;
    let auth = nats.auth("host", "vault-host")?;
    let options: Vec<&str> = auth.iter().map(String::as_str).collect();
    let mut h = host_in_env(&nats, &[], &options, &[("TRELLIS_TEST_SECRET", ENV_VALUE)])?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &file.to_string_lossy()])?;
    assert_eq!(code, 0, "{err}");
    let reply = eventually(Duration::from_secs(60), "the workload serves", async || {
        let reply = get(h.addr, "localhost", "/api-token").await.ok()?;
        (reply.status == 200).then_some(reply)
    })
    .await?;
    assert_eq!(reply.body, format!("secret: {LATTICE_VALUE}\n"));
    let reply = get(h.addr, "localhost", "/from-env").await?;
    assert_eq!(reply.body, format!("secret: {ENV_VALUE}\n"));
    // A name the manifest does not give it.
    let reply = get(h.addr, "localhost", "/other").await?;
    assert!(
        reply.body.starts_with(
            "error: Error_NotFound: the manifest gives this component no secret `other`"
        ),
        "{}",
        reply.body
    );

    // What the operator reads back holds names only.
    let (_, workloads, _) = cli(&nats, &["get", "workloads", "-o", "json"])?;
    let (_, described, _) = cli(&nats, &["describe", "workload", "vault", "-o", "json"])?;
    assert!(described.contains("\"vault\""), "{described}");
    recorder.abort();
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(seen.len() > 20, "the observer saw {} messages", seen.len());
    let logs = [
        h.stderr_text(),
        store.process.stderr_text(),
        put,
        workloads,
        described,
    ];
    for value in [LATTICE_VALUE, ENV_VALUE] {
        let leaked = seen
            .iter()
            .filter(|m| m.windows(value.len()).any(|w| w == value.as_bytes()))
            .count();
        assert_eq!(
            leaked, 0,
            "{leaked} NATS messages carried `{value}` in plain text"
        );
        for log in &logs {
            assert!(!log.contains(value), "a log holds `{value}`:\n{log}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_workload_whose_secret_cannot_be_resolved_does_not_start() -> TestResult {
    let nats = Nats::start("secrets-missing")?;
    let key = nats.lattice_file("scheduler.xk")?;
    let mut store = scheduler_with(&nats, &["--secrets-key", &key.to_string_lossy()])?;
    store
        .process
        .wait_for("secret store serving", Duration::from_secs(10))?;
    let auth = nats.auth("host", "h1")?;
    let options: Vec<&str> = auth.iter().map(String::as_str).collect();
    let h = host_in_env(&nats, &[], &options, &[])?;
    let file = manifest(
        "secrets-missing",
        "locked",
        "{token: {lattice: absent}, from-env: {env: TRELLIS_UNSET_VARIABLE}}",
    )?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &file.to_string_lossy()])?;
    assert_eq!(code, 0, "{err}");
    // The 18 MB Python component is fetched and compiled before its secrets fail.
    let error = eventually(Duration::from_secs(90), "the start fails", async || {
        let (_, out, _) = cli(&nats, &["describe", "workload", "locked", "-o", "json"]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v["status"]["last_error"].as_str().map(String::from)
    })
    .await?;
    assert!(
        error.contains("secret `absent` is not in the lattice's secret store"),
        "{error}"
    );
    assert!(
        error.contains("no environment variable `TRELLIS_UNSET_VARIABLE`"),
        "{error}"
    );
    assert_eq!(get(h.addr, "localhost", "/token").await?.status, 404);

    // The store hands a secret only to what the desired state names.
    put_secret(&nats, "absent", "now-present")?;
    let host_key = trellis_lattice::read_xkey(&nats.lattice_file("host-h1.xk")?)?;
    let client = nats.client_as("host", "h1").await?;
    let asked = trellis_lattice::fetch_secret(
        &client,
        &trellis_lattice::Subjects::new("default"),
        &nats.host_id("h1")?,
        &host_key,
        "locked",
        "someone-else",
        "absent",
    )
    .await;
    match asked {
        Err(trellis_lattice::SecretError::NotAllowed { why, .. }) => {
            assert!(
                why.contains("gives component `someone-else` no secret"),
                "{why}"
            )
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    // Another host's subject is closed to this one.
    let other = nats.client_as("host", "h2").await?;
    let forged = trellis_lattice::fetch_secret(
        &other,
        &trellis_lattice::Subjects::new("default"),
        &nats.host_id("h1")?,
        &host_key,
        "locked",
        "app",
        "absent",
    )
    .await;
    assert!(forged.is_err(), "a host asked on another host's subject");
    nats.refused("Publish", "trellis.default.secrets.get.")?;
    Ok(())
}

#[tokio::test]
async fn a_secret_in_binding_config_is_sealed_to_the_provider() -> TestResult {
    const BUCKET: &str = "vaultbucket77";
    let nats = Nats::start("secrets-config")?;
    let _kv = crate::lattice::keyvalue_provider(&nats, "keyvalue")?;
    let observer = nats.client().await?;
    // The calls themselves (trellis-rr/1, one message each).
    let mut calls = observer
        .subscribe("trellis.default.provider.keyvalue.rr.>")
        .await?;
    observer.flush().await?;
    // The counter, its bucket name passed as a secret from the host's environment.
    let dir = scratch("secrets-config")?;
    let file = dir.join("counter.yaml");
    let text = crate::support::example_manifest("lattice.yaml")?
        .replace(
            "    bindings:\n      wasi:io: host",
            "    secrets:\n      bucket-name: {env: TRELLIS_BUCKET_SECRET}\n    bindings:\n      wasi:io: host",
        )
        .replace("bucket: visits ", "bucket: {secret: bucket-name} ");
    assert!(text.contains("{secret: bucket-name}"), "{text}");
    std::fs::write(&file, text)?;
    let auth = nats.auth("host", "h1")?;
    let options: Vec<&str> = auth.iter().map(String::as_str).collect();
    let mut h = host_in_env(
        &nats,
        &[&file],
        &options,
        &[("TRELLIS_BUCKET_SECRET", BUCKET)],
    )?;
    for n in 1..=2 {
        let reply = get(h.addr, "localhost", "/").await?;
        assert_eq!(
            reply.body,
            format!("Hello, trellis! You are visitor #{n}.\n")
        );
    }
    // Every call carried the value sealed, never in plain text ...
    let mut seen = 0;
    while let Ok(Some(call)) = tokio::time::timeout(Duration::from_millis(300), calls.next()).await
    {
        let headers = call.headers.ok_or("a call without headers")?;
        let sealed = headers
            .get(trellis_lattice::headers::SECRETS)
            .ok_or("a call without its sealed config")?;
        assert!(!sealed.as_str().contains(BUCKET));
        let config = headers
            .get(trellis_lattice::headers::CONFIG)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        assert!(!config.contains(BUCKET), "{config}");
        // (Later calls pass the bucket handle the provider made from the
        // value: its own use of it, not the host's transport.)
        if call.subject.ends_with(".open") {
            assert!(!String::from_utf8_lossy(&call.payload).contains(BUCKET));
        }
        seen += 1;
    }
    assert!(seen >= 2, "saw {seen} calls");
    // ... and the provider opened it: the data sits under that bucket.
    let js = async_nats::jetstream::new(nats.client().await?);
    let store = js.get_key_value("trellis_default_data_keyvalue").await?;
    let keys: Vec<String> = futures::TryStreamExt::try_collect(store.keys().await?).await?;
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("counter.{BUCKET}."))),
        "{keys:?}"
    );
    assert!(!h.stderr_text().contains(BUCKET));
    Ok(())
}
