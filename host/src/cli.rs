//! The operator's commands: `apply`, `get`, `describe`, `delete` (desired state in
//! JetStream KV, read back with the scheduler's status), and `scheduler`.
//!
//! Exit codes: 0 done; 1 refused or not found; 2 invalid input; 3 the lattice
//! cannot be reached.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt as _;
use serde::Serialize;
use trellis_host::lattice::HEARTBEAT_INTERVAL;
use trellis_lattice::{HostHeartbeat, NatsArgs, ProviderInfo, Role};
use trellis_scheduler::{Applied, Desired, Scheduler, SchedulerError, Status, Store, show_labels};

/// How a command ended, as a process exit code.
pub enum Outcome {
    /// Done.
    Done,
    /// Refused or not found (1).
    Refused(String),
    /// Invalid input (2).
    Invalid(String),
    /// The lattice cannot be reached (3).
    Unreachable(String),
}

impl Outcome {
    /// The exit code, after printing the message to stderr.
    pub fn exit(self) -> std::process::ExitCode {
        let (code, message) = match self {
            Outcome::Done => return std::process::ExitCode::SUCCESS,
            Outcome::Refused(m) => (1, m),
            Outcome::Invalid(m) => (2, m),
            Outcome::Unreachable(m) => (3, m),
        };
        eprintln!("error: {message}");
        std::process::ExitCode::from(code)
    }
}

/// Output formats of `get` and `describe`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Connects as the operator; a refused identity or an unreachable server is
/// reported at once (exit 3), not retried.
pub(crate) async fn connect(nats: &NatsArgs) -> Result<async_nats::Client, Outcome> {
    nats.connect(&Role::Operator, true)
        .await
        .map_err(|e| Outcome::Unreachable(e.to_string()))
}

/// The scheduling buckets for `apply`, made if missing.
async fn store(nats: &NatsArgs) -> Result<(async_nats::Client, Store), Outcome> {
    let client = connect(nats).await?;
    let store = Store::open(client.clone(), &nats.subjects())
        .await
        .map_err(|e| Outcome::Unreachable(e.to_string()))?;
    Ok((client, store))
}

/// The scheduling buckets for readers, which make none (one left at a leaf
/// site would stand where `trellis mirror` puts the hub's copy). `None`: no
/// scheduler has run in this lattice yet, so there is nothing to read. With
/// `--js-domain` a missing bucket is reported, with what makes it.
async fn reader(nats: &NatsArgs) -> Result<Option<Store>, Outcome> {
    let client = connect(nats).await?;
    match Store::open_existing(client, &nats.subjects()).await {
        Ok(store) => Ok(Some(store)),
        Err(trellis_scheduler::SchedulerError::NoState { .. }) if nats.js_domain.is_none() => {
            Ok(None)
        }
        Err(e) => Err(Outcome::Unreachable(e.to_string())),
    }
}

