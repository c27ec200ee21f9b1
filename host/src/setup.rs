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
        /// Make this server a hub for leaf sites: listen for their leaf
        /// connections here (`trellis lattice add site` makes each one's
        /// configuration); needs `--js-domain`.
        #[arg(long, value_name = "HOST:PORT", requires = "js_domain")]
        leafnodes: Option<String>,
        /// The leaf node address sites reach the hub by, which it tells them
        /// to reconnect to (behind NAT or a load balancer); default: `--leafnodes`.
        #[arg(long, value_name = "HOST:PORT", requires = "leafnodes")]
        leafnodes_advertise: Option<String>,
        /// The JetStream domain of this server (the hub's), e.g. `hub`.
        #[arg(long, value_name = "DOMAIN")]
        js_domain: Option<String>,
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
    /// A leaf site of a hub lattice: DIR/sites/NAME/nats.conf, for the site's
    /// own nats-server (JetStream domain NAME, joined to the hub over a leaf
    /// connection, admitting the lattice's identities); reload the hub after.
    Site {
        /// The lattice directory (made with `--leafnodes`).
        dir: PathBuf,
        /// The site's name, which is its JetStream domain.
        name: String,
        /// The hub's leaf node listener, as the site reaches it.
        #[arg(long, value_name = "HOST:PORT")]
        hub: String,
        /// Where the site's server listens for its hosts and providers.
        #[arg(long, default_value = "127.0.0.1:4222")]
        listen: String,
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
            leafnodes,
            leafnodes_advertise,
            js_domain,
        } => {
            let cluster = cluster.as_ref().map(|name| Cluster {
                name: name.clone(),
                listen: cluster_listen.clone(),
                routes: routes.clone(),
                password: nkeys::XKey::new().public_key(),
            });
            let grants = Grants { subjects, streams };
            let options = InitOptions {
                lattice: lattice.clone(),
                listen: listen.clone(),
                providers: Vec::new(),
                tls: *tls,
                cluster,
                js_domain: js_domain.clone(),
                leafnodes: leafnodes.clone(),
                leafnodes_advertise: leafnodes_advertise.clone(),
            };
            init(dir, options, providers, &grants)
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
    mut options: InitOptions,
    providers: &[String],
    grants: &Grants<'_>,
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
    options.providers = names.iter().map(|n| (n.clone(), grants_of(n))).collect();
    let lattice = &options.lattice;
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
        | AddCommand::Site { dir, .. }
        | AddCommand::Admin { dir, .. } => dir,
    };
    let mut lattice = match LatticeDir::open(dir) {
        Ok(l) => l,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    let added = match what {
        AddCommand::Site {
            name, hub, listen, ..
        } => return add_site(&mut lattice, name, hub, listen),
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

fn add_site(lattice: &mut LatticeDir, name: &str, hub: &str, listen: &str) -> Outcome {
    if let Err(e) = lattice.add_site(name, hub, listen) {
        return Outcome::Invalid(e.to_string());
    }
    if let Err(e) = lattice.save() {
        return Outcome::Invalid(e.to_string());
    }
    // The site's paths (its JetStream store, its certificates) are relative
    // to its directory: nats-server must start there.
    let conf = lattice.site_conf_path(name);
    let dir = conf.parent().unwrap_or(Path::new("."));
    say!(
        "site `{name}`: copy {} to the site and start it there with \
         `cd {} && nats-server -c nats.conf`, then reload the hub \
         (nats-server --signal reload) to admit its leaf connection",
        dir.display(),
        dir.display()
    );
    say!("processes at the site connect to it with --js-domain {name}");
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
