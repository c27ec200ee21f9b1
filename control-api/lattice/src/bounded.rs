//! A wRPC server that takes from its callers only what it has checked.
//!
//! Three bounds, one place for every server on wrpc-transport-nats:
//! - the parameters of each call are walked against the function's
//!   [`Signature`] before the decoder sees a byte (the pinned decoders
//!   preallocate from length prefixes), under a per-call cap;
//! - every read has an idle bound: wrpc-transport 0.29 decodes the
//!   invocations of one function one after another, so a caller that opens
//!   an invocation and never sends its parameters would stall that function
//!   for every workload;
//! - calls in flight are bounded; a call beyond the bound is dropped at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use trellis_wire::{Progress, Signature, Signatures};
use wrpc_transport::{Index, Serve};
use wrpc_transport_nats::NatsContext;

use crate::{CallErrorKind, Failure};

/// What a server takes from its callers; the defaults suit every Trellis server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// How long an invocation may go without sending a byte.
    pub idle: Duration,
    /// The most bytes of parameters one call may send (lean calls are bounded
    /// by the NATS message size as well).
    pub max_params: usize,
    /// Calls answered at once; a call beyond this is refused as busy.
    pub max_in_flight: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            idle: Duration::from_secs(2),
            max_params: 16 << 20,
            max_in_flight: 1024,
        }
    }
}

/// `wrpc_transport_nats::Client` as a server, with checked, bounded calls.
#[derive(Clone)]
pub struct BoundedServer {
    inner: wrpc_transport_nats::Client,
    signatures: Arc<Signatures>,
    limits: ServerLimits,
    in_flight: Arc<Semaphore>,
}

impl BoundedServer {
    /// Serves through `inner` the functions of `signatures`, under `limits`.
    pub fn new(
        inner: wrpc_transport_nats::Client,
        signatures: Arc<Signatures>,
        limits: ServerLimits,
    ) -> Self {
        BoundedServer {
            inner,
            signatures,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            limits,
        }
    }

    /// The limits calls are taken under.
    pub fn limits(&self) -> ServerLimits {
        self.limits
    }

    /// The signature of `instance.func`; serving a function without one
    /// would hand unchecked bytes to a decoder, so that is an error.
    pub(crate) fn signature(&self, instance: &str, func: &str) -> anyhow::Result<Arc<Signature>> {
        self.signatures
            .get(instance, func)
            .cloned()
            .map(Arc::new)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no signature for `{instance}.{func}`: refusing to serve it unchecked"
                )
            })
    }

    /// A place among the calls in flight, if there is one.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }
}

type Inner = wrpc_transport_nats::Client;

impl Serve for BoundedServer {
    type Context = NatsContext;
    type Outgoing = Held<<Inner as Serve>::Outgoing>;
    type Incoming = BoundedIncoming<<Inner as Serve>::Incoming>;

    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<
        impl Stream<Item = anyhow::Result<(Self::Context, Self::Outgoing, Self::Incoming)>>
        + Send
        + 'static,
    > {
        let signature = self.signature(instance, func)?;
        let limits = self.limits;
        let server = self.clone();
        let what: Arc<str> = format!("{instance}.{func}").into();
        let invocations = self.inner.serve(instance, func, paths).await?;
        Ok(invocations.filter_map(move |invocation| {
            let admitted = invocation.map(|(cx, tx, rx)| {
                let permit = server.admit();
                (cx, tx, rx, permit)
            });
            let result = match admitted {
                Ok((_, _, _, None)) => {
                    tracing::warn!(function = %what, "busy: a call beyond the in-flight bound is dropped");
                    None
                }
                Ok((cx, tx, rx, Some(permit))) => Some(Ok((
                    cx,
                    Held::new(tx, permit),
                    BoundedIncoming::checked(rx, limits, signature.clone()),
                ))),
                Err(e) => Some(Err(e)),
            };
            std::future::ready(result)
        }))
    }
}

