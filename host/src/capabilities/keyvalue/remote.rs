//! `wasi:keyvalue` bound to a provider: each call is a typed wRPC call, and a
//! transport failure or timeout reaches the guest as the interface's `error`.

use bytes::Bytes;
use wrpc_transport::{ResourceBorrow, ResourceOwn};

use super::{KeyPage, KeyValueBackend, KeyValueError};
use crate::lattice::CallTarget;

mod client {
    wit_bindgen_wrpc::generate!({
        path: "../wit/deps/keyvalue",
        world: "wasi:keyvalue/imports",
    });
}

use client::wasi::keyvalue::{atomics, store};

/// A keyvalue backend served by a provider over wRPC.
///
/// Bucket handles are never released (the interface has no close), so the handle
/// `open` returns for an identifier is kept for the life of this workload version:
/// a request's `open` costs a call only the first time. The provider still checks
/// the caller on every call that uses the handle.
pub struct RemoteKeyValue {
    target: CallTarget,
    opened: std::sync::RwLock<std::collections::HashMap<String, Bytes>>,
}

impl RemoteKeyValue {
    /// Calls go to `target`.
    pub fn new(target: CallTarget) -> Self {
        RemoteKeyValue {
            target,
            opened: Default::default(),
        }
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = anyhow::Result<Result<T, store::Error>>>,
    ) -> Result<T, KeyValueError> {
        match self.target.call(what, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(store::Error::NoSuchStore)) => Err(KeyValueError::NoSuchStore),
            Ok(Err(store::Error::AccessDenied)) => Err(KeyValueError::AccessDenied),
            Ok(Err(store::Error::Other(message))) => Err(KeyValueError::Other(message)),
            Err(failed) => Err(failed.into()),
        }
    }
}

fn borrow(handle: &Bytes) -> ResourceBorrow<store::Bucket> {
    ResourceBorrow::new(handle.clone())
}

#[async_trait::async_trait]
impl KeyValueBackend for RemoteKeyValue {
    async fn open(&self, identifier: &str) -> Result<Bytes, KeyValueError> {
        let known = self
            .opened
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(identifier)
            .cloned();
        if let Some(handle) = known {
            return Ok(handle);
        }
        let client = &self.target.client;
        let bucket: ResourceOwn<store::Bucket> = self
            .call(
                "open",
                store::open(client, self.target.context(), identifier),
            )
            .await?;
        let handle: Bytes = bucket.into();
        self.opened
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(identifier.to_string(), handle.clone());
        Ok(handle)
    }

    async fn get(&self, bucket: &Bytes, key: &str) -> Result<Option<Vec<u8>>, KeyValueError> {
        let client = &self.target.client;
        let value = self
            .call(
                "get",
                store::Bucket::get(client, self.target.context(), &borrow(bucket), key),
            )
            .await?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn set(&self, bucket: &Bytes, key: &str, value: Vec<u8>) -> Result<(), KeyValueError> {
        let client = &self.target.client;
        let value = Bytes::from(value);
        self.call(
            "set",
            store::Bucket::set(client, self.target.context(), &borrow(bucket), key, &value),
        )
        .await
    }

    async fn delete(&self, bucket: &Bytes, key: &str) -> Result<(), KeyValueError> {
        let client = &self.target.client;
        self.call(
            "delete",
            store::Bucket::delete(client, self.target.context(), &borrow(bucket), key),
        )
        .await
    }

    async fn exists(&self, bucket: &Bytes, key: &str) -> Result<bool, KeyValueError> {
        let client = &self.target.client;
        self.call(
            "exists",
            store::Bucket::exists(client, self.target.context(), &borrow(bucket), key),
        )
        .await
    }

    async fn list_keys(
        &self,
        bucket: &Bytes,
        cursor: Option<u64>,
    ) -> Result<KeyPage, KeyValueError> {
        let client = &self.target.client;
        let page = self
            .call(
                "list-keys",
                store::Bucket::list_keys(client, self.target.context(), &borrow(bucket), cursor),
            )
            .await?;
        Ok((page.keys, page.cursor))
    }

    async fn increment(&self, bucket: &Bytes, key: &str, delta: u64) -> Result<u64, KeyValueError> {
        let client = &self.target.client;
        self.call(
            "increment",
            atomics::increment(client, self.target.context(), &borrow(bucket), key, delta),
        )
        .await
    }
}
