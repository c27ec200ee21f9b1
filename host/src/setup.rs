//! `trellis lattice init|add`: the identities and nats.conf of a secured lattice.

use std::path::{Path, PathBuf};

use trellis_identity::{
    Cluster, DEFAULT_PROVIDERS, Identity, InitOptions, LatticeDir, ProviderGrants,
};

use crate::cli::Outcome;

/// `trellis lattice …`
#[derive(clap::Subcommand)]
pub enum LatticeCommand {
    /// Create a secured lattice in DIR: nats.conf (JetStream on, one account,
    /// one nkey user per process with its role's allow lists, no anonymous
    /// access) and a seed file per identity: operator.nk, scheduler.nk,
    /// host.nk and provider-<name>.nk (xkeys beside those that receive secrets).
    Init {
        /// The directory to create.
        dir: PathBuf,
        /// The lattice's name.
        #[arg(long, default_value = trellis_lattice::DEFAULT_LATTICE)]
        lattice: String,
        /// Where nats-server listens for clients.
        #[arg(long, default_value = "127.0.0.1:4222")]
        listen: String,
        /// A provider to make an identity for (repeatable); default: keyvalue,
        /// blobstore and messaging.
        #[arg(long = "provider", value_name = "NAME")]
        providers: Vec<String>,
        /// An application subject a provider may publish and subscribe to,
        /// `PROVIDER=PATTERN` (repeatable), e.g. `messaging=orders.>`.
        #[arg(long = "subject", value_name = "PROVIDER=PATTERN", value_parser = parse_grant)]
        subjects: Vec<(String, String)>,
        /// A JetStream stream a provider may consume, `PROVIDER=STREAM` (repeatable).
        #[arg(long = "stream", value_name = "PROVIDER=STREAM", value_parser = parse_grant)]
        streams: Vec<(String, String)>,
        /// Also make a CA and server and client certificates (under DIR/tls) and
        /// require TLS.
        #[arg(long)]
        tls: bool,
        /// Make the servers a cluster of this name (start each with its own
        /// `-n NAME` and `-sd DIR`); needs `--route`.
        #[arg(long, requires = "routes")]
        cluster: Option<String>,
        /// Where each server listens for routes.
        #[arg(long, default_value = "0.0.0.0:6222")]
        cluster_listen: String,
        /// A server of the cluster, `host:port` of its route listener (repeatable).
        #[arg(long = "route", value_name = "HOST:PORT")]
        routes: Vec<String>,
    },
    /// Add an identity to the lattice in DIR and rewrite its nats.conf; reload
    /// nats-server afterwards (`nats-server --signal reload`, or SIGHUP).
    Add {
        /// What to add.
        #[command(subcommand)]
        what: AddCommand,
    },
}

/// `trellis lattice add …`
#[derive(clap::Subcommand)]
pub enum AddCommand {
    /// A host: DIR/host-NAME.nk; its ID is the printed public key.
    Host {
        /// The lattice directory.
        dir: PathBuf,
        /// A name for people (the ID is the key).
        name: String,
    },
    /// A provider: DIR/provider-NAME.nk; the identity serves only NAME.
    Provider {
        /// The lattice directory.
        dir: PathBuf,
        /// The provider's name (`--name` of the provider).
        name: String,
        /// An application subject it may publish and subscribe to (repeatable).
        #[arg(long = "subject", value_name = "PATTERN")]
        subjects: Vec<String>,
        /// A JetStream stream it may consume (repeatable).
        #[arg(long = "stream", value_name = "STREAM")]
        streams: Vec<String>,
    },
    /// Full access to the lattice's account (DIR/admin-NAME.nk), for the `nats`
    /// CLI when troubleshooting; it can read every workload's data.
    Admin {
        /// The lattice directory.
        dir: PathBuf,
        /// A name for people.
        name: String,
    },
}

fn parse_grant(text: &str) -> Result<(String, String), String> {
    let (provider, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not PROVIDER=VALUE"))?;
    Ok((provider.to_string(), value.to_string()))
}

/// Runs a `trellis lattice` command.
pub fn run(command: &LatticeCommand) -> Outcome {
    match command {
        LatticeCommand::Init {
            dir,
            lattice,
            listen,
            providers,
            subjects,
            streams,
            tls,
            cluster,
            cluster_listen,
            routes,
        } => {
            let cluster = cluster.as_ref().map(|name| Cluster {
                name: name.clone(),
                listen: cluster_listen.clone(),
                routes: routes.clone(),
                password: nkeys::XKey::new().public_key(),
            });
            let grants = Grants { subjects, streams };
            init(dir, lattice, listen, providers, &grants, *tls, cluster)
        }
        LatticeCommand::Add { what } => add(what),
    }
}

/// The `--subject` and `--stream` grants of `init`, by provider.
struct Grants<'a> {
    subjects: &'a [(String, String)],
    streams: &'a [(String, String)],
}

fn init(
    dir: &Path,
    lattice: &str,
    listen: &str,
    providers: &[String],
    grants: &Grants<'_>,
    tls: bool,
    cluster: Option<Cluster>,
) -> Outcome {
    let Grants { subjects, streams } = *grants;
    let mut names: Vec<String> = if providers.is_empty() {
        DEFAULT_PROVIDERS.iter().map(|p| p.to_string()).collect()
    } else {
        providers.to_vec()
    };
    for (provider, _) in subjects.iter().chain(streams) {
        if !names.contains(provider) {
            names.push(provider.clone());
        }
    }
    let grants_of = |name: &str| ProviderGrants {
        subjects: pick(subjects, name),
        streams: pick(streams, name),
    };
    let options = InitOptions {
        lattice: lattice.into(),
        listen: listen.into(),
        providers: names.iter().map(|n| (n.clone(), grants_of(n))).collect(),
        tls,
        cluster,
    };
    match LatticeDir::init(dir, &options) {
        Ok(made) => {
            say!(
                "lattice `{lattice}` in {}: start nats-server -c {}",
                made.dir().display(),
                made.conf_path().display()
            );
            for identity in &made.description.identities {
                show(&made, identity);
            }
            Outcome::Done
        }
        Err(e) => Outcome::Invalid(e.to_string()),
    }
}

fn pick(grants: &[(String, String)], provider: &str) -> Vec<String> {
    grants
        .iter()
        .filter(|(p, _)| p == provider)
        .map(|(_, v)| v.clone())
        .collect()
}

fn add(what: &AddCommand) -> Outcome {
    let dir = match what {
        AddCommand::Host { dir, .. }
        | AddCommand::Provider { dir, .. }
        | AddCommand::Admin { dir, .. } => dir,
    };
    let mut lattice = match LatticeDir::open(dir) {
        Ok(l) => l,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    let added = match what {
        AddCommand::Host { name, .. } => lattice.add_host(name),
        AddCommand::Provider {
            name,
            subjects,
            streams,
            ..
        } => lattice.add_provider(
            name,
            ProviderGrants {
                subjects: subjects.clone(),
                streams: streams.clone(),
            },
        ),
        AddCommand::Admin { name, .. } => lattice.add_admin(name),
    };
    let identity = match added {
        Ok(identity) => identity.clone(),
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    if let Err(e) = lattice.save() {
        return Outcome::Invalid(e.to_string());
    }
    show(&lattice, &identity);
    say!("reload nats-server to admit it: nats-server --signal reload");
    Outcome::Done
}

fn show(lattice: &LatticeDir, identity: &Identity) {
    say!(
        "{:<9} {:<12} {}  {}",
        format!("{:?}", identity.kind).to_lowercase(),
        identity.name,
        identity.public_key,
        lattice.seed_path(identity).display()
    );
}
