//! `trellis dashboard` in a real headless browser (Debian's `chromium`, driven
//! through the DevTools protocol): the page shows the lattice and follows it
//! without a reload when a workload is applied and when a host dies.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::lattice::{Nats, Process, cli, host, keyvalue_provider, scheduler};
use crate::support::{
    TestResult, eventually, example_manifest, get, repo, scratch, served_address,
};

/// The browser the project's script installs.
fn chromium() -> Result<PathBuf, String> {
    let out = Command::new(repo().join("scripts/install-chromium"))
        .output()
        .map_err(|e| format!("cannot run scripts/install-chromium: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/install-chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One page of a headless Chromium, and the DevTools connection to it.
struct Browser {
    _process: Process,
    socket: Socket,
    next: AtomicU64,
}

impl Browser {
    async fn open(url: &str) -> Result<Browser, Box<dyn std::error::Error>> {
        let profile = scratch("chromium-profile")?;
        let mut command = Command::new(chromium()?);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1280,900",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ]);
        command
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url);
        let (mut process, _) = Process::spawn(command)?;
        process.wait_for("DevTools listening on", Duration::from_secs(30))?;
        let line = process.stderr_text();
        let browser = line
            .lines()
            .find_map(|l| l.split("DevTools listening on ").nth(1))
            .ok_or("no DevTools address")?;
        let port: u16 = browser
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("cannot read the DevTools port from {browser}"))?;
        let devtools = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // The page the browser opened on `url`.
        let page = eventually(Duration::from_secs(15), "the page's target", async || {
            // DevTools builds the page's address from the Host header.
            let list = get(devtools, &devtools.to_string(), "/json/list")
                .await
                .ok()?;
            let targets: Vec<serde_json::Value> = serde_json::from_str(&list.body).ok()?;
            targets
                .into_iter()
                .find(|t| {
                    t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url))
                })
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
        })
        .await?;
        let (socket, _) = tokio_tungstenite::connect_async(page.as_str()).await?;
        Ok(Browser {
            _process: process,
            socket,
            next: AtomicU64::new(1),
        })
    }

    /// Sends one DevTools command and returns its result.
    async fn call(
        &mut self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let request = serde_json::json!({"id": id, "method": method, "params": params});
        self.socket.send(Message::text(request.to_string())).await?;
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(message) = self.socket.next().await {
                let Message::Text(text) = message? else {
                    continue;
                };
                let value: serde_json::Value = serde_json::from_str(&text)?;
                if value["id"] == id {
                    return Ok::<_, Box<dyn std::error::Error>>(value);
                }
            }
            Err("DevTools closed the connection".into())
        })
        .await
        .map_err(|_| format!("{method} got no answer"))??;
        if let Some(error) = answer.get("error") {
            return Err(format!("{method}: {error}").into());
        }
        Ok(answer["result"].clone())
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(
        &mut self,
        expression: &str,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let result = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({"expression": expression, "returnByValue": true}),
            )
            .await?;
        Ok(result["result"]["value"].clone())
    }

    /// Saves what the page shows as `name` under the target's tmp directory.
    async fn screenshot(&mut self, name: &str) -> Result<(), Box<dyn std::error::Error>> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                serde_json::json!({"format": "png"}),
            )
            .await?;
        let png = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            shot["data"].as_str().ok_or("no screenshot")?,
        )?;
        if !png.starts_with(b"\x89PNG") {
            return Err("the screenshot is not a PNG".into());
        }
        std::fs::write(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name),
            png,
        )?;
        Ok(())
    }

    /// Waits until `expression` is true in the page.
    async fn until(&mut self, what: &str, expression: &str) -> Result<(), String> {
        eventually(Duration::from_secs(30), what, async || {
            (self.eval(expression).await.ok()? == serde_json::Value::Bool(true)).then_some(())
        })
        .await
    }
}

/// Starts `trellis dashboard` as the operator; returns it and its page's URL.
fn dashboard(nats: &Nats) -> Result<(Process, String), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .args(["dashboard", "--listen", "127.0.0.1:0", "--nats", &nats.url])
        .args(nats.auth("operator", "operator")?);
    let (process, stdout) = Process::spawn(command)?;
    let addr = served_address(stdout.ok_or("no stdout")?)
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the dashboard did not start".to_string())?;
    Ok((process, format!("http://{addr}/")))
}

