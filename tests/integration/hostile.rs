//! Each attack of docs/security.md, made against real processes, followed by
//! a check that the attacked process still serves.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use trellis_control_api::{ControlError, Refusal};
use trellis_lattice::headers;
use trellis_lattice::lean::ERROR_KIND_HEADER;

use crate::lattice::{Nats, control_client, host, provider};
use crate::support::{Dev, TestResult, get, repo, scratch};

/// The manifest of the counter example with `limits` for `api`, component
/// paths made absolute, in `dir`.
fn counter(dir: &std::path::Path, limits: &str) -> Result<std::path::PathBuf, std::io::Error> {
    let example = repo().join("examples/counter");
    let text = std::fs::read_to_string(example.join("workload.yaml"))?
        .replace(
            "source: api.wat",
            &format!("source: {}", example.join("api.wat").display()),
        )
        .replace(
            "source: greeter.wat",
            &format!("source: {}", example.join("greeter.wat").display()),
        )
        .replace(
            "      concurrency: 64\n",
            &format!("      concurrency: 64\n{limits}"),
        );
    let file = dir.join("counter.yaml");
    std::fs::write(&file, text)?;
    Ok(file)
}

/// Nine levels of nine aliases: 9^9 nodes once expanded, in 500 bytes.
fn billion_laughs() -> String {
    let mut text = String::from(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: laughs\na0: &a0 [x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..10 {
        let items = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    text
}

#[tokio::test]
async fn six_bytes_no_longer_abort_the_keyvalue_provider() -> TestResult {
    let nats = Nats::start("six-bytes")?;
    let mut kv = provider(&nats, "trellis-keyvalue-nats", "keyvalue")?;
    // Past the permissions only a host can send it: the attack of a compromised host.
    let client = nats.client_as("host", "attacker").await?;
    let subject = "trellis.default.provider.keyvalue.rr.wasi:keyvalue/batch@0.2.0-draft.set-many";
    let attack = bytes::Bytes::from_static(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let reply = client.request(subject, attack.clone()).await?;
    let headers = reply.headers.ok_or("the refusal carries headers")?;
    assert_eq!(
        headers.get(ERROR_KIND_HEADER).map(|v| v.as_str()),
        Some("invalid")
    );
    let why = headers
        .get(trellis_lattice::lean::ERROR_HEADER)
        .map(|v| v.to_string());
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("4294967295 elements") && w.contains("key-values")),
        "{why:?}"
    );
    // Over wrpc-transport-nats too: the call ends, the provider lives.
    let wrpc =
        wrpc_transport_nats::Client::new(client.clone(), "trellis.default.provider.keyvalue", None)
            .await?;
    let no_paths: [&[Option<usize>]; 0] = [];
    use wrpc_transport::Invoke as _;
    if let Ok((mut tx, mut rx)) = wrpc
        .invoke(
            None,
            "wasi:keyvalue/batch@0.2.0-draft",
            "set-many",
            attack,
            no_paths,
        )
        .await
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _ = tx.shutdown().await;
        let mut sink = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut sink))
            .await
            .map_err(|_| "the call hung")?
            .ok();
    }
    assert!(kv.alive(), "the provider died:\n{}", kv.stderr_text());
    let mut identity = HeaderMap::new();
    identity.insert(headers::WORKLOAD, "w");
    identity.insert(headers::COMPONENT, "c");
    let open = client
        .request_with_headers(
            "trellis.default.provider.keyvalue.rr.wasi:keyvalue/store@0.2.0-draft.open",
            identity,
            bytes::Bytes::from_static(b"\x01b"),
        )
        .await?;
    assert!(
        open.headers.is_none(),
        "the provider refused a real call after the attack"
    );
    Ok(())
}

#[tokio::test]
async fn alias_bombs_and_oversized_manifests_are_refused_at_once() -> TestResult {
    let dir = scratch("alias-bomb")?;
    let bomb = dir.join("bomb.yaml");
    std::fs::write(&bomb, billion_laughs())?;
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["dev"])
        .arg(&bomb)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bomb.yaml:9:") && stderr.contains("100000 nodes"),
        "{stderr}"
    );
    eprintln!(
        "trellis dev refused the alias bomb in {:?}",
        started.elapsed()
    );

    let huge = dir.join("huge.yaml");
    std::fs::write(&huge, format!("# {}\n", "x".repeat(300 << 10)))?;
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["dev"])
        .arg(&huge)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at most 262144 are taken"), "{stderr}");

    // The control API takes the same YAML from the network.
    let nats = Nats::start("alias-bomb")?;
    let mut h = host(&nats, &[], &["--id", "h1"])?;
    let control = control_client(&nats, "h1", Duration::from_secs(10)).await?;
    let h1 = nats.host_id("h1")?;
    match control
        .start(&format!("{h1}:laughs"), &billion_laughs())
        .await
    {
        Err(ControlError::Refused {
            refusal: Refusal::Invalid(why),
            ..
        }) => assert!(why.contains(":9:") && why.contains("100000 nodes"), "{why}"),
        other => panic!("the alias bomb was not refused: {other:?}"),
    }
    assert!(h.alive());
    assert_eq!(control.describe().await?.id, h1);
    Ok(())
}

