//! `wasi:blobstore` bound to a provider: each call is a typed wRPC call of
//! `trellis:blobstore/objects`, and object bodies travel as wRPC streams.
//!
//! Object bodies move a part or a slice per call, each call bounded by the
//! binding's timeout and waiting for the one before: a large object takes as
//! long as it needs, the host holds one part of it at a time, and a dead
//! provider still cannot hang a request.

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};

use super::{
    BlobstoreBackend, BlobstoreError, ByteStream, ContainerMetadata, ObjectBody, ObjectId,
    ObjectMetadata,
};
use crate::lattice::CallTarget;

mod client {
    wit_bindgen_wrpc::generate!({
        path: "../wit/deps/trellis-blobstore",
        world: "trellis:blobstore/host",
    });
}

use client::trellis::blobstore::objects::{self, Upload};

/// Bytes per uploaded part.
const PART: usize = 1 << 20;

/// A blobstore backend served by a provider over wRPC.
pub struct RemoteBlobstore {
    target: CallTarget,
}

impl RemoteBlobstore {
    /// Calls go to `target`.
    pub fn new(target: CallTarget) -> Self {
        RemoteBlobstore { target }
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = anyhow::Result<Result<T, String>>>,
    ) -> Result<T, BlobstoreError> {
        match self.target.call(what, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(BlobstoreError(message)),
            Err(failed) => Err(failed.into()),
        }
    }
}

fn container_metadata(info: objects::ContainerInfo) -> ContainerMetadata {
    ContainerMetadata {
        name: info.name,
        created_at: info.created_at,
    }
}

#[async_trait::async_trait]
impl BlobstoreBackend for RemoteBlobstore {
    async fn create_container(&self, name: &str) -> Result<ContainerMetadata, BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        let info = self
            .call(
                "create-container",
                objects::create_container(client, cx, name),
            )
            .await?;
        Ok(container_metadata(info))
    }

    async fn container_info(&self, name: &str) -> Result<ContainerMetadata, BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        let info = self
            .call(
                "get-container-info",
                objects::get_container_info(client, cx, name),
            )
            .await?;
        Ok(container_metadata(info))
    }

    async fn delete_container(&self, name: &str) -> Result<(), BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        self.call(
            "delete-container",
            objects::delete_container(client, cx, name),
        )
        .await
    }

    async fn container_exists(&self, name: &str) -> Result<bool, BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        self.call(
            "container-exists",
            objects::container_exists(client, cx, name),
        )
        .await
    }

    async fn list_objects(&self, container: &str) -> Result<Vec<String>, BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        self.call("list-objects", objects::list_objects(client, cx, container))
            .await
    }

    async fn object_info(
        &self,
        container: &str,
        object: &str,
    ) -> Result<Option<ObjectMetadata>, BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        let info = self
            .call(
                "get-object-info",
                objects::get_object_info(client, cx, container, object),
            )
            .await?;
        Ok(info.map(|i| ObjectMetadata {
            name: i.name,
            container: i.container,
            created_at: i.created_at,
            size: i.size,
        }))
    }

    async fn read_object(
        &self,
        container: &str,
        object: &str,
        start: u64,
        end: u64,
    ) -> Result<ObjectBody, BlobstoreError> {
        // Slices are up to a megabyte: more than a `trellis-rr/1` reply takes.
        let (client, cx) = (self.target.client.standard(), self.target.traced_context());
        let first = self
            .call(
                "read-object",
                objects::read_object(client, cx, container, object, start, end, None),
            )
            .await?;
        let stop = end.saturating_add(1).min(first.size);
        Ok(ObjectBody {
            len: stop.saturating_sub(start),
            chunks: self.slices(container, object, start, end, first),
        })
    }

    async fn write_object(
        &self,
        container: &str,
        object: &str,
        mut body: ByteStream,
    ) -> Result<u64, BlobstoreError> {
        let mut digest = Sha256::new();
        let mut part = BytesMut::new();
        let mut upload = None;
        loop {
            let chunk = match body.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    self.abort(container, upload).await;
                    return Err(e);
                }
                None => break,
            };
            digest.update(&chunk);
            part.extend_from_slice(&chunk);
            if part.len() >= PART {
                let data = part.split().freeze();
                upload = Some(self.part(container, upload, data).await?);
            }
        }
        // The rest, or the only (maybe empty) part of a small object.
        let upload = match upload {
            Some(upload) if part.is_empty() => upload,
            upload => self.part(container, upload, part.freeze()).await?,
        };
        let (client, cx) = (&self.target.client, self.target.context());
        let sha256 = Bytes::copy_from_slice(&digest.finalize());
        self.call(
            "commit-upload",
            objects::commit_upload(client, cx, container, object, &upload, &sha256),
        )
        .await
    }

    async fn delete_objects(
        &self,
        container: &str,
        objects: &[String],
    ) -> Result<(), BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        let objects: Vec<&str> = objects.iter().map(String::as_str).collect();
        self.call(
            "delete-objects",
            objects::delete_objects(client, cx, container, &objects),
        )
        .await
    }

    async fn clear(&self, container: &str) -> Result<(), BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        self.call("clear", objects::clear(client, cx, container))
            .await
    }

    async fn copy_object(&self, src: &ObjectId, dest: &ObjectId) -> Result<(), BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        let call = objects::copy_object(
            client,
            cx,
            &src.container,
            &src.object,
            &dest.container,
            &dest.object,
        );
        self.call("copy-object", call).await
    }

    async fn move_object(&self, src: &ObjectId, dest: &ObjectId) -> Result<(), BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        let call = objects::move_object(
            client,
            cx,
            &src.container,
            &src.object,
            &dest.container,
            &dest.object,
        );
        self.call("move-object", call).await
    }
}

