//! Desired state and status in JetStream KV: what `trellis apply` writes, what the
//! scheduler reconciles toward, and what it reports back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};

use super::SchedulerError;
use crate::lattice::Subjects;
use crate::{ManifestError, Workload};

/// How long a leader's lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// One workload as the user asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The workload's name (the KV key).
    pub name: String,
    /// A digest of the manifest text outside its `deploy` block: any change to the
    /// workload is a new version (rolled out); scaling or moving it is not.
    pub version: String,
    /// The manifest, as applied.
    pub manifest: String,
    /// Copies to run, each on its own host.
    pub replicas: u32,
    /// Labels a host must have.
    pub selector: BTreeMap<String, String>,
    /// A label key to spread replicas across.
    pub spread: Option<String>,
}

impl Desired {
    /// Validates `manifest` (paths resolve against `base`) and makes its desired state.
    pub fn from_manifest(manifest: &str, file: &Path, base: &Path) -> Result<Self, ManifestError> {
        let workload = Workload::from_yaml(manifest, file, base)?;
        Ok(Desired {
            name: workload.name,
            version: version_of(&without_deploy(manifest)),
            manifest: manifest.to_string(),
            replicas: workload.deploy.replicas,
            selector: workload.deploy.selector,
            spread: workload.deploy.spread,
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

/// The manifest text without its top-level `deploy` block (block or flow style).
fn without_deploy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    for line in text.lines() {
        let top_level = line.starts_with(|c: char| !c.is_whitespace() && c != '#');
        if top_level {
            skipping = line.starts_with("deploy:");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// FNV-1a over the manifest text: stable across processes and releases.
fn version_of(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:08x}", hash >> 32)
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
    /// `starting`, `running` or `failed`.
    pub state: String,
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

/// The lattice's scheduling buckets.
#[derive(Clone)]
pub struct Store {
    desired: kv::Store,
    status: kv::Store,
    lease: kv::Store,
}

impl Store {
    /// Opens (creating when missing) the buckets of `subjects`' lattice.
    pub async fn open(
        nats: async_nats::Client,
        subjects: &Subjects,
    ) -> Result<Self, SchedulerError> {
        let js = jetstream::new(nats);
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
        })
    }

    /// Records `desired`; applying the same version again changes nothing.
    pub async fn apply(&self, desired: &Desired) -> Result<Applied, SchedulerError> {
        let json = serde_json::to_vec(desired).map_err(|e| SchedulerError::Data(e.to_string()))?;
        loop {
            match self.desired.entry(&desired.name).await.map_err(kv_error)? {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    let known: Option<Desired> = serde_json::from_slice(&entry.value).ok();
                    if known.as_ref() == Some(desired) {
                        return Ok(Applied::Unchanged);
                    }
                    // Compare-and-set, so concurrent applies of one workload serialise.
                    if self
                        .desired
                        .update(&desired.name, json.clone().into(), entry.revision)
                        .await
                        .is_ok()
                    {
                        return Ok(Applied::Configured);
                    }
                }
                _ => {
                    if self
                        .desired
                        .create(&desired.name, json.clone().into())
                        .await
                        .is_ok()
                    {
                        return Ok(Applied::Created);
                    }
                }
            }
        }
    }

    /// Removes the workload `name`; false if it was not there.
    pub async fn delete(&self, name: &str) -> Result<bool, SchedulerError> {
        let known = self.desired(name).await?.is_some();
        if known {
            self.desired.purge(name).await.map_err(kv_error)?;
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
        let json = serde_json::to_vec(status).map_err(|e| SchedulerError::Data(e.to_string()))?;
        self.status
            .put(&status.name, json.into())
            .await
            .map_err(kv_error)?;
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
        let watch = self.desired.watch_all().await.map_err(kv_error)?;
        let keys: Vec<String> = match self.desired.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(kv_error)?,
            Err(e) => return Err(kv_error(e)),
        };
        let mut known = BTreeMap::new();
        for key in keys {
            if let Some(entry) = self.desired.entry(&key).await.map_err(kv_error)?
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
    crate::lattice::open_bucket(js, config)
        .await
        .map_err(SchedulerError::Nats)
}

async fn read<T: for<'de> Deserialize<'de>>(
    bucket: &kv::Store,
    key: &str,
) -> Result<Option<T>, SchedulerError> {
    let Some(bytes) = bucket.get(key).await.map_err(kv_error)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SchedulerError::Data(format!("`{key}`: {e}")))
}

async fn read_all<T: for<'de> Deserialize<'de>>(
    bucket: &kv::Store,
) -> Result<Vec<T>, SchedulerError> {
    let keys: Vec<String> = match bucket.keys().await {
        Ok(keys) => keys.try_collect().await.map_err(kv_error)?,
        Err(e) => return Err(kv_error(e)),
    };
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(value) = read(bucket, &key).await? {
            out.push(value);
        }
    }
    Ok(out)
}

fn kv_error(e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Nats(e.to_string())
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
        assert_eq!(version_of("a"), version_of("a"));
        assert_ne!(version_of("a"), version_of("b"));
        let a = "name: x\ndeploy:\n  replicas: 1\nroutes: []\n";
        let b = "name: x\ndeploy:\n  replicas: 5\n  spread: zone\nroutes: []\n";
        assert_eq!(without_deploy(a), without_deploy(b));
        assert_eq!(
            without_deploy("name: x\ndeploy: {replicas: 2}\n"),
            "name: x\n"
        );
    }
}
