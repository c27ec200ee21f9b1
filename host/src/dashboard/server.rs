//! The dashboard's HTTP side: the page and its assets (embedded in the binary;
//! nothing is fetched from elsewhere), the current state as JSON, and the
//! state again on every change as server-sent events.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;
use trellis_process::{Body, SmallLimits, serve_small};

/// Connections open at once; each holds at most one event stream.
const MAX_CONNECTIONS: usize = 256;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// One state of the lattice, encoded once for every client.
pub(crate) struct Encoded {
    json: Bytes,
    frame: Bytes,
}

impl Encoded {
    pub(crate) fn new(json: String) -> Arc<Encoded> {
        let frame = Bytes::from(format!("event: state\ndata: {json}\n\n"));
        Arc::new(Encoded {
            json: json.into(),
            frame,
        })
    }
}

/// The latest state.
pub(crate) type State = watch::Receiver<Arc<Encoded>>;

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
fn events(mut state: State) -> Response<Body> {
    let first = state.borrow_and_update().frame.clone();
    let changes = futures::stream::unfold(state, |mut state| async move {
        state.changed().await.ok()?;
        let next = state.borrow_and_update().frame.clone();
        Some((next, state))
    });
    let frames = futures::stream::once(async move { first })
        .chain(changes)
        .map(|frame| Ok::<_, Infallible>(Frame::data(frame)));
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

/// Whether a request's `Host` names this server: `localhost`, an IP address,
/// or a name given with `--allow-host`. Anything else is a page elsewhere
/// reaching in through DNS rebinding.
fn host_allowed(host: Option<&str>, names: &[String]) -> bool {
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok()
        || names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn answer<B>(req: &Request<B>, state: &State, names: &[String]) -> Response<Body> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host_allowed(host, names) {
        return full(
            StatusCode::MISDIRECTED_REQUEST,
            TEXT,
            "this dashboard answers only to localhost, IP addresses and its --allow-host names\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return full(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n");
    }
    match req.uri().path() {
        "/" => full(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        "/app.js" => full(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT),
        "/style.css" => full(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        "/api/state" => full(
            StatusCode::OK,
            "application/json",
            state.borrow().json.clone(),
        ),
        "/events" => events(state.clone()),
        _ => full(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}

/// Serves the dashboard on `listener` until `shutdown` resolves; requests
/// must name it by one of `names` (or localhost, or an address).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    names: Vec<String>,
    shutdown: impl Future<Output = ()>,
) {
    let handler: trellis_process::Handler =
        Arc::new(move |req: &Request<hyper::body::Incoming>| answer(req, &state, &names));
    let limits = SmallLimits {
        max_connections: MAX_CONNECTIONS,
        ..SmallLimits::default()
    };
    serve_small(listener, limits, handler, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_names_addresses_and_allowed_hosts_are_answered() {
        let names = vec!["dash.example.com".to_string()];
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "10.0.0.5",
            "DASH.example.com:443",
        ] {
            assert!(host_allowed(Some(ok), &names), "{ok}");
        }
        for bad in ["evil.example.com", "localhost.evil.com:8080", ""] {
            assert!(!host_allowed(Some(bad), &names), "{bad}");
        }
        assert!(!host_allowed(None, &names));
    }
}
