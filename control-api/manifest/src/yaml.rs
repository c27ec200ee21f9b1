//! A YAML document as a tree whose every node remembers where it was written.
//!
//! serde stops at the first problem and forgets positions; manifests need every
//! problem at once, each with its line and column, so we keep our own tree.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Self {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where the node starts.
    pub pos: Pos,
}

/// The shapes a YAML node can take.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar; `plain` is false for quoted scalars, which are always strings.
    Scalar {
        /// The scalar's text.
        text: String,
        /// Whether it was written without quotes (and so may be a number, bool or null).
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for `null`, `~` and an empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The node's content in a canonical byte form: no comments, positions,
    /// quoting style or mapping order, and without the top-level keys in
    /// `skip`. Two texts that decode alike give the same bytes, so a digest
    /// of them is a version that only a real change moves.
    pub fn canonical(&self, skip: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_canonical(skip, &mut out);
        out
    }

    fn write_canonical(&self, skip: &[&str], out: &mut Vec<u8>) {
        let text = |tag: u8, bytes: &[u8], out: &mut Vec<u8>| {
            out.push(tag);
            out.extend((bytes.len() as u64).to_le_bytes());
            out.extend(bytes);
        };
        match &self.value {
            Value::Scalar { .. } if self.is_null() => out.push(b'n'),
            // Quoting is style: the decoder reads a field's text the same either way.
            Value::Scalar { text: t, .. } => text(b's', t.as_bytes(), out),
            Value::Seq(items) => {
                out.push(b'[');
                for item in items {
                    item.write_canonical(&[], out);
                }
                out.push(b']');
            }
            Value::Map(entries) => {
                let mut entries: Vec<(Vec<u8>, Vec<u8>)> = entries
                    .iter()
                    .filter(|(k, _)| !matches!(&k.value, Value::Scalar { text, .. } if skip.contains(&text.as_str())))
                    .map(|(k, v)| (k.canonical(&[]), v.canonical(&[])))
                    .collect();
                entries.sort();
                out.push(b'{');
                for (k, v) in entries {
                    out.extend(k);
                    out.extend(v);
                }
                out.push(b'}');
            }
        }
    }

    /// A short name of the node's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What the parser said.
    pub message: String,
}

/// The most nodes a document may hold once its aliases are expanded: a
/// few hundred bytes of nested aliases would otherwise expand to billions.
pub const MAX_NODES: usize = 100_000;

/// The most bytes of scalar text a document may hold once its aliases are
/// expanded: an alias of a long string costs one node but copies all of it.
pub const MAX_TEXT: usize = 4 << 20;

/// The deepest a document may nest mappings and sequences.
pub const MAX_DEPTH: usize = 64;

/// Parses the first document of `text`; an empty text is a null node.
/// Aliases are expanded within [`MAX_NODES`], nesting within [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info().to_string(),
        })?;
        if matches!(event, Event::DocumentStart(_)) {
            documents += 1;
            if documents > 1 {
                return Err(SyntaxError {
                    pos: Pos::from_span(&span),
                    message: "a manifest holds one YAML document; found a second `---`".into(),
                });
            }
        }
        builder.push(event, &span)?;
    }
    Ok(builder.root.unwrap_or(Node {
        value: Value::Scalar {
            text: String::new(),
            plain: true,
        },
        pos: Pos { line: 1, column: 1 },
    }))
}

#[derive(Default)]
struct TreeBuilder {
    stack: Vec<(Node, usize)>,
    /// Each anchored node with the nodes and scalar bytes it holds.
    anchors: HashMap<usize, (Node, Size)>,
    root: Option<Node>,
    /// What was built so far, aliases counted at their expanded size.
    built: Size,
}

/// How much a node holds: nodes (itself included) and bytes of scalar text.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    text: usize,
}

impl Size {
    fn add(self, other: Size) -> Size {
        Size {
            nodes: self.nodes.saturating_add(other.nodes),
            text: self.text.saturating_add(other.text),
        }
    }
}

fn size(node: &Node) -> Size {
    let own = Size {
        nodes: 1,
        text: match &node.value {
            Value::Scalar { text, .. } => text.len(),
            _ => 0,
        },
    };
    match &node.value {
        Value::Scalar { .. } => own,
        Value::Seq(items) => items.iter().map(size).fold(own, Size::add),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| size(k).add(size(v)))
            .fold(own, Size::add),
    }
}

