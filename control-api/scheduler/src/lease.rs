//! Leadership among schedulers: one KV key in a bucket whose entries expire after
//! [`LEASE_TTL`](super::LEASE_TTL). The leader renews it every tick with a
//! compare-and-set; when it stops, the key lapses and another `create` succeeds.

use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::time::Instant;

const KEY: &str = "leader";

/// How much of the lease's life a leader gives up to clock and message
/// delays: it stops acting this long before the lease could lapse.
const MARGIN: Duration = Duration::from_millis(750);

/// This scheduler's hold on the lease.
pub struct Lease {
    kv: kv::Store,
    me: String,
    revision: Option<u64>,
    fence: Fence,
}

/// Until when a leader may act: its lease cannot have lapsed before.
#[derive(Debug, Default)]
struct Fence {
    until: Option<Instant>,
}

impl Fence {
    /// A renewal asked for at `asked` succeeded (`true`) or failed.
    fn renewed(&mut self, asked: Instant, held: bool) {
        self.until = held.then(|| asked + super::LEASE_TTL.saturating_sub(MARGIN));
    }

    fn valid(&self) -> bool {
        self.until.is_some_and(|until| Instant::now() < until)
    }
}

impl Lease {
    /// The lease in `kv`, held as `me`.
    pub fn new(kv: kv::Store, me: &str) -> Self {
        Lease {
            kv,
            me: me.to_string(),
            revision: None,
            fence: Fence::default(),
        }
    }

    /// Whether this scheduler still holds the lease now: a pass that
    /// outlives it stops acting (fencing), so two leaders never act at once.
    pub fn valid(&self) -> bool {
        self.fence.valid()
    }

    /// Takes or renews the lease; true while this scheduler leads.
    pub async fn hold(&mut self) -> bool {
        // The entry written now lives at least this long from now.
        let asked = Instant::now();
        let renewed = match self.revision {
            Some(revision) => self
                .kv
                .update(KEY, self.me.clone().into(), revision)
                .await
                .ok(),
            None => self.kv.create(KEY, self.me.clone().into()).await.ok(),
        };
        self.revision = renewed;
        self.fence.renewed(asked, renewed.is_some());
        renewed.is_some()
    }

    /// Gives the lease up at once, so a successor need not wait for it to lapse.
    pub async fn release(&mut self) {
        self.fence = Fence::default();
        if let Some(revision) = self.revision.take() {
            let _ = self.kv.delete_expect_revision(KEY, Some(revision)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_stops_acting_before_its_lease_can_lapse() {
        let mut fence = Fence::default();
        assert!(!fence.valid(), "nobody leads before a renewal");
        fence.renewed(Instant::now(), true);
        assert!(fence.valid());
        // A renewal asked for longer ago than the lease's life minus the margin
        // no longer covers a pass.
        let life = super::super::LEASE_TTL - MARGIN;
        let long_ago = Instant::now().checked_sub(life + Duration::from_millis(1));
        if let Some(asked) = long_ago {
            fence.renewed(asked, true);
            assert!(!fence.valid());
        }
        // A failed renewal fences at once.
        fence.renewed(Instant::now(), true);
        fence.renewed(Instant::now(), false);
        assert!(!fence.valid());
    }
}
