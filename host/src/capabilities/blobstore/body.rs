//! Object bodies as wasi:io streams. Reads flow from the backend chunk by
//! chunk; writes buffer until `write-data` names the object, then flow to the
//! backend's upload with backpressure, so neither direction holds a large
//! object whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

use super::{BlobstoreBackend, BlobstoreError, ByteStream, MAX_OBJECT_SIZE, ObjectBody};

/// Bytes a guest may write at once.
const WRITE_BUDGET: usize = 64 << 10;
/// Chunks in flight between the guest and an upload.
const UPLOAD_QUEUE: usize = 16;

/// Where an outgoing value's bytes go.
enum Sink {
    /// Before `write-data`: held here, at most [`MAX_OBJECT_SIZE`].
    Buffer(Vec<Bytes>, usize),
    /// After `write-data`: sent to the upload.
    Upload(mpsc::Sender<Result<Bytes, BlobstoreError>>),
    /// After `finish` or drop.
    Closed,
}

/// A value being written, as held in the resource table.
pub struct OutgoingValue {
    sink: Arc<Mutex<Sink>>,
    stream_taken: bool,
    upload: Option<Upload>,
}

/// An upload started by `write-data`.
struct Upload {
    object: String,
    /// Set by `finish`: the end of the bytes is then the end of the object.
    complete: Arc<AtomicBool>,
    task: JoinHandle<Result<u64, BlobstoreError>>,
}

impl Default for OutgoingValue {
    fn default() -> Self {
        OutgoingValue {
            sink: Arc::new(Mutex::new(Sink::Buffer(Vec::new(), 0))),
            stream_taken: false,
            upload: None,
        }
    }
}

impl OutgoingValue {
    fn sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The body's output stream; `None` once it was taken.
    pub fn take_stream(&mut self) -> Option<BodyWriter> {
        (!std::mem::replace(&mut self.stream_taken, true)).then(|| BodyWriter {
            sink: self.sink.clone(),
        })
    }

    /// Starts storing this value as `object` of `container` on `backend`: what
    /// was written so far, then whatever is written until `finish`.
    pub fn start_upload(
        &mut self,
        backend: Arc<dyn BlobstoreBackend>,
        container: String,
        object: String,
    ) -> Result<(), BlobstoreError> {
        if let Some(upload) = &self.upload {
            return Err(BlobstoreError(format!(
                "this outgoing-value is already being written to object `{}`; use a new outgoing-value for another object",
                upload.object
            )));
        }
        let (tx, rx) = mpsc::channel(UPLOAD_QUEUE);
        let buffered = match std::mem::replace(&mut *self.sink(), Sink::Upload(tx)) {
            Sink::Buffer(chunks, _) => chunks,
            _ => Vec::new(),
        };
        let complete = Arc::new(AtomicBool::new(false));
        let ended = complete.clone();
        let rest = futures::stream::unfold(Some(rx), move |rx| {
            let ended = ended.clone();
            async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(chunk) => Some((chunk, Some(rx))),
                    None if ended.load(Ordering::Acquire) => None,
                    None => Some((
                        Err(BlobstoreError(
                            "the outgoing-value was dropped before `finish`".into(),
                        )),
                        None,
                    )),
                }
            }
        });
        let body: ByteStream =
            Box::pin(futures::stream::iter(buffered.into_iter().map(Ok)).chain(rest));
        let name = object.clone();
        let task = tokio::spawn(tracing::Instrument::in_current_span(async move {
            backend.write_object(&container, &name, body).await
        }));
        self.upload = Some(Upload {
            object,
            complete,
            task,
        });
        Ok(())
    }

    /// Ends the value: its upload, if `write-data` started one, completes and
    /// reports how it went.
    pub async fn finish(mut self) -> Result<(), BlobstoreError> {
        let Some(upload) = self.upload.take() else {
            return Ok(());
        };
        upload.complete.store(true, Ordering::Release);
        *self.sink() = Sink::Closed;
        match upload.task.await {
            Ok(result) => result.map(|_| ()),
            Err(e) => Err(BlobstoreError(format!(
                "the upload of object `{}` failed: {e}",
                upload.object
            ))),
        }
    }
}

impl Drop for OutgoingValue {
    fn drop(&mut self) {
        // Without `finish`, the upload ends with an error and stores nothing.
        *self.sink() = Sink::Closed;
    }
}

/// The output stream of an outgoing value's body.
pub struct BodyWriter {
    sink: Arc<Mutex<Sink>>,
}

