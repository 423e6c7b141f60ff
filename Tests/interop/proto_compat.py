#!/usr/bin/env python3
"""Byte compatibility of the Swift/protobuf-c messages with Python's protobuf.

    proto_compat.py encode      print the hex encoding of the reference AllKinds
    proto_compat.py check HEX   exit 0 if HEX decodes to the reference AllKinds,
                                else print a diff and exit 1 (2 if it does not parse)

Protos/ is compiled with grpc_tools.protoc into a temporary directory on each
run, so this always tests the current .proto files. The reference value must
stay identical to `referenceAllKinds` in
Tests/STBMessagesTests/PythonInteropTests.swift.
"""

from __future__ import annotations

import difflib
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "Protos"


def load_all_kinds_module(out_dir: Path):
    import grpc_tools

    protos = sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"-I{well_known}",
         f"--python_out={out_dir}", *protos],
        check=True,
    )
    sys.path.insert(0, str(out_dir))
    return importlib.import_module("stb.testing.v1.all_kinds_pb2")


def reference(pb):
    """The fixed AllKinds value; every field non-default where it can be."""
    m = pb.AllKinds()
    m.f_double = 3.141592653589793
    m.f_float = 1.5
    m.f_int32 = -123456
    m.f_int64 = -9_000_000_000
    m.f_uint32 = 4_000_000_000
    m.f_uint64 = 18_446_744_073_709_551_615
    m.f_sint32 = -42
    m.f_sint64 = -9_223_372_036_854_775_808
    m.f_fixed32 = 0xDEADBEEF
    m.f_fixed64 = 0x0123456789ABCDEF
    m.f_sfixed32 = -2_147_483_648
    m.f_sfixed64 = -1_234_567_890_123
    m.f_bool = True
    m.f_string = "héllo wörld ✓ 日本語 🚀"
    m.f_bytes = bytes([0, 1, 2, 0xFE, 0xFF])
    m.f_color = pb.COLOR_BLUE
    m.f_mode = pb.AllKinds.MODE_SAFE
    m.f_inner.name = "inner"
    m.f_inner.value = 7
    m.r_int32.extend([1, -1, 2_147_483_647, -2_147_483_648])
    m.r_string.extend(["a", "", "ünï"])
    m.r_bytes.extend([b"", b"\x00\x01"])
    m.r_inner.add(name="x", value=1)
    m.r_inner.add()
    m.r_color.extend([pb.COLOR_RED, pb.COLOR_BLUE, 99])
    m.r_double.extend([0.5, -1.25, 1e100])
    m.r_sint64.extend([-1, 1, -9_223_372_036_854_775_808])
    m.r_bool.extend([True, False, True])
    m.o_int32 = 0
    m.o_string = ""
    m.o_bool = False
    # o_color stays unset: absence must survive too.
    m.o_bytes = b"\x07"
    m.c_inner.name = "chosen"
    m.c_inner.value = -5
    m.m_counts.update({"a": 1, "b": -2, "ünï": 0})
    m.m_inners["k1"].name = "v1"
    m.m_inners["k1"].value = 1
    m.m_inners["k2"].SetInParent()
    m.m_names.update({-5: "minus five", 0: "", 9_000_000_000: "big"})
    m.m_colors.update({"red": pb.COLOR_RED, "blue": pb.COLOR_BLUE, "unknown": 99})
    return m


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("encode", "check") or (sys.argv[1] == "check") != (len(sys.argv) == 3):
        print(__doc__, file=sys.stderr)
        return 64
    from google.protobuf import text_format

    with tempfile.TemporaryDirectory(prefix="proto-compat-") as tmp:
        pb = load_all_kinds_module(Path(tmp))
        expected = reference(pb)
        if sys.argv[1] == "encode":
            print(expected.SerializeToString(deterministic=True).hex())
            return 0
        actual = pb.AllKinds()
        try:
            actual.ParseFromString(bytes.fromhex(sys.argv[2]))
        except Exception as error:  # any parse failure is a compatibility failure
            print(f"cannot parse the bytes as stb.testing.v1.AllKinds: {error}", file=sys.stderr)
            return 2
        if actual == expected:
            print("ok")
            return 0
        diff = difflib.unified_diff(
            text_format.MessageToString(expected, as_utf8=True).splitlines(),
            text_format.MessageToString(actual, as_utf8=True).splitlines(),
            "expected (Python)", "actual (decoded)", lineterm="",
        )
        print("\n".join(diff), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
