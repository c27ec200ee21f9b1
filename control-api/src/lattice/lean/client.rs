//! The calling side of `trellis-rr/1`.

use std::io;
use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;
use wrpc_transport::Invoke;

use super::{ERROR_HEADER, HEADROOM, LeanIncoming, LeanOutgoing, subject};

type Standard = wrpc_transport_nats::Client;
type Reply = io::Result<Bytes>;

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
        if !self.lean || !paths.as_ref().is_empty() {
            let (w, r) = self
                .standard
                .invoke(cx, instance, func, params, paths)
                .await?;
            return Ok((LeanOutgoing::Standard(w), LeanIncoming::Standard(r)));
        }
        let (mut tx, rx) = oneshot::channel();
        let (nats, standard) = (self.nats.clone(), self.standard.clone());
        let subject = subject(&self.prefix, instance, func);
        let (instance, func) = (instance.to_string(), func.to_string());
        let send = move |payload: Bytes| {
            tokio::spawn(async move {
                let call = async {
                    if payload.len() + HEADROOM <= nats.server_info().max_payload {
                        request(&nats, subject, cx, payload).await
                    } else {
                        standard_call(&standard, cx, &instance, &func, payload).await
                    }
                };
                // A caller that gives up (its binding's timeout) ends the call here too.
                tokio::select! {
                    reply = call => {
                        let _ = tx.send(reply);
                    }
                    () = tx.closed() => {}
                }
            });
        };
        let mut outgoing = LeanOutgoing::lean(send);
        outgoing.write_all(&params).await?;
        Ok((outgoing, LeanIncoming::waiting(rx)))
    }
}

/// One `trellis-rr/1` request.
async fn request(
    nats: &async_nats::Client,
    subject: String,
    headers: Option<HeaderMap>,
    payload: Bytes,
) -> Reply {
    let mut request = async_nats::Request::new().payload(payload).timeout(None);
    if let Some(headers) = headers {
        request = request.headers(headers);
    }
    match nats.send_request(subject, request).await {
        Ok(reply) => match reply.headers.as_ref().and_then(|h| h.get(ERROR_HEADER)) {
            Some(why) => Err(io::Error::other(why.as_str().to_string())),
            None => Ok(reply.payload),
        },
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
            Err(io::Error::new(io::ErrorKind::NotConnected, "no responders"))
        }
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// A whole wrpc-transport-nats call with `payload` as its parameters.
async fn standard_call(
    standard: &Standard,
    cx: Option<HeaderMap>,
    instance: &str,
    func: &str,
    payload: Bytes,
) -> Reply {
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
