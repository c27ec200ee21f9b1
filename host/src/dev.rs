//! `trellis dev`: one process, no NATS, reload on change.
//!
//! The target is a manifest or a bare component. A bare component gets every
//! `wasi:` import bound to the host and every path routed to it, so any
//! wasi:http component runs as it is.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use trellis_manifest::{
    Binding, BindingTarget, Component, ComponentSource, Diagnostic, ImportPattern, Limits,
    ManifestError, Route, Workload,
};

use crate::Host;

/// How often watched files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(300);

/// Reads the workload `target` describes: a YAML manifest, a component file,
/// or a component's reference (`oci://…`, `lattice://…`).
pub fn read_workload(target: &Path) -> Result<Workload, ManifestError> {
    if let Some(reference) = target.to_str().and_then(ComponentSource::parse_reference) {
        let source = reference.map_err(|e| {
            ManifestError::new(
                target,
                vec![Diagnostic::new(Default::default(), e.to_string())],
            )
        })?;
        let stem = match &source {
            ComponentSource::Oci(oci) => oci.repository.rsplit('/').next().unwrap_or("app"),
            _ => "app",
        };
        let stem = stem.to_string();
        return Ok(bare_component(&stem, source));
    }
    let is_manifest = matches!(
        target.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if is_manifest {
        return Workload::from_file(target);
    }
    if !target.is_file() {
        return Err(ManifestError::new(
            target,
            vec![Diagnostic::new(Default::default(), "no such file")],
        ));
    }
    let stem = target.file_stem().and_then(|s| s.to_str()).unwrap_or("app");
    Ok(bare_component(
        stem,
        ComponentSource::File(target.to_path_buf()),
    ))
}

fn bare_component(stem: &str, source: ComponentSource) -> Workload {
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').chars().take(63).collect();
    if name.is_empty() {
        name = "app".into();
    }
    let bindings = ImportPattern::parse("wasi:*")
        .map(|import| {
            vec![Binding {
                import,
                target: BindingTarget::Host,
                pos: Default::default(),
            }]
        })
        .unwrap_or_default();
    Workload {
        name: name.clone(),
        components: vec![Component {
            name: name.clone(),
            source,
            source_pos: Default::default(),
            config: BTreeMap::new(),
            env: BTreeMap::new(),
            secrets: Vec::new(),
            limits: Limits::default(),
            grants: Default::default(),
            bindings,
            pos: Default::default(),
        }],
        routes: vec![Route {
            component: name,
            host: None,
            path: "/".into(),
            pos: Default::default(),
        }],
        exports: Vec::new(),
        deploy: Default::default(),
    }
}

/// Files whose change means a new version: the target and every component source.
fn watched_files(target: &Path, workload: Option<&Workload>) -> Vec<PathBuf> {
    let mut files = vec![target.to_path_buf()];
    for component in workload.iter().flat_map(|w| &w.components) {
        if let ComponentSource::File(path) = &component.source {
            files.push(path.clone());
        }
    }
    files
}

fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// Loads `target` into `host`; on failure the running version (if any) stays.
pub async fn load_into(host: &Host, target: &Path) -> Result<Workload, ManifestError> {
    let workload = read_workload(target)?;
    let loaded = host.load(workload.clone(), target).await?;
    host.run(loaded).await.map_err(|e| {
        ManifestError::new(
            target,
            vec![Diagnostic::new(
                Default::default(),
                format!("cannot serve the workload: {e}"),
            )],
        )
    })?;
    Ok(workload)
}

/// Watches `target` and reloads it into `host` whenever it or a component changes.
/// `current` is the workload now running, if the first load succeeded.
pub async fn watch(host: Arc<Host>, target: PathBuf, mut current: Option<Workload>) {
    let mut files = watched_files(&target, current.as_ref());
    let mut seen = stamps(&files);
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let now = stamps(&files);
        if now == seen {
            continue;
        }
        // Let an editor or compiler finish writing before reading.
        tokio::time::sleep(POLL_INTERVAL).await;
        match load_into(&host, &target).await {
            Ok(workload) => {
                tracing::info!(workload = %workload.name, "reloaded");
                print_routes(&host);
                files = watched_files(&target, Some(&workload));
                current = Some(workload);
            }
            Err(e) => {
                let keeping = current
                    .as_ref()
                    .map_or("nothing is running".to_string(), |w| {
                        format!("still serving the previous version of `{}`", w.name)
                    });
                tracing::error!("reload failed, {keeping}:\n{e}");
            }
        }
        seen = stamps(&files);
    }
}

/// Prints the routes people can call.
pub fn print_routes(host: &Host) {
    for route in host.routes() {
        let host_part = if route.host == "*" {
            "any host".to_string()
        } else {
            format!("host {}", route.host)
        };
        let _ = writeln!(
            std::io::stdout().lock(),
            "  {} ({host_part}) -> workload `{}`, component `{}`",
            route.path,
            route.workload,
            route.component
        );
    }
}