#[tokio::test]
async fn a_host_reads_only_allowed_files_and_never_quotes_them() -> TestResult {
    let allowed = scratch("host-files")?;
    let secret = "SUAGSECRETSEEDTHATMUSTNEVERLEAVETHEHOST";
    let seed = allowed.join("host.nk");
    std::fs::write(&seed, format!("{secret}\n"))?;
    let nats = Nats::start("host-files")?;
    let dir = allowed.display().to_string();
    let _h = host(&nats, &[], &["--id", "h1", "--allow-dir", &dir])?;
    let control = control_client(&nats, "h1", Duration::from_secs(10)).await?;
    let leak = format!("{}:leak", nats.host_id("h1")?);
    let manifest = |source: &str| {
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: leak\ncomponents:\n  app:\n    source: {source}\n    bindings: {{wasi:*: host}}\n"
        )
    };
    // A text file inside the allowed directories: refused, its content unquoted.
    let refusal = control
        .start(&leak, &manifest(&seed.display().to_string()))
        .await;
    let why = format!("{refusal:?}");
    assert!(
        matches!(
            refusal,
            Err(ControlError::Refused {
                refusal: Refusal::StartFailed(_),
                ..
            })
        ),
        "{why}"
    );
    assert!(
        !why.contains("SUAG") && !why.contains("SECRET"),
        "the error quotes the file: {why}"
    );
    // Outside them: refused before it is read.
    // (each start under its own ID: a repeated ID returns the earlier state)
    for (n, path) in ["/etc/hostname", "/proc/self/environ"].iter().enumerate() {
        let id = format!("{}:outside-{n}", nats.host_id("h1")?);
        let refusal = format!("{:?}", control.start(&id, &manifest(path)).await);
        assert!(refusal.contains("is outside the directories"), "{refusal}");
    }
    let escape = format!("{}/../../../../../../../../etc/hostname", allowed.display());
    let refusal = format!(
        "{:?}",
        control
            .start(
                &format!("{}:escape", nats.host_id("h1")?),
                &manifest(&escape)
            )
            .await
    );
    assert!(refusal.contains("is outside the directories"), "{refusal}");
    Ok(())
}

#[tokio::test]
async fn a_subscription_cannot_reach_the_lattice() -> TestResult {
    let nats = Nats::start("subscribe-all")?;
    let mut messaging = provider(&nats, "trellis-messaging-nats", "messaging")?;
    let file = crate::messaging::messenger(
        "subscribe-all",
        "{subscribe: \">, *.>, trellis.>, greet.*\"}",
    )?;
    let _h = host(&nats, &[&file], &[])?;
    let client = nats.client().await?;
    crate::support::eventually(
        Duration::from_secs(30),
        "greet.* is delivered",
        async || {
            let reply = tokio::time::timeout(
                Duration::from_millis(200),
                client.request("greet.x", "t".into()),
            )
            .await;
            reply.ok()?.ok().map(|_| ())
        },
    )
    .await?;
    for refused in [">", "*.>", "trellis.>"] {
        messaging.wait_for(&format!("subject={refused}"), Duration::from_secs(5))?;
    }
    // Nothing of the lattice reaches the workload, so nothing answers it.
    let lattice = tokio::time::timeout(
        Duration::from_secs(2),
        client.request("trellis.default.anything", "t".into()),
    )
    .await;
    assert!(
        !matches!(lattice, Ok(Ok(_))),
        "a lattice subject reached the workload"
    );
    // The link that told the provider expires unless its host refreshes it,
    // and its expiry reaches the provider as a removal.
    let js = async_nats::jetstream::new(client.clone());
    let mut links = js.get_stream("KV_trellis_default_links").await?;
    let config = &links.info().await?.config;
    assert_eq!(config.max_age, trellis_lattice::LINK_TTL);
    assert!(config.subject_delete_marker_ttl.is_some(), "{config:?}");
    Ok(())
}

#[tokio::test]
async fn slow_idle_and_oversized_http_clients_are_cut_off() -> TestResult {
    let dir = scratch("http-limits")?;
    let file = counter(&dir, "      request-body: 1KiB\n")?;
    let dev = Dev::start_with(&file, &["--header-timeout", "1s", "--idle-timeout", "2s"])?;

    // One header byte at a time: dropped at the header timeout.
    let mut slow = TcpStream::connect(dev.addr)?;
    slow.set_read_timeout(Some(Duration::from_secs(10)))?;
    let started = Instant::now();
    let mut closed = false;
    for byte in
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        closed || rest.is_empty() || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
        "{rest:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the slow client was not cut off"
    );

    // A thousand idle connections, and a new request is still served.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(dev.addr))
        .collect::<Result<_, _>>()?;
    let reply = get(dev.addr, "localhost", "/").await?;
    assert_eq!(reply.status, 200, "{}", reply.body);
    drop(idle);

    // An idle keep-alive connection is closed at the idle timeout.
    let mut kept = TcpStream::connect(dev.addr)?;
    kept.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    kept.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut answer = Vec::new();
    // read_to_end returns only when the host closes the connection (a read
    // timeout would be an error).
    kept.read_to_end(&mut answer)?;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );

    // A body over the component's limit is refused with 413 before it runs.
    let mut big = TcpStream::connect(dev.addr)?;
    big.write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\n\r\n")?;
    big.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut answer = [0u8; 64];
    let n = big.read(&mut answer)?;
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"),
        "{:?}",
        &answer[..n]
    );
    assert_eq!(get(dev.addr, "localhost", "/").await?.status, 200);
    Ok(())
}

