//! The NATS options every Trellis binary takes, and the connection they make.

use std::path::PathBuf;
use std::time::Duration;

use super::subjects::DEFAULT_LATTICE;
use crate::{Role, Subjects};

/// NATS connection and lattice options, shared by `trellis host`, the CLI and providers.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma separated.
    #[arg(
        long = "nats",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// The lattice to join: the subject space `trellis.<lattice>.…`.
    #[arg(long, env = "TRELLIS_LATTICE", default_value = DEFAULT_LATTICE)]
    pub lattice: String,
    /// Authenticate with the nkey seed in this file.
    #[arg(long = "nats-nkey", env = "NATS_NKEY", value_name = "FILE")]
    pub nkey: Option<PathBuf>,
    /// Authenticate with this credentials (JWT + seed) file.
    #[arg(long = "nats-creds", env = "NATS_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// Authenticate with this user (and `--nats-password`).
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// The password for `--nats-user`.
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Authenticate with this token.
    #[arg(long = "nats-token", env = "NATS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Trust the CA certificates in this PEM file (enables TLS).
    #[arg(long = "nats-tls-ca", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM; needs `--nats-tls-key`).
    #[arg(long = "nats-tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long = "nats-tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The JetStream domain to keep buckets and streams in: at a leaf site,
    /// the site's own, so they stay reachable when the link to the hub is down.
    #[arg(long = "js-domain", env = "NATS_JS_DOMAIN", value_name = "DOMAIN")]
    pub js_domain: Option<String>,
}

/// Why connecting to NATS failed; each variant names the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A credential file could not be read.
    #[error("cannot read {option} file `{path}`: {source}")]
    Read {
        /// The option that named it.
        option: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Options that exclude each other were given together.
    #[error("{0}")]
    Conflict(String),
    /// The lattice name cannot be a subject token and bucket name part.
    #[error(transparent)]
    BadLattice(#[from] crate::InvalidName),
    /// `--js-domain` names another domain than the server's JetStream has
    /// (or the server has none): buckets would land somewhere else.
    #[error(
        "--js-domain is `{given}` but the NATS server's JetStream domain is {actual}; \
         connect to a server of that domain or give its own"
    )]
    WrongDomain {
        /// What `--js-domain` said.
        given: String,
        /// What the server reports, quoted, or why it reports none.
        actual: String,
    },
    /// The server refused us or could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL(s) tried.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
}

impl NatsArgs {
    /// Args for a plain connection to `url` on the default lattice (tests, embedding).
    pub fn new(url: impl Into<String>) -> Self {
        NatsArgs {
            url: url.into(),
            lattice: DEFAULT_LATTICE.into(),
            nkey: None,
            creds: None,
            user: None,
            password: None,
            token: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            js_domain: None,
        }
    }

    /// The lattice's subjects, in the JetStream domain of `--js-domain`.
    pub fn subjects(&self) -> Subjects {
        Subjects::new(&self.lattice).with_domain(self.js_domain.clone())
    }

    /// Connects as `role`, with its replies under the role's own inbox prefix
    /// (what the lattice's permissions let it subscribe to). With `wait` false
    /// the first connection is retried in the background, so a host keeps serving
    /// HTTP while NATS is away; either way the client reconnects by itself
    /// after a loss.
    pub async fn connect(
        &self,
        role: &Role,
        wait: bool,
    ) -> Result<async_nats::Client, ConnectError> {
        crate::check_name(crate::NameKind::Lattice, &self.lattice)?;
        if let Some(domain) = &self.js_domain {
            crate::check_name(crate::NameKind::Domain, domain)?;
        }
        let name = match role {
            Role::Operator | Role::Scheduler => format!("trellis-{}", role.kind()),
            Role::Host(n) | Role::Provider(n) | Role::Admin(n) => {
                format!("trellis-{}-{n}", role.kind())
            }
        };
        let inbox = Subjects::new(&self.lattice).inbox(role);
        let mut options = self.options().await?.name(name).custom_inbox_prefix(inbox);
        if !wait {
            options = options.retry_on_initial_connect();
        }
        let urls = self
            .url
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(",");
        let client =
            options
                .connect(urls.as_str())
                .await
                .map_err(|source| ConnectError::Connect {
                    url: self.url.clone(),
                    source,
                })?;
        if let Some(given) = &self.js_domain {
            check_domain(&client, given).await?;
        }
        Ok(client)
    }

    /// The nkey public key, when authenticating with an nkey seed: a host's ID.
    pub fn nkey_public_key(&self) -> Result<Option<String>, ConnectError> {
        Ok(self.nkey_pair()?.map(|pair| pair.public_key()))
    }

    /// The key pair of `--nats-nkey`, if given: the operator signs artifacts with it.
    pub fn nkey_pair(&self) -> Result<Option<nkeys::KeyPair>, ConnectError> {
        let Some(path) = &self.nkey else {
            return Ok(None);
        };
        let seed = read("--nats-nkey", path)?;
        let pair = nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| {
            ConnectError::Conflict(format!(
                "`{}` holds no valid nkey seed: {e}",
                path.display()
            ))
        })?;
        Ok(Some(pair))
    }

    async fn options(&self) -> Result<async_nats::ConnectOptions, ConnectError> {
        let methods = [
            self.nkey.is_some(),
            self.creds.is_some(),
            self.user.is_some(),
            self.token.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(ConnectError::Conflict(
                "give only one of --nats-nkey, --nats-creds, --nats-user and --nats-token".into(),
            ));
        }
        if self.password.is_some() && self.user.is_none() {
            return Err(ConnectError::Conflict(
                "--nats-password needs --nats-user".into(),
            ));
        }
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        if let Some(path) = &self.nkey {
            options = options.nkey(read("--nats-nkey", path)?.trim().to_string());
        }
        if let Some(path) = &self.creds {
            options = options
                .credentials(&read("--nats-creds", path)?)
                .map_err(|source| ConnectError::Read {
                    option: "--nats-creds",
                    path: path.clone(),
                    source,
                })?;
        }
        if let Some(user) = &self.user {
            options =
                options.user_and_password(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        Ok(options)
    }
}

/// Whether the server's JetStream is in domain `given`: a process's
/// `--js-domain` is what it reports to the scheduler, so it must be true.
async fn check_domain(client: &async_nats::Client, given: &str) -> Result<(), ConnectError> {
    let wrong = |actual: String| ConnectError::WrongDomain {
        given: given.to_string(),
        actual,
    };
    match async_nats::jetstream::new(client.clone())
        .query_account()
        .await
    {
        Ok(account) => match account.domain {
            Some(actual) if actual == given => Ok(()),
            Some(actual) => Err(wrong(format!("`{actual}`"))),
            None => Err(wrong("not set".into())),
        },
        Err(e) => Err(wrong(format!("unknown ({e})"))),
    }
}

fn read(option: &'static str, path: &std::path::Path) -> Result<String, ConnectError> {
    std::fs::read_to_string(path).map_err(|source| ConnectError::Read {
        option,
        path: path.to_path_buf(),
        source,
    })
}
