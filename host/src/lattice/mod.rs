//! The host's membership of a lattice: its NATS connection, one wRPC client per
//! provider or workload its bindings name, the checks made before a workload
//! starts, and its heartbeat.

mod calls;
mod heartbeat;
mod links;
mod routed;

use std::collections::HashMap;
use std::time::Duration;

use trellis_lattice::lean::LeanClient;
use trellis_lattice::{ProviderInfo, Subjects};

pub use calls::{CallError, CallTarget, DEFAULT_CALL_TIMEOUT};
pub use heartbeat::{HEARTBEAT_INTERVAL, publish_heartbeats};
pub use links::Links;
pub use routed::{Guarded, RoutedInvoke};

/// How long a provider has to answer its info request.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a lattice operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LatticeError {
    /// No replica of the provider in this lattice answered discovery.
    #[error(
        "provider `{provider}` is not running on lattice `{lattice}` (no replica of this lattice answered on `{subject}`; a wRPC server that announces nothing is bound with `announced: false`)"
    )]
    ProviderMissing {
        /// The provider name.
        provider: String,
        /// The lattice.
        lattice: String,
        /// The subject asked.
        subject: String,
    },
    /// Discovery could not be asked at all.
    #[error("cannot discover providers: {0}")]
    Discovery(#[from] trellis_lattice::micro::DiscoveryError),
    /// Setting up a wRPC client or server on NATS failed.
    #[error("cannot {what} over wRPC: {source:#}")]
    Wrpc {
        /// What was being set up ("serve the control API", …).
        what: &'static str,
        /// What wRPC said (the wRPC traits speak anyhow).
        source: anyhow::Error,
    },
    /// A NATS request failed.
    #[error("NATS request failed: {0}")]
    Request(#[from] async_nats::RequestError),
}

/// A host's lattice connection.
pub struct Lattice {
    nats: async_nats::Client,
    name: String,
    subjects: Subjects,
    clients: tokio::sync::Mutex<HashMap<String, wrpc_transport_nats::Client>>,
    links: Links,
    identity: Option<HostIdentity>,
}

/// Who this host is on the lattice, for asking the secret store: its ID (the
/// subject it may ask on) and its xkey (what the answers are sealed to).
pub struct HostIdentity {
    /// The host's ID.
    pub id: String,
    /// The host's xkey.
    pub xkey: nkeys::XKey,
}

impl Lattice {
    /// The lattice of `subjects` over `nats`.
    pub fn new(nats: async_nats::Client, subjects: Subjects) -> Self {
        let instance = nats
            .new_inbox()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        Lattice {
            links: Links::new(nats.clone(), &subjects, instance),
            nats,
            name: subjects.lattice().to_string(),
            subjects,
            clients: Default::default(),
            identity: None,
        }
    }

    /// This lattice, joined as `identity`: workloads here may read lattice secrets.
    pub fn with_identity(mut self, identity: HostIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Asks the secret store for `key`, which `component` of `workload` may
    /// read; the answer comes sealed to this host's xkey.
    pub async fn secret(
        &self,
        workload: &str,
        component: &str,
        key: &str,
    ) -> Result<String, String> {
        let Some(identity) = &self.identity else {
            return Err(format!(
                "secret `{key}` comes from the lattice's store, and this host has no xkey \
                 (start it with --xkey, or --nats-nkey with the .xk file beside it)"
            ));
        };
        trellis_lattice::fetch_secret(
            &self.nats,
            &self.subjects,
            &identity.id,
            &identity.xkey,
            workload,
            component,
            key,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// The lattice's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// This host's link entries.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The wRPC client that calls under `prefix`, made once and shared.
    pub async fn client(&self, prefix: &str) -> Result<wrpc_transport_nats::Client, LatticeError> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(prefix) {
            return Ok(client.clone());
        }
        let client = wrpc_transport_nats::Client::new(self.nats.clone(), prefix, None)
            .await
            .map_err(|source| LatticeError::Wrpc {
                what: "make a client",
                source,
            })?;
        clients.insert(prefix.to_string(), client.clone());
        Ok(client)
    }

    /// A client for calls under `prefix`, lean (`trellis-rr/1`) if `lean`.
    pub async fn lean_client(&self, prefix: &str, lean: bool) -> Result<LeanClient, LatticeError> {
        let standard = self.client(prefix).await?;
        Ok(LeanClient::new(self.nats.clone(), prefix, standard, lean))
    }

    /// Asks provider `name` what it serves, through NATS micro discovery
    /// (`$SRV.INFO.<name>`): the first replica of this lattice to answer.
    pub async fn provider_info(&self, name: &str) -> Result<ProviderInfo, LatticeError> {
        use trellis_lattice::micro;
        let subject = micro::Verb::Info.subject(Some(name), None);
        let found = micro::gather(
            &self.nats,
            subject.clone(),
            INFO_TIMEOUT,
            true,
            |info: micro::Info| {
                (info.name == name)
                    .then(|| ProviderInfo::from_micro(&info, &self.name))
                    .flatten()
            },
        )
        .await?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| LatticeError::ProviderMissing {
                provider: name.to_string(),
                lattice: self.name.clone(),
                subject,
            })
    }
}
