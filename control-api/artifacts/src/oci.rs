//! OCI registries, in the Wasm OCI artifact layout: a manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is the
//! component (`application/wasm`). Credentials come from the usual docker
//! config; registries on loopback addresses are spoken to over plain HTTP, as
//! docker does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use trellis_manifest::{Digest, OciReference, OciVersion};

use crate::Progress;

/// The config media type of a Wasm artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type of a component.
pub const WASM_LAYER: &str = "application/wasm";
/// The layer media type older tools (wasm-to-oci) push; accepted on pull.
const LEGACY_WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// The largest manifest read.
const MAX_MANIFEST: usize = 1 << 20;

/// Why a registry operation failed; each names the reference.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The registry could not be reached at all.
    #[error("registry `{registry}` is unreachable for {reference}: {message}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The reference.
        reference: String,
        /// The transport's reason.
        message: String,
    },
    /// No such repository, tag or digest.
    #[error("{0} was not found in its registry")]
    NotFound(String),
    /// The registry refused the credentials (or their absence).
    #[error(
        "registry refused access to {reference}: {message} (credentials come from the docker config, `docker login`)"
    )]
    Denied {
        /// The reference.
        reference: String,
        /// The registry's reason.
        message: String,
    },
    /// What the registry serves is not a Wasm component artifact.
    #[error("{reference} is not a Wasm component artifact: {why}")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What is wrong with it.
        why: String,
    },
    /// The bytes are not what the reference or manifest says.
    #[error("{reference}: digest mismatch, expected {expected}, got {actual}")]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// What the reference or manifest names.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// Larger than the caller takes.
    #[error("{reference} is {size} bytes; at most {max} are taken")]
    TooLarge {
        /// The reference.
        reference: String,
        /// Its layer's declared size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// Anything else the registry or client reported.
    #[error("registry error for {reference}: {message}")]
    Registry {
        /// The reference.
        reference: String,
        /// The reason.
        message: String,
    },
}

/// A component pulled from a registry.
#[derive(Debug)]
pub struct Pulled {
    /// The image manifest's digest (what `@sha256:…` pins).
    pub manifest: Digest,
    /// The component's own digest (its layer).
    pub content: Digest,
    /// The component.
    pub bytes: Vec<u8>,
}

/// A registry manifest read and checked: the component it names, not yet downloaded.
#[derive(Debug, Clone)]
pub struct Located {
    /// The image manifest's digest.
    pub manifest: Digest,
    /// The component's own digest (its layer).
    pub content: Digest,
    size: u64,
    layer: oci_client::manifest::OciDescriptor,
}

/// Registry clients, one per registry (plain HTTP for loopback ones).
#[derive(Default)]
pub struct Registries {
    clients: Mutex<HashMap<String, Client>>,
}

impl Registries {
    /// No clients yet; each is made on first use.
    pub fn new() -> Registries {
        Registries::default()
    }

