//! Who is calling: the identity the host put in the call's headers.

use std::collections::BTreeMap;

use trellis_lattice::headers;
use wrpc_transport_nats::NatsContext;

/// The workload, component and binding a call came from, and the binding's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The calling workload.
    pub workload: String,
    /// The calling component.
    pub component: String,
    /// The binding's import pattern.
    pub binding: String,
    /// The binding's `config`.
    pub config: BTreeMap<String, String>,
    /// W3C trace context of the request behind the call, if any.
    pub traceparent: Option<String>,
}

/// Why a call's headers do not identify a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// A required header is absent (the call did not come from a Trellis host).
    #[error("the call has no `{0}` header; only Trellis hosts may call providers")]
    Missing(&'static str),
    /// The config header is not a JSON object of strings.
    #[error("the `Trellis-Config` header is not a JSON object of strings: {0}")]
    BadConfig(String),
}

impl Caller {
    /// Reads the caller from a call's context.
    pub fn from_context(cx: &NatsContext) -> Result<Caller, CallerError> {
        let get = |name: &'static str| {
            cx.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let required = |name| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or(CallerError::Missing(name))
        };
        let config = match get(headers::CONFIG) {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| CallerError::BadConfig(e.to_string()))?
            }
            None => BTreeMap::new(),
        };
        Ok(Caller {
            workload: required(headers::WORKLOAD)?,
            component: required(headers::COMPONENT)?,
            binding: get(headers::BINDING).unwrap_or_default(),
            config,
            traceparent: get(headers::TRACEPARENT),
        })
    }
}
