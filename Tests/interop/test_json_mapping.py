"""The proto3 JSON mapping of the generated Swift messages against Python's
`google.protobuf.json_format`, both ways.

For `stb.testing.v1.AllKinds` (hand-picked extreme values, then a few hundred random
instances from a fixed seed covering every field kind):
  - Swift's JSON (`stb-json to-json`) parses with `json_format.Parse` to the same message;
  - Python's `MessageToJson` (json names, and proto names) parses in Swift
    (`stb-json from-json`) to the same message.
Messages are compared by their deterministic wire encoding (map entries sorted), which
also compares NaNs and -0.0 exactly. Each direction is one `stb-json` process for the
whole batch.

The binary comes from $STB_JSON_BIN, else .build/debug/stb-json
(`swift build --product stb-json`).
"""

from __future__ import annotations

import math
import os
import random
import struct
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format

from proto_compat import load_all_kinds_module, reference

REPO = Path(__file__).resolve().parents[2]
ALL_KINDS = "stb.testing.v1.AllKinds"
SEED = 20261206
RANDOM_INSTANCES = 400

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)


def tool_binary() -> Path:
    configured = os.environ.get("STB_JSON_BIN")
    path = Path(configured) if configured else REPO / ".build" / "debug" / "stb-json"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"stb-json not found at {path}; build it with `swift build --product stb-json` "
                    "or point STB_JSON_BIN at it.", pytrace=False)
    return path


def convert(mode: str, type_name: str, payloads: list[bytes]) -> list[tuple[int, bytes]]:
    """Runs `stb-json MODE TYPE` once over every payload; (status, bytes) per payload."""
    data = b"".join(struct.pack("<I", len(p)) + p for p in payloads)
    result = subprocess.run([str(tool_binary()), mode, type_name], input=data, capture_output=True, timeout=120)
    assert result.returncode == 0, f"stb-json {mode} exited {result.returncode}: {result.stderr.decode(errors='replace')}"
    out, index = [], 0
    output = result.stdout
    while index < len(output):
        status = output[index]
        (length,) = struct.unpack_from("<I", output, index + 1)
        out.append((status, output[index + 5:index + 5 + length]))
        index += 5 + length
    assert len(out) == len(payloads), f"stb-json answered {len(out)} records for {len(payloads)}"
    return out


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return load_all_kinds_module(tmp_path_factory.mktemp("json-mapping-protos"))


def canonical(message) -> bytes:
    """The deterministic wire encoding, with what neither side can carry made equal: JSON
    has one NaN (no sign or payload), and protobuf-c's encoder omits an implicit-presence
    -0.0 as it omits 0.0 (the Swift side answers in the wire form)."""
    copy = type(message)()
    copy.CopyFrom(message)
    if copy.DESCRIPTOR.full_name == ALL_KINDS:
        for name in ("f_double", "f_float"):
            value = getattr(copy, name)
            if math.isnan(value):
                setattr(copy, name, float("nan"))
            elif value == 0:
                setattr(copy, name, 0.0)
        doubles = [float("nan") if math.isnan(d) else d for d in copy.r_double]
        del copy.r_double[:]
        copy.r_double.extend(doubles)
    return copy.SerializeToString(deterministic=True)


# -- instances ---------------------------------------------------------------------------

STRINGS = ["", "a", "héllo wörld ✓ 日本語 🚀", "\"quote\" \\back\\slash /", "\x01\x1f\x7f", "\u2028\u2029",
           "e\u0301", "\U0001F600\U00010000\U0010FFFF", "tab\tnew\nline\r", "\ufeffbom", "x" * 300]
DOUBLES = [0.0, -0.0, 1.0, -1.5, 0.1, 1e100, -1e-100, 5e-324, 2.2250738585072014e-308,
           1.7976931348623157e308, -1.7976931348623157e308, float("inf"), float("-inf"), float("nan"),
           123456789012345680.0, 9007199254740993.0, 1e16, 1e-7]
# float32 values (Python keeps them as float32); not 3.4028234663852886e38: Python's own
# Parse refuses its shortest form, 3.4028235e+38, as "too large" (json_format's bound
# is the float32 maximum as a double, below that decimal).
FLOATS = [0.0, -0.0, 1.5, 0.1, -2.5e-38, 1e-45, 3.4028232635611926e38, 16777217.0,
          float("inf"), float("-inf"), float("nan")]