#[tokio::test]
async fn the_dashboard_follows_the_lattice_live_in_a_browser() -> TestResult {
    let nats = Nats::start("dashboard")?;
    let _scheduler = scheduler(&nats)?;
    let mut doomed = host(&nats, &[], &["--id", "doomed", "--label", "zone=edge-1"])?;
    let _keeper = host(&nats, &[], &["--id", "keeper"])?;
    let (doomed_id, keeper_id) = (nats.host_id("doomed")?, nats.host_id("keeper")?);
    let _keyvalue = keyvalue_provider(&nats, "keyvalue")?;
    let (_dashboard, url) = dashboard(&nats)?;

    // The assets come from the binary, and the page from nowhere else.
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let page = get(addr, "localhost", "/").await?;
    // A page elsewhere that rebinds its own name to this address reads nothing.
    let rebound = get(addr, "evil.example.com", "/api/state").await?;
    assert_eq!(rebound.status, 421, "{}", rebound.body);
    assert!(
        page.body.contains("/app.js") && !page.body.contains("https://"),
        "{}",
        page.body
    );

    let mut browser = Browser::open(&url).await?;
    let shows = |id: &str| format!("!!document.querySelector('#hosts tr[data-host=\"{id}\"]')");
    browser
        .until(
            "the page shows the hosts",
            &format!("{} && {}", shows(&doomed_id), shows(&keeper_id)),
        )
        .await?;
    let labels = browser
        .eval(&format!(
            "document.querySelector('#hosts tr[data-host=\"{doomed_id}\"]').innerText"
        ))
        .await?;
    assert!(
        labels.as_str().is_some_and(|t| t.contains("zone=edge-1")),
        "{labels}"
    );
    browser
        .until(
            "the page shows the provider",
            "document.querySelector('#providers tr[data-provider=\"keyvalue\"]')?.innerText.includes('wasi:keyvalue/store')",
        )
        .await?;
    // A mark that a reload would wipe.
    browser.eval("window.loadedOnce = true").await?;

    // Applying a workload shows up without a reload, with its replicas running.
    let dir = scratch("dashboard")?;
    let file = dir.join("greetings.yaml");
    std::fs::write(
        &file,
        format!(
            "{}deploy:\n  replicas: 1\n  selector:\n    zone: edge-1\n",
            example_manifest("greetings.yaml")?
        ),
    )?;
    let (code, _, err) = cli(&nats, &["apply", "-f", &file.display().to_string()])?;
    assert_eq!(code, 0, "{err}");
    let running = "document.querySelector('#workloads tr[data-workload=\"greetings\"] td:nth-child(3)')?.textContent === '1/1'";
    browser
        .until("the workload runs on the page", running)
        .await?;
    browser
        .until(
            "the placement is in the events",
            "[...document.querySelectorAll('#events li.placed')].some(li => li.textContent.includes('greetings placed'))",
        )
        .await?;

    browser.screenshot("dashboard-running.png").await?;

    // The host dies: it leaves the page, its copy stops counting, and the
    // page says so, still without a reload.
    doomed.kill();
    browser
        .until(
            "the dead host leaves the page",
            &format!("!{}", shows(&doomed_id)),
        )
        .await?;
    browser
        .until(
            "the loss is in the events",
            &format!("[...document.querySelectorAll('#events li.host-lost')].some(li => li.textContent.includes('{doomed_id}'))"),
        )
        .await?;
    let short = "document.querySelector('#workloads tr[data-workload=\"greetings\"] td:nth-child(3)')?.textContent === '0/1'";
    browser
        .until("the workload is short of replicas", short)
        .await?;
    assert_eq!(
        browser.eval("window.loadedOnce === true").await?,
        serde_json::Value::Bool(true)
    );
    assert_eq!(
        browser
            .eval("document.getElementById('connection').textContent")
            .await?,
        "live"
    );

    browser.screenshot("dashboard-host-lost.png").await?;
    Ok(())
}