    fn client(&self, reference: &OciReference) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(reference.registry.clone())
            .or_insert_with(|| {
                Client::new(ClientConfig {
                    protocol: if reference.is_loopback() {
                        ClientProtocol::Http
                    } else {
                        ClientProtocol::Https
                    },
                    connect_timeout: Some(Duration::from_secs(5)),
                    read_timeout: Some(Duration::from_secs(30)),
                    ..Default::default()
                })
            })
            .clone()
    }

    /// The digest `reference` names now (a tag resolved; a digest checked to exist).
    pub async fn resolve(&self, reference: &OciReference) -> Result<Digest, OciError> {
        let image = image(reference);
        let digest = self
            .client(reference)
            .fetch_manifest_digest(&image, &auth(reference))
            .await
            .map_err(|e| classify(reference, e))?;
        digest.parse().map_err(|_| OciError::Registry {
            reference: reference.to_string(),
            message: format!("the registry answered with digest `{digest}`"),
        })
    }

    /// Pulls the component `reference` names, verifying the manifest against
    /// a pinned digest and the layer against the manifest; at most `max` bytes.
    pub async fn pull(
        &self,
        reference: &OciReference,
        max: u64,
        progress: &Progress,
    ) -> Result<Pulled, OciError> {
        let located = self.locate(reference, max).await?;
        let bytes = self.download(reference, &located, progress).await?;
        Ok(Pulled {
            manifest: located.manifest,
            content: located.content,
            bytes,
        })
    }

    /// Reads and checks the manifest `reference` names (a pinned digest
    /// verified): which component it holds, before anything is downloaded.
    pub async fn locate(&self, reference: &OciReference, max: u64) -> Result<Located, OciError> {
        let client = self.client(reference);
        let image = image(reference);
        let (raw, _) = client
            .pull_manifest_raw(&image, &auth(reference), &[OCI_IMAGE_MEDIA_TYPE])
            .await
            .map_err(|e| classify(reference, e))?;
        if raw.len() > MAX_MANIFEST {
            return Err(not_wasm(reference, "its manifest is larger than 1 MiB"));
        }
        let manifest_digest = Digest::of(&raw);
        if let OciVersion::Digest(expected) = &reference.version
            && *expected != manifest_digest
        {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                expected: expected.to_string(),
                actual: manifest_digest.to_string(),
            });
        }
        let manifest: OciImageManifest = serde_json::from_slice(&raw).map_err(|e| {
            not_wasm(
                reference,
                &format!("its manifest is not an OCI image manifest: {e}"),
            )
        })?;
        if manifest.config.media_type != WASM_CONFIG
            && manifest.config.media_type != oci_client::manifest::WASM_CONFIG_MEDIA_TYPE
        {
            return Err(not_wasm(
                reference,
                &format!(
                    "its config is `{}`, not `{WASM_CONFIG}`",
                    manifest.config.media_type
                ),
            ));
        }
        let [layer] = &manifest.layers[..] else {
            return Err(not_wasm(
                reference,
                &format!("it has {} layers, not one", manifest.layers.len()),
            ));
        };
        if layer.media_type != WASM_LAYER && layer.media_type != LEGACY_WASM_LAYER {
            return Err(not_wasm(
                reference,
                &format!("its layer is `{}`, not `{WASM_LAYER}`", layer.media_type),
            ));
        }
        if layer.urls.as_ref().is_some_and(|urls| !urls.is_empty()) {
            // oci-client would fetch them, unauthenticated, wherever they point.
            return Err(not_wasm(
                reference,
                "its layer names foreign URLs, which are never fetched",
            ));
        }
        let size = u64::try_from(layer.size).unwrap_or(u64::MAX);
        if size > max {
            return Err(OciError::TooLarge {
                reference: reference.to_string(),
                size,
                max,
            });
        }
        let content: Digest = layer.digest.parse().map_err(|_| {
            not_wasm(
                reference,
                &format!("its layer digest `{}` is not sha256", layer.digest),
            )
        })?;
        Ok(Located {
            manifest: manifest_digest,
            content,
            size,
            layer: layer.clone(),
        })
    }

    /// Downloads the component `located` names, verified against its digest.
    pub async fn download(
        &self,
        reference: &OciReference,
        located: &Located,
        progress: &Progress,
    ) -> Result<Vec<u8>, OciError> {
        let (size, content) = (located.size, located.content);
        let mut stream = self
            .client(reference)
            .pull_blob_stream(&image(reference), &located.layer)
            .await
            .map_err(|e| classify(reference, e))?;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| broken_download(reference, e))?;
            if (bytes.len() + chunk.len()) as u64 > size {
                return Err(OciError::TooLarge {
                    reference: reference.to_string(),
                    size: (bytes.len() + chunk.len()) as u64,
                    max: size,
                });
            }
            bytes.extend_from_slice(&chunk);
            progress.report(bytes.len() as u64, size);
        }
        progress.finish();
        let actual = Digest::of(&bytes);
        if actual != content {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                expected: content.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Pushes `bytes` as a component artifact to `reference` (a tag) and
    /// returns the manifest's digest.
    pub async fn push(&self, reference: &OciReference, bytes: &[u8]) -> Result<Digest, OciError> {
        let client = self.client(reference);
        let image = image(reference);
        let content = Digest::of(bytes);
        let config = serde_json::json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [content.to_string()],
        });
        let layers = [ImageLayer::new(
            bytes.to_vec(),
            WASM_LAYER.to_string(),
            None,
        )];
        let config = Config::new(
            config.to_string().into_bytes(),
            WASM_CONFIG.to_string(),
            None,
        );
        client
            .push(&image, &layers, config, &auth(reference), None)
            .await
            .map_err(|e| classify(reference, e))?;
        self.resolve(reference).await
    }
}

fn image(reference: &OciReference) -> Reference {
    match &reference.version {
        OciVersion::Tag(tag) => Reference::with_tag(
            reference.registry.clone(),
            reference.repository.clone(),
            tag.clone(),
        ),
        OciVersion::Digest(digest) => Reference::with_digest(
            reference.registry.clone(),
            reference.repository.clone(),
            digest.to_string(),
        ),
    }
}

/// Credentials for the registry from the docker config (`~/.docker/config.json`
/// or `DOCKER_CONFIG`), anonymous when there are none.
fn auth(reference: &OciReference) -> RegistryAuth {
    match docker_credential::get_credential(&reference.registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        Err(_) => RegistryAuth::Anonymous,
    }
}

/// A layer stream's error: the client's own digest check, or a broken transfer.
fn broken_download(reference: &OciReference, error: std::io::Error) -> OciError {
    let digest = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>());
    match digest {
        Some(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            OciError::DigestMismatch {
                reference: reference.to_string(),
                expected: expected.clone(),
                actual: actual.clone(),
            }
        }
        _ => OciError::Registry {
            reference: reference.to_string(),
            message: format!("the layer download broke off: {error}"),
        },
    }
}

fn not_wasm(reference: &OciReference, why: &str) -> OciError {
    OciError::NotWasm {
        reference: reference.to_string(),
        why: why.to_string(),
    }
}

/// Sorts the client's error into what a user can act on.
fn classify(reference: &OciReference, error: OciDistributionError) -> OciError {
    let text = reference.to_string();
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => OciError::NotFound(text),
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            OciError::NotFound(text)
        }
        OciDistributionError::ServerError { code: 404, .. } => OciError::NotFound(text),
        OciDistributionError::ServerError {
            code: code @ (401 | 403),
            url,
            ..
        } => OciError::Denied {
            reference: text,
            message: format!("{code} at {url}"),
        },
        OciDistributionError::RegistryError { envelope, url }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            OciError::Denied {
                reference: text,
                message: format!("unauthorized at {url}"),
            }
        }
        OciDistributionError::UnauthorizedError { url } => OciError::Denied {
            reference: text,
            message: format!("unauthorized at {url}"),
        },
        OciDistributionError::AuthenticationFailure(message) => OciError::Denied {
            reference: text,
            message,
        },
        OciDistributionError::DigestError(e) => OciError::DigestMismatch {
            reference: text,
            expected: "the digest its manifest names".into(),
            actual: e.to_string(),
        },
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            OciError::Unreachable {
                registry: reference.registry.clone(),
                reference: text,
                message: e.to_string(),
            }
        }
        other => OciError::Registry {
            reference: text,
            message: other.to_string(),
        },
    }
}
