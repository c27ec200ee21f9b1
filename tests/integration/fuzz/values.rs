//! Random wRPC encodings of a signature's parameters, valid and mutated.

use trellis_wire::{Shape, Signature};

/// An encoding, with where its length prefixes start (to mutate them).
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub lengths: Vec<usize>,
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Strings from a small alphabet, so the few payloads that do real work
/// touch few distinct names.
fn text(rng: &mut fastrand::Rng) -> String {
    let n = rng.usize(0..6);
    (0..n)
        .map(|_| rng.choice(['a', 'b', 'k', 'é']).unwrap_or('a'))
        .collect()
}

fn value(rng: &mut fastrand::Rng, shape: &Shape, out: &mut Encoded, depth: usize) {
    let bytes = &mut out.bytes;
    match shape {
        Shape::Bool => bytes.push(rng.u8(0..2)),
        Shape::U8 | Shape::S8 => bytes.push(rng.u8(..)),
        Shape::U16 => leb(bytes, rng.u64(0..=u64::from(u16::MAX))),
        Shape::U32 => leb(bytes, rng.u64(0..=u64::from(u32::MAX))),
        Shape::U64 => leb(bytes, rng.u64(..)),
        Shape::S16 => sleb(bytes, rng.i64(i64::from(i16::MIN)..=i64::from(i16::MAX))),
        Shape::S32 => sleb(bytes, rng.i64(i64::from(i32::MIN)..=i64::from(i32::MAX))),
        Shape::S64 => sleb(bytes, rng.i64(..)),
        Shape::F32 => bytes.extend(rng.f32().to_le_bytes()),
        Shape::F64 => bytes.extend(rng.f64().to_le_bytes()),
        Shape::Char => {
            let mut buf = [0; 4];
            bytes.extend(rng.char(..).encode_utf8(&mut buf).as_bytes());
        }
        Shape::String | Shape::Handle => {
            let s = text(rng);
            out.lengths.push(bytes.len());
            leb(bytes, s.len() as u64);
            bytes.extend(s.as_bytes());
        }
        Shape::List(element) | Shape::Stream(Some(element)) => {
            let n = if depth > 3 { 0 } else { rng.usize(0..4) };
            let n = if matches!(shape, Shape::Stream(_)) {
                n.max(1)
            } else {
                n
            };
            out.lengths.push(bytes.len());
            leb(bytes, n as u64);
            for _ in 0..n {
                value(rng, element, out, depth + 1);
            }
        }
        Shape::Stream(None) => leb(bytes, 1),
        Shape::Tuple(fields) => {
            for field in fields {
                value(rng, field, out, depth + 1);
            }
        }
        Shape::Variant(cases) => {
            let case = rng.usize(0..cases.len().max(1));
            leb(bytes, case as u64);
            if let Some(Some(payload)) = cases.get(case) {
                value(rng, payload, out, depth + 1);
            }
        }
        Shape::Enum(n) => leb(bytes, rng.u64(0..u64::from((*n).max(1)))),
        Shape::Option(inner) | Shape::Future(Some(inner)) => {
            if rng.bool() {
                bytes.push(1);
                value(rng, inner, out, depth + 1);
            } else if matches!(shape, Shape::Option(_)) {
                bytes.push(0);
            } else {
                bytes.push(1);
                value(rng, inner, out, depth + 1);
            }
        }
        Shape::Future(None) => bytes.push(1),
        Shape::Result { ok, err } => {
            let is_err = rng.bool();
            bytes.push(u8::from(is_err));
            if let Some(payload) = if is_err { err } else { ok } {
                value(rng, payload, out, depth + 1);
            }
        }
        Shape::Flags(n) => {
            for _ in 0..n.div_ceil(8) {
                bytes.push(rng.u8(..));
            }
        }
    }
}

/// A valid encoding of `signature`'s parameters.
pub fn valid(rng: &mut fastrand::Rng, signature: &Signature) -> Encoded {
    let mut out = Encoded {
        bytes: Vec::new(),
        lengths: Vec::new(),
    };
    for param in &signature.params {
        value(rng, &param.shape, &mut out, 0);
    }
    out
}

/// What a payload was made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Valid,
    Truncated,
    HugeLength,
    Flipped,
    Random,
    Trailing,
}

/// A payload for `signature`: mostly broken, a few valid.
pub fn payload(rng: &mut fastrand::Rng, signature: &Signature) -> (Kind, Vec<u8>) {
    let Encoded { mut bytes, lengths } = valid(rng, signature);
    let kind = match rng.u8(0..100) {
        0..5 => Kind::Valid,
        5..25 => Kind::Truncated,
        25..55 => Kind::HugeLength,
        55..75 => Kind::Flipped,
        75..90 => Kind::Random,
        _ => Kind::Trailing,
    };
    match kind {
        Kind::Valid => {}
        Kind::Truncated if !bytes.is_empty() => bytes.truncate(rng.usize(0..bytes.len())),
        Kind::HugeLength if !lengths.is_empty() => {
            let at = lengths[rng.usize(0..lengths.len())];
            // Cut the old prefix (1 to 5 bytes) and claim four billion elements.
            let old = bytes[at..]
                .iter()
                .position(|b| b & 0x80 == 0)
                .map_or(1, |i| i + 1);
            bytes.splice(at..at + old, [0xff, 0xff, 0xff, 0xff, 0x0f]);
        }
        Kind::Flipped if !bytes.is_empty() => {
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(0..bytes.len());
                bytes[at] ^= 1 << rng.u8(0..8);
            }
        }
        Kind::Trailing => {
            let n = rng.usize(1..8);
            bytes.extend(std::iter::repeat_with(|| rng.u8(..)).take(n));
        }
        _ => {
            let n = rng.usize(0..64);
            bytes = std::iter::repeat_with(|| rng.u8(..)).take(n).collect();
            return (Kind::Random, bytes);
        }
    }
    (kind, bytes)
}
