//! A lattice directory: the identities of one lattice, their seed files and the
//! nats.conf that admits them, kept together so `trellis lattice add` can
//! rewrite the configuration from what `lattice.json` records.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trellis_lattice::{NameKind, Role, check_name};

use crate::conf;
use crate::permissions::ProviderGrants;

/// The providers `trellis lattice init` makes identities for unless told otherwise.
pub const DEFAULT_PROVIDERS: [&str; 3] = ["keyvalue", "blobstore", "messaging"];

/// What went wrong with a lattice directory; each variant names the file or name.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `lattice.json` is not what `trellis lattice init` writes.
    #[error("{path} is not a lattice description: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// `init` on a directory that already holds a lattice.
    #[error("{0} already holds a lattice (lattice.json); use `trellis lattice add`")]
    Exists(PathBuf),
    /// A name that cannot be a subject token or file name.
    #[error(transparent)]
    BadName(#[from] trellis_lattice::InvalidName),
    /// An identity of that kind and name exists already.
    #[error("the lattice already has {kind} `{name}`")]
    Duplicate {
        /// `host`, `provider`, …
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A subject or stream in a provider's grants that nats-server would misread.
    #[error("provider `{provider}`: {problem}")]
    BadGrant {
        /// The provider.
        provider: String,
        /// What is wrong.
        problem: String,
    },
    /// Key generation failed.
    #[error("cannot make a key: {0}")]
    Key(String),
    /// A site was added to a lattice that is no hub.
    #[error(
        "this lattice has no leaf node listener; make it a hub with `trellis lattice init --leafnodes ADDR --js-domain DOMAIN`"
    )]
    NotAHub,
    /// An address nats-server would misread.
    #[error("{what}: {problem}")]
    BadAddress {
        /// The option.
        what: &'static str,
        /// What is wrong.
        problem: String,
    },
}

type Result<T> = std::result::Result<T, DirectoryError>;

/// The kinds of identity a lattice has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The CLI.
    Operator,
    /// The scheduler (and the secret store it serves).
    Scheduler,
    /// A host.
    Host,
    /// A capability provider.
    Provider,
    /// Full access, for troubleshooting.
    Admin,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Operator => "operator",
            Kind::Scheduler => "scheduler",
            Kind::Host => "host",
            Kind::Provider => "provider",
            Kind::Admin => "admin",
        }
    }

    /// Whether secrets are sealed to identities of this kind (they get an xkey).
    fn receives_secrets(self) -> bool {
        matches!(self, Kind::Scheduler | Kind::Host | Kind::Provider)
    }
}

/// One identity of the lattice, as `lattice.json` records it (public keys only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Its kind.
    pub kind: Kind,
    /// Its name: a host's label for people, a provider's name.
    pub name: String,
    /// The files' stem: `<file>.nk` holds the nkey seed, `<file>.xk` the xkey seed.
    pub file: String,
    /// The nkey public key the server admits (a host's ID).
    pub public_key: String,
    /// The xkey public key secrets are sealed to, for kinds that receive them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xkey: Option<String>,
    /// A provider's application subjects and streams.
    #[serde(default, skip_serializing_if = "is_default")]
    pub grants: ProviderGrants,
}

fn is_default(grants: &ProviderGrants) -> bool {
    grants == &ProviderGrants::default()
}

impl Identity {
    /// The role it plays, which decides its permissions.
    pub fn role(&self) -> Role {
        match self.kind {
            Kind::Operator => Role::Operator,
            Kind::Scheduler => Role::Scheduler,
            Kind::Host => Role::Host(self.public_key.clone()),
            Kind::Provider => Role::Provider(self.name.clone()),
            Kind::Admin => Role::Admin(self.name.clone()),
        }
    }
}

/// Options of `trellis lattice init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The lattice's name.
    pub lattice: String,
    /// Where the server listens for clients.
    pub listen: String,
    /// Providers to make identities for.
    pub providers: Vec<(String, ProviderGrants)>,
    /// Also make a CA and certificates, and require TLS.
    pub tls: bool,
    /// Run the server as one of a cluster.
    pub cluster: Option<Cluster>,
    /// The hub's JetStream domain, for a hub with leaf sites.
    pub js_domain: Option<String>,
    /// Where the hub listens for leaf sites.
    pub leafnodes: Option<String>,
    /// The leaf node address the hub tells sites to reconnect to.
    pub leafnodes_advertise: Option<String>,
}

