//! What each role may publish and subscribe to, as nats-server allow lists.
//!
//! Everything is allowed by name: nothing a role does not need, no wildcard
//! wider than the subjects it serves. JetStream streams are named exactly
//! (a permission cannot match a prefix of a token), which is why a provider
//! keeps its data in one bucket and one object store named after it.
//!
//! JetStream API calls are allowed one by one, verb and stream named, never
//! as `*.*.{stream}`: a wildcard in the verb's place also matches calls on
//! *another* stream whose consumer happens to carry this stream's name.
//! Processes reach JetStream in their own server's domain (`$JS.API`, which
//! never crosses a leaf link between domains); only the operator may also
//! call the hub's domain, for `trellis mirror` at a site.

use serde::Serialize;
use trellis_lattice::micro::Verb;
use trellis_lattice::{
    ARTIFACTS_BUCKET, LINKS_BUCKET, Role, SECRETS_BUCKET, SIGNATURES_BUCKET, Subjects,
};

/// The export a provider with application subjects delivers messages to.
const DELIVERY_HANDLER: &str = "trellis:messaging/handler@0.1.0";

/// The lattice buckets the scheduler and the operator keep (see `trellis-scheduler`).
const CONTROL_BUCKETS: [&str; 3] = ["desired", "status", "scheduler"];

/// One identity's allow lists, as nats-server reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may answer the requests it receives (once each, on their
    /// reply subject): the messaging provider relays components' replies to
    /// applications whose inboxes nobody can list in advance.
    pub allow_responses: bool,
}

/// What an operator grants a provider beyond its own subjects and data: the
/// messaging provider's application subjects and the streams it may consume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ProviderGrants {
    /// Application subjects (patterns) its components may publish, request
    /// and subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// JetStream streams its components may consume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<String>,
}

impl Permissions {
    /// The permissions of `role` in the lattice of `subjects`.
    pub fn of(subjects: &Subjects, role: &Role, grants: &ProviderGrants) -> Permissions {
        let mut p = Permissions::default();
        p.subscribe.push(format!("{}.>", subjects.inbox(role)));
        if !matches!(role, Role::Admin(_)) {
            // Account information (limits, usage), which clients read first.
            p.js_api("INFO");
        }
        match role {
            Role::Admin(_) => {
                p.publish = vec![">".into()];
                p.subscribe = vec![">".into()];
            }
            Role::Operator => {
                p.control_hosts(subjects);
                // `trellis get providers` and the dashboard: NATS micro discovery.
                p.publish.extend([
                    Verb::Info.subject(None, None),
                    Verb::Stats.subject(None, None),
                ]);
                p.subscribe
                    .push(format!("trellis.{}.evt.>", subjects.lattice()));
                for bucket in CONTROL_BUCKETS {
                    p.kv_owner(&subjects.bucket(bucket));
                }
                // `trellis secret put`: the store's key, and writes (sealed) only.
                p.publish.push(subjects.secret_store_key());
                p.publish
                    .push(format!("$KV.{}.>", subjects.bucket(SECRETS_BUCKET)));
                // `trellis push` and `trellis sign`.
                let artifacts = subjects.bucket(ARTIFACTS_BUCKET);
                p.stream_owner(&format!("OBJ_{artifacts}"));
                p.publish.push(format!("$O.{artifacts}.>"));
                p.kv_owner(&subjects.bucket(SIGNATURES_BUCKET));
                if let Some(hub) = subjects.domain() {
                    // `trellis mirror` makes the hub's artifact store and
                    // signatures (if missing) before mirroring them.
                    let api = format!("$JS.{hub}.API");
                    p.publish.push(format!("{api}.INFO"));
                    for stream in [
                        format!("OBJ_{artifacts}"),
                        format!("KV_{}", subjects.bucket(SIGNATURES_BUCKET)),
                    ] {
                        for verb in ["CREATE", "INFO"] {
                            p.publish.push(format!("{api}.STREAM.{verb}.{stream}"));
                        }
                    }
                }
            }
            Role::Scheduler => {
                p.control_hosts(subjects);
                p.subscribe.push(subjects.host_heartbeats());
                for bucket in CONTROL_BUCKETS {
                    p.kv_owner(&subjects.bucket(bucket));
                }
                // The secret store: its subjects, its bucket, answers to hosts
                // (already allowed) and to the operator.
                p.subscribe.push(subjects.secret_store());
                p.publish.push(subjects.inboxes_of("operator"));
                p.kv_owner(&subjects.bucket(SECRETS_BUCKET));
            }
            Role::Host(id) => {
                p.publish.extend([
                    subjects.host_heartbeat(id),
                    subjects.secret_request(id),
                    format!("{}.>", subjects.provider("*")),
                    // Finding a provider by name.
                    Verb::Info.subject(Some("*"), None),
                    format!("{}.>", subjects.workload("*")),
                ]);
                for kind in ["host", "provider", "scheduler", "operator"] {
                    p.publish.push(subjects.inboxes_of(kind));
                }
                p.subscribe.extend([
                    format!("{}.>", subjects.host(id)),
                    format!("{}.>", subjects.workload("*")),
                ]);
                p.kv_owner(&subjects.bucket(LINKS_BUCKET));
                // Components and their signatures: read only.
                p.stream_consumer(&format!("OBJ_{}", subjects.bucket(ARTIFACTS_BUCKET)));
                p.stream_consumer(&format!("KV_{}", subjects.bucket(SIGNATURES_BUCKET)));
            }
            Role::Provider(name) => {
                p.publish.extend([
                    subjects.provider_heartbeat(name),
                    subjects.inboxes_of("host"),
                    subjects.inboxes_of("operator"),
                    // `nats --inbox-prefix _INBOX.<lattice>.admin.<name> micro ls`.
                    subjects.inboxes_of("admin"),
                ]);
                p.subscribe.push(format!("{}.>", subjects.provider(name)));
                // NATS micro discovery: all services, by name, by name and ID.
                for verb in [Verb::Ping, Verb::Info, Verb::Stats] {
                    p.subscribe.extend([
                        verb.subject(None, None),
                        verb.subject(Some(name), None),
                        verb.subject(Some(name), Some("*")),
                    ]);
                }
                let data = subjects.provider_data(name);
                p.kv_owner(&data);
                // Counters (keyvalue atomics): a stream of their own.
                p.stream_owner(&format!("CTR_{data}"));
                p.publish.push(format!("$CTR.{data}.>"));
                p.stream_owner(&format!("OBJ_{data}"));
                p.publish.push(format!("$O.{data}.>"));
                // Links: read, and created by whichever of hosts and providers
                // comes first (with the one config every process uses).
                let links = format!("KV_{}", subjects.bucket(LINKS_BUCKET));
                p.js_api(&format!("STREAM.CREATE.{links}"));
                p.stream_consumer(&links);
                for subject in &grants.subjects {
                    p.publish.push(subject.clone());
                    p.subscribe.push(subject.clone());
                }
                if !grants.subjects.is_empty() {
                    // Components answer applications' requests, whose inboxes
                    // nobody can list in advance (nats-server's response
                    // tracking covers replies elsewhere).
                    p.publish.push("_INBOX.>".into());
                    // Deliveries: the handler export of subscribed workloads, both transports.
                    for transport in ["rr", "wrpc.0.0.1"] {
                        p.publish.push(format!(
                            "{}.{transport}.{DELIVERY_HANDLER}.>",
                            subjects.workload("*")
                        ));
                    }
                }
                for stream in &grants.streams {
                    p.stream_consumer(stream);
                }
                p.allow_responses = !grants.subjects.is_empty();
            }
        }
        p
    }

