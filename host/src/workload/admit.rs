//! The one path from a request to an instance, shared by HTTP requests, export
//! calls and message deliveries: a concurrency permit, a store with the
//! component's links instantiated and its deadline set, the instance, and a
//! typed error when any step (or the guest) fails.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::Instance;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};

use super::LoadedWorkload;
use crate::Timeout;
use crate::lattice::CallError;
use crate::state::{InstanceState, MemoryLimitExceeded};
use trellis_lattice::{CallErrorKind, Failure};

/// A request's hold on one component: its permit (held until the guest is
/// done) and a store ready to instantiate it in.
pub(crate) struct Admitted {
    /// Returned to the component's limit when dropped.
    pub(crate) permit: OwnedSemaphorePermit,
    /// The request's store, its links instantiated and its deadline set.
    pub(crate) store: Store<InstanceState>,
}

/// Why a request or call did not get an answer from its component.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The component is at its concurrency limit; the caller may retry.
    #[error("{who} is at its concurrency limit of {limit}; retry later")]
    Busy {
        /// "component `c` of workload `w`".
        who: String,
        /// The limit.
        limit: u32,
    },
    /// The request outlived the component's timeout.
    #[error("{who} exceeded its timeout of {}", human(*.timeout))]
    TimedOut {
        /// "component `c` of workload `w`".
        who: String,
        /// The limit.
        timeout: Duration,
    },
    /// The guest grew past its memory limit.
    #[error("{0}")]
    Memory(MemoryLimitExceeded),
    /// The guest trapped.
    #[error("{who} trapped: {trap}")]
    Trap {
        /// "component `c` of workload `w`".
        who: String,
        /// The trap.
        trap: Trap,
    },
    /// The host has no room for another instance.
    #[error("host is at capacity, {who} could not start: {message}")]
    Capacity {
        /// "component `c` of workload `w`".
        who: String,
        /// What the pool said.
        message: String,
    },
    /// A call over a binding failed and the guest could not take it as a value.
    #[error("{who} failed: {call}")]
    Call {
        /// "component `c` of workload `w`".
        who: String,
        /// The call's failure.
        call: CallError,
    },
    /// Anything else the guest or the host failed with.
    #[error("{who} failed: {message}")]
    Failed {
        /// "component `c` of workload `w`".
        who: String,
        /// What happened.
        message: String,
    },
}

impl InvokeError {
    /// Classifies a failure of `who`'s instance, whose limit is `timeout`.
    pub(crate) fn from_guest(who: &str, timeout: Duration, e: &wasmtime::Error) -> Self {
        let who = who.to_string();
        // Export calls wrap the guest's failure in wRPC's context: look down the chain.
        if e.chain().any(|c| c.downcast_ref::<Timeout>().is_some()) {
            return InvokeError::TimedOut { who, timeout };
        }
        if let Some(limit) = e
            .chain()
            .find_map(|c| c.downcast_ref::<MemoryLimitExceeded>())
        {
            return InvokeError::Memory(limit.clone());
        }
        if let Some(trap) = e.chain().find_map(|c| c.downcast_ref::<Trap>()) {
            return InvokeError::Trap { who, trap: *trap };
        }
        if let Some(call) = e.chain().find_map(CallError::find) {
            return InvokeError::Call {
                who,
                call: call.clone(),
            };
        }
        if e.chain()
            .any(|cause| cause.downcast_ref::<PoolConcurrencyLimitError>().is_some())
        {
            return InvokeError::Capacity {
                who,
                message: format!("{e:#}"),
            };
        }
        InvokeError::Failed {
            who,
            message: e.root_cause().to_string(),
        }
    }

    /// The HTTP status a request that failed this way answers with.
    pub(crate) fn http_status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            InvokeError::Busy { .. } | InvokeError::Capacity { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InvokeError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
            InvokeError::Call { call, .. } => call.http_status(),
            InvokeError::Memory(_) | InvokeError::Trap { .. } | InvokeError::Failed { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The failure an export call that failed this way replies with.
    pub(crate) fn failure(&self) -> Failure {
        let kind = match self {
            InvokeError::Busy { .. } | InvokeError::Capacity { .. } => CallErrorKind::Busy,
            InvokeError::TimedOut { .. } => CallErrorKind::TimedOut,
            _ => CallErrorKind::Refused,
        };
        Failure::new(kind, self.to_string())
    }
}

impl LoadedWorkload {
    /// "component `c` of workload `w`", as every error about it says.
    pub(crate) fn who(&self, component: usize) -> String {
        format!(
            "component `{}` of workload `{}`",
            self.components[component].name,
            self.name()
        )
    }

    /// Admits one request to `component`: a permit under its concurrency limit
    /// (refused at once beyond it), then a store with its links instantiated.
    pub(crate) async fn admit(&self, component: usize) -> Result<Admitted, InvokeError> {
        let c = &self.components[component];
        let Ok(permit) = c.concurrency.clone().try_acquire_owned() else {
            return Err(InvokeError::Busy {
                who: self.who(component),
                limit: c.limits.concurrency,
            });
        };
        let store = self
            .store_for(component)
            .await
            .map_err(|e| InvokeError::from_guest(&self.who(component), c.limits.timeout, &e))?;
        Ok(Admitted { permit, store })
    }

    /// Admits a call to `component`, instantiates it and runs `call` on the
    /// instance, all within the component's timeout.
    pub(crate) async fn invoke<T>(
        self: &Arc<Self>,
        component: usize,
        call: impl AsyncFnOnce(&mut Store<InstanceState>, Instance) -> wasmtime::Result<T>,
    ) -> Result<T, InvokeError> {
        let c = &self.components[component];
        let timeout = c.limits.timeout;
        // Names are formatted only on failure: this is every export call's path.
        let run = async {
            let Admitted { permit, mut store } = self.admit(component).await?;
            let outcome = async {
                let instance = c.pre.instantiate_async(&mut store).await?;
                call(&mut store, instance).await
            }
            .await
            .map_err(|e| InvokeError::from_guest(&self.who(component), timeout, &e));
            drop(permit);
            outcome
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(InvokeError::TimedOut {
                who: self.who(component),
                timeout,
            }),
        }
    }
}

/// `5s` or `250ms`, as limits are written in manifests.
pub(crate) fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
