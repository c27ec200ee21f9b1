//! What a function's parameters look like on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The wire form of one WIT type: enough to walk an encoded value, nothing
/// of names or docs. Type aliases are resolved away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// One byte, 0 or 1.
    Bool,
    /// One byte.
    U8,
    /// One byte.
    S8,
    /// Unsigned LEB128, at most 3 bytes.
    U16,
    /// Signed LEB128, at most 3 bytes.
    S16,
    /// Unsigned LEB128, at most 5 bytes.
    U32,
    /// Signed LEB128, at most 5 bytes.
    S32,
    /// Unsigned LEB128, at most 10 bytes.
    U64,
    /// Signed LEB128, at most 10 bytes.
    S64,
    /// Four bytes, little-endian.
    F32,
    /// Eight bytes, little-endian.
    F64,
    /// One Unicode scalar value in UTF-8.
    Char,
    /// A u32 LEB128 length, then that many bytes of UTF-8.
    String,
    /// A u32 LEB128 count, then that many elements.
    List(Box<Shape>),
    /// The fields one after another (records and tuples alike).
    Tuple(Vec<Shape>),
    /// A u32 LEB128 case index, then the case's payload if it has one.
    Variant(Vec<Option<Shape>>),
    /// A u32 LEB128 case index below the count.
    Enum(u32),
    /// A status byte (0 none, 1 some), then the value if some.
    Option(Box<Shape>),
    /// A status byte (0 ok, 1 err), then that side's payload if it has one.
    Result {
        /// The `ok` payload.
        ok: Option<Box<Shape>>,
        /// The `err` payload.
        err: Option<Box<Shape>>,
    },
    /// One bit per flag, rounded up to whole bytes.
    Flags(u32),
    /// A resource handle: a u32 LEB128 length, then opaque bytes.
    Handle,
    /// A status byte; a ready future carries its value inline. A pending
    /// one's value comes on a sub-stream, which this check does not see.
    Future(Option<Box<Shape>>),
    /// A first chunk (a count and elements); an empty first chunk means the
    /// elements come on a sub-stream, which this check does not see.
    Stream(Option<Box<Shape>>),
}

impl Shape {
    /// The fewest bytes any value of this shape takes, so a count can be
    /// checked against the bytes that could hold it.
    pub fn min_size(&self) -> usize {
        match self {
            Shape::F32 => 4,
            Shape::F64 => 8,
            Shape::Tuple(fields) => fields.iter().map(Shape::min_size).sum(),
            Shape::Flags(n) => n.div_ceil(8) as usize,
            // The case index of an enum or variant, a status byte, a length, one byte.
            _ => 1,
        }
    }

    /// The size of this shape's values if it is fixed and every byte string
    /// of that size is one (`u8`, floats, flags, tuples of them), so a list
    /// of them is checked by its length alone.
    pub fn opaque_size(&self) -> Option<usize> {
        match self {
            Shape::U8 | Shape::S8 => Some(1),
            Shape::F32 => Some(4),
            Shape::F64 => Some(8),
            Shape::Flags(n) => Some(n.div_ceil(8) as usize),
            Shape::Tuple(fields) => fields.iter().map(Shape::opaque_size).sum(),
            _ => None,
        }
    }

    /// Whether values of this shape can carry parts on sub-streams.
    pub fn is_async(&self) -> bool {
        match self {
            Shape::Future(_) | Shape::Stream(_) => true,
            Shape::List(inner) | Shape::Option(inner) => inner.is_async(),
            Shape::Tuple(fields) => fields.iter().any(Shape::is_async),
            Shape::Variant(cases) => cases.iter().flatten().any(Shape::is_async),
            Shape::Result { ok, err } => ok.iter().chain(err.iter()).any(|s| s.is_async()),
            _ => false,
        }
    }
}

/// One named parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// The WIT name, for error messages.
    pub name: String,
    /// Its wire form.
    pub shape: Shape,
}

impl Param {
    /// A parameter called `name` of `shape`.
    pub fn new(name: impl Into<String>, shape: Shape) -> Self {
        Param {
            name: name.into(),
            shape,
        }
    }
}

/// The parameters of one function, in order: a payload is their encodings
/// one after another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The parameters.
    pub params: Vec<Param>,
}

impl Signature {
    /// A function taking `params`.
    pub fn new(params: Vec<Param>) -> Self {
        Signature { params }
    }
}

/// Every function a server may serve, by wRPC instance and function name.
/// A server refuses to serve a function it has no signature for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signatures {
    functions: BTreeMap<String, BTreeMap<String, Signature>>,
}

impl Signatures {
    /// Adds (or replaces) `instance.func`.
    pub fn insert(&mut self, instance: &str, func: &str, signature: Signature) {
        self.functions
            .entry(instance.to_string())
            .or_default()
            .insert(func.to_string(), signature);
    }

    /// The signature of `instance.func`, if known.
    pub fn get(&self, instance: &str, func: &str) -> Option<&Signature> {
        self.functions.get(instance)?.get(func)
    }

    /// Every `(instance, function)` known, in order.
    pub fn functions(&self) -> impl Iterator<Item = (&str, &str, &Signature)> {
        self.functions.iter().flat_map(|(instance, funcs)| {
            funcs
                .iter()
                .map(move |(func, sig)| (instance.as_str(), func.as_str(), sig))
        })
    }

    /// Adds every function of `other`.
    pub fn extend(&mut self, other: Signatures) {
        for (instance, funcs) in other.functions {
            self.functions.entry(instance).or_default().extend(funcs);
        }
    }

    /// Reads signatures written by a build script (see `write_signatures`).
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The form a build script writes.
    pub fn to_json(&self) -> String {
        // A map of plain data always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}
