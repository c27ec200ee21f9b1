//! Reading and compiling a component file, with errors that say what the file is.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Every binary starts with this; the next four bytes are `01 00 00 00` for a core
/// module and `0d 00 01 00` for a component.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Reads `path` and compiles it; binary components and component text are accepted.
pub(crate) fn compile(engine: &Engine, path: &Path) -> Result<Component, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    match bytes.get(..8) {
        Some(header) if header.starts_with(WASM_MAGIC) && header[4..8] == [1, 0, 0, 0] => {
            return Err(format!(
                "`{}` is a core WebAssembly module, not a component (hint: wrap it with `wasm-tools component new`)",
                path.display()
            ));
        }
        Some(header) if header.starts_with(WASM_MAGIC) => {} // A binary component.
        _ if std::str::from_utf8(&bytes).is_err() => {
            return Err(format!(
                "`{}` is not WebAssembly: it has no `\\0asm` header",
                path.display()
            ));
        }
        _ => {} // Text: let the component-text parser speak.
    }
    Component::new(engine, &bytes).map_err(|e| {
        format!(
            "`{}` is not a valid WebAssembly component: {e:#}",
            path.display()
        )
    })
}
