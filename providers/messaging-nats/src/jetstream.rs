//! `trellis:messaging/jetstream`: durable pull consumers for components.
//!
//! A consumer's JetStream name is `<workload>_<name>`; workload names have no
//! `_`, so workloads never share one. An ack token is accepted only when it
//! names, field by field, a stream the binding grants and a consumer of the
//! calling workload. A binding reaches only the streams its `streams` config
//! lists (comma separated; none without it), and never the streams behind the
//! lattice's KV buckets and object stores (`KV_…`, `OBJ_…`).

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use trellis_provider_sdk::{Caller, NatsContext, check_name};

use crate::Handler;
use crate::bindings::exports::trellis::messaging::jetstream::{
    self as wit, ConsumerConfig, StreamMessage,
};

type Result<T> = anyhow::Result<std::result::Result<T, String>>;

/// The most messages one `fetch` returns.
const MAX_FETCH: u32 = 1000;
/// The longest a `fetch` waits.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);
/// How long an ack or nak waits for the server's confirmation.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The calling workload, if it may use `stream`.
fn admit(cx: &NatsContext, stream: &str) -> std::result::Result<Caller, String> {
    let caller = Caller::from_context(cx).map_err(|e| format!("refused: {e}"))?;
    if stream.starts_with("KV_") || stream.starts_with("OBJ_") {
        return Err(format!(
            "stream `{stream}` holds a key-value bucket or an object store; consume your own streams"
        ));
    }
    let Some(allowed) = caller.config.get("streams") else {
        return Err(format!(
            "stream `{stream}`: this binding grants no streams (list them in its `streams` config)"
        ));
    };
    if !allowed.split(',').map(str::trim).any(|s| s == stream) {
        return Err(format!(
            "stream `{stream}` is not among this binding's `streams` ({allowed})"
        ));
    }
    Ok(caller)
}

/// The JetStream name of `caller`'s consumer `name`.
fn durable(caller: &Caller, name: &str) -> std::result::Result<String, String> {
    check_name("consumer", name).map_err(|e| e.to_string())?;
    Ok(format!("{}_{name}", caller.workload))
}

/// The stream and consumer an ack token names: `$JS.ACK.<stream>.<consumer>.`
/// then seven numbers, or with a domain and account hash before the stream
/// (and a random token last) in the newer form.
fn token_target(token: &str) -> Option<(&str, &str)> {
    if token.contains(['*', '>', ' ']) {
        return None;
    }
    let fields: Vec<&str> = token.split('.').collect();
    let (names, numbers) = match fields.as_slice() {
        ["$JS", "ACK", stream, consumer, rest @ ..] if rest.len() == 5 => {
            ((*stream, *consumer), rest)
        }
        ["$JS", "ACK", _domain, _account, stream, consumer, rest @ ..] if rest.len() >= 5 => {
            ((*stream, *consumer), &rest[..5])
        }
        _ => return None,
    };
    numbers
        .iter()
        .all(|n| n.parse::<u64>().is_ok())
        .then_some(names)
}

/// Whether `token` acknowledges a message of one of `caller`'s consumers, on
/// a stream the binding grants.
fn owns_token(cx: &NatsContext, token: &str) -> std::result::Result<Caller, String> {
    let not_ours = || format!("`{token}` is not an ack token of this workload's consumers");
    let (stream, consumer) = token_target(token).ok_or_else(not_ours)?;
    let caller = admit(cx, stream)?;
    match consumer.split_once('_') {
        Some((workload, _)) if workload == caller.workload => Ok(caller),
        _ => Err(not_ours()),
    }
}

impl Handler {
    async fn stream(&self, name: &str) -> std::result::Result<jetstream::stream::Stream, String> {
        self.js
            .get_stream(name)
            .await
            .map_err(|e| format!("stream `{name}`: {e}"))
    }

