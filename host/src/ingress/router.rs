//! Routing by Host header and path prefix across every running workload.

use std::collections::HashMap;
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

/// One declared route, kept for printing.
struct Entry {
    /// Lowercase host, `*.suffix`, or `None` for any.
    host: Option<String>,
    /// Prefix without a trailing slash (`""` for `/`).
    prefix: String,
    target: Target,
}

/// The routes of one host pattern, by path prefix.
struct Paths<T = Target> {
    by_prefix: HashMap<String, T>,
    /// The longest prefix: no longer part of a path is looked up.
    longest: usize,
}

impl<T> Default for Paths<T> {
    fn default() -> Self {
        Paths {
            by_prefix: HashMap::new(),
            longest: 0,
        }
    }
}

impl<T: Clone> Paths<T> {
    fn insert(&mut self, prefix: &str, target: &T) {
        self.longest = self.longest.max(prefix.len());
        // The first route declared for a prefix wins, as it always has.
        self.by_prefix
            .entry(prefix.to_string())
            .or_insert_with(|| target.clone());
    }

    /// The route with the longest prefix of `path` on a segment boundary:
    /// one lookup per `/` within the longest prefix.
    fn find(&self, path: &str) -> Option<&T> {
        if self.by_prefix.is_empty() {
            return None;
        }
        if path.len() <= self.longest
            && let Some(target) = self.by_prefix.get(path)
        {
            return Some(target);
        }
        let mut end = path.len().min(self.longest + 1);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        while let Some(slash) = path[..end].rfind('/') {
            if let Some(target) = self.by_prefix.get(&path[..slash]) {
                return Some(target);
            }
            end = slash;
        }
        self.by_prefix.get("")
    }
}

/// An immutable routing table, indexed: a request costs a hash lookup per
/// label of its host and per segment of its path, however many routes there
/// are. A new table replaces it whole when workloads change.
#[derive(Default)]
pub struct RouteTable {
    /// Exact hosts.
    exact: HashMap<String, Paths>,
    /// `*.suffix` patterns, by suffix.
    wildcard: HashMap<String, Paths>,
    /// Routes for any host.
    any: Paths,
    /// Every route, in match order, for people.
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
    /// The table serving `workloads`: exact hosts beat wildcards (the longest
    /// suffix first) beat any host; then the longest path prefix wins.
    pub(crate) fn new<'a>(workloads: impl IntoIterator<Item = &'a Arc<LoadedWorkload>>) -> Self {
        let mut table = RouteTable::default();
        for workload in workloads {
            for route in &workload.manifest.routes {
                let Some(component) = workload.component_index(&route.component) else {
                    continue;
                };
                table.entries.push(Entry {
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
        for e in &table.entries {
            let paths = match e.host.as_deref() {
                None => &mut table.any,
                Some(h) => match h.strip_prefix("*.") {
                    Some(suffix) => table.wildcard.entry(suffix.to_string()).or_default(),
                    None => table.exact.entry(h.to_string()).or_default(),
                },
            };
            paths.insert(&e.prefix, &e.target);
        }
        table.entries.sort_by_key(|e| {
            let host_rank = match &e.host {
                Some(h) if !h.starts_with("*.") => 0,
                Some(_) => 1,
                None => 2,
            };
            (host_rank, std::cmp::Reverse(e.prefix.len()))
        });
        table
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
        if let Some(host) = host.as_deref() {
            if let Some(found) = self.exact.get(host).and_then(|p| p.find(path)) {
                return Some(found);
            }
            if !self.wildcard.is_empty() {
                for suffix in wildcard_suffixes(host) {
                    let found = self.wildcard.get(suffix).and_then(|p| p.find(path));
                    if found.is_some() {
                        return found;
                    }
                }
            }
        }
        self.any.find(path)
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

/// The suffixes `*.suffix` patterns may name for `host`, most specific first:
/// `b.a.com` gives `a.com`, then `com` (a label must precede the suffix).
fn wildcard_suffixes(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.')
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .map(|i| &host[i + 1..])
        .filter(|suffix| !suffix.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(prefixes: &[&'static str]) -> Paths<&'static str> {
        let mut paths = Paths::default();
        for p in prefixes {
            paths.insert(p, p);
        }
        paths
    }

    #[test]
    fn the_longest_prefix_wins_on_segment_boundaries() {
        let p = paths(&["", "/api", "/api/v1", "/static"]);
        assert_eq!(p.find("/anything"), Some(&""));
        assert_eq!(p.find("/api"), Some(&"/api"));
        assert_eq!(p.find("/api/"), Some(&"/api"));
        assert_eq!(p.find("/api/v1/users"), Some(&"/api/v1"));
        assert_eq!(p.find("/api/v10"), Some(&"/api"));
        assert_eq!(p.find("/apix"), Some(&""));
        assert_eq!(p.find("*"), Some(&""));
        assert_eq!(
            p.find(&format!("/static{}", "/x".repeat(10_000))),
            Some(&"/static")
        );
        let no_root = paths(&["/api"]);
        assert_eq!(no_root.find("/apix"), None);
        assert_eq!(no_root.find("/é/api"), None);
    }

    #[test]
    fn wildcards_go_from_the_most_specific_suffix() {
        assert_eq!(
            wildcard_suffixes("b.a.com").collect::<Vec<_>>(),
            ["a.com", "com"]
        );
        assert_eq!(wildcard_suffixes("a.com").collect::<Vec<_>>(), ["com"]);
        assert_eq!(wildcard_suffixes(".com").count(), 0);
        assert_eq!(wildcard_suffixes("com.").count(), 0);
    }
}
