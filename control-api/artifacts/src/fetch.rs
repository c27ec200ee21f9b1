//! How a host gets a component's bytes: the disk cache first, then the
//! lattice store or the registry, every copy verified against its digest,
//! and (when the host trusts signers) its signature checked.

use std::time::Duration;

use tokio::sync::OnceCell;
use trellis_lattice::Subjects;
use trellis_manifest::{ComponentSource, Digest, OciReference, OciVersion};

use crate::Progress;
use crate::cache::{CacheError, DiskCache, Pin};
use crate::oci::{OciError, Registries};
use crate::signing::Trust;
use crate::store::{LatticeStore, StoreError};

/// The longest a fetch may take, however slowly a registry or the lattice
/// sends: a start then fails instead of waiting forever.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a component's artifact could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The lattice store refused or lacks it.
    #[error(transparent)]
    Lattice(#[from] StoreError),
    /// The registry refused or lacks it.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// A `lattice://` source where no lattice is connected.
    #[error("`{0}` is in a lattice store, and this host is not on a lattice")]
    NoLattice(String),
    /// A registry outside the host's allow list.
    #[error("registry `{registry}` is not one this host pulls from (--allow-registry: {allowed})")]
    RegistryNotAllowed {
        /// The reference's registry.
        registry: String,
        /// The registries the host allows.
        allowed: String,
    },
    /// A local file, which the host reads itself (inside its sandbox).
    #[error("`{0}` is a local file, not an artifact to fetch")]
    LocalFile(String),
    /// The cache could not be written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The fetch took longer than [`FETCH_TIMEOUT`].
    #[error("fetching {what} took longer than {after:?}: given up")]
    Timeout {
        /// The source.
        what: String,
        /// The bound.
        after: Duration,
    },
    /// No trusted signature.
    #[error(
        "artifact {digest} has no signature by a key this host trusts ({signers}): sign it with `trellis sign` or `trellis push --sign`"
    )]
    Unsigned {
        /// The artifact.
        digest: Digest,
        /// The keys the host trusts.
        signers: String,
    },
    /// A signature by a trusted key that does not verify.
    #[error(
        "artifact {digest} has a signature by `{signer}` that does not verify: refused (tampered artifact or signature)"
    )]
    BadSignature {
        /// The artifact.
        digest: Digest,
        /// Whose it claims to be.
        signer: String,
    },
}

/// A component's bytes and digest, kept in the cache while the pin lives.
#[derive(Debug)]
pub struct Artifact {
    /// The component's own digest.
    pub digest: Digest,
    /// The component.
    pub bytes: Vec<u8>,
    /// Keeps it from eviction while a workload holds it.
    pub pin: Option<Pin>,
}

/// Where a host's artifacts come from.
pub struct Fetcher {
    cache: Option<DiskCache>,
    nats: Option<(async_nats::Client, Subjects)>,
    store: OnceCell<LatticeStore>,
    registries: Registries,
    trust: Trust,
    max_bytes: u64,
    allowed_registries: Option<Vec<String>>,
}

impl Fetcher {
    /// A fetcher taking components of at most `max_bytes`; `nats` for
    /// `lattice://` sources and signatures, `cache` for a disk cache.
    pub fn new(
        cache: Option<DiskCache>,
        nats: Option<(async_nats::Client, Subjects)>,
        trust: Trust,
        max_bytes: u64,
    ) -> Fetcher {
        Fetcher {
            cache,
            nats,
            store: OnceCell::new(),
            registries: Registries::new(),
            trust,
            max_bytes,
            allowed_registries: None,
        }
    }

    /// Pulls only from these registries (`host[:port]`, as references name
    /// them); without a call, from any.
    pub fn allow_registries(mut self, registries: Vec<String>) -> Fetcher {
        self.allowed_registries = Some(registries);
        self
    }

    /// The lattice store, opened on first use (a host starts before anyone pushes).
    async fn store(&self, what: &str) -> Result<&LatticeStore, FetchError> {
        let (nats, subjects) = self
            .nats
            .as_ref()
            .ok_or_else(|| FetchError::NoLattice(what.to_string()))?;
        Ok(self
            .store
            .get_or_try_init(|| LatticeStore::open(nats.clone(), subjects, false))
            .await?)
    }

