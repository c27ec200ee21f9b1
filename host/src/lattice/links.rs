//! This host's link entries (see `trellis_lattice::Link`): put
//! when a workload starts here, put again every third of their TTL while it
//! runs, deleted when it stops.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use tokio::sync::OnceCell;
use trellis_lattice::{
    BucketError, LINKS_BUCKET, Link, LinkedBinding, Subjects, links_bucket, open_bucket,
};
use trellis_manifest::{BindingTarget, Workload};

/// The link entries this host holds.
pub struct Links {
    js: jetstream::Context,
    bucket: String,
    instance: String,
    store: OnceCell<kv::Store>,
    /// The links put for each running workload, for refreshing and removal.
    held: Mutex<HashMap<String, Vec<Link>>>,
}

impl Links {
    /// Entries of this host (`instance`) in `subjects`' lattice on `nats`.
    pub fn new(nats: async_nats::Client, subjects: &Subjects, instance: String) -> Self {
        Links {
            js: subjects.jetstream(nats),
            bucket: subjects.bucket(LINKS_BUCKET),
            instance,
            store: OnceCell::new(),
            held: Mutex::default(),
        }
    }

    async fn store(&self) -> Result<&kv::Store, BucketError> {
        self.store
            .get_or_try_init(|| open_bucket(&self.js, links_bucket(&self.bucket)))
            .await
    }

    /// The links of `manifest`: one per provider its bindings name.
    fn links_of(&self, manifest: &Workload) -> Vec<Link> {
        let mut links: Vec<Link> = Vec::new();
        for component in &manifest.components {
            for binding in &component.bindings {
                let BindingTarget::Provider { name, config, .. } = &binding.target else {
                    continue;
                };
                let bound = LinkedBinding {
                    component: component.name.clone(),
                    import: binding.import.as_str().to_string(),
                    config: config.clone(),
                };
                match links.iter_mut().find(|l| &l.provider == name) {
                    Some(link) => link.bindings.push(bound),
                    None => links.push(Link {
                        provider: name.clone(),
                        workload: manifest.name.clone(),
                        host: self.instance.clone(),
                        bindings: vec![bound],
                    }),
                }
            }
        }
        links
    }

    /// Puts the links of `manifest` (replacing an older version's), so its
    /// providers learn of it. A failure is logged: only providers that act on
    /// their own need links, and calls work without them.
    pub async fn put(&self, manifest: &Workload) {
        let links = self.links_of(manifest);
        let keys: Vec<String> = links.iter().map(Link::key).collect();
        let stale: Vec<String> = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let old = held.insert(manifest.name.clone(), links.clone());
            old.unwrap_or_default()
                .iter()
                .map(Link::key)
                .filter(|k| !keys.contains(k))
                .collect()
        };
        if links.is_empty() && stale.is_empty() {
            return;
        }
        // Only logged, never returned: anyhow carries the context.
        let result = async {
            let store = self.store().await?;
            for link in &links {
                let json = serde_json::to_vec(link)?;
                store
                    .put(link.key(), json.into())
                    .await
                    .with_context(|| format!("cannot put link `{}`", link.key()))?;
            }
            for key in stale {
                let _ = store.delete(&key).await;
            }
            Ok::<_, anyhow::Error>(())
        };
        if let Err(e) = result.await {
            tracing::warn!(workload = %manifest.name, error = format!("{e:#}"), "providers were not told of this workload's bindings");
        }
    }

    /// Deletes the links of workload `name`.
    pub async fn remove(&self, name: &str) {
        let keys: Vec<String> = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .unwrap_or_default()
            .iter()
            .map(Link::key)
            .collect();
        if keys.is_empty() {
            return;
        }
        match self.store().await {
            Ok(store) => {
                for key in keys {
                    if let Err(e) = store.delete(&key).await {
                        tracing::warn!(workload = %name, %key, error = %e, "cannot delete a link");
                    }
                }
            }
            Err(e) => tracing::warn!(workload = %name, error = %e, "cannot delete links"),
        }
    }

    /// Puts every held link again, so none expires while its workload runs.
    pub async fn refresh(&self) {
        let links: Vec<Link> = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .cloned()
            .collect();
        if links.is_empty() {
            return;
        }
        let Ok(store) = self.store().await else {
            return;
        };
        for link in links {
            if let Ok(json) = serde_json::to_vec(&link)
                && let Err(e) = store.put(link.key(), json.into()).await
            {
                tracing::debug!(key = %link.key(), error = %e, "link not refreshed");
            }
        }
    }
}
