//! The workload manifest: types and their decoding from YAML.
//!
//! The format is documented in `docs/manifest.md` and described by
//! `control-api/schema/workload.schema.json`; the field lists below are the
//! single source the schema test checks against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::binding::{Binding, BindingTarget, ImportPattern};
use crate::decode::{Decoder, Fields, scalar_text};
use crate::diagnostics::{Diagnostic, ManifestError};
use crate::source::ComponentSource;
use crate::units::{parse_duration, parse_size};
use crate::yaml::{self, Node, Pos};

/// The `apiVersion` this crate reads.
pub const API_VERSION: &str = "trellis.dev/v1alpha1";

/// Fields of the top-level mapping.
pub const WORKLOAD_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "name",
    "components",
    "routes",
    "exports",
    "deploy",
];
/// Fields of the `deploy` block.
pub const DEPLOY_FIELDS: &[&str] = &["replicas", "selector", "spread", "partition"];
/// Fields of one component.
pub const COMPONENT_FIELDS: &[&str] = &[
    "source", "config", "env", "secrets", "limits", "grants", "bindings",
];
/// Backends a secret's value can come from (the one field of its long form).
pub const SECRET_SOURCES: &[&str] = &["lattice", "env"];
/// Fields of `limits`.
pub const LIMITS_FIELDS: &[&str] = &["memory", "timeout", "concurrency", "request-body"];
/// Fields of `grants`.
pub const GRANTS_FIELDS: &[&str] = &["preopens", "network", "http"];
/// Fields of one preopened directory.
pub const PREOPEN_FIELDS: &[&str] = &["host", "guest", "readonly"];
/// Fields of one route.
pub const ROUTE_FIELDS: &[&str] = &["component", "host", "path"];
/// Fields of one export.
pub const EXPORT_FIELDS: &[&str] = &["interface", "component"];
/// Fields of a binding written as a mapping.
pub const BINDING_FIELDS: &[&str] = &[
    "component",
    "provider",
    "workload",
    "timeout",
    "config",
    "announced",
];

/// A workload: the atomic, versioned unit of deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Unique on a host; a DNS label.
    pub name: String,
    /// The components, in manifest order.
    pub components: Vec<Component>,
    /// HTTP routes into the workload's components.
    pub routes: Vec<Route>,
    /// Interfaces served over wRPC to other workloads' `workload` bindings.
    pub exports: Vec<Export>,
    /// How the scheduler places it; hosts given the manifest directly ignore it.
    pub deploy: Deploy,
}

/// Where and how many: read by `trellis scheduler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    /// Copies to run, each on a different host; at least 1.
    pub replicas: u32,
    /// Labels a host must have, all of them.
    pub selector: BTreeMap<String, String>,
    /// A label key whose values replicas are spread across, if any.
    pub spread: Option<String>,
    /// What the scheduler does with copies at a leaf site it cannot hear.
    pub partition: Partition,
}

/// What the scheduler does with the copies on a leaf site's hosts while every
/// host of that site is silent: the link is most likely cut, and the site
/// keeps serving what it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Partition {
    /// Count them as still there: no second copy elsewhere, none duplicated
    /// when the link returns.
    #[default]
    Hold,
    /// Treat the site's hosts as dead and place the copies elsewhere; the
    /// surplus is stopped when the site is heard again.
    Reschedule,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            replicas: 1,
            selector: BTreeMap::new(),
            spread: None,
            partition: Partition::Hold,
        }
    }
}

/// An interface of one component that the workload serves on the lattice, at
/// `trellis.<lattice>.workload.<name>`, so that workloads elsewhere can bind to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The interface, `ns:pkg/iface` (the version is the component's own).
    pub interface: String,
    /// The component that exports it.
    pub component: String,
    /// Where the export was written.
    pub pos: Pos,
}

