//! Routing by Host header and path prefix across every running workload.

use std::sync::Arc;

use crate::workload::LoadedWorkload;

/// Where a request goes: a workload version and its component.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) workload: Arc<LoadedWorkload>,
    pub(crate) component: usize,
    /// The route's path as declared: `http.route` in spans and metrics.
    pub(crate) route: Arc<str>,
}

struct Entry {
    /// Lowercase host, `*.suffix`, or `None` for any.
    host: Option<String>,
    /// Prefix without a trailing slash (`""` for `/`).
    prefix: String,
    target: Target,
}

/// An immutable routing table; a new one replaces it whole when workloads change.
#[derive(Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
}

/// One route as printed for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The workload.
    pub workload: String,
    /// The component.
    pub component: String,
    /// The host pattern, `*` for any.
    pub host: String,
    /// The path prefix.
    pub path: String,
}

impl RouteTable {
    /// The table serving `workloads`, most specific route first.
    pub(crate) fn new<'a>(workloads: impl IntoIterator<Item = &'a Arc<LoadedWorkload>>) -> Self {
        let mut entries = Vec::new();
        for workload in workloads {
            for route in &workload.manifest.routes {
                let Some(component) = workload.component_index(&route.component) else {
                    continue;
                };
                entries.push(Entry {
                    host: route.host.as_ref().map(|h| h.to_ascii_lowercase()),
                    prefix: route.path.trim_end_matches('/').to_string(),
                    target: Target {
                        workload: workload.clone(),
                        component,
                        route: route.path.as_str().into(),
                    },
                });
            }
        }
        // Exact hosts beat wildcards beat any host; then longer prefixes win.
        entries.sort_by_key(|e| {
            let host_rank = match &e.host {
                Some(h) if !h.starts_with("*.") => 0,
                Some(_) => 1,
                None => 2,
            };
            (host_rank, std::cmp::Reverse(e.prefix.len()))
        });
        RouteTable { entries }
    }

    /// The target for `host` (port ignored) and `path`.
    pub(crate) fn find(&self, host: Option<&str>, path: &str) -> Option<&Target> {
        let host = host.map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, port)| {
                    if port.chars().all(|c| c.is_ascii_digit()) {
                        name
                    } else {
                        h
                    }
                })
                .to_ascii_lowercase()
        });
        self.entries
            .iter()
            .find(|e| {
                host_matches(e.host.as_deref(), host.as_deref()) && prefix_matches(&e.prefix, path)
            })
            .map(|e| &e.target)
    }

    /// Every route, in match order.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.entries
            .iter()
            .map(|e| RouteInfo {
                workload: e.target.workload.name().to_string(),
                component: e.target.workload.components[e.target.component]
                    .name
                    .clone(),
                host: e.host.clone().unwrap_or_else(|| "*".into()),
                path: if e.prefix.is_empty() {
                    "/".into()
                } else {
                    e.prefix.clone()
                },
            })
            .collect()
    }
}

fn host_matches(pattern: Option<&str>, host: Option<&str>) -> bool {
    match (pattern, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(p), Some(h)) => match p.strip_prefix("*.") {
            Some(suffix) => h
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => p == h,
        },
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, not `/apix`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segments() {
        assert!(prefix_matches("", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/v1"));
        assert!(!prefix_matches("/api", "/apix"));
    }

    #[test]
    fn hosts_match_exactly_or_by_wildcard() {
        assert!(host_matches(None, Some("x")));
        assert!(host_matches(Some("a.com"), Some("a.com")));
        assert!(host_matches(Some("*.a.com"), Some("b.a.com")));
        assert!(!host_matches(Some("*.a.com"), Some("a.com")));
        assert!(!host_matches(Some("a.com"), None));
    }
}
