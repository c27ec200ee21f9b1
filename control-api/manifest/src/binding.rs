//! Bindings: which target satisfies which import of a component.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::yaml::Pos;

/// How one import (or a family of imports) of a component is satisfied.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Which imports this binding covers.
    pub import: ImportPattern,
    /// What satisfies them.
    pub target: BindingTarget,
    /// Where the binding was written.
    pub pos: Pos,
}

/// The target of a binding; distribution is always spelled out here.
#[derive(Debug, Clone, PartialEq)]
pub enum BindingTarget {
    /// A built-in host implementation (WASI, config, logging, in-memory keyvalue, …).
    Host,
    /// An export of a co-located component of the same workload, linked in process.
    Component {
        /// The exporting component.
        name: String,
    },
    /// A wRPC call over NATS to a capability provider.
    Provider {
        /// The provider's name on the lattice.
        name: String,
        /// Bound on each call; the host's default applies when absent.
        timeout: Option<Duration>,
        /// Per-binding configuration handed to the provider.
        config: BTreeMap<String, String>,
        /// Config keys whose values are the component's secrets (key → secret
        /// name); the host seals each to the provider's xkey.
        secrets: BTreeMap<String, String>,
        /// Whether the provider answers discovery (`$SRV.INFO`). `false` binds
        /// a wRPC server that announces nothing: its interfaces are not
        /// checked, calls use wrpc-transport-nats, and no secret can be sealed to it.
        announced: bool,
    },
    /// A wRPC call over NATS to an export that another workload serves.
    Workload {
        /// The serving workload.
        name: String,
        /// Bound on each call; the host's default applies when absent.
        timeout: Option<Duration>,
    },
}

impl BindingTarget {
    /// `host`, `component`, `provider` or `workload`, as written in manifests.
    pub fn kind(&self) -> &'static str {
        match self {
            BindingTarget::Host => "host",
            BindingTarget::Component { .. } => "component",
            BindingTarget::Provider { .. } => "provider",
            BindingTarget::Workload { .. } => "workload",
        }
    }
}

/// The left side of a binding: a namespace, a package, an interface (any version),
/// an exact versioned interface, or a plain import name. An interface pattern may
/// carry a `#name` (named interfaces): `wasi:keyvalue/store#cache` binds only the
/// instance the guest calls `cache`, e.g. the bucket it passes to `open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPattern {
    raw: String,
    kind: PatternKind,
    name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    Namespace(String),
    Package(String),
    Interface(String),
    Exact(String),
    Name(String),
}

/// An import name split into its parts: `ns:pkg/iface@version`, or a plain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportName<'a> {
    /// `wasi` in `wasi:http/types@0.2.0`; `None` for plain names.
    pub namespace: Option<&'a str>,
    /// `wasi:http`; `None` for plain names.
    pub package: Option<&'a str>,
    /// The name without its version: `wasi:http/types`, or the plain name.
    pub unversioned: &'a str,
    /// The full name as imported.
    pub full: &'a str,
}

impl<'a> ImportName<'a> {
    /// Splits a component-model import name.
    pub fn parse(full: &'a str) -> Self {
        let unversioned = full.split_once('@').map_or(full, |(name, _)| name);
        match unversioned.split_once(':') {
            Some((namespace, _)) => ImportName {
                namespace: Some(namespace),
                package: Some(unversioned.split_once('/').map_or(unversioned, |(p, _)| p)),
                unversioned,
                full,
            },
            None => ImportName {
                namespace: None,
                package: None,
                unversioned,
                full,
            },
        }
    }
}

/// A binding key that cannot be an import pattern; the message says what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Not a name, namespace, package, interface or exact import.
    #[error(
        "`{0}` is not an import pattern; write `ns:*`, `ns:pkg`, `ns:pkg/interface`, `ns:pkg/interface@version` or a plain import name"
    )]
    NotAPattern(String),
    /// A `#name` on something that is not one interface, or a bad name.
    #[error(
        "`{0}` is not a named interface; write `ns:pkg/interface#name` with a name of letters, digits, `-`, `.` or `_`"
    )]
    BadName(String),
}

