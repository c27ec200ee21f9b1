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
    if trellis_process::current_sampling() == Some(false) {
        // Decided against: the callee is told so, and makes no spans either.
        Writer(headers).set(
            crate::headers::TRACEPARENT,
            trellis_process::unsampled_traceparent(),
        );
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
    let untraced = span
        .metadata()
        .is_none_or(|m| m.target() == trellis_process::UNTRACED);
    if untraced || headers.get(crate::headers::TRACEPARENT).is_none() {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Reader(headers)));
    // Only fails for a span already started, which a fresh span never is.
    let _ = span.set_parent(cx);
}

/// The caller's sampling decision, from a well-formed `traceparent` in
/// `headers`; `None` when it sent none.
pub fn caller_decision(headers: Option<&HeaderMap>) -> Option<bool> {
    let value = headers?.get(crate::headers::TRACEPARENT)?;
    trellis_process::traceparent_sampled(value.as_str())
}

/// The client span of a wRPC call of `instance.func` to `target` (what the
/// binding names), following the RPC semantic conventions.
/// A call made outside any span is where a trace starts, and is decided here.
pub fn client_span(instance: &str, func: &str, target: &str) -> Span {
    if !trellis_process::traces_exported() {
        return Span::none();
    }
    let sampled = match trellis_process::current_sampling() {
        // Inside an unsampled trace the caller's span already says so.
        Some(false) => return Span::none(),
        Some(true) => true,
        None => trellis_process::sample(None),
    };
    trellis_process::entry_span!(
        sampled,
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
    if !trellis_process::sample(caller_decision(headers)) {
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
    if trellis_process::current_sampling() != Some(true) {
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
    // A delivery is where a trace may start; a publish belongs to its caller's.
    let (kind, sampled) = if operation == "process" {
        (
            "consumer",
            trellis_process::sample(caller_decision(headers)),
        )
    } else {
        let sampled = trellis_process::current_sampling() == Some(true);
        if !sampled {
            return Span::none();
        }
        ("producer", true)
    };
    let span = trellis_process::entry_span!(
        sampled,
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
    fn a_callers_decision_is_read_from_its_flags() {
        let headers = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert("traceparent", value);
            h
        };
        let id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        assert_eq!(
            caller_decision(Some(&headers(&format!("{id}-00")))),
            Some(false)
        );
        assert_eq!(
            caller_decision(Some(&headers(&format!("{id}-01")))),
            Some(true)
        );
        assert_eq!(caller_decision(Some(&headers("garbage"))), None);
        assert_eq!(caller_decision(None), None);
    }

    #[test]
    fn nothing_is_made_when_traces_are_not_exported() {
        assert!(client_span("a:b/c", "f", "provider `p`").is_none());
        assert!(with_context(None).is_none());
    }
}