def extremes(pb) -> list:
    out = [pb.AllKinds(), reference(pb)]
    m = pb.AllKinds()
    m.f_int32, m.f_int64, m.f_uint32, m.f_uint64 = INT32[0], INT64[0], UINT32[1], UINT64[1]
    m.f_sint32, m.f_sint64, m.f_fixed32, m.f_fixed64 = INT32[1], INT64[1], 1, 2**63
    m.f_sfixed32, m.f_sfixed64 = INT32[0], INT64[0]
    m.r_int32.extend(INT32)
    m.r_sint64.extend([INT64[0], INT64[1], -1, 0, 1])
    out.append(m)
    for d in DOUBLES:
        m = pb.AllKinds()
        m.f_double = d
        m.r_double.extend([d, -d])
        out.append(m)
    for f in FLOATS:
        m = pb.AllKinds()
        m.f_float = f
        out.append(m)
    for s in STRINGS:
        m = pb.AllKinds()
        m.f_string = s
        m.r_string.extend([s, s])
        m.m_counts[s] = 1
        m.o_string = s
        out.append(m)
    for n in range(6):
        m = pb.AllKinds()
        m.f_bytes = bytes(range(256))[: n * 51]
        m.r_bytes.extend([b"", b"\x00", b"\xff\xfe", bytes([n]) * n])
        m.o_bytes = b""
        out.append(m)
    m = pb.AllKinds()
    m.m_names[INT64[0]] = "min"
    m.m_names[INT64[1]] = "max"
    m.m_names[0] = ""
    m.m_names[-1] = "ünï"
    m.m_inners[""].SetInParent()
    m.m_inners["k"].name = "v"
    m.m_colors["unknown"] = 99
    m.m_colors["blue"] = pb.COLOR_BLUE
    out.append(m)
    # Oneof members at their defaults, optionals at their defaults, unknown enum numbers.
    for member in ("c_text", "c_number", "c_inner", "c_blob"):
        m = pb.AllKinds()
        if member == "c_inner":
            m.c_inner.SetInParent()
        else:
            setattr(m, member, {"c_text": "", "c_number": 0, "c_blob": b""}[member])
        out.append(m)
    m = pb.AllKinds()
    m.o_int32, m.o_string, m.o_bool, m.o_color, m.o_bytes = 0, "", False, 0, b""
    m.f_inner.SetInParent()
    out.append(m)
    m = pb.AllKinds()
    m.f_color, m.f_mode, m.o_color = 99, -7, 2**31 - 1
    m.r_color.extend([0, -3, 5, -(2**31)])
    out.append(m)
    return out


def random_string(rng: random.Random) -> str:
    pool = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\x00"[:0], "\x01", "é", "ß", "✓", "日", "🚀", "\u2028", "\U0010FFFF"]
    return "".join(rng.choice(pool) for _ in range(rng.randrange(0, 12)))


