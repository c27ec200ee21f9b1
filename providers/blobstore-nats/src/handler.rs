//! The wRPC handlers: each call names its caller, whose workload owns the containers.

use bytes::Bytes;
use tokio::io::AsyncRead;
use tracing::Instrument as _;
use trellis_provider_sdk::{Caller, NatsContext};

use crate::bindings::exports::trellis::blobstore::objects::{
    self, ContainerInfo, Cursor, ObjectInfo, Slice, Upload,
};
use crate::containers::Containers;
use crate::uploads;

type Result<T> = anyhow::Result<std::result::Result<T, String>>;

/// Serves every blobstore function on the JetStream object store.
#[derive(Clone)]
pub struct Handler {
    containers: Containers,
}

impl Handler {
    /// A handler keeping its data in `containers`.
    pub fn new(containers: Containers) -> Self {
        Handler { containers }
    }

    /// The info of `object`, `None` if absent.
    async fn info(
        &self,
        caller: &Caller,
        container: &str,
        object: &str,
    ) -> std::result::Result<Option<ObjectInfo>, String> {
        let store = self.containers.open(caller, container).await?;
        match store.info(object).await {
            Ok(info) if !info.deleted => Ok(Some(ObjectInfo {
                name: info.name,
                container: container.to_string(),
                created_at: info
                    .modified
                    .map_or(0, |t| u64::try_from(t.unix_timestamp()).unwrap_or(0)),
                size: info.size as u64,
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == async_nats::jetstream::object_store::InfoErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(format!("cannot read object `{object}`: {e}")),
        }
    }

    /// Writes `data` as `object` (a copy between objects); the put fails, and
    /// the old object stays, if `data` fails.
    async fn put(
        &self,
        caller: &Caller,
        container: &str,
        object: &str,
        data: &mut (impl AsyncRead + Unpin),
    ) -> std::result::Result<u64, String> {
        let store = self.containers.open(caller, container).await?;
        match store.put(object, data).await {
            Ok(info) => Ok(info.size as u64),
            Err(e) => Err(format!(
                "cannot write object `{object}` in container `{container}`: {e}"
            )),
        }
    }

    /// Copies `src` to `dest`, streaming.
    async fn copy(
        &self,
        caller: &Caller,
        src: (&str, &str),
        dest: (&str, &str),
    ) -> std::result::Result<(), String> {
        let store = self.containers.open(caller, src.0).await?;
        let mut object = store.get(src.1).await.map_err(|e| {
            format!(
                "cannot read object `{}` in container `{}`: {e}",
                src.1, src.0
            )
        })?;
        self.put(caller, dest.0, dest.1, &mut object)
            .await
            .map(|_| ())
    }

    /// Removes `objects` of `container`, absent ones included.
    async fn delete(
        &self,
        caller: &Caller,
        container: &str,
        objects: &[String],
    ) -> std::result::Result<(), String> {
        let store = self.containers.open(caller, container).await?;
        for object in objects {
            match store.delete(object).await {
                Ok(()) => {}
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::object_store::DeleteErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot delete object `{object}`: {e}")),
            }
        }
        Ok(())
    }

    /// The names of `container`'s objects, sorted.
    async fn names(
        &self,
        caller: &Caller,
        container: &str,
    ) -> std::result::Result<Vec<String>, String> {
        let store = self.containers.open(caller, container).await?;
        let list = store
            .list()
            .await
            .map_err(|e| format!("cannot list container `{container}`: {e}"))?;
        let mut names: Vec<String> = list.into_iter().map(|i| i.name).collect();
        names.sort();
        Ok(names)
    }
}

/// Runs `call` (the JetStream work of `operation`) for the caller named in
/// `cx`; a call without host headers is refused.
async fn as_caller<T, F>(
    cx: &NatsContext,
    operation: &str,
    call: impl FnOnce(Caller) -> F,
) -> Result<T>
where
    F: Future<Output = std::result::Result<T, String>>,
{
    let caller = match Caller::from_context(cx) {
        Ok(caller) => caller,
        Err(e) => {
            tracing::warn!(why = %e, "refused a call");
            return Ok(Err(format!("refused: {e}")));
        }
    };
    let result = call(caller)
        .instrument(trellis_provider_sdk::lattice::trace::jetstream_span(
            operation,
        ))
        .await;
    if let Err(e) = &result {
        tracing::debug!(error = %e, "call failed");
    }
    Ok(result)
}

impl objects::Handler<NatsContext> for Handler {
    async fn create_container(&self, cx: NatsContext, name: String) -> Result<ContainerInfo> {
        as_caller(&cx, "create-container", |caller| async move {
            self.containers.create(&caller, &name).await?;
            let created_at = self.containers.created_at(&caller, &name).await?;
            Ok(ContainerInfo { name, created_at })
        })
        .await
    }

    async fn get_container_info(&self, cx: NatsContext, name: String) -> Result<ContainerInfo> {
        as_caller(&cx, "get-container-info", |caller| async move {
            let created_at = self.containers.created_at(&caller, &name).await?;
            Ok(ContainerInfo { name, created_at })
        })
        .await
    }

    async fn delete_container(&self, cx: NatsContext, name: String) -> Result<()> {
        as_caller(&cx, "delete-container", |caller| async move {
            self.containers.delete(&caller, &name).await
        })
        .await
    }

    async fn container_exists(&self, cx: NatsContext, name: String) -> Result<bool> {
        as_caller(&cx, "container-exists", |caller| async move {
            self.containers.exists(&caller, &name).await
        })
        .await
    }

    async fn list_objects(&self, cx: NatsContext, container: String) -> Result<Vec<String>> {
        as_caller(&cx, "list-objects", |caller| async move {
            self.names(&caller, &container).await
        })
        .await
    }

    async fn get_object_info(
        &self,
        cx: NatsContext,
        container: String,
        object: String,
    ) -> Result<Option<ObjectInfo>> {
        as_caller(&cx, "get-object-info", |caller| async move {
            self.info(&caller, &container, &object).await
        })
        .await
    }

    async fn read_object(
        &self,
        cx: NatsContext,
        container: String,
        object: String,
        start: u64,
        end: u64,
        at: Option<Cursor>,
    ) -> Result<Slice> {
        as_caller(&cx, "read-object", |caller| async move {
            let store = self.containers.open(&caller, &container).await?;
            let info = match store.info(&object).await {
                Ok(info) if !info.deleted => info,
                _ => {
                    return Err(format!(
                        "object `{object}` does not exist in container `{container}`"
                    ));
                }
            };
            let size = info.size as u64;
            // The same rules and words as the host's own stores.
            if start > end {
                return Err(format!(
                    "bad range for object `{object}`: start {start} is after end {end}"
                ));
            }
            if start > size {
                return Err(format!(
                    "bad range for object `{object}`: start {start} is past its end ({size} bytes)"
                ));
            }
            let stop = end.saturating_add(1).min(size);
            let chunks = self.containers.chunks().await?;
            crate::slices::read(&chunks, &info, start, stop, at).await
        })
        .await
    }

    async fn write_part(
        &self,
        cx: NatsContext,
        container: String,
        upload: Option<Upload>,
        data: Bytes,
    ) -> Result<Upload> {
        as_caller(&cx, "write-part", |caller| async move {
            uploads::write_part(&self.containers, &caller, &container, upload, data).await
        })
        .await
    }

    async fn commit_upload(
        &self,
        cx: NatsContext,
        container: String,
        object: String,
        upload: Upload,
        sha256: Bytes,
    ) -> Result<u64> {
        as_caller(&cx, "commit-upload", |caller| async move {
            uploads::commit(
                &self.containers,
                &caller,
                &container,
                &object,
                upload,
                &sha256,
            )
            .await
        })
        .await
    }

    async fn abort_upload(&self, cx: NatsContext, container: String, upload: Upload) -> Result<()> {
        as_caller(&cx, "abort-upload", |caller| async move {
            uploads::abort(&self.containers, &caller, &container, upload).await
        })
        .await
    }

    async fn delete_objects(
        &self,
        cx: NatsContext,
        container: String,
        objects: Vec<String>,
    ) -> Result<()> {
        as_caller(&cx, "delete-objects", |caller| async move {
            self.delete(&caller, &container, &objects).await
        })
        .await
    }

    async fn clear(&self, cx: NatsContext, container: String) -> Result<()> {
        as_caller(&cx, "clear", |caller| async move {
            let names = self.names(&caller, &container).await?;
            self.delete(&caller, &container, &names).await
        })
        .await
    }

    async fn copy_object(
        &self,
        cx: NatsContext,
        src_container: String,
        src: String,
        dest_container: String,
        dest: String,
    ) -> Result<()> {
        as_caller(&cx, "copy-object", |caller| async move {
            self.copy(&caller, (&src_container, &src), (&dest_container, &dest))
                .await
        })
        .await
    }

    async fn move_object(
        &self,
        cx: NatsContext,
        src_container: String,
        src: String,
        dest_container: String,
        dest: String,
    ) -> Result<()> {
        as_caller(&cx, "move-object", |caller| async move {
            if (src_container.as_str(), src.as_str()) == (dest_container.as_str(), dest.as_str()) {
                return Ok(());
            }
            self.copy(&caller, (&src_container, &src), (&dest_container, &dest))
                .await?;
            self.delete(&caller, &src_container, std::slice::from_ref(&src))
                .await
        })
        .await
    }
}
