//! Desired state and status in JetStream KV: what `trellis apply` writes, what the
//! scheduler reconciles toward, and what it reports back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};

use super::SchedulerError;
use sha2::{Digest as _, Sha256};
use trellis_lattice::Subjects;
use trellis_manifest::{ComponentSource, Diagnostic, ManifestError, Workload, yaml};

/// How long a leader's lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// One workload as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The workload's name (the KV key).
    pub name: String,
    /// A digest of the decoded manifest outside its `deploy` block and of every
    /// component's bytes: any change to the workload is a new version (rolled
    /// out); scaling or moving it, or editing a comment, is not.
    pub version: String,
    /// The manifest, as applied.
    pub manifest: String,
    /// Copies to run, each on its own host.
    pub replicas: u32,
    /// Labels a host must have.
    pub selector: BTreeMap<String, String>,
    /// A label key to spread replicas across.
    pub spread: Option<String>,
    /// Place copies elsewhere while their leaf site is silent, instead of
    /// holding them (`deploy.partition: reschedule`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reschedule_on_partition: bool,
    /// The lattice secrets each component may have, as (component, store
    /// key): what the secret store hands out for this workload. Names only.
    #[serde(default)]
    pub secrets: Vec<(String, String)>,
}

impl Desired {
    /// Validates `manifest` (paths resolve against `base`) and makes its desired state.
    pub fn from_manifest(manifest: &str, file: &Path, base: &Path) -> Result<Self, ManifestError> {
        let workload = Workload::from_yaml(manifest, file, base)?;
        let version = version_of(&workload, manifest).map_err(|e| {
            ManifestError::new(
                file,
                vec![Diagnostic::new(Default::default(), e.to_string())],
            )
        })?;
        let secrets = workload
            .components
            .iter()
            .flat_map(|c| {
                c.secrets.iter().filter_map(|s| match &s.source {
                    trellis_manifest::SecretSource::Lattice(key) => {
                        Some((c.name.clone(), key.clone()))
                    }
                    trellis_manifest::SecretSource::Env(_) => None,
                })
            })
            .collect();
        Ok(Desired {
            name: workload.name,
            version,
            manifest: manifest.to_string(),
            replicas: workload.deploy.replicas,
            selector: workload.deploy.selector,
            spread: workload.deploy.spread,
            reschedule_on_partition: workload.deploy.partition
                == trellis_manifest::Partition::Reschedule,
            secrets,
        })
    }

    /// The workload ID of this version on `host`: `<host>:<name>@<version>`.
    pub fn id_on(&self, host: &str) -> String {
        format!("{host}:{}@{}", self.name, self.version)
    }
}

/// The host, name and version a scheduler-made workload ID names.
pub fn parse_id(id: &str) -> Option<(&str, &str, &str)> {
    let (host, rest) = id.split_once(':')?;
    let (name, version) = rest.rsplit_once('@')?;
    Some((host, name, version))
}

/// A workload version: SHA-256 over the decoded manifest without its `deploy`
/// block (comments, quoting and key order do not count) and over the bytes of
/// every local component, so an edit that changes nothing is no rollout and a
/// component rebuilt at the same path is one (a registry or lattice source is
/// in the manifest text as a digest, which `trellis apply` pins). 16 hex
/// digits (64 bits).
fn version_of(workload: &Workload, text: &str) -> Result<String, VersionError> {
    let root = yaml::parse(text).map_err(|e| VersionError::Yaml(e.to_string()))?;
    let mut digest = Sha256::new();
    digest.update(root.canonical(&["deploy"]));
    for component in &workload.components {
        let ComponentSource::File(path) = &component.source else {
            continue;
        };
        let bytes = std::fs::read(path).map_err(|source| VersionError::Component {
            component: component.name.clone(),
            path: path.clone(),
            source,
        })?;
        digest.update(component.name.as_bytes());
        digest.update(Sha256::digest(&bytes));
    }
    let hash = digest.finalize();
    Ok(hash.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Why a workload's version could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The manifest is not YAML (validation says so first; kept for safety).
    #[error("the manifest is not valid YAML: {0}")]
    Yaml(String),
    /// A component file could not be read.
    #[error("cannot read component `{component}` at `{}`: {source}", path.display())]
    Component {
        /// The component.
        component: String,
        /// Its file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One running (or failed) copy of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Its workload ID.
    pub id: String,
    /// The host it is on.
    pub host: String,
    /// The version it runs.
    pub version: String,
    /// `starting`, `running`, `failed` or `unreachable`.
    pub state: String,
    /// For a copy at a leaf site: where, so that a scheduler taking the lease
    /// during a cut still holds it (it may never have heard the site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteCopy>,
}

/// Where a copy at a leaf site runs, as its host last told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCopy {
    /// The site's JetStream domain.
    pub domain: String,
    /// The host's labels (what placement matches).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Since when (Unix seconds) the whole site has been silent, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<u64>,
}

/// What the scheduler last saw of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The workload.
    pub name: String,
    /// The version it should run.
    pub version: String,
    /// Replicas asked for.
    pub desired: u32,
    /// Replicas of `version` that are running.
    pub running: u32,
    /// Every copy on a live host, any version.
    pub replicas: Vec<Replica>,
    /// Why the last start of `version` failed, if one did.
    pub last_error: Option<String>,
}

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new workload.
    Created,
    /// A new version of a known workload.
    Configured,
    /// The same version again.
    Unchanged,
}

