//! `wasi:keyvalue/atomics` on JetStream distributed counters (ADR-49,
//! nats-server 2.12 or later): an increment is one publish with a `Nats-Incr`
//! header, the server adds it and acknowledges with the new total, so callers
//! never conflict and never retry.
//!
//! Counters live in a stream of their own (`CTR_<data>`, subjects
//! `$CTR.<data>.<workload>.<bucket>.<key>`), since a KV stream cannot count.
//! The key's KV entry says which store holds its value: a plain value, or a
//! marker (header `Trellis-Counter`) that sends `get` to the counter. See
//! docs/providers.md for how `get`, `set` and `increment` of one key agree.

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

/// The header of a KV entry whose value is the key's counter.
pub const MARKER: &str = "Trellis-Counter";

/// The provider's counter stream.
#[derive(Clone)]
pub struct Counters {
    js: jetstream::Context,
    stream: stream::Stream,
    prefix: String,
}

impl Counters {
    /// Opens (or creates) the counter stream beside the KV bucket `data`.
    pub async fn open(js: jetstream::Context, data: &str) -> anyhow::Result<Self> {
        let config = stream::Config {
            name: format!("CTR_{data}"),
            subjects: vec![format!("$CTR.{data}.>")],
            allow_message_counter: true,
            allow_direct: true,
            // The server keeps the running total in the latest message.
            max_messages_per_subject: 1,
            ..Default::default()
        };
        let stream = js.get_or_create_stream(config).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open or create the counter stream `CTR_{data}` (JetStream counters need nats-server 2.12 or later): {e}"
            )
        })?;
        Ok(Counters {
            js,
            stream,
            prefix: format!("$CTR.{data}."),
        })
    }

    /// Adds `delta` to the counter of `key` (a store key); the new total, as
    /// the server writes it (a decimal integer of any size).
    pub async fn add(&self, key: &str, delta: u64) -> anyhow::Result<String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Incr", delta.to_string().as_str());
        let ack = self
            .js
            .publish_with_headers(format!("{}{key}", self.prefix), headers, Bytes::new())
            .await?
            .await?;
        ack.value.ok_or_else(|| {
            anyhow::anyhow!("the server acknowledged an increment without its total")
        })
    }

    /// The total of `key`'s counter, if it has one.
    pub async fn total(&self, key: &str) -> anyhow::Result<Option<String>> {
        use jetstream::stream::DirectGetErrorKind;
        match self
            .stream
            .direct_get_last_for_subject(format!("{}{key}", self.prefix))
            .await
        {
            Ok(message) => {
                #[derive(serde::Deserialize)]
                struct Total {
                    val: String,
                }
                let total: Total = serde_json::from_slice(&message.payload)?;
                Ok(Some(total.val))
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Forgets `key`'s counter (a `set` or `delete` replaced it).
    pub async fn clear(&self, key: &str) -> anyhow::Result<()> {
        self.stream
            .purge()
            .filter(format!("{}{key}", self.prefix))
            .await?;
        Ok(())
    }
}

/// A total as the 64-bit value `wasi:keyvalue` returns: past `u64::MAX` it
/// wraps, as the in-memory store's counters do (the server keeps the exact
/// integer).
pub fn wrapped(total: &str) -> Result<u64, String> {
    let (negative, digits) = match total.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, total),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the server's counter total `{total}` is not an integer"
        ));
    }
    let value = digits.bytes().fold(0u64, |n, d| {
        n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
    });
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_wrap_past_64_bits_like_the_in_memory_store() {
        assert_eq!(wrapped("0"), Ok(0));
        assert_eq!(wrapped("18446744073709551615"), Ok(u64::MAX));
        // u64::MAX + u64::MAX, as the server sums it.
        assert_eq!(
            wrapped("36893488147419103230"),
            Ok(u64::MAX.wrapping_add(u64::MAX))
        );
        assert_eq!(wrapped("-1"), Ok(u64::MAX));
        for bad in ["", "-", "1.5", "12a", "+1"] {
            assert!(wrapped(bad).is_err(), "{bad}");
        }
    }
}