impl RemoteBlobstore {
    /// Sends the next part of `upload` (or starts one) and waits until it is stored.
    async fn part(
        &self,
        container: &str,
        upload: Option<Upload>,
        data: Bytes,
    ) -> Result<Upload, BlobstoreError> {
        let (client, cx) = (&self.target.client, self.target.context());
        let call = objects::write_part(client, cx, container, upload, &data);
        self.call("write-part", call).await
    }

    /// Drops the parts of an upload that will not be committed; a failure only
    /// leaves unreferenced chunks behind, so it is logged, not returned.
    async fn abort(&self, container: &str, upload: Option<Upload>) {
        let Some(upload) = upload else { return };
        let (client, cx) = (&self.target.client, self.target.context());
        let call = objects::abort_upload(client, cx, container, &upload);
        if let Err(e) = self.call("abort-upload", call).await {
            tracing::warn!(error = %e.0, "could not drop an abandoned upload");
        }
    }

    /// The bytes of `first` and of the slices after it, each pulled only when
    /// the reader wants more, so a slow reader holds one slice at most.
    fn slices(
        &self,
        container: &str,
        object: &str,
        start: u64,
        end: u64,
        first: objects::Slice,
    ) -> ByteStream {
        let target = self.target.clone();
        let (container, object) = (container.to_string(), object.to_string());
        let at = start + first.data.len() as u64;
        let state = (Some(first.data), first.next.map(|next| (at, next)));
        Box::pin(futures::stream::unfold(state, move |(data, next)| {
            let (target, container, object) = (target.clone(), container.clone(), object.clone());
            async move {
                if let Some(data) = data {
                    return Some((Ok(data), (None, next)));
                }
                let (at, cursor) = next?;
                let call = objects::read_object(
                    target.client.standard(),
                    target.traced_context(),
                    &container,
                    &object,
                    at,
                    end,
                    Some(cursor),
                );
                match target.call("read-object", call).await {
                    Ok(Ok(slice)) => {
                        let after = at + slice.data.len() as u64;
                        let next = slice.next.map(|next| (after, next));
                        Some((Ok(slice.data), (None, next)))
                    }
                    Ok(Err(message)) => Some((Err(BlobstoreError(message)), (None, None))),
                    Err(failed) => Some((Err(failed.into()), (None, None))),
                }
            }
        }))
    }
}