def random_instance(pb, rng: random.Random):
    m = pb.AllKinds()

    def maybe() -> bool:
        return rng.random() < 0.5

    def integer(bounds) -> int:
        lo, hi = bounds
        return rng.choice([lo, hi, 0, -1 if lo < 0 else 1, rng.randint(lo, hi), rng.randint(-1000, 1000) if lo < 0 else rng.randint(0, 1000)])

    def double() -> float:
        if rng.random() < 0.3:
            return rng.choice(DOUBLES)
        return struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] if rng.random() < 0.5 else rng.uniform(-1e6, 1e6)

    def single() -> float:
        if rng.random() < 0.3:
            return rng.choice(FLOATS)
        value = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
        if math.isnan(value):
            return float("nan")  # the canonical NaN: payload bits are not part of the mapping
        return value if abs(value) != 3.4028234663852886e38 else 1.0

    def nan_canonical(value: float) -> float:
        return float("nan") if math.isnan(value) else value

    def blob() -> bytes:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 9)))

    def color() -> int:
        return rng.choice([0, 1, 2, -3, 99, -100, INT32[0], INT32[1]])

    if maybe(): m.f_double = nan_canonical(double())
    if maybe(): m.f_float = single()
    if maybe(): m.f_int32 = integer(INT32)
    if maybe(): m.f_int64 = integer(INT64)
    if maybe(): m.f_uint32 = integer(UINT32)
    if maybe(): m.f_uint64 = integer(UINT64)
    if maybe(): m.f_sint32 = integer(INT32)
    if maybe(): m.f_sint64 = integer(INT64)
    if maybe(): m.f_fixed32 = integer(UINT32)
    if maybe(): m.f_fixed64 = integer(UINT64)
    if maybe(): m.f_sfixed32 = integer(INT32)
    if maybe(): m.f_sfixed64 = integer(INT64)
    if maybe(): m.f_bool = rng.random() < 0.5
    if maybe(): m.f_string = random_string(rng)
    if maybe(): m.f_bytes = blob()
    if maybe(): m.f_color = color()
    if maybe(): m.f_mode = rng.choice([0, 1, 2, 7])
    if maybe():
        m.f_inner.name = random_string(rng)
        m.f_inner.value = integer(INT32)
    for _ in range(rng.randrange(0, 4)): m.r_int32.append(integer(INT32))
    for _ in range(rng.randrange(0, 4)): m.r_string.append(random_string(rng))
    for _ in range(rng.randrange(0, 4)): m.r_bytes.append(blob())
    for _ in range(rng.randrange(0, 3)): m.r_inner.add(name=random_string(rng), value=integer(INT32))
    for _ in range(rng.randrange(0, 4)): m.r_color.append(color())
    for _ in range(rng.randrange(0, 4)): m.r_double.append(nan_canonical(double()))
    for _ in range(rng.randrange(0, 4)): m.r_sint64.append(integer(INT64))
    for _ in range(rng.randrange(0, 4)): m.r_bool.append(rng.random() < 0.5)
    if maybe(): m.o_int32 = rng.choice([0, integer(INT32)])
    if maybe(): m.o_string = rng.choice(["", random_string(rng)])
    if maybe(): m.o_bool = rng.random() < 0.5
    if maybe(): m.o_color = rng.choice([0, color()])
    if maybe(): m.o_bytes = rng.choice([b"", blob()])
    choice = rng.randrange(0, 5)
    if choice == 1: m.c_text = rng.choice(["", random_string(rng)])
    elif choice == 2: m.c_number = rng.choice([0, integer(INT64)])
    elif choice == 3: m.c_inner.name = random_string(rng); m.c_inner.value = integer(INT32)
    elif choice == 4: m.c_blob = rng.choice([b"", blob()])
    for _ in range(rng.randrange(0, 4)): m.m_counts[random_string(rng)] = integer(INT32)
    for _ in range(rng.randrange(0, 3)): m.m_inners[random_string(rng)].value = integer(INT32)
    for _ in range(rng.randrange(0, 4)): m.m_names[integer(INT64)] = random_string(rng)
    for _ in range(rng.randrange(0, 3)): m.m_colors[random_string(rng)] = color()
    return m


@pytest.fixture(scope="module")
def instances(pb):
    rng = random.Random(SEED)
    return extremes(pb) + [random_instance(pb, rng) for _ in range(RANDOM_INSTANCES)]


# -- the checks ----------------------------------------------------------------------------


def test_swift_json_parses_in_python_to_the_same_message(pb, instances):
    answers = convert("to-json", ALL_KINDS, [m.SerializeToString() for m in instances])
    failures = []
    for index, (message, (status, json_bytes)) in enumerate(zip(instances, answers)):
        if status != 0:
            failures.append(f"#{index}: Swift refused the wire form: {json_bytes.decode(errors='replace')}")
            continue
        text = json_bytes.decode("utf-8")
        try:
            parsed = json_format.Parse(text, pb.AllKinds())
        except json_format.ParseError as error:
            failures.append(f"#{index}: Python refused {text!r}: {error}")
            continue
        if canonical(parsed) != canonical(message):
            failures.append(f"#{index}: {text!r} parsed in Python to\n{parsed}\nnot\n{message}")
    assert not failures, f"{len(failures)} of {len(instances)} differ:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("proto_names", [False, True], ids=["json-names", "proto-names"])
