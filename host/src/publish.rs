//! The operator's artifact commands: `push` and `sign`, and what `apply` does
//! before it records a manifest: every local source uploaded to the lattice
//! store and every registry tag resolved, so the desired state names bytes by
//! digest and no host needs the operator's files.

use std::io::Write as _;
use std::path::Path;

use trellis_artifacts::{LatticeStore, MAX_ARTIFACT_BYTES, Progress, Registries, sign};
use trellis_lattice::NatsArgs;
use trellis_manifest::yaml::Pos;
use trellis_manifest::{ComponentSource, Digest, OciReference, OciVersion, Workload};

use crate::cli::Outcome;

/// `trellis push FILE [oci://REF] [--sign]`.
pub async fn push(
    nats: &NatsArgs,
    file: &Path,
    registry: Option<&OciReference>,
    signed: bool,
) -> Outcome {
    if let Some(reference) = registry.filter(|r| matches!(r.version, OciVersion::Digest(_))) {
        return Outcome::Invalid(format!(
            "{reference}: push to a tag (`oci://REGISTRY/REPO:TAG`); the digest is the registry's to make"
        ));
    }
    let bytes = match read_component(file) {
        Ok(bytes) => bytes,
        Err(message) => return Outcome::Invalid(message),
    };
    let signer = match signed.then(|| signer(nats)).transpose() {
        Ok(signer) => signer,
        Err(outcome) => return outcome,
    };
    let store = match open_store(nats).await {
        Ok(store) => store,
        Err(outcome) => return outcome,
    };
    let digest = match store.put(&bytes, &progress("uploading")).await {
        Ok(digest) => digest,
        Err(e) => return Outcome::Unreachable(e.to_string()),
    };
    say!("lattice://{digest}");
    // Signed before the registry push, so a registry failure leaves no unsigned copy behind.
    if let Some(signer) = &signer
        && let Err(outcome) = record_signature(&store, signer, &digest).await
    {
        return outcome;
    }
    if let Some(reference) = registry {
        match Registries::new().push(reference, &bytes).await {
            Ok(manifest) => say!("{}", reference.pinned(manifest)),
            Err(e) => return Outcome::Refused(e.to_string()),
        }
    }
    Outcome::Done
}

/// `trellis sign REF`: a lattice artifact, a registry artifact (pulled to
/// learn and check its content digest) or a local file.
pub async fn sign_artifact(nats: &NatsArgs, target: &str) -> Outcome {
    let signer = match signer(nats) {
        Ok(signer) => signer,
        Err(outcome) => return outcome,
    };
    let store = match open_store(nats).await {
        Ok(store) => store,
        Err(outcome) => return outcome,
    };
    let digest = match ComponentSource::parse_reference(target) {
        Some(Err(e)) => return Outcome::Invalid(e.to_string()),
        Some(Ok(ComponentSource::Lattice(digest))) => match store.size(&digest).await {
            Ok(Some(_)) => digest,
            Ok(None) => {
                return Outcome::Refused(format!(
                    "no artifact {digest} in the lattice store (push it with `trellis push`)"
                ));
            }
            Err(e) => return Outcome::Unreachable(e.to_string()),
        },
        Some(Ok(ComponentSource::Oci(reference)))
            if matches!(reference.version, OciVersion::Tag(_)) =>
        {
            return Outcome::Invalid(format!(
                "{reference}: sign a pinned reference (`oci://…@sha256:…`, as `trellis push` \
                 prints it): by the time hosts pull, a tag may name other bytes"
            ));
        }
        Some(Ok(ComponentSource::Oci(reference))) => {
            match Registries::new()
                .pull(&reference, MAX_ARTIFACT_BYTES, &progress("pulling"))
                .await
            {
                Ok(pulled) => pulled.content,
                Err(e) => return Outcome::Refused(e.to_string()),
            }
        }
        Some(Ok(ComponentSource::File(_))) | None => match read_component(Path::new(target)) {
            Ok(bytes) => Digest::of(&bytes),
            Err(message) => return Outcome::Invalid(message),
        },
    };
    record_signature(&store, &signer, &digest)
        .await
        .err()
        .unwrap_or(Outcome::Done)
}