/// One component of a workload and everything it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// Unique within the workload; a DNS label.
    pub name: String,
    /// Where the component's bytes come from.
    pub source: ComponentSource,
    /// Where the `source` value starts in the manifest text: `trellis apply`
    /// replaces it there with the pinned digest, keeping the rest as written.
    pub source_pos: Pos,
    /// Values served through `wasi:config/store`.
    pub config: BTreeMap<String, String>,
    /// Environment variables seen through `wasi:cli/environment`.
    pub env: BTreeMap<String, String>,
    /// Secrets it may read through `trellis:secrets`, by the names it uses.
    pub secrets: Vec<SecretRef>,
    /// Enforced per-instance limits.
    pub limits: Limits,
    /// Access beyond the default sandbox.
    pub grants: Grants,
    /// How each import is satisfied.
    pub bindings: Vec<Binding>,
    /// Where the component's entry starts.
    pub pos: Pos,
}

/// A secret a component may read: the name it asks `trellis:secrets` for, and
/// where the host gets the value when the workload starts. Manifests (and so
/// the lattice's desired state) hold these names, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The name the component uses.
    pub name: String,
    /// Where the value comes from.
    pub source: SecretSource,
    /// Where the entry is.
    pub pos: Pos,
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretSource {
    /// The lattice's sealed secret store, by key (`trellis secret put KEY`).
    Lattice(String),
    /// An environment variable of the host that runs the workload.
    Env(String),
}

/// Limits enforced on every instance of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory an instance may grow to, in bytes.
    pub memory: u64,
    /// Wall-clock budget of one request, guest CPU included.
    pub timeout: Duration,
    /// Instances that may run at once; excess requests are refused with 503.
    pub concurrency: u32,
    /// The largest HTTP request body the component takes; larger ones get 413.
    pub request_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 128 << 20,
            timeout: Duration::from_secs(30),
            concurrency: 100,
            request_body: 16 << 20,
        }
    }
}

/// Sandbox grants: the filesystem and network are closed unless listed here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    /// Host directories visible to the guest.
    pub preopens: Vec<Preopen>,
    /// Whether `wasi:sockets` may open connections and resolve names.
    pub network: bool,
    /// The hosts `wasi:http/outgoing-handler` may reach (`api.example.com`,
    /// `*.example.com`, `example.com:8443`, `*` for any); `None` leaves it
    /// to the runner: any under `trellis dev`, none under `trellis host`.
    pub http: Option<Vec<String>>,
}

impl Grants {
    /// Whether outgoing HTTP may reach `host` on `port` under these grants,
    /// with `default` standing for a missing `http` list.
    pub fn allows_http(&self, host: &str, port: u16, default: bool) -> bool {
        match &self.http {
            Some(patterns) => http_patterns_allow(patterns, host, port),
            None => default,
        }
    }
}

/// Whether any of `patterns` (as in `grants.http`) matches `host` on `port`.
/// Hosts are compared without case or a trailing dot; a pattern without a
/// port allows any.
pub fn http_patterns_allow(patterns: &[String], host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return false;
    }
    patterns.iter().any(|pattern| {
        let (name, wanted_port) = match pattern.rsplit_once(':') {
            Some((name, p)) => (name, p.parse::<u16>().ok()),
            None => (pattern.as_str(), None),
        };
        let port_ok = wanted_port.is_none_or(|wanted| wanted == port);
        let name_ok = match name.strip_prefix("*.") {
            _ if name == "*" => true,
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => host == name,
        };
        port_ok && name_ok
    })
}

/// A host directory mapped into the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The host path, resolved against the manifest's folder.
    pub host: PathBuf,
    /// The path the guest sees.
    pub guest: String,
    /// Whether writes are refused.
    pub readonly: bool,
}

/// An HTTP route: requests whose Host and path match go to `component`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The component that handles matching requests.
    pub component: String,
    /// `example.com`, `*.example.com`, or `None` for any host.
    pub host: Option<String>,
    /// A path prefix on segment boundaries, starting with `/`.
    pub path: String,
    /// Where the route was written.
    pub pos: Pos,
}

/// The largest manifest taken, in bytes: well below NATS's default
/// `max_payload` (1 MiB), since desired state and a control-API `start`
/// carry a manifest inside a larger message.
pub const MAX_MANIFEST_BYTES: usize = 256 << 10;

fn too_large(file: &Path, size: u64) -> ManifestError {
    ManifestError::new(
        file,
        vec![Diagnostic::new(
            Pos { line: 1, column: 1 },
            format!("the manifest is {size} bytes; at most {MAX_MANIFEST_BYTES} are taken"),
        )],
    )
}

