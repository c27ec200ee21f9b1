//! Reading and compiling a component file, with errors that say what the file is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::Component;

use crate::engine::HostEngine;

/// The largest component file read: anything larger (or endless, like a
/// device) is refused before it is read whole.
const MAX_COMPONENT_BYTES: u64 = trellis_artifacts::MAX_ARTIFACT_BYTES;

/// Every binary starts with this; the next four bytes are `01 00 00 00` for a core
/// module and `0d 00 01 00` for a component.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Why a component file was refused; each says what the file is.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Larger than [`MAX_COMPONENT_BYTES`].
    #[error("`{}` is larger than {} MiB", path.display(), MAX_COMPONENT_BYTES >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A core module where a component belongs.
    #[error(
        "`{}` is a core WebAssembly module, not a component (hint: wrap it with `wasm-tools component new`)",
        path.display()
    )]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// Neither a binary nor text.
    #[error("`{}` is not WebAssembly: it has no `\\0asm` header", path.display())]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// The text parser or wasmtime refused it.
    #[error("`{}` is not a valid WebAssembly component: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (without quoted source lines unless allowed).
        message: String,
    },
}

/// Reads `path` and compiles it; binary components and component text are
/// accepted. Unless `quote` is set, an error in component text gives its
/// message and position but never the line it is on.
pub(crate) fn compile(
    engine: &HostEngine,
    path: &Path,
    quote: bool,
) -> Result<Arc<Component>, CompileError> {
    compile_bytes(engine, &read(path)?, path, quote)
}

/// Reads a component file, refusing one larger than [`MAX_COMPONENT_BYTES`]
/// before reading it whole.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CompileError> {
    let read = |source| CompileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).map_err(read)?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_COMPONENT_BYTES + 1),
        &mut bytes,
    )
    .map_err(read)?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(CompileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// A component file in binary form: component text is converted, so a
/// component's digest (what signatures name) is the same whether it was
/// written as text or binary. `quote` as for [`compile`].
pub fn read_binary(path: &Path, quote: bool) -> Result<Vec<u8>, CompileError> {
    let bytes = read(path)?;
    check_header(&bytes, path)?;
    if bytes.starts_with(WASM_MAGIC) {
        return Ok(bytes);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| CompileError::NotWasm {
        path: path.to_path_buf(),
    })?;
    let binary = wat::parse_str(text).map_err(|e| invalid(path, &e, quote))?;
    // Text may spell a core module.
    check_header(&binary, path)?;
    Ok(binary)
}

/// Compiles `bytes`, named `path` in errors (a file, or a fetched artifact's
/// reference), unless the engine has compiled the same bytes already.
pub(crate) fn compile_bytes(
    engine: &HostEngine,
    bytes: &[u8],
    path: &Path,
    quote: bool,
) -> Result<Arc<Component>, CompileError> {
    check_header(bytes, path)?;
    engine.compiled().get_or_compile(bytes, || {
        Component::new(engine.engine(), bytes).map_err(|e| invalid(path, &e, quote))
    })
}

/// Refuses what cannot be a component before any parser sees it: too large,
/// a core module, or neither a binary nor text.
fn check_header(bytes: &[u8], path: &Path) -> Result<(), CompileError> {
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(CompileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    match bytes.get(..8) {
        Some(header) if header.starts_with(WASM_MAGIC) && header[4..8] == [1, 0, 0, 0] => {
            return Err(CompileError::CoreModule {
                path: path.to_path_buf(),
            });
        }
        Some(header) if header.starts_with(WASM_MAGIC) => {} // A binary component.
        _ if std::str::from_utf8(bytes).is_err() => {
            return Err(CompileError::NotWasm {
                path: path.to_path_buf(),
            });
        }
        _ => {} // Text: let the component-text parser speak.
    }
    Ok(())
}

fn invalid(path: &Path, error: &dyn std::fmt::Display, quote: bool) -> CompileError {
    let message = format!("{error:#}");
    CompileError::Invalid {
        path: path.to_path_buf(),
        message: if quote {
            message
        } else {
            without_snippets(&message)
        },
    }
}

/// An error's message and position lines, without the source lines the
/// component-text parser quotes beneath them (`  12 | (text…)`).
fn without_snippets(message: &str) -> String {
    let mut lines = message.lines();
    let mut kept: Vec<&str> = lines.next().into_iter().collect();
    kept.extend(lines.filter(|l| l.trim_start().starts_with("-->")));
    kept.join(" ")
}