    /// The bytes of a registry or lattice source, verified (and signature-checked
    /// when the host requires one), within [`FETCH_TIMEOUT`]. `File` sources
    /// are the host's to read.
    pub async fn fetch(&self, source: &ComponentSource) -> Result<Artifact, FetchError> {
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_unbounded(source))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    what: source.to_string(),
                    after: FETCH_TIMEOUT,
                })
            })
    }

    async fn fetch_unbounded(&self, source: &ComponentSource) -> Result<Artifact, FetchError> {
        let artifact = match source {
            ComponentSource::Lattice(digest) => {
                // The digest is known: refuse an unsigned one before downloading it.
                self.check_signature(digest).await?;
                return self.fetch_lattice(digest).await;
            }
            ComponentSource::Oci(reference) => {
                if let Some(allowed) = &self.allowed_registries
                    && !allowed.contains(&reference.registry)
                {
                    return Err(FetchError::RegistryNotAllowed {
                        registry: reference.registry.clone(),
                        allowed: allowed.join(", "),
                    });
                }
                let pinned = match &reference.version {
                    OciVersion::Digest(manifest) => self
                        .cache
                        .as_ref()
                        .and_then(|c| c.reference(manifest))
                        .and_then(|content| self.cached(&content)),
                    OciVersion::Tag(_) => None,
                };
                match pinned {
                    Some(artifact) => artifact,
                    None => self.fetch_oci(reference).await?,
                }
            }
            ComponentSource::File(path) => {
                return Err(FetchError::LocalFile(path.display().to_string()));
            }
        };
        self.check_signature(&artifact.digest).await?;
        Ok(artifact)
    }

    /// A registry component: its manifest first, then the cache or (signature
    /// checked first on a trusting host) the download.
    async fn fetch_oci(&self, reference: &OciReference) -> Result<Artifact, FetchError> {
        let located = self.registries.locate(reference, self.max_bytes).await?;
        let artifact = match self.cached(&located.content) {
            Some(artifact) => artifact,
            None => {
                self.check_signature(&located.content).await?;
                let bytes = self
                    .registries
                    .download(reference, &located, &Progress::none())
                    .await?;
                let pin = self.keep(&located.content, &bytes)?;
                Artifact {
                    digest: located.content,
                    bytes,
                    pin,
                }
            }
        };
        if let (Some(cache), OciVersion::Digest(_)) = (&self.cache, &reference.version) {
            cache.put_reference(&located.manifest, &located.content)?;
        }
        Ok(artifact)
    }

    fn cached(&self, digest: &Digest) -> Option<Artifact> {
        let cache = self.cache.as_ref()?;
        let pin = cache.pin(*digest);
        let bytes = cache.get(digest, self.max_bytes)?;
        Some(Artifact {
            digest: *digest,
            bytes,
            pin: Some(pin),
        })
    }

    fn keep(&self, digest: &Digest, bytes: &[u8]) -> Result<Option<Pin>, FetchError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let pin = cache.pin(*digest);
        cache.put(digest, bytes)?;
        Ok(Some(pin))
    }

    async fn fetch_lattice(&self, digest: &Digest) -> Result<Artifact, FetchError> {
        if let Some(artifact) = self.cached(digest) {
            return Ok(artifact);
        }
        let store = match self.store(&format!("lattice://{digest}")).await {
            Err(FetchError::Lattice(StoreError::Empty(_))) => {
                return Err(StoreError::NotFound(*digest).into());
            }
            other => other?,
        };
        let bytes = store.get(digest, self.max_bytes, &Progress::none()).await?;
        let pin = self.keep(digest, &bytes)?;
        Ok(Artifact {
            digest: *digest,
            bytes,
            pin,
        })
    }

    /// Refuses `digest` unless a trusted key signed it (nothing to check when
    /// the host trusts no keys). Signatures come from the cache or the lattice.
    pub async fn check_signature(&self, digest: &Digest) -> Result<(), FetchError> {
        if !self.trust.is_required() {
            return Ok(());
        }
        let mut bad = None;
        for signer in self.trust.signers() {
            let cached = self
                .cache
                .as_ref()
                .and_then(|c| c.signature(digest, signer));
            let signature = match cached {
                Some(signature) => Some(signature),
                None => match self.store("signatures").await {
                    Ok(store) => store.signature(digest, signer).await?,
                    Err(FetchError::NoLattice(_) | FetchError::Lattice(StoreError::Empty(_))) => {
                        None
                    }
                    Err(e) => return Err(e),
                },
            };
            let Some(signature) = signature else { continue };
            if !self.trust.verifies(signer, digest, &signature) {
                // Another trusted key may still have signed it.
                bad.get_or_insert_with(|| signer.to_string());
                continue;
            }
            if let Some(cache) = &self.cache {
                cache.put_signature(digest, signer, &signature)?;
            }
            return Ok(());
        }
        if let Some(signer) = bad {
            return Err(FetchError::BadSignature {
                digest: *digest,
                signer,
            });
        }
        Err(FetchError::Unsigned {
            digest: *digest,
            signers: self.trust.signers().collect::<Vec<_>>().join(", "),
        })
    }

    /// Whether this host runs only signed artifacts.
    pub fn signatures_required(&self) -> bool {
        self.trust.is_required()
    }

    /// The registry clients (for `trellis apply`'s tag resolution).
    pub fn registries(&self) -> &Registries {
        &self.registries
    }
}