/// Reads a manifest file's text; a file over [`MAX_MANIFEST_BYTES`] is
/// refused without being read whole (so `/dev/zero` is refused too).
pub fn read_manifest(path: &Path) -> Result<String, ManifestError> {
    let unreadable = |e: std::io::Error| {
        ManifestError::new(
            path,
            vec![Diagnostic::new(
                Pos::default(),
                format!("cannot read the manifest: {e}"),
            )],
        )
    };
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(unreadable)?;
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_MANIFEST_BYTES as u64 + 1),
        &mut text,
    )
    .map_err(unreadable)?;
    if text.len() > MAX_MANIFEST_BYTES {
        let size = std::fs::metadata(path).map_or(text.len() as u64, |m| m.len());
        return Err(too_large(path, size));
    }
    Ok(text)
}

impl Workload {
    /// Reads and validates a manifest file; component paths are resolved against its folder.
    pub fn from_file(path: &Path) -> Result<Workload, ManifestError> {
        let text = read_manifest(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        Workload::from_yaml(&text, path, base)
    }

    /// Parses and validates manifest text; `file` names it in errors, `base` resolves paths.
    /// Text over [`MAX_MANIFEST_BYTES`] is refused before it is parsed.
    pub fn from_yaml(text: &str, file: &Path, base: &Path) -> Result<Workload, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(too_large(file, text.len() as u64));
        }
        let root = yaml::parse(text).map_err(|e| {
            ManifestError::new(
                file,
                vec![Diagnostic::new(
                    e.pos,
                    format!("invalid YAML: {}", e.message),
                )],
            )
        })?;
        let mut decoder = Decoder::default();
        let workload = decode_workload(&mut decoder, &root, base);
        if let Some(workload) = &workload {
            crate::validate::check(workload, &mut decoder);
        }
        match workload {
            Some(workload) if decoder.diagnostics.is_empty() => Ok(workload),
            _ => Err(ManifestError::new(file, decoder.diagnostics)),
        }
    }
}

fn decode_workload(d: &mut Decoder, root: &Node, base: &Path) -> Option<Workload> {
    let fields = d.fields(
        root,
        "the workload",
        WORKLOAD_FIELDS,
        &["apiVersion", "kind", "name", "components"],
    )?;
    if let Some(node) = fields.get("apiVersion")
        && let Some(v) = d.string(node, "apiVersion")
        && v != API_VERSION
    {
        d.report(
            Diagnostic::new(node.pos, format!("unsupported apiVersion `{v}`"))
                .with_hint(format!("write `apiVersion: {API_VERSION}`")),
        );
    }
    if let Some(node) = fields.get("kind")
        && let Some(v) = d.string(node, "kind")
        && v != "Workload"
    {
        d.report(
            Diagnostic::new(node.pos, format!("unsupported kind `{v}`"))
                .with_hint("write `kind: Workload`"),
        );
    }
    let name = fields
        .get("name")
        .and_then(|n| dns_label(d, n, "the workload name"));
    let components = fields
        .get("components")
        .map(|node| decode_components(d, node, base))
        .unwrap_or_default();
    let routes = match fields.get("routes") {
        Some(node) if !node.is_null() => decode_routes(d, node),
        _ => Vec::new(),
    };
    let exports = match fields.get("exports") {
        Some(node) if !node.is_null() => decode_exports(d, node),
        _ => Vec::new(),
    };
    let deploy = match fields.get("deploy") {
        Some(node) if !node.is_null() => decode_deploy(d, node),
        _ => Deploy::default(),
    };
    Some(Workload {
        name: name.unwrap_or_default(),
        components,
        routes,
        exports,
        deploy,
    })
}

fn decode_components(d: &mut Decoder, node: &Node, base: &Path) -> Vec<Component> {
    let Some(entries) = d.map(node, "components") else {
        return Vec::new();
    };
    if entries.is_empty() {
        d.error(node.pos, "a workload needs at least one component");
    }
    entries
        .iter()
        .filter_map(|(key, value)| {
            let name = dns_label(d, key, "a component name")?;
            decode_component(d, name, key.pos, value, base)
        })
        .collect()
}