def test_python_json_parses_in_swift_to_the_same_message(pb, instances, proto_names):
    texts = [json_format.MessageToJson(m, preserving_proto_field_name=proto_names, indent=None).encode()
             for m in instances]
    answers = convert("from-json", ALL_KINDS, texts)
    failures = []
    for index, (message, text, (status, wire)) in enumerate(zip(instances, texts, answers)):
        if status != 0:
            failures.append(f"#{index}: Swift refused {text!r}: {wire.decode(errors='replace')}")
            continue
        parsed = pb.AllKinds.FromString(wire)
        if canonical(parsed) != canonical(message):
            failures.append(f"#{index}: {text!r} decoded in Swift to\n{parsed}\nnot\n{message}")
    assert not failures, f"{len(failures)} of {len(instances)} differ:\n" + "\n".join(failures[:10])


def test_python_float_maximum_parses_in_swift(pb):
    """Python writes the largest float32 as 3.4028235e+38 and its own Parse refuses it;
    Swift reads it back to the same value."""
    m = pb.AllKinds(f_float=3.4028234663852886e38)
    ((status, wire),) = convert("from-json", ALL_KINDS, [json_format.MessageToJson(m).encode()])
    assert status == 0, wire
    assert canonical(pb.AllKinds.FromString(wire)) == canonical(m)


def test_both_refuse_what_the_mapping_refuses(pb):
    """Inputs both implementations must refuse (the Swift error names the field)."""
    bad = {
        '{"fInt32": 2147483648}': "f_int32",
        '{"fInt64": 1.5}': "f_int64",
        '{"fColor": "COLOR_PURPLE"}': "f_color",
        '{"cText": "a", "cNumber": "1"}': "c_number",
        '{"nope": 1}': "nope",
        '{"rInt32": [1, null]}': "r_int32[1]",
        '{"fFloat": 1e39}': "f_float",
        '{"fBool": "true"}': "f_bool",
    }
    answers = convert("from-json", ALL_KINDS, [text.encode() for text in bad])
    for (text, field), (status, answer) in zip(bad.items(), answers):
        assert status == 1, f"Swift accepted {text}"
        assert field in answer.decode(), f"{text}: {answer!r} does not name {field}"
        with pytest.raises(json_format.ParseError):
            json_format.Parse(text, pb.AllKinds())
    # One field by both its names: refused here (as the protobuf conformance suite
    # expects); Python's json_format takes the last.
    ((status, answer),) = convert("from-json", ALL_KINDS, [b'{"fInt32": 1, "f_int32": 2}'])
    assert status == 1 and b"f_int32" in answer


def test_any_in_status_both_ways(pb):
    """google.rpc.Status with Any details: Python packs, Swift writes the @type form,
    Python reads it back; and the other way."""
    import importlib

    status_pb2 = importlib.import_module("google.rpc.status_pb2")
    details_pb2 = importlib.import_module("google.rpc.error_details_pb2")
    status = status_pb2.Status(code=3, message="bad")
    status.details.add().Pack(reference(pb))
    retry = details_pb2.RetryInfo()
    retry.retry_delay.FromNanoseconds(1_500_000_000)
    status.details.add().Pack(retry)

    def same(a, b) -> bool:
        # Packed messages with maps re-encode in another entry order: compare unpacked.
        if (a.code, a.message, [d.type_url for d in a.details]) != (b.code, b.message, [d.type_url for d in b.details]):
            return False
        for x, y, kind in zip(a.details, b.details, (pb.AllKinds, details_pb2.RetryInfo)):
            mx, my = kind(), kind()
            x.Unpack(mx)
            y.Unpack(my)
            if canonical(mx) != canonical(my):
                return False
        return True

    ((ok, text),) = convert("to-json", "google.rpc.Status", [status.SerializeToString()])
    assert ok == 0, text
    assert b'"@type":"type.googleapis.com/google.rpc.RetryInfo","value":' not in text
    assert b'"retryDelay":"1.500s"' in text
    parsed = json_format.Parse(text.decode(), status_pb2.Status())
    assert same(parsed, status), text
    ((ok, wire),) = convert("from-json", "google.rpc.Status", [json_format.MessageToJson(status).encode()])
    assert ok == 0, wire
    assert same(status_pb2.Status.FromString(wire), status)
