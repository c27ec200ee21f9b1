//! Where a caller's containers live: one JetStream object store each.

use async_nats::jetstream::{self, object_store::ObjectStore};
use trellis_provider_sdk::{Caller, WorkloadScope};

/// The object stores of one lattice.
#[derive(Clone)]
pub struct Containers {
    nats: async_nats::Client,
    js: jetstream::Context,
    scope: WorkloadScope,
}

impl Containers {
    /// Containers of `lattice` on `nats`.
    pub fn new(nats: async_nats::Client, lattice: &str) -> Self {
        Containers {
            js: jetstream::new(nats.clone()),
            nats,
            scope: WorkloadScope::new(lattice),
        }
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The JetStream context the stores live in.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The object store name of the caller's container.
    pub fn bucket(&self, caller: &Caller, container: &str) -> Result<String, String> {
        self.scope
            .resource(caller, "container", container)
            .map_err(|e| e.to_string())
    }

    /// The caller's container `name`; a missing one is an error.
    pub async fn open(&self, caller: &Caller, name: &str) -> Result<ObjectStore, String> {
        let bucket = self.bucket(caller, name)?;
        self.js
            .get_object_store(&bucket)
            .await
            .map_err(|_| format!("container `{name}` does not exist"))
    }

    /// Whether the caller has a container `name`.
    pub async fn exists(&self, caller: &Caller, name: &str) -> Result<bool, String> {
        let bucket = self.bucket(caller, name)?;
        Ok(self.js.get_object_store(&bucket).await.is_ok())
    }

    /// Creates the caller's container `name`; an existing one is an error.
    pub async fn create(&self, caller: &Caller, name: &str) -> Result<(), String> {
        if self.exists(caller, name).await? {
            return Err(format!("container `{name}` already exists"));
        }
        let bucket = self.bucket(caller, name)?;
        self.js
            .create_object_store(jetstream::object_store::Config {
                bucket: bucket.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot create container `{name}`: {e}"))
    }

    /// Removes the caller's container `name` and its objects.
    pub async fn delete(&self, caller: &Caller, name: &str) -> Result<(), String> {
        self.open(caller, name).await?;
        let bucket = self.bucket(caller, name)?;
        self.js
            .delete_object_store(&bucket)
            .await
            .map_err(|e| format!("cannot delete container `{name}`: {e}"))
    }

    /// The JetStream stream behind the caller's container `name`, whose
    /// messages are its objects' chunks.
    pub async fn chunks(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<jetstream::stream::Stream, String> {
        let bucket = self.bucket(caller, name)?;
        self.js
            .get_stream(format!("OBJ_{bucket}"))
            .await
            .map_err(|_| format!("container `{name}` does not exist"))
    }

    /// When the caller's container `name` was created (Unix seconds).
    pub async fn created_at(&self, caller: &Caller, name: &str) -> Result<u64, String> {
        let stream = self.chunks(caller, name).await?;
        Ok(u64::try_from(stream.cached_info().created.unix_timestamp()).unwrap_or(0))
    }
}
