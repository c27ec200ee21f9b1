//! Where a caller's containers live. The provider keeps every workload's
//! containers in one JetStream object store of its own,
//! `trellis_<lattice>_data_<provider>`, which the lattice's permissions let
//! only this provider reach. A container is a marker object
//! `<workload>/<container>` (its creation time) and the objects under
//! `<workload>/<container>/`.

use async_nats::jetstream::object_store::{
    self, DeleteError, GetError, InfoError, Object, ObjectInfo, ObjectStore, PutError,
};
use async_nats::jetstream::{self};
use futures::StreamExt as _;
use tokio::io::AsyncRead;
use trellis_provider_sdk::{Caller, check_name};

/// The provider's object store.
#[derive(Clone)]
pub struct Containers {
    nats: async_nats::Client,
    js: jetstream::Context,
    store: ObjectStore,
    bucket: String,
}

/// One caller's container: a name prefix in the provider's store.
pub struct Container {
    store: ObjectStore,
    marker: String,
    prefix: String,
}

impl Containers {
    /// Opens (or creates) the object store `bucket` through `js` (the provider's domain).
    pub async fn open_store(js: jetstream::Context, bucket: &str) -> anyhow::Result<Self> {
        let store = match js.get_object_store(bucket).await {
            Ok(store) => store,
            Err(_) => match js
                .create_object_store(object_store::Config {
                    bucket: bucket.to_string(),
                    ..Default::default()
                })
                .await
            {
                Ok(store) => store,
                // Another replica created it first.
                Err(_) => js.get_object_store(bucket).await.map_err(|e| {
                    anyhow::anyhow!("cannot open or create the object store `{bucket}`: {e}")
                })?,
            },
        };
        Ok(Containers {
            nats: js.client(),
            js,
            store,
            bucket: bucket.to_string(),
        })
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The JetStream context the store lives in.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The object store's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn container(&self, caller: &Caller, name: &str) -> Result<Container, String> {
        check_name("container", name).map_err(|e| e.to_string())?;
        let marker = format!("{}/{name}", caller.workload);
        Ok(Container {
            store: self.store.clone(),
            prefix: format!("{marker}/"),
            marker,
        })
    }

    /// The caller's container `name`; a missing one is an error.
    pub async fn open(&self, caller: &Caller, name: &str) -> Result<Container, String> {
        let container = self.container(caller, name)?;
        match container.created_at().await {
            Some(_) => Ok(container),
            None => Err(format!("container `{name}` does not exist")),
        }
    }

    /// Whether the caller has a container `name`.
    pub async fn exists(&self, caller: &Caller, name: &str) -> Result<bool, String> {
        Ok(self.container(caller, name)?.created_at().await.is_some())
    }

    /// Creates the caller's container `name`; an existing one is an error.
    pub async fn create(&self, caller: &Caller, name: &str) -> Result<(), String> {
        let container = self.container(caller, name)?;
        if container.created_at().await.is_some() {
            return Err(format!("container `{name}` already exists"));
        }
        self.store
            .put(container.marker.as_str(), &mut tokio::io::empty())
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot create container `{name}`: {e}"))
    }

    /// Removes the caller's container `name` and its objects.
    pub async fn delete(&self, caller: &Caller, name: &str) -> Result<(), String> {
        let container = self.open(caller, name).await?;
        for object in container.list().await? {
            container
                .delete(&object.name)
                .await
                .map_err(|e| format!("cannot delete container `{name}`: {e}"))?;
        }
        self.store
            .delete(container.marker.as_str())
            .await
            .map_err(|e| format!("cannot delete container `{name}`: {e}"))
    }

    /// The JetStream stream behind the store, whose messages are the objects' chunks.
    pub async fn chunks(&self) -> Result<jetstream::stream::Stream, String> {
        self.js
            .get_stream(format!("OBJ_{}", self.bucket))
            .await
            .map_err(|e| format!("cannot open the object store's stream: {e}"))
    }

    /// When the caller's container `name` was created (Unix seconds).
    pub async fn created_at(&self, caller: &Caller, name: &str) -> Result<u64, String> {
        self.container(caller, name)?
            .created_at()
            .await
            .ok_or_else(|| format!("container `{name}` does not exist"))
    }
}

impl Container {
    /// The store's name for the container's object `object`.
    pub fn full_name(&self, object: &str) -> String {
        format!("{}{object}", self.prefix)
    }

    async fn created_at(&self) -> Option<u64> {
        let info = self.store.info(self.marker.as_str()).await.ok()?;
        (!info.deleted).then(|| {
            info.modified
                .map_or(0, |t| u64::try_from(t.unix_timestamp()).unwrap_or(0))
        })
    }

    /// The info of `object`, named as the guest names it.
    pub async fn info(&self, object: &str) -> Result<ObjectInfo, InfoError> {
        let mut info = self.store.info(self.full_name(object).as_str()).await?;
        info.name = object.to_string();
        Ok(info)
    }

    /// Writes `object` from `data`.
    pub async fn put(
        &self,
        object: &str,
        data: &mut (impl AsyncRead + Unpin),
    ) -> Result<ObjectInfo, PutError> {
        self.store.put(self.full_name(object).as_str(), data).await
    }

    /// Reads `object`.
    pub async fn get(&self, object: &str) -> Result<Object, GetError> {
        self.store.get(self.full_name(object)).await
    }

    /// Removes `object`.
    pub async fn delete(&self, object: &str) -> Result<(), DeleteError> {
        self.store.delete(self.full_name(object)).await
    }

    /// The container's live objects, named as the guest names them. The store
    /// lists every workload's objects; this keeps the container's.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, String> {
        let list = self
            .store
            .list()
            .await
            .map_err(|e| format!("cannot list the container: {e}"))?;
        let prefix = self.prefix.clone();
        Ok(list
            .filter_map(|info| {
                let prefix = prefix.clone();
                async move {
                    let mut info = info.ok().filter(|i| !i.deleted)?;
                    info.name = info.name.strip_prefix(prefix.as_str())?.to_string();
                    Some(info)
                }
            })
            .collect()
            .await)
    }
}
