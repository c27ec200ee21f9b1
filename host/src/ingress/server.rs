//! The one HTTP server of a host: HTTP/1.1 and h2c on one listener, bounded
//! by [`HttpLimits`], with a graceful shutdown bounded by its drain timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::HttpLimits;
use super::activity::{Activity, Watched};
use super::invoke::{invoke, text};
use super::router::RouteTable;

/// The live routing table, swapped whole when workloads change.
pub type SharedRoutes = Arc<RwLock<Arc<RouteTable>>>;

/// Serves `listener` under `limits` until `shutdown` resolves, then lets
/// in-flight requests finish for at most `limits.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    routes: SharedRoutes,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // No server pings: they would count as activity and keep idle
        // connections open past the idle timeout.
        .keep_alive_interval(None);
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: at the connection cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let builder = builder.clone();
        let stopping = stopping.clone();
        tasks.spawn(async move {
            let _permit = permit;
            connection(stream, peer, routes, &builder, limits, stopping).await;
        });
    }
    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        "shutting down: waiting for in-flight requests"
    );
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(connections = tasks.len(), timeout = ?limits.drain_timeout, "drain timed out; closing the rest");
        tasks.abort_all();
    }
}

/// One connection, until it ends, idles out, or the server stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    routes: SharedRoutes,
    builder: &auto::Builder<TokioExecutor>,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let watched = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let on_request = activity.clone();
    let service = service_fn(move |req| {
        let in_flight = on_request.request();
        let routes = routes.clone();
        async move {
            let response = route(routes, req).await;
            drop(in_flight);
            response
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(watched), service);
    tokio::pin!(connection);
    let mut check = tokio::time::interval(
        limits
            .idle_timeout
            .min(limits.header_timeout)
            .max(std::time::Duration::from_millis(100))
            / 2,
    );
    let mut closing = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            _ = check.tick(), if !closing => {
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!(%peer, "closing an idle connection");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            changed = stopping.changed(), if !closing => {
                if changed.is_err() || *stopping.borrow() {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn route(
    routes: SharedRoutes,
    req: Request<Incoming>,
) -> Result<Response<HyperOutgoingBody>, Infallible> {
    let host = req.uri().host().map(str::to_string).or_else(|| {
        req.headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    });
    let target = {
        let table = routes.read().unwrap_or_else(|p| p.into_inner()).clone();
        table.find(host.as_deref(), req.uri().path()).cloned()
    };
    Ok(match target {
        Some(target) => invoke(target, req).await,
        None => text(
            StatusCode::NOT_FOUND,
            format!(
                "no route for host `{}` and path `{}`",
                host.as_deref().unwrap_or(""),
                req.uri().path()
            ),
        ),
    })
}