/// A plain HTTP server on loopback that answers every request with 204.
fn loopback_server() -> Result<std::net::SocketAddr, std::io::Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    Ok(addr)
}

fn fetcher(dir: &std::path::Path, name: &str, grants: &str) -> Result<std::path::PathBuf, String> {
    let wasm = crate::python::python_component("fetcher")?;
    let file = dir.join(format!("{name}.yaml"));
    let text = format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: {name}\ncomponents:\n  app:\n    source: {}\n{grants}    bindings: {{wasi:*: host}}\nroutes:\n  - component: app\n    host: {name}\n",
        wasm.display()
    );
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    Ok(file)
}

#[tokio::test]
async fn outgoing_http_reaches_only_granted_hosts() -> TestResult {
    let target = loopback_server()?;
    let dir = scratch("outgoing-http")?;
    let closed = fetcher(&dir, "closed", "")?;
    let granted = fetcher(&dir, "granted", "    grants: {http: [\"127.0.0.1\"]}\n")?;
    let elsewhere = fetcher(
        &dir,
        "elsewhere",
        "    grants: {http: [\"api.example.com\"]}\n",
    )?;
    let path = format!("/{target}");

    // Under `trellis host`, no grant means no outgoing HTTP: loopback is out of reach.
    // A manifest's grant counts only within the host's own --allow-http.
    let nats = Nats::start("outgoing-http")?;
    let unallowed = host(&nats, &[&granted], &[])?;
    let denied = get(unallowed.addr, "granted", &path).await?;
    assert_eq!(denied.body, "error: ErrorCode_HttpRequestDenied\n");
    drop(unallowed);
    let h = host(
        &nats,
        &[&closed, &granted, &elsewhere],
        &["--allow-http", "127.0.0.1"],
    )?;
    let denied = get(h.addr, "closed", &path).await?;
    assert_eq!(denied.body, "error: ErrorCode_HttpRequestDenied\n");
    let denied = get(h.addr, "elsewhere", &path).await?;
    assert_eq!(denied.body, "error: ErrorCode_HttpRequestDenied\n");
    let allowed = get(h.addr, "granted", &path).await?;
    assert_eq!(allowed.body, "status 204\n");

    // `trellis dev` runs the developer's own manifest: open by default.
    let dev = Dev::start(&closed)?;
    let open = get(dev.addr, "closed", &path).await?;
    assert_eq!(open.body, "status 204\n");
    Ok(())
}

#[tokio::test]
async fn a_caller_trickling_its_parameters_holds_only_its_own_call() -> TestResult {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use wrpc_transport::Invoke as _;
    let nats = Nats::start("trickle")?;
    let mut kv = provider(&nats, "trellis-keyvalue-nats", "keyvalue")?;
    let client = nats.client_as("host", "attacker").await?;
    let wrpc =
        wrpc_transport_nats::Client::new(client.clone(), "trellis.default.provider.keyvalue", None)
            .await?;
    let no_paths: [&[Option<usize>]; 0] = [];
    // `open` with a 7 MiB identifier, sent a byte at a time.
    let (mut slow, _slow_results) = wrpc
        .invoke(
            None,
            "wasi:keyvalue/store@0.2.0-draft",
            "open",
            bytes::Bytes::from_static(&[0x80, 0x80, 0xc0, 0x03]),
            no_paths,
        )
        .await?;
    let trickle = tokio::spawn(async move {
        for _ in 0..20 {
            if slow.write_all(b"a").await.is_err() || slow.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    // Meanwhile a whole call of the same function is answered at once.
    let mut identity = HeaderMap::new();
    identity.insert(headers::WORKLOAD, "w");
    identity.insert(headers::COMPONENT, "c");
    let started = Instant::now();
    let (mut tx, mut rx) = wrpc
        .invoke(
            Some(identity),
            "wasi:keyvalue/store@0.2.0-draft",
            "open",
            bytes::Bytes::from_static(b"\x01b"),
            no_paths,
        )
        .await?;
    tx.shutdown().await?;
    let mut results = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), rx.read_to_end(&mut results))
        .await
        .map_err(|_| "the whole call waited behind the trickling one")??;
    assert_eq!(results.first(), Some(&0), "open failed: {results:?}");
    eprintln!(
        "answered in {:?} beside a trickling call",
        started.elapsed()
    );
    trickle.abort();
    assert!(kv.alive());
    Ok(())
}
