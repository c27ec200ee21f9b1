//! The calling side of `trellis-rr/1`.

use std::io;
use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wrpc_transport::Invoke;

use super::streams::{Reply, ReplySlot};
use super::{ERROR_HEADER, ERROR_KIND_HEADER, HEADROOM, LeanIncoming, LeanOutgoing, subject};
use crate::{CallErrorKind, Failure};

type Standard = wrpc_transport_nats::Client;

/// A wRPC client that makes each call one NATS request when the callee speaks
/// `trellis-rr/1`, and a wrpc-transport-nats call otherwise.
#[derive(Clone)]
pub struct LeanClient {
    nats: async_nats::Client,
    prefix: Arc<str>,
    standard: Standard,
    lean: bool,
}

impl LeanClient {
    /// Calls under `prefix`; lean ones only if `lean` (the callee announced it),
    /// every other through `standard`.
    pub fn new(nats: async_nats::Client, prefix: &str, standard: Standard, lean: bool) -> Self {
        LeanClient {
            nats,
            prefix: prefix.into(),
            standard,
            lean,
        }
    }

    /// The wrpc-transport-nats client, for calls that move large values.
    pub fn standard(&self) -> &Standard {
        &self.standard
    }
}

impl Invoke for LeanClient {
    type Context = Option<HeaderMap>;
    type Outgoing = LeanOutgoing<<Standard as Invoke>::Outgoing>;
    type Incoming = LeanIncoming<<Standard as Invoke>::Incoming>;

    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        // The caller's span (a binding's client span) is the callee's parent.
        let cx = crate::trace::with_context(cx);
        if !self.lean || !paths.as_ref().is_empty() {
            let (w, r) = self
                .standard
                .invoke(cx, instance, func, params, paths)
                .await?;
            return Ok((LeanOutgoing::Standard(w), LeanIncoming::Standard(r)));
        }
        // The request runs in the caller's own task, polled by its reads: no
        // task hop per call, and a caller that gives up drops it.
        let slot = ReplySlot::default();
        let (nats, standard, filled) = (self.nats.clone(), self.standard.clone(), slot.clone());
        let subject = subject(&self.prefix, instance, func);
        let (instance, func) = (instance.to_string(), func.to_string());
        let send = move |payload: Result<Bytes, Failure>| {
            // A caller that gives up before sending its parameters sends nothing.
            let Ok(payload) = payload else { return };
            let reply: Reply = Box::pin(async move {
                if payload.len() + HEADROOM <= nats.server_info().max_payload {
                    request(&nats, subject, cx, payload).await
                } else {
                    standard_call(&standard, cx, &instance, &func, payload).await
                }
            });
            *filled.lock().unwrap_or_else(|p| p.into_inner()) = Some(reply);
        };
        let mut outgoing = LeanOutgoing::lean(send);
        outgoing.write_all(&params).await?;
        Ok((outgoing, LeanIncoming::waiting(slot)))
    }
}

/// One `trellis-rr/1` request.
async fn request(
    nats: &async_nats::Client,
    subject: String,
    headers: Option<HeaderMap>,
    payload: Bytes,
) -> io::Result<Bytes> {
    let mut request = async_nats::Request::new().payload(payload).timeout(None);
    if let Some(headers) = headers {
        request = request.headers(headers);
    }
    match nats.send_request(subject, request).await {
        Ok(reply) => match reply.headers.as_ref().and_then(|h| h.get(ERROR_HEADER)) {
            Some(why) => {
                let kind = reply
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(ERROR_KIND_HEADER))
                    .map(|k| k.as_str());
                Err(Failure::new(CallErrorKind::from_header(kind), why.as_str()).into())
            }
            None => Ok(reply.payload),
        },
        Err(e) => {
            let kind = CallErrorKind::of(&e);
            Err(Failure::new(kind, e.to_string()).into())
        }
    }
}

/// A whole wrpc-transport-nats call with `payload` as its parameters.
async fn standard_call(
    standard: &Standard,
    cx: Option<HeaderMap>,
    instance: &str,
    func: &str,
    payload: Bytes,
) -> io::Result<Bytes> {
    let no_paths: [[Option<usize>; 0]; 0] = [];
    let (mut w, mut r) = standard
        .invoke(cx, instance, func, payload, no_paths)
        .await
        .map_err(|e| io::Error::other(format!("{e:#}")))?;
    w.shutdown().await?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out.into())
}
