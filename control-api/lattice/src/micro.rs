//! Provider discovery as NATS micro services (ADR-32): every replica answers
//! `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (each for all services, by name,
//! and by name and ID), so `nats micro ls|info|stats` sees providers, and
//! hosts find them the same way.
//!
//! `$SRV` is shared by every lattice on a server: a provider's lattice, its
//! interfaces and its transports are in the service's metadata, and readers
//! keep only answers of their own lattice ([`ProviderInfo::from_micro`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::ProviderInfo;

/// The subject prefix of the micro services API.
pub const API: &str = "$SRV";

/// The `type` of each kind of answer.
pub mod kinds {
    /// A `$SRV.PING` answer.
    pub const PING: &str = "io.nats.micro.v1.ping_response";
    /// A `$SRV.INFO` answer.
    pub const INFO: &str = "io.nats.micro.v1.info_response";
    /// A `$SRV.STATS` answer.
    pub const STATS: &str = "io.nats.micro.v1.stats_response";
}

/// The metadata keys a Trellis provider announces.
pub mod metadata {
    /// The lattice it serves.
    pub const LATTICE: &str = "trellis.lattice";
    /// Its versioned interfaces, comma-separated.
    pub const INTERFACES: &str = "trellis.interfaces";
    /// The transports it takes, comma-separated (`wrpc.0.0.1`, `trellis-rr/1`).
    pub const TRANSPORTS: &str = "trellis.transports";
    /// The xkey public key secrets in binding config are sealed to.
    pub const XKEY: &str = "trellis.xkey";
}

/// The largest answer read; a bigger one is skipped.
pub const MAX_ANSWER: usize = 64 << 10;
/// The most answers one gathering keeps.
pub const MAX_ANSWERS: usize = 4096;

/// What is asked of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Is it there.
    Ping,
    /// What it is and what it serves.
    Info,
    /// How its endpoints are doing.
    Stats,
}

impl Verb {
    /// The token in the subject.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Ping => "PING",
            Verb::Info => "INFO",
            Verb::Stats => "STATS",
        }
    }

    /// Where the question goes: every service, every service called `name`,
    /// or one instance.
    pub fn subject(self, name: Option<&str>, id: Option<&str>) -> String {
        match (name, id) {
            (None, _) => format!("{API}.{}", self.as_str()),
            (Some(name), None) => format!("{API}.{}.{name}", self.as_str()),
            (Some(name), Some(id)) => format!("{API}.{}.{name}.{id}", self.as_str()),
        }
    }

    /// The three subjects a service `name` with instance `id` answers for this verb.
    pub fn served(self, name: &str, id: &str) -> [String; 3] {
        [
            self.subject(None, None),
            self.subject(Some(name), None),
            self.subject(Some(name), Some(id)),
        ]
    }

    /// The verb a subject a service answers asks, if it is one.
    pub fn of(subject: &str) -> Option<Verb> {
        let rest = subject.strip_prefix(API)?.strip_prefix('.')?;
        let verb = rest.split('.').next()?;
        [Verb::Ping, Verb::Info, Verb::Stats]
            .into_iter()
            .find(|v| v.as_str() == verb)
    }
}

/// An answer to `$SRV.PING`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// [`kinds::PING`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The service (provider) name.
    pub name: String,
    /// The instance (replica) ID.
    pub id: String,
    /// Its version.
    pub version: String,
    /// Free-form metadata.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// An answer to `$SRV.INFO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// [`kinds::INFO`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The service (provider) name.
    pub name: String,
    /// The instance (replica) ID.
    pub id: String,
    /// Its version.
    pub version: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Free-form metadata: for a Trellis provider, the [`metadata`] keys.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
    /// What it serves.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub endpoints: Vec<EndpointInfo>,
}

/// One endpoint in an [`Info`]: for a provider, one function it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// `A-Z a-z 0-9 - _` only, as ADR-32 asks: the function, sanitized.
    pub name: String,
    /// Where it takes requests.
    pub subject: String,
    /// The queue group its replicas share.
    #[serde(default)]
    pub queue_group: String,
    /// The exact interface and function, and the subject of each transport.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// An answer to `$SRV.STATS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// [`kinds::STATS`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The service (provider) name.
    pub name: String,
    /// The instance (replica) ID.
    pub id: String,
    /// Its version.
    pub version: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// Free-form metadata.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Per endpoint.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub endpoints: Vec<EndpointStats>,
}

/// One endpoint's counters in a [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// As in [`EndpointInfo::name`].
    pub name: String,
    /// As in [`EndpointInfo::subject`].
    pub subject: String,
    /// As in [`EndpointInfo::queue_group`].
    #[serde(default)]
    pub queue_group: String,
    /// Calls answered or failed.
    pub num_requests: u64,
    /// Calls failed.
    pub num_errors: u64,
    /// The last failure's message, empty if none.
    #[serde(default)]
    pub last_error: String,
    /// Time spent in calls, in nanoseconds.
    pub processing_time: u64,
    /// `processing_time / num_requests`, in nanoseconds.
    pub average_processing_time: u64,
}

