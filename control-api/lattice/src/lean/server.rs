//! The serving side of `trellis-rr/1`, beside wrpc-transport-nats.

use std::sync::Arc;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use wrpc_transport::Serve;
use wrpc_transport_nats::NatsContext;

use super::arrivals::{Arrival, Arrivals};
use super::{ERROR_HEADER, ERROR_KIND_HEADER, LeanIncoming, LeanOutgoing, subject};
use crate::bounded::invalid;
use crate::{BoundedIncoming, BoundedServer};
use crate::{CallErrorKind, Failure};

type StandardOut = <BoundedServer as Serve>::Outgoing;
type StandardIn = <BoundedServer as Serve>::Incoming;

/// A wRPC server that takes each call the way its caller makes it: over
/// wrpc-transport-nats, or as one `trellis-rr/1` request (functions without
/// async parameters), in the same queue group. Both ways go through the same
/// checks and in-flight bound as [`BoundedServer`]; a lean call refused by
/// them gets a typed error reply (`invalid`, `busy`).
#[derive(Clone)]
pub struct DualServer {
    standard: BoundedServer,
    nats: async_nats::Client,
    prefix: Arc<str>,
    group: Arc<str>,
    arrivals: Option<Arrivals>,
    served: Arc<std::sync::Mutex<Vec<Served>>>,
}

/// One function a [`DualServer`] serves, and where: what a provider lists as
/// its endpoints in discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The interface instance, e.g. `wasi:keyvalue/store@0.2.0-draft`.
    pub instance: String,
    /// The function as wRPC names it, e.g. `bucket.get`.
    pub func: String,
    /// Its wrpc-transport-nats subject.
    pub wrpc_subject: String,
    /// Its `trellis-rr/1` subject, for functions without async values.
    pub lean_subject: Option<String>,
}

impl DualServer {
    /// Serves under `prefix` in queue group `group`: `standard` for
    /// wrpc-transport-nats calls, `nats` for lean ones.
    pub fn new(
        standard: BoundedServer,
        nats: async_nats::Client,
        prefix: &str,
        group: &str,
    ) -> Self {
        DualServer {
            standard,
            nats,
            prefix: prefix.into(),
            group: group.into(),
            arrivals: None,
            served: Arc::default(),
        }
    }

    /// Keeps each call's [`Arrival`] for [`DualServer::arrival`]: for runners
    /// that see only the generated code's futures, not the call's headers.
    pub fn with_arrivals(mut self) -> Self {
        self.arrivals = Some(Arrivals::default());
        self
    }