impl TreeBuilder {
    /// Counts `more` against the budget.
    fn spend(&mut self, more: Size, pos: Pos) -> Result<(), SyntaxError> {
        self.built = self.built.add(more);
        if self.built.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "the document holds more than {MAX_NODES} nodes once its aliases are expanded"
                ),
            });
        }
        if self.built.text > MAX_TEXT {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "the document holds more than {} MiB of text once its aliases are expanded",
                    MAX_TEXT >> 20
                ),
            });
        }
        Ok(())
    }

    fn open(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                pos: node.pos,
                message: format!("the document nests deeper than {MAX_DEPTH} levels"),
            });
        }
        self.stack.push((node, anchor));
        Ok(())
    }

    fn push(&mut self, event: Event<'_>, span: &Span) -> Result<(), SyntaxError> {
        let pos = Pos::from_span(span);
        let own = match &event {
            Event::Scalar(text, ..) => Some(text.len()),
            Event::SequenceStart(..) | Event::MappingStart(..) => Some(0),
            _ => None,
        };
        if let Some(text) = own {
            self.spend(Size { nodes: 1, text }, pos)?;
        }
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let node = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    },
                    pos,
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.open(
                Node {
                    value: Value::Seq(Vec::new()),
                    pos,
                },
                anchor,
            )?,
            Event::MappingStart(anchor, _) => self.open(
                Node {
                    value: Value::Map(Vec::new()),
                    pos,
                },
                anchor,
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor)) = self.stack.pop() {
                    self.finish(node, anchor);
                }
            }
            Event::Alias(id) => {
                let expanded =
                    self.anchors
                        .get(&id)
                        .map(|(_, expanded)| *expanded)
                        .ok_or(SyntaxError {
                            pos,
                            message: "alias to an unknown anchor".into(),
                        })?;
                // Counted before it is copied, so a copy never outgrows the budget.
                self.spend(expanded, pos)?;
                if let Some((node, _)) = self.anchors.get(&id) {
                    let node = node.clone();
                    self.finish(node, 0);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size(&node)));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, _)) => match &mut parent.value {
                Value::Seq(items) => items.push(node),
                Value::Map(entries) => match entries.last_mut() {
                    // A key waits for its value as a pair whose value is a placeholder.
                    Some((_, value)) if value.pos == PENDING => *value = node,
                    _ => entries.push((
                        node,
                        Node {
                            value: Value::Seq(Vec::new()),
                            pos: PENDING,
                        },
                    )),
                },
                Value::Scalar { .. } => {}
            },
        }
    }
}

const PENDING: Pos = Pos { line: 0, column: 0 };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() -> Result<(), SyntaxError> {
        let root = parse("a: 1\nb:\n  - x\n")?;
        let Value::Map(entries) = &root.value else {
            panic!("expected a map, got {root:?}");
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[1].1.pos.line, 3);
        Ok(())
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: [1, 2\nb: 3").err();
        assert!(
            matches!(err, Some(SyntaxError { pos, .. }) if pos.line >= 1),
            "{err:?}"
        );
    }

    #[test]
    fn nested_aliases_are_refused_at_the_budget() {
        // Nine levels of nine aliases each: 9^9 nodes if expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse(&text).err();
        assert!(
            matches!(&err, Some(SyntaxError { message, pos }) if message.contains("100000 nodes") && pos.line > 1),
            "{err:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn aliases_of_long_strings_are_counted_by_their_text() {
        let long = "x".repeat(100 << 10);
        let text = format!("a: &a \"{long}\"\nb: [{}]\n", ["*a"; 100].join(", "));
        let err = parse(&text).err();
        assert!(
            matches!(&err, Some(SyntaxError { message, .. }) if message.contains("MiB of text")),
            "{err:?}"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let err = parse(&text).err();
        assert!(
            matches!(&err, Some(SyntaxError { message, pos }) if message.contains("deeper than 64") && pos.column == 65),
            "{err:?}"
        );
    }

    #[test]
    fn aliases_copy_the_anchored_node() -> Result<(), SyntaxError> {
        let root = parse("a: &x {k: v}\nb: *x\n")?;
        let Value::Map(entries) = &root.value else {
            panic!("expected a map");
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
        Ok(())
    }
}
