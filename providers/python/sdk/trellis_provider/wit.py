"""WIT types declared in Python, and the wRPC value encoding of each.

A provider declares the types of its functions the way its WIT file does
(``Record("key-response", [("keys", List(STRING)), ...])``); each declared
type encodes and decodes values exactly as wrpc-transport does, so a Rust,
Go or Python peer reads them alike. Decoding checks every length against the
bytes that are actually there before it allocates anything.

Python values: bool, int, float, str (also for ``char``), bytes for
``list<u8>``, list, tuple, dict for records, ``None``/value for options (a
nested option's present value is ``Some(v)``), ``Ok(v)``/``Err(e)`` for
results, ``Case(name, value)`` for variants, str for enums, frozenset of
names for flags, bytes for resource handles.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

__all__ = [
    "WireError", "Type", "BOOL", "U8", "U16", "U32", "U64", "S8", "S16", "S32", "S64",
    "F32", "F64", "CHAR", "STRING", "BYTES", "List", "Option", "Result", "Tuple", "Record",
    "Variant", "Enum", "Flags", "Own", "Borrow", "Some", "Ok", "Err", "Case",
    "encode_values", "decode_values",
]

#: Elements a list of zero-sized values (``list<tuple<>>``) may claim: such a
#: list costs no bytes, so its length alone cannot be checked against the input.
MAX_EMPTY_ELEMENTS = 1 << 16
#: List elements one payload may hold in all (``list<u8>`` counts as one):
#: decoding runs on the event loop, so its work is bounded whatever the
#: lengths claim, nested lists of zero-sized values included.
MAX_ELEMENTS = 1 << 18


class WireError(ValueError):
    """Bytes that are not a value of the declared type: says what and where."""


@dataclass(frozen=True)
class Some:
    """A present value of an option whose payload is itself an option."""

    value: Any


@dataclass(frozen=True)
class Ok:
    """The ok case of a ``result``."""

    value: Any = None


@dataclass(frozen=True)
class Err:
    """The error case of a ``result``."""

    value: Any = None


@dataclass(frozen=True)
class Case:
    """One case of a ``variant``, with its payload (``None`` if it has none)."""

    name: str
    value: Any = None


class Reader:
    """Bytes being decoded, and how far decoding has got."""

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.at = 0
        self.elements = 0

    def count(self, n: int, what: str) -> None:
        """Books ``n`` more list elements against :data:`MAX_ELEMENTS`."""
        self.elements += n
        if self.elements > MAX_ELEMENTS:
            raise WireError(f"{what}: more than {MAX_ELEMENTS} list elements in one payload (offset {self.at})")

    def remaining(self) -> int:
        return len(self.data) - self.at

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise WireError(f"{what}: needs {n} bytes at offset {self.at}, {self.remaining()} left")
        out = bytes(self.data[self.at:self.at + n])
        self.at += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]


def _uleb(value: int, out: bytearray) -> None:
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return


def _sleb(value: int, out: bytearray) -> None:
    while True:
        low = value & 0x7F
        value >>= 7
        done = (value == 0 and not low & 0x40) or (value == -1 and low & 0x40)
        out.append(low if done else low | 0x80)
        if done:
            return


def _read_uleb(r: Reader, bits: int, what: str) -> int:
    value, shift = 0, 0
    for _ in range((bits + 6) // 7):
        b = r.byte(what)
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if value >> bits:
                raise WireError(f"{what}: {value} does not fit in {bits} bits (offset {r.at})")
            return value
    raise WireError(f"{what}: LEB128 longer than a u{bits} takes (offset {r.at})")


def _read_sleb(r: Reader, bits: int, what: str) -> int:
    value, shift = 0, 0
    for _ in range((bits + 6) // 7):
        b = r.byte(what)
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if b & 0x40:
                value -= 1 << shift
            if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
                raise WireError(f"{what}: {value} does not fit in s{bits} (offset {r.at})")
            return value
    raise WireError(f"{what}: LEB128 longer than an s{bits} takes (offset {r.at})")


class Type:
    """A WIT type: how its values are written and read."""

    #: The fewest bytes a value takes: what a list's length is checked against.
    min_size = 1

    def encode(self, value: Any, out: bytearray) -> None:
        raise NotImplementedError

    def decode(self, r: Reader) -> Any:
        raise NotImplementedError

    def check(self, value: Any, what: str, kinds: type | tuple) -> None:
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is int):
            raise TypeError(f"{what}: expected {self}, got {type(value).__name__}")


class _Bool(Type):
    def __repr__(self):
        return "bool"

    def encode(self, value, out):
        self.check(value, "bool", bool)
        out.append(1 if value else 0)

    def decode(self, r):
        b = r.byte("bool")
        if b > 1:
            raise WireError(f"bool: byte {b} is neither 0 nor 1 (offset {r.at - 1})")
        return b == 1


class _Int(Type):
    def __init__(self, bits: int, signed: bool):
        self.bits, self.signed = bits, signed
        self.low = -(1 << (bits - 1)) if signed else 0
        self.high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def __repr__(self):
        return f"{'s' if self.signed else 'u'}{self.bits}"

    def encode(self, value, out):
        self.check(value, repr(self), int)
        if not self.low <= value <= self.high:
            raise ValueError(f"{self!r}: {value} is out of range")
        if self.bits == 8:
            out.append(value & 0xFF)
        elif self.signed:
            _sleb(value, out)
        else:
            _uleb(value, out)

    def decode(self, r):
        if self.bits == 8:
            b = r.byte(repr(self))
            return b - 256 if self.signed and b > 127 else b
        if self.signed:
            return _read_sleb(r, self.bits, repr(self))
        return _read_uleb(r, self.bits, repr(self))


class _Float(Type):
    def __init__(self, bits: int):
        self.bits = bits
        self.format = "<f" if bits == 32 else "<d"
        self.min_size = bits // 8

    def __repr__(self):
        return f"f{self.bits}"

    def encode(self, value, out):
        self.check(value, repr(self), (int, float))
        # Every NaN goes out as the canonical one, as wrpc-transport does.
        out += struct.pack(self.format, math.nan if value != value else value)

    def decode(self, r):
        return struct.unpack(self.format, r.take(self.min_size, repr(self)))[0]


class _Char(Type):
    def __repr__(self):
        return "char"

    def encode(self, value, out):
        self.check(value, "char", str)
        if len(value) != 1:
            raise ValueError(f"char: {value!r} is not one character")
        out += value.encode("utf-8")

    def decode(self, r):
        first = r.byte("char")
        n = 1 if first < 0x80 else 2 if first >> 5 == 0b110 else 3 if first >> 4 == 0b1110 else 4
        raw = bytes([first]) + r.take(n - 1, "char")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise WireError(f"char: {raw!r} is not UTF-8 (offset {r.at - n})") from e


class _String(Type):
    def __repr__(self):
        return "string"

    def encode(self, value, out):
        self.check(value, "string", str)
        raw = value.encode("utf-8")
        _uleb(len(raw), out)
        out += raw

    def decode(self, r):
        n = _read_uleb(r, 32, "string length")
        raw = r.take(n, "string")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise WireError(f"string: not UTF-8 at offset {r.at - n + e.start}") from e


class _Bytes(Type):
    """``list<u8>``: a length, then the bytes."""

    def __repr__(self):
        return "list<u8>"

    def encode(self, value, out):
        self.check(value, "list<u8>", (bytes, bytearray, memoryview))
        value = bytes(value)
        _uleb(len(value), out)
        out += value

    def decode(self, r):
        return r.take(_read_uleb(r, 32, "list<u8> length"), "list<u8>")


class List(Type):
    """``list<T>``; ``List(U8)`` is :data:`BYTES`."""

    def __new__(cls, element: Type):
        if element is U8:
            return BYTES
        return super().__new__(cls)

    def __init__(self, element: Type):
        self.element = element

    def __repr__(self):
        return f"list<{self.element!r}>"

    def encode(self, value, out):
        self.check(value, repr(self), (list, tuple))
        _uleb(len(value), out)
        for item in value:
            self.element.encode(item, out)

    def decode(self, r):
        n = _read_uleb(r, 32, f"{self!r} length")
        size = self.element.min_size
        if (size and n * size > r.remaining()) or (not size and n > MAX_EMPTY_ELEMENTS):
            raise WireError(f"{self!r}: {n} elements cannot fit in the {r.remaining()} bytes left (offset {r.at})")
        r.count(n, repr(self))
        return [self.element.decode(r) for _ in range(n)]


class Option(Type):
    """``option<T>``: ``None``, or the value."""

    def __init__(self, payload: Type):
        self.payload = payload

    def __repr__(self):
        return f"option<{self.payload!r}>"

    def encode(self, value, out):
        if value is None:
            out.append(0)
            return
        out.append(1)
        if isinstance(self.payload, Option):
            if not isinstance(value, Some):
                raise TypeError(f"{self!r}: a present value is Some(...)")
            value = value.value
        self.payload.encode(value, out)

    def decode(self, r):
        tag = r.byte(repr(self))
        if tag == 0:
            return None
        if tag != 1:
            raise WireError(f"{self!r}: tag {tag} is neither 0 nor 1 (offset {r.at - 1})")
        value = self.payload.decode(r)
        return Some(value) if isinstance(self.payload, Option) else value


class Result(Type):
    """``result<T, E>``; ``None`` for a case without payload."""

    def __init__(self, ok: Type | None = None, err: Type | None = None):
        self.ok, self.err = ok, err

    def __repr__(self):
        return f"result<{self.ok!r}, {self.err!r}>"

    def encode(self, value, out):
        if isinstance(value, Ok):
            out.append(0)
            payload = self.ok
        elif isinstance(value, Err):
            out.append(1)
            payload = self.err
        else:
            raise TypeError(f"{self!r}: expected Ok(...) or Err(...), got {type(value).__name__}")
        if payload is not None:
            payload.encode(value.value, out)

    def decode(self, r):
        tag = r.byte(repr(self))
        if tag > 1:
            raise WireError(f"{self!r}: tag {tag} is neither 0 nor 1 (offset {r.at - 1})")
        payload = self.ok if tag == 0 else self.err
        value = payload.decode(r) if payload is not None else None
        return Ok(value) if tag == 0 else Err(value)


class Tuple(Type):
    """``tuple<...>``: a Python tuple."""

    def __init__(self, *elements: Type):
        self.elements = elements
        self.min_size = sum(e.min_size for e in elements)

    def __repr__(self):
        return f"tuple<{', '.join(map(repr, self.elements))}>"

    def encode(self, value, out):
        self.check(value, repr(self), (tuple, list))
        if len(value) != len(self.elements):
            raise ValueError(f"{self!r}: {len(value)} values for {len(self.elements)} elements")
        for element, item in zip(self.elements, value):
            element.encode(item, out)

    def decode(self, r):
        return tuple(e.decode(r) for e in self.elements)


class Record(Type):
    """``record``: a dict of its fields, in declaration order on the wire."""

    def __init__(self, name: str, fields: Sequence[tuple[str, Type]]):
        self.name, self.fields = name, list(fields)
        self.min_size = sum(t.min_size for _, t in self.fields)

    def __repr__(self):
        return self.name

    def encode(self, value, out):
        self.check(value, self.name, dict)
        for field, t in self.fields:
            if field not in value:
                raise ValueError(f"{self.name}: field `{field}` is missing")
            t.encode(value[field], out)

    def decode(self, r):
        return {field: t.decode(r) for field, t in self.fields}


class Variant(Type):
    """``variant``: a :class:`Case`; the discriminant is a LEB128 u32."""

    def __init__(self, name: str, cases: Sequence[tuple[str, Type | None]]):
        self.name, self.cases = name, list(cases)
        self.index = {case: i for i, (case, _) in enumerate(self.cases)}

    def __repr__(self):
        return self.name

    def encode(self, value, out):
        self.check(value, self.name, Case)
        if value.name not in self.index:
            raise ValueError(f"{self.name}: no case `{value.name}`")
        i = self.index[value.name]
        _uleb(i, out)
        payload = self.cases[i][1]
        if payload is not None:
            payload.encode(value.value, out)

    def decode(self, r):
        i = _read_uleb(r, 32, f"{self.name} discriminant")
        if i >= len(self.cases):
            raise WireError(f"{self.name}: case {i} of {len(self.cases)} (offset {r.at})")
        case, payload = self.cases[i]
        return Case(case, payload.decode(r) if payload is not None else None)


class Enum(Type):
    """``enum``: the case's name; the discriminant is a LEB128 u32."""

    def __init__(self, name: str, cases: Iterable[str]):
        self.name, self.cases = name, list(cases)
        self.index = {case: i for i, case in enumerate(self.cases)}

    def __repr__(self):
        return self.name

    def encode(self, value, out):
        if value not in self.index:
            raise ValueError(f"{self.name}: no case `{value}`")
        _uleb(self.index[value], out)

    def decode(self, r):
        i = _read_uleb(r, 32, f"{self.name} discriminant")
        if i >= len(self.cases):
            raise WireError(f"{self.name}: case {i} of {len(self.cases)} (offset {r.at})")
        return self.cases[i]


