//! A stock wRPC server: wit-bindgen-wrpc bindings served by wrpc-transport-nats,
//! and no Trellis crate. It answers no discovery and ignores the headers
//! Trellis sends, as any wRPC server in another language might, so a test can
//! prove a binding with `announced: false` reaches it.
//!
//! `trellis-stock-greeter NATS_URL PREFIX INBOX_PREFIX [NKEY_SEED_FILE]`

use futures::StreamExt as _;

mod bindings {
    wit_bindgen_wrpc::generate!({ path: "wit", world: "stock" });
}

#[derive(Clone, Copy)]
struct Greeter;

impl<Ctx: Send> bindings::exports::trellis::example::greeter::Handler<Ctx> for Greeter {
    async fn greet(&self, _cx: Ctx, name: String) -> anyhow::Result<String> {
        Ok(format!("Hello from a stock wRPC server, {name}!"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, prefix, inbox, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: trellis-stock-greeter NATS_URL PREFIX INBOX_PREFIX [NKEY_SEED_FILE]");
    };
    let mut options = async_nats::ConnectOptions::new().custom_inbox_prefix(inbox);
    if let Some(seed) = rest.first() {
        options = options.nkey(std::fs::read_to_string(seed)?.trim().to_string());
    }
    let nats = options.connect(url.as_str()).await?;
    let wrpc =
        wrpc_transport_nats::Client::new(nats, prefix.as_str(), Some(prefix.as_str().into()))
            .await?;
    let invocations = bindings::serve(&wrpc, Greeter).await?;
    eprintln!("serving {prefix}");
    let mut calls = futures::stream::select_all(invocations.into_iter().map(|(_, _, s)| s));
    while let Some(call) = calls.next().await {
        match call {
            Ok(call) => {
                tokio::spawn(async move {
                    if let Err(e) = call.await {
                        eprintln!("call failed: {e:#}");
                    }
                });
            }
            Err(e) => eprintln!("bad invocation: {e:#}"),
        }
    }
    Ok(())
}
