//! Turning a marked YAML tree into typed values while collecting every problem.
//!
//! Each helper reports what is wrong at the node's position and returns `None`,
//! so decoding carries on and one run finds all the problems of a manifest.

use std::collections::BTreeMap;

use crate::diagnostics::Diagnostic;
use crate::yaml::{Node, Pos, Value};

/// Collects diagnostics while a manifest is decoded.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// The entries of a mapping whose keys were checked against the known fields.
pub(crate) struct Fields<'a> {
    entries: &'a [(Node, Node)],
    /// Where the mapping starts.
    pub(crate) pos: Pos,
}

impl<'a> Fields<'a> {
    /// The value of `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| scalar_text(k) == Some(name))
            .map(|(_, v)| v)
    }
}

impl Decoder {
    pub(crate) fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.report(Diagnostic::new(pos, message));
    }

    /// The entries of a mapping, with duplicate keys reported.
    pub(crate) fn map<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a [(Node, Node)]> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node.pos,
                format!("{what} must be a mapping, found {}", node.kind()),
            );
            return None;
        };
        let mut seen = BTreeMap::new();
        for (key, _) in entries {
            let Some(text) = scalar_text(key) else {
                self.error(key.pos, format!("keys of {what} must be scalars"));
                continue;
            };
            if let Some(first) = seen.insert(text, key.pos) {
                self.error(
                    key.pos,
                    format!("`{text}` appears twice in {what} (first at {first})"),
                );
            }
        }
        Some(entries)
    }

    /// A mapping with a fixed set of fields: unknown ones are errors with a suggestion,
    /// missing required ones are errors too.
    pub(crate) fn fields<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        known: &[&str],
        required: &[&str],
    ) -> Option<Fields<'a>> {
        let entries = self.map(node, what)?;
        for (key, _) in entries {
            let Some(name) = scalar_text(key) else {
                continue;
            };
            if !known.contains(&name) {
                let hint = match closest(name, known) {
                    Some(near) => {
                        format!("did you mean `{near}`? {what} takes: {}", known.join(", "))
                    }
                    None => format!("{what} takes: {}", known.join(", ")),
                };
                self.report(
                    Diagnostic::new(key.pos, format!("unknown field `{name}` in {what}"))
                        .with_hint(hint),
                );
            }
        }
        let fields = Fields {
            entries,
            pos: node.pos,
        };
        for name in required {
            if fields.get(name).is_none() {
                self.error(
                    node.pos,
                    format!("{what} is missing the required field `{name}`"),
                );
            }
        }
        Some(fields)
    }

    /// A scalar as text; numbers and booleans are accepted and kept as written.
    pub(crate) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be a string, found {}", node.kind()),
                );
                None
            }
        }
    }

    /// A plain `true` or `false`.
    pub(crate) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar { text, plain: true } if text == "true" => Some(true),
            Value::Scalar { text, plain: true } if text == "false" => Some(false),
            _ => {
                self.error(node.pos, format!("{what} must be true or false"));
                None
            }
        }
    }

    /// A whole number that fits in u32.
    pub(crate) fn u32(&mut self, node: &Node, what: &str) -> Option<u32> {
        match &node.value {
            Value::Scalar { text, plain: true } => match text.parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(
                        node.pos,
                        format!("{what} must be a whole number, found `{text}`"),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be a whole number, found {}", node.kind()),
                );
                None
            }
        }
    }

    /// A mapping of strings to strings (config, environment).
    pub(crate) fn string_map(&mut self, node: &Node, what: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if node.is_null() {
            return out;
        }
        let Some(entries) = self.map(node, what) else {
            return out;
        };
        for (key, value) in entries {
            let key_text = self.string(key, &format!("a key of {what}"));
            let value_text = self.string(value, &format!("the value of {what}"));
            if let (Some(k), Some(v)) = (key_text, value_text) {
                out.insert(k, v);
            }
        }
        out
    }

    /// A value parsed by `parse`, whose message is reported at the node.
    pub(crate) fn parsed<T, E: std::fmt::Display>(
        &mut self,
        node: &Node,
        what: &str,
        hint: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.string(node, what)?;
        match parse(&text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.report(
                    Diagnostic::new(node.pos, format!("{what}: {message}")).with_hint(hint),
                );
                None
            }
        }
    }
}

/// The text of a scalar node.
pub(crate) fn scalar_text(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// The known name nearest to `name`, if it is a plausible typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names() {
        assert_eq!(
            closest("componets", &["components", "routes"]),
            Some("components")
        );
        assert_eq!(closest("zzz", &["components", "routes"]), None);
    }
}
