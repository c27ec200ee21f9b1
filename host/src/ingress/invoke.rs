//! Serving one HTTP request with a fresh instance of a component.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tracing::Instrument;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::{WasiHttpView, hyper_request_error};

use super::router::Target;
use crate::workload::{Admitted, InvokeError};

/// A plain-text response made by the host itself (routing and limit errors).
pub(crate) fn text(status: StatusCode, message: impl Into<String>) -> Response<HyperOutgoingBody> {
    let mut body = message.into();
    body.push('\n');
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Runs `req` through the target component; every failure becomes a response
/// that says what went wrong, and nothing waits past the component's timeout.
/// The request's span continues an incoming `traceparent`; its duration and
/// status are recorded as `http.server.request.duration`.
pub(crate) async fn invoke(target: Target, req: Request<Incoming>) -> Response<HyperOutgoingBody> {
    let started = std::time::Instant::now();
    let component = &target.workload.components[target.component];
    let method = req.method().clone();
    let sampled = trellis_process::sample(crate::telemetry::caller_decision(req.headers()));
    let span = trellis_process::entry_span!(
        sampled,
        "http.request",
        workload = target.workload.name(),
        component = %component.name,
        http.request.method = crate::telemetry::known_method(&method),
        url.path = %req.uri().path(),
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    if sampled {
        // An invented method gets the conventions' `HTTP`, not a span name of its own.
        let name = match crate::telemetry::known_method(&method) {
            "_OTHER" => "HTTP",
            known => known,
        };
        span.record("otel.name", format!("{name} {}", target.route));
        span.record("otel.kind", "server");
        span.record("http.route", &*target.route);
        crate::telemetry::continue_http(&span, req.headers());
    }
    let response = serve(&target, req, &span).await;
    let status = response.status();
    if sampled {
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    let request = crate::telemetry::HttpRequest {
        workload: target.workload.name(),
        component: &component.name,
        route: &target.route,
        method: &method,
    };
    crate::telemetry::http_request(&request, status.as_u16(), started.elapsed());
    response
}

async fn serve(
    target: &Target,
    req: Request<Incoming>,
    span: &tracing::Span,
) -> Response<HyperOutgoingBody> {
    let workload = &target.workload;
    let component = &workload.components[target.component];
    // Named only on failure: formatting is not free on every request's path.
    let who = || workload.who(target.component);
    let Some(proxy) = component.proxy.clone() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} is not an HTTP handler", who()),
        );
    };
    let timeout = component.limits.timeout;
    let body_limit = component.limits.request_body;
    if let Some(length) = declared_length(&req)
        && length > body_limit
    {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is {length} bytes; {} takes at most {body_limit}",
                who()
            ),
        );
    }
    let Admitted { permit, mut store } = match workload
        .admit(target.component)
        .instrument(span.clone())
        .await
    {
        Ok(admitted) => admitted,
        Err(e) => return failure(&e),
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    // A body without a length is cut off at the limit: the guest's read fails.
    let limit = usize::try_from(body_limit).unwrap_or(usize::MAX);
    let req = req.map(|body| {
        Limited::new(body, limit).map_err(move |e| match e.downcast::<hyper::Error>() {
            Ok(e) => hyper_request_error(*e),
            Err(_) => ErrorCode::HttpRequestBodySize(Some(body_limit)),
        })
    });
    let resources = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .and_then(|req| {
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((req, out))
        });
    let (req, out) = match resources {
        Ok(pair) => pair,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request: {e:#}")),
    };
    let task = tokio::spawn(
        async move {
            // The permit is held until the guest is done, body streaming included.
            let _permit = permit;
            let proxy = proxy.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        }
        .instrument(span.clone()),
    );
    match tokio::time::timeout(timeout, receiver).await {
        Ok(Ok(Ok(response))) => response,
        Ok(Ok(Err(code))) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} answered with an error: {code:?}", who()),
        ),
        Ok(Err(_)) => match task.await {
            Ok(Err(e)) => failure(&InvokeError::from_guest(&who(), timeout, &e)),
            Ok(Ok(())) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{} returned without setting a response", who()),
            ),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{} failed: {e}", who()),
            ),
        },
        Err(_) => {
            task.abort();
            failure(&InvokeError::TimedOut {
                who: who(),
                timeout,
            })
        }
    }
}

/// The body length a request declares, if it declares one.
fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The response of a request that failed: the one place an [`InvokeError`]
/// becomes a status, logged once here.
fn failure(e: &InvokeError) -> Response<HyperOutgoingBody> {
    tracing::warn!(error = %e, "request failed");
    text(e.http_status(), e.to_string())
}
