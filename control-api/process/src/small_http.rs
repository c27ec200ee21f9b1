//! The small HTTP servers beside a process's real work (`/metrics`, the
//! dashboard): HTTP/1 only, one request per connection, a bound on header
//! time and on connections, and a pause when accepting fails — so a client on
//! one of these ports can neither hold the process's file descriptors nor
//! spin it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A response body of a small server.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What answers each request.
pub type Handler = Arc<dyn Fn(&Request<Incoming>) -> Response<Body> + Send + Sync>;

/// The bounds of a small server.
#[derive(Debug, Clone, Copy)]
pub struct SmallLimits {
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// How long a client may take to send its request's headers.
    pub header_timeout: Duration,
}

impl Default for SmallLimits {
    fn default() -> Self {
        SmallLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves `handler` on `listener` under `limits` until `shutdown` resolves;
/// connections still open then (event streams) are closed.
pub async fn serve_small(
    listener: tokio::net::TcpListener,
    limits: SmallLimits,
    handler: Handler,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = handler(&req);
                async move { Ok::<_, Infallible>(response) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
