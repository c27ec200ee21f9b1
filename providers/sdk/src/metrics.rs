//! The provider's metric: `rpc.server.call.duration`, per interface, function
//! and calling workload, after the RPC semantic conventions.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use trellis_lattice::lean::Arrival;

fn calls() -> &'static Histogram<f64> {
    static CALLS: OnceLock<Histogram<f64>> = OnceLock::new();
    CALLS.get_or_init(|| {
        opentelemetry::global::meter("trellis-provider")
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_description("Calls this provider served, by interface, function and workload")
            .with_boundaries(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
            .build()
    })
}

/// Calling workloads that get a series of their own; callers past them share
/// `_other`, so however many names callers claim, the series stay bounded.
const MAX_WORKLOADS: usize = 1000;

/// The caller as a metric attribute: its workload while fewer than
/// [`MAX_WORKLOADS`] have been seen, else `_other`.
fn workload_attribute(workload: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(workload) = workload else {
        return String::new();
    };
    let plausible = workload.len() <= 64
        && workload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !plausible {
        return "_invalid".to_string();
    }
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.contains(workload) {
        return workload.to_string();
    }
    if seen.len() < MAX_WORKLOADS {
        seen.insert(workload.to_string());
        return workload.to_string();
    }
    "_other".to_string()
}

/// Records a call of `instance.func` that arrived as `arrival` and just ended.
pub(crate) fn served(instance: &str, func: &str, arrival: &Arrival, ok: bool) {
    if !trellis_process::metrics_recorded() {
        return;
    }
    let mut attributes = vec![
        KeyValue::new("rpc.system", "wrpc"),
        KeyValue::new("rpc.service", instance.to_string()),
        KeyValue::new("rpc.method", func.to_string()),
        KeyValue::new(
            "trellis.workload",
            workload_attribute(arrival.workload.as_deref()),
        ),
    ];
    if !ok {
        attributes.push(KeyValue::new("error.type", "failed"));
    }
    calls().record(arrival.at.elapsed().as_secs_f64(), &attributes);
}