/// Refuses to schedule over a read-only copy: at a leaf site the desired
/// state is a mirror of the hub's, and a scheduler there would lead over
/// what it cannot write. Readers (`trellis get`) use the mirror freely.
pub(crate) async fn refuse_mirror(
    nats: &async_nats::Client,
    subjects: &Subjects,
) -> Result<(), SchedulerError> {
    let js = subjects.jetstream(nats.clone());
    let desired = format!("KV_{}", subjects.bucket("desired"));
    if let Ok(mut stream) = js.get_stream(&desired).await
        && let Ok(info) = stream.info().await
        && let Some(origin) = &info.config.mirror
    {
        return Err(SchedulerError::Mirror {
            bucket: subjects.bucket("desired"),
            origin: origin
                .external
                .as_ref()
                .map_or_else(|| origin.name.clone(), |e| e.api_prefix.clone()),
        });
    }
    Ok(())
}

/// The lattice's scheduling buckets.
#[derive(Clone)]
pub struct Store {
    desired: kv::Store,
    status: kv::Store,
    lease: kv::Store,
    /// For the server's `max_payload`, known once connected.
    nats: async_nats::Client,
}

/// How many times an apply retries a compare-and-set that lost a race.
const APPLY_RACES: usize = 16;
/// Room kept for the KV message's headers and subject.
const RECORD_HEADROOM: usize = 1024;

impl Store {
    /// Opens (creating when missing) the buckets of `subjects`' lattice.
    pub async fn open(
        nats: async_nats::Client,
        subjects: &Subjects,
    ) -> Result<Self, SchedulerError> {
        let js = subjects.jetstream(nats.clone());
        let bucket = |what: &str, max_age: Duration| kv::Config {
            bucket: subjects.bucket(what),
            history: 1,
            max_age,
            ..Default::default()
        };
        Ok(Store {
            desired: open_bucket(&js, bucket("desired", Duration::ZERO)).await?,
            status: open_bucket(&js, bucket("status", Duration::ZERO)).await?,
            lease: open_bucket(&js, bucket("scheduler", LEASE_TTL)).await?,
            nats,
        })
    }

    /// Opens the buckets of `subjects`' lattice without making any: a reader
    /// must not leave empty ones behind at a leaf site, where `trellis mirror`
    /// puts the hub's copies under the same names.
    pub async fn open_existing(
        nats: async_nats::Client,
        subjects: &Subjects,
    ) -> Result<Self, SchedulerError> {
        let js = subjects.jetstream(nats.clone());
        let get = async |what: &str| {
            let bucket = subjects.bucket(what);
            js.get_key_value(&bucket)
                .await
                .map_err(|source| SchedulerError::NoState { bucket, source })
        };
        Ok(Store {
            desired: get("desired").await?,
            status: get("status").await?,
            lease: get("scheduler").await?,
            nats,
        })
    }

