"""RFC 8785 JSON Canonicalization Scheme (JCS): the exact bytes the service signs.

Numbers are written as ECMAScript's Number.prototype.toString writes an IEEE 754 double (RFC 8785 section
3.2.2.3), object members are sorted by the UTF-16 code units of their names (section 3.2.3), strings are
escaped as JSON.stringify escapes them (section 3.2.2.2), and the result is UTF-8 without whitespace.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from unlearning_client.errors import CanonicalizationError

# beyond it an integer has no exact IEEE 754 double, which JCS numbers are (the service refuses them too)
MAX_SAFE_INTEGER = 2**53 - 1
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value (dict, list, str, int, float, bool, None)."""
    parts: list[str] = []
    _write(value, parts, "$")
    return "".join(parts).encode("utf-8")


def _write(value: Any, out: list[str], path: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalizationError(f"{path} is {value}, beyond the integers RFC 8785 represents exactly")
        out.append(number(float(value)))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalizationError(f"{path} is {value}, which RFC 8785 (like JSON) cannot represent")
        out.append(number(value))
    elif isinstance(value, str):
        out.append(string(value, path))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, f"{path}[{index}]")
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError(f"{path} has the key {key!r}; JSON object keys are strings")
        out.append("{")
        for index, key in enumerate(sorted(value, key=lambda k: _utf16_units(k, path))):
            if index:
                out.append(",")
            out.append(string(key, path))
            out.append(":")
            _write(value[key], out, f"{path}.{key}")
        out.append("}")
    else:
        raise CanonicalizationError(f"{path} is a {type(value).__name__}, not a JSON value")


def _utf16_units(key: str, path: str) -> bytes:
    # big-endian code units compare byte by byte exactly as the units compare as unsigned integers
    try:
        return key.encode("utf-16-be")
    except UnicodeEncodeError:
        raise CanonicalizationError(f"{path} has a key with a lone surrogate, which is not Unicode") from None


def string(text: str, path: str = "$") -> str:
    """A JSON string literal as ECMAScript's JSON.stringify writes it: only '"', '\\' and the C0 controls are
    escaped (\\b \\t \\n \\f \\r, else \\u00xx in lower-case hex); everything else stays as it is."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise CanonicalizationError(f"{path} holds a lone surrogate, which RFC 8785 refuses (not Unicode)")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def number(value: float) -> str:
    """A finite double as ECMAScript's Number.prototype.toString writes it (ECMA-262 section 7.1.12.1).

    Python's repr gives the same shortest digits that round-trip; only their layout differs. With the
    digits d1..dk and n such that the value is 0.d1..dk x 10**n: integers up to 21 digits are written out
    in full, numbers from 1e-6 up to 1e21 in plain decimal, the rest as d1.d2..dk e+-(n-1).
    """
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    assert isinstance(exponent, int)  # finite
    # repr's digits may end in zeros (1e+22 is "1e+22", 100.0 is "100.0"): n counts from the full tuple
    n = len(digit_tuple) + exponent
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
