"""The client's RFC 8785 canonicalisation: the RFC's own examples and number vectors, and agreement with the
`rfc8785` package (what the service signs with) on thousands of random JSON values."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest
import rfc8785

from unlearning_client import CanonicalizationError, canonicalize
from unlearning_client.jcs import MAX_SAFE_INTEGER, number

# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical form
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # round to even
]


def _double(bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(bits))[0]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_numbers_are_written_as_rfc_8785_appendix_b_says(bits: str, expected: str) -> None:
    assert canonicalize(_double(bits)) == expected.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_the_infinities_are_refused(bits: str) -> None:
    with pytest.raises(CanonicalizationError, match="cannot represent"):
        canonicalize({"x": [_double(bits)]})


def test_the_rfcs_example_object_is_canonicalised_byte_for_byte() -> None:
    # RFC 8785 section 3.2.2: the input as its text, parsed as a verifier would
    text = r'''{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}'''
    expected = (
        r'''{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'''
        r'''"string":"€$\u000f\nA'B\"\\\\\"/"}'''
    )
    assert canonicalize(json.loads(text)) == expected.encode("utf-8")


def test_members_are_sorted_by_utf16_code_units_not_code_points() -> None:
    # RFC 8785 section 3.2.3: the emoji's surrogate pair (0xD83D ...) sorts before U+FB33
    names = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    canonical = json.loads(canonicalize({name: 0 for name in names}))
    assert list(canonical) == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_integers_beyond_2_to_the_53_are_refused_like_the_service_refuses_them() -> None:
    assert canonicalize([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == b"[9007199254740991,-9007199254740991]"
    with pytest.raises(CanonicalizationError, match="beyond the integers"):
        canonicalize({"n": MAX_SAFE_INTEGER + 1})


@pytest.mark.parametrize("value", ["a\ud800b", {"\udc00": 1}], ids=["in a string", "in a key"])
def test_a_lone_surrogate_is_refused(value: Any) -> None:
    with pytest.raises(CanonicalizationError, match="lone surrogate"):
        canonicalize(value)


@pytest.mark.parametrize("value", [{1: "a"}, {"a": {1, 2}}, b"bytes"], ids=["int key", "set", "bytes"])
def test_a_value_json_does_not_have_is_refused(value: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonicalize(value)


def test_control_characters_are_escaped_as_json_stringify_escapes_them() -> None:
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028\U0001f600'
    assert canonicalize(text) == rfc8785.dumps(text)
    assert canonicalize("\x1f\x7f") == b'"\\u001f\x7f"'


# ---- agreement with the rfc8785 package on random values ----


def _random_string(rng: random.Random) -> str:
    pools = [
        (0x20, 0x7E), (0x00, 0x1F), (0x7F, 0xFF), (0x100, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF),
        (0x10000, 0x10FFFF),
    ]  # fmt: skip
    chars = []
    for _ in range(rng.randint(0, 12)):
        low, high = rng.choice(pools)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


def _random_number(rng: random.Random) -> float | int:
    kind = rng.randrange(5)
    if kind == 0:  # any finite double, from its bits
        while not math.isfinite(value := _double(f"{rng.getrandbits(64):016x}")):
            pass
        return value
    if kind == 1:  # an integer in the range JCS represents exactly
        return rng.randint(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    if kind == 2:  # small integers and their float forms
        value = rng.randint(-1000, 1000)
        return float(value) if rng.random() < 0.5 else value
    if kind == 3:  # decimals near the plain/exponent boundaries (1e-7, 1e21)
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-9, 24)
    return round(rng.uniform(-1e6, 1e6), rng.randint(0, 8))  # metrics-like values


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind in (2, 3):
        return _random_number(rng)
    if kind in (4, 5):
        return _random_string(rng)
    if kind == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {_random_string(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def test_random_json_values_canonicalise_exactly_as_the_rfc8785_package_does() -> None:
    rng = random.Random(8785)
    for _ in range(3000):
        value = _random_value(rng)
        assert canonicalize(value) == rfc8785.dumps(value), value


def test_random_doubles_are_written_exactly_as_the_rfc8785_package_writes_them() -> None:
    rng = random.Random(754)
    checked = 0
    while checked < 20_000:
        value = _double(f"{rng.getrandbits(64):016x}")
        if math.isfinite(value):
            assert number(value).encode() == rfc8785.dumps(value), value.hex()
            checked += 1
