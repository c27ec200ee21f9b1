//! A wRPC server that takes from its callers only what it has checked.
//!
//! One place for every server on wrpc-transport-nats:
//! - the parameters of each call are collected and walked against the
//!   function's [`Signature`] before the decoder sees a byte (the pinned
//!   decoders preallocate from length prefixes), under a per-call cap, an idle
//!   bound and a total deadline;
//! - calls are collected concurrently, so a caller that trickles its
//!   parameters holds only its own call: wrpc-transport 0.29 decodes the
//!   invocations of one function one after another, and here each reaches it
//!   whole;
//! - nothing follows the parameters on the call's stream (a decoder that reads
//!   to the end stops there);
//! - calls in flight are bounded; a call beyond the bound is dropped at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use trellis_wire::{PayloadError, Problem, Progress, Signature, Signatures};
use wrpc_transport::{Index, Serve};
use wrpc_transport_nats::NatsContext;

use crate::{CallErrorKind, Failure};

/// What a server takes from its callers; the defaults suit every Trellis server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// How long an invocation may go without sending a byte.
    pub idle: Duration,
    /// How long a call may take to send all its parameters.
    pub params_deadline: Duration,
    /// The most bytes of parameters one call may send (lean calls are bounded
    /// by the NATS message size as well).
    pub max_params: usize,
    /// Calls whose parameters are being collected at once.
    pub collecting: usize,
    /// Calls answered at once; a call beyond this is refused as busy.
    pub max_in_flight: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            idle: Duration::from_secs(2),
            params_deadline: Duration::from_secs(10),
            max_params: 8 << 20,
            collecting: 32,
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
type Invocation = (
    NatsContext,
    Held<<Inner as Serve>::Outgoing>,
    BoundedIncoming<<Inner as Serve>::Incoming>,
);

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
        let collected = invocations
            .map(move |invocation| {
                let (signature, what) = (signature.clone(), what.clone());
                let permit = invocation.is_ok().then(|| server.admit());
                async move {
                    let (cx, tx, rx) = match invocation {
                        Ok(parts) => parts,
                        Err(e) => return Some(Err(e)),
                    };
                    let Some(Some(permit)) = permit else {
                        tracing::warn!(function = %what, "busy: a call beyond the in-flight bound is dropped");
                        return None;
                    };
                    match collect(rx, &signature, limits).await {
                        Ok(rx) => Some(Ok::<Invocation, _>((cx, Held::new(tx, permit), rx))),
                        Err(e) => {
                            tracing::debug!(function = %what, error = %e, "a call's parameters were refused");
                            None
                        }
                    }
                }
            })
            .buffer_unordered(limits.collecting)
            .filter_map(std::future::ready);
        Ok(collected)
    }
}

/// Reads a call's parameters whole, checking them as they come: every
/// length against the cap before it is waited for, each read against the
/// idle bound, all of them against the deadline. The walk runs again once
/// the bytes it needs are there and the payload has grown by a quarter, or
/// the caller has paused, so a large value is not walked once per message.
async fn collect<T: AsyncRead + Unpin>(
    mut rx: T,
    signature: &Signature,
    limits: ServerLimits,
) -> io::Result<BoundedIncoming<T>> {
    let deadline = Instant::now() + limits.params_deadline;
    let mut held: Vec<u8> = Vec::new();
    let mut looks = Looks::default();
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let arrived = match rx.read(&mut chunk).now_or_never() {
            Some(read) => read?,
            None => {
                // Nothing more for now: whatever came is worth a look.
                if looks.look(signature, &held, limits, true)? {
                    break;
                }
                let wait = limits
                    .idle
                    .min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(wait, rx.read(&mut chunk)).await {
                    Ok(read) => read?,
                    Err(_) => {
                        let why = if Instant::now() >= deadline {
                            format!(
                                "the parameters took longer than {:?}",
                                limits.params_deadline
                            )
                        } else {
                            format!("the caller sent nothing for {:?}", limits.idle)
                        };
                        return Err(io::Error::new(io::ErrorKind::TimedOut, why));
                    }
                }
            }
        };
        if arrived == 0 {
            // The caller ended its parameters: they must be whole.
            trellis_wire::check(signature, &held).map_err(|e| io::Error::from(invalid(e)))?;
            break;
        }
        held.extend_from_slice(&chunk[..arrived]);
        if held.len() > limits.max_params {
            return Err(invalid(PayloadError {
                offset: limits.max_params,
                path: Vec::new(),
                problem: Problem::OverCap(limits.max_params),
            })
            .into());
        }
        if looks.look(signature, &held, limits, false)? {
            break;
        }
    }
    let rest = if signature.params.iter().any(|p| p.shape.is_async()) {
        // Async values may follow on the stream.
        Rest::Through
    } else {
        Rest::End
    };
    Ok(BoundedIncoming {
        inner: rx,
        limits,
        idle: None,
        check: Check::Releasing(held.into(), rest),
    })
}

