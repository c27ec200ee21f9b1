//! W3C trace context across NATS: a call or message carries its `traceparent`
//! in its headers, and whoever takes it continues the same trace.
//!
//! Everything here costs nothing unless spans are exported
//! ([`trellis_process::traces_exported`]): no header is written, no span made.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Writer<'a>(&'a mut HeaderMap);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A value that is no valid header (a line break) is left out.
        if let Ok(value) = value.parse::<async_nats::HeaderValue>() {
            self.0.insert(key, value);
        }
    }
}

/// The length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;
/// The longest `tracestate` continued; a longer one is dropped, so a caller
/// cannot make every downstream call and message carry kilobytes.
pub const MAX_TRACESTATE: usize = 512;

/// Whether a trace context header may be read at all: parsing happens only
/// on values of a sane length.
pub fn acceptable(key: &str, value: &str) -> bool {
    match key {
        "traceparent" => value.len() == TRACEPARENT_LEN,
        "tracestate" => value.len() <= MAX_TRACESTATE,
        _ => false,
    }
}

struct Reader<'a>(&'a HeaderMap);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key)?.as_str();
        acceptable(key, value).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Writes the current span's context into `headers` (replacing any there).
pub fn inject(headers: &mut HeaderMap) {
    if !trellis_process::traces_exported() {
        return;
    }
    let cx = Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut Writer(headers)));
}

/// `headers` with the current span's context, made if there were none and a
/// trace is exported.
pub fn with_context(headers: Option<HeaderMap>) -> Option<HeaderMap> {
    if !trellis_process::traces_exported() {
        return headers;
    }
    let mut headers = headers.unwrap_or_default();
    inject(&mut headers);
    Some(headers)
}

/// Makes `span` a child of the trace context in `headers`; a span whose
/// headers carry none (or a malformed one) starts a trace of its own.
pub fn continue_from(span: &Span, headers: Option<&HeaderMap>) {
    let Some(headers) = headers else { return };
    if span.is_disabled() || headers.get(crate::headers::TRACEPARENT).is_none() {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Reader(headers)));
    // Only fails for a span already started, which a fresh span never is.
    let _ = span.set_parent(cx);
}

/// Whether the current span's trace is sampled; `None` with no current span.
/// Children of an unsampled trace are not made at all, which is what keeps
/// sampling cheap.
fn current_sampling() -> Option<bool> {
    use opentelemetry::trace::TraceContextExt as _;
    let current = Span::current();
    (!current.is_none()).then(|| current.context().span().span_context().is_sampled())
}

/// Whether a call or message carries a caller's decision not to sample it
/// (a well-formed `traceparent` whose sampled flag is clear).
fn caller_unsampled(headers: Option<&HeaderMap>) -> bool {
    let Some(value) = headers.and_then(|h| h.get(crate::headers::TRACEPARENT)) else {
        return false;
    };
    let value = value.as_str();
    acceptable("traceparent", value)
        && value
            .get(53..55)
            .and_then(|flags| u8::from_str_radix(flags, 16).ok())
            .is_some_and(|flags| flags & 1 == 0)
}

/// The client span of a wRPC call of `instance.func` to `target` (what the
/// binding names), following the RPC semantic conventions.
pub fn client_span(instance: &str, func: &str, target: &str) -> Span {
    if !trellis_process::traces_exported() || current_sampling() == Some(false) {
        return Span::none();
    }
    tracing::info_span!(
        "wrpc.client",
        otel.name = %format_args!("{instance}/{func}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        rpc.system = "wrpc",
        rpc.service = instance,
        rpc.method = func,
        trellis.target = target,
        error.type = tracing::field::Empty,
    )
}

/// The server span of a wRPC call of `instance.func` that arrived with
/// `headers`, continuing the caller's trace.
pub fn server_span(instance: &str, func: &str, headers: Option<&HeaderMap>) -> Span {
    if !trellis_process::traces_exported() || caller_unsampled(headers) {
        return Span::none();
    }
    let caller = headers
        .and_then(|h| h.get(crate::headers::WORKLOAD))
        .map(|v| v.as_str())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "wrpc.server",
        otel.name = %format_args!("{instance}/{func}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "wrpc",
        rpc.service = instance,
        rpc.method = func,
        trellis.workload = caller,
        error.type = tracing::field::Empty,
    );
    continue_from(&span, headers);
    span
}

/// The client span of a provider's JetStream work for one call (`get`,
/// `publish`, …): a child of the call's server span.
pub fn jetstream_span(operation: &str) -> Span {
    if !trellis_process::traces_exported() || current_sampling() != Some(true) {
        return Span::none();
    }
    tracing::info_span!(
        "jetstream",
        otel.name = %format_args!("jetstream {operation}"),
        otel.kind = "client",
        db.system.name = "nats-jetstream",
        db.operation.name = operation,
    )
}

/// The span of publishing to `subject` (`operation` `publish` or `send`), or
/// of processing a message that arrived on it with `headers` (`process`),
/// after the messaging semantic conventions: a delivery continues the trace
/// its publisher wrote into the message.
pub fn messaging_span(operation: &str, subject: &str, headers: Option<&HeaderMap>) -> Span {
    if !trellis_process::traces_exported() {
        return Span::none();
    }
    let (kind, skipped) = if operation == "process" {
        ("consumer", caller_unsampled(headers))
    } else {
        ("producer", current_sampling() != Some(true))
    };
    if skipped {
        return Span::none();
    }
    let span = tracing::info_span!(
        "messaging",
        otel.name = %format_args!("{operation} {subject}"),
        otel.kind = kind,
        messaging.system = "nats",
        messaging.operation.name = operation,
        messaging.destination.name = subject,
    );
    continue_from(&span, headers);
    span
}

/// Marks `span` failed, with the failure's kind (`timed-out`, `busy`, …).
pub fn record_error(span: &Span, kind: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", kind);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_reads_the_header_it_is_asked_for() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        headers.insert("tracestate", "x".repeat(MAX_TRACESTATE + 1).as_str());
        let reader = Reader(&headers);
        assert_eq!(
            reader.get("traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(
            reader.get("tracestate"),
            None,
            "an oversized tracestate is dropped"
        );
        let mut long = HeaderMap::new();
        long.insert("traceparent", "-".repeat(4096).as_str());
        assert_eq!(Reader(&long).get("traceparent"), None);
        let mut written = HeaderMap::new();
        Writer(&mut written).set("traceparent", "x".into());
        Writer(&mut written).set("traceparent", "y".into());
        Writer(&mut written).set("tracestate", "a=1\r\nInjected: yes".into());
        assert_eq!(written.get("traceparent").map(|v| v.as_str()), Some("y"));
        assert!(
            written.get("tracestate").is_none(),
            "a line break is never written"
        );
    }

    #[test]
    fn an_unsampled_caller_is_recognised_by_its_flags() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert("traceparent", value);
            h
        };
        let id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        assert!(caller_unsampled(Some(&headers(&format!("{id}-00")))));
        assert!(!caller_unsampled(Some(&headers(&format!("{id}-01")))));
        assert!(!caller_unsampled(Some(&headers("garbage"))));
        assert!(!caller_unsampled(None));
    }

    #[test]
    fn nothing_is_made_when_traces_are_not_exported() {
        assert!(client_span("a:b/c", "f", "provider `p`").is_none());
        assert!(with_context(None).is_none());
    }
}