/// A leaf site: its own nats-server (`site-<name>.conf`) joined to the hub
/// over a leaf connection, with its own JetStream domain (`<name>`), so its
/// processes keep their data and serve through a cut link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The site's name, which is its JetStream domain.
    pub name: String,
    /// The hub's leaf node listener, `host:port`.
    pub hub: String,
    /// Where the site's server listens for its clients.
    pub listen: String,
    /// The password its leaf connection presents (user `site-<name>`).
    pub password: String,
}

/// The cluster a lattice's servers form: every server runs the same nats.conf
/// (each with its own `-n NAME` and `-sd DIR`), and routes authenticate with
/// a password made at init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// The cluster's name.
    pub name: String,
    /// Where each server listens for routes.
    pub listen: String,
    /// The routes, `host:port` of every server (its own included).
    pub routes: Vec<String>,
    /// The routes' password (nats.conf is written readable by its owner only).
    pub password: String,
}

/// The description `lattice.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Description {
    /// The lattice's name.
    pub lattice: String,
    /// Where nats-server listens.
    pub listen: String,
    /// Whether the server requires TLS (certificates under `tls/`).
    #[serde(default)]
    pub tls: bool,
    /// The cluster, if the lattice has several servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// The hub's JetStream domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_domain: Option<String>,
    /// Where the hub listens for leaf sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnodes: Option<String>,
    /// The leaf node address the hub advertises (what sites reconnect to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnodes_advertise: Option<String>,
    /// The leaf sites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<Site>,
    /// Every identity.
    pub identities: Vec<Identity>,
}

/// A lattice directory on disk.
#[derive(Debug, Clone)]
pub struct LatticeDir {
    dir: PathBuf,
    /// What it holds.
    pub description: Description,
}

impl LatticeDir {
    /// Creates the lattice in `dir`: an operator, a scheduler, a first host and
    /// the given providers, their seeds, and nats.conf.
    pub fn init(dir: &Path, options: &InitOptions) -> Result<LatticeDir> {
        check_name(NameKind::Lattice, &options.lattice)?;
        if let Some(domain) = &options.js_domain {
            check_name(NameKind::Domain, domain)?;
        }
        for (what, value) in [
            ("--listen", Some(&options.listen)),
            ("--leafnodes", options.leafnodes.as_ref()),
            (
                "--leafnodes-advertise",
                options.leafnodes_advertise.as_ref(),
            ),
        ] {
            if let Some(problem) = value.and_then(|v| conf::unsafe_address(v)) {
                return Err(DirectoryError::BadAddress { what, problem });
            }
        }
        let dir = absolute(dir)?;
        if dir.join("lattice.json").exists() {
            return Err(DirectoryError::Exists(dir));
        }
        create_dir(&dir)?;
        let mut lattice = LatticeDir {
            dir,
            description: Description {
                lattice: options.lattice.clone(),
                listen: options.listen.clone(),
                tls: options.tls,
                cluster: options.cluster.clone(),
                js_domain: options.js_domain.clone(),
                leafnodes: options.leafnodes.clone(),
                leafnodes_advertise: options.leafnodes_advertise.clone(),
                sites: Vec::new(),
                identities: Vec::new(),
            },
        };
        lattice.make(
            Kind::Operator,
            "operator",
            "operator",
            ProviderGrants::default(),
        )?;
        lattice.make(
            Kind::Scheduler,
            "scheduler",
            "scheduler",
            ProviderGrants::default(),
        )?;
        lattice.make(Kind::Host, "host", "host", ProviderGrants::default())?;
        for (name, grants) in &options.providers {
            lattice.add_provider(name, grants.clone())?;
        }
        if options.tls {
            crate::tls::generate(&lattice.dir.join("tls"))?;
        }
        lattice.save()?;
        Ok(lattice)
    }

    /// Opens the lattice `trellis lattice init` made in `dir`.
    pub fn open(dir: &Path) -> Result<LatticeDir> {
        let dir = absolute(dir)?;
        let path = dir.join("lattice.json");
        let text = fs::read_to_string(&path).map_err(|source| DirectoryError::Io {
            path: path.clone(),
            source,
        })?;
        let description = serde_json::from_str(&text)
            .map_err(|source| DirectoryError::Corrupt { path, source })?;
        Ok(LatticeDir { dir, description })
    }