/// What `trellis apply` records instead of `text`: the same manifest with
/// every local source replaced by its `lattice://` digest (uploaded first)
/// and every registry tag by the digest it names now. Only those values
/// change; comments and layout stay as written. With `signed`, every
/// component's content digest is signed with the operator's key as well
/// (registry components are pulled to learn it).
pub async fn pin_sources(
    nats: &NatsArgs,
    text: &str,
    file: &Path,
    workload: &Workload,
    signed: bool,
) -> Result<String, Outcome> {
    let signer = signed.then(|| signer(nats)).transpose()?;
    let mut pinned = Vec::new();
    let mut store = None;
    let registries = Registries::new();
    for component in &workload.components {
        if store.is_none() && (signed || matches!(component.source, ComponentSource::File(_))) {
            store = Some(open_store(nats).await?);
        }
        let (source, content) = match &component.source {
            ComponentSource::File(path) => {
                let bytes = read_component(path).map_err(Outcome::Invalid)?;
                let Some(store) = &store else { continue };
                let digest = store
                    .put(&bytes, &progress(&format!("uploading {}", component.name)))
                    .await
                    .map_err(|e| Outcome::Unreachable(e.to_string()))?;
                (Some(ComponentSource::Lattice(digest)), Some(digest))
            }
            ComponentSource::Oci(reference) => {
                let refused = |e: trellis_artifacts::OciError| {
                    Outcome::Refused(format!("component `{}`: {e}", component.name))
                };
                let pinned = match reference.version {
                    OciVersion::Tag(_) => {
                        let digest = registries.resolve(reference).await.map_err(refused)?;
                        reference.pinned(digest)
                    }
                    OciVersion::Digest(_) => reference.clone(),
                };
                let content = match signer {
                    Some(_) => Some(
                        registries
                            .pull(
                                &pinned,
                                MAX_ARTIFACT_BYTES,
                                &progress(&format!("pulling {}", component.name)),
                            )
                            .await
                            .map_err(refused)?
                            .content,
                    ),
                    None => None,
                };
                let changed = (pinned != *reference).then_some(ComponentSource::Oci(pinned));
                (changed, content)
            }
            ComponentSource::Lattice(digest) => (None, Some(*digest)),
        };
        if let (Some(signer), Some(digest), Some(store)) = (&signer, content, &store) {
            record_signature(store, signer, &digest).await?;
        }
        if let Some(source) = source {
            say!("component {}: {source}", component.name);
            pinned.push((component.source_pos, source));
        }
    }
    if pinned.is_empty() {
        return Ok(text.to_string());
    }
    let rewritten = rewrite_sources(text, &pinned);
    // The rewrite is textual: read it back and insist on exactly the pinned sources.
    let base = file.parent().unwrap_or(Path::new("."));
    let reread = rewritten
        .as_deref()
        .ok()
        .and_then(|t| Workload::from_yaml(t, file, base).ok());
    let expected: Vec<&ComponentSource> = workload
        .components
        .iter()
        .map(|c| {
            pinned
                .iter()
                .find(|(pos, _)| *pos == c.source_pos)
                .map_or(&c.source, |(_, s)| s)
        })
        .collect();
    match (rewritten, reread) {
        (Ok(text), Some(reread))
            if reread
                .components
                .iter()
                .map(|c| &c.source)
                .eq(expected.iter().copied()) =>
        {
            Ok(text)
        }
        _ => Err(Outcome::Invalid(format!(
            "{}: cannot pin the components' sources in place: write each `source` as a \
             one-line value",
            file.display()
        ))),
    }
}

/// `text` with the scalar starting at each position replaced by `source`, double-quoted.
fn rewrite_sources(text: &str, sources: &[(Pos, ComponentSource)]) -> Result<String, ()> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let mut sources: Vec<&(Pos, ComponentSource)> = sources.iter().collect();
    // Right to left, so the columns still to replace stay where they were.
    sources.sort_by_key(|(pos, _)| std::cmp::Reverse((pos.line, pos.column)));
    for (pos, source) in sources {
        let line = lines.get_mut(pos.line.wrapping_sub(1)).ok_or(())?;
        let start = line
            .char_indices()
            .nth(pos.column.wrapping_sub(1))
            .map(|(i, _)| i)
            .ok_or(())?;
        // Only the value of a `source` key, and never an anchor or alias
        // (another node shares it), may be rewritten.
        let key = line[..start]
            .trim_end()
            .strip_suffix(':')
            .ok_or(())?
            .trim_end();
        if !["source", "\"source\"", "'source'"]
            .iter()
            .any(|k| key.ends_with(k))
            || line[start..].starts_with(['&', '*'])
        {
            return Err(());
        }
        let len = scalar_len(&line[start..]).ok_or(())?;
        line.replace_range(start..start + len, &format!("\"{source}\""));
    }
    Ok(lines.join("\n"))
}

