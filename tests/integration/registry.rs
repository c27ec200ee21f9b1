//! Harness: a real OCI registry (Debian's `docker-registry`, the CNCF
//! distribution registry) on a free 127.0.0.1 port, storing under a scratch
//! folder, killed on drop.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::lattice::Process;
use crate::support::{repo, scratch};

/// A running registry.
pub struct Registry {
    process: Process,
    /// Held open: the registry dies of SIGPIPE if it ever writes there.
    _stdout: Option<std::process::ChildStdout>,
    /// `127.0.0.1:PORT`, as references name it.
    pub addr: String,
    /// Where it keeps blobs (`docker/registry/v2/blobs/sha256/…/data`).
    pub root: PathBuf,
}

/// The registry binary, installed by the project's script on first use.
fn binary() -> Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let out = Command::new(repo().join("scripts/install-registry"))
                .output()
                .map_err(|e| format!("cannot run scripts/install-registry: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/install-registry failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
        .clone()
}

impl Registry {
    /// Starts a registry and waits until it listens.
    pub fn start(name: &str) -> Result<Registry, String> {
        Self::start_with(name, None)
    }

    /// A registry that lets only `user` with `password` in (HTTP basic auth).
    pub fn start_with_login(name: &str, user: &str, password: &str) -> Result<Registry, String> {
        Self::start_with(name, Some((user, password)))
    }

    fn start_with(name: &str, login: Option<(&str, &str)>) -> Result<Registry, String> {
        let dir = scratch(&format!("registry-{name}")).map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let root = dir.join("data");
        let auth = match login {
            None => String::new(),
            Some((user, password)) => {
                // The registry reads bcrypt only; cost 4 keeps the test fast.
                let hash = bcrypt::hash(password, 4).map_err(|e| e.to_string())?;
                let file = dir.join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).map_err(|e| e.to_string())?;
                format!(
                    "auth:\n  htpasswd:\n    realm: trellis-test\n    path: {}\n",
                    file.display()
                )
            }
        };
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n{auth}http:\n  addr: {addr}\n",
                root.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut command = Command::new(binary()?);
        command.arg("serve").arg(&config);
        let (mut process, stdout) = Process::spawn(command)?;
        process.wait_for(&format!("listening on {addr}"), Duration::from_secs(30))?;
        Ok(Registry {
            process,
            _stdout: stdout,
            addr,
            root,
        })
    }

    /// `oci://ADDR/REPO_AND_TAG`.
    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("oci://{}/{repo_and_tag}", self.addr)
    }

    /// The file holding blob `hex` (a layer, a config, a manifest).
    pub fn blob(&self, hex: &str) -> PathBuf {
        self.root
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops it, as an outage would.
    pub fn stop(&mut self) {
        self.process.kill();
    }
}
