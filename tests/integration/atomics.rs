//! `wasi:keyvalue/atomics` on keyvalue-nats: JetStream counters, called here
//! the way a host calls them (one `trellis-rr/1` request each, wRPC-encoded
//! by hand), under contention and mixed with `get`, `set` and `delete`. The
//! Python keyvalue provider is held to the same ([`atomics_hold`]).

use async_nats::HeaderMap;
use bytes::Bytes;
use trellis_lattice::headers;

use crate::lattice::{Nats, keyvalue_provider};
use crate::support::TestResult;

const STORE: &str = "wasi:keyvalue/store@0.2.0-draft";
const ATOMICS: &str = "wasi:keyvalue/atomics@0.2.0-draft";

fn leb128(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

/// A string, a list<u8> or a handle: a length, then the bytes.
fn bytes(value: &[u8], out: &mut Vec<u8>) {
    leb128(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// One caller of the provider: a workload as its host names it.
struct Caller {
    nats: async_nats::Client,
    workload: &'static str,
}

impl Caller {
    async fn call(&self, instance: &str, func: &str, params: Vec<u8>) -> Result<Bytes, String> {
        let mut h = HeaderMap::new();
        h.insert(headers::WORKLOAD, self.workload);
        h.insert(headers::COMPONENT, "app");
        h.insert(headers::BINDING, "wasi:keyvalue");
        let subject =
            trellis_lattice::lean::subject("trellis.default.provider.keyvalue", instance, func);
        let reply = self
            .nats
            .request_with_headers(subject.clone(), h, params.into())
            .await
            .map_err(|e| format!("{subject}: {e}"))?;
        if let Some(why) = reply
            .headers
            .as_ref()
            .and_then(|h| h.get(trellis_lattice::lean::ERROR_HEADER))
        {
            return Err(format!("{subject}: {why}"));
        }
        Ok(reply.payload)
    }

    /// `open(name)`: the bucket's handle.
    async fn open(&self, name: &str) -> Result<Vec<u8>, String> {
        let mut params = Vec::new();
        bytes(name.as_bytes(), &mut params);
        let reply = self.call(STORE, "open", params).await?;
        let rest = ok(&reply)?;
        let (len, rest) = read_leb128(rest).ok_or("a bad handle")?;
        Ok(rest[..len as usize].to_vec())
    }

    async fn get(&self, bucket: &[u8], key: &str) -> Result<Option<Vec<u8>>, String> {
        let reply = self.call(STORE, "bucket.get", keyed(bucket, key)).await?;
        match ok(&reply)? {
            [0] => Ok(None),
            [1, rest @ ..] => {
                let (len, rest) = read_leb128(rest).ok_or("a bad value")?;
                Ok(Some(rest[..len as usize].to_vec()))
            }
            other => Err(format!("get answered {other:02x?}")),
        }
    }

    async fn set(&self, bucket: &[u8], key: &str, value: &[u8]) -> Result<(), String> {
        let mut params = keyed(bucket, key);
        bytes(value, &mut params);
        ok(&self.call(STORE, "bucket.set", params).await?).map(drop)
    }

    async fn delete(&self, bucket: &[u8], key: &str) -> Result<(), String> {
        ok(&self
            .call(STORE, "bucket.delete", keyed(bucket, key))
            .await?)
        .map(drop)
    }

    async fn increment(&self, bucket: &[u8], key: &str, delta: u64) -> Result<u64, String> {
        let mut params = keyed(bucket, key);
        leb128(delta, &mut params);
        let reply = self.call(ATOMICS, "increment", params).await?;
        let (total, _) = read_leb128(ok(&reply)?).ok_or("a bad total")?;
        Ok(total)
    }
}

fn keyed(bucket: &[u8], key: &str) -> Vec<u8> {
    let mut params = Vec::new();
    bytes(bucket, &mut params);
    bytes(key.as_bytes(), &mut params);
    params
}

/// The `ok` payload of a `result<_, error>`; the error's message otherwise.
fn ok(reply: &[u8]) -> Result<&[u8], String> {
    match reply {
        [0, rest @ ..] => Ok(rest),
        [1, 2, rest @ ..] => {
            let (len, rest) = read_leb128(rest).ok_or("a bad error")?;
            Err(String::from_utf8_lossy(&rest[..len as usize]).into_owned())
        }
        other => Err(format!("an error: {other:02x?}")),
    }
}

fn counter(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_never_give_up_under_contention_and_agree_with_get_and_set() -> TestResult {
    let nats = Nats::start("atomics")?;
    let _kv = keyvalue_provider(&nats, "keyvalue")?;
    atomics_hold(&nats).await
}

/// What every `wasi:keyvalue` provider called `keyvalue` on `nats` must do:
/// contended increments hand out each total once and agree with get, set
/// and delete; totals wrap past 2^64 - 1; workloads keep their own keys.
pub async fn atomics_hold(nats: &Nats) -> TestResult {
    let caller = std::sync::Arc::new(Caller {
        nats: nats.client_as("host", "caller").await?,
        workload: "counter",
    });
    let bucket = caller.open("atoms").await?;

    // 64 callers, 20 increments each, all at once: none fails, and every
    // total from 1 to 1,280 is handed out exactly once.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (caller, bucket) = (caller.clone(), bucket.clone());
        tasks.spawn(async move {
            let mut totals = Vec::new();
            for _ in 0..20 {
                totals.push(caller.increment(&bucket, "hits", 1).await?);
            }
            Ok::<_, String>(totals)
        });
    }
    let mut totals = Vec::new();
    while let Some(done) = tasks.join_next().await {
        totals.extend(done??);
    }
    totals.sort_unstable();
    assert_eq!(totals, (1..=1280).collect::<Vec<u64>>());
    assert_eq!(caller.get(&bucket, "hits").await?, Some(counter(1280)));

    // `set` replaces the counter; the next increment adds to what was set.
    caller.set(&bucket, "hits", &counter(10)).await?;
    assert_eq!(caller.get(&bucket, "hits").await?, Some(counter(10)));
    assert_eq!(caller.increment(&bucket, "hits", 5).await?, 15);
    assert_eq!(caller.get(&bucket, "hits").await?, Some(counter(15)));
    assert_eq!(caller.increment(&bucket, "hits", 1).await?, 16);

    // A value that is no counter is not incremented, and stays.
    caller.set(&bucket, "name", b"trellis").await?;
    let refused = caller.increment(&bucket, "name", 1).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("not an 8-byte counter")),
        "{refused:?}"
    );
    assert_eq!(
        caller.get(&bucket, "name").await?,
        Some(b"trellis".to_vec())
    );

    // `delete` forgets the counter; an increment then starts from nothing.
    caller.delete(&bucket, "hits").await?;
    assert_eq!(caller.get(&bucket, "hits").await?, None);
    assert_eq!(caller.increment(&bucket, "hits", 3).await?, 3);
    assert_eq!(caller.get(&bucket, "hits").await?, Some(counter(3)));

    // Past 2^64 - 1 the value wraps, as the in-memory store's does.
    caller.set(&bucket, "big", &counter(u64::MAX)).await?;
    assert_eq!(caller.increment(&bucket, "big", 2).await?, 1);
    assert_eq!(caller.get(&bucket, "big").await?, Some(counter(1)));

    // Another workload's "hits" is its own.
    let other = Caller {
        nats: nats.client_as("host", "caller").await?,
        workload: "other",
    };
    let theirs = other.open("atoms").await?;
    assert_eq!(other.get(&theirs, "hits").await?, None);
    assert_eq!(other.increment(&theirs, "hits", 7).await?, 7);
    assert_eq!(caller.get(&bucket, "hits").await?, Some(counter(3)));
    // Nor can it use the other's handle.
    for refused in [
        other.get(&bucket, "hits").await.map(drop),
        other.increment(&bucket, "hits", 1).await.map(drop),
        other.set(&bucket, "hits", b"x").await,
    ] {
        assert!(refused.is_err(), "{refused:?}");
    }
    assert_eq!(caller.get(&bucket, "hits").await?, Some(counter(3)));
    Ok(())
}
