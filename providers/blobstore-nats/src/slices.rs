//! Reading an object a slice at a time, straight from its chunk messages, so
//! each slice costs what it returns (no re-reading from the object's start).

use async_nats::jetstream::object_store::ObjectInfo;
use async_nats::jetstream::stream::Stream;
use bytes::BytesMut;

use crate::bindings::exports::trellis::blobstore::objects::{Cursor, Slice};

/// The most bytes one slice carries.
pub const SLICE: u64 = 1 << 20;

/// The slice of `info`'s bytes `start..stop` that begins at `at` (or, without
/// a cursor, at `start`), read from the container's chunk stream `chunks`.
pub async fn read(
    chunks: &Stream,
    info: &ObjectInfo,
    start: u64,
    stop: u64,
    at: Option<Cursor>,
) -> Result<Slice, String> {
    let (mut sequence, mut skip) = match at {
        Some(at) if at.version == info.nuid => (at.sequence, at.skip),
        Some(_) => {
            return Err(format!(
                "object `{}` was replaced while being read",
                info.name
            ));
        }
        None => (1, start),
    };
    let subject = format!("$O.{}.C.{}", info.bucket, info.nuid);
    let want = stop.saturating_sub(start).min(SLICE) as usize;
    let mut data = BytesMut::with_capacity(want);
    while data.len() < want {
        let chunk = chunks
            .raw_message_builder()
            .sequence(sequence)
            .next_by_subject(subject.clone())
            .send()
            .await
            .map_err(|e| format!("cannot read object `{}`: {e}", info.name))?;
        let len = chunk.payload.len() as u64;
        if skip >= len {
            skip -= len;
            sequence = chunk.sequence + 1;
            continue;
        }
        let from = skip as usize;
        let take = (chunk.payload.len() - from).min(want - data.len());
        data.extend_from_slice(&chunk.payload[from..from + take]);
        if from + take < chunk.payload.len() {
            skip = (from + take) as u64;
            sequence = chunk.sequence;
        } else {
            skip = 0;
            sequence = chunk.sequence + 1;
        }
    }
    let next = (start + (data.len() as u64) < stop).then(|| Cursor {
        version: info.nuid.clone(),
        sequence,
        skip,
    });
    Ok(Slice {
        size: info.size as u64,
        data: data.freeze(),
        next,
    })
}
