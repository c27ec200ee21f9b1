//! Where a component's bytes come from: a local file, an OCI registry, or the
//! lattice's own artifact store. Parsing only; fetching is `trellis-artifacts`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A SHA-256 content digest: what a version of a component is, wherever it is kept.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix: file and
    /// object names.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a source reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// A digest that is not `sha256:` and 64 lowercase hex digits.
    #[error("`{0}` is not a digest: write `sha256:` and 64 lowercase hex digits")]
    Digest(String),
    /// An OCI reference without a registry or repository.
    #[error("`{0}` names no repository: write `oci://REGISTRY/REPOSITORY:TAG` or `…@sha256:…`")]
    NoRepository(String),
    /// A registry host that is not a host name or address with an optional port.
    #[error("`{0}` is not a registry host")]
    Registry(String),
    /// A repository path outside the distribution spec's grammar.
    #[error(
        "`{0}` is not a repository: lowercase letters, digits and `._-` separators, in `/`-separated parts"
    )]
    Repository(String),
    /// A tag outside the distribution spec's grammar.
    #[error("`{0}` is not a tag: at most 128 of `A-Za-z0-9_.-`, not starting with `.` or `-`")]
    Tag(String),
    /// A scheme Trellis does not fetch from.
    #[error("`{0}://` sources are not supported: give a path, `oci://…` or `lattice://sha256:…`")]
    Scheme(String),
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refused = || ReferenceError::Digest(text.to_string());
        let hex = text.strip_prefix("sha256:").ok_or_else(refused)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(refused());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| refused())?;
        }
        Ok(Digest(bytes))
    }
}

/// A tag or a digest: what an OCI reference points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OciVersion {
    /// A tag, which may move; `trellis apply` resolves it to a digest.
    Tag(String),
    /// An image manifest's digest, which never moves.
    Digest(Digest),
}

/// `oci://registry/repository:tag` or `…@sha256:…`, in the Wasm OCI artifact layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciReference {
    /// `host[:port]`.
    pub registry: String,
    /// `path/to/repo`.
    pub repository: String,
    /// The tag or manifest digest (a tag beside a digest is dropped: the digest decides).
    pub version: OciVersion,
}

impl OciReference {
    /// The same artifact pinned to `digest`, as `trellis apply` records it.
    pub fn pinned(&self, digest: Digest) -> OciReference {
        OciReference {
            version: OciVersion::Digest(digest),
            ..self.clone()
        }
    }

    /// Whether the registry is on a loopback address, where plain HTTP is
    /// used (as docker does).
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.registry,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        match &self.version {
            OciVersion::Tag(tag) => write!(f, ":{tag}"),
            OciVersion::Digest(digest) => write!(f, "@{digest}"),
        }
    }
}

impl FromStr for OciReference {
    type Err = ReferenceError;

    /// Parses the text after `oci://`, or with it.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text.strip_prefix("oci://").unwrap_or(text);
        let (name, digest) = match rest.split_once('@') {
            Some((name, digest)) => (name, Some(digest.parse::<Digest>()?)),
            None => (rest, None),
        };
        let (registry, path) = name
            .split_once('/')
            .filter(|(r, p)| !r.is_empty() && !p.is_empty())
            .ok_or_else(|| ReferenceError::NoRepository(text.to_string()))?;
        if registry.len() > 255
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(ReferenceError::Registry(registry.to_string()));
        }
        // A tag follows the last `:` of the last path part.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (path, None),
        };
        if !valid_repository(repository) {
            return Err(ReferenceError::Repository(repository.to_string()));
        }
        let version = match (digest, tag) {
            (Some(digest), _) => OciVersion::Digest(digest),
            (None, Some(tag)) if valid_tag(tag) => OciVersion::Tag(tag.to_string()),
            (None, Some(tag)) => return Err(ReferenceError::Tag(tag.to_string())),
            (None, None) => OciVersion::Tag("latest".into()),
        };
        Ok(OciReference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            version,
        })
    }
}

