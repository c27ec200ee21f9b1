//! Signatures of artifacts: the operator's nkey (ed25519) over the
//! component's digest, recorded in the lattice by digest, checked by hosts
//! that were told whom to trust.

use nkeys::KeyPair;
use trellis_manifest::Digest;

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A trusted key that is not an nkey public key.
    #[error("`{key}` is not an nkey public key: {message}")]
    Key {
        /// What was given.
        key: String,
        /// Why it is not one.
        message: String,
    },
    /// The seed could not sign.
    #[error("cannot sign with this seed: {0}")]
    Sign(String),
}

/// What is signed: a 0xFF byte, a domain tag and the digest. The CLI's nkey
/// also signs NATS connect nonces, which the server chooses but which are
/// always UTF-8 text, where 0xFF never occurs: no nonce can pass for this.
fn message(digest: &Digest) -> Vec<u8> {
    let mut message = vec![0xff];
    message.extend_from_slice(format!("trellis-artifact-v1 {digest}").as_bytes());
    message
}

/// Signs `digest` with `signer`.
pub fn sign(signer: &KeyPair, digest: &Digest) -> Result<Vec<u8>, SignatureError> {
    signer
        .sign(&message(digest))
        .map_err(|e| SignatureError::Sign(e.to_string()))
}

/// The public keys a host runs artifacts of; empty trusts every artifact.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: Vec<(String, KeyPair)>,
}

impl Trust {
    /// Trusts signatures by these nkey public keys (user or operator keys).
    pub fn keys(keys: &[String]) -> Result<Trust, SignatureError> {
        let keys = keys
            .iter()
            .map(|key| {
                KeyPair::from_public_key(key)
                    .map(|pair| (key.clone(), pair))
                    .map_err(|e| SignatureError::Key {
                        key: key.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Trust { keys })
    }

    /// Whether any signature is required.
    pub fn is_required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The trusted public keys.
    pub fn signers(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(key, _)| key.as_str())
    }

    /// Whether `signature` is `signer`'s signature of `digest`.
    pub fn verifies(&self, signer: &str, digest: &Digest, signature: &[u8]) -> bool {
        self.keys
            .iter()
            .find(|(key, _)| key == signer)
            .is_some_and(|(_, pair)| pair.verify(&message(digest), signature).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_text(pair: &KeyPair, text: &str) -> Vec<u8> {
        pair.sign(text.as_bytes()).unwrap_or_default()
    }

    #[test]
    fn a_signature_verifies_for_its_digest_and_signer_only() -> Result<(), SignatureError> {
        let operator = KeyPair::new_user();
        let other = KeyPair::new_user();
        let digest = Digest::of(b"component");
        let signature = sign(&operator, &digest)?;
        let trust = Trust::keys(&[operator.public_key()])?;
        assert!(trust.verifies(&operator.public_key(), &digest, &signature));
        assert!(!trust.verifies(&operator.public_key(), &Digest::of(b"other"), &signature));
        assert!(!trust.verifies(&other.public_key(), &digest, &sign(&other, &digest)?));
        assert!(Trust::keys(&["not-a-key".into()]).is_err());
        // Text (a connect nonce) signed with the same key is no artifact signature.
        let nonce = sign_text(&operator, &format!("trellis-artifact-v1 {digest}"));
        assert!(!trust.verifies(&operator.public_key(), &digest, &nonce));
        Ok(())
    }
}