/// When the walk over parameters still arriving runs again: once the bytes
/// it last needed are there, and the payload has grown by a quarter since,
/// or (`paused`) the caller has stopped sending for now.
#[derive(Default)]
struct Looks {
    needed: usize,
    checked: Option<usize>,
}

impl Looks {
    /// Walks `held` if it is time; true once the parameters are complete.
    fn look(
        &mut self,
        signature: &Signature,
        held: &[u8],
        limits: ServerLimits,
        paused: bool,
    ) -> io::Result<bool> {
        let grown = match self.checked {
            None => true,
            Some(at) if paused => held.len() > at,
            Some(at) => held.len() >= at + at / 4 + 64,
        };
        if held.len() < self.needed || !grown {
            return Ok(false);
        }
        match progress(signature, held, limits)? {
            Progress::Complete(_) => Ok(true),
            Progress::Incomplete(more) => {
                self.needed = more;
                self.checked = Some(held.len());
                Ok(false)
            }
        }
    }
}

/// How far `held` got; complete parameters with bytes after them are refused.
fn progress(signature: &Signature, held: &[u8], limits: ServerLimits) -> io::Result<Progress> {
    match trellis_wire::check_prefix(signature, held, limits.max_params) {
        Ok(Progress::Complete(n)) if n < held.len() => Err(invalid(PayloadError {
            offset: n,
            path: Vec::new(),
            problem: Problem::Trailing(held.len() - n),
        })
        .into()),
        Ok(progress) => Ok(progress),
        Err(e) => Err(invalid(e).into()),
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

/// What follows a call's checked parameters on its stream.
#[derive(Clone, Copy)]
enum Rest {
    /// Nothing: the stream ends with them.
    End,
    /// Whatever comes (async values, sub-streams), under the idle bound.
    Through,
}

/// Where a call's stream is.
enum Check {
    /// Checked parameters being handed to the reader.
    Releasing(bytes::Bytes, Rest),
    /// After them.
    After(Rest),
}

/// A call's incoming bytes: its checked parameters, then (for sub-streams
/// and async values only) what comes, each read idle-bounded.
pub struct BoundedIncoming<T> {
    inner: T,
    limits: ServerLimits,
    /// When a read after the parameters gives up; made on the first such read.
    idle: Option<Pin<Box<Sleep>>>,
    check: Check,
}

/// A refused payload as the reader's error, keeping its kind.
pub(crate) fn invalid(error: trellis_wire::PayloadError) -> Failure {
    Failure::new(CallErrorKind::Invalid, error.to_string())
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
                Check::Releasing(held, rest) => {
                    if held.is_empty() {
                        this.check = Check::After(*rest);
                        continue;
                    }
                    let n = held.len().min(out.remaining());
                    out.put_slice(&held.split_to(n));
                    return Poll::Ready(Ok(()));
                }
                Check::After(Rest::End) => return Poll::Ready(Ok(())),
                Check::After(Rest::Through) => {
                    let limit = this.limits.idle;
                    return match Pin::new(&mut this.inner).poll_read(cx, out) {
                        Poll::Ready(result) => {
                            if let Some(idle) = &mut this.idle {
                                idle.as_mut().reset(Instant::now() + limit);
                            }
                            Poll::Ready(result)
                        }
                        Poll::Pending => match this
                            .idle
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)))
                            .as_mut()
                            .poll(cx)
                        {
                            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("the caller sent nothing for {:?}", this.limits.idle),
                            ))),
                            Poll::Pending => Poll::Pending,
                        },
                    };
                }
            }
        }
    }
}

impl<T: Index<T>> Index<BoundedIncoming<T>> for BoundedIncoming<T> {
    fn index(&self, path: &[usize]) -> anyhow::Result<BoundedIncoming<T>> {
        Ok(BoundedIncoming {
            inner: self.inner.index(path)?,
            limits: self.limits,
            idle: None,
            check: Check::After(Rest::Through),
        })
    }
}