    /// Calls to any host's control API; results come back to its own inbox,
    /// parameters go to the host's.
    fn control_hosts(&mut self, subjects: &Subjects) {
        self.publish.push(format!("{}.>", subjects.host("*")));
        self.publish.push(subjects.inboxes_of("host"));
    }

    /// Everything on the KV bucket `bucket`: its stream and its keys.
    fn kv_owner(&mut self, bucket: &str) {
        self.stream_owner(&format!("KV_{bucket}"));
        self.publish.push(format!("$KV.{bucket}.>"));
    }

    /// Every JetStream API call on `stream` a bucket's owner makes: create,
    /// update, info, purge, delete, message gets and deletes, and consumers.
    fn stream_owner(&mut self, stream: &str) {
        for verb in ["CREATE", "UPDATE", "INFO", "PURGE", "DELETE"] {
            self.js_api(&format!("STREAM.{verb}.{stream}"));
        }
        self.js_api(&format!("STREAM.MSG.DELETE.{stream}"));
        self.stream_consumer(stream);
    }

    /// Reading `stream` through consumers and direct gets, never changing it.
    fn stream_consumer(&mut self, stream: &str) {
        for call in [
            format!("STREAM.INFO.{stream}"),
            format!("STREAM.MSG.GET.{stream}"),
            format!("DIRECT.GET.{stream}"),
            format!("DIRECT.GET.{stream}.>"),
            // Ephemeral (legacy form) and named consumers, with or without a
            // filter (async-nats makes durable ones this way too); their
            // info, pulls and removal.
            format!("CONSUMER.CREATE.{stream}"),
            format!("CONSUMER.CREATE.{stream}.>"),
            format!("CONSUMER.INFO.{stream}.>"),
            format!("CONSUMER.MSG.NEXT.{stream}.>"),
            format!("CONSUMER.DELETE.{stream}.>"),
        ] {
            self.js_api(&call);
        }
        self.acks(stream);
    }

    /// JetStream API `call` on the connected server's domain.
    fn js_api(&mut self, call: &str) {
        let subject = format!("$JS.API.{call}");
        if !self.publish.contains(&subject) {
            self.publish.push(subject);
        }
    }

