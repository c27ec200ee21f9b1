//! The host's metrics, named after the OpenTelemetry semantic conventions
//! (`http.server.request.duration`, `rpc.client.call.duration`) with Trellis's
//! own attributes (`trellis.workload`, `trellis.component`, `trellis.binding`).
//!
//! Instruments are made on first use, after [`trellis_process::Telemetry::init`]
//! has installed the meter provider; nothing is recorded when no one reads them.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;

use crate::Host;

/// Latency buckets in seconds, as the HTTP semantic conventions advise.
const SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

struct Instruments {
    http_server: Histogram<f64>,
    rpc_client: Histogram<f64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("trellis-host");
        Instruments {
            http_server: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("HTTP requests served by components, by route and status")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            rpc_client: meter
                .f64_histogram("rpc.client.call.duration")
                .with_unit("s")
                .with_description("wRPC calls made through provider and workload bindings")
                .with_boundaries(SECONDS.to_vec())
                .build(),
        }
    })
}

/// One HTTP request served by `component` of `workload` on `route`.
pub(crate) struct HttpRequest<'a> {
    pub(crate) workload: &'a str,
    pub(crate) component: &'a str,
    pub(crate) route: &'a str,
    pub(crate) method: &'a http::Method,
}

/// Records a served HTTP request that answered `status` after `elapsed`.
pub(crate) fn http_request(request: &HttpRequest<'_>, status: u16, elapsed: Duration) {
    if !trellis_process::metrics_recorded() {
        return;
    }
    let attributes = [
        KeyValue::new("http.request.method", known_method(request.method)),
        KeyValue::new("http.response.status_code", i64::from(status)),
        KeyValue::new("http.route", request.route.to_string()),
        KeyValue::new("trellis.workload", request.workload.to_string()),
        KeyValue::new("trellis.component", request.component.to_string()),
    ];
    instruments()
        .http_server
        .record(elapsed.as_secs_f64(), &attributes);
}

/// The method as a metric attribute: one of the standard methods, else
/// `_OTHER` (as the HTTP conventions say), so a client inventing methods
/// cannot make a time series per request.
pub(crate) fn known_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::CONNECT => "CONNECT",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// One wRPC call through a binding.
pub(crate) struct RpcCall<'a> {
    pub(crate) workload: &'a str,
    pub(crate) binding: &'a str,
    pub(crate) target: &'a str,
    pub(crate) instance: &'a str,
    pub(crate) function: &'a str,
}

/// Records a wRPC call that took `elapsed` and failed as `error` (if it did).
pub(crate) fn rpc_call(call: &RpcCall<'_>, error: Option<&str>, elapsed: Duration) {
    if !trellis_process::metrics_recorded() {
        return;
    }
    let mut attributes = vec![
        KeyValue::new("rpc.system", "wrpc"),
        KeyValue::new("rpc.service", call.instance.to_string()),
        KeyValue::new("rpc.method", call.function.to_string()),
        KeyValue::new("trellis.workload", call.workload.to_string()),
        KeyValue::new("trellis.binding", call.binding.to_string()),
        KeyValue::new("trellis.target", call.target.to_string()),
    ];
    if let Some(error) = error {
        attributes.push(KeyValue::new("error.type", error.to_string()));
    }
    instruments()
        .rpc_client
        .record(elapsed.as_secs_f64(), &attributes);
}

/// Reports `host`'s instances in use and their limits, per component, for as
/// long as the host lives.
pub fn observe(host: &Arc<Host>) {
    if !trellis_process::metrics_recorded() {
        return;
    }
    let meter = opentelemetry::global::meter("trellis-host");
    let weak: Weak<Host> = Arc::downgrade(host);
    let in_use = weak.clone();
    let _ = meter
        .u64_observable_gauge("trellis.instances.in_use")
        .with_description("Instances serving a request or call right now, per component")
        .with_callback(move |gauge| {
            if let Some(host) = in_use.upgrade() {
                for (attributes, used, _) in host.instance_counts() {
                    gauge.observe(used, &attributes);
                }
            }
        })
        .build();
    let _ = meter
        .u64_observable_gauge("trellis.instances.limit")
        .with_description("Most instances a component runs at once (its concurrency limit)")
        .with_callback(move |gauge| {
            if let Some(host) = weak.upgrade() {
                for (attributes, _, limit) in host.instance_counts() {
                    gauge.observe(limit, &attributes);
                }
            }
        })
        .build();
}

impl Host {
    /// Per component: its attributes, instances in use, and its limit.
    fn instance_counts(&self) -> Vec<([KeyValue; 2], u64, u64)> {
        let workloads = self.workloads.lock().unwrap_or_else(|p| p.into_inner());
        workloads
            .values()
            .flat_map(|w| {
                w.components.iter().map(move |c| {
                    let limit = u64::from(c.limits.concurrency);
                    let used = limit.saturating_sub(c.concurrency.available_permits() as u64);
                    let attributes = [
                        KeyValue::new("trellis.workload", w.name().to_string()),
                        KeyValue::new("trellis.component", c.name.clone()),
                    ];
                    (attributes, used, limit)
                })
            })
            .collect()
    }
}

struct HttpReader<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HttpReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key)?.to_str().ok()?;
        trellis_lattice::trace::acceptable(key, value).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HttpWriter<'a>(&'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for HttpWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The sampling decision an incoming request's `traceparent` carries, if any.
pub(crate) fn caller_decision(headers: &http::HeaderMap) -> Option<bool> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    trellis_process::traceparent_sampled(value)
}

/// Makes `span` continue the trace an incoming request's `traceparent` names;
/// a missing or malformed one leaves it the root of a new trace.
pub(crate) fn continue_http(span: &tracing::Span, headers: &http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let untraced = span
        .metadata()
        .is_none_or(|m| m.target() == trellis_process::UNTRACED);
    if untraced || !headers.contains_key("traceparent") {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HttpReader(headers)));
    let _ = span.set_parent(cx);
}

/// Writes the current span's context into an outgoing request's headers,
/// unless the component set a `traceparent` of its own.
pub(crate) fn inject_http(headers: &mut http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    if !trellis_process::traces_exported() || headers.contains_key("traceparent") {
        return;
    }
    if trellis_process::current_sampling() == Some(false) {
        if let Ok(value) = http::HeaderValue::from_str(&trellis_process::unsampled_traceparent()) {
            headers.insert("traceparent", value);
        }
        return;
    }
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HttpWriter(headers))
    });
}
