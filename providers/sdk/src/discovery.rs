//! The provider as a NATS micro service: each replica answers `$SRV.PING`,
//! `$SRV.INFO` and `$SRV.STATS` itself (not in a queue group), listing the
//! functions it serves as endpoints without subscribing to them a second
//! time, and counting their calls for `STATS`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use trellis_lattice::ProviderInfo;
use trellis_lattice::lean::Served;
use trellis_lattice::micro::{self, EndpointInfo, EndpointStats, Verb};

/// The longest `last_error` kept: a failure's message, cut.
const MAX_LAST_ERROR: usize = 256;

#[derive(Default, Clone)]
struct Counters {
    requests: u64,
    errors: u64,
    last_error: String,
    busy: Duration,
}

/// What a replica says about itself.
pub(crate) struct Discovery {
    info: ProviderInfo,
    lattice: String,
    description: String,
    started: SystemTime,
    endpoints: Vec<(Served, EndpointInfo)>,
    counters: Mutex<HashMap<(String, String), Counters>>,
}

impl Discovery {
    pub(crate) fn new(
        info: ProviderInfo,
        lattice: &str,
        description: &str,
        group: &str,
        served: Vec<Served>,
    ) -> Self {
        let endpoints = served
            .into_iter()
            .map(|served| {
                let mut metadata = std::collections::BTreeMap::from([
                    ("trellis.instance".to_string(), served.instance.clone()),
                    ("trellis.function".to_string(), served.func.clone()),
                    (
                        "trellis.wrpc_subject".to_string(),
                        served.wrpc_subject.clone(),
                    ),
                ]);
                if let Some(lean) = &served.lean_subject {
                    metadata.insert("trellis.rr_subject".to_string(), lean.clone());
                }
                let endpoint = EndpointInfo {
                    name: micro::endpoint_name(&served.instance, &served.func),
                    subject: served
                        .lean_subject
                        .clone()
                        .unwrap_or_else(|| served.wrpc_subject.clone()),
                    queue_group: group.to_string(),
                    metadata,
                };
                (served, endpoint)
            })
            .collect();
        Discovery {
            info,
            lattice: lattice.to_string(),
            description: description.to_string(),
            started: SystemTime::now(),
            endpoints,
            counters: Mutex::default(),
        }
    }

    /// Subscribes to every subject this replica answers on.
    pub(crate) async fn subscribe(
        &self,
        nats: &async_nats::Client,
    ) -> Result<futures::stream::SelectAll<async_nats::Subscriber>, async_nats::SubscribeError>
    {
        let mut all = futures::stream::SelectAll::new();
        for verb in [Verb::Ping, Verb::Info, Verb::Stats] {
            for subject in verb.served(&self.info.name, &self.info.instance) {
                all.push(nats.subscribe(subject).await?);
            }
        }
        Ok(all)
    }

    /// Counts one call of `instance.func` that took `took`.
    pub(crate) fn served(&self, instance: &str, func: &str, took: Duration, error: Option<&str>) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let entry = counters
            .entry((instance.to_string(), func.to_string()))
            .or_default();
        entry.requests += 1;
        entry.busy += took;
        if let Some(error) = error {
            entry.errors += 1;
            entry.last_error = error.chars().take(MAX_LAST_ERROR).collect();
        }
    }

    /// The answer to a question on `subject`, if it is one of ours.
    pub(crate) fn answer(&self, subject: &str) -> Option<Vec<u8>> {
        let metadata = self.info.micro_metadata(&self.lattice);
        let json = match Verb::of(subject)? {
            Verb::Ping => serde_json::to_vec(&micro::Ping {
                kind: micro::kinds::PING.into(),
                name: self.info.name.clone(),
                id: self.info.instance.clone(),
                version: self.info.version.clone(),
                metadata,
            }),
            Verb::Info => serde_json::to_vec(&micro::Info {
                kind: micro::kinds::INFO.into(),
                name: self.info.name.clone(),
                id: self.info.instance.clone(),
                version: self.info.version.clone(),
                description: self.description.clone(),
                metadata,
                endpoints: self.endpoints.iter().map(|(_, e)| e.clone()).collect(),
            }),
            Verb::Stats => serde_json::to_vec(&micro::Stats {
                kind: micro::kinds::STATS.into(),
                name: self.info.name.clone(),
                id: self.info.instance.clone(),
                version: self.info.version.clone(),
                started: rfc3339(self.started),
                metadata,
                endpoints: self.endpoint_stats(),
            }),
        };
        json.ok()
    }

    fn endpoint_stats(&self) -> Vec<EndpointStats> {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        self.endpoints
            .iter()
            .map(|(served, endpoint)| {
                // wRPC names methods `bucket.get`; the runner may see `[method]bucket.get`.
                let count = counters
                    .iter()
                    .filter(|((instance, func), _)| {
                        *instance == served.instance && unprefixed(func) == served.func
                    })
                    .fold(Counters::default(), |mut sum, (_, c)| {
                        sum.requests += c.requests;
                        sum.errors += c.errors;
                        sum.busy += c.busy;
                        if !c.last_error.is_empty() {
                            sum.last_error.clone_from(&c.last_error);
                        }
                        sum
                    });
                let nanos = u64::try_from(count.busy.as_nanos()).unwrap_or(u64::MAX);
                EndpointStats {
                    name: endpoint.name.clone(),
                    subject: endpoint.subject.clone(),
                    queue_group: endpoint.queue_group.clone(),
                    num_requests: count.requests,
                    num_errors: count.errors,
                    last_error: count.last_error,
                    processing_time: nanos,
                    average_processing_time: nanos.checked_div(count.requests).unwrap_or(0),
                }
            })
            .collect()
    }
}

