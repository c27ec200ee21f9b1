//! The lattice's secret store, served by the scheduler process that holds the
//! store key (`trellis scheduler --secrets-key`). Values rest in the
//! `secrets` KV bucket sealed to that key; a host gets one re-sealed to its
//! own xkey, and only for a workload whose desired state names the secret for
//! that component (see `trellis_lattice::fetch_secret`). No value is ever
//! logged, and every answer names the key, not the value.

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use nkeys::XKey;
use trellis_lattice::{
    MAX_SECRET_BYTES, SECRETS_BUCKET, Sealed, SecretReply, SecretRequest, Subjects, open_bucket,
};

use crate::{SchedulerError, Store};

/// The largest request the store reads.
const MAX_REQUEST_BYTES: usize = 4 << 10;

/// The secret bucket's config: latest value only.
pub fn secrets_bucket(subjects: &Subjects) -> kv::Config {
    kv::Config {
        bucket: subjects.bucket(SECRETS_BUCKET),
        history: 1,
        max_value_size: i32::try_from(MAX_SECRET_BYTES * 2).unwrap_or(i32::MAX),
        ..Default::default()
    }
}

/// Serves the store until the connection closes. Replicas share a queue
/// group, so each request gets one answer.
pub async fn serve_secrets(
    nats: async_nats::Client,
    subjects: Subjects,
    key: XKey,
    store: Store,
) -> Result<(), SchedulerError> {
    let js = subjects.jetstream(nats.clone());
    let bucket = open_bucket(&js, secrets_bucket(&subjects)).await?;
    let mut requests = nats
        .queue_subscribe(subjects.secret_store(), "secrets".into())
        .await
        .map_err(|source| SchedulerError::Subscribe {
            subject: subjects.secret_store(),
            source,
        })?;
    let key_subject = subjects.secret_store_key();
    let request_prefix = subjects.secret_request("");
    tracing::info!(key = %key.public_key(), "secret store serving");
    while let Some(message) = requests.next().await {
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let answer = if message.subject.as_str() == key_subject {
            key.public_key().into_bytes()
        } else if let Some(host) = message.subject.as_str().strip_prefix(&request_prefix) {
            let answer = answer(&bucket, &store, &key, host, &message.payload).await;
            serde_json::to_vec(&answer).unwrap_or_default()
        } else {
            continue;
        };
        if let Err(e) = nats.publish(reply, answer.into()).await {
            tracing::warn!(error = %e, "cannot answer a secret request");
        }
    }
    Ok(())
}

/// The answer to host `host`'s request `payload`.
async fn answer(
    bucket: &kv::Store,
    store: &Store,
    key: &XKey,
    host: &str,
    payload: &[u8],
) -> SecretReply {
    if payload.len() > MAX_REQUEST_BYTES {
        return SecretReply::NotAllowed(format!(
            "the request is {} bytes; at most {MAX_REQUEST_BYTES} are read",
            payload.len()
        ));
    }
    let request: SecretRequest = match serde_json::from_slice(payload) {
        Ok(request) => request,
        Err(e) => return SecretReply::NotAllowed(format!("malformed request: {e}")),
    };
    let granted = match store.desired(&request.workload).await {
        Ok(Some(desired)) => desired
            .secrets
            .iter()
            .any(|(c, k)| *c == request.component && *k == request.key),
        Ok(None) => false,
        Err(e) => return SecretReply::NotAllowed(format!("cannot read the desired state: {e}")),
    };
    if !granted {
        tracing::warn!(%host, workload = %request.workload, component = %request.component,
            key = %request.key, "refused a secret the desired state does not grant");
        return SecretReply::NotAllowed(format!(
            "the desired state of workload `{}` gives component `{}` no secret `{}`",
            request.workload, request.component, request.key
        ));
    }
    let stored = match bucket.get(&request.key).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return SecretReply::NotFound,
        Err(e) => return SecretReply::NotAllowed(format!("cannot read the store: {e}")),
    };
    let resealed = serde_json::from_slice::<Sealed>(&stored)
        .map_err(|e| format!("the stored value is malformed: {e}"))
        .and_then(|sealed| sealed.open(&request.key, key).map_err(|e| e.to_string()))
        .and_then(|value| {
            Sealed::seal(&request.key, &value, key, &request.recipient).map_err(|e| e.to_string())
        });
    match resealed {
        Ok(sealed) => {
            tracing::info!(%host, workload = %request.workload, component = %request.component,
                key = %request.key, "handed out a secret, sealed to the host");
            SecretReply::Sealed(sealed)
        }
        Err(why) => SecretReply::NotAllowed(why),
    }
}
