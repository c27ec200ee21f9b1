"""The Python side of the conformance check (tests/conformance): serves
`trellis:conformance/types`, fails any call whose parameters are not the
values the Rust caller sends, and answers with its own fixtures.

``python conformance_server.py --name conformance --nats URL``
"""

from trellis_provider import Provider
from trellis_provider.wit import (
    BOOL, BYTES, CHAR, F32, F64, S8, S16, S32, S64, STRING, U8, U16, U32, U64,
    Borrow, Case, Enum, Err, Flags, List, Ok, Option, Own, Record, Result, Some, Tuple, Variant,
)

TYPES = "trellis:conformance/types@0.1.0"
NUMBERS = Record("numbers", [(n, t) for n, t in zip("abcdefghij", [U8, U16, U32, U64, S8, S16, S32, S64, F32, F64])])
POINT = Record("point", [("x", S32), ("y", S32), ("label", STRING)])
SHAPE = Variant("shape", [("circle", F64), ("rect", POINT), ("empty", None)])
COLOR = Enum("color", ["red", "green", "blue"])
PERMS = Flags("perms", ["read", "write", "exec"])
WIDE = Flags("wide", [f"f{i}" for i in range(12)])
LARGE = 2_500_000

provider = Provider("conformance", "0.1.0", "checks wRPC encoders against wrpc-transport", [TYPES])


def expect(func, got, want):
    if got != want:
        raise AssertionError(f"{func}: got {got!r}, expected {want!r}")


@provider.function(TYPES, "scalars", [NUMBERS], [NUMBERS])
async def scalars(call, v):
    expect("scalars", v, dict(zip("abcdefghij", [255, 65535, 2**32 - 1, 2**64 - 1, -128, -32768, -2**31, -2**63, 3.25, -1e300])))
    return dict(zip("abcdefghij", [0, 128, 300, 2**63, 127, -1, 64, 2**63 - 1, float("inf"), 2.5e-310]))


@provider.function(TYPES, "texts", [BOOL, CHAR, STRING], [Tuple(BOOL, CHAR, STRING)])
async def texts(call, b, c, s):
    expect("texts", (b, c, s), (True, "🦀", "héllo, wörld"))
    return (False, "é", "")


@provider.function(TYPES, "lists", [BYTES, List(STRING), List(List(U32))], [Tuple(BYTES, List(STRING), List(List(U32)))])
async def lists(call, data, words, nested):
    expect("lists", (data, words, nested), (bytes(range(256)), ["a", "", "ü"], [[], [1, 2**32 - 1]]))
    return (b"", [], [[7]])


@provider.function(TYPES, "shapes", [List(SHAPE), List(COLOR)], [Tuple(List(SHAPE), List(COLOR))])
async def shapes(call, s, c):
    expect("shapes", (s, c), (
        [Case("circle", 2.5), Case("rect", {"x": 1, "y": -2, "label": "p"}), Case("empty")],
        ["red", "blue"],
    ))
    return ([Case("rect", {"x": -5, "y": 5, "label": ""})], ["green"])


@provider.function(TYPES, "flags-of", [PERMS, WIDE], [Tuple(PERMS, WIDE)])
async def flags_of(call, p, w):
    expect("flags-of", (p, w), ({"read", "exec"}, {"f0", "f11"}))
    return (frozenset(), frozenset(WIDE.names))


@provider.function(TYPES, "options", [Option(STRING), Option(Option(U32))], [Tuple(Option(STRING), Option(Option(U32)))])
async def options(call, a, b):
    expect("options", (a, b), ("x", Some(None)))
    return (None, Some(7))


RESULTS = [Result(U32, STRING), Result(None, COLOR), Result()]


@provider.function(TYPES, "results", RESULTS, [Tuple(*RESULTS)])
async def results(call, a, b, c):
    expect("results", (a, b, c), (Ok(7), Err("blue"), Ok()))
    return (Err("no"), Ok(), Err())


@provider.function(TYPES, "handles", [Borrow("blob")], [Own("blob")])
async def handles(call, h):
    expect("handles", h, b"handle-1")
    return b"\x00\xffpython"


@provider.function(TYPES, "large", [BYTES], [BYTES])
async def large(call, data):
    expect("large", len(data), LARGE)
    expect("large", data, bytes(i % 251 for i in range(LARGE)))
    return bytes(i % 253 for i in range(LARGE + 1))


@provider.function(TYPES, "nothing", [], [])
async def nothing(call):
    return None


if __name__ == "__main__":
    provider.main()
