//! Uploads a part per call, written straight into the object store's layout
//! (NATS ADR-20): parts become chunk messages under a fresh id, and the commit
//! publishes the object's metadata, which is what makes it visible. Each part
//! returns once JetStream has acknowledged its chunks, which is the upload's
//! flow control. Any replica can take any part: the upload's state travels
//! with the caller.

use async_nats::HeaderMap;
use async_nats::jetstream::object_store::{ObjectInfo, ObjectOptions};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use bytes::Bytes;
use trellis_provider_sdk::Caller;

use crate::bindings::exports::trellis::blobstore::objects::Upload;
use crate::containers::Containers;

/// Bytes per chunk message, the object store's usual size.
const CHUNK: usize = 128 << 10;

fn chunk_subject(bucket: &str, id: &str) -> String {
    format!("$O.{bucket}.C.{id}")
}

/// The upload id of `upload`, checked: it goes into a subject.
fn checked_id(upload: &Upload) -> Result<&str, String> {
    let id = upload.id.as_str();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("`{id}` is not an upload id"));
    }
    Ok(id)
}

/// Stores `data` as the next part of `upload` (or of a new upload).
pub async fn write_part(
    containers: &Containers,
    caller: &Caller,
    container: &str,
    upload: Option<Upload>,
    data: Bytes,
) -> Result<Upload, String> {
    containers.open(caller, container).await?;
    let bucket = containers.bucket();
    let mut upload = match upload {
        Some(upload) => upload,
        None => Upload {
            id: fresh_id(containers),
            size: 0,
            chunks: 0,
        },
    };
    let subject = chunk_subject(bucket, checked_id(&upload)?);
    let js = containers.jetstream();
    let mut acks = Vec::new();
    for start in (0..data.len()).step_by(CHUNK) {
        let piece = data.slice(start..(start + CHUNK).min(data.len()));
        let ack = js
            .publish(subject.clone(), piece)
            .await
            .map_err(|e| format!("cannot store a part in container `{container}`: {e}"))?;
        acks.push(ack);
        upload.chunks += 1;
    }
    for ack in acks {
        ack.await
            .map_err(|e| format!("cannot store a part in container `{container}`: {e}"))?;
    }
    upload.size += data.len() as u64;
    Ok(upload)
}

/// A new upload id: unique, and a single subject token.
fn fresh_id(containers: &Containers) -> String {
    containers
        .nats()
        .new_inbox()
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Makes `upload` the object `object`, replacing (and purging) any older one.
pub async fn commit(
    containers: &Containers,
    caller: &Caller,
    container: &str,
    object: &str,
    upload: Upload,
    sha256: &[u8],
) -> Result<u64, String> {
    let store = containers.open(caller, container).await?;
    let bucket = containers.bucket();
    let id = checked_id(&upload)?.to_string();
    let old = store.info(object).await.ok().filter(|o| !o.deleted);
    let info = ObjectInfo {
        name: store.full_name(object),
        description: None,
        metadata: Default::default(),
        headers: None,
        options: Some(ObjectOptions {
            link: None,
            max_chunk_size: Some(CHUNK),
        }),
        bucket: bucket.to_string(),
        nuid: id,
        size: upload.size as usize,
        chunks: upload.chunks as usize,
        modified: Some(time::OffsetDateTime::now_utc()),
        digest: Some(format!("SHA-256={}", URL_SAFE.encode(sha256))),
        deleted: false,
    };
    let failed = |e: &dyn std::fmt::Display| {
        format!("cannot commit object `{object}` in container `{container}`: {e}")
    };
    let json = serde_json::to_vec(&info).map_err(|e| failed(&e))?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    let meta = format!("$O.{bucket}.M.{}", URL_SAFE.encode(&info.name));
    containers
        .jetstream()
        .publish_with_headers(meta, headers, json.into())
        .await
        .map_err(|e| failed(&e))?
        .await
        .map_err(|e| failed(&e))?;
    if let Some(old) = old.filter(|o| o.nuid != info.nuid) {
        purge(containers, caller, container, &old.nuid).await?;
    }
    Ok(upload.size)
}

/// Drops the chunks of `upload`.
pub async fn abort(
    containers: &Containers,
    caller: &Caller,
    container: &str,
    upload: Upload,
) -> Result<(), String> {
    let id = checked_id(&upload)?.to_string();
    purge(containers, caller, container, &id).await
}

async fn purge(
    containers: &Containers,
    caller: &Caller,
    container: &str,
    id: &str,
) -> Result<(), String> {
    containers.open(caller, container).await?;
    let chunks = containers.chunks().await?;
    chunks
        .purge()
        .filter(chunk_subject(containers.bucket(), id))
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot drop old chunks in container `{container}`: {e}"))
}
