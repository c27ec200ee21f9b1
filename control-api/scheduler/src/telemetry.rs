//! The scheduler's metrics: placements, reschedules and how long a pass takes.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

struct Instruments {
    placements: Counter<u64>,
    reschedules: Counter<u64>,
    stops: Counter<u64>,
    pass: Histogram<f64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("trellis-scheduler");
        Instruments {
            placements: meter
                .u64_counter("trellis.scheduler.placements")
                .with_description("Copies the scheduler asked a host to start")
                .build(),
            reschedules: meter
                .u64_counter("trellis.scheduler.reschedules")
                .with_description("Starts that replace a copy lost with its host")
                .build(),
            stops: meter
                .u64_counter("trellis.scheduler.stops")
                .with_description("Copies the scheduler asked a host to stop")
                .build(),
            pass: meter
                .f64_histogram("trellis.scheduler.pass.duration")
                .with_unit("s")
                .with_description("How long one reconcile pass took")
                .with_boundaries(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .build(),
        }
    })
}

/// Records `starts` new copies of `workload`, `rescheduled` of them replacing
/// copies lost with their hosts, and `stops` copies stopped.
pub(crate) fn planned(workload: &str, starts: usize, rescheduled: usize, stops: usize) {
    if !trellis_process::metrics_recorded() || starts + stops == 0 {
        return;
    }
    let attributes = [KeyValue::new("trellis.workload", workload.to_string())];
    let m = instruments();
    m.placements.add(starts as u64, &attributes);
    m.reschedules.add(rescheduled as u64, &attributes);
    m.stops.add(stops as u64, &attributes);
}

/// Records a pass that took `elapsed` and ended `ok` or not.
pub(crate) fn pass(elapsed: Duration, ok: bool) {
    if !trellis_process::metrics_recorded() {
        return;
    }
    let outcome = KeyValue::new("outcome", if ok { "ok" } else { "failed" });
    instruments().pass.record(elapsed.as_secs_f64(), &[outcome]);
}
