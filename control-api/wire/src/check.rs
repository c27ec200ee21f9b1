//! The walk over an encoded payload.

use crate::{PayloadError, Problem, Shape, Signature};

/// The most elements a list of zero-sized values (`list<tuple<>>`) may
/// declare: such a list costs no bytes, so only a count bounds the decoder's work.
pub const ZERO_SIZED_LIMIT: u64 = 1 << 16;

/// How far a streamed payload got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every parameter is there, in the first `n` bytes.
    Complete(usize),
    /// Valid so far; nothing more can be checked before the payload holds
    /// at least this many bytes.
    Incomplete(usize),
}

/// Checks a whole payload: every length against the bytes present, nothing
/// after the last parameter.
pub fn check(signature: &Signature, payload: &[u8]) -> Result<(), PayloadError> {
    let mut walk = Walk::new(payload, None);
    match walk.params(signature) {
        Ok(()) if walk.pos == payload.len() => Ok(()),
        Ok(()) => Err(walk.refuse(Problem::Trailing(payload.len() - walk.pos))),
        Err(Stop::Bad(e)) => Err(e),
        Err(Stop::More(_)) => Err(walk.refuse(Problem::Truncated)),
    }
}

/// Checks the first bytes of a payload that is still arriving, with lengths
/// checked against `cap` bytes in all: what has arrived is valid so far, or
/// complete, or refused.
pub fn check_prefix(
    signature: &Signature,
    prefix: &[u8],
    cap: usize,
) -> Result<Progress, PayloadError> {
    let mut walk = Walk::new(prefix, Some(cap));
    if prefix.len() > cap {
        return Err(walk.refuse(Problem::OverCap(cap)));
    }
    match walk.params(signature) {
        Ok(()) => Ok(Progress::Complete(walk.pos)),
        Err(Stop::More(needed)) => Ok(Progress::Incomplete(needed)),
        Err(Stop::Bad(e)) => Err(e),
    }
}

enum Stop {
    /// The bytes so far end inside a value, and more may come: this many in all
    /// are needed before the walk can go on.
    More(usize),
    Bad(PayloadError),
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Param(&'a str),
    Element(u64),
    Field(usize),
    Case(u64),
}

struct Walk<'a, 's> {
    bytes: &'a [u8],
    pos: usize,
    /// `Some(cap)` while more bytes may come, up to `cap` in all.
    cap: Option<usize>,
    path: Vec<Step<'s>>,
}

impl<'a, 's> Walk<'a, 's> {
    fn new(bytes: &'a [u8], cap: Option<usize>) -> Self {
        Walk {
            bytes,
            pos: 0,
            cap,
            path: Vec::new(),
        }
    }

    fn refuse(&self, problem: Problem) -> PayloadError {
        PayloadError {
            offset: self.pos,
            path: self
                .path
                .iter()
                .map(|step| match step {
                    Step::Param(name) => format!("parameter `{name}`"),
                    Step::Element(i) => format!("element {i}"),
                    Step::Field(i) => format!("field {i}"),
                    Step::Case(i) => format!("case {i}"),
                })
                .collect(),
            problem,
        }
    }

    fn bad(&self, problem: Problem) -> Stop {
        Stop::Bad(self.refuse(problem))
    }

