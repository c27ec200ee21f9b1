//! Components from a real OCI registry and from the lattice's own store:
//! pulled by tag and by digest, pinned at apply time, uploaded by `trellis
//! apply` for hosts that share no files with the operator, verified on every
//! fetch, served from the host cache with the registry down, and refused
//! unless signed when a host requires it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::lattice::{Nats, cli, cli_in_env, host, host_in_dir, scheduler};
use crate::registry::Registry;
use crate::support::{Dev, TestResult, eventually, get, refused_with, repo, scratch};

/// The hello component, answering `text` (19 bytes, as "hello from trellis\n").
fn hello(dir: &Path, text: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    assert_eq!(text.len(), 19, "the component's body is 19 bytes");
    let wat = std::fs::read_to_string(repo().join("tests/components/hello.wat"))?
        .replace("hello from trellis\\n", &text.replace('\n', "\\n"));
    let file = dir.join(format!("{}.wat", text.split(' ').next().unwrap_or("hello")));
    std::fs::write(&file, wat)?;
    Ok(file)
}

/// A one-component workload `name` serving `/name` from `source`.
fn workload(name: &str, source: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: {name}\ncomponents:\n  app:\n    source: {source}\n    bindings:\n      \"wasi:*\": host\nroutes:\n  - path: /{name}\n    component: app\ndeploy:\n  replicas: 1\n"
    )
}

/// Runs the CLI and insists on exit code 0, returning stdout.
fn ok(nats: &Nats, args: &[&str]) -> Result<String, String> {
    let (code, out, err) = cli(nats, args)?;
    if code != 0 {
        return Err(format!("trellis {args:?} exited with {code}: {err}"));
    }
    Ok(out)
}

/// `describe workload NAME -o json`.
fn described(nats: &Nats, name: &str) -> Result<Value, String> {
    let out = ok(nats, &["describe", "workload", name, "-o", "json"])?;
    serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
}

/// Waits for `addr` to answer `path` with 200 and `body`.
async fn serves(addr: std::net::SocketAddr, path: &str, body: &str) -> Result<(), String> {
    eventually(
        Duration::from_secs(60),
        &format!("{path} to answer {body:?}"),
        async || {
            let reply = get(addr, "localhost", path).await.ok()?;
            (reply.status == 200 && reply.body == body).then_some(())
        },
    )
    .await
}

/// Waits for the scheduler to record a failed start of `name` whose error contains `needle`.
async fn fails_with(nats: &Nats, name: &str, needle: &str) -> Result<String, String> {
    let mut last = Value::Null;
    eventually(
        Duration::from_secs(60),
        &format!("{name} to fail with {needle:?}"),
        async || {
            let v = described(nats, name).ok()?;
            let error = v["status"]["last_error"].as_str().map(str::to_string);
            last = v;
            error.filter(|e| e.contains(needle))
        },
    )
    .await
    .map_err(|e| format!("{e}; last: {last}"))
}

/// The first line of `out` starting with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> Result<&'a str, String> {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .ok_or_else(|| format!("no `{prefix}` line in {out:?}"))
}