/// The length of the one-line YAML scalar `rest` starts with.
fn scalar_len(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    match bytes.first()? {
        b'"' => {
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        b'\'' => {
            let mut i = 1;
            while i < bytes.len() {
                match (bytes[i], bytes.get(i + 1)) {
                    (b'\'', Some(b'\'')) => i += 2,
                    (b'\'', _) => return Some(i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        _ => {
            // A plain scalar ends at a comment, a flow indicator (in `{…}`)
            // or the line's end; the read-back catches anything subtler.
            let end = rest.find(" #").unwrap_or(rest.len());
            let end = rest[..end].find([',', '}', ']']).unwrap_or(end);
            Some(rest[..end].trim_end().len())
        }
    }
}

/// A component file in binary form (component text compiled), refused
/// unless it is a component: what a registry holds as `application/wasm`.
fn read_component(path: &Path) -> Result<Vec<u8>, String> {
    trellis_host::read_binary(path, true).map_err(|e| e.to_string())
}

/// The operator's key pair, from `--nats-nkey`.
fn signer(nats: &NatsArgs) -> Result<nkeys::KeyPair, Outcome> {
    nats.nkey_pair()
        .map_err(|e| Outcome::Invalid(e.to_string()))?
        .ok_or_else(|| {
            Outcome::Invalid(
                "signing needs the operator's nkey: give --nats-nkey operator.nk".to_string(),
            )
        })
}

async fn record_signature(
    store: &LatticeStore,
    signer: &nkeys::KeyPair,
    digest: &Digest,
) -> Result<(), Outcome> {
    let signature = sign(signer, digest).map_err(|e| Outcome::Invalid(e.to_string()))?;
    let key = signer.public_key();
    store
        .put_signature(digest, &key, &signature)
        .await
        .map_err(|e| Outcome::Unreachable(e.to_string()))?;
    say!("signed {digest} by {key}");
    Ok(())
}

async fn open_store(nats: &NatsArgs) -> Result<LatticeStore, Outcome> {
    let client = crate::cli::connect(nats).await?;
    LatticeStore::open(client, &nats.subjects(), true)
        .await
        .map_err(|e| Outcome::Unreachable(e.to_string()))
}

/// Progress on stderr, `\r`-rewritten, for artifacts large enough to wait on.
fn progress(what: &str) -> Progress {
    let what = what.to_string();
    Progress::with(move |done, total| {
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{what}: {:.1} of {:.1} MiB",
            done as f64 / 1048576.0,
            total as f64 / 1048576.0
        );
        if done >= total {
            let _ = writeln!(err);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(digest: &[u8]) -> ComponentSource {
        ComponentSource::Lattice(Digest::of(digest))
    }

    #[test]
    fn sources_are_replaced_in_place_keeping_comments_and_layout() {
        let text = "# top\ncomponents:\n  a:\n    source: ./a.wasm   # local\n  b: {source: 'b.wat', bindings: {}}\n  c:\n    source: \"c.wasm\"\n";
        let at = |line, column| Pos { line, column };
        let sources = [
            (at(4, 13), pinned(b"a")),
            (at(5, 15), pinned(b"b")),
            (at(7, 13), pinned(b"c")),
        ];
        let Ok(out) = rewrite_sources(text, &sources) else {
            panic!("the rewrite failed");
        };
        let expected = format!(
            "# top\ncomponents:\n  a:\n    source: \"{}\"   # local\n  b: {{source: \"{}\", bindings: {{}}}}\n  c:\n    source: \"{}\"\n",
            sources[0].1, sources[1].1, sources[2].1
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn positions_outside_the_text_are_refused() {
        let text = "components:\n  a:\n    source: x\n";
        let far = Pos { line: 9, column: 1 };
        assert!(rewrite_sources(text, &[(far, pinned(b"x"))]).is_err());
        // Only a `source` value, never an anchor or alias another node shares.
        let anchored = "env: {X: &p ./a.wasm}\ncomponents:\n  a:\n    source: *p\n";
        let env_value = Pos {
            line: 1,
            column: 10,
        };
        assert!(rewrite_sources(anchored, &[(env_value, pinned(b"a"))]).is_err());
        let alias = Pos {
            line: 4,
            column: 13,
        };
        assert!(rewrite_sources(anchored, &[(alias, pinned(b"a"))]).is_err());
        assert_eq!(scalar_len("\"unterminated"), None);
        assert_eq!(scalar_len("'it''s' # c"), Some(7));
    }
}
