//! Bad input is refused before anything starts, with what and where.

use std::path::Path;

use crate::support::{TestResult, refused, repo, scratch};

const HEADER: &str = "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: bad\n";

fn manifest(dir: &Path, text: &str) -> Result<std::path::PathBuf, std::io::Error> {
    let path = dir.join("workload.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn hello() -> String {
    repo()
        .join("tests/components/hello.wat")
        .display()
        .to_string()
}

#[test]
fn malformed_yaml_names_the_line() -> TestResult {
    let dir = scratch("malformed")?;
    let err = refused(&manifest(&dir, "apiVersion: [\nname: x\n")?)?;
    assert!(err.contains("workload.yaml:2:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
    Ok(())
}

#[test]
fn unknown_fields_are_errors_with_a_suggestion() -> TestResult {
    let dir = scratch("unknown")?;
    let text = format!(
        "{HEADER}components:\n  web:\n    source: {}\n    limts: {{memory: 1MiB}}\n",
        hello()
    );
    let err = refused(&manifest(&dir, &text)?)?;
    assert!(
        err.contains("workload.yaml:7:5: unknown field `limts` in component `web`"),
        "{err}"
    );
    assert!(err.contains("did you mean `limits`?"), "{err}");
    Ok(())
}

#[test]
fn a_missing_component_file_is_named() -> TestResult {
    let dir = scratch("missing")?;
    let err = refused(&manifest(
        &dir,
        &format!("{HEADER}components:\n  web:\n    source: nowhere.wasm\n"),
    )?)?;
    assert!(err.contains("workload.yaml:6:13: component file"), "{err}");
    assert!(err.contains("nowhere.wasm` does not exist"), "{err}");
    Ok(())
}

#[test]
fn files_that_are_not_components_are_told_apart() -> TestResult {
    let dir = scratch("notwasm")?;
    std::fs::write(dir.join("garbage.wasm"), [0xffu8, 0xfe, 0x00, 0x01, 0x02])?;
    std::fs::write(dir.join("module.wasm"), b"\0asm\x01\0\0\0")?;
    std::fs::write(dir.join("prose.wasm"), "just some text")?;
    let cases = [
        (
            "garbage.wasm",
            "is not WebAssembly: it has no `\\0asm` header",
        ),
        (
            "module.wasm",
            "is a core WebAssembly module, not a component",
        ),
        ("prose.wasm", "is not a valid WebAssembly component"),
    ];
    for (file, expected) in cases {
        let text = format!(
            "{HEADER}components:\n  web:\n    source: {file}\n    bindings: {{wasi:*: host}}\n"
        );
        let err = refused(&manifest(&dir, &text)?)?;
        assert!(err.contains("workload.yaml:5:3: component `web`"), "{err}");
        assert!(err.contains(expected), "{file}: {err}");
    }
    Ok(())
}

#[test]
fn an_unbound_import_names_component_and_import() -> TestResult {
    let dir = scratch("unbound")?;
    let text = format!(
        "{HEADER}components:\n  web:\n    source: {}\n    bindings:\n      wasi:io: host\n",
        hello()
    );
    let err = refused(&manifest(&dir, &text)?)?;
    assert!(
        err.contains("component `web` imports `wasi:http/types@0.2.0`, but no binding covers it"),
        "{err}"
    );
    assert!(err.contains("add `wasi:http/types: host`"), "{err}");
    Ok(())
}

#[test]
fn a_link_to_a_missing_export_is_refused() -> TestResult {
    let dir = scratch("badlink")?;
    let api = repo()
        .join("examples/counter/api.wat")
        .display()
        .to_string();
    let text = format!(
        "{HEADER}components:\n  api:\n    source: {api}\n    bindings:\n      wasi:*: host\n      trellis:example/greeter: {{component: other}}\n  other:\n    source: {}\n    bindings: {{wasi:*: host}}\n",
        hello()
    );
    let err = refused(&manifest(&dir, &text)?)?;
    assert!(
        err.contains("component `other` does not export `trellis:example/greeter`"),
        "{err}"
    );
    Ok(())
}

#[test]
fn provider_bindings_are_refused_by_dev_with_the_reason() -> TestResult {
    let dir = scratch("provider")?;
    let text = format!(
        "{HEADER}components:\n  web:\n    source: {}\n    bindings:\n      wasi:*: host\n      wasi:http/types: {{provider: http-proxy}}\n",
        hello()
    );
    let err = refused(&manifest(&dir, &text)?)?;
    assert!(
        err.contains("needs a lattice (provider bindings run on `trellis host` with NATS)"),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_missing_target_is_an_error() -> TestResult {
    let err = refused(Path::new("/definitely/not/here.wasm"))?;
    assert!(err.contains("no such file"), "{err}");
    Ok(())
}