    /// Records `desired`; applying the same version again changes nothing.
    /// A record larger than the server takes is refused at once; a write
    /// that fails for any reason but a lost race is returned, not retried.
    pub async fn apply(&self, desired: &Desired) -> Result<Applied, SchedulerError> {
        let json = serde_json::to_vec(desired).map_err(SchedulerError::Encode)?;
        for _ in 0..APPLY_RACES {
            let entry = self
                .desired
                .entry(&desired.name)
                .await
                .map_err(kv("entry"))?;
            // Connected now, so the server's limit is known.
            let max = self.nats.server_info().max_payload;
            if json.len() + RECORD_HEADROOM > max {
                return Err(SchedulerError::TooLarge {
                    name: desired.name.clone(),
                    size: json.len(),
                    max: max.saturating_sub(RECORD_HEADROOM),
                });
            }
            match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    let known: Option<Desired> = serde_json::from_slice(&entry.value).ok();
                    if known.as_ref() == Some(desired) {
                        return Ok(Applied::Unchanged);
                    }
                    // Compare-and-set, so concurrent applies of one workload serialise.
                    match self
                        .desired
                        .update(&desired.name, json.clone().into(), entry.revision)
                        .await
                    {
                        Ok(_) => return Ok(Applied::Configured),
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                        Err(e) => return Err(kv("update")(e)),
                    }
                }
                _ => match self
                    .desired
                    .create(&desired.name, json.clone().into())
                    .await
                {
                    Ok(_) => return Ok(Applied::Created),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(e) => return Err(kv("create")(e)),
                },
            }
        }
        Err(SchedulerError::Contended {
            name: desired.name.clone(),
            attempts: APPLY_RACES,
        })
    }

    /// Removes the workload `name`; false if it was not there.
    pub async fn delete(&self, name: &str) -> Result<bool, SchedulerError> {
        let known = self.desired(name).await?.is_some();
        if known {
            self.desired.purge(name).await.map_err(kv("purge"))?;
            let _ = self.status.purge(name).await;
        }
        Ok(known)
    }

    /// The desired state of `name`.
    pub async fn desired(&self, name: &str) -> Result<Option<Desired>, SchedulerError> {
        read(&self.desired, name).await
    }

    /// Every desired workload.
    pub async fn all_desired(&self) -> Result<Vec<Desired>, SchedulerError> {
        read_all(&self.desired).await
    }

    /// The status of `name`.
    pub async fn status(&self, name: &str) -> Result<Option<Status>, SchedulerError> {
        read(&self.status, name).await
    }

    /// Every status.
    pub async fn all_status(&self) -> Result<Vec<Status>, SchedulerError> {
        read_all(&self.status).await
    }

    /// Records `status`.
    pub async fn put_status(&self, status: &Status) -> Result<(), SchedulerError> {
        let json = serde_json::to_vec(status).map_err(SchedulerError::Encode)?;
        self.status
            .put(&status.name, json.into())
            .await
            .map_err(kv("put"))?;
        Ok(())
    }

    /// Removes the status of a workload that is no longer desired.
    pub async fn forget_status(&self, name: &str) {
        let _ = self.status.purge(name).await;
    }

    /// Every desired workload with its KV revision, then (through the returned
    /// watch, started first so nothing is missed) every later change.
    pub async fn follow_desired(
        &self,
    ) -> Result<(BTreeMap<String, (u64, Desired)>, kv::Watch), SchedulerError> {
        let watch = self.desired.watch_all().await.map_err(kv("watch"))?;
        let keys: Vec<String> = match self.desired.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(kv("keys"))?,
            Err(e) => return Err(kv("keys")(e)),
        };
        let mut known = BTreeMap::new();
        for key in keys {
            if let Some(entry) = self.desired.entry(&key).await.map_err(kv("entry"))?
                && entry.operation == kv::Operation::Put
                && let Ok(desired) = serde_json::from_slice::<Desired>(&entry.value)
            {
                known.insert(key, (entry.revision, desired));
            }
        }
        Ok((known, watch))
    }

    pub(crate) fn lease(&self) -> &kv::Store {
        &self.lease
    }
}

async fn open_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, SchedulerError> {
    Ok(trellis_lattice::open_bucket(js, config).await?)
}

async fn read<T: for<'de> Deserialize<'de>>(
    bucket: &kv::Store,
    key: &str,
) -> Result<Option<T>, SchedulerError> {
    let Some(bytes) = bucket.get(key).await.map_err(kv("get"))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| SchedulerError::Record {
            key: key.to_string(),
            source,
        })
}

async fn read_all<T: for<'de> Deserialize<'de>>(
    bucket: &kv::Store,
) -> Result<Vec<T>, SchedulerError> {
    let keys: Vec<String> = match bucket.keys().await {
        Ok(keys) => keys.try_collect().await.map_err(kv("keys"))?,
        Err(e) => return Err(kv("keys")(e)),
    };
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(value) = read(bucket, &key).await? {
            out.push(value);
        }
    }
    Ok(out)
}

/// Wraps a failure of the KV operation `op`.
fn kv<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
) -> impl FnOnce(E) -> SchedulerError {
    move |e| SchedulerError::Kv {
        op,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_host_workload_and_version() {
        assert_eq!(
            parse_id("H1:shop@0a1b2c3d"),
            Some(("H1", "shop", "0a1b2c3d"))
        );
        assert_eq!(parse_id("H1:shop"), None);
    }

    /// A manifest of one component at `component`, with `extra` appended.
    fn desired(dir: &Path, extra: &str) -> Result<Desired, ManifestError> {
        let text = format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: shop\ncomponents:\n  web:\n    source: web.wat\n{extra}"
        );
        Desired::from_manifest(&text, &dir.join("shop.yaml"), dir)
    }

    #[test]
    fn versions_follow_content_not_text() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("trellis-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("web.wat"), "(component)")?;
        let base = desired(&dir, "")?.version;
        assert_eq!(base.len(), 16);
        // Comments, quoting, key order and the deploy block are not a new version.
        let same = ["# a comment\n", "deploy:\n  replicas: 3\n"];
        for extra in same {
            assert_eq!(desired(&dir, extra)?.version, base, "{extra:?}");
        }
        let reordered = Desired::from_manifest(
            "name: \"shop\"  # quoted\nkind: Workload\napiVersion: trellis.dev/v1alpha1\ncomponents: {web: {source: web.wat}}\n",
            &dir.join("shop.yaml"),
            &dir,
        )?;
        assert_eq!(reordered.version, base);
        // A real change is.
        assert_ne!(desired(&dir, "    config: {a: b}\n")?.version, base);
        // So is a component rebuilt at the same path.
        std::fs::write(dir.join("web.wat"), "(component (core module))")?;
        assert_ne!(desired(&dir, "")?.version, base);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
