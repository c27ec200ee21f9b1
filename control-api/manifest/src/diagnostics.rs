//! Problems found in a manifest, each tied to where it was written.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml::Pos;

/// One problem in a manifest: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the offending node starts.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem at `pos`.
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds how to fix it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one manifest file; a workload with any is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The manifest file (or a stand-in name for manifests that came from elsewhere).
    pub file: PathBuf,
    /// The problems, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl ManifestError {
    /// Collects `diagnostics` for `file`, sorted by position.
    pub fn new(file: &Path, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| (d.pos.line, d.pos.column));
        ManifestError {
            file: file.to_path_buf(),
            diagnostics,
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.diagnostics.len();
        write!(
            f,
            "{} has {count} problem{}",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for d in &self.diagnostics {
            match d.pos.line {
                0 => write!(f, "\n  {}: {}", self.file.display(), d.message)?,
                _ => write!(f, "\n  {}:{}: {}", self.file.display(), d.pos, d.message)?,
            }
            if let Some(hint) = &d.hint {
                write!(f, "\n      hint: {hint}")?;
            }
        }
        Ok(())
    }
}