/// An outgoing stream that holds its call's place among the calls in flight
/// until the results are written.
pub struct Held<T> {
    inner: T,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<T> Held<T> {
    fn new(inner: T, permit: OwnedSemaphorePermit) -> Self {
        Held {
            inner,
            _permit: Some(permit),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Held<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Index<T>> Index<Held<T>> for Held<T> {
    fn index(&self, path: &[usize]) -> anyhow::Result<Held<T>> {
        Ok(Held {
            inner: self.inner.index(path)?,
            _permit: None,
        })
    }
}

/// The parameters of a call, checked before they are handed on.
enum Check {
    /// Still arriving, held here until the signature is satisfied; the
    /// number is how many bytes must be here before a check can progress.
    Holding(Arc<Signature>, Vec<u8>, usize),
    /// Checked; being handed to the reader.
    Releasing(bytes::Bytes),
    /// Passed through as they come (sub-streams, and the root after its parameters).
    Through,
}

/// An incoming byte stream that checks its call's parameters and fails once
/// it has been idle too long.
pub struct BoundedIncoming<T> {
    inner: T,
    limits: ServerLimits,
    deadline: Pin<Box<Sleep>>,
    check: Check,
}

impl<T> BoundedIncoming<T> {
    fn checked(inner: T, limits: ServerLimits, signature: Arc<Signature>) -> Self {
        BoundedIncoming {
            check: Check::Holding(signature, Vec::new(), 0),
            ..Self::through(inner, limits)
        }
    }

    fn through(inner: T, limits: ServerLimits) -> Self {
        BoundedIncoming {
            inner,
            limits,
            deadline: Box::pin(tokio::time::sleep(limits.idle)),
            check: Check::Through,
        }
    }
}

/// A refused payload as the reader's error, keeping its kind.
pub(crate) fn invalid(error: trellis_wire::PayloadError) -> Failure {
    Failure::new(CallErrorKind::Invalid, error.to_string())
}

impl<T: AsyncRead + Unpin> BoundedIncoming<T> {
    /// Reads from the caller, bounded by the idle limit.
    fn poll_inner(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let idle = self.limits.idle;
                self.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the caller sent nothing for {:?}", self.limits.idle),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BoundedIncoming<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.check {
                Check::Through => return this.poll_inner(cx, out),
                Check::Releasing(held) => {
                    if held.is_empty() {
                        this.check = Check::Through;
                        continue;
                    }
                    let n = held.len().min(out.remaining());
                    out.put_slice(&held.split_to(n));
                    return Poll::Ready(Ok(()));
                }
                Check::Holding(signature, held, needed) => {
                    // Checked before a read once enough has come to progress:
                    // parameters may be complete already (a function without
                    // any takes no bytes), and a large value is walked once.
                    let verdict = if held.len() < *needed {
                        None
                    } else {
                        match trellis_wire::check_prefix(signature, held, this.limits.max_params) {
                            Ok(Progress::Incomplete(more)) => {
                                *needed = more;
                                None
                            }
                            Ok(Progress::Complete(n)) if n < held.len() => {
                                Some(Err(trellis_wire::PayloadError {
                                    offset: n,
                                    path: Vec::new(),
                                    problem: trellis_wire::Problem::Trailing(held.len() - n),
                                }))
                            }
                            Ok(Progress::Complete(_)) => Some(Ok(())),
                            Err(e) => Some(Err(e)),
                        }
                    };
                    let verdict = match verdict {
                        Some(verdict) => verdict,
                        None => {
                            let mut chunk = [0u8; 16 << 10];
                            let mut read = ReadBuf::new(&mut chunk);
                            ready!(this.poll_inner(cx, &mut read))?;
                            let Check::Holding(signature, held, _) = &mut this.check else {
                                continue;
                            };
                            if !read.filled().is_empty() {
                                held.extend_from_slice(read.filled());
                                continue;
                            }
                            // The caller ended its parameters: they must be whole.
                            trellis_wire::check(signature, held)
                        }
                    };
                    let Check::Holding(_, held, _) = &mut this.check else {
                        continue;
                    };
                    match verdict {
                        Ok(()) => {
                            let held = std::mem::take(held);
                            this.check = Check::Releasing(held.into());
                        }
                        Err(e) => {
                            this.check = Check::Through;
                            return Poll::Ready(Err(invalid(e).into()));
                        }
                    }
                }
            }
        }
    }
}

impl<T: Index<T>> Index<BoundedIncoming<T>> for BoundedIncoming<T> {
    fn index(&self, path: &[usize]) -> anyhow::Result<BoundedIncoming<T>> {
        Ok(BoundedIncoming::through(
            self.inner.index(path)?,
            self.limits,
        ))
    }
}
