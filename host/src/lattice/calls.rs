//! One remote binding: where its calls go, the identity they carry, and the bound
//! that keeps a dead provider from hanging a request.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_nats::HeaderMap;
use trellis_control_api::lattice::headers;
use trellis_control_api::lattice::lean::LeanClient;

use crate::trace::TraceContext;

/// The bound on a remote call when its binding sets none.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a remote binding's calls go, with the headers that identify the caller.
#[derive(Clone)]
pub struct CallTarget {
    pub(crate) client: LeanClient,
    identity: HeaderMap,
    timeout: Duration,
    describe: String,
}

impl CallTarget {
    /// Calls from `component` of `workload` through `binding`, to `describe`
    /// (e.g. "provider `kv`"), each bounded by `timeout`.
    pub fn new(
        client: LeanClient,
        workload: &str,
        component: &str,
        binding: &str,
        config: &BTreeMap<String, String>,
        timeout: Duration,
        describe: String,
    ) -> Self {
        let mut identity = HeaderMap::new();
        identity.insert(headers::WORKLOAD, workload);
        identity.insert(headers::COMPONENT, component);
        identity.insert(headers::BINDING, binding);
        if !config.is_empty() {
            identity.insert(
                headers::CONFIG,
                serde_json::to_string(config).unwrap_or_default().as_str(),
            );
        }
        CallTarget {
            client,
            identity,
            timeout,
            describe,
        }
    }

    /// The context of one call: the identity plus a fresh `traceparent`.
    pub(crate) fn context(&self) -> Option<HeaderMap> {
        let mut headers = self.identity.clone();
        if let Some(traceparent) = TraceContext::current_child() {
            headers.insert(headers::TRACEPARENT, traceparent.as_str());
        }
        Some(headers)
    }

    /// Runs the call `what`, bounded by the binding's timeout; every failure
    /// becomes a sentence naming the target and the function.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = anyhow::Result<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failure(what, &e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    /// The bound on each call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The sentence for a call to `what` that failed with `e`, logged once here.
    pub(crate) fn failure(&self, what: &str, e: &anyhow::Error) -> String {
        let message = format!("{e:#}");
        tracing::warn!(target = %self.describe, function = what, error = %message, "remote call failed");
        // wrpc-transport-nats reports NATS's no-responders status only as text.
        if message.contains("no responders") {
            self.not_serving(what)
        } else {
            format!("{} failed on `{what}`: {message}", self.describe)
        }
    }

    /// The sentence for a call to `what` that nobody serves (NATS no-responders).
    pub(crate) fn not_serving(&self, what: &str) -> String {
        format!("{} is not serving `{what}` (no responders)", self.describe)
    }

    /// The sentence for a call to `what` that outlived the timeout, logged once here.
    pub(crate) fn timed_out(&self, what: &str) -> String {
        tracing::warn!(target = %self.describe, function = what, timeout = ?self.timeout, "remote call timed out");
        format!(
            "{} did not answer `{what}` within {:?}",
            self.describe, self.timeout
        )
    }
}