impl ImportPattern {
    /// Parses a binding key, or says why it cannot be a pattern.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let Some((pattern, name)) = raw.split_once('#') else {
            return Self::parse_unnamed(raw);
        };
        let unnamed = Self::parse_unnamed(pattern)?;
        let named_kind = matches!(
            unnamed.kind,
            PatternKind::Interface(_) | PatternKind::Exact(_)
        );
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !named_kind || !valid_name {
            return Err(PatternError::BadName(raw.to_string()));
        }
        Ok(ImportPattern {
            raw: raw.to_string(),
            kind: unnamed.kind,
            name: Some(name.to_string()),
        })
    }

    fn parse_unnamed(raw: &str) -> Result<Self, PatternError> {
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        let kind = if let Some(ns) = raw.strip_suffix(":*") {
            valid(ns).then(|| PatternKind::Namespace(ns.to_string()))
        } else if let Some((name, version)) = raw.split_once('@') {
            (name.contains(':') && name.contains('/') && valid(version.replace('+', "").as_str()))
                .then(|| PatternKind::Exact(raw.to_string()))
        } else if let Some((ns, rest)) = raw.split_once(':') {
            match rest.split_once('/') {
                Some((pkg, iface)) => (valid(ns) && valid(pkg) && valid(iface))
                    .then(|| PatternKind::Interface(raw.to_string())),
                None => (valid(ns) && valid(rest)).then(|| PatternKind::Package(raw.to_string())),
            }
        } else {
            valid(raw).then(|| PatternKind::Name(raw.to_string()))
        };
        kind.map(|kind| ImportPattern {
            raw: raw.to_string(),
            kind,
            name: None,
        })
        .ok_or_else(|| PatternError::NotAPattern(raw.to_string()))
    }

    /// The interface this pattern names, without version (`wasi:keyvalue/store`);
    /// `None` for namespace, package and plain-name patterns.
    pub fn interface(&self) -> Option<&str> {
        match &self.kind {
            PatternKind::Interface(name) => Some(name),
            PatternKind::Exact(name) => name.split_once('@').map(|(name, _)| name),
            _ => None,
        }
    }

    /// The instance name after `#`, for a named-interface binding.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How specifically this pattern matches `import` (higher wins), or `None`.
    /// Named patterns match only through [`find_named_binding`].
    pub fn specificity(&self, import: &ImportName<'_>) -> Option<u8> {
        if self.name.is_some() {
            return None;
        }
        self.kind_specificity(import)
    }

    fn kind_specificity(&self, import: &ImportName<'_>) -> Option<u8> {
        match &self.kind {
            PatternKind::Exact(name) => (name == import.full).then_some(4),
            PatternKind::Name(name) => {
                (import.namespace.is_none() && name == import.unversioned).then_some(4)
            }
            PatternKind::Interface(name) => (name == import.unversioned).then_some(3),
            PatternKind::Package(name) => (Some(name.as_str()) == import.package).then_some(2),
            PatternKind::Namespace(ns) => (Some(ns.as_str()) == import.namespace).then_some(1),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for ImportPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The binding that covers `import`: the most specific match wins.
pub fn find_binding<'b>(bindings: &'b [Binding], import: &str) -> Option<&'b Binding> {
    let name = ImportName::parse(import);
    bindings
        .iter()
        .filter_map(|b| b.import.specificity(&name).map(|s| (s, b)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, b)| b)
}

/// The binding of the instance `name` of `import` (a named interface), falling
/// back to the binding of `import` itself when no `#name` binding covers it.
pub fn find_named_binding<'b>(
    bindings: &'b [Binding],
    import: &str,
    name: &str,
) -> Option<&'b Binding> {
    let parsed = ImportName::parse(import);
    bindings
        .iter()
        .filter(|b| b.import.name() == Some(name))
        .filter_map(|b| b.import.kind_specificity(&parsed).map(|s| (s, b)))
        .max_by_key(|(s, _)| *s)
        .map(|(_, b)| b)
        .or_else(|| find_binding(bindings, import))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(pattern: &str, target: BindingTarget) -> Result<Binding, PatternError> {
        Ok(Binding {
            import: ImportPattern::parse(pattern)?,
            target,
            pos: Pos::default(),
        })
    }

    #[test]
    fn most_specific_pattern_wins() -> Result<(), PatternError> {
        let bindings = vec![
            binding("wasi:*", BindingTarget::Host)?,
            binding(
                "wasi:keyvalue/store",
                BindingTarget::Component { name: "kv".into() },
            )?,
        ];
        let kv = find_binding(&bindings, "wasi:keyvalue/store@0.2.0-draft").map(|b| &b.target);
        assert_eq!(kv, Some(&BindingTarget::Component { name: "kv".into() }));
        let io = find_binding(&bindings, "wasi:io/streams@0.2.0").map(|b| &b.target);
        assert_eq!(io, Some(&BindingTarget::Host));
        assert!(find_binding(&bindings, "acme:billing/api").is_none());
        Ok(())
    }

    #[test]
    fn patterns_are_checked() {
        for good in [
            "wasi:*",
            "wasi:http",
            "wasi:http/types",
            "wasi:http/types@0.2.0",
            "greet",
            "wasi:keyvalue/store#cache",
            "wasi:keyvalue/store@0.2.0-draft#cache",
        ] {
            assert!(ImportPattern::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "wasi:",
            ":http",
            "wasi:http/",
            "a b",
            "wasi:http@0.2",
            "wasi:keyvalue/store#",
            "wasi:keyvalue#cache",
            "wasi:*#cache",
            "greet#x",
            "wasi:keyvalue/store#a b",
        ] {
            assert!(ImportPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn named_bindings_cover_only_their_name() -> Result<(), PatternError> {
        let kv = "wasi:keyvalue/store@0.2.0-draft";
        let bindings = vec![
            binding("wasi:*", BindingTarget::Host)?,
            binding(
                "wasi:keyvalue/store#cache",
                BindingTarget::Component { name: "c".into() },
            )?,
        ];
        // An unnamed lookup never picks a named binding.
        assert_eq!(
            find_binding(&bindings, kv).map(|b| &b.target),
            Some(&BindingTarget::Host)
        );
        let cache = find_named_binding(&bindings, kv, "cache").map(|b| &b.target);
        assert_eq!(cache, Some(&BindingTarget::Component { name: "c".into() }));
        let other = find_named_binding(&bindings, kv, "sessions").map(|b| &b.target);
        assert_eq!(other, Some(&BindingTarget::Host));
        Ok(())
    }
}