/// Reads `null` as an empty collection (Go services send `null`).
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An ADR-32 endpoint name for `instance.func`: every other character becomes `_`.
pub fn endpoint_name(instance: &str, func: &str) -> String {
    format!("{instance}.{func}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Splits a comma-separated metadata value.
fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl ProviderInfo {
    /// The metadata a provider of `lattice` announces this info with.
    pub fn micro_metadata(&self, lattice: &str) -> BTreeMap<String, String> {
        let mut transports = vec![wrpc_transport_nats::PROTOCOL.to_string()];
        transports.extend(self.transports.iter().cloned());
        let mut metadata = BTreeMap::from([
            (metadata::LATTICE.to_string(), lattice.to_string()),
            (metadata::INTERFACES.to_string(), self.interfaces.join(",")),
            (metadata::TRANSPORTS.to_string(), transports.join(",")),
        ]);
        if let Some(xkey) = &self.xkey {
            metadata.insert(metadata::XKEY.to_string(), xkey.clone());
        }
        metadata
    }

    /// The provider an `$SRV.INFO` answer describes, if it is a Trellis
    /// provider of `lattice` (anything else on `$SRV` is someone else's).
    pub fn from_micro(info: &Info, lattice: &str) -> Option<ProviderInfo> {
        let ours = info.kind == kinds::INFO
            && info.metadata.get(metadata::LATTICE).map(String::as_str) == Some(lattice)
            && crate::check_name(crate::NameKind::Provider, &info.name).is_ok();
        if !ours {
            return None;
        }
        Some(ProviderInfo {
            name: info.name.clone(),
            instance: info.id.clone(),
            version: info.version.clone(),
            interfaces: list(info.metadata.get(metadata::INTERFACES)),
            uptime_seconds: 0,
            in_flight: 0,
            transports: list(info.metadata.get(metadata::TRANSPORTS))
                .into_iter()
                .filter(|t| t != wrpc_transport_nats::PROTOCOL)
                .collect(),
            xkey: info.metadata.get(metadata::XKEY).cloned(),
        })
    }
}

/// Why a gathering failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The reply inbox could not be subscribed to.
    #[error("cannot subscribe to a reply inbox: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    /// The question could not be sent.
    #[error("cannot ask `{subject}`: {source}")]
    Publish {
        /// What was asked.
        subject: String,
        /// Why.
        source: async_nats::PublishError,
    },
}

/// Asks `subject` and gathers the answers that `keep` turns into values,
/// for `window`, or until the first kept one if `first`. Answers too large
/// or not JSON of `A` are skipped; a server with no responders ends it at once.
pub async fn gather<A, T>(
    client: &async_nats::Client,
    subject: String,
    window: Duration,
    first: bool,
    keep: impl Fn(A) -> Option<T>,
) -> Result<Vec<T>, DiscoveryError>
where
    A: for<'de> Deserialize<'de>,
{
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(subject.clone(), inbox, "".into())
        .await
        .map_err(|source| DiscoveryError::Publish { subject, source })?;
    let mut kept = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await {
        if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            break;
        }
        if message.payload.len() > MAX_ANSWER {
            continue;
        }
        let Some(value) = serde_json::from_slice::<A>(&message.payload)
            .ok()
            .and_then(&keep)
        else {
            continue;
        };
        kept.push(value);
        if first || kept.len() >= MAX_ANSWERS {
            break;
        }
    }
    let _ = answers.unsubscribe().await;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(lattice: &str) -> ProviderInfo {
        ProviderInfo {
            name: "keyvalue".into(),
            instance: "abc".into(),
            version: "0.1.0".into(),
            interfaces: vec!["wasi:keyvalue/store@0.2.0-draft".into()],
            uptime_seconds: 0,
            in_flight: 0,
            transports: vec!["trellis-rr/1".into()],
            xkey: Some(lattice.into()),
        }
    }

    fn announced(provider: &ProviderInfo, lattice: &str) -> Info {
        Info {
            kind: kinds::INFO.into(),
            name: provider.name.clone(),
            id: provider.instance.clone(),
            version: provider.version.clone(),
            description: String::new(),
            metadata: provider.micro_metadata(lattice),
            endpoints: vec![],
        }
    }

    #[test]
    fn a_provider_reads_back_from_its_announcement_in_its_lattice_only() {
        let provider = info("XKEY");
        let micro = announced(&provider, "edge");
        assert_eq!(
            micro.metadata[metadata::TRANSPORTS],
            "wrpc.0.0.1,trellis-rr/1"
        );
        assert_eq!(ProviderInfo::from_micro(&micro, "edge"), Some(provider));
        assert_eq!(ProviderInfo::from_micro(&micro, "default"), None);
        let mut foreign = micro.clone();
        foreign.metadata.remove(metadata::LATTICE);
        assert_eq!(ProviderInfo::from_micro(&foreign, "edge"), None);
        let mut renamed = micro;
        renamed.name = "bad.name".into();
        assert_eq!(ProviderInfo::from_micro(&renamed, "edge"), None);
    }

    #[test]
    fn answers_from_other_languages_parse() {
        // As a Go service writes it: nulls, unknown fields.
        let text = r#"{"type":"io.nats.micro.v1.info_response","name":"kv","id":"1",
            "version":"1.0.0","description":"","metadata":null,"endpoints":null,"extra":1}"#;
        let info: Info = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(info.metadata.is_empty() && info.endpoints.is_empty());
    }

    #[test]
    fn subjects_and_names_follow_adr_32() {
        assert_eq!(Verb::Info.subject(None, None), "$SRV.INFO");
        assert_eq!(
            Verb::Stats.served("kv", "id1"),
            ["$SRV.STATS", "$SRV.STATS.kv", "$SRV.STATS.kv.id1"]
        );
        assert_eq!(Verb::of("$SRV.PING.kv"), Some(Verb::Ping));
        assert_eq!(Verb::of("$SRV.SCHEMA.kv"), None);
        assert_eq!(Verb::of("trellis.x"), None);
        assert_eq!(
            endpoint_name("wasi:keyvalue/store@0.2.0-draft", "get"),
            "wasi_keyvalue_store_0_2_0-draft_get"
        );
    }
}
