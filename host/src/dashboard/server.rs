//! The dashboard's HTTP side: the page and its assets (embedded in the binary;
//! nothing is fetched from elsewhere), the current state as JSON, and the
//! state again on every change as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Semaphore, watch};

/// Event streams open at once; more are refused (503) rather than queued.
const MAX_STREAMS: usize = 256;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The latest state, as the JSON every client is sent.
pub(crate) type State = watch::Receiver<Arc<str>>;

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    // The page loads only its own assets and talks only to this server.
    headers.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        hyper::header::HeaderValue::from_static("default-src 'self'"),
    );
    response
}

/// The state on connect, then again whenever it changes, as SSE `state` events.
fn events(mut state: State, permit: tokio::sync::OwnedSemaphorePermit) -> Response<Body> {
    let first = state.borrow_and_update().clone();
    let changes = futures::stream::unfold(state, |mut state| async move {
        state.changed().await.ok()?;
        let next = state.borrow_and_update().clone();
        Some((next, state))
    });
    let frames = futures::stream::once(async move { first })
        .chain(changes)
        .map(move |json| {
            let _held = &permit;
            Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
                "event: state\ndata: {json}\n\n"
            ))))
        });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    response
}

fn answer<B>(req: &Request<B>, state: &State, streams: &Arc<Semaphore>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return full(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n",
        );
    }
    match req.uri().path() {
        "/" => full(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        "/app.js" => full(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT),
        "/style.css" => full(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        "/api/state" => {
            let json = state.borrow().clone();
            full(
                StatusCode::OK,
                "application/json",
                Bytes::from(json.to_string()),
            )
        }
        "/events" => match streams.clone().try_acquire_owned() {
            Ok(permit) => events(state.clone(), permit),
            Err(_) => full(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("{MAX_STREAMS} event streams are open already; retry later\n"),
            ),
        },
        _ => full(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

/// Serves the dashboard on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    shutdown: impl Future<Output = ()>,
) {
    let streams = Arc::new(Semaphore::new(MAX_STREAMS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("cannot accept a dashboard connection: {e}");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (state, streams) = (state.clone(), streams.clone());
        let service = hyper::service::service_fn(move |req| {
            let response = answer(&req, &state, &streams);
            async move { Ok::<_, Infallible>(response) }
        });
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("dashboard connection ended: {e}");
            }
        });
    }
    // Event streams never end by themselves: the drain is not waited for.
    drop(graceful);
}
