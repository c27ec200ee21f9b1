//! `trellis-keyvalue-nats`: wasi:keyvalue (store, atomics, batch) on NATS JetStream KV,
//! served over wRPC to every workload bound to it.
//!
//! Every workload's buckets live in the provider's one JetStream KV bucket
//! (`trellis_<lattice>_data_<provider>`, which the lattice's permissions let
//! only this provider reach), under keys `<workload>.<bucket>.<key>`; the
//! bucket is the binding's `bucket` config when set, else the identifier the
//! guest passes to `open`. Atomics are JetStream counters (nats-server 2.12+)
//! in the stream `CTR_<data>` beside it (see `counters`).

mod buckets;
mod counters;
mod handler;

use trellis_provider_sdk::Provider;

mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../../wit/deps/keyvalue",
        world: "wasi:keyvalue/provider",
    });
}

/// The interfaces this provider serves.
const INTERFACES: &[&str] = &[
    "wasi:keyvalue/store@0.2.0-draft",
    "wasi:keyvalue/atomics@0.2.0-draft",
    "wasi:keyvalue/batch@0.2.0-draft",
];

// One thread: a call is a few microseconds of work between two NATS
// messages, and on a busy machine a second worker thread costs more in
// wake-ups across threads than it gives (measured: half the provider's CPU
// per call on the lattice bench's provider hop). Scale out with replicas.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    Provider::main(
        trellis_provider_sdk::describe!("keyvalue", INTERFACES),
        async |provider, _args| {
            provider.require_jetstream().await?;
            let data = provider.subjects().provider_data(provider.name());
            let buckets = buckets::Buckets::open(provider.jetstream(), &data).await?;
            let counters = counters::Counters::open(provider.jetstream(), &data).await?;
            let handler = handler::Handler::new(provider.nats().clone(), buckets, counters);
            bindings::serve(provider.wrpc(), handler).await
        },
    )
    .await
}
