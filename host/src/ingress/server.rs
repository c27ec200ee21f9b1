//! The one HTTP server of a host: HTTP/1.1 and h2c on one listener, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, RwLock};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::invoke::{invoke, text};
use super::router::RouteTable;

/// The live routing table, swapped whole when workloads change.
pub type SharedRoutes = Arc<RwLock<Arc<RouteTable>>>;

/// Serves `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    routes: SharedRoutes,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
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
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let routes = routes.clone();
        let service = service_fn(move |req| route(routes.clone(), req));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    graceful.shutdown().await;
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
