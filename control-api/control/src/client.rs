//! A typed client of one host's control API.

use std::time::Duration;

use super::bindings::trellis::control::host;
use super::{HostInfo, Refusal, WorkloadStatus};
use tracing::Instrument as _;
use trellis_lattice::{CallErrorKind, Subjects, trace};

/// The control API's interface, as spans name it.
const INTERFACE: &str = "trellis:control/host";

/// Why a control call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The host answered with a typed refusal.
    #[error("host `{host}` refused: {refusal}")]
    Refused {
        /// The host asked.
        host: String,
        /// What it said.
        refusal: Refusal,
    },
    /// Nobody serves the host's control subject.
    #[error("host `{host}` is not on the lattice (no responders on `{prefix}`)")]
    NoHost {
        /// The host asked.
        host: String,
        /// Its control prefix.
        prefix: String,
    },
    /// No answer within the bound.
    #[error("host `{host}` did not answer `{call}` within {timeout:?}")]
    Timeout {
        /// The host asked.
        host: String,
        /// The function.
        call: &'static str,
        /// The bound.
        timeout: Duration,
    },
    /// NATS or wRPC failed.
    #[error("calling host `{host}`: {message}")]
    Transport {
        /// The host asked.
        host: String,
        /// What failed.
        message: String,
    },
}

/// Calls one host's control API, each call bounded by a timeout.
#[derive(Clone)]
pub struct ControlClient {
    wrpc: wrpc_transport_nats::Client,
    host: String,
    prefix: String,
    timeout: Duration,
}

impl ControlClient {
    /// A client of host `host` on the lattice `subjects` describes; a start may
    /// compile components, so give `timeout` room for that.
    pub async fn new(
        nats: async_nats::Client,
        subjects: &Subjects,
        host: &str,
        timeout: Duration,
    ) -> Result<Self, ControlError> {
        let prefix = subjects.host(host);
        let wrpc = wrpc_transport_nats::Client::new(nats, prefix.as_str(), None)
            .await
            .map_err(|e| ControlError::Transport {
                host: host.to_string(),
                message: format!("{e:#}"),
            })?;
        Ok(ControlClient {
            wrpc,
            host: host.to_string(),
            prefix,
            timeout,
        })
    }

    /// Runs `call` in its client span; `make` gets the call's headers, which
    /// carry the span's trace context.
    async fn call<T, F>(
        &self,
        call: &'static str,
        make: impl FnOnce(Option<async_nats::HeaderMap>) -> F,
    ) -> Result<T, ControlError>
    where
        F: Future<Output = anyhow::Result<T>>,
    {
        let span = trace::client_span(INTERFACE, call, &self.host);
        let cx = span.in_scope(|| trace::with_context(None));
        let fut = make(cx).instrument(span.clone());
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => match CallErrorKind::of_anyhow(&e) {
                CallErrorKind::NoResponders => Err(ControlError::NoHost {
                    host: self.host.clone(),
                    prefix: self.prefix.clone(),
                }),
                _ => Err(ControlError::Transport {
                    host: self.host.clone(),
                    message: format!("{e:#}"),
                }),
            },
            Err(_) => Err(ControlError::Timeout {
                host: self.host.clone(),
                call,
                timeout: self.timeout,
            }),
        };
        if result.is_err() {
            trace::record_error(&span, "failed");
        }
        result
    }

    fn refused<T>(&self, reply: Result<T, Refusal>) -> Result<T, ControlError> {
        reply.map_err(|refusal| ControlError::Refused {
            host: self.host.clone(),
            refusal,
        })
    }

    /// Starts `manifest` (YAML text) as `id`; an ID started before returns its state.
    pub async fn start(&self, id: &str, manifest: &str) -> Result<WorkloadStatus, ControlError> {
        let reply = self
            .call("start", |cx| host::start(&self.wrpc, cx, id, manifest))
            .await?;
        self.refused(reply)
    }

    /// Stops the workload `id`.
    pub async fn stop(&self, id: &str) -> Result<(), ControlError> {
        let reply = self
            .call("stop", |cx| host::stop(&self.wrpc, cx, id))
            .await?;
        self.refused(reply)
    }

    /// Every workload on the host.
    pub async fn workloads(&self) -> Result<Vec<WorkloadStatus>, ControlError> {
        self.call("workloads", |cx| host::workloads(&self.wrpc, cx))
            .await
    }

    /// One workload.
    pub async fn inspect(&self, id: &str) -> Result<WorkloadStatus, ControlError> {
        let reply = self
            .call("inspect", |cx| host::inspect(&self.wrpc, cx, id))
            .await?;
        self.refused(reply)
    }

    /// The host itself.
    pub async fn describe(&self) -> Result<HostInfo, ControlError> {
        self.call("describe", |cx| host::describe(&self.wrpc, cx))
            .await
    }
}