/// `trellis apply -f FILE`: uploads the manifest's local components and pins
/// its registry tags ([`crate::publish::pin_sources`]), then records its
/// desired state; idempotent.
pub async fn apply(nats: &NatsArgs, file: &Path, signed: bool) -> Outcome {
    let text = match trellis_manifest::read_manifest(file) {
        Ok(text) => text,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let workload = match trellis_manifest::Workload::from_yaml(&text, file, base) {
        Ok(workload) => workload,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    let text = match crate::publish::pin_sources(nats, &text, file, &workload, signed).await {
        Ok(text) => text,
        Err(outcome) => return outcome,
    };
    let desired = match Desired::from_manifest(&text, file, base) {
        Ok(desired) => desired,
        Err(e) => return Outcome::Invalid(e.to_string()),
    };
    let (_, store) = match store(nats).await {
        Ok(s) => s,
        Err(o) => return o,
    };
    match store.apply(&desired).await {
        Ok(applied) => {
            let what = match applied {
                Applied::Created => "created",
                Applied::Configured => "configured",
                Applied::Unchanged => "unchanged",
            };
            println!(
                "workload/{} {what} (version {})",
                desired.name, desired.version
            );
            Outcome::Done
        }
        Err(e @ SchedulerError::TooLarge { .. }) => Outcome::Invalid(e.to_string()),
        Err(e @ SchedulerError::Contended { .. }) => Outcome::Refused(e.to_string()),
        Err(e) => Outcome::Unreachable(e.to_string()),
    }
}

/// `trellis delete workload NAME`.
pub async fn delete(nats: &NatsArgs, name: &str) -> Outcome {
    let store = match reader(nats).await {
        Ok(Some(s)) => s,
        Ok(None) => return Outcome::Refused(format!("workload `{name}` not found")),
        Err(o) => return o,
    };
    match store.delete(name).await {
        Ok(true) => {
            println!("workload/{name} deleted");
            Outcome::Done
        }
        Ok(false) => Outcome::Refused(format!("workload `{name}` not found")),
        Err(e) => Outcome::Unreachable(e.to_string()),
    }
}

/// One row of `get workloads`.
#[derive(Serialize)]
struct WorkloadRow {
    name: String,
    version: String,
    desired: u32,
    running: u32,
    last_error: Option<String>,
}

/// `trellis get workloads`.
pub async fn get_workloads(nats: &NatsArgs, format: Format) -> Outcome {
    let (desired, status) = match reader(nats).await {
        Ok(Some(store)) => match (store.all_desired().await, store.all_status().await) {
            (Ok(d), Ok(s)) => (d, s),
            (Err(e), _) | (_, Err(e)) => return Outcome::Unreachable(e.to_string()),
        },
        Ok(None) => (Vec::new(), Vec::new()),
        Err(o) => return o,
    };
    let status: BTreeMap<String, Status> =
        status.into_iter().map(|s| (s.name.clone(), s)).collect();
    let rows: Vec<WorkloadRow> = desired
        .into_iter()
        .map(|d| {
            let s = status.get(&d.name).filter(|s| s.version == d.version);
            WorkloadRow {
                running: s.map_or(0, |s| s.running),
                last_error: s.and_then(|s| s.last_error.clone()),
                name: d.name,
                version: d.version,
                desired: d.replicas,
            }
        })
        .collect();
    print_rows(
        format,
        &rows,
        &["NAME", "VERSION", "DESIRED", "RUNNING", "LAST ERROR"],
        |r| {
            vec![
                r.name.clone(),
                r.version.clone(),
                r.desired.to_string(),
                r.running.to_string(),
                r.last_error.clone().unwrap_or_default(),
            ]
        },
    )
}

/// `components.<name>.source` of a recorded manifest (which the CLI wrote, so
/// anything unreadable is left out rather than reported).
fn recorded_sources(manifest: &str) -> BTreeMap<String, String> {
    let Ok(root) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(manifest) else {
        return BTreeMap::new();
    };
    let Some(components) = root.get("components").and_then(|c| c.as_mapping()) else {
        return BTreeMap::new();
    };
    components
        .iter()
        .filter_map(|(name, component)| {
            Some((
                name.as_str()?.to_string(),
                component.get("source")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// `trellis describe workload NAME`: desired state, then each replica.
pub async fn describe_workload(nats: &NatsArgs, name: &str, format: Format) -> Outcome {
    let store = match reader(nats).await {
        Ok(Some(s)) => s,
        Ok(None) => return Outcome::Refused(format!("workload `{name}` not found")),
        Err(o) => return o,
    };
    let desired = match store.desired(name).await {
        Ok(Some(d)) => d,
        Ok(None) => return Outcome::Refused(format!("workload `{name}` not found")),
        Err(e) => return Outcome::Unreachable(e.to_string()),
    };
    let status = store.status(name).await.ok().flatten();
    #[derive(Serialize)]
    struct Described<'a> {
        name: &'a str,
        version: &'a str,
        replicas: u32,
        selector: &'a BTreeMap<String, String>,
        spread: &'a Option<String>,
        /// Each component's source as recorded (digests, after `apply` pinned them).
        sources: BTreeMap<String, String>,
        status: &'a Option<Status>,
    }
    let described = Described {
        name: &desired.name,
        version: &desired.version,
        replicas: desired.replicas,
        selector: &desired.selector,
        spread: &desired.spread,
        sources: recorded_sources(&desired.manifest),
        status: &status,
    };
    match format {
        Format::Table => {
            println!("Name:      {}", desired.name);
            println!("Version:   {}", desired.version);
            println!(
                "Replicas:  {} desired, {} running",
                desired.replicas,
                status.as_ref().map_or(0, |s| s.running)
            );
            println!("Selector:  {}", show_labels(&desired.selector));
            println!("Spread:    {}", desired.spread.as_deref().unwrap_or(""));
            for (component, source) in &described.sources {
                println!("Source:    {component} = {source}");
            }
            if let Some(error) = status.as_ref().and_then(|s| s.last_error.as_ref()) {
                println!("Last error: {error}");
            }
            let replicas = status.map(|s| s.replicas).unwrap_or_default();
            table(
                &["ID", "HOST", "VERSION", "STATE"],
                replicas.iter().map(|r| {
                    vec![
                        r.id.clone(),
                        r.host.clone(),
                        r.version.clone(),
                        r.state.clone(),
                    ]
                }),
            );
            Outcome::Done
        }
        Format::Json | Format::Yaml => print_value(format, &described),
    }
}

/// Collects the JSON messages `sub` receives within `window`, keyed by `key`.
async fn collect<T: for<'de> serde::Deserialize<'de>>(
    mut sub: async_nats::Subscriber,
    window: Duration,
    key: impl Fn(&T) -> String,
) -> Result<BTreeMap<String, T>, Outcome> {
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if let Ok(value) = serde_json::from_slice::<T>(&message.payload) {
            seen.insert(key(&value), value);
        }
    }
    Ok(seen)
}

/// `trellis get hosts`: every host heard from within two heartbeats.
pub async fn get_hosts(nats: &NatsArgs, format: Format) -> Outcome {
    let client = match connect(nats).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    let subjects = nats.subjects();
    let sub = match client.subscribe(subjects.host_heartbeats()).await {
        Ok(sub) => sub,
        Err(e) => return Outcome::Unreachable(e.to_string()),
    };
    let hosts = match collect::<HostHeartbeat>(
        sub,
        HEARTBEAT_INTERVAL * 2 + Duration::from_millis(100),
        |h| h.id.clone(),
    )
    .await
    {
        Ok(h) => h,
        Err(o) => return o,
    };
    let rows: Vec<HostHeartbeat> = hosts.into_values().collect();
    print_rows(
        format,
        &rows,
        &["ID", "LABELS", "WORKLOADS", "INSTANCES", "VERSION"],
        |h| {
            vec![
                h.id.clone(),
                show_labels(&h.labels),
                h.workloads_text(),
                format!("{}/{}", h.instances_in_use, h.max_instances),
                h.version.clone(),
            ]
        },
    )
}

/// One provider replica in `trellis get providers`: what it is, and its
/// calls so far.
#[derive(serde::Serialize)]
struct ProviderRow {
    #[serde(flatten)]
    info: ProviderInfo,
    requests: u64,
    errors: u64,
}

/// `trellis get providers`: every provider replica of the lattice that
/// answers NATS micro discovery (`$SRV.INFO`, `$SRV.STATS`) within 0.5 s.
pub async fn get_providers(nats: &NatsArgs, format: Format) -> Outcome {
    use trellis_lattice::micro;
    let client = match connect(nats).await {
        Ok(c) => c,
        Err(o) => return o,
    };
    let lattice = nats.lattice.as_str();
    let window = Duration::from_millis(500);
    let infos = micro::gather(
        &client,
        micro::Verb::Info.subject(None, None),
        window,
        false,
        |info: micro::Info| ProviderInfo::from_micro(&info, lattice),
    );
    let stats = micro::gather(
        &client,
        micro::Verb::Stats.subject(None, None),
        window,
        false,
        |stats: micro::Stats| {
            (stats
                .metadata
                .get(micro::metadata::LATTICE)
                .map(String::as_str)
                == Some(lattice))
            .then_some(stats)
        },
    );
    let (infos, stats) = match tokio::try_join!(infos, stats) {
        Ok(both) => both,
        Err(e) => return Outcome::Unreachable(e.to_string()),
    };
    let counts: BTreeMap<String, (u64, u64)> = stats
        .into_iter()
        .map(|s| {
            let requests = s.endpoints.iter().map(|e| e.num_requests).sum();
            let errors = s.endpoints.iter().map(|e| e.num_errors).sum();
            (s.id, (requests, errors))
        })
        .collect();
    let mut rows: Vec<ProviderRow> = infos
        .into_iter()
        .map(|info| {
            let (requests, errors) = counts.get(&info.instance).copied().unwrap_or_default();
            ProviderRow {
                info,
                requests,
                errors,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.info.name, &a.info.instance).cmp(&(&b.info.name, &b.info.instance)));
    rows.dedup_by(|a, b| a.info.instance == b.info.instance);
    print_rows(
        format,
        &rows,
        &[
            "NAME",
            "INSTANCE",
            "VERSION",
            "INTERFACES",
            "CALLS",
            "ERRORS",
        ],
        |p| {
            vec![
                p.info.name.clone(),
                p.info.instance.clone(),
                p.info.version.clone(),
                p.info.interfaces.join(","),
                p.requests.to_string(),
                p.errors.to_string(),
            ]
        },
    )
}

/// How `trellis scheduler` runs, from its flags.
pub struct SchedulerOptions<'a> {
    /// How long a shutdown may take.
    pub drain: std::time::Duration,
    /// The secret store's xkey seed, to serve the store.
    pub secrets_key: Option<&'a Path>,
    /// How long a silent leaf site's copies are held.
    pub forget_silent_sites_after: std::time::Duration,
}

/// Why the scheduler cannot start: a site's mirror is refused, anything
/// else is NATS out of reach.
fn scheduler_failed(e: trellis_scheduler::SchedulerError) -> Outcome {
    match e {
        trellis_scheduler::SchedulerError::Mirror { .. } => Outcome::Refused(e.to_string()),
        e => Outcome::Unreachable(e.to_string()),
    }
}

/// `trellis scheduler`: reconciles until SIGINT or SIGTERM.
pub async fn scheduler(
    nats: &NatsArgs,
    options: SchedulerOptions<'_>,
    shutdown: impl Future<Output = ()>,
) -> Outcome {
    let SchedulerOptions {
        drain,
        secrets_key,
        forget_silent_sites_after,
    } = options;
    let client = match nats.connect(&Role::Scheduler, true).await {
        Ok(c) => c,
        Err(e) => return Outcome::Unreachable(e.to_string()),
    };
    let key = match secrets_key.map(trellis_lattice::read_xkey).transpose() {
        Ok(key) => key,
        Err(e) => return Outcome::Invalid(e),
    };
    // First the scheduler: it refuses a site's mirrored desired state, and
    // the secret store is not served where no scheduler may run.
    let me = format!("scheduler-{}", uuid::Uuid::new_v4().simple());
    let scheduler = match Scheduler::new(client.clone(), nats.subjects(), &me).await {
        Ok(s) => s
            .drain_timeout(drain)
            .forget_silent_sites_after(forget_silent_sites_after),
        Err(e) => return scheduler_failed(e),
    };
    if let Some(key) = key {
        let subjects = nats.subjects();
        let store = match Store::open(client.clone(), &subjects).await {
            Ok(store) => store,
            Err(e) => return scheduler_failed(e),
        };
        let serving = trellis_scheduler::serve_secrets(client, subjects, key, store);
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "the secret store stopped");
            }
        });
    }
    tracing::info!(scheduler = %me, lattice = %nats.lattice, "scheduler started");
    match scheduler.run(shutdown).await {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Unreachable(e.to_string()),
    }
}

/// `trellis secret put NAME`: seals the value (stdin, or `file`; one trailing
/// newline dropped) to the store's key here, and writes the sealed value.
pub async fn put_secret(nats: &NatsArgs, name: &str, file: Option<&Path>) -> Outcome {
    use std::io::Read as _;
    if !trellis_manifest::valid_secret_key(name) {
        return Outcome::Invalid(format!(
            "secret name `{name}` is not valid: use 1 to 128 letters, digits, `-` and `_`"
        ));
    }
    let limit = trellis_lattice::MAX_SECRET_BYTES as u64;
    let mut value = Vec::new();
    let read = match file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut value))
            .map_err(|e| format!("cannot read `{}`: {e}", path.display())),
        None => std::io::stdin()
            .take(limit + 1)
            .read_to_end(&mut value)
            .map_err(|e| format!("cannot read stdin: {e}")),
    };
    if let Err(e) = read {
        return Outcome::Invalid(e);
    }
    if value.len() as u64 > limit {
        return Outcome::Invalid(format!(
            "the value of secret `{name}` is over {limit} bytes"
        ));
    }
    for ending in [&b"\r\n"[..], b"\n"] {
        if value.ends_with(ending) {
            value.truncate(value.len() - ending.len());
            break;
        }
    }
    if std::str::from_utf8(&value).is_err() {
        return Outcome::Invalid(format!("the value of secret `{name}` is not UTF-8"));
    }
    let client = match connect(nats).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let subjects = nats.subjects();
    let unreachable = || {
        Outcome::Unreachable(
            "the lattice's secret store does not answer (run `trellis scheduler --secrets-key`)"
                .into(),
        )
    };
    let ask = client.request(subjects.secret_store_key(), "".into());
    let store_key = match tokio::time::timeout(trellis_lattice::SECRET_TIMEOUT, ask).await {
        Ok(Ok(reply)) => String::from_utf8_lossy(&reply.payload).into_owned(),
        _ => return unreachable(),
    };
    let sealed = match trellis_lattice::Sealed::seal(name, &value, &nkeys::XKey::new(), &store_key)
    {
        Ok(sealed) => sealed,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let body = match serde_json::to_vec(&sealed) {
        Ok(body) => body,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let bucket = subjects.bucket(trellis_lattice::SECRETS_BUCKET);
    let js = subjects.jetstream(client);
    let stored = async {
        js.publish(format!("$KV.{bucket}.{name}"), body.into())
            .await?
            .await?;
        Ok::<_, async_nats::jetstream::context::PublishError>(())
    };
    match tokio::time::timeout(trellis_lattice::SECRET_TIMEOUT, stored).await {
        Ok(Ok(())) => {
            say!("secret/{name} stored, sealed to the store key");
            Outcome::Done
        }
        Ok(Err(e)) => Outcome::Unreachable(format!("cannot store secret `{name}`: {e}")),
        Err(_) => unreachable(),
    }
}

fn print_rows<T: Serialize>(
    format: Format,
    rows: &[T],
    headers: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
) -> Outcome {
    match format {
        Format::Table => {
            table(headers, rows.iter().map(cells));
            Outcome::Done
        }
        _ => print_value(format, &rows),
    }
}

fn print_value<T: Serialize>(format: Format, value: &T) -> Outcome {
    let json = match serde_json::to_value(value) {
        Ok(json) => json,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    match format {
        Format::Yaml => match serde_yaml_ng::to_string(&json) {
            Ok(text) => print!("{text}"),
            Err(e) => return Outcome::Refused(format!("cannot write YAML: {e}")),
        },
        _ => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
    }
    Outcome::Done
}

fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    print!("{}", render_table(headers, rows));
}

/// Columns as kubectl prints them: no borders, three spaces apart, widths by
/// display width (comfy-table), never wrapped to the terminal.
fn render_table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table
        .lines()
        .map(|line| format!("{}\n", line.trim_end()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_output_round_trips_awkward_keys() -> Result<(), Box<dyn std::error::Error>> {
        let value = serde_json::json!({
            "labels": {"a: b": "x", "#c": "y", "*d": "&e", "zone": "edge: 1"},
            "replicas": [{"id": "H1:shop@0a1b", "state": "running"}],
            "empty": [],
        });
        let text = serde_yaml_ng::to_string(&value)?;
        let back: serde_json::Value = serde_yaml_ng::from_str(&text)?;
        assert_eq!(back, value, "{text}");
        Ok(())
    }

    #[test]
    fn table_columns_align_by_display_width() {
        let text = render_table(
            &["NAME", "STATE"],
            [
                vec!["zürich".to_string(), "running".to_string()],
                vec!["東京".to_string(), "failed".to_string()],
            ]
            .into_iter(),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // The second column starts at the same display column on every line:
        // "zürich" is 6 wide (7 bytes), "東京" 4 wide (6 bytes).
        let starts: Vec<usize> = lines
            .iter()
            .map(|l| {
                let gap = l.find("  ").unwrap_or(l.len());
                let start = l[gap..]
                    .find(|c: char| c != ' ')
                    .map_or(l.len(), |i| gap + i);
                l[..start]
                    .chars()
                    .map(|c| if c == '東' || c == '京' { 2 } else { 1 })
                    .sum::<usize>()
            })
            .collect();
        assert_eq!(starts, [9, 9, 9], "{text}");
    }
}
