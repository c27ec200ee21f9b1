//! How far a long upload or download got, for the CLI to show.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Artifacts smaller than this finish before progress would help.
const WORTH_SHOWING: u64 = 1 << 20;
/// At most one report per interval.
const INTERVAL: Duration = Duration::from_millis(250);

type Report = Box<dyn Fn(u64, u64) + Send + Sync>;

/// Throttled reports of (bytes done, bytes in all); silent unless given a reporter.
#[derive(Default)]
pub struct Progress {
    report: Option<Report>,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    /// Reports nothing (hosts, tests).
    pub fn none() -> Progress {
        Progress::default()
    }

    /// Calls `report(done, total)` at most every 250 ms for artifacts of 1 MiB
    /// or more, and once more when done.
    pub fn with(report: impl Fn(u64, u64) + Send + Sync + 'static) -> Progress {
        Progress {
            report: Some(Box::new(report)),
            last: Mutex::default(),
        }
    }

    pub(crate) fn report(&self, done: u64, total: u64) {
        let Some(report) = &self.report else { return };
        if total < WORTH_SHOWING {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < INTERVAL) && done < total {
            return;
        }
        *last = Some(Instant::now());
        report(done, total);
    }

    pub(crate) fn finish(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