fn decode_component(
    d: &mut Decoder,
    name: String,
    pos: Pos,
    node: &Node,
    base: &Path,
) -> Option<Component> {
    let what = format!("component `{name}`");
    let fields = d.fields(node, &what, COMPONENT_FIELDS, &["source"])?;
    let source = fields.get("source").and_then(|n| decode_source(d, n, base));
    let source_pos = fields.get("source").map(|n| n.pos).unwrap_or(pos);
    let config = fields
        .get("config")
        .map(|n| d.string_map(n, "config"))
        .unwrap_or_default();
    let env = fields
        .get("env")
        .map(|n| d.string_map(n, "env"))
        .unwrap_or_default();
    let secrets = fields
        .get("secrets")
        .map(|n| decode_secrets(d, n))
        .unwrap_or_default();
    let limits = fields
        .get("limits")
        .map(|n| decode_limits(d, n))
        .unwrap_or_default();
    let grants = fields
        .get("grants")
        .map(|n| decode_grants(d, n, base))
        .unwrap_or_default();
    let bindings = match fields.get("bindings") {
        Some(n) if !n.is_null() => decode_bindings(d, n),
        _ => Vec::new(),
    };
    // A component whose source failed still has its bindings checked; the
    // workload is refused anyway because the failure was reported.
    Some(Component {
        name,
        source: source.unwrap_or_else(|| ComponentSource::File(PathBuf::new())),
        source_pos,
        config,
        env,
        secrets,
        limits,
        grants,
        bindings,
        pos,
    })
}

/// `secrets:` — `NAME: lattice` (the store key is the name), `NAME: env` (the
/// variable is the name), or `NAME: {lattice: KEY}` / `NAME: {env: VAR}`.
fn decode_secrets(d: &mut Decoder, node: &Node) -> Vec<SecretRef> {
    let Some(entries) = d.map(node, "secrets") else {
        return Vec::new();
    };
    let mut secrets = Vec::new();
    for (key, value) in entries {
        let Some(name) = scalar_text(key) else {
            continue;
        };
        if !valid_secret_key(name) {
            d.error(
                key.pos,
                format!("secret name `{name}` is not valid: use letters, digits, `-` and `_`"),
            );
            continue;
        }
        let (backend, target) = match &value.value {
            crate::yaml::Value::Scalar { text, .. } => (text.clone(), name.to_string()),
            _ => {
                let Some(fields) =
                    d.fields(value, &format!("secret `{name}`"), SECRET_SOURCES, &[])
                else {
                    continue;
                };
                let given: Vec<&str> = SECRET_SOURCES
                    .iter()
                    .copied()
                    .filter(|s| fields.get(s).is_some())
                    .collect();
                let [backend] = given[..] else {
                    d.error(
                        value.pos,
                        format!(
                            "secret `{name}` needs exactly one of `lattice: KEY` and `env: VAR`"
                        ),
                    );
                    continue;
                };
                let Some(target) = fields.get(backend).and_then(|n| d.string(n, backend)) else {
                    continue;
                };
                (backend.to_string(), target)
            }
        };
        let source = match backend.as_str() {
            "lattice" if valid_secret_key(&target) => SecretSource::Lattice(target),
            "env" if valid_env_var(&target) => SecretSource::Env(target),
            "lattice" | "env" => {
                d.error(
                    value.pos,
                    format!("secret `{name}`: `{target}` is not a valid {backend} name"),
                );
                continue;
            }
            other => {
                d.report(
                    Diagnostic::new(value.pos, format!("secret `{name}`: unknown source `{other}`"))
                        .with_hint("use `lattice` (the lattice's secret store) or `env` (the host's environment)"),
                );
                continue;
            }
        };
        secrets.push(SecretRef {
            name: name.to_string(),
            source,
            pos: key.pos,
        });
    }
    secrets
}

