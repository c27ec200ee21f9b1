//! The lattice's JetStream KV buckets, opened the same way by every process.

use async_nats::jetstream::{self, kv};

/// Why a lattice bucket could not be opened or created.
#[derive(Debug, thiserror::Error)]
#[error("cannot open or create the JetStream KV bucket `{bucket}`: {source}")]
pub struct BucketError {
    /// The bucket.
    pub bucket: String,
    /// What JetStream said.
    #[source]
    pub source: jetstream::context::KeyValueError,
}

/// Opens the bucket `config` describes, creating it if nobody has yet (and
/// opening it after all if another process created it first).
pub async fn open_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, BucketError> {
    if let Ok(store) = js.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    let name = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        Err(_) => js.get_key_value(&name).await.map_err(|source| BucketError {
            bucket: name,
            source,
        }),
    }
}
