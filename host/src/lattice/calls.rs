//! One remote binding: where its calls go, the identity they carry, and the bound
//! that keeps a dead provider from hanging a request.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use tracing::Instrument as _;
use trellis_lattice::lean::LeanClient;
use trellis_lattice::{CallErrorKind, headers, trace};

use crate::telemetry::{self, RpcCall};

/// The bound on a remote call when its binding sets none.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a remote binding's calls go, with the headers that identify the caller.
#[derive(Clone)]
pub struct CallTarget {
    pub(crate) client: LeanClient,
    identity: HeaderMap,
    timeout: Duration,
    describe: String,
    workload: Arc<str>,
    binding: Arc<str>,
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
            workload: workload.into(),
            binding: binding.into(),
        }
    }

    /// Adds the binding's secret config, already sealed to the provider
    /// (a JSON object of config key to sealed value).
    pub fn with_sealed_config(mut self, sealed: &str) -> Self {
        self.identity.insert(headers::SECRETS, sealed);
        self
    }

    /// The context of one call: the identity (the lean client adds the
    /// call's trace context).
    pub(crate) fn context(&self) -> Option<HeaderMap> {
        Some(self.identity.clone())
    }

    /// [`CallTarget::context`] with the current span's trace context, for
    /// calls made on the standard client directly.
    pub(crate) fn traced_context(&self) -> Option<HeaderMap> {
        trace::with_context(Some(self.identity.clone()))
    }

    /// Runs the call `what`, bounded by the binding's timeout, in a client
    /// span; every failure becomes a [`CallError`] naming the target and the function.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = anyhow::Result<T>>,
    ) -> Result<T, CallError> {
        let span = trace::client_span(&self.binding, what, &self.describe);
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, call.instrument(span.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.failure(what, CallErrorKind::of_anyhow(&e), format!("{e:#}"))),
            Err(_) => Err(self.timed_out(what)),
        };
        let error = result.as_ref().err().map(|e| e.kind);
        self.observe(&span, &self.binding, what, error, started);
        result
    }

    /// Records a finished call of `instance.function`: its span's status and
    /// the `rpc.client.call.duration` metric.
    pub(crate) fn observe(
        &self,
        span: &tracing::Span,
        instance: &str,
        function: &str,
        error: Option<CallErrorKind>,
        started: Instant,
    ) {
        if let Some(kind) = error {
            trace::record_error(span, kind.as_str());
        }
        let call = RpcCall {
            workload: &self.workload,
            binding: &self.binding,
            target: &self.describe,
            instance,
            function,
        };
        telemetry::rpc_call(&call, error.map(CallErrorKind::as_str), started.elapsed());
    }

    /// What the binding's calls are made to, for spans.
    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }

    /// The bound on each call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The error of a call to `what` that failed as `kind`, logged once here.
    pub(crate) fn failure(&self, what: &str, kind: CallErrorKind, detail: String) -> CallError {
        let error = CallError {
            kind,
            target: self.describe.clone(),
            function: what.to_string(),
            detail,
            timeout: self.timeout,
        };
        tracing::warn!(target = %self.describe, function = what, kind = %kind, "remote call failed: {error}");
        error
    }

    /// The error of a call to `what` that outlived the timeout, logged once here.
    pub(crate) fn timed_out(&self, what: &str) -> CallError {
        self.failure(what, CallErrorKind::TimedOut, String::new())
    }
}

/// Why a call over a `provider` or `workload` binding failed: the kind, decided
/// where the failure happened (see [`CallErrorKind`]), and who and what was called.
/// Capabilities turn it into their WIT error; the ingress into an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// What kind of failure it was.
    pub kind: CallErrorKind,
    /// The callee, e.g. "provider `keyvalue`".
    pub target: String,
    /// The function, e.g. `get`.
    pub function: String,
    /// What the transport or the callee said.
    pub detail: String,
    /// The binding's bound on the call.
    pub timeout: Duration,
}

impl CallError {
    /// The error a call failed with, if a [`CallError`] is anywhere in its chain
    /// (directly, or inside the `io::Error` a wRPC stream carries).
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a CallError> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(found) = e.downcast_ref::<CallError>() {
                return Some(found);
            }
            if let Some(found) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<CallError>())
            {
                return Some(found);
            }
            cause = e.source();
        }
        None
    }

    /// The HTTP status a request that failed on this call answers with: the
    /// one place a lattice failure becomes a status.
    pub fn http_status(&self) -> http::StatusCode {
        match self.kind {
            CallErrorKind::TimedOut => http::StatusCode::GATEWAY_TIMEOUT,
            CallErrorKind::NoResponders | CallErrorKind::Busy => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            CallErrorKind::Refused
            | CallErrorKind::Transport
            | CallErrorKind::TooLarge
            | CallErrorKind::Invalid => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// The `io::ErrorKind` the error travels as inside a wRPC stream.
    pub(crate) fn io_kind(&self) -> std::io::ErrorKind {
        match self.kind {
            CallErrorKind::TimedOut => std::io::ErrorKind::TimedOut,
            CallErrorKind::NoResponders => std::io::ErrorKind::NotConnected,
            _ => std::io::ErrorKind::Other,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (target, what, detail) = (&self.target, &self.function, &self.detail);
        match self.kind {
            CallErrorKind::TimedOut => write!(
                f,
                "{target} did not answer `{what}` within {:?}",
                self.timeout
            ),
            CallErrorKind::NoResponders => {
                write!(f, "{target} is not serving `{what}` (no responders)")
            }
            CallErrorKind::Busy => write!(
                f,
                "{target} is busy and refused `{what}`; retry later: {detail}"
            ),
            CallErrorKind::Refused => write!(f, "{target} refused `{what}`: {detail}"),
            CallErrorKind::TooLarge => write!(f, "`{what}` to {target} is too large: {detail}"),
            CallErrorKind::Invalid => write!(f, "{target} refused `{what}` as invalid: {detail}"),
            CallErrorKind::Transport => write!(f, "{target} failed on `{what}`: {detail}"),
        }
    }
}

impl std::error::Error for CallError {}