/// Secret names and lattice store keys: what a JetStream KV key takes, one token.
pub fn valid_secret_key(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_env_var(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn decode_source(d: &mut Decoder, node: &Node, base: &Path) -> Option<ComponentSource> {
    let text = d.string(node, "source")?;
    if let Some(reference) = ComponentSource::parse_reference(&text) {
        return reference
            .map_err(|e| d.error(node.pos, format!("source: {e}")))
            .ok();
    }
    let path = base.join(text.strip_prefix("file:").unwrap_or(&text));
    if !path.is_file() {
        d.report(
            Diagnostic::new(
                node.pos,
                format!("component file `{}` does not exist", path.display()),
            )
            .with_hint("paths are relative to the manifest's folder"),
        );
        return None;
    }
    Some(ComponentSource::File(path))
}

fn decode_limits(d: &mut Decoder, node: &Node) -> Limits {
    let mut limits = Limits::default();
    let Some(fields) = d.fields(node, "limits", LIMITS_FIELDS, &[]) else {
        return limits;
    };
    if let Some(n) = fields.get("memory")
        && let Some(memory) = d.parsed(
            n,
            "limits.memory",
            "write a size such as `64MiB`",
            parse_size,
        )
    {
        if memory < 1 << 20 {
            d.error(n.pos, "limits.memory must be at least 1MiB");
        }
        limits.memory = memory;
    }
    if let Some(n) = fields.get("timeout")
        && let Some(timeout) = d.parsed(
            n,
            "limits.timeout",
            "write a duration such as `5s` or `250ms`",
            parse_duration,
        )
    {
        if timeout.is_zero() {
            d.error(n.pos, "limits.timeout must be longer than zero");
        }
        limits.timeout = timeout;
    }
    if let Some(n) = fields.get("concurrency")
        && let Some(c) = d.u32(n, "limits.concurrency")
    {
        if c == 0 {
            d.error(n.pos, "limits.concurrency must be at least 1");
        }
        limits.concurrency = c;
    }
    if let Some(n) = fields.get("request-body")
        && let Some(size) = d.parsed(
            n,
            "limits.request-body",
            "write a size such as `1MiB`",
            parse_size,
        )
    {
        limits.request_body = size;
    }
    limits
}

fn decode_grants(d: &mut Decoder, node: &Node, base: &Path) -> Grants {
    let mut grants = Grants::default();
    let Some(fields) = d.fields(node, "grants", GRANTS_FIELDS, &[]) else {
        return grants;
    };
    if let Some(n) = fields.get("network") {
        grants.network = d.bool(n, "grants.network").unwrap_or(false);
    }
    if let Some(n) = fields.get("http") {
        grants.http = Some(decode_http_grant(d, n));
    }
    if let Some(n) = fields.get("preopens") {
        let crate::yaml::Value::Seq(items) = &n.value else {
            d.error(
                n.pos,
                format!("grants.preopens must be a list, found {}", n.kind()),
            );
            return grants;
        };
        for item in items {
            let Some(f) = d.fields(item, "a preopen", PREOPEN_FIELDS, &["host", "guest"]) else {
                continue;
            };
            let host = f.get("host").and_then(|n| d.string(n, "preopen host"));
            let guest = f.get("guest").and_then(|n| d.string(n, "preopen guest"));
            let readonly = f
                .get("readonly")
                .and_then(|n| d.bool(n, "preopen readonly"))
                .unwrap_or(true);
            if let (Some(host), Some(guest)) = (host, guest) {
                let host = base.join(host);
                if !host.is_dir() {
                    d.error(
                        item.pos,
                        format!("preopen directory `{}` does not exist", host.display()),
                    );
                }
                grants.preopens.push(Preopen {
                    host,
                    guest,
                    readonly,
                });
            }
        }
    }
    grants
}

/// `grants.http`: host patterns, lowercase, `*` only whole or as `*.` first.
fn decode_http_grant(d: &mut Decoder, node: &Node) -> Vec<String> {
    let crate::yaml::Value::Seq(items) = &node.value else {
        d.error(
            node.pos,
            format!("grants.http must be a list of hosts, found {}", node.kind()),
        );
        return Vec::new();
    };
    let mut patterns = Vec::new();
    for item in items {
        let Some(pattern) = d.string(item, "grants.http host") else {
            continue;
        };
        let (name, port) = pattern.rsplit_once(':').unwrap_or((&pattern, "0"));
        let name_ok = name == "*"
            || (!name.is_empty()
                && name
                    .trim_start_matches("*.")
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'));
        if !name_ok || port.parse::<u16>().is_err() {
            d.report(
                Diagnostic::new(item.pos, format!("`{pattern}` is not a host to grant")).with_hint(
                    "write `api.example.com`, `*.example.com`, `api.example.com:8443` or `*`",
                ),
            );
            continue;
        }
        patterns.push(pattern);
    }
    patterns
}

fn decode_bindings(d: &mut Decoder, node: &Node) -> Vec<Binding> {
    let Some(entries) = d.map(node, "bindings") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(key, value)| {
            let raw = scalar_text(key)?;
            let import = match ImportPattern::parse(raw) {
                Ok(p) => Some(p),
                Err(message) => {
                    d.error(key.pos, message.to_string());
                    None
                }
            };
            let target = decode_target(d, raw, value)?;
            Some(Binding {
                import: import?,
                target,
                pos: key.pos,
            })
        })
        .collect()
}

fn decode_target(d: &mut Decoder, key: &str, node: &Node) -> Option<BindingTarget> {
    const HINT: &str = "write `host`, or a mapping with one of `component: NAME`, `provider: NAME`, `workload: NAME`";
    if scalar_text(node) == Some("host") {
        return Some(BindingTarget::Host);
    }
    if !matches!(node.value, crate::yaml::Value::Map(_)) {
        d.report(
            Diagnostic::new(node.pos, format!("binding `{key}` has no target")).with_hint(HINT),
        );
        return None;
    }
    let what = format!("binding `{key}`");
    let f = d.fields(node, &what, BINDING_FIELDS, &[])?;
    let targets: Vec<&str> = ["component", "provider", "workload"]
        .into_iter()
        .filter(|t| f.get(t).is_some())
        .collect();
    let [kind] = targets.as_slice() else {
        d.report(
            Diagnostic::new(
                node.pos,
                format!(
                    "{what} must name exactly one target, found {}",
                    targets.len()
                ),
            )
            .with_hint(HINT),
        );
        return None;
    };
    // Provider and workload names go into NATS subjects: DNS labels only.
    let name = f.get(kind).and_then(|n| match *kind {
        "component" => d.string(n, &format!("{what} target")),
        _ => dns_label(d, n, &format!("{what} target")),
    })?;
    let timeout = decode_timeout(d, &f, &what);
    let (config, secrets) = f
        .get("config")
        .map(|n| decode_binding_config(d, n))
        .unwrap_or_default();
    if *kind != "provider" && f.get("config").is_some() {
        d.error(
            f.pos,
            format!("{what}: only provider bindings take `config`"),
        );
    }
    if *kind != "provider" && f.get("announced").is_some() {
        d.error(
            f.pos,
            format!("{what}: only provider bindings take `announced`"),
        );
    }
    // `announced: false`: a wRPC server that answers no discovery.
    let announced = f
        .get("announced")
        .and_then(|n| d.bool(n, &format!("{what} announced")))
        .unwrap_or(true);
    Some(match *kind {
        "component" => {
            if f.get("timeout").is_some() {
                d.error(
                    f.pos,
                    format!("{what}: in-process component links take no `timeout`"),
                );
            }
            BindingTarget::Component { name }
        }
        "provider" => BindingTarget::Provider {
            name,
            timeout,
            config,
            secrets,
            announced,
        },
        _ => BindingTarget::Workload { name, timeout },
    })
}

/// A provider binding's `config`: strings, or `{secret: NAME}` for a value
/// that is one of the component's `secrets` (sealed to the provider on the way).
fn decode_binding_config(
    d: &mut Decoder,
    node: &Node,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (mut plain, mut secret) = (BTreeMap::new(), BTreeMap::new());
    if node.is_null() {
        return (plain, secret);
    }
    let Some(entries) = d.map(node, "binding config") else {
        return (plain, secret);
    };
    for (key, value) in entries {
        let Some(key) = d.string(key, "a key of binding config") else {
            continue;
        };
        if let crate::yaml::Value::Map(_) = &value.value {
            let what = format!("binding config `{key}`");
            let name = d
                .fields(value, &what, &["secret"], &["secret"])
                .and_then(|f| f.get("secret").and_then(|n| d.string(n, &what)));
            if let Some(name) = name {
                secret.insert(key, name);
            }
        } else if let Some(text) = d.string(value, "the value of binding config") {
            plain.insert(key, text);
        }
    }
    (plain, secret)
}

fn decode_timeout(d: &mut Decoder, f: &Fields<'_>, what: &str) -> Option<Duration> {
    let n = f.get("timeout")?;
    d.parsed(
        n,
        &format!("{what} timeout"),
        "write a duration such as `2s`",
        parse_duration,
    )
}

fn decode_routes(d: &mut Decoder, node: &Node) -> Vec<Route> {
    let crate::yaml::Value::Seq(items) = &node.value else {
        d.error(
            node.pos,
            format!("routes must be a list, found {}", node.kind()),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let f = d.fields(item, "a route", ROUTE_FIELDS, &["component"])?;
            let component = f
                .get("component")
                .and_then(|n| d.string(n, "route component"))?;
            let host = f.get("host").and_then(|n| d.string(n, "route host"));
            let path = f
                .get("path")
                .and_then(|n| d.string(n, "route path"))
                .unwrap_or_else(|| "/".into());
            Some(Route {
                component,
                host,
                path,
                pos: item.pos,
            })
        })
        .collect()
}

fn decode_deploy(d: &mut Decoder, node: &Node) -> Deploy {
    let mut deploy = Deploy::default();
    let Some(f) = d.fields(node, "deploy", DEPLOY_FIELDS, &[]) else {
        return deploy;
    };
    if let Some(n) = f.get("replicas")
        && let Some(replicas) = d.u32(n, "deploy.replicas")
    {
        if replicas == 0 {
            d.report(
                Diagnostic::new(n.pos, "deploy.replicas is 0, which would run nothing")
                    .with_hint("to remove a workload, run `trellis delete workload NAME`; otherwise ask for at least 1"),
            );
        }
        deploy.replicas = replicas;
    }
    if let Some(n) = f.get("selector") {
        deploy.selector = d.string_map(n, "deploy.selector");
    }
    if let Some(n) = f.get("spread") {
        deploy.spread = d.string(n, "deploy.spread");
    }
    if let Some(n) = f.get("partition") {
        match d.string(n, "deploy.partition").as_deref() {
            Some("hold") => deploy.partition = Partition::Hold,
            Some("reschedule") => deploy.partition = Partition::Reschedule,
            Some(other) => d.error(
                n.pos,
                format!("deploy.partition is `{other}`; use `hold` or `reschedule`"),
            ),
            None => {}
        }
    }
    deploy
}

fn decode_exports(d: &mut Decoder, node: &Node) -> Vec<Export> {
    let crate::yaml::Value::Seq(items) = &node.value else {
        d.error(
            node.pos,
            format!("exports must be a list, found {}", node.kind()),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let f = d.fields(
                item,
                "an export",
                EXPORT_FIELDS,
                &["interface", "component"],
            )?;
            let component = f
                .get("component")
                .and_then(|n| d.string(n, "export component"))?;
            let node = f.get("interface")?;
            let interface = d.string(node, "export interface")?;
            let unversioned = ImportPattern::parse(&interface)
                .ok()
                .filter(|p| p.name().is_none())
                .and_then(|p| p.interface().map(str::to_string));
            let Some(interface) = unversioned else {
                d.report(
                    Diagnostic::new(node.pos, format!("`{interface}` is not an interface"))
                        .with_hint("write `ns:pkg/interface`, e.g. `trellis:shop/pricing`"),
                );
                return None;
            };
            Some(Export {
                interface,
                component,
                pos: item.pos,
            })
        })
        .collect()
}

/// A lowercase DNS label (`[a-z0-9-]`, at most 63 characters), as names become subjects and hosts.
fn dns_label(d: &mut Decoder, node: &Node, what: &str) -> Option<String> {
    let text = d.string(node, what)?;
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if !ok {
        d.report(
            Diagnostic::new(node.pos, format!("{what} `{text}` is not a valid name"))
                .with_hint("use 1 to 63 lowercase letters, digits and dashes, not starting or ending with a dash"),
        );
        return None;
    }
    Some(text)
}