/// `[a-z0-9]+([._-][a-z0-9]+)*` parts joined by `/`, at most 255 bytes.
fn valid_repository(repository: &str) -> bool {
    repository.len() <= 255
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part.split(['.', '_', '-']).all(|run| {
                    !run.is_empty() && run.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9'))
                })
        })
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Where a component's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentSource {
    /// A local file (binary component or component text), resolved against the manifest's folder.
    File(PathBuf),
    /// An OCI registry.
    Oci(OciReference),
    /// The lattice's artifact store (`trellis push`), by content digest.
    Lattice(Digest),
}

impl ComponentSource {
    /// Parses a non-file reference (`oci://…`, `lattice://sha256:…`); `None`
    /// for text without a scheme, which is a path.
    pub fn parse_reference(text: &str) -> Option<Result<ComponentSource, ReferenceError>> {
        let (scheme, rest) = text.split_once("://")?;
        Some(match scheme {
            "oci" => rest.parse().map(ComponentSource::Oci),
            "lattice" => rest.parse().map(ComponentSource::Lattice),
            other => Err(ReferenceError::Scheme(other.to_string())),
        })
    }

    /// The digest the bytes must have, when the reference says.
    pub fn content_digest(&self) -> Option<Digest> {
        match self {
            ComponentSource::Lattice(digest) => Some(*digest),
            ComponentSource::File(_) | ComponentSource::Oci(_) => None,
        }
    }
}

impl fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentSource::File(path) => write!(f, "{}", path.display()),
            ComponentSource::Oci(reference) => write!(f, "{reference}"),
            ComponentSource::Lattice(digest) => write!(f, "lattice://{digest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn references_parse_and_print_back() {
        for text in [
            "oci://ghcr.io/acme/hello:1.0",
            "oci://127.0.0.1:5000/a/b-c/d_e:v1",
            &format!("oci://localhost:5000/hello@sha256:{HEX}"),
            &format!("lattice://sha256:{HEX}"),
        ] {
            let source = ComponentSource::parse_reference(text).map(|r| r.map(|s| s.to_string()));
            assert_eq!(source, Some(Ok(text.to_string())));
        }
        let latest = "oci://r.io/x".parse::<OciReference>().map(|r| r.version);
        assert_eq!(latest, Ok(OciVersion::Tag("latest".into())));
        assert_eq!(ComponentSource::parse_reference("hello.wasm"), None);
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (text, want) in [
            ("oci://ghcr.io", "names no repository"),
            ("oci://ghcr.io/Acme/x:1", "is not a repository"),
            ("oci://ghcr.io/a//b:1", "is not a repository"),
            ("oci://ghcr.io/a:.x", "is not a tag"),
            ("oci://ghcr.io/a@sha256:12", "is not a digest"),
            ("lattice://sha256:ZZ", "is not a digest"),
            ("lattice://md5:00", "is not a digest"),
            ("http://x/y", "sources are not supported"),
            ("oci://gh cr.io/a:1", "is not a registry host"),
        ] {
            match ComponentSource::parse_reference(text) {
                Some(Err(e)) => assert!(e.to_string().contains(want), "{text}: {e}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn loopback_registries_are_recognised() {
        for (registry, loopback) in [
            ("127.0.0.1:5000", true),
            ("localhost:5000", true),
            ("[::1]:5000", true),
            ("ghcr.io", false),
            ("10.0.0.1:5000", false),
        ] {
            let reference = format!("oci://{registry}/x:1").parse::<OciReference>();
            assert_eq!(
                reference.map(|r| r.is_loopback()),
                Ok(loopback),
                "{registry}"
            );
        }
    }

    #[test]
    fn a_digest_is_the_sha256_of_the_bytes() {
        assert_eq!(Digest::of(b"foo").hex(), HEX);
    }
}
