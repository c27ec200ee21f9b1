//! Who is calling: the identity the host put in the call's headers.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use trellis_lattice::{Sealed, headers};
use wrpc_transport_nats::NatsContext;

/// This provider process's xkey: what hosts seal secret config values to.
static XKEY: OnceLock<nkeys::XKey> = OnceLock::new();

/// Makes `key` the one secret config values are opened with (set once, at start).
pub(crate) fn use_xkey(key: nkeys::XKey) {
    let _ = XKEY.set(key);
}

/// The workload, component and binding a call came from, and the binding's config.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The calling workload.
    pub workload: String,
    /// The calling component.
    pub component: String,
    /// The binding's import pattern.
    pub binding: String,
    /// The binding's `config`, secret values opened (never log it whole).
    pub config: BTreeMap<String, String>,
    /// W3C trace context of the request behind the call, if any.
    pub traceparent: Option<String>,
}

/// Names the config keys, never their values (some may be secrets).
impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("workload", &self.workload)
            .field("component", &self.component)
            .field("binding", &self.binding)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
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
    /// A secret config value does not open with this provider's xkey.
    #[error("secret config `{key}`: {why}")]
    BadSecret {
        /// The config key.
        key: String,
        /// Why (never the value).
        why: String,
    },
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
        let mut config: BTreeMap<String, String> = match get(headers::CONFIG) {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| CallerError::BadConfig(e.to_string()))?
            }
            None => BTreeMap::new(),
        };
        if let Some(json) = get(headers::SECRETS) {
            config.extend(open_secrets(&json)?);
        }
        Ok(Caller {
            workload: required(headers::WORKLOAD)?,
            component: required(headers::COMPONENT)?,
            binding: get(headers::BINDING).unwrap_or_default(),
            config,
            traceparent: get(headers::TRACEPARENT),
        })
    }
}

/// The config values of a `Trellis-Secrets` header, opened with this process's xkey.
fn open_secrets(json: &str) -> Result<BTreeMap<String, String>, CallerError> {
    let sealed: BTreeMap<String, Sealed> =
        serde_json::from_str(json).map_err(|e| CallerError::BadSecret {
            key: "*".into(),
            why: format!("the header is not a JSON object of sealed values: {e}"),
        })?;
    let xkey = XKEY.get();
    sealed
        .into_iter()
        .map(|(key, sealed)| {
            let bad = |why: String| CallerError::BadSecret {
                key: key.clone(),
                why,
            };
            let xkey = xkey.ok_or_else(|| bad("this provider has no xkey (--xkey)".into()))?;
            let value = sealed.open(&key, xkey).map_err(|e| bad(e.to_string()))?;
            let value = String::from_utf8(value).map_err(|_| bad("not UTF-8".into()))?;
            Ok((key, value))
        })
        .collect()
}
