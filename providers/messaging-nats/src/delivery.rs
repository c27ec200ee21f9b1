//! Delivery: the subjects a binding subscribes to (config `subscribe`, a comma
//! separated list; `queue` names the queue group, the workload by default)
//! reach the workload's exported `trellis:messaging/handler` over wRPC.
//!
//! Links (see the SDK) say which workloads subscribe to what. Every replica of
//! this provider subscribes in the same queue group, and the workload's
//! replicas share its wRPC queue group, so each message is handled once.
//! Core NATS is at most once: a message whose handler fails is logged, not
//! redelivered (JetStream consumers are for that).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::HeaderMap;
use futures::{Stream, StreamExt as _};
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use trellis_provider_sdk::LinkChange;
use trellis_provider_sdk::lattice::lean::LeanClient;
use trellis_provider_sdk::lattice::{Link, Subjects, headers, trace};

use crate::bindings::trellis::messaging::{handler, types};
use crate::subjects::Granted;

/// How long a handler may take with one message.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages of one subscription being handled at once; the next waits for a
/// place (and NATS buffers, then drops as a slow consumer), instead of a task
/// per message without limit.
const IN_FLIGHT: usize = 256;

/// One subscription: a workload's subject in a queue group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Subscription {
    workload: String,
    subject: String,
    queue: String,
}

/// The subscriptions `link` asks for; subjects a component may not receive
/// are logged and skipped.
fn subscriptions(link: &Link, granted: &Granted) -> HashSet<Subscription> {
    let mut wanted = HashSet::new();
    for binding in &link.bindings {
        let Some(subjects) = binding.config.get("subscribe") else {
            continue;
        };
        // A workload's queue groups are its own: `queue` names one of them.
        let queue = match binding.config.get("queue") {
            Some(queue) => format!("{}.{queue}", link.workload),
            None => link.workload.clone(),
        };
        for subject in subjects.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let refused =
                crate::subjects::refuse_subscription(subject).or_else(|| granted.refuse(subject));
            if let Some(why) = refused {
                tracing::warn!(workload = %link.workload, %subject, "not subscribing: {why}");
                continue;
            }
            wanted.insert(Subscription {
                workload: link.workload.clone(),
                subject: subject.to_string(),
                queue: queue.clone(),
            });
        }
    }
    wanted
}

/// Keeps one subscription task per subscription some link asks for, until
/// no link does.
pub async fn run(
    nats: async_nats::Client,
    subjects: Subjects,
    granted: Granted,
    links: impl Stream<Item = LinkChange>,
) {
    let mut by_link: HashMap<String, HashSet<Subscription>> = HashMap::new();
    let mut running: HashMap<Subscription, (usize, JoinHandle<()>)> = HashMap::new();
    let mut links = std::pin::pin!(links);
    while let Some(change) = links.next().await {
        let (key, wanted) = match change {
            LinkChange::Put(link) => (link.key(), subscriptions(&link, &granted)),
            LinkChange::Removed(key) => (key, HashSet::new()),
        };
        let had = by_link.remove(&key).unwrap_or_default();
        for gone in had.difference(&wanted) {
            if let Some((users, task)) = running.get_mut(gone) {
                *users -= 1;
                if *users == 0 {
                    task.abort();
                    running.remove(gone);
                    tracing::info!(workload = %gone.workload, subject = %gone.subject, "unsubscribed");
                }
            }
        }
        for new in wanted.difference(&had) {
            match running.get_mut(new) {
                Some((users, _)) => *users += 1,
                None => {
                    let task = tokio::spawn(deliver(nats.clone(), subjects.clone(), new.clone()));
                    running.insert(new.clone(), (1, task));
                }
            }
        }
        if !wanted.is_empty() {
            by_link.insert(key, wanted);
        }
    }
}

/// Subscribes and hands each message to the workload's handler.
async fn deliver(nats: async_nats::Client, subjects: Subjects, to: Subscription) {
    let prefix = subjects.workload(&to.workload);
    // Trellis hosts serve exports over trellis-rr/1: one request per message.
    let wrpc = match wrpc_transport_nats::Client::new(nats.clone(), prefix.as_str(), None).await {
        Ok(client) => LeanClient::new(nats.clone(), &prefix, client, true),
        Err(e) => {
            tracing::warn!(workload = %to.workload, error = format!("{e:#}"), "cannot reach the workload");
            return;
        }
    };
    let mut messages = match nats
        .queue_subscribe(to.subject.clone(), to.queue.clone())
        .await
    {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(workload = %to.workload, subject = %to.subject, error = %e, "cannot subscribe");
            return;
        }
    };
    tracing::info!(workload = %to.workload, subject = %to.subject, queue = %to.queue, "subscribed");
    let mut identity = HeaderMap::new();
    identity.insert(headers::WORKLOAD, "provider:messaging");
    identity.insert(headers::COMPONENT, "delivery");
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    while let Some(message) = messages.next().await {
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        let (nats, wrpc, identity, to) = (nats.clone(), wrpc.clone(), identity.clone(), to.clone());
        tokio::spawn(async move {
            let _place = place;
            let reply = message.reply.clone();
            let delivered = types::Message {
                subject: message.subject.to_string(),
                body: message.payload,
                reply_to: reply.as_ref().map(|r| r.to_string()),
            };
            let span =
                trace::messaging_span("process", &delivered.subject, message.headers.as_ref());
            let call = handler::handle_message(&wrpc, Some(identity), &delivered).instrument(span);
            match tokio::time::timeout(HANDLER_TIMEOUT, call).await {
                Ok(Ok(Ok(Some(answer)))) => match reply {
                    Some(reply) if crate::subjects::may_answer(&reply) => {
                        let _ = nats.publish(reply, answer).await;
                    }
                    Some(reply) => {
                        tracing::warn!(workload = %to.workload, %reply, "not answering onto a reserved subject");
                    }
                    None => {}
                },
                Ok(Ok(Ok(None))) => {}
                Ok(Ok(Err(why))) => {
                    tracing::warn!(workload = %to.workload, subject = %delivered.subject, %why, "the handler failed a message");
                }
                Ok(Err(e)) => {
                    tracing::warn!(workload = %to.workload, subject = %delivered.subject, error = format!("{e:#}"), "cannot deliver a message");
                }
                Err(_) => {
                    tracing::warn!(workload = %to.workload, subject = %delivered.subject, "the handler did not answer within {HANDLER_TIMEOUT:?}");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_provider_sdk::lattice::LinkedBinding;

    #[test]
    fn links_ask_for_their_subscribe_config() {
        let binding = |subscribe: &str| LinkedBinding {
            component: "app".into(),
            import: "trellis:messaging".into(),
            config: [("subscribe".to_string(), subscribe.to_string())].into(),
        };
        let link = Link {
            provider: "messaging".into(),
            workload: "shop".into(),
            host: "h1".into(),
            bindings: vec![
                binding("orders.*, billing.>"),
                binding("trellis.x,$JS.API.X,>,*.>"),
            ],
        };
        let mut got: Vec<String> = subscriptions(&link, &Granted::default())
            .into_iter()
            .map(|s| format!("{} {} {}", s.workload, s.subject, s.queue))
            .collect();
        got.sort();
        assert_eq!(got, ["shop billing.> shop", "shop orders.* shop"]);
    }
}
