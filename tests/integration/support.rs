//! Test harness: a real `trellis` process on a free port, and a small HTTP client.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A `trellis dev` process, killed on drop. Its stderr is collected.
pub struct Dev {
    child: Child,
    pub addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Dev {
    /// Starts `trellis dev TARGET --listen 127.0.0.1:0` and waits until it serves.
    pub fn start(target: &Path) -> Result<Dev, String> {
        Self::start_with(target, &[])
    }

    /// [`Dev::start`] with `extra` options.
    pub fn start_with(target: &Path, extra: &[&str]) -> Result<Dev, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
            // Compiled code is shared by this run's dev processes, never the user's cache.
            .env("XDG_CACHE_HOME", dev_cache())
            .args(["dev", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg(target)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start trellis: {e}"))?;
        let stderr = collect(child.stderr.take());
        let stdout = child.stdout.take().ok_or("no stdout")?;
        match served_address(stdout).recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => Ok(Dev {
                child,
                addr: addr.parse().map_err(|e| format!("{e}: {addr}"))?,
                stderr,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "trellis dev did not start:\n{}",
                    stderr.try_iter().collect::<Vec<_>>().join("\n")
                ))
            }
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> Result<std::process::ExitStatus, String> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| e.to_string())?;
        self.child.wait().map_err(|e| e.to_string())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a `trellis` process prints (`… http://ADDR`) once it serves.
pub fn served_address(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("http://").nth(1) {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    rx
}

fn collect(stream: Option<std::process::ChildStderr>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(stream) = stream {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

/// Runs `trellis dev TARGET` expecting it to refuse to start; returns its stderr.
pub fn refused(target: &Path) -> Result<String, String> {
    refused_with(target, &[])
}

/// [`refused`] with `extra` options.
pub fn refused_with(target: &Path, extra: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .env("XDG_CACHE_HOME", dev_cache())
        .args(["dev", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg(target)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        return Err("trellis dev started on bad input".into());
    }
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A response as tests see it.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// GET `path` over HTTP/1.1 with the given Host header.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<Reply, Box<dyn std::error::Error>> {
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())?;
    send(addr, req).await
}

/// GET `path` over HTTP/1.1 with `headers` (and `Host: localhost`).
pub async fn get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, Box<dyn std::error::Error>> {
    let mut req = hyper::Request::get(path).header("host", "localhost");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(addr, req.body(Empty::<Bytes>::new())?).await
}

/// POST `body` to `path` over HTTP/1.1.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> Result<Reply, Box<dyn std::error::Error>> {
    post_with(addr, path, &body, &[]).await
}

/// POST `body` to `path` over HTTP/1.1 with `headers` (and `Host: localhost`).
pub async fn post_with(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Result<Reply, Box<dyn std::error::Error>> {
    let mut req = hyper::Request::post(path).header("host", "localhost");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(addr, req.body(Full::new(Bytes::copy_from_slice(body)))?).await
}

/// PUT `body` to `path` over HTTP/1.1.
pub async fn put(
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
) -> Result<Reply, Box<dyn std::error::Error>> {
    let req = hyper::Request::put(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body)))?;
    send(addr, req).await
}

/// DELETE `path` over HTTP/1.1.
pub async fn delete(addr: SocketAddr, path: &str) -> Result<Reply, Box<dyn std::error::Error>> {
    let req = hyper::Request::delete(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())?;
    send(addr, req).await
}

async fn send<B>(
    addr: SocketAddr,
    req: hyper::Request<B>,
) -> Result<Reply, Box<dyn std::error::Error>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    read(sender.send_request(req).await?).await
}

/// GET `path` over h2c (HTTP/2 with prior knowledge) on one new connection.
pub async fn get_h2(addr: SocketAddr, path: &str) -> Result<Reply, Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{addr}{path}")).body(Empty::<Bytes>::new())?;
    read(sender.send_request(req).await?).await
}

async fn read(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<Reply, Box<dyn std::error::Error>> {
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The cache directory of this test run's `trellis dev` processes.
pub fn dev_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dev-cache-{}", std::process::id()))
}

/// A fresh scratch folder under the target directory.
pub fn scratch(name: &str) -> Result<PathBuf, std::io::Error> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// An example manifest from `examples/counter` with its component paths made
/// absolute, so it can be written anywhere or sent to a host.
pub fn example_manifest(file: &str) -> Result<String, std::io::Error> {
    let dir = repo().join("examples/counter");
    let mut text = std::fs::read_to_string(dir.join(file))?;
    for source in ["api.wat", "greeter.wat"] {
        text = text.replace(
            &format!("source: {source}"),
            &format!("source: {}", dir.join(source).display()),
        );
    }
    Ok(text)
}

/// How often [`eventually`] and [`holds_for`] look again: the states they
/// watch (HTTP answers, CLI output, KV entries) send no notice of change.
const POLL: Duration = Duration::from_millis(20);

/// A steady cadence of looks, however long each look takes.
fn looks() -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// Waits until `condition` gives a value, looking every 20 ms for at most
/// `limit`: the way to wait for something to happen, never a bare sleep.
pub async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut looks = looks();
    loop {
        looks.tick().await;
        if let Ok(Some(value)) = tokio::time::timeout_at(deadline, condition()).await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{what}: not within {limit:?}"));
        }
    }
}

/// Checks that `condition` stays true for all of `period`, looking every 20 ms:
/// the bounded way to show that something does not happen.
pub async fn holds_for(
    period: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> bool,
) -> Result<(), String> {
    let end = tokio::time::Instant::now() + period;
    let mut looks = looks();
    loop {
        looks.tick().await;
        if !condition().await {
            return Err(format!("{what}: stopped holding within {period:?}"));
        }
        if tokio::time::Instant::now() >= end {
            return Ok(());
        }
    }
}
