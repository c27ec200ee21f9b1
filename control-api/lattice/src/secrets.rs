//! Secrets on the wire: always sealed with curve25519 xkeys (NaCl boxes, the
//! `nkeys` crate), never plain text on NATS.
//!
//! The lattice's store keeps each value sealed to the store key, which only
//! the process serving the store holds (`trellis scheduler --secrets-key`).
//! A host starting a workload asks the store on its own subject
//! ([`Subjects::secret_request`], which only that host may publish to) with
//! its xkey's public key; the store checks that the workload's desired state
//! names the secret for that component, and answers with the value re-sealed
//! to the host's key.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nkeys::XKey;
use serde::{Deserialize, Serialize};

use crate::Subjects;

/// The secret store's KV bucket name part (see [`Subjects::bucket`]).
pub const SECRETS_BUCKET: &str = "secrets";

/// The largest secret value the store takes.
pub const MAX_SECRET_BYTES: usize = 64 << 10;

/// How long a host or the CLI waits for the store.
pub const SECRET_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a secret could not be sealed, opened or fetched. Messages name the
/// secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The store has no value under that key.
    #[error("secret `{0}` is not in the lattice's secret store (`trellis secret put {0}`)")]
    NotFound(String),
    /// The store refused to hand it out.
    #[error("secret `{key}` was refused: {why}")]
    NotAllowed {
        /// The store key.
        key: String,
        /// Why.
        why: String,
    },
    /// Nobody serves the store, or it did not answer in time.
    #[error(
        "the lattice's secret store did not answer for `{0}` (is `trellis scheduler --secrets-key` running?)"
    )]
    Unreachable(String),
    /// A key or a sealed value is malformed.
    #[error("secret `{key}`: {problem}")]
    Crypto {
        /// The store key.
        key: String,
        /// What is wrong (never the value).
        problem: String,
    },
}

/// A value sealed from `sender` to one recipient's xkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The sender's xkey public key (the recipient needs it to open).
    pub sender: String,
    /// The box, base64.
    pub sealed: String,
}

impl Sealed {
    /// Seals `value` from `sender` to `recipient` (an xkey public key); `key`
    /// names the secret in errors.
    pub fn seal(
        key: &str,
        value: &[u8],
        sender: &XKey,
        recipient: &str,
    ) -> Result<Sealed, SecretError> {
        let crypto = |problem: String| SecretError::Crypto {
            key: key.into(),
            problem,
        };
        let recipient = XKey::from_public_key(recipient)
            .map_err(|e| crypto(format!("bad recipient key: {e}")))?;
        let sealed = sender
            .seal(value, &recipient)
            .map_err(|e| crypto(format!("cannot seal: {e}")))?;
        Ok(Sealed {
            sender: sender.public_key(),
            sealed: STANDARD.encode(sealed),
        })
    }

    /// Opens the box with `recipient`'s own key.
    pub fn open(&self, key: &str, recipient: &XKey) -> Result<Vec<u8>, SecretError> {
        let crypto = |problem: String| SecretError::Crypto {
            key: key.into(),
            problem,
        };
        let sender = XKey::from_public_key(&self.sender)
            .map_err(|e| crypto(format!("bad sender key: {e}")))?;
        let sealed = STANDARD
            .decode(&self.sealed)
            .map_err(|_| crypto("the sealed value is not base64".into()))?;
        recipient
            .open(&sealed, &sender)
            .map_err(|_| crypto("the sealed value does not open with this key".into()))
    }
}

/// A host's request for one secret of a workload it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRequest {
    /// The workload.
    pub workload: String,
    /// The component that will read it.
    pub component: String,
    /// The store key.
    pub key: String,
    /// The xkey public key to seal the answer to.
    pub recipient: String,
}

/// The store's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretReply {
    /// The value, sealed to the requester.
    Sealed(Sealed),
    /// No such key.
    NotFound,
    /// Refused, with the reason.
    NotAllowed(String),
}

/// Asks the store (as host `host`, whose xkey is `xkey`) for `key` of
/// `component` in `workload`, and opens the answer.
pub async fn fetch_secret(
    nats: &async_nats::Client,
    subjects: &Subjects,
    host: &str,
    xkey: &XKey,
    workload: &str,
    component: &str,
    key: &str,
) -> Result<String, SecretError> {
    let request = SecretRequest {
        workload: workload.into(),
        component: component.into(),
        key: key.into(),
        recipient: xkey.public_key(),
    };
    let body = serde_json::to_vec(&request).map_err(|e| SecretError::Crypto {
        key: key.into(),
        problem: e.to_string(),
    })?;
    let ask = nats.request(subjects.secret_request(host), body.into());
    let reply = match tokio::time::timeout(SECRET_TIMEOUT, ask).await {
        Ok(Ok(reply)) => reply,
        _ => return Err(SecretError::Unreachable(key.into())),
    };
    let reply: SecretReply =
        serde_json::from_slice(&reply.payload).map_err(|e| SecretError::Crypto {
            key: key.into(),
            problem: format!("the store's answer is malformed: {e}"),
        })?;
    match reply {
        SecretReply::Sealed(sealed) => {
            let value = sealed.open(key, xkey)?;
            String::from_utf8(value).map_err(|_| SecretError::Crypto {
                key: key.into(),
                problem: "the value is not UTF-8".into(),
            })
        }
        SecretReply::NotFound => Err(SecretError::NotFound(key.into())),
        SecretReply::NotAllowed(why) => Err(SecretError::NotAllowed {
            key: key.into(),
            why,
        }),
    }
}

/// Reads an xkey seed file (`<identity>.xk`, from `trellis lattice init`).
pub fn read_xkey(path: &std::path::Path) -> Result<XKey, String> {
    let seed = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the xkey file `{}`: {e}", path.display()))?;
    XKey::from_seed(seed.trim())
        .map_err(|e| format!("`{}` holds no xkey seed: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens_a_sealed_value() -> Result<(), SecretError> {
        let (store, host, other) = (XKey::new(), XKey::new(), XKey::new());
        let sealed = Sealed::seal("token", b"hunter2", &store, &host.public_key())?;
        assert!(!sealed.sealed.contains("hunter2"));
        assert_eq!(sealed.open("token", &host)?, b"hunter2");
        assert!(sealed.open("token", &other).is_err());
        Ok(())
    }
}