class Flags(Type):
    """``flags``: the set names, as little-endian bits in ceil(n/8) bytes.

    wit-bindgen-wrpc writes the whole integer behind its bitflags (u8, u16,
    u32, u64), which differs from ceil(n/8) for 17–24 and 33–56 flags; those
    counts are refused here rather than read one way and written another.
    """

    def __init__(self, name: str, names: Iterable[str]):
        self.name, self.names = name, list(names)
        self.min_size = (len(self.names) + 7) // 8
        if 16 < len(self.names) <= 24 or 32 < len(self.names) <= 56 or len(self.names) > 64:
            raise ValueError(f"{name}: {len(self.names)} flags have no agreed width in wRPC")

    def __repr__(self):
        return self.name

    def encode(self, value, out):
        self.check(value, self.name, (set, frozenset, list, tuple))
        bits = 0
        for flag in value:
            if flag not in self.names:
                raise ValueError(f"{self.name}: no flag `{flag}`")
            bits |= 1 << self.names.index(flag)
        out += bits.to_bytes(self.min_size, "little")

    def decode(self, r):
        bits = int.from_bytes(r.take(self.min_size, self.name), "little")
        if bits >> len(self.names):
            raise WireError(f"{self.name}: bits {bits:#x} name flags it does not have (offset {r.at})")
        return frozenset(n for i, n in enumerate(self.names) if bits >> i & 1)


