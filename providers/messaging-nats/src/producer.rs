//! `trellis:messaging/producer`: publish and request on core NATS.

use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument as _;
use trellis_provider_sdk::lattice::trace;
use trellis_provider_sdk::{Caller, NatsContext};

use crate::Handler;
use crate::bindings::exports::trellis::messaging::producer;

/// The longest a `request` may wait, whatever the component asks.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The calling workload, if it may send to `subject`: a call without host headers,
/// or to a subject components may not use, is refused.
fn admit(handler: &Handler, cx: &NatsContext, subject: &str) -> Result<Caller, String> {
    let caller = Caller::from_context(cx).map_err(|e| format!("refused: {e}"))?;
    match crate::subjects::refuse_send(subject).or_else(|| handler.granted.refuse(subject)) {
        Some(why) => Err(why),
        None => Ok(caller),
    }
}

impl producer::Handler<NatsContext> for Handler {
    async fn publish(
        &self,
        cx: NatsContext,
        subject: String,
        body: Bytes,
    ) -> anyhow::Result<Result<(), String>> {
        let caller = match admit(self, &cx, &subject) {
            Ok(caller) => caller,
            Err(e) => return Ok(Err(e)),
        };
        tracing::debug!(workload = %caller.workload, %subject, bytes = body.len(), "publish");
        let sent = async {
            match trace::with_context(None) {
                Some(headers) => {
                    self.nats
                        .publish_with_headers(subject.clone(), headers, body)
                        .await?
                }
                None => self.nats.publish(subject.clone(), body).await?,
            }
            self.nats.flush().await?;
            anyhow::Ok(())
        };
        Ok(sent
            .instrument(trace::messaging_span("publish", &subject, None))
            .await
            .map_err(|e| format!("cannot publish on `{subject}`: {e}")))
    }

    async fn request(
        &self,
        cx: NatsContext,
        subject: String,
        body: Bytes,
        timeout_ms: u32,
    ) -> anyhow::Result<Result<Bytes, String>> {
        let caller = match admit(self, &cx, &subject) {
            Ok(caller) => caller,
            Err(e) => return Ok(Err(e)),
        };
        tracing::debug!(workload = %caller.workload, %subject, bytes = body.len(), "request");
        let timeout = Duration::from_millis(timeout_ms.into()).min(MAX_REQUEST_TIMEOUT);
        let request = async {
            match trace::with_context(None) {
                Some(headers) => {
                    self.nats
                        .request_with_headers(subject.clone(), headers, body)
                        .await
                }
                None => self.nats.request(subject.clone(), body).await,
            }
        }
        .instrument(trace::messaging_span("send", &subject, None));
        let reply = tokio::time::timeout(timeout, request).await;
        Ok(match reply {
            Ok(Ok(message)) => Ok(message.payload),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                Err(format!("nobody answers on `{subject}` (no responders)"))
            }
            Ok(Err(e)) => Err(format!("request on `{subject}` failed: {e}")),
            Err(_) => Err(format!("no reply on `{subject}` within {timeout:?}")),
        })
    }
}
