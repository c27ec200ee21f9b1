//! The provider's metric: `rpc.server.call.duration`, per interface, function
//! and calling workload, after the RPC semantic conventions.

use std::sync::OnceLock;

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
            arrival.workload.clone().unwrap_or_default(),
        ),
    ];
    if !ok {
        attributes.push(KeyValue::new("error.type", "failed"));
    }
    calls().record(arrival.at.elapsed().as_secs_f64(), &attributes);
}