impl BodyWriter {
    fn sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn too_big() -> StreamError {
    StreamError::LastOperationFailed(wasmtime::format_err!(
        "an outgoing-value buffers at most {MAX_OBJECT_SIZE} bytes before `write-data`; call `write-data` first to stream a larger object"
    ))
}

fn upload_failed() -> StreamError {
    StreamError::LastOperationFailed(wasmtime::format_err!(
        "the upload stopped; `finish` reports why"
    ))
}

#[async_trait::async_trait]
impl OutputStream for BodyWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match &mut *self.sink() {
            Sink::Buffer(chunks, size) => {
                if *size + bytes.len() > MAX_OBJECT_SIZE {
                    return Err(too_big());
                }
                *size += bytes.len();
                chunks.push(bytes);
                Ok(())
            }
            Sink::Upload(tx) => match tx.try_send(Ok(bytes)) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Err(StreamError::trap("wrote more than check-write permitted"))
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(upload_failed()),
            },
            Sink::Closed => Err(StreamError::Closed),
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        match &*self.sink() {
            Sink::Buffer(_, size) if *size >= MAX_OBJECT_SIZE => Err(too_big()),
            Sink::Buffer(_, size) => Ok(WRITE_BUDGET.min(MAX_OBJECT_SIZE - size)),
            Sink::Upload(tx) if tx.is_closed() => Err(upload_failed()),
            Sink::Upload(tx) => Ok(if tx.capacity() > 0 { WRITE_BUDGET } else { 0 }),
            Sink::Closed => Err(StreamError::Closed),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for BodyWriter {
    async fn ready(&mut self) {
        let tx = match &*self.sink() {
            Sink::Upload(tx) => tx.clone(),
            _ => return,
        };
        // Ready once the upload has room (or has stopped, which `write` reports).
        let _ = tx.reserve().await;
    }
}

/// A value read from the store, as held in the resource table.
pub struct IncomingValue {
    body: ObjectBody,
}

impl IncomingValue {
    /// A value whose bytes come from `body`.
    pub fn new(body: ObjectBody) -> Self {
        IncomingValue { body }
    }

    /// How many bytes the value has.
    pub fn size(&self) -> u64 {
        self.body.len
    }

    /// All the bytes at once, for values of at most [`MAX_OBJECT_SIZE`].
    pub async fn collect(self) -> Result<Vec<u8>, BlobstoreError> {
        let len = self.body.len;
        if len > MAX_OBJECT_SIZE as u64 {
            return Err(BlobstoreError(format!(
                "the value is {len} bytes; `incoming-value-consume-sync` returns at most {MAX_OBJECT_SIZE}: use `incoming-value-consume-async` to stream it"
            )));
        }
        let mut data = Vec::with_capacity(len as usize);
        let mut chunks = self.body.chunks;
        while let Some(chunk) = chunks.next().await {
            data.extend_from_slice(&chunk?);
        }
        if data.len() as u64 != len {
            return Err(cut_off(len, data.len() as u64));
        }
        Ok(data)
    }

    /// The bytes as an input stream.
    pub fn into_stream(self) -> BodyReader {
        BodyReader {
            len: self.body.len,
            received: 0,
            chunks: self.body.chunks,
            pending: None,
            ended: false,
            failure: None,
        }
    }
}

fn cut_off(len: u64, received: u64) -> BlobstoreError {
    BlobstoreError(format!(
        "the value was cut off after {received} of {len} bytes"
    ))
}

/// The input stream of an incoming value.
pub struct BodyReader {
    len: u64,
    received: u64,
    chunks: ByteStream,
    pending: Option<Bytes>,
    ended: bool,
    failure: Option<BlobstoreError>,
}

#[async_trait::async_trait]
impl InputStream for BodyReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if let Some(mut chunk) = self.pending.take() {
            let now = chunk.split_to(size.min(chunk.len()));
            if !chunk.is_empty() {
                self.pending = Some(chunk);
            }
            return Ok(now);
        }
        if !self.ended {
            return Ok(Bytes::new());
        }
        if let Some(e) = &self.failure {
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "{e}"
            )));
        }
        if self.received < self.len {
            let e = cut_off(self.len, self.received);
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "{e}"
            )));
        }
        Err(StreamError::Closed)
    }
}

#[async_trait::async_trait]
impl Pollable for BodyReader {
    async fn ready(&mut self) {
        if self.pending.is_some() || self.ended {
            return;
        }
        match self.chunks.next().await {
            Some(Ok(chunk)) => {
                self.received += chunk.len() as u64;
                self.pending = (!chunk.is_empty()).then_some(chunk);
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "object read failed");
                self.failure = Some(e);
                self.ended = true;
            }
            None => self.ended = true,
        }
    }
}