    /// Sends `kind` (`+ACK`, `-NAK`) for `token` and waits for the server.
    async fn acknowledge(
        &self,
        cx: &NatsContext,
        token: &str,
        kind: &'static str,
    ) -> std::result::Result<(), String> {
        owns_token(cx, token)?;
        let confirmed = self.nats.request(token.to_string(), kind.into());
        match tokio::time::timeout(ACK_TIMEOUT, confirmed).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot {kind} `{token}`: {e}")),
            Err(_) => Err(format!("no confirmation of {kind} within {ACK_TIMEOUT:?}")),
        }
    }

    async fn fetch_messages(
        &self,
        cx: &NatsContext,
        stream: &str,
        name: &str,
        max: u32,
        wait: Duration,
    ) -> std::result::Result<Vec<StreamMessage>, String> {
        let caller = admit(cx, stream)?;
        let durable = durable(&caller, name)?;
        let consumer: consumer::PullConsumer = self
            .stream(stream)
            .await?
            .get_consumer(&durable)
            .await
            .map_err(|e| format!("consumer `{name}` of stream `{stream}`: {e}"))?;
        let failed = |e: &dyn std::fmt::Display| format!("cannot fetch from `{name}`: {e}");
        let max = max.clamp(1, MAX_FETCH) as usize;
        // What is there now; if nothing, wait for one.
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|e| failed(&e))?;
        let mut out = collect(&mut batch).await?;
        if out.is_empty() {
            let mut batch = consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
                .map_err(|e| failed(&e))?;
            out = collect(&mut batch).await?;
        }
        Ok(out)
    }
}

async fn collect(
    batch: &mut consumer::pull::Batch,
) -> std::result::Result<Vec<StreamMessage>, String> {
    let mut out = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| format!("fetch failed: {e}"))?;
        let info = message
            .info()
            .map_err(|e| format!("a message without JetStream info: {e}"))?;
        let (sequence, delivered) = (info.stream_sequence, info.delivered.max(0) as u64);
        let Some(token) = message.reply.clone() else {
            continue;
        };
        out.push(StreamMessage {
            subject: message.subject.to_string(),
            body: message.payload.clone(),
            sequence,
            delivered,
            ack_token: token.to_string(),
        });
    }
    Ok(out)
}

impl wit::Handler<NatsContext> for Handler {
    async fn create_consumer(&self, cx: NatsContext, config: ConsumerConfig) -> Result<()> {
        Ok(async {
            let caller = admit(&cx, &config.stream)?;
            let name = durable(&caller, &config.name)?;
            let stream = self.stream(&config.stream).await?;
            // Replacing is how a component replays from another sequence.
            let _ = stream.delete_consumer(&name).await;
            let deliver_policy = match config.start_sequence {
                Some(start_sequence) => consumer::DeliverPolicy::ByStartSequence { start_sequence },
                None => consumer::DeliverPolicy::All,
            };
            stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(name),
                    filter_subject: config.filter_subject.unwrap_or_default(),
                    deliver_policy,
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_millis(config.ack_wait_ms.max(1).into()),
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot create consumer `{}`: {e}", config.name))
        }
        .await)
    }

    async fn delete_consumer(&self, cx: NatsContext, stream: String, name: String) -> Result<()> {
        Ok(async {
            let caller = admit(&cx, &stream)?;
            let durable = durable(&caller, &name)?;
            self.stream(&stream)
                .await?
                .delete_consumer(&durable)
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot delete consumer `{name}`: {e}"))
        }
        .await)
    }

    async fn fetch(
        &self,
        cx: NatsContext,
        stream: String,
        name: String,
        max: u32,
        timeout_ms: u32,
    ) -> Result<Vec<StreamMessage>> {
        let wait = Duration::from_millis(timeout_ms.into())
            .clamp(Duration::from_millis(10), MAX_FETCH_WAIT);
        Ok(self.fetch_messages(&cx, &stream, &name, max, wait).await)
    }

    async fn ack(&self, cx: NatsContext, ack_token: String) -> Result<()> {
        Ok(self.acknowledge(&cx, &ack_token, "+ACK").await)
    }

    async fn nak(&self, cx: NatsContext, ack_token: String) -> Result<()> {
        Ok(self.acknowledge(&cx, &ack_token, "-NAK").await)
    }
}

#[cfg(test)]
mod tests {
    use super::token_target;

    #[test]
    fn ack_tokens_are_read_field_by_field() {
        assert_eq!(
            token_target("$JS.ACK.ORDERS.shop_proc.1.2.3.4.0"),
            Some(("ORDERS", "shop_proc"))
        );
        assert_eq!(
            token_target("$JS.ACK.hub.ACCHASH.ORDERS.shop_proc.1.2.3.4.0.xyz"),
            Some(("ORDERS", "shop_proc"))
        );
        for bad in [
            "$JS.ACK.ORDERS.shop_proc.1.2.3.4",
            "$JS.ACK.ORDERS.shop_proc.1.2.3.4.x",
            "$JS.ACK.*.shop_proc.1.2.3.4.0",
            "$JS.API.ORDERS.shop_proc.1.2.3.4.0",
            "orders.new",
        ] {
            assert_eq!(token_target(bad), None, "{bad}");
        }
    }
}