#[tokio::test]
async fn registry_components_run_by_tag_and_digest_and_from_the_cache_with_the_registry_down()
-> TestResult {
    let nats = Nats::start("oci-pull")?;
    let mut registry = Registry::start("pull")?;
    let dir = scratch("oci-pull")?;
    let file = hello(&dir, "hello from trellis\n")?;
    let tagged = registry.reference("apps/hello:v1");
    let out = ok(&nats, &["push", &file.to_string_lossy(), &tagged])?;
    let in_lattice = line(&out, "lattice://sha256:")?.to_string();
    let pinned = line(&out, "oci://")?.to_string();
    assert!(pinned.contains("/apps/hello@sha256:"), "{out}");

    // The registry's copy is the lattice's: `trellis sign` pulls it and
    // signs the same content digest.
    let signed = ok(&nats, &["sign", &pinned])?;
    let content = in_lattice.trim_start_matches("lattice://");
    assert!(
        signed.starts_with(&format!("signed {content} by U")),
        "{signed}"
    );
    // A tag is not signed: by the time hosts pull, it may name other bytes.
    let (code, _, err) = cli(&nats, &["sign", &tagged])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sign a pinned reference"), "{err}");

    let cache = dir.join("cache");
    let cache_arg = cache.to_string_lossy().to_string();
    for reference in [&tagged, &pinned] {
        let dev = Dev::start_with(Path::new(reference), &["--cache-dir", &cache_arg])?;
        serves(dev.addr, "/", "hello from trellis\n").await?;
    }
    let hex = content.trim_start_matches("sha256:");
    assert!(cache.join("artifacts/blobs/sha256").join(hex).is_file());
    // The compiled code is kept too (wasmtime's cache, under `compiled/modules`).
    let compiled = std::fs::read_dir(cache.join("compiled/modules"))?
        .flatten()
        .flat_map(|engine| {
            std::fs::read_dir(engine.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .count();
    assert!(compiled > 0, "nothing compiled was cached");

    // A host that pulls only from other registries refuses it, cached or not.
    let message = refused_with(
        Path::new(&pinned),
        &[
            "--cache-dir",
            &cache_arg,
            "--allow-registry",
            "registry.example.com",
        ],
    )?;
    assert!(
        message
            .contains("is not one this host pulls from (--allow-registry: registry.example.com)"),
        "{message}"
    );

    // With the registry gone, the pinned reference starts from the cache;
    // the tag, which only the registry can resolve, fails and says why.
    registry.stop();
    let dev = Dev::start_with(Path::new(&pinned), &["--cache-dir", &cache_arg])?;
    serves(dev.addr, "/", "hello from trellis\n").await?;
    let message = refused_with(Path::new(&tagged), &["--cache-dir", &cache_arg])?;
    assert!(message.contains("is unreachable"), "{message}");
    drop(dev);

    // A name the registry does not have says so.
    let registry = Registry::start("pull-again")?;
    let missing = registry.reference("apps/missing:v1");
    let message = refused_with(Path::new(&missing), &["--cache-dir", &cache_arg])?;
    assert!(
        message.contains("was not found in its registry"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn registry_credentials_come_from_the_docker_config() -> TestResult {
    let nats = Nats::start("oci-login")?;
    let password = "correct-horse-battery";
    let registry = Registry::start_with_login("login", "robot", password)?;
    let dir = scratch("oci-login")?;
    let file = hello(&dir, "hello from trellis\n")?;
    let file = file.to_string_lossy();
    let tagged = registry.reference("private/hello:v1");

    let anonymous = dir.join("no-docker-config");
    std::fs::create_dir_all(&anonymous)?;
    let (code, _, err) = cli_in_env(
        &nats,
        &["push", &file, &tagged],
        &[("DOCKER_CONFIG", &anonymous)],
    )?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused access"), "{err}");

    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker)?;
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("robot:{password}"));
    std::fs::write(
        docker.join("config.json"),
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}",
            registry.addr
        ),
    )?;
    let env = [("DOCKER_CONFIG", docker.as_path())];
    let (code, out, err) = cli_in_env(&nats, &["push", &file, &tagged], &env)?;
    assert_eq!(code, 0, "{err}");
    let pinned = line(&out, "oci://")?.to_string();
    assert!(pinned.contains("/private/hello@sha256:"), "{out}");
    // Pulling (to sign) uses them too; without them the pull is refused.
    let (code, out, err) = cli_in_env(&nats, &["sign", &pinned], &env)?;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("signed sha256:"), "{out}");
    let (code, _, err) = cli_in_env(&nats, &["sign", &pinned], &[("DOCKER_CONFIG", &anonymous)])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused access"), "{err}");
    assert!(!err.contains(password) && !out.contains(password));
    Ok(())
}

#[tokio::test]
async fn a_registry_layer_that_does_not_match_its_digest_is_refused() -> TestResult {
    let nats = Nats::start("oci-tamper")?;
    let registry = Registry::start("tamper")?;
    let dir = scratch("oci-tamper")?;
    let file = hello(&dir, "hello from trellis\n")?;
    let tagged = registry.reference("apps/tampered:v1");
    let out = ok(&nats, &["push", &file.to_string_lossy(), &tagged])?;
    let content = line(&out, "lattice://sha256:")?.trim_start_matches("lattice://sha256:");
    // Overwrite the layer on the registry's disk: it serves what it stores.
    let layer = registry.blob(content);
    let mut bytes = std::fs::read(&layer)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&layer, bytes)?;

    let cache = dir.join("cache");
    let message = refused_with(
        Path::new(&tagged),
        &["--cache-dir", &cache.to_string_lossy()],
    )?;
    assert!(message.contains("digest mismatch"), "{message}");
    assert!(!cache.join("artifacts/blobs/sha256").join(content).exists());

    // On a host that trusts the operator, an unsigned registry component is
    // refused before it is downloaded: its bytes never reach the cache.
    let operator = nats
        .identity("operator", "operator")?
        .ok_or("a secured lattice has an operator")?
        .public_key;
    let unsigned = hello(&dir, "unsigned from trel\n")?;
    let out = ok(
        &nats,
        &[
            "push",
            &unsigned.to_string_lossy(),
            &registry.reference("apps/unsigned:v1"),
        ],
    )?;
    let content = line(&out, "lattice://sha256:")?.trim_start_matches("lattice://sha256:");
    let manifest = dir.join("unsigned.yaml");
    std::fs::write(&manifest, workload("unsigned", line(&out, "oci://")?))?;
    let trusting = dir.join("trusting-cache");
    let refused = host(
        &nats,
        &[&manifest],
        &[
            "--trust",
            &operator,
            "--cache-dir",
            &trusting.to_string_lossy(),
        ],
    );
    let Err(message) = refused else {
        return Err("an unsigned registry component started on a trusting host".into());
    };
    assert!(
        message.contains("no signature by a key this host trusts"),
        "{message}"
    );
    assert!(
        !trusting
            .join("artifacts/blobs/sha256")
            .join(content)
            .exists()
    );
    Ok(())
}

