//! The byte streams of a call, on either side: a lean call's bytes in memory,
//! or a wrpc-transport-nats call's streams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wrpc_transport::Index;

use crate::{CallErrorKind, Failure};

/// What a lean outgoing stream hands on when it ends: its bytes, or why there
/// are none. Shared with its [`Failer`]s; whoever ends the call first takes it.
type Sender = Arc<Mutex<Option<Box<dyn FnOnce(Result<Bytes, Failure>) + Send + Sync>>>>;

/// Ends a call with a failure after its outgoing stream has been handed to
/// whatever writes the results (the wasmtime call), so a failure found
/// outside it (a timeout) still reaches the caller as a typed reply. If neither
/// results nor a failure were sent when the last holder goes, the caller gets
/// a `refused` reply: it is never left waiting.
pub struct Failer {
    send: Option<Sender>,
}

impl Failer {
    /// Ends the call with `failure`, unless it has ended already. A
    /// `trellis-rr/1` caller gets it as a typed error reply; a
    /// wrpc-transport-nats caller, which has no error of its own, sees its
    /// results stream end empty when the stream is dropped.
    pub fn fail(&self, failure: Failure) {
        if let Some(send) = &self.send {
            finish(send, Err(failure));
        }
    }
}

impl Drop for Failer {
    fn drop(&mut self) {
        if let Some(send) = self.send.take() {
            drop_unsent(send);
        }
    }
}

/// Hands `result` to the sender, if nobody has yet.
fn finish(send: &Sender, result: Result<Bytes, Failure>) {
    let taken = send.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(send) = taken {
        send(result);
    }
}

/// The last holder of an unsent call fails it, so the caller never hangs.
fn drop_unsent(send: Sender) {
    if Arc::strong_count(&send) == 1 {
        finish(
            &send,
            Err(Failure::new(
                CallErrorKind::Refused,
                "the callee ended the call without results",
            )),
        );
    }
}

/// What one side of a call writes.
pub enum LeanOutgoing<S> {
    /// Collected, then handed to `send` on shutdown as one message.
    Lean {
        /// What was written so far.
        buf: BytesMut,
        /// Sends it on shutdown (or a failure, or the last drop without either).
        send: Option<Sender>,
    },
    /// A wrpc-transport-nats call.
    Standard(S),
}

/// The future of a lean call's reply, polled by the reader that wants it.
pub(super) type Reply = Pin<Box<dyn Future<Output = io::Result<Bytes>> + Send>>;

/// Where the writer leaves the reply's future for the reader.
pub(super) type ReplySlot = Arc<Mutex<Option<Reply>>>;

/// What one side of a call reads.
pub enum LeanIncoming<S> {
    /// One message's bytes, once they are there.
    Lean {
        /// Until the message arrives: the slot its future is put in.
        pending: Option<ReplySlot>,
        /// What is left to read of it.
        data: Bytes,
    },
    /// A wrpc-transport-nats call.
    Standard(S),
}

impl<S> LeanOutgoing<S> {
    /// Bytes that `send` gets on shutdown; a failure, or a drop before
    /// shutdown, hands it an `Err` instead.
    pub(super) fn lean(send: impl FnOnce(Result<Bytes, Failure>) + Send + Sync + 'static) -> Self {
        LeanOutgoing::Lean {
            buf: BytesMut::new(),
            send: Some(Arc::new(Mutex::new(Some(Box::new(send))))),
        }
    }

    /// A handle that can end this call with a failure even after the stream
    /// itself has been handed on (see [`Failer`]).
    pub fn failer(&self) -> Failer {
        Failer {
            send: match self {
                LeanOutgoing::Lean { send, .. } => send.clone(),
                LeanOutgoing::Standard(_) => None,
            },
        }
    }
}

impl<S> Drop for LeanOutgoing<S> {
    fn drop(&mut self) {
        if let LeanOutgoing::Lean { send, .. } = self
            && let Some(send) = send.take()
        {
            drop_unsent(send);
        }
    }
}

impl<S> LeanIncoming<S> {
    /// Bytes that the future put in `pending` yields.
    pub(super) fn waiting(pending: ReplySlot) -> Self {
        LeanIncoming::Lean {
            pending: Some(pending),
            data: Bytes::new(),
        }
    }

    /// Bytes already here.
    pub(super) fn ready(data: Bytes) -> Self {
        LeanIncoming::Lean {
            pending: None,
            data,
        }
    }
}

fn no_async_values() -> anyhow::Error {
    anyhow::anyhow!("a `trellis-rr/1` call carries no async values")
}

impl<S: Index<S>> Index<LeanOutgoing<S>> for LeanOutgoing<S> {
    fn index(&self, path: &[usize]) -> anyhow::Result<LeanOutgoing<S>> {
        match self {
            LeanOutgoing::Standard(w) => w.index(path).map(LeanOutgoing::Standard),
            LeanOutgoing::Lean { .. } => Err(no_async_values()),
        }
    }
}

impl<S: Index<S>> Index<LeanIncoming<S>> for LeanIncoming<S> {
    fn index(&self, path: &[usize]) -> anyhow::Result<LeanIncoming<S>> {
        match self {
            LeanIncoming::Standard(r) => r.index(path).map(LeanIncoming::Standard),
            LeanIncoming::Lean { .. } => Err(no_async_values()),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LeanOutgoing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            LeanOutgoing::Lean { buf, .. } => {
                buf.extend_from_slice(data);
                Poll::Ready(Ok(data.len()))
            }
            LeanOutgoing::Standard(w) => Pin::new(w).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LeanOutgoing::Lean { .. } => Poll::Ready(Ok(())),
            LeanOutgoing::Standard(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LeanOutgoing::Lean { buf, send } => {
                if let Some(send) = send.take() {
                    finish(&send, Ok(buf.split().freeze()));
                }
                Poll::Ready(Ok(()))
            }
            LeanOutgoing::Standard(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LeanIncoming<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LeanIncoming::Lean { pending, data } => {
                if let Some(slot) = pending {
                    let mut reply = slot.lock().unwrap_or_else(|p| p.into_inner());
                    let arrived = match reply.as_mut().map(|f| f.as_mut().poll(cx)) {
                        Some(Poll::Pending) => return Poll::Pending,
                        Some(Poll::Ready(arrived)) => arrived,
                        None => Err(io::Error::other(
                            "the call's results were read before its parameters were sent",
                        )),
                    };
                    drop(reply);
                    *pending = None;
                    *data = arrived?;
                }
                let n = data.len().min(out.remaining());
                out.put_slice(&data.split_to(n));
                Poll::Ready(Ok(()))
            }
            LeanIncoming::Standard(r) => Pin::new(r).poll_read(cx, out),
        }
    }
}
