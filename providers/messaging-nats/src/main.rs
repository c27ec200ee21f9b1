//! `trellis-messaging-nats`: messaging for components on NATS, served over wRPC
//! to every workload bound to it:
//!
//! - `trellis:messaging/producer`: publish and request on core NATS;
//! - delivery: subjects a binding subscribes to (config `subscribe`) reach the
//!   workload's exported `trellis:messaging/handler`, once per queue group;
//! - `trellis:messaging/jetstream`: durable pull consumers (ack, redelivery,
//!   replay from a sequence).
//!
//! Components name plain subjects; on a secured lattice only those the
//! lattice grants this provider (`--subject`, as `trellis lattice add
//! provider --subject` wrote them into its permissions). Subjects the lattice itself uses (`trellis.…`),
//! reply inboxes (`_INBOX.…`) and server subjects (`$…`) are refused, so a
//! component cannot speak for a host or a provider.

mod delivery;
mod jetstream;
mod producer;
mod subjects;

use trellis_provider_sdk::Provider;

mod bindings {
    wit_bindgen_wrpc::generate!({
        path: "../../wit/deps/messaging",
        world: "trellis:messaging/provider",
    });
}

/// The interfaces this provider serves.
const INTERFACES: &[&str] = &[
    "trellis:messaging/producer@0.1.0",
    "trellis:messaging/types@0.1.0",
    "trellis:messaging/jetstream@0.1.0",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Provider::main(
        trellis_provider_sdk::describe!("messaging", INTERFACES),
        async |provider, args| {
            let granted = subjects::Granted::new(args.subjects.clone());
            let links = provider.links().await?;
            tokio::spawn(delivery::run(
                provider.nats().clone(),
                provider.subjects().clone(),
                granted.clone(),
                links,
            ));
            let handler = Handler {
                nats: provider.nats().clone(),
                js: provider.jetstream(),
                granted,
            };
            bindings::serve(provider.wrpc(), handler).await
        },
    )
    .await
}

/// Serves every function on the provider's own connection.
#[derive(Clone)]
pub struct Handler {
    nats: async_nats::Client,
    /// JetStream in the provider's domain: the streams its components consume.
    js: async_nats::jetstream::Context,
    granted: subjects::Granted,
}