    /// Acks and flow control, in both forms of the ack subject (the newer
    /// one carries the domain and the account before the stream).
    fn acks(&mut self, stream: &str) {
        self.publish.extend([
            format!("$JS.ACK.{stream}.>"),
            format!("$JS.ACK.*.*.{stream}.>"),
            format!("$JS.FC.{stream}.>"),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(role: Role) -> Permissions {
        Permissions::of(&Subjects::new("edge"), &role, &ProviderGrants::default())
    }

    #[test]
    fn a_host_serves_and_announces_only_itself() {
        let p = of(Role::Host("HOSTA".into()));
        assert!(
            p.subscribe
                .contains(&"trellis.edge.host.HOSTA.>".to_string())
        );
        assert!(!p.subscribe.iter().any(|s| s.contains("host.*")));
        assert!(
            p.publish
                .contains(&"trellis.edge.evt.host.HOSTA.heartbeat".to_string())
        );
        assert!(
            !p.publish
                .iter()
                .any(|s| s.starts_with("trellis.edge.host."))
        );
        assert_eq!(p.subscribe[0], "_INBOX.edge.host.HOSTA.>");
    }

    #[test]
    fn a_provider_reaches_its_own_data_and_subjects_only() {
        let p = of(Role::Provider("kv".into()));
        assert!(
            p.subscribe
                .contains(&"trellis.edge.provider.kv.>".to_string())
        );
        assert!(
            p.publish
                .iter()
                .filter(|s| s.starts_with("$JS.API.*") || s.starts_with("$JS.*.API.*"))
                .all(|s| s.contains("trellis_edge_data_kv"))
        );
        assert!(!p.publish.iter().any(|s| s.contains("trellis.edge.host")));
        assert!(!p.allow_responses);
    }

    #[test]
    fn hosts_read_artifacts_and_only_the_operator_writes_them() {
        let host = of(Role::Host("HOSTA".into()));
        assert!(
            host.publish
                .contains(&"$JS.API.DIRECT.GET.OBJ_trellis_edge_artifacts.>".to_string())
        );
        assert!(!host.publish.iter().any(|s| s.starts_with("$O.")));
        assert!(
            !host
                .publish
                .iter()
                .any(|s| s.starts_with("$KV.trellis_edge_signatures"))
        );
        let operator = of(Role::Operator);
        assert!(
            operator
                .publish
                .contains(&"$O.trellis_edge_artifacts.>".to_string())
        );
        assert!(
            operator
                .publish
                .contains(&"$KV.trellis_edge_signatures.>".to_string())
        );
        for role in [Role::Scheduler, Role::Provider("kv".into())] {
            assert!(!of(role).publish.iter().any(|s| s.contains("artifacts")));
        }
    }

    #[test]
    fn only_the_control_roles_call_hosts() {
        for role in [Role::Operator, Role::Scheduler] {
            assert!(
                of(role)
                    .publish
                    .contains(&"trellis.edge.host.*.>".to_string())
            );
        }
        assert!(
            !of(Role::Provider("kv".into()))
                .publish
                .iter()
                .any(|s| s.contains(".host.*"))
        );
    }

    #[test]
    fn jetstream_calls_name_their_verb_and_stream() {
        let p = of(Role::Host("HOSTA".into()));
        assert!(
            p.publish
                .contains(&"$JS.API.DIRECT.GET.KV_trellis_edge_signatures.>".to_string())
        );
        // No wildcard stands for a verb or a stream, so no call on another
        // stream matches (`CONSUMER.CREATE.<other>.<this name>` did once).
        for role in [
            Role::Host("HOSTA".into()),
            Role::Provider("kv".into()),
            Role::Operator,
            Role::Scheduler,
        ] {
            for subject in of(role)
                .publish
                .iter()
                .filter(|s| s.starts_with("$JS.API."))
            {
                let head = subject.trim_end_matches(".>");
                assert!(!head.contains('*'), "{subject}");
            }
        }
        // No domain form: processes call their own server's JetStream.
        assert!(!p.publish.iter().any(|s| s.starts_with("$JS.edge.")));
    }

    #[test]
    fn only_the_operator_reaches_the_hub_domain_and_only_for_artifacts() {
        let hub = Subjects::new("edge").with_domain(Some("hub".into()));
        let grants = ProviderGrants::default();
        let operator = Permissions::of(&hub, &Role::Operator, &grants);
        let hub_calls: Vec<&String> = operator
            .publish
            .iter()
            .filter(|s| s.starts_with("$JS.hub."))
            .collect();
        assert!(
            hub_calls
                .contains(&&"$JS.hub.API.STREAM.CREATE.OBJ_trellis_edge_artifacts".to_string())
        );
        assert!(hub_calls.iter().all(|s| s.ends_with("INFO")
            || s.ends_with("OBJ_trellis_edge_artifacts")
            || s.ends_with("KV_trellis_edge_signatures")));
        for role in [
            Role::Host("HOSTA".into()),
            Role::Provider("kv".into()),
            Role::Scheduler,
        ] {
            let p = Permissions::of(&hub, &role, &grants);
            assert!(
                !p.publish.iter().any(|s| s.starts_with("$JS.hub.")),
                "{role:?}"
            );
        }
    }
}
