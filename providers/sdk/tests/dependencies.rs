//! A provider built on the SDK compiles the lattice crate and nothing of the
//! host's: no manifest parser, no scheduler, no control API.

use std::process::Command;

#[test]
fn the_sdk_depends_on_the_lattice_only() -> Result<(), Box<dyn std::error::Error>> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", "trellis-provider-sdk", "-e", "normal"])
        .args(["--prefix", "none", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout)?;
    assert!(tree.contains("trellis-lattice"), "{tree}");
    for forbidden in [
        "saphyr-parser",
        "trellis-manifest",
        "trellis-scheduler",
        "trellis-control-api",
        "wasmtime",
    ] {
        assert!(
            !tree.contains(forbidden),
            "the SDK pulls in {forbidden}:\n{tree}"
        );
    }
    Ok(())
}
