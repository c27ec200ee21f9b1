//! Leadership among schedulers: one KV key in a bucket whose entries expire after
//! [`LEASE_TTL`](super::LEASE_TTL). The leader renews it every tick with a
//! compare-and-set; when it stops, the key lapses and another `create` succeeds.

use async_nats::jetstream::kv;

const KEY: &str = "leader";

/// This scheduler's hold on the lease.
pub struct Lease {
    kv: kv::Store,
    me: String,
    revision: Option<u64>,
}

impl Lease {
    /// The lease in `kv`, held as `me`.
    pub fn new(kv: kv::Store, me: &str) -> Self {
        Lease {
            kv,
            me: me.to_string(),
            revision: None,
        }
    }

    /// Takes or renews the lease; true while this scheduler leads.
    pub async fn hold(&mut self) -> bool {
        let renewed = match self.revision {
            Some(revision) => self
                .kv
                .update(KEY, self.me.clone().into(), revision)
                .await
                .ok(),
            None => self.kv.create(KEY, self.me.clone().into()).await.ok(),
        };
        self.revision = renewed;
        renewed.is_some()
    }

    /// Gives the lease up at once, so a successor need not wait for it to lapse.
    pub async fn release(&mut self) {
        if let Some(revision) = self.revision.take() {
            let _ = self.kv.delete_expect_revision(KEY, Some(revision)).await;
        }
    }
}