#[tokio::test]
async fn apply_uploads_relative_sources_for_hosts_that_share_no_files_and_pins_moved_tags()
-> TestResult {
    let nats = Nats::start("apply-upload")?;
    let registry = Registry::start("apply")?;
    let _scheduler = scheduler(&nats)?;
    // The host runs elsewhere, allowed to read nothing but its own empty folder.
    let elsewhere = scratch("apply-upload-host")?;
    let h = host_in_dir(&nats, "remote", &elsewhere, &[])?;

    let project = scratch("apply-upload-project")?;
    std::fs::create_dir_all(project.join("components"))?;
    let local = hello(&project.join("components"), "local from trellis\n")?;
    let manifest = project.join("local.yaml");
    std::fs::write(&manifest, workload("local", "components/local.wat"))?;
    let out = ok(&nats, &["apply", "-f", &manifest.to_string_lossy()])?;
    assert!(out.contains("workload/local created"), "{out}");
    serves(h.addr, "/local", "local from trellis\n").await?;

    // What was recorded is the digest `trellis push` prints for the same file.
    let pushed = ok(&nats, &["push", &local.to_string_lossy()])?;
    let v = described(&nats, "local")?;
    assert_eq!(v["sources"]["app"].as_str(), Some(pushed.trim()), "{v}");

    // A tag is resolved at apply time; moving it later changes nothing
    // until the next apply.
    let tagged = registry.reference("apps/moving:stable");
    let first = hello(&project, "first from trellis\n")?;
    let out = ok(&nats, &["push", &first.to_string_lossy(), &tagged])?;
    let first_pinned = line(&out, "oci://")?.to_string();
    let moving = project.join("moving.yaml");
    std::fs::write(&moving, workload("moving", &tagged))?;
    ok(&nats, &["apply", "-f", &moving.to_string_lossy()])?;
    serves(h.addr, "/moving", "first from trellis\n").await?;
    let version = described(&nats, "moving")?["version"].clone();
    assert_eq!(
        described(&nats, "moving")?["sources"]["app"].as_str(),
        Some(first_pinned.as_str())
    );

    let second = hello(&project, "again from trellis\n")?;
    ok(&nats, &["push", &second.to_string_lossy(), &tagged])?;
    assert_eq!(described(&nats, "moving")?["version"], version);
    let out = ok(&nats, &["apply", "-f", &moving.to_string_lossy()])?;
    assert!(out.contains("workload/moving configured"), "{out}");
    serves(h.addr, "/moving", "again from trellis\n").await?;
    Ok(())
}

