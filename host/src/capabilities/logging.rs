//! `wasi:logging` into `tracing`, with workload and component on every event.

use std::sync::Arc;

use wasmtime::component::HasData;

use super::{BuiltinInterface, Capability, CapabilityError, PrepareContext};
use crate::state::InstanceState;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/deps/logging",
        world: "wasi:logging/imports",
    });
}

use generated::wasi::logging::logging::{Host, Level, add_to_linker};

/// Who is logging; cheap to clone into every instance.
#[derive(Debug, Clone)]
pub(crate) struct LogSource {
    pub(crate) workload: Arc<str>,
    pub(crate) component: Arc<str>,
}

struct HasLog;
impl HasData for HasLog {
    type Data<'a> = &'a LogSource;
}

impl Host for &LogSource {
    fn log(&mut self, level: Level, context: String, message: String) {
        let (workload, component) = (&*self.workload, &*self.component);
        match level {
            Level::Trace => {
                tracing::trace!(target: "guest", workload, component, context, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "guest", workload, component, context, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "guest", workload, component, context, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "guest", workload, component, context, "{message}")
            }
            Level::Error | Level::Critical => {
                tracing::error!(target: "guest", workload, component, context, critical = matches!(level, Level::Critical), "{message}")
            }
        }
    }
}

/// `wasi:logging` into the host's `tracing`, each event naming its source.
pub(crate) struct Logging;

impl Capability for Logging {
    const INTERFACES: &'static [BuiltinInterface] =
        &[BuiltinInterface::new("wasi:logging/logging", |l| {
            add_to_linker::<InstanceState, HasLog>(l, |s| &s.caps().logging)
        })];
    type Host = ();
    type Prepared = LogSource;
    type State = LogSource;

    fn prepare(_: &(), cx: &PrepareContext<'_>) -> Result<LogSource, CapabilityError> {
        Ok(LogSource {
            workload: cx.workload.into(),
            component: cx.component.name.as_str().into(),
        })
    }

    fn instantiate(source: &LogSource) -> Result<LogSource, CapabilityError> {
        Ok(source.clone())
    }
}