    /// Bytes that are here or may still come.
    fn available(&self) -> usize {
        self.cap
            .unwrap_or(self.bytes.len())
            .saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(taken) => {
                self.pos += n;
                Ok(taken)
            }
            None => match self.cap {
                Some(_) if n <= self.available() => Err(Stop::More(self.pos + n)),
                Some(cap) => Err(self.bad(Problem::OverCap(cap))),
                None => Err(self.bad(Problem::Truncated)),
            },
        }
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    fn status(&mut self) -> Result<bool, Stop> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => {
                self.pos -= 1;
                Err(self.bad(Problem::BadStatus(b)))
            }
        }
    }

    /// An unsigned LEB128 integer of at most `bits` bits.
    fn unsigned(&mut self, bits: u32, name: &'static str) -> Result<u64, Stop> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..bits.div_ceil(7) {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            let shift = 7 * i;
            if shift + 7 > bits && low >> (bits - shift) != 0 {
                self.pos = start;
                return Err(self.bad(Problem::BadInteger(name)));
            }
            value |= low << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.pos = start;
        Err(self.bad(Problem::BadInteger(name)))
    }

    /// A signed LEB128 integer of at most `bits` bits.
    fn signed(&mut self, bits: u32, name: &'static str) -> Result<(), Stop> {
        let start = self.pos;
        let mut value: i128 = 0;
        for i in 0..bits.div_ceil(7) {
            let b = self.byte()?;
            let shift = 7 * i;
            value |= i128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b & 0x40 != 0 {
                    value -= 1i128 << (shift + 7);
                }
                let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
                if value < min || value > max {
                    break;
                }
                return Ok(());
            }
        }
        self.pos = start;
        Err(self.bad(Problem::BadInteger(name)))
    }

    /// A count of elements that take at least `each` bytes, checked against
    /// the bytes that could hold them.
    fn count(&mut self, each: usize) -> Result<u64, Stop> {
        let start = self.pos;
        let declared = self.unsigned(32, "u32 length")?;
        let fits = if each == 0 {
            declared <= ZERO_SIZED_LIMIT
        } else {
            declared.saturating_mul(each as u64) <= self.available() as u64
        };
        if fits {
            return Ok(declared);
        }
        let available = self.available();
        self.pos = start;
        Err(self.bad(if each == 0 {
            Problem::TooManyEmpty { declared }
        } else {
            Problem::TooLong {
                declared,
                each,
                available,
            }
        }))
    }

    fn case(&mut self, cases: usize) -> Result<u64, Stop> {
        let start = self.pos;
        let index = self.unsigned(32, "u32 case")?;
        if index < cases as u64 {
            return Ok(index);
        }
        self.pos = start;
        Err(self.bad(Problem::NoSuchCase { index, cases }))
    }

    fn params(&mut self, signature: &'s Signature) -> Result<(), Stop> {
        for param in &signature.params {
            self.path.push(Step::Param(&param.name));
            self.value(&param.shape)?;
            self.path.pop();
        }
        Ok(())
    }

    fn value(&mut self, shape: &Shape) -> Result<(), Stop> {
        match shape {
            Shape::Bool => {
                self.status()?;
            }
            Shape::U8 | Shape::S8 => {
                self.take(1)?;
            }
            Shape::U16 => {
                self.unsigned(16, "u16")?;
            }
            Shape::U32 => {
                self.unsigned(32, "u32")?;
            }
            Shape::U64 => {
                self.unsigned(64, "u64")?;
            }
            Shape::S16 => self.signed(16, "s16")?,
            Shape::S32 => self.signed(32, "s32")?,
            Shape::S64 => self.signed(64, "s64")?,
            Shape::F32 => {
                self.take(4)?;
            }
            Shape::F64 => {
                self.take(8)?;
            }
            Shape::Char => self.char()?,
            Shape::String => {
                let n = self.count(1)?;
                let start = self.pos;
                let text = self.take(n as usize)?;
                if std::str::from_utf8(text).is_err() {
                    self.pos = start;
                    return Err(self.bad(Problem::BadUtf8));
                }
            }
            Shape::Handle => {
                let n = self.count(1)?;
                self.take(n as usize)?;
            }
            Shape::List(element) => {
                let n = self.count(element.min_size())?;
                // Elements any bytes are valid for are skipped whole.
                if let Some(size) = element.opaque_size() {
                    self.take(n as usize * size)?;
                    return Ok(());
                }
                for i in 0..n {
                    self.path.push(Step::Element(i));
                    self.value(element)?;
                    self.path.pop();
                }
            }
            Shape::Tuple(fields) => {
                for (i, field) in fields.iter().enumerate() {
                    self.path.push(Step::Field(i));
                    self.value(field)?;
                    self.path.pop();
                }
            }
            Shape::Variant(cases) => {
                let index = self.case(cases.len())?;
                if let Some(Some(payload)) = cases.get(index as usize) {
                    self.path.push(Step::Case(index));
                    self.value(payload)?;
                    self.path.pop();
                }
            }
            Shape::Enum(cases) => {
                self.case(*cases as usize)?;
            }
            Shape::Option(inner) => {
                if self.status()? {
                    self.value(inner)?;
                }
            }
            Shape::Result { ok, err } => {
                let payload = if self.status()? { err } else { ok };
                if let Some(payload) = payload {
                    self.value(payload)?;
                }
            }
            Shape::Flags(n) => {
                self.take(n.div_ceil(8) as usize)?;
            }
            Shape::Future(inner) => {
                if self.status()?
                    && let Some(inner) = inner
                {
                    self.value(inner)?;
                }
            }
            Shape::Stream(element) => {
                let each = element.as_deref().map_or(0, Shape::min_size);
                let n = self.count(each)?;
                if let Some(element) = element {
                    for i in 0..n {
                        self.path.push(Step::Element(i));
                        self.value(element)?;
                        self.path.pop();
                    }
                }
            }
        }
        Ok(())
    }

    fn char(&mut self) -> Result<(), Stop> {
        let start = self.pos;
        let first = self.byte()?;
        let len = match first {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        if len == 0 {
            self.pos = start;
            return Err(self.bad(Problem::BadUtf8));
        }
        self.take(len - 1)?;
        if std::str::from_utf8(&self.bytes[start..self.pos]).is_err() {
            self.pos = start;
            return Err(self.bad(Problem::BadUtf8));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Param;

    fn sig(shapes: Vec<Shape>) -> Signature {
        Signature::new(
            shapes
                .into_iter()
                .enumerate()
                .map(|(i, s)| Param::new(format!("p{i}"), s))
                .collect(),
        )
    }

    /// The refusal of a payload the test expects refused.
    fn refused<T: std::fmt::Debug>(result: Result<T, PayloadError>) -> PayloadError {
        match result {
            Err(e) => e,
            Ok(v) => panic!("accepted: {v:?}"),
        }
    }

    fn list(s: Shape) -> Shape {
        Shape::List(Box::new(s))
    }

    #[test]
    fn valid_payloads_pass() {
        let s = sig(vec![Shape::String, list(Shape::U8), Shape::U64, Shape::S32]);
        // "ab", [1, 2], 300, -2
        let payload = [2, b'a', b'b', 2, 1, 2, 0xac, 0x02, 0x7e];
        assert_eq!(check(&s, &payload), Ok(()));
        assert_eq!(
            check_prefix(&s, &payload, 1024),
            Ok(Progress::Complete(payload.len()))
        );
        assert_eq!(
            check_prefix(&s, &payload[..4], 1024),
            Ok(Progress::Incomplete(6))
        );
    }

    #[test]
    fn a_huge_count_is_refused_before_anything_is_read() {
        let s = sig(vec![list(Shape::Tuple(vec![
            Shape::String,
            list(Shape::U8),
        ]))]);
        let e = refused(check(&s, &[0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert_eq!(e.offset, 0);
        assert_eq!(
            e.problem,
            Problem::TooLong {
                declared: u64::from(u32::MAX),
                each: 2,
                available: 0
            }
        );
        assert_eq!(e.path, vec!["parameter `p0`".to_string()]);
        // Streamed, the same count is checked against the per-call cap.
        let e = refused(check_prefix(&s, &[0xff, 0xff, 0xff, 0xff, 0x0f], 1 << 20));
        assert!(matches!(e.problem, Problem::TooLong { .. }), "{e}");
    }

    #[test]
    fn zero_sized_elements_are_counted() {
        let s = sig(vec![list(Shape::Tuple(vec![]))]);
        assert_eq!(check(&s, &[3]), Ok(()));
        let e = refused(check(&s, &[0xff, 0xff, 0xff, 0xff, 0x0f]));
        assert!(matches!(e.problem, Problem::TooManyEmpty { .. }), "{e}");
    }

    #[test]
    fn bad_bytes_are_named_with_their_place() {
        let s = sig(vec![list(Shape::Option(Box::new(Shape::Enum(2))))]);
        let e = refused(check(&s, &[2, 1, 1, 1, 5]));
        assert_eq!(e.offset, 4);
        assert_eq!(e.problem, Problem::NoSuchCase { index: 5, cases: 2 });
        assert_eq!(
            e.to_string(),
            "invalid parameters at byte 4 (in parameter `p0`, element 1): case 5 does not exist (there are 2)"
        );
        let e = refused(check(&s, &[1, 2]));
        assert_eq!(e.problem, Problem::BadStatus(2));
        assert_eq!(refused(check(&s, &[0, 0])).problem, Problem::Trailing(1));
        assert_eq!(refused(check(&s, &[1, 1])).problem, Problem::Truncated);
    }

    #[test]
    fn integers_are_range_checked() {
        let u16s = sig(vec![Shape::U16]);
        assert_eq!(check(&u16s, &[0xff, 0xff, 0x03]), Ok(()));
        assert!(check(&u16s, &[0xff, 0xff, 0x04]).is_err());
        assert!(check(&u16s, &[0x80, 0x80, 0x80, 0x00]).is_err());
        let s8 = sig(vec![Shape::S16]);
        assert_eq!(check(&s8, &[0x80, 0x80, 0x7e]), Ok(()));
        assert!(check(&s8, &[0x80, 0x80, 0x7d]).is_err());
        let u64s = sig(vec![Shape::U64]);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(check(&u64s, &max), Ok(()));
        let mut over = max;
        over[9] = 0x02;
        assert!(check(&u64s, &over).is_err());
    }

    #[test]
    fn strings_and_chars_must_be_utf8() {
        let s = sig(vec![Shape::String, Shape::Char]);
        assert_eq!(check(&s, &[1, b'a', 0xc3, 0xa9]), Ok(()));
        assert_eq!(
            refused(check(&s, &[1, 0xff, b'a'])).problem,
            Problem::BadUtf8
        );
        assert_eq!(
            refused(check(&s, &[0, 0xc3, 0x28])).problem,
            Problem::BadUtf8
        );
    }

    #[test]
    fn a_prefix_over_the_cap_is_refused() {
        let s = sig(vec![list(Shape::U8)]);
        let e = refused(check_prefix(&s, &[0x80, 0x08], 100));
        assert!(matches!(e.problem, Problem::TooLong { .. }), "{e}");
        assert_eq!(
            check_prefix(&s, &[50, 1, 2], 100),
            Ok(Progress::Incomplete(51))
        );
    }
}