#[tokio::test]
async fn a_lattice_artifact_that_does_not_match_its_digest_fails_and_the_running_version_serves()
-> TestResult {
    let nats = Nats::start("lattice-tamper")?;
    let _scheduler = scheduler(&nats)?;
    let h = host(&nats, &[], &[])?;
    let dir = scratch("lattice-tamper")?;
    let good = hello(&dir, "good from trellis!\n")?;
    let out = ok(&nats, &["push", &good.to_string_lossy()])?;
    let manifest = dir.join("app.yaml");
    std::fs::write(&manifest, workload("app", out.trim()))?;
    ok(&nats, &["apply", "-f", &manifest.to_string_lossy()])?;
    serves(h.addr, "/app", "good from trellis!\n").await?;

    // `trellis dev` runs the same artifact straight from the lattice store.
    let mut options = vec!["--nats".to_string(), nats.url.clone()];
    options.extend(nats.auth("operator", "operator")?);
    options.extend([
        "--cache-dir".to_string(),
        dir.join("dev-cache").to_string_lossy().into_owned(),
    ]);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let dev = Dev::start_with(Path::new(out.trim()), &options)?;
    serves(dev.addr, "/", "good from trellis!\n").await?;
    drop(dev);

    // A new version whose stored bytes were replaced behind the lattice's back.
    let next = hello(&dir, "next from trellis!\n")?;
    let out = ok(&nats, &["push", &next.to_string_lossy()])?;
    let digest = out
        .trim()
        .trim_start_matches("lattice://sha256:")
        .to_string();
    let admin = nats.client().await?;
    let objects = async_nats::jetstream::new(admin)
        .get_object_store("trellis_default_artifacts")
        .await?;
    let mut forged: &[u8] = b"(component)";
    objects.put(digest.as_str(), &mut forged).await?;
    std::fs::write(&manifest, workload("app", out.trim()))?;
    ok(&nats, &["apply", "-f", &manifest.to_string_lossy()])?;

    let error = fails_with(&nats, "app", "has digest").await?;
    assert!(error.contains(&digest), "{error}");
    // A digest nobody pushed.
    let unknown = format!("lattice://sha256:{}", "0".repeat(64));
    let missing = dir.join("missing.yaml");
    std::fs::write(&missing, workload("missing", &unknown))?;
    ok(&nats, &["apply", "-f", &missing.to_string_lossy()])?;
    fails_with(&nats, "missing", "no artifact sha256:0000").await?;
    let reply = get(h.addr, "localhost", "/app").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "good from trellis!\n")
    );
    Ok(())
}

