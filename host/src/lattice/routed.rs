//! The transport of polyfilled imports: wrpc-runtime-wasmtime's dynamic polyfill
//! calls one `Invoke` per store, and this one sends each import to the target its
//! binding names, with that binding's identity headers and timeout.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tracing::Instrument as _;
use wrpc_transport::{Index, Invoke};

use super::{CallError, CallTarget};
use trellis_lattice::CallErrorKind;

type Nats = trellis_lattice::lean::LeanClient;

/// Call targets of one component's polyfilled imports, by import name.
#[derive(Clone, Default)]
pub struct RoutedInvoke {
    routes: Arc<HashMap<String, CallTarget>>,
}

impl RoutedInvoke {
    /// Sends each import in `routes` to its target.
    pub fn new(routes: HashMap<String, CallTarget>) -> Self {
        RoutedInvoke {
            routes: Arc::new(routes),
        }
    }
}

impl Invoke for RoutedInvoke {
    type Context = ();
    type Outgoing = Guarded<<Nats as Invoke>::Outgoing>;
    type Incoming = Guarded<<Nats as Invoke>::Incoming>;

    async fn invoke<P>(
        &self,
        (): (),
        instance: &str,
        func: &str,
        params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        let target = self
            .routes
            .get(instance)
            .ok_or_else(|| anyhow::anyhow!("no binding routes `{instance}`"))?;
        let what = format!("{instance}.{func}");
        let started = std::time::Instant::now();
        let deadline = Instant::now() + target.timeout();
        let span = trellis_lattice::trace::client_span(instance, func, target.describe());
        let call = Call {
            target: target.clone(),
            what,
            instance_len: instance.len(),
            span,
            started,
            failed: std::sync::OnceLock::new(),
        };
        let invoked = target
            .client
            .invoke(target.context(), instance, func, params, paths)
            .instrument(call.span.clone());
        let (outgoing, incoming) = match tokio::time::timeout_at(deadline, invoked).await {
            Ok(Ok(streams)) => streams,
            Ok(Err(e)) => {
                let kind = CallErrorKind::of_anyhow(&e);
                return Err(call.fail(kind, format!("{e:#}")).into());
            }
            Err(_) => return Err(call.fail(CallErrorKind::TimedOut, String::new()).into()),
        };
        let call = Arc::new(call);
        Ok((
            Guarded::new(outgoing, deadline, call.clone()),
            Guarded::new(incoming, deadline, call),
        ))
    }
}

/// One call in flight: its error messages, its span, and its metric, recorded
/// when both of its streams are gone.
struct Call {
    target: CallTarget,
    what: String,
    /// Where `what` (`instance.func`) splits: no copy of either per call.
    instance_len: usize,
    span: tracing::Span,
    started: std::time::Instant,
    failed: std::sync::OnceLock<CallErrorKind>,
}

impl Call {
    /// The error of this call failing as `kind`, remembered for its metric.
    fn fail(&self, kind: CallErrorKind, detail: String) -> CallError {
        let _ = self.failed.set(kind);
        self.target.failure(&self.what, kind, detail)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let error = self.failed.get().copied();
        let (instance, func) = (
            &self.what[..self.instance_len],
            &self.what[self.instance_len + 1..],
        );
        self.target
            .observe(&self.span, instance, func, error, self.started);
    }
}

/// A stream of one call that fails once the binding's deadline passes, so a callee
/// that stops answering cannot hang the caller, and whose errors name the callee.
pub struct Guarded<S> {
    inner: S,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    call: Arc<Call>,
}

impl<S> Guarded<S> {
    fn new(inner: S, deadline: Instant, call: Arc<Call>) -> Self {
        Guarded {
            inner,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            call,
        }
    }

    /// Names the callee in a transport error, or fails a pending poll whose
    /// deadline has passed.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let call = &*self.call;
        let failed = |error: CallError| io::Error::new(error.io_kind(), error);
        match poll {
            Poll::Ready(Ok(value)) => Poll::Ready(Ok(value)),
            Poll::Ready(Err(e)) => {
                let kind = CallErrorKind::of(&e);
                Poll::Ready(Err(failed(call.fail(kind, e.to_string()))))
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(failed(
                    call.fail(CallErrorKind::TimedOut, String::new()),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.guard(cx, poll)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, poll)
    }
}

impl<S: Index<S>> Index<Guarded<S>> for Guarded<S> {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Guarded::new(
            self.inner.index(path)?,
            self.deadline,
            self.call.clone(),
        ))
    }
}
