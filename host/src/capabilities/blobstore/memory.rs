//! The in-memory blobstore backend for development: one per workload, kept
//! across reloads of that workload so objects survive an edit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;

use super::{
    BlobstoreBackend, BlobstoreError, ByteStream, ContainerMetadata, MAX_OBJECT_SIZE, ObjectBody,
    ObjectId, ObjectMetadata, byte_range,
};

/// One stored object.
#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    created_at: u64,
}

/// One container: its creation time and its objects by name.
#[derive(Debug)]
struct Bucket {
    created_at: u64,
    objects: BTreeMap<String, Object>,
}

type Containers = HashMap<String, Bucket>;

/// One workload's containers, in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobstore {
    containers: Mutex<Containers>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn missing(name: &str) -> BlobstoreError {
    BlobstoreError(format!("container `{name}` does not exist"))
}

fn container<'a>(all: &'a mut Containers, name: &str) -> Result<&'a mut Bucket, BlobstoreError> {
    all.get_mut(name).ok_or_else(|| missing(name))
}

fn find_object(all: &mut Containers, id: &ObjectId) -> Result<Object, BlobstoreError> {
    container(all, &id.container)?
        .objects
        .get(&id.object)
        .cloned()
        .ok_or_else(|| {
            BlobstoreError(format!(
                "object `{}` does not exist in container `{}`",
                id.object, id.container
            ))
        })
}

impl MemoryBlobstore {
    fn lock(&self) -> MutexGuard<'_, Containers> {
        // A panic while holding the lock cannot leave a map half-updated.
        self.containers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Copies `src` to `dest` under one lock, removing `src` if `remove` is set.
    fn transfer(
        &self,
        src: &ObjectId,
        dest: &ObjectId,
        remove: bool,
    ) -> Result<(), BlobstoreError> {
        let mut all = self.lock();
        let obj = find_object(&mut all, src)?;
        let created_at = now();
        container(&mut all, &dest.container)?
            .objects
            .insert(dest.object.clone(), Object { created_at, ..obj });
        let same = src.container == dest.container && src.object == dest.object;
        if remove && !same {
            container(&mut all, &src.container)?
                .objects
                .remove(&src.object);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobstoreBackend for MemoryBlobstore {
    async fn create_container(&self, name: &str) -> Result<ContainerMetadata, BlobstoreError> {
        let mut all = self.lock();
        if all.contains_key(name) {
            return Err(BlobstoreError(format!("container `{name}` already exists")));
        }
        let created_at = now();
        all.insert(
            name.to_string(),
            Bucket {
                created_at,
                objects: BTreeMap::new(),
            },
        );
        Ok(ContainerMetadata {
            name: name.to_string(),
            created_at,
        })
    }

    async fn container_info(&self, name: &str) -> Result<ContainerMetadata, BlobstoreError> {
        let created_at = container(&mut self.lock(), name)?.created_at;
        Ok(ContainerMetadata {
            name: name.to_string(),
            created_at,
        })
    }

    async fn delete_container(&self, name: &str) -> Result<(), BlobstoreError> {
        self.lock()
            .remove(name)
            .map(drop)
            .ok_or_else(|| missing(name))
    }

    async fn container_exists(&self, name: &str) -> Result<bool, BlobstoreError> {
        Ok(self.lock().contains_key(name))
    }

    async fn list_objects(&self, name: &str) -> Result<Vec<String>, BlobstoreError> {
        Ok(container(&mut self.lock(), name)?
            .objects
            .keys()
            .cloned()
            .collect())
    }

    async fn object_info(
        &self,
        name: &str,
        object: &str,
    ) -> Result<Option<ObjectMetadata>, BlobstoreError> {
        let mut all = self.lock();
        Ok(container(&mut all, name)?
            .objects
            .get(object)
            .map(|o| ObjectMetadata {
                name: object.to_string(),
                container: name.to_string(),
                created_at: o.created_at,
                size: o.data.len() as u64,
            }))
    }

    async fn read_object(
        &self,
        name: &str,
        object: &str,
        start: u64,
        end: u64,
    ) -> Result<ObjectBody, BlobstoreError> {
        let id = ObjectId {
            container: name.to_string(),
            object: object.to_string(),
        };
        let data = find_object(&mut self.lock(), &id)?.data;
        Ok(ObjectBody::whole(data.slice(byte_range(
            object,
            data.len(),
            start,
            end,
        )?)))
    }

    async fn write_object(
        &self,
        name: &str,
        object: &str,
        mut body: ByteStream,
    ) -> Result<u64, BlobstoreError> {
        container(&mut self.lock(), name)?;
        let mut data = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if data.len() + chunk.len() > MAX_OBJECT_SIZE {
                return Err(BlobstoreError(format!(
                    "object `{object}` is larger than the in-memory store takes ({MAX_OBJECT_SIZE} bytes)"
                )));
            }
            data.extend_from_slice(&chunk);
        }
        let size = data.len() as u64;
        let created_at = now();
        container(&mut self.lock(), name)?.objects.insert(
            object.to_string(),
            Object {
                data: data.freeze(),
                created_at,
            },
        );
        Ok(size)
    }

    async fn delete_objects(&self, name: &str, objects: &[String]) -> Result<(), BlobstoreError> {
        let mut all = self.lock();
        let bucket = container(&mut all, name)?;
        for object in objects {
            bucket.objects.remove(object);
        }
        Ok(())
    }

    async fn clear(&self, name: &str) -> Result<(), BlobstoreError> {
        container(&mut self.lock(), name)?.objects.clear();
        Ok(())
    }

    async fn copy_object(&self, src: &ObjectId, dest: &ObjectId) -> Result<(), BlobstoreError> {
        self.transfer(src, dest, false)
    }

    async fn move_object(&self, src: &ObjectId, dest: &ObjectId) -> Result<(), BlobstoreError> {
        self.transfer(src, dest, true)
    }
}

/// The in-memory blobstores of every workload on a host.
pub type MemoryBlobstores = crate::capabilities::PerWorkload<MemoryBlobstore>;

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), BlobstoreError>;

