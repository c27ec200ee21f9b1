//! The links of a provider: which workloads bind to it, with their config,
//! known before any call (see `trellis_lattice::Link`).

use async_nats::jetstream::kv;
use futures::{Stream, StreamExt as _};
use trellis_lattice::{Link, links_bucket, open_bucket, provider_links};

use crate::Provider;

/// A change to a provider's links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    /// A host runs a workload whose bindings name this provider (or changed them).
    Put(Link),
    /// The entry under this key is gone: that host stopped the workload.
    Removed(String),
}

impl Provider {
    /// This provider's links: every current one, then each change as it happens.
    pub async fn links(&self) -> anyhow::Result<impl Stream<Item = LinkChange> + Send + 'static> {
        let js = self.jetstream();
        let bucket = self.subjects().bucket(trellis_lattice::LINKS_BUCKET);
        let store = open_bucket(&js, links_bucket(&bucket)).await?;
        let watch = store
            .watch_with_history(provider_links(self.name()))
            .await
            .map_err(|e| anyhow::anyhow!("cannot watch the links bucket `{bucket}`: {e}"))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(error = %e, "links watch failed");
                    return None;
                }
            };
            match entry.operation {
                kv::Operation::Put => match serde_json::from_slice::<Link>(&entry.value) {
                    Ok(link) => Some(LinkChange::Put(link)),
                    Err(e) => {
                        tracing::warn!(key = %entry.key, error = %e, "unreadable link");
                        None
                    }
                },
                kv::Operation::Delete | kv::Operation::Purge => {
                    Some(LinkChange::Removed(entry.key))
                }
            }
        }))
    }
}
