//! Why a payload was refused, and where.

use std::fmt;

/// What was wrong with a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The payload ended inside a value.
    Truncated,
    /// A list or string claims more than the bytes that could hold it.
    TooLong {
        /// The count the length prefix declares.
        declared: u64,
        /// The fewest bytes each element takes.
        each: usize,
        /// The bytes there are (or may still come, under the per-call cap).
        available: usize,
    },
    /// A list of zero-sized elements longer than [`crate::ZERO_SIZED_LIMIT`].
    TooManyEmpty {
        /// The count the length prefix declares.
        declared: u64,
    },
    /// A case index past the last case.
    NoSuchCase {
        /// The index sent.
        index: u64,
        /// How many cases there are.
        cases: usize,
    },
    /// A bool, option or result status byte other than 0 or 1.
    BadStatus(u8),
    /// An integer whose LEB128 encoding is too long or out of range.
    BadInteger(&'static str),
    /// A string or char that is not UTF-8.
    BadUtf8,
    /// Bytes after the last parameter.
    Trailing(usize),
    /// More bytes than a call may send.
    OverCap(usize),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Truncated => write!(f, "the payload ends inside the value"),
            Problem::TooLong {
                declared,
                each,
                available,
            } => write!(
                f,
                "declares {declared} elements of at least {each} byte(s) each, but only {available} bytes can follow"
            ),
            Problem::TooManyEmpty { declared } => write!(
                f,
                "declares {declared} elements that take no bytes (at most {} are taken)",
                crate::ZERO_SIZED_LIMIT
            ),
            Problem::NoSuchCase { index, cases } => {
                write!(f, "case {index} does not exist (there are {cases})")
            }
            Problem::BadStatus(b) => write!(f, "status byte {b} is neither 0 nor 1"),
            Problem::BadInteger(ty) => write!(f, "not a valid LEB128 {ty}"),
            Problem::BadUtf8 => write!(f, "not UTF-8"),
            Problem::Trailing(n) => write!(f, "{n} bytes follow the last parameter"),
            Problem::OverCap(cap) => write!(f, "the parameters exceed {cap} bytes"),
        }
    }
}

/// A refused payload: the problem, the byte offset and the value it was in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameters at byte {offset}{}: {problem}", in_value(.path))]
pub struct PayloadError {
    /// Where in the payload the problem starts.
    pub offset: usize,
    /// The value it was found in, outermost first (`parameter \`key\``, `element 3`, …).
    pub path: Vec<String>,
    /// What was wrong.
    pub problem: Problem,
}

fn in_value(path: &[String]) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (in {})", path.join(", "))
    }
}