    fn body(parts: Vec<Result<&'static [u8], BlobstoreError>>) -> ByteStream {
        Box::pin(futures::stream::iter(
            parts.into_iter().map(|p| p.map(Bytes::from_static)),
        ))
    }

    async fn read_all(
        store: &MemoryBlobstore,
        c: &str,
        o: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, BlobstoreError> {
        let mut body = store.read_object(c, o, start, end).await?;
        let mut out = Vec::new();
        while let Some(chunk) = body.chunks.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    fn id(container: &str, object: &str) -> ObjectId {
        ObjectId {
            container: container.into(),
            object: object.into(),
        }
    }

    #[tokio::test]
    async fn objects_are_written_read_in_ranges_and_listed() -> TestResult {
        let store = MemoryBlobstore::default();
        store.create_container("c").await?;
        assert!(store.create_container("c").await.is_err(), "created twice");
        let size = store
            .write_object("c", "o", body(vec![Ok(b"hello "), Ok(b"world")]))
            .await?;
        assert_eq!(size, 11);
        assert_eq!(
            read_all(&store, "c", "o", 0, u64::MAX).await?,
            b"hello world"
        );
        assert_eq!(read_all(&store, "c", "o", 6, 7).await?, b"wo");
        assert!(
            store.read_object("c", "o", 12, 20).await.is_err(),
            "a start past the end"
        );
        assert_eq!(store.list_objects("c").await?, ["o"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_write_that_fails_changes_nothing() -> TestResult {
        let store = MemoryBlobstore::default();
        store.create_container("c").await?;
        store.write_object("c", "o", body(vec![Ok(b"old")])).await?;
        let cut = body(vec![Ok(b"new"), Err(BlobstoreError("cut off".into()))]);
        assert!(store.write_object("c", "o", cut).await.is_err());
        assert_eq!(read_all(&store, "c", "o", 0, u64::MAX).await?, b"old");
        Ok(())
    }

    #[tokio::test]
    async fn copies_and_moves_need_the_destination_container() -> TestResult {
        let store = MemoryBlobstore::default();
        store.create_container("a").await?;
        store.write_object("a", "x", body(vec![Ok(b"1")])).await?;
        assert!(
            store
                .copy_object(&id("a", "x"), &id("b", "x"))
                .await
                .is_err()
        );
        store.create_container("b").await?;
        store.copy_object(&id("a", "x"), &id("b", "y")).await?;
        store.move_object(&id("a", "x"), &id("b", "z")).await?;
        assert!(store.list_objects("a").await?.is_empty());
        assert_eq!(store.list_objects("b").await?, ["y", "z"]);
        store.delete_container("b").await?;
        assert!(!store.container_exists("b").await?);
        Ok(())
    }
}