class _Handle(Type):
    """A resource handle: opaque bytes the serving side chose."""

    def __init__(self, kind: str, resource: str):
        self.kind, self.resource = kind, resource

    def __repr__(self):
        return f"{self.kind}<{self.resource}>"

    def encode(self, value, out):
        BYTES.encode(value, out)

    def decode(self, r):
        return BYTES.decode(r)


def Own(resource: str) -> Type:
    """``own<resource>``: a handle (bytes) this side hands out."""
    return _Handle("own", resource)


def Borrow(resource: str) -> Type:
    """``borrow<resource>``: a handle (bytes) the caller got from us."""
    return _Handle("borrow", resource)


BOOL = _Bool()
U8, U16, U32, U64 = _Int(8, False), _Int(16, False), _Int(32, False), _Int(64, False)
S8, S16, S32, S64 = _Int(8, True), _Int(16, True), _Int(32, True), _Int(64, True)
F32, F64 = _Float(32), _Float(64)
CHAR = _Char()
STRING = _String()
BYTES = _Bytes()


def encode_values(types: Sequence[Type], values: Sequence[Any]) -> bytes:
    """Parameters or results: each value after the other."""
    if len(types) != len(values):
        raise ValueError(f"{len(values)} values for {len(types)} types")
    out = bytearray()
    for t, v in zip(types, values):
        t.encode(v, out)
    return bytes(out)


def decode_values(types: Sequence[Type], data: bytes) -> list[Any]:
    """Decodes ``data`` as one value of each type; trailing bytes are an error."""
    r = Reader(data)
    values = [t.decode(r) for t in types]
    if r.remaining():
        raise WireError(f"{r.remaining()} bytes left over after the last value (offset {r.at})")
    return values