#[tokio::test]
async fn a_host_that_trusts_the_operator_runs_only_what_it_signed() -> TestResult {
    let nats = Nats::start("signed")?;
    let operator = nats
        .identity("operator", "operator")?
        .ok_or("a secured lattice has an operator")?
        .public_key;
    let _scheduler = scheduler(&nats)?;
    let h = host(&nats, &[], &["--trust", &operator])?;
    let dir = scratch("signed")?;

    let signed = hello(&dir, "sealed from trelli\n")?;
    let out = ok(&nats, &["push", "--sign", &signed.to_string_lossy()])?;
    let signed_ref = line(&out, "lattice://")?.to_string();
    assert!(out.contains(&format!("by {operator}")), "{out}");
    let manifest = dir.join("signed.yaml");
    std::fs::write(&manifest, workload("signed", &signed_ref))?;
    ok(&nats, &["apply", "-f", &manifest.to_string_lossy()])?;
    serves(h.addr, "/signed", "sealed from trelli\n").await?;

    // Unsigned: refused, naming the key it wants.
    let unsigned = hello(&dir, "unsigned from trel\n")?;
    let out = ok(&nats, &["push", &unsigned.to_string_lossy()])?;
    let unsigned_ref = line(&out, "lattice://")?.to_string();
    let manifest = dir.join("unsigned.yaml");
    std::fs::write(&manifest, workload("unsigned", &unsigned_ref))?;
    ok(&nats, &["apply", "-f", &manifest.to_string_lossy()])?;
    let error = fails_with(&nats, "unsigned", "no signature by a key this host trusts").await?;
    assert!(error.contains(&operator), "{error}");

    // Tampered: the signed artifact's signature recorded for another one.
    let hex = |r: &str| r.trim_start_matches("lattice://sha256:").to_string();
    let signatures = async_nats::jetstream::new(nats.client().await?)
        .get_key_value("trellis_default_signatures")
        .await?;
    let signature = signatures
        .get(format!("{}.{operator}", hex(&signed_ref)))
        .await?
        .ok_or("push --sign recorded no signature")?;
    let tampered = hello(&dir, "tampered from trel\n")?;
    let out = ok(&nats, &["push", &tampered.to_string_lossy()])?;
    let tampered_ref = line(&out, "lattice://")?.to_string();
    signatures
        .put(format!("{}.{operator}", hex(&tampered_ref)), signature)
        .await?;
    let manifest = dir.join("tampered.yaml");
    std::fs::write(&manifest, workload("tampered", &tampered_ref))?;
    ok(&nats, &["apply", "-f", &manifest.to_string_lossy()])?;
    fails_with(&nats, "tampered", "does not verify").await?;

    // Signing afterwards lets the unsigned one start at the scheduler's next retry.
    ok(&nats, &["sign", &unsigned_ref])?;
    serves(h.addr, "/unsigned", "unsigned from trel\n").await?;

    // `apply --sign` signs what it uploads.
    let applied = hello(&dir, "applied from trell\n")?;
    let manifest = dir.join("applied.yaml");
    std::fs::write(&manifest, workload("applied", &applied.to_string_lossy()))?;
    let out = ok(
        &nats,
        &["apply", "--sign", "-f", &manifest.to_string_lossy()],
    )?;
    assert!(out.contains(&format!("by {operator}")), "{out}");
    serves(h.addr, "/applied", "applied from trell\n").await?;

    // A local component text file, signed, runs from `--manifest` on a trusting host;
    // its digest is its binary form's, on both sides.
    let local = hello(&dir, "locally from trell\n")?;
    let manifest = dir.join("local.yaml");
    std::fs::write(&manifest, workload("local", &local.to_string_lossy()))?;
    ok(&nats, &["sign", &local.to_string_lossy()])?;
    let h2 = host(&nats, &[&manifest], &["--trust", &operator])?;
    serves(h2.addr, "/local", "locally from trell\n").await?;
    // Unsigned, the same kind of file is refused at start.
    let stranger = hello(&dir, "strange from trell\n")?;
    let manifest = dir.join("stranger.yaml");
    std::fs::write(&manifest, workload("stranger", &stranger.to_string_lossy()))?;
    let Err(refused) = host(&nats, &[&manifest], &["--trust", &operator]) else {
        return Err("an unsigned local component started on a trusting host".into());
    };
    assert!(
        refused.contains("no signature by a key this host trusts"),
        "{refused}"
    );
    Ok(())
}

#[tokio::test]
async fn a_20_mb_python_component_goes_through_the_registry_with_progress() -> TestResult {
    let wasm = crate::python::python_component("hello")?;
    let size = std::fs::metadata(&wasm)?.len();
    assert!(
        size > 15 << 20,
        "the componentize-py component is {size} bytes"
    );
    let nats = Nats::start("oci-python")?;
    let registry = Registry::start("python")?;
    let tagged = registry.reference("apps/python:v1");
    let (code, out, err) = cli(&nats, &["push", &wasm.to_string_lossy(), &tagged])?;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("MiB"), "no progress shown: {err}");
    let pinned = line(&out, "oci://")?.to_string();
    let dir = scratch("oci-python")?;
    let dev = Dev::start_with(
        Path::new(&pinned),
        &["--cache-dir", &dir.join("cache").to_string_lossy()],
    )?;
    let reply = get(dev.addr, "localhost", "/py").await?;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "hello from python: GET /py (0 bytes)\n")
    );
    Ok(())
}
