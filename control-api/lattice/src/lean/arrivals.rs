//! What a server learns of a call as it arrives — its span, its caller, the
//! time — kept for whoever runs the call, since wRPC's generated serving code
//! hands the runner only a future.
//!
//! The generated code turns each invocation of a function into exactly one
//! item of that function's stream, in order, so the runner takes arrivals in
//! the order they were recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_nats::HeaderMap;
use tracing::Span;

/// Arrivals not yet taken, per function; past this the oldest are dropped, so
/// a runner that never takes them costs bounded memory.
const MAX_WAITING: usize = 1024;

/// One call as it arrived.
#[derive(Debug)]
pub struct Arrival {
    /// The call's server span, a child of the caller's (disabled when spans
    /// are not exported).
    pub span: Span,
    /// The calling workload, as its host named it.
    pub workload: Option<String>,
    /// When the call arrived.
    pub at: Instant,
}

/// Per instance, per function: looked up by `&str` without allocating.
type Queues = HashMap<Arc<str>, HashMap<Arc<str>, VecDeque<Arrival>>>;

/// The arrivals of every function a server serves.
#[derive(Clone, Default)]
pub(crate) struct Arrivals {
    queues: Arc<Mutex<Queues>>,
}

impl Arrivals {
    /// Records a call of `instance.func` (or a failed invocation, `headers`
    /// `None`), if anyone records telemetry.
    pub(crate) fn record(&self, instance: &Arc<str>, func: &Arc<str>, headers: Option<&HeaderMap>) {
        if !trellis_process::traces_exported() && !trellis_process::metrics_recorded() {
            return;
        }
        let arrival = Arrival {
            span: crate::trace::server_span(instance, func, headers),
            workload: headers
                .and_then(|h| h.get(crate::headers::WORKLOAD))
                .map(|v| v.as_str().to_string()),
            at: Instant::now(),
        };
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let queue = queues
            .entry(instance.clone())
            .or_default()
            .entry(func.clone())
            .or_default();
        if queue.len() >= MAX_WAITING {
            // Only a runner that does not take its arrivals gets here.
            static WARNED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(%instance, %func, "call arrivals are not being taken; dropping the oldest");
            }
            queue.pop_front();
        }
        queue.push_back(arrival);
    }

    /// The oldest arrival of `instance.func` not yet taken; `func` as wRPC
    /// names it (`bucket.get`) or as WIT does (`[method]bucket.get`).
    pub(crate) fn take(&self, instance: &str, func: &str) -> Option<Arrival> {
        if !trellis_process::traces_exported() && !trellis_process::metrics_recorded() {
            return None;
        }
        let func = ["[method]", "[static]", "[constructor]"]
            .iter()
            .find_map(|prefix| func.strip_prefix(prefix))
            .unwrap_or(func);
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.get_mut(instance)?.get_mut(func)?.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_recorded_without_telemetry() {
        let arrivals = Arrivals::default();
        let (instance, func): (Arc<str>, Arc<str>) = ("a:b/c".into(), "f".into());
        arrivals.record(&instance, &func, None);
        assert!(arrivals.take("a:b/c", "f").is_none());
    }
}