    /// Adds host `name` (`host-<name>.nk`); returns it. Call [`LatticeDir::save`].
    pub fn add_host(&mut self, name: &str) -> Result<&Identity> {
        self.make(
            Kind::Host,
            name,
            &format!("host-{name}"),
            ProviderGrants::default(),
        )
    }

    /// Adds provider `name` (`provider-<name>.nk`) with `grants`.
    pub fn add_provider(&mut self, name: &str, grants: ProviderGrants) -> Result<&Identity> {
        check_name(NameKind::Provider, name)?;
        let first_problem = grants
            .subjects
            .iter()
            .map(|s| conf::unsafe_subject(s))
            .chain(grants.streams.iter().map(|s| conf::unsafe_stream(s)))
            .flatten()
            .next();
        if let Some(problem) = first_problem {
            return Err(DirectoryError::BadGrant {
                provider: name.into(),
                problem,
            });
        }
        self.make(Kind::Provider, name, &format!("provider-{name}"), grants)
    }

    /// Adds leaf site `name` (its JetStream domain too), whose server joins
    /// the hub's leaf node listener at `hub` and serves clients on `listen`.
    pub fn add_site(&mut self, name: &str, hub: &str, listen: &str) -> Result<&Site> {
        check_name(NameKind::Domain, name)?;
        let d = &self.description;
        if d.leafnodes.is_none() {
            return Err(DirectoryError::NotAHub);
        }
        if d.js_domain.as_deref() == Some(name) {
            return Err(DirectoryError::Duplicate {
                kind: "JetStream domain",
                name: name.into(),
            });
        }
        if d.sites.iter().any(|s| s.name == name) {
            return Err(DirectoryError::Duplicate {
                kind: "site",
                name: name.into(),
            });
        }
        for (what, value) in [("--hub", hub), ("--listen", listen)] {
            if let Some(problem) = conf::unsafe_address(value) {
                return Err(DirectoryError::BadAddress { what, problem });
            }
        }
        self.description.sites.push(Site {
            name: name.into(),
            hub: hub.into(),
            listen: listen.into(),
            password: nkeys::XKey::new().public_key(),
        });
        let site_dir = self.dir.join("sites").join(name);
        create_dir(&site_dir)?;
        if self.description.tls {
            let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            if !names.iter().any(|n| n == host) && host != "0.0.0.0" {
                names.push(host.to_string());
            }
            crate::tls::issue_site(&self.dir.join("tls"), &site_dir.join("tls"), names)?;
        }
        let last = self.description.sites.len() - 1;
        Ok(&self.description.sites[last])
    }

    /// Adds an identity with full access to the lattice's account.
    pub fn add_admin(&mut self, name: &str) -> Result<&Identity> {
        self.make(
            Kind::Admin,
            name,
            &format!("admin-{name}"),
            ProviderGrants::default(),
        )
    }

