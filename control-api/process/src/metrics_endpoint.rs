//! `GET /metrics` in the Prometheus text format, for scrapers that do not
//! speak OTLP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, Response, StatusCode};
use prometheus::{Encoder as _, TextEncoder};

use crate::small_http::{Body, SmallLimits, serve_small};

/// How long one collection answers scrapes: a client scraping in a loop
/// costs one collection a second, however fast it asks.
const FRESH: Duration = Duration::from_secs(1);

/// Answers scrapes on `listener` until the process ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, registry: prometheus::Registry) {
    let last: Arc<Mutex<Option<(Instant, Bytes)>>> = Arc::default();
    let handler =
        Arc::new(move |req: &Request<hyper::body::Incoming>| answer(req, &registry, &last));
    serve_small(
        listener,
        SmallLimits::default(),
        handler,
        std::future::pending(),
    )
    .await
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn answer<B>(
    req: &Request<B>,
    registry: &prometheus::Registry,
    last: &Mutex<Option<(Instant, Bytes)>>,
) -> Response<Body> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n".into());
    }
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, body)) = last.as_ref()
        && at.elapsed() < FRESH
    {
        return reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            body.clone(),
        );
    }
    let mut body = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut body) {
        Ok(()) => {
            let body = Bytes::from(body);
            *last = Some((Instant::now(), body.clone()));
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            )
        }
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            format!("cannot encode the metrics: {e}\n").into(),
        ),
    }
}