    /// Every function served so far, in the order `serve` was called.
    pub fn served(&self) -> Vec<Served> {
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The oldest call of `instance.func` whose future has not been run yet,
    /// when arrivals are kept and telemetry is recorded.
    pub fn arrival(&self, instance: &str, func: &str) -> Option<Arrival> {
        self.arrivals.as_ref()?.take(instance, func)
    }
}

/// Publishes `results` to `reply`; a failure, or results that do not fit one
/// message, as a typed error reply instead.
fn send_reply(nats: async_nats::Client, reply: Subject, results: Result<Bytes, Failure>) {
    tokio::spawn(async move {
        let limit = nats.server_info().max_payload;
        let results = results.and_then(|results| {
            if results.len() + super::HEADROOM > limit {
                Err(Failure::new(
                    CallErrorKind::TooLarge,
                    format!(
                        "the results are {} bytes, more than one NATS message takes ({limit}); call over wrpc-transport-nats",
                        results.len()
                    ),
                ))
            } else {
                Ok(results)
            }
        });
        let sent = match results {
            Ok(results) => nats.publish(reply, results).await,
            Err(failure) => {
                let mut headers = HeaderMap::new();
                headers.insert(ERROR_HEADER, failure.message.as_str());
                headers.insert(ERROR_KIND_HEADER, failure.kind.as_str());
                nats.publish_with_headers(reply, headers, Bytes::new())
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot send a reply");
        }
    });
}

/// A place among the calls in flight for a lean call whose parameters check.
fn admit_lean(
    server: &BoundedServer,
    signature: &trellis_wire::Signature,
    payload: &[u8],
) -> Result<tokio::sync::OwnedSemaphorePermit, Failure> {
    trellis_wire::check(signature, payload).map_err(invalid)?;
    server.admit().ok_or_else(|| {
        Failure::new(
            CallErrorKind::Busy,
            format!(
                "the callee is answering {} calls already",
                server.limits().max_in_flight
            ),
        )
    })
}

type Invocation = anyhow::Result<(
    NatsContext,
    LeanOutgoing<StandardOut>,
    LeanIncoming<StandardIn>,
)>;

impl Serve for DualServer {
    type Context = NatsContext;
    type Outgoing = LeanOutgoing<StandardOut>;
    type Incoming = LeanIncoming<StandardIn>;

    async fn serve(
        &self,
        instance: &str,
        func: &str,
        paths: impl Into<Arc<[Box<[Option<usize>]>]>> + Send,
    ) -> anyhow::Result<impl Stream<Item = Invocation> + Send + 'static> {
        let paths: Arc<[Box<[Option<usize>]>]> = paths.into();
        let lean_too = paths.is_empty();
        let signature = self.standard.signature(instance, func)?;
        let names: (Arc<str>, Arc<str>) = (instance.into(), func.into());
        let arrivals = self.arrivals.clone().map(|a| (a, names.clone()));
        let standard: BoxStream<'static, Invocation> = self
            .standard
            .serve(instance, func, paths)
            .await?
            .map(move |item| {
                if let Some((arrivals, (instance, func))) = &arrivals {
                    let headers = item
                        .as_ref()
                        .ok()
                        .and_then(|(cx, _, _)| cx.headers.as_ref());
                    arrivals.record(instance, func, headers);
                }
                item
            })
            .map_ok(
                |(cx, w, r): (NatsContext, StandardOut, BoundedIncoming<_>)| {
                    (cx, LeanOutgoing::Standard(w), LeanIncoming::Standard(r))
                },
            )
            .boxed();
        let lean_subject = lean_too.then(|| subject(&self.prefix, instance, func));
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Served {
                instance: instance.to_string(),
                func: func.to_string(),
                wrpc_subject: wrpc_transport_nats::invocation_subject(&self.prefix, instance, func),
                lean_subject: lean_subject.clone(),
            });
        let Some(lean_subject) = lean_subject else {
            return Ok(stream::select(standard, stream::empty().boxed()));
        };
        let requests = self
            .nats
            .queue_subscribe(lean_subject, self.group.to_string())
            .await?;
        // Served once `serve` returns, as wrpc-transport-nats does.
        self.nats.flush().await?;
        let nats = self.nats.clone();
        let server = self.standard.clone();
        let arrivals = self.arrivals.clone().map(|a| (a, names));
        let lean: BoxStream<'static, Invocation> = requests
            .filter_map(move |message| {
                let reply = message.reply.clone();
                let admitted = admit_lean(&server, &signature, &message.payload);
                let nats = nats.clone();
                std::future::ready(match (reply, admitted) {
                    (None, _) => None,
                    (Some(reply), Err(failure)) => {
                        send_reply(nats, reply, Err(failure));
                        None
                    }
                    (Some(reply), Ok(permit)) => {
                        if let Some((arrivals, (instance, func))) = &arrivals {
                            arrivals.record(instance, func, message.headers.as_ref());
                        }
                        let cx = NatsContext {
                            headers: message.headers,
                            subject: message.subject,
                        };
                        let out = LeanOutgoing::lean(move |results| {
                            drop(permit);
                            send_reply(nats, reply, results)
                        });
                        Some(Ok((cx, out, LeanIncoming::ready(message.payload))))
                    }
                })
            })
            .boxed();
        Ok(stream::select(standard, lean))
    }
}
