//! Checks across a decoded workload: references between its parts must resolve.
//!
//! Checks that need the component binaries (imports, exports) run in the host,
//! which reports them with the same positions.

use std::collections::{BTreeMap, BTreeSet};

use crate::binding::BindingTarget;
use crate::decode::Decoder;
use crate::diagnostics::Diagnostic;
use crate::manifest::Workload;

pub(crate) fn check(workload: &Workload, d: &mut Decoder) {
    let names: BTreeSet<&str> = workload
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let known = if names.is_empty() {
        "none are declared".to_string()
    } else {
        names.iter().copied().collect::<Vec<_>>().join(", ")
    };
    for route in &workload.routes {
        if !names.contains(route.component.as_str()) {
            d.report(
                Diagnostic::new(
                    route.pos,
                    format!(
                        "route names component `{}`, which the workload does not have",
                        route.component
                    ),
                )
                .with_hint(format!("components: {known}")),
            );
        }
        if !route.path.starts_with('/') {
            d.error(
                route.pos,
                format!("route path `{}` must start with `/`", route.path),
            );
        }
        if let Some(host) = &route.host {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.is_empty()
                || !bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            {
                d.report(
                    Diagnostic::new(route.pos, format!("route host `{host}` is not a host name"))
                        .with_hint(
                            "write `example.com` or `*.example.com`; omit `host` to match any",
                        ),
                );
            }
        }
    }
    let mut exported = BTreeMap::new();
    for export in &workload.exports {
        if !names.contains(export.component.as_str()) {
            d.report(
                Diagnostic::new(
                    export.pos,
                    format!(
                        "export names component `{}`, which the workload does not have",
                        export.component
                    ),
                )
                .with_hint(format!("components: {known}")),
            );
        }
        if let Some(first) = exported.insert(export.interface.as_str(), export.pos) {
            d.error(
                export.pos,
                format!(
                    "`{}` is already exported at {first}; a workload serves each interface once",
                    export.interface
                ),
            );
        }
    }
    let mut seen = BTreeMap::new();
    for route in &workload.routes {
        let key = (
            route.host.as_deref().map(str::to_ascii_lowercase),
            route.path.trim_end_matches('/').to_string(),
        );
        if let Some(first) = seen.insert(key, route.pos) {
            d.error(
                route.pos,
                format!("this route duplicates the one at {first}"),
            );
        }
    }
    for component in &workload.components {
        for binding in &component.bindings {
            if let BindingTarget::Provider { secrets, .. } = &binding.target {
                for (key, secret) in secrets {
                    if !component.secrets.iter().any(|s| &s.name == secret) {
                        d.report(
                            Diagnostic::new(binding.pos, format!(
                                "binding `{}` config `{key}` names secret `{secret}`, which component `{}` does not list under `secrets`",
                                binding.import, component.name
                            ))
                            .with_hint("add it to the component's `secrets`, with where it comes from"),
                        );
                    }
                }
            }
            if let BindingTarget::Component { name } = &binding.target {
                if name == &component.name {
                    d.error(
                        binding.pos,
                        format!("component `{name}` cannot be bound to itself"),
                    );
                } else if !names.contains(name.as_str()) {
                    d.report(
                        Diagnostic::new(binding.pos, format!("binding `{}` names component `{name}`, which the workload does not have", binding.import))
                            .with_hint(format!("components: {known}")),
                    );
                }
            }
        }
    }
    if let Some(cycle) = link_cycle(workload) {
        let pos = workload
            .components
            .iter()
            .find(|c| c.name == cycle[0])
            .map(|c| c.pos)
            .unwrap_or_default();
        d.report(
            Diagnostic::new(pos, format!("component links form a cycle: {}", cycle.join(" -> ")))
                .with_hint("in-process links must form a tree; break the cycle with a provider or workload binding"),
        );
    }
}

/// A cycle of component-to-component links, if any (they must be instantiated in order).
fn link_cycle(workload: &Workload) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = workload
        .components
        .iter()
        .map(|c| {
            let targets = c.bindings.iter().filter_map(|b| match &b.target {
                BindingTarget::Component { name } => Some(name.as_str()),
                _ => None,
            });
            (c.name.as_str(), targets.collect())
        })
        .collect();
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, &edges, &mut Vec::new(), &mut done))
}