fn unprefixed(func: &str) -> &str {
    ["[method]", "[static]", "[constructor]"]
        .iter()
        .find_map(|prefix| func.strip_prefix(prefix))
        .unwrap_or(func)
}

/// `at` as RFC 3339 in UTC.
fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Answers one question, if it asks one of ours and says where to answer.
pub(crate) async fn respond(
    discovery: &Discovery,
    nats: &async_nats::Client,
    question: async_nats::Message,
) {
    // A question without a reply subject asks nothing.
    let Some(reply) = question.reply else { return };
    if let Some(answer) = discovery.answer(&question.subject) {
        let _ = nats.publish(reply, answer.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery() -> Discovery {
        let info = ProviderInfo {
            name: "keyvalue".into(),
            instance: "i1".into(),
            version: "0.1.0".into(),
            interfaces: vec!["wasi:keyvalue/store@0.2.0-draft".into()],
            uptime_seconds: 0,
            in_flight: 0,
            transports: vec!["trellis-rr/1".into()],
            xkey: None,
        };
        let served = vec![Served {
            instance: "wasi:keyvalue/store@0.2.0-draft".into(),
            func: "bucket.get".into(),
            wrpc_subject: "p.wrpc.0.0.1.wasi:keyvalue/store@0.2.0-draft.bucket.get".into(),
            lean_subject: Some("p.rr.wasi:keyvalue/store@0.2.0-draft.bucket.get".into()),
        }];
        Discovery::new(info, "default", "test", "p", served)
    }

    #[test]
    fn stats_count_each_function_under_either_name() -> Result<(), serde_json::Error> {
        let d = discovery();
        let store = "wasi:keyvalue/store@0.2.0-draft";
        d.served(store, "[method]bucket.get", Duration::from_millis(2), None);
        d.served(
            store,
            "bucket.get",
            Duration::from_millis(4),
            Some("no such bucket"),
        );
        let stats: micro::Stats =
            serde_json::from_slice(&d.answer("$SRV.STATS.keyvalue").unwrap_or_default())?;
        let endpoint = &stats.endpoints[0];
        assert_eq!((endpoint.num_requests, endpoint.num_errors), (2, 1));
        assert_eq!(endpoint.average_processing_time, 3_000_000);
        assert_eq!(endpoint.last_error, "no such bucket");
        assert!(stats.started.ends_with('Z'), "{}", stats.started);
        let info: micro::Info = serde_json::from_slice(&d.answer("$SRV.INFO").unwrap_or_default())?;
        assert_eq!(
            ProviderInfo::from_micro(&info, "default").map(|p| p.transports),
            Some(vec!["trellis-rr/1".to_string()])
        );
        assert_eq!(
            info.endpoints[0].name,
            "wasi_keyvalue_store_0_2_0-draft_bucket_get"
        );
        assert!(d.answer("$SRV.SCHEMA.keyvalue").is_none());
        Ok(())
    }
}
