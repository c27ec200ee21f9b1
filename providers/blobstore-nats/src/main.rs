//! `trellis-blobstore-nats`: wasi:blobstore on the NATS JetStream object store,
//! served over wRPC (`trellis:blobstore/objects`) to every workload bound to it.
//!
//! Every workload's containers live in the provider's one object store,
//! `trellis_<lattice>_data_<provider>` (only this provider's identity may reach
//! it), under object names `<workload>/<container>/<object>`, so workloads
//! never see each other's objects. Objects move a part or a slice
//! per call: one of any size is never held whole here.

mod containers;
mod handler;
mod slices;
mod uploads;

use trellis_provider_sdk::Provider;

mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../../wit/deps/trellis-blobstore",
        world: "trellis:blobstore/provider",
    });
}

/// The interfaces this provider serves: the wire interface, and the
/// wasi:blobstore interfaces a host translates onto it.
const INTERFACES: &[&str] = &[
    "trellis:blobstore/objects@0.1.0",
    "wasi:blobstore/blobstore@0.2.0-draft",
    "wasi:blobstore/container@0.2.0-draft",
    "wasi:blobstore/types@0.2.0-draft",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Provider::main(
        trellis_provider_sdk::describe!("blobstore", INTERFACES),
        async |provider, _args| {
            provider.require_jetstream().await?;
            let data = provider.subjects().provider_data(provider.name());
            let containers =
                containers::Containers::open_store(provider.jetstream(), &data).await?;
            let handler = handler::Handler::new(containers);
            bindings::serve(provider.wrpc(), handler).await
        },
    )
    .await
}
