//! The lattice's own artifact store: component bytes in a JetStream object
//! store, named by digest, and their signatures in a KV bucket beside it. A
//! lattice needs no registry.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::jetstream::{self, kv, object_store};
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};
use trellis_lattice::{ARTIFACTS_BUCKET, SIGNATURES_BUCKET, Subjects};
use trellis_manifest::Digest;

use crate::Progress;

/// Why the lattice store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// JetStream refused or could not be reached.
    #[error("the lattice artifact store `{bucket}` cannot be used ({operation}): {message}")]
    JetStream {
        /// The bucket.
        bucket: String,
        /// What was attempted.
        operation: &'static str,
        /// The server's or client's reason.
        message: String,
    },
    /// Nothing was ever pushed to this lattice (its store does not exist yet).
    #[error(
        "the lattice has no artifact store `{0}` yet: nothing was pushed (`trellis push`, `trellis apply`)"
    )]
    Empty(String),
    /// No artifact with this digest has been pushed.
    #[error("no artifact {0} in the lattice store (push it with `trellis push`)")]
    NotFound(Digest),
    /// Larger than the caller takes.
    #[error("artifact {digest} is {size} bytes; at most {max} are taken")]
    TooLarge {
        /// The artifact.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// The stored bytes are not what their name says.
    #[error("artifact {expected} in the lattice store has digest {actual}: refused")]
    DigestMismatch {
        /// Its name.
        expected: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
}

/// The lattice's artifacts and signatures.
#[derive(Clone)]
pub struct LatticeStore {
    objects: object_store::ObjectStore,
    signatures: kv::Store,
    bucket: String,
}

impl LatticeStore {
    /// Opens the store of `subjects`' lattice, creating it when `create`
    /// (the operator's `push`); a host only opens it.
    pub async fn open(
        nats: async_nats::Client,
        subjects: &Subjects,
        create: bool,
    ) -> Result<LatticeStore, StoreError> {
        Self::open_with(subjects.jetstream(nats), subjects, create).await
    }

    /// [`LatticeStore::open`] through `js`: the hub's domain, for `trellis mirror`.
    pub async fn open_with(
        js: async_nats::jetstream::Context,
        subjects: &Subjects,
        create: bool,
    ) -> Result<LatticeStore, StoreError> {
        let bucket = subjects.bucket(ARTIFACTS_BUCKET);
        let signatures = subjects.bucket(SIGNATURES_BUCKET);
        let failed = |bucket: &str, operation| {
            let bucket = bucket.to_string();
            move |e: &dyn std::fmt::Display| StoreError::JetStream {
                bucket,
                operation,
                message: e.to_string(),
            }
        };
        let (objects, signatures) = if create {
            let objects = js
                .create_object_store(object_store::Config {
                    bucket: bucket.clone(),
                    description: Some("Trellis component artifacts, by digest".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| failed(&bucket, "create")(&e))?;
            let signatures = js
                .create_key_value(kv::Config {
                    bucket: signatures.clone(),
                    history: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| failed(&signatures, "create")(&e))?;
            (objects, signatures)
        } else {
            // Nothing pushed yet: say so, rather than how opening failed.
            if let Err(e) = js.get_stream(format!("OBJ_{bucket}")).await {
                use async_nats::jetstream::context::GetStreamErrorKind;
                return Err(match e.kind() {
                    GetStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                    {
                        StoreError::Empty(bucket)
                    }
                    _ => failed(&bucket, "open")(&e),
                });
            }
            let objects = js
                .get_object_store(&bucket)
                .await
                .map_err(|e| failed(&bucket, "open")(&e))?;
            let signatures = js
                .get_key_value(&signatures)
                .await
                .map_err(|e| failed(&signatures, "open")(&e))?;
            (objects, signatures)
        };
        Ok(LatticeStore {
            objects,
            signatures,
            bucket,
        })
    }

    fn failed(&self, operation: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError::JetStream {
            bucket: self.bucket.clone(),
            operation,
            message: e.to_string(),
        }
    }

    /// Stores `bytes` under their digest (once: a second push of the same
    /// bytes uploads nothing) and returns the digest.
    pub async fn put(&self, bytes: &[u8], progress: &Progress) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.size(&digest).await?.is_some() {
            return Ok(digest);
        }
        let mut reader = Counting {
            bytes,
            done: 0,
            progress,
        };
        self.objects
            .put(digest.hex().as_str(), &mut reader)
            .await
            .map_err(|e| self.failed("put", e))?;
        progress.finish();
        Ok(digest)
    }

    /// The size of `digest`'s artifact, if stored.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match self.objects.info(digest.hex()).await {
            Ok(info) if !info.deleted => Ok(Some(info.size as u64)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed("info", e)),
        }
    }

    /// The bytes of `digest`, verified, at most `max` of them.
    pub async fn get(
        &self,
        digest: &Digest,
        max: u64,
        progress: &Progress,
    ) -> Result<Vec<u8>, StoreError> {
        let size = self
            .size(digest)
            .await?
            .ok_or(StoreError::NotFound(*digest))?;
        if size > max {
            return Err(StoreError::TooLarge {
                digest: *digest,
                size,
                max,
            });
        }
        let mut object = self
            .objects
            .get(digest.hex())
            .await
            .map_err(|e| self.failed("get", e))?;
        let mut bytes = Vec::with_capacity(size as usize);
        let mut chunk = vec![0u8; 128 << 10];
        loop {
            let n = object
                .read(&mut chunk)
                .await
                .map_err(|e| self.failed("read", e))?;
            if n == 0 {
                break;
            }
            if (bytes.len() + n) as u64 > max {
                return Err(StoreError::TooLarge {
                    digest: *digest,
                    size: (bytes.len() + n) as u64,
                    max,
                });
            }
            bytes.extend_from_slice(&chunk[..n]);
            progress.report(bytes.len() as u64, size);
        }
        progress.finish();
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Records `signature` of `digest` by `signer` (an nkey public key).
    pub async fn put_signature(
        &self,
        digest: &Digest,
        signer: &str,
        signature: &[u8],
    ) -> Result<(), StoreError> {
        self.signatures
            .put(signature_key(digest, signer), signature.to_vec().into())
            .await
            .map_err(|e| self.failed("put signature", e))?;
        Ok(())
    }

    /// The signature of `digest` by `signer`, if one was recorded.
    pub async fn signature(
        &self,
        digest: &Digest,
        signer: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.signatures
            .get(signature_key(digest, signer))
            .await
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| self.failed("get signature", e))
    }
}

/// `<hex>.<signer>`: a KV key (nkey public keys are base32, so they fit).
fn signature_key(digest: &Digest, signer: &str) -> String {
    format!("{}.{signer}", digest.hex())
}

/// Feeds bytes to the object store while telling the progress how far it got.
struct Counting<'a> {
    bytes: &'a [u8],
    done: usize,
    progress: &'a Progress,
}

impl AsyncRead for Counting<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let rest = &self.bytes[self.done..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.done += n;
        self.progress
            .report(self.done as u64, self.bytes.len() as u64);
        Poll::Ready(Ok(()))
    }
}
