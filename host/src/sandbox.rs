//! What the host lets workloads reach, whatever their manifests grant. A
//! manifest can come from the network (the control API), so under `trellis
//! host` the operator's policy bounds it: component sources and preopens
//! must lie under allowed directories (and errors about a file never quote
//! what is in it), outgoing HTTP reaches only hosts the operator allows and
//! the component's `grants.http` lists, and `grants.network` counts only if
//! the operator allows sockets at all.

use std::path::{Path, PathBuf};

/// The host's bounds on every workload; [`Sandbox::open`] under `trellis dev`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The host files workloads may name.
    pub files: FileAccess,
    /// Where outgoing HTTP may go.
    pub http: HttpCeiling,
    /// Whether `grants.network` (wasi:sockets) may be honoured.
    pub network: bool,
}

impl Sandbox {
    /// Everything open: the developer's own manifests (`trellis dev`).
    pub fn open() -> Self {
        Sandbox {
            files: FileAccess::Any,
            http: HttpCeiling::Any,
            network: true,
        }
    }
}

/// The hosts outgoing HTTP may reach at most.
#[derive(Debug, Clone)]
pub enum HttpCeiling {
    /// Any host; a component without `grants.http` may reach any too.
    Any,
    /// Only hosts these patterns match (as in `grants.http`), and only those a
    /// component's own `grants.http` lists as well; none without it.
    None,
    /// See [`HttpCeiling::None`]: these patterns.
    Only(Vec<String>),
}

impl HttpCeiling {
    /// Whether a component with `grants` may send to `host:port`.
    pub fn allows(&self, grants: &trellis_manifest::Grants, host: &str, port: u16) -> bool {
        match self {
            HttpCeiling::Any => grants.allows_http(host, port, true),
            HttpCeiling::None => false,
            HttpCeiling::Only(patterns) => {
                trellis_manifest::http_patterns_allow(patterns, host, port)
                    && grants.allows_http(host, port, false)
            }
        }
    }
}

/// The host directories workloads may read from.
#[derive(Debug, Clone)]
pub enum FileAccess {
    /// Any path, and errors may quote a component's text: `trellis dev`, where
    /// the manifest is the developer's own.
    Any,
    /// Only paths under these directories (resolved, symlinks followed), and
    /// errors give positions, never content.
    Under(Vec<PathBuf>),
}

/// A path a workload may not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The path does not resolve (missing, or a parent is not a directory).
    #[error("`{}` cannot be opened: {reason}", path.display())]
    Missing {
        /// The path as the manifest resolved it.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The path resolves outside every allowed directory.
    #[error(
        "`{}` is outside the directories this host reads workloads from ({}); start the host with `--allow-dir` to add one",
        path.display(), list(allowed)
    )]
    Outside {
        /// The path as the manifest resolved it.
        path: PathBuf,
        /// The allowed directories.
        allowed: Vec<PathBuf>,
    },
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FileAccess {
    /// Only under `dirs`, each resolved now; a directory that does not
    /// resolve is an error, so a typo never silently allows nothing.
    pub fn under(dirs: &[PathBuf]) -> Result<Self, FileError> {
        let mut allowed = dirs
            .iter()
            .map(|dir| resolve(dir))
            .collect::<Result<Vec<_>, _>>()?;
        // Ten thousand manifests in one folder allow one folder: every check
        // walks this list.
        allowed.sort();
        allowed.dedup();
        Ok(FileAccess::Under(allowed))
    }

    /// `path` resolved, if a workload may use it.
    pub fn check(&self, path: &Path) -> Result<PathBuf, FileError> {
        match self {
            FileAccess::Any => Ok(path.to_path_buf()),
            FileAccess::Under(allowed) => {
                let resolved = resolve(path)?;
                if allowed.iter().any(|dir| resolved.starts_with(dir)) {
                    Ok(resolved)
                } else {
                    Err(FileError::Outside {
                        path: path.to_path_buf(),
                        allowed: allowed.clone(),
                    })
                }
            }
        }
    }

    /// Whether an error may quote a file's text (its own developer's file).
    pub fn may_quote(&self) -> bool {
        matches!(self, FileAccess::Any)
    }
}

fn resolve(path: &Path) -> Result<PathBuf, FileError> {
    std::fs::canonicalize(path).map_err(|e| FileError::Missing {
        path: path.to_path_buf(),
        reason: e.kind().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_allowed_directories_are_refused() -> Result<(), FileError> {
        let dir = std::env::temp_dir().join(format!("trellis-files-{}", std::process::id()));
        let inside = dir.join("inside");
        std::fs::create_dir_all(&inside).map_err(|e| FileError::Missing {
            path: inside.clone(),
            reason: e.to_string(),
        })?;
        let access = FileAccess::under(std::slice::from_ref(&inside))?;
        assert!(access.check(&inside).is_ok());
        // `..` and symlinks are resolved before the check.
        let escape = inside.join("..");
        assert!(matches!(
            access.check(&escape),
            Err(FileError::Outside { .. })
        ));
        assert!(matches!(
            access.check(Path::new("/etc/hostname")),
            Err(FileError::Outside { .. }) | Err(FileError::Missing { .. })
        ));
        assert!(!access.may_quote());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
