"""The value encoding byte by byte, and hostile bytes refused with where they went wrong."""

import math
import unittest

from trellis_provider.wit import (
    BOOL, BYTES, CHAR, F32, S8, S16, S64, STRING, U8, U32, U64,
    Case, Enum, Err, Flags, List, Ok, Option, Record, Result, Some, Tuple, Variant, WireError,
    decode_values, encode_values,
)


class Golden(unittest.TestCase):
    """Bytes wrpc-transport writes for the same values (see docs/providers.md)."""

    def test_scalars(self):
        cases = [
            (BOOL, True, b"\x01"),
            (U8, 255, b"\xff"),
            (S8, -1, b"\xff"),
            (U32, 300, b"\xac\x02"),
            (U64, 2**64 - 1, b"\xff" * 9 + b"\x01"),
            (S16, -129, b"\xff\x7e"),
            (S64, -(2**63), b"\x80" * 9 + b"\x7f"),
            (F32, 1.5, b"\x00\x00\xc0\x3f"),
            (CHAR, "é", "é".encode()),
            (STRING, "hé", b"\x03h\xc3\xa9"),
            (BYTES, b"\x00\x01", b"\x02\x00\x01"),
        ]
        for t, value, wire in cases:
            with self.subTest(t=t, value=value):
                self.assertEqual(encode_values([t], [value]), wire)
                self.assertEqual(decode_values([t], wire), [value])

    def test_compounds(self):
        shape = Variant("shape", [("circle", U8), ("empty", None)])
        perms = Flags("perms", ["read", "write", "exec"])
        cases = [
            (List(STRING), ["a", ""], b"\x02\x01a\x00"),
            (Option(U8), None, b"\x00"),
            (Option(Option(U8)), Some(None), b"\x01\x00"),
            (Result(U8, STRING), Err("x"), b"\x01\x01x"),
            (Result(), Ok(), b"\x00"),
            (Tuple(U8, BOOL), (7, False), b"\x07\x00"),
            (Record("p", [("x", U8), ("y", STRING)]), {"x": 1, "y": "z"}, b"\x01\x01z"),
            (shape, Case("empty"), b"\x01"),
            (shape, Case("circle", 9), b"\x00\x09"),
            (Enum("color", ["red", "green"]), "green", b"\x01"),
            (perms, frozenset({"read", "exec"}), b"\x05"),
            (Flags("wide", [f"f{i}" for i in range(12)]), frozenset({"f11"}), b"\x00\x08"),
        ]
        for t, value, wire in cases:
            with self.subTest(t=t, value=value):
                self.assertEqual(encode_values([t], [value]), wire)
                self.assertEqual(decode_values([t], wire), [value])

    def test_encoding_refuses_the_wrong_python_types(self):
        with self.assertRaises(TypeError):
            encode_values([Flags("f", ["a", "b"])], ["ab"])
        self.assertEqual(encode_values([BYTES], [memoryview(b"\x01\x02")]), b"\x02\x01\x02")

    def test_nan_is_canonical(self):
        self.assertEqual(encode_values([F32], [float("nan")]), b"\x00\x00\xc0\x7f")
        self.assertTrue(math.isnan(decode_values([F32], b"\x01\x00\xc0\x7f")[0]))


class Hostile(unittest.TestCase):
    def refused(self, types, wire, says):
        with self.assertRaises(WireError) as e:
            decode_values(types, wire)
        self.assertIn(says, str(e.exception))

    def test_lengths_past_the_input_allocate_nothing(self):
        # A list claiming 2^32-1 strings in five bytes.
        self.refused([List(STRING)], b"\xff\xff\xff\xff\x0f", "cannot fit")
        self.refused([BYTES], b"\xff\xff\xff\xff\x0f", "needs 4294967295 bytes")
        self.refused([List(Tuple())], b"\xff\xff\xff\xff\x0f", "cannot fit")
        # Lists of 65,536 empty tuples, 200 of them in 602 bytes: the payload's
        # element budget stops it, not memory.
        self.refused([List(List(Tuple()))], b"\xc8\x01" + b"\x80\x80\x04" * 200, "list elements in one payload")

    def test_bad_tags_and_numbers(self):
        self.refused([BOOL], b"\x02", "neither 0 nor 1")
        self.refused([Option(U8)], b"\x07", "tag 7")
        self.refused([Result(U8, U8)], b"\x02", "tag 2")
        self.refused([Variant("v", [("a", None)])], b"\x05", "case 5 of 1")
        self.refused([Enum("e", ["a"])], b"\x01", "case 1 of 1")
        self.refused([Flags("f", ["a", "b"])], b"\x04", "name flags it does not have")
        self.refused([U32], b"\xff\xff\xff\xff\x1f", "does not fit in 32 bits")
        self.refused([U64], b"\x80" * 11, "longer than a u64")
        self.refused([S16], b"\x80\x80\x02", "does not fit in s16")

    def test_truncated_bad_text_and_leftovers(self):
        self.refused([STRING], b"\x05hi", "needs 5 bytes at offset 1, 2 left")
        self.refused([STRING], b"\x02\xff\xfe", "not UTF-8")
        self.refused([CHAR], b"\xf0\x9f", "needs 3 bytes")
        self.refused([U8], b"\x01\x02", "1 bytes left over")
        self.refused([U8], b"", "needs 1 bytes at offset 0")


if __name__ == "__main__":
    unittest.main()
