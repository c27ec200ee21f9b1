//! A wRPC server whose callers must keep their parameters coming.
//!
//! wrpc-transport 0.29 decodes the invocations of one function one after another,
//! so a caller that opens an invocation and never sends its parameters would stall
//! that function for every workload. Every read here has an idle bound: such a
//! caller gets one failed call and the function keeps serving.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, TryStreamExt as _};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};
use wrpc_transport::{Index, Serve};
use wrpc_transport_nats::NatsContext;

/// How long an invocation may go without sending a byte.
pub const IDLE_LIMIT: Duration = Duration::from_secs(2);

/// `wrpc_transport_nats::Client` as a server, with bounded reads.
#[derive(Clone)]
pub struct BoundedServer {
    inner: wrpc_transport_nats::Client,
    idle: Duration,
}

impl BoundedServer {
    /// Serves through `inner`; an invocation idle for `idle` fails.
    pub fn new(inner: wrpc_transport_nats::Client, idle: Duration) -> Self {
        BoundedServer { inner, idle }
    }
}

type Inner = wrpc_transport_nats::Client;

impl Serve for BoundedServer {
    type Context = NatsContext;
    type Outgoing = <Inner as Serve>::Outgoing;
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
        let idle = self.idle;
        let invocations = self.inner.serve(instance, func, paths).await?;
        Ok(invocations.map_ok(move |(cx, tx, rx)| (cx, tx, BoundedIncoming::new(rx, idle))))
    }
}

/// An incoming byte stream that fails once it has been idle too long.
pub struct BoundedIncoming<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> BoundedIncoming<T> {
    fn new(inner: T, idle: Duration) -> Self {
        BoundedIncoming {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for BoundedIncoming<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let idle = this.idle;
                this.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(result)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the caller sent nothing for {:?}", this.idle),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: Index<T>> Index<BoundedIncoming<T>> for BoundedIncoming<T> {
    fn index(&self, path: &[usize]) -> anyhow::Result<BoundedIncoming<T>> {
        Ok(BoundedIncoming::new(self.inner.index(path)?, self.idle))
    }
}
