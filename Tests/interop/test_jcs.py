"""The RFC 8785 canonical form (`JSONValue.jcsBytes`) and the SHA-256 over it
(`SHA256.hash`) against Python's `rfc8785.dumps` and `hashlib.sha256`, byte for byte.

Random nested documents from a fixed seed are written as JSON text in many spellings
(member order shuffled, whitespace, numbers as `4.50`, `1E30`, `%.17g`, strings with
`\\uXXXX` escapes and surrogate pairs or raw UTF-8), so the Swift side parses what Python
parses; each document's canonical bytes and digest must be what Python computes from
`json.loads` of the same text. Numbers cover the ECMAScript switch points (1e21, 1e-7),
random bit patterns, -0 and integers to ±(2^53 - 1); member names the UTF-16 order traps
(a non-BMP name sorts before U+E000...U+FFFF). One `stb-json jcs` process per batch.

The binary comes from $STB_JSON_BIN, else .build/debug/stb-json
(`swift build --product stb-json`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import struct
import subprocess
from pathlib import Path

import pytest
import rfc8785

REPO = Path(__file__).resolve().parents[2]
SEED = 8785
RANDOM_DOCUMENTS = 1500
MAX_SAFE = 2**53 - 1

# Names that sort differently by UTF-16 code units than by scalar values or Swift's `<`,
# and the RFC's own examples. No combining marks and no singleton decompositions: the
# parser keeps members in a Swift dictionary, where canonically equivalent names are one
# name (see test_canonically_equivalent_names).
NAMES = ["", "a", "b", "aa", "A", "1", "\r", "\u0080", "\u00f6", "\u20ac", "\ufb33", "\ue000", "\uffff",
         "\U00010000", "\U0001f600", "\U0010ffff", "\u00e9", "z\U0001f600", "z\uffff", "key", "Key", "_", "-"]
STRING_CHARS = (
    [chr(c) for c in range(0x20, 0x7F)] * 3
    + [chr(c) for c in range(0x01, 0x20)]
    + ['"', "\\", "/", "\x7f", "\u0085", "\u00e9", "e\u0301", "\u2028", "\u2029", "\u20ac", "\ufb33", "\ufeff",
       "\ue000", "\uffff", "\U00010000", "\U0001f600", "\U0010ffff"]
)
EDGE_FLOATS = [0.0, -0.0, 1e21, 9.999999999999999e20, 1e20, 1e-7, 1e-6, 9.999999999999999e-7, 5e-324,
               -5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 2.0**53, 2.0**53 + 2, 2.0**60,
               0.1, 0.2, 0.30000000000000004, 4.5, 0.002, 1e30, 333333333.33333329, 1e-27, 123e-20]
EDGE_INTS = [0, 1, -1, 7, MAX_SAFE, -MAX_SAFE, MAX_SAFE - 1, 2**31, -(2**31), 2**32 + 1, 10**15, 10**15 + 1]


def tool_binary() -> Path:
    configured = os.environ.get("STB_JSON_BIN")
    path = Path(configured) if configured else REPO / ".build" / "debug" / "stb-json"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"stb-json not found at {path}; build it with `swift build --product stb-json` "
                    "or point STB_JSON_BIN at it.", pytrace=False)
    return path


def canonicalize(texts: list[str]) -> list[tuple[int, bytes]]:
    """Runs `stb-json jcs` once over every text; (status, payload) per text."""
    payloads = [t.encode("utf-8") for t in texts]
    data = b"".join(struct.pack("<I", len(p)) + p for p in payloads)
    result = subprocess.run([str(tool_binary()), "jcs"], input=data, capture_output=True, timeout=120)
    assert result.returncode == 0, f"stb-json jcs exited {result.returncode}: {result.stderr.decode(errors='replace')}"
    out, index, output = [], 0, result.stdout
    while index < len(output):
        status = output[index]
        (length,) = struct.unpack_from("<I", output, index + 1)
        out.append((status, output[index + 5:index + 5 + length]))
        index += 5 + length
    assert len(out) == len(payloads), f"stb-json answered {len(out)} records for {len(payloads)}"
    return out


# MARK: - Random documents


def random_float(rng: random.Random) -> float:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice(EDGE_FLOATS) * rng.choice([1, -1])
    if kind == 1:
        while True:
            value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if math.isfinite(value):
                return value
    if kind == 2:
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30)
    # Few significant digits around the switch points: 1.5e-7, 12e20, 0.000034.
    return rng.randint(1, 999) * 10.0 ** rng.randint(-12, 24)


def random_int(rng: random.Random) -> int:
    if rng.random() < 0.3:
        return rng.choice(EDGE_INTS) * rng.choice([1, -1])
    return rng.randint(-MAX_SAFE, MAX_SAFE) >> rng.randrange(53)


def random_string(rng: random.Random) -> str:
    return "".join(rng.choice(STRING_CHARS) for _ in range(rng.randrange(12)))


def random_name(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(NAMES)
    return "".join(rng.choice(NAMES[1:]) for _ in range(rng.randint(1, 3)))


def random_value(rng: random.Random, depth: int):
    kind = rng.randrange(8 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind in (1, 2):
        return random_int(rng)
    if kind == 3:
        return random_float(rng)
    if kind in (4, 5):
        return random_string(rng)
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {random_name(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(6))}


# MARK: - Writing JSON text in many spellings


def write_number(value, rng: random.Random) -> str:
    if isinstance(value, int):
        if rng.random() < 0.1:
            return f"{value}.0" if rng.random() < 0.5 else f"{value}e0"
        return str(value)
    if value == 0:
        return rng.choice(["0.0", "-0.0", "0e5", "-0E-3"])
    spelling = rng.randrange(4)
    if spelling == 0:
        return repr(value)
    if spelling == 1:
        # Not an integer literal: Python would read one as an int (refused beyond 2^53).
        text = "%.17g" % value
        return text if "e" in text or "." in text else text + ".0"
    if spelling == 2:
        return ("%.20e" % value).replace("e", "E")
    return "%.25e" % value


def write_string(text: str, rng: random.Random) -> str:
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in short and rng.random() < 0.7:
            out.append(short[ch])
        elif code < 0x20 or ch in '"\\' or (code >= 0x7F and rng.random() < 0.4) or rng.random() < 0.05:
            if code > 0xFFFF:
                code -= 0x10000
                units = [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]
            else:
                units = [code]
            hex_format = "\\u%04x" if rng.random() < 0.5 else "\\u%04X"
            out.extend(hex_format % unit for unit in units)
        elif ch == "/" and rng.random() < 0.5:
            out.append("\\/")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def write_json(value, rng: random.Random) -> str:
    space = lambda: rng.choice(["", "", " ", "\n  ", "\t"])  # noqa: E731
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return write_number(value, rng)
    if isinstance(value, str):
        return write_string(value, rng)
    if isinstance(value, list):
        return "[" + space() + ("," + space()).join(write_json(v, rng) for v in value) + space() + "]"
    members = list(value.items())
    rng.shuffle(members)
    parts = [write_string(k, rng) + space() + ":" + space() + write_json(v, rng) for k, v in members]
    return "{" + space() + ("," + space()).join(parts) + space() + "}"


def python_jcs(text: str) -> bytes:
    return rfc8785.dumps(json.loads(text))


# MARK: - Tests


def check(texts: list[str]) -> None:
    for text, (status, payload) in zip(texts, canonicalize(texts)):
        expected = python_jcs(text)
        assert status == 0, f"stb-json refused {text!r}: {payload.decode(errors='replace')}"
        digest, canonical = payload[:32], payload[32:]
        assert canonical == expected, f"for {text!r}\n  swift:  {canonical!r}\n  python: {expected!r}"
        assert digest == hashlib.sha256(expected).digest(), f"digest of {expected!r}"


def test_rfc_examples():
    texts = [
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
        ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
        ' "\\u00f6": "Latin Small Letter O With Diaeresis"}',
    ]
    check(texts)
    # The RFC's published output for the first (§3.2.4).
    assert python_jcs(texts[0]) == (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_numbers_one_by_one():
    """Every edge number alone, and 3000 random doubles, as top-level values."""
    rng = random.Random(SEED)
    values = [v * s for v in EDGE_FLOATS for s in (1, -1)] + [random_float(rng) for _ in range(3000)]
    texts = [repr(v) if v != 0 else "-0.0" for v in values] + [str(i) for i in EDGE_INTS] + [str(-i) for i in EDGE_INTS]
    check(texts)


def test_random_documents():
    rng = random.Random(SEED)
    texts = []
    for _ in range(RANDOM_DOCUMENTS):
        document = random_value(rng, 0) if rng.random() < 0.2 else \
            {random_name(rng): random_value(rng, 1) for _ in range(rng.randint(1, 8))}
        texts.append(write_json(document, rng))
    check(texts)


def test_integers_beyond_2_53_are_refused_as_rfc8785_refuses_them():
    values = [2**53, -(2**53), 2**53 + 1, 2**63 - 1, -(2**63)]
    texts = [str(v) for v in values] + ['{"a": [1, {"b": %d}]}' % (2**53 + 1)]
    for text, (status, payload) in zip(texts, canonicalize(texts)):
        assert status == 1, f"{text} was canonicalized as {payload!r}"
        assert b"outside -(2^53 - 1)...2^53 - 1" in payload
        with pytest.raises(rfc8785.IntegerDomainError):
            python_jcs(text)
    assert canonicalize([texts[-1]])[0][1].startswith(b"a[1].b: ")


def test_integer_literals_beyond_int64_are_doubles():
    """Known difference: the parser reads an integer literal too wide for Int64 as a double
    (RFC 8785's own reading of every number), where Python's int makes rfc8785 refuse it."""
    texts = ["100000000000000000000", "-1" + "0" * 25, "18446744073709551616"]
    for text, (status, payload) in zip(texts, canonicalize(texts)):
        assert status == 0
        assert payload[32:] == rfc8785.dumps(float(text))
        with pytest.raises(rfc8785.IntegerDomainError):
            python_jcs(text)


def test_canonically_equivalent_names():
    """Known difference: names that differ only by Unicode normalization ("\\u00e9" and
    "e\\u0301") are one name to the parser (a Swift dictionary) and refused as a duplicate;
    rfc8785 keeps both. Values keep their own scalars on both sides (no normalization)."""
    text = '{"\\u00e9": 1, "e\\u0301": 2}'
    [(status, payload)] = canonicalize([text])
    assert status == 1 and b"duplicate member" in payload
    assert python_jcs(text) == '{"e\u0301":2,"\u00e9":1}'.encode()
    check(['["\\u00e9", "e\\u0301"]'])