    /// Writes `lattice.json` and nats.conf from the identities.
    pub fn save(&self) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.description).map_err(|source| {
            DirectoryError::Corrupt {
                path: self.dir.join("lattice.json"),
                source,
            }
        })?;
        write(&self.dir.join("lattice.json"), json.as_bytes(), true)?;
        write(&self.conf_path(), conf::render(self).as_bytes(), true)?;
        for site in &self.description.sites {
            let text = conf::render_site(self, site);
            write(&self.site_conf_path(&site.name), text.as_bytes(), true)?;
        }
        Ok(())
    }

    /// The nats-server configuration of leaf site `name`.
    pub fn site_conf_path(&self, name: &str) -> PathBuf {
        self.dir.join("sites").join(name).join("nats.conf")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The nats-server configuration.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    /// The seed file of `identity`.
    pub fn seed_path(&self, identity: &Identity) -> PathBuf {
        self.dir.join(format!("{}.nk", identity.file))
    }

    /// The identity of `kind` called `name`.
    pub fn find(&self, kind: Kind, name: &str) -> Option<&Identity> {
        self.description
            .identities
            .iter()
            .find(|i| i.kind == kind && i.name == name)
    }

    fn make(
        &mut self,
        kind: Kind,
        name: &str,
        file: &str,
        grants: ProviderGrants,
    ) -> Result<&Identity> {
        check_name(NameKind::Host, name)?;
        if self.find(kind, name).is_some() {
            return Err(DirectoryError::Duplicate {
                kind: kind.as_str(),
                name: name.into(),
            });
        }
        let user = nkeys::KeyPair::new_user();
        let seed = user
            .seed()
            .map_err(|e| DirectoryError::Key(e.to_string()))?;
        write(&self.dir.join(format!("{file}.nk")), seed.as_bytes(), true)?;
        let xkey = if kind.receives_secrets() {
            let xkey = nkeys::XKey::new();
            let seed = xkey
                .seed()
                .map_err(|e| DirectoryError::Key(e.to_string()))?;
            write(&self.dir.join(format!("{file}.xk")), seed.as_bytes(), true)?;
            Some(xkey.public_key())
        } else {
            None
        };
        self.description.identities.push(Identity {
            kind,
            name: name.into(),
            file: file.into(),
            public_key: user.public_key(),
            xkey,
            grants,
        });
        let last = self.description.identities.len() - 1;
        Ok(&self.description.identities[last])
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|source| DirectoryError::Io {
        path: dir.into(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| DirectoryError::Io {
        path: dir.into(),
        source,
    })
}

/// Writes `bytes` to `path`; a `secret` file is readable by its owner only.
pub(crate) fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let io = |source| DirectoryError::Io {
        path: path.into(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(io)?;
    // `mode` applies only to a new file; an existing one is narrowed too.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    (&file).write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("trellis-identity-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn options() -> InitOptions {
        InitOptions {
            lattice: "edge".into(),
            listen: "127.0.0.1:4222".into(),
            providers: DEFAULT_PROVIDERS
                .iter()
                .map(|p| (p.to_string(), ProviderGrants::default()))
                .collect(),
            tls: false,
            cluster: None,
            js_domain: None,
            leafnodes: None,
            leafnodes_advertise: None,
        }
    }

    #[test]
    fn init_writes_one_seed_per_identity_and_a_config_admitting_them() -> Result<()> {
        let dir = scratch("init");
        let lattice = LatticeDir::init(&dir, &options())?;
        for file in [
            "operator.nk",
            "scheduler.nk",
            "scheduler.xk",
            "host.nk",
            "host.xk",
            "provider-keyvalue.nk",
            "provider-messaging.xk",
            "nats.conf",
        ] {
            assert!(dir.join(file).exists(), "{file}");
        }
        assert!(!dir.join("operator.xk").exists());
        let conf =
            fs::read_to_string(lattice.conf_path()).map_err(|source| DirectoryError::Io {
                path: dir.clone(),
                source,
            })?;
        for identity in &lattice.description.identities {
            assert!(conf.contains(&identity.public_key), "{}", identity.name);
        }
        assert!(!conf.contains("no_auth_user"));
        assert!(matches!(
            LatticeDir::init(&dir, &options()),
            Err(DirectoryError::Exists(_))
        ));
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn add_keeps_the_lattice_and_refuses_duplicates_and_wide_grants() -> Result<()> {
        let dir = scratch("add");
        LatticeDir::init(&dir, &options())?;
        let mut lattice = LatticeDir::open(&dir)?;
        let key = lattice.add_host("h2")?.public_key.clone();
        lattice.save()?;
        let reopened = LatticeDir::open(&dir)?;
        assert_eq!(
            reopened.find(Kind::Host, "h2").map(|h| &h.public_key),
            Some(&key)
        );
        assert!(matches!(
            lattice.add_host("h2"),
            Err(DirectoryError::Duplicate { .. })
        ));
        let wide = ProviderGrants {
            subjects: vec![">".into()],
            streams: vec![],
        };
        assert!(matches!(
            lattice.add_provider("chat", wide),
            Err(DirectoryError::BadGrant { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_hub_admits_each_site_and_each_site_keeps_its_data_to_itself() -> Result<()> {
        let dir = scratch("hub");
        let mut plain = LatticeDir::init(&dir, &options())?;
        assert!(matches!(
            plain.add_site("a", "hub.example:7422", "127.0.0.1:4222"),
            Err(DirectoryError::NotAHub)
        ));
        let _ = fs::remove_dir_all(&dir);
        let hub_options = InitOptions {
            js_domain: Some("hub".into()),
            leafnodes: Some("0.0.0.0:7422".into()),
            ..options()
        };
        let mut hub = LatticeDir::init(&dir, &hub_options)?;
        let password = hub
            .add_site("a", "hub.example:7422", "127.0.0.1:4222")?
            .password
            .clone();
        for bad in ["hub", "a", "A", "a.b"] {
            assert!(
                hub.add_site(bad, "hub.example:7422", "127.0.0.1:4222")
                    .is_err(),
                "{bad}"
            );
        }
        assert!(matches!(
            hub.add_site("b", "hub example", "127.0.0.1:4222"),
            Err(DirectoryError::BadAddress { what: "--hub", .. })
        ));
        hub.save()?;
        let read = |path: PathBuf| {
            fs::read_to_string(&path).map_err(|source| DirectoryError::Io { path, source })
        };
        let hub_conf = read(hub.conf_path())?;
        assert!(hub_conf.contains("domain: \"hub\""), "{hub_conf}");
        assert!(hub_conf.contains(&format!("user: \"site-a\", password: \"{password}\"")));
        let site = read(hub.site_conf_path("a"))?;
        assert!(site.contains("domain: \"a\""), "{site}");
        assert!(site.contains(&format!("nats-leaf://site-a:{password}@hub.example:7422")));
        assert!(
            site.contains("deny_imports: [\"$KV.>\", \"$O.>\", \"$CTR.>\"]"),
            "{site}"
        );
        assert!(
            site.contains("deny_exports: [\"$KV.>\", \"$O.>\", \"$CTR.>\"]"),
            "{site}"
        );
        for identity in &hub.description.identities {
            assert!(site.contains(&identity.public_key), "{}", identity.name);
        }
        // The site directory travels as it is: nothing names the hub's paths.
        assert!(site.contains("store_dir: \"jetstream\""), "{site}");
        assert!(
            !site.contains(&dir.to_string_lossy().into_owned()),
            "{site}"
        );
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_hub_has_no_leaf_listener_before_its_first_site() -> Result<()> {
        let dir = scratch("lonely-hub");
        let hub = LatticeDir::init(
            &dir,
            &InitOptions {
                js_domain: Some("hub".into()),
                leafnodes: Some("0.0.0.0:7422".into()),
                ..options()
            },
        )?;
        let conf = fs::read_to_string(hub.conf_path()).map_err(|source| DirectoryError::Io {
            path: hub.conf_path(),
            source,
        })?;
        assert!(!conf.contains("leafnodes"), "{conf}");
        let _ = fs::remove_dir_all(&dir);
        for (field, bad) in [
            ("--leafnodes", "0.0.0.0:7422\"\nx"),
            ("--leafnodes-advertise", "hub"),
        ] {
            let mut options = InitOptions {
                js_domain: Some("hub".into()),
                leafnodes: Some("0.0.0.0:7422".into()),
                ..options()
            };
            if field == "--leafnodes" {
                options.leafnodes = Some(bad.into());
            } else {
                options.leafnodes_advertise = Some(bad.into());
            }
            assert!(
                matches!(LatticeDir::init(&dir, &options), Err(DirectoryError::BadAddress { what, .. }) if what == field),
                "{field}"
            );
            assert!(!dir.join("lattice.json").exists());
        }
        Ok(())
    }

    #[test]
    fn a_tls_site_gets_its_own_server_key_signed_by_the_lattice_ca() -> Result<()> {
        let dir = scratch("tls-site");
        let mut hub = LatticeDir::init(
            &dir,
            &InitOptions {
                js_domain: Some("hub".into()),
                leafnodes: Some("0.0.0.0:7422".into()),
                tls: true,
                ..options()
            },
        )?;
        hub.add_site("a", "hub.example:7422", "site-a.example:4222")?;
        hub.save()?;
        let read = |path: PathBuf| {
            fs::read_to_string(&path).map_err(|source| DirectoryError::Io { path, source })
        };
        let site_tls = dir.join("sites/a/tls");
        assert_ne!(
            read(site_tls.join("server-key.pem"))?,
            read(dir.join("tls/server-key.pem"))?
        );
        assert_eq!(
            read(site_tls.join("ca.pem"))?,
            read(dir.join("tls/ca.pem"))?
        );
        assert!(!site_tls.join("ca-key.pem").exists());
        let site = read(hub.site_conf_path("a"))?;
        assert!(site.contains("cert_file: \"tls/server.pem\""), "{site}");
        assert!(site.contains("cert_file: \"tls/client.pem\""), "{site}");
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}
