//! W3C trace context for one request, so every wRPC call it causes carries a
//! `traceparent` that ties it to the request.

use uuid::Uuid;

tokio::task_local! {
    /// The trace of the request the current task serves.
    pub(crate) static CURRENT: TraceContext;
}

/// A request's trace ID.
#[derive(Debug, Clone)]
pub(crate) struct TraceContext {
    trace_id: String,
}

impl TraceContext {
    /// Continues the trace of an incoming `traceparent` header when it is valid,
    /// else starts a new one.
    pub(crate) fn from_header(traceparent: Option<&str>) -> Self {
        let trace_id = traceparent
            .and_then(|h| {
                let mut parts = h.split('-');
                let (_version, id) = (parts.next()?, parts.next()?);
                (id.len() == 32
                    && id.bytes().all(|b| b.is_ascii_hexdigit())
                    && id != "0".repeat(32))
                .then(|| id.to_ascii_lowercase())
            })
            .unwrap_or_else(|| Uuid::new_v4().simple().to_string());
        TraceContext { trace_id }
    }

    /// A `traceparent` for a new outgoing call of this trace.
    pub(crate) fn child(&self) -> String {
        let span = Uuid::new_v4().simple().to_string();
        format!("00-{}-{}-01", self.trace_id, &span[..16])
    }

    /// The `traceparent` for a call made by the current task, if it serves a request.
    pub(crate) fn current_child() -> Option<String> {
        CURRENT.try_with(TraceContext::child).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_trace_and_replaces_a_bad_one() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let t = TraceContext::from_header(Some(&format!("00-{id}-00f067aa0ba902b7-01")));
        let child = t.child();
        assert!(child.starts_with(&format!("00-{id}-")), "{child}");
        assert_eq!(child.len(), 55);
        let fresh = TraceContext::from_header(Some("garbage"));
        assert_ne!(fresh.trace_id, id);
        assert_eq!(fresh.trace_id.len(), 32);
    }
}
