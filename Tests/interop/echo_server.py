#!/usr/bin/env python3
"""A stock Python grpcio server for stb.testing.v1.Echo: interop and benchmark peer.

    echo_server.py [--port PORT] [--workers N]

--port 0 (the default) picks a free port. When ready it prints
`echo_server.py listening on 127.0.0.1:PORT` and flushes stdout. SIGTERM or SIGINT
stops it. The Python stubs are generated on every start with grpc_tools.protoc from
the repository's Protos/stb/testing/v1/echo.proto into a temporary directory, so the
server always matches the current .proto.

Semantics, as the Swift EchoService:
  Get      echoes text and payload; adds metadata_padding_bytes of `x-echo-padding`
           metadata; sleeps delay_ms; fails with fail_with_code (text as details)
  Expand   sends `count` replies (text, payload, index), sleeping delay_ms before each;
           then fails with fail_with_code if set
  Collect  joins the texts of every request with a space; index = number of requests;
           fails with fail_with_code of the first request that sets it
  Update   answers each request as it arrives (text, payload, index)
Request metadata whose key starts with `x-echo` comes back in the initial and trailing
metadata. grpc.health.v1.Health is served when grpcio-health-checking is installed.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "Protos"
ECHO_PROTO = "stb/testing/v1/echo.proto"


def generate_stubs(out_dir: Path):
    """Compiles echo.proto into out_dir; returns (echo_pb2, echo_pb2_grpc)."""
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTOS}", f"-I{well_known}",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", ECHO_PROTO],
        check=True,
    )
    sys.path.insert(0, str(out_dir))
    pb2 = importlib.import_module("stb.testing.v1.echo_pb2")
    pb2_grpc = importlib.import_module("stb.testing.v1.echo_pb2_grpc")
    return pb2, pb2_grpc


def make_servicer(grpc, pb2, pb2_grpc):
    def echo_metadata(context):
        echoed = tuple((k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo"))
        if echoed:
            context.send_initial_metadata(echoed)
            context.set_trailing_metadata(echoed)

    def add_padding(request, context):
        if request.metadata_padding_bytes:
            padding = (("x-echo-padding", "x" * min(request.metadata_padding_bytes, 4 << 20)),)
            context.send_initial_metadata(padding)
            context.set_trailing_metadata(padding)

    def pause(request):
        if request.delay_ms:
            time.sleep(request.delay_ms / 1000.0)

    def fail_if_asked(request, context):
        if request.fail_with_code:
            context.abort(_status_code(grpc, request.fail_with_code), request.text)

    class EchoServicer(pb2_grpc.EchoServicer):
        def Get(self, request, context):
            echo_metadata(context)
            add_padding(request, context)
            pause(request)
            fail_if_asked(request, context)
            return pb2.EchoResponse(text=request.text, payload=request.payload)

        def Expand(self, request, context):
            echo_metadata(context)
            text, payload = request.text, request.payload
            for index in range(request.count):
                pause(request)
                yield pb2.EchoResponse(text=text, payload=payload, index=index)
            fail_if_asked(request, context)

        def Collect(self, request_iterator, context):
            echo_metadata(context)
            texts = []
            for request in request_iterator:
                fail_if_asked(request, context)
                texts.append(request.text)
            return pb2.EchoResponse(text=" ".join(texts), index=len(texts))

        def Update(self, request_iterator, context):
            echo_metadata(context)
            for index, request in enumerate(request_iterator):
                pause(request)
                fail_if_asked(request, context)
                yield pb2.EchoResponse(text=request.text, payload=request.payload, index=index)

    return EchoServicer()


def _status_code(grpc, number: int):
    """The grpc.StatusCode for a numeric code (UNKNOWN if there is none)."""
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0: a free one)")
    parser.add_argument("--workers", type=int, default=16, help="handler thread pool size")
    args = parser.parse_args()

    import grpc

    out_dir = Path(tempfile.mkdtemp(prefix="stb-echo-py-"))
    try:
        pb2, pb2_grpc = generate_stubs(out_dir)

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=args.workers),
            options=[("grpc.so_reuseport", 0)],
        )
        pb2_grpc.add_EchoServicer_to_server(make_servicer(grpc, pb2, pb2_grpc), server)
        try:
            from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        except ImportError:
            health = None
        if health is not None:
            health_servicer = health.HealthServicer()
            health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            health_servicer.set("stb.testing.v1.Echo", health_pb2.HealthCheckResponse.SERVING)
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

        port = server.add_insecure_port(f"127.0.0.1:{args.port}")
        if port == 0:
            print(f"echo_server.py: could not bind 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
            return 1
        server.start()

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        # A parent may have spawned us with these blocked (libdispatch blocks signals on
        # its threads, and the mask is inherited): unblock them or SIGTERM never arrives.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        print(f"echo_server.py listening on 127.0.0.1:{port}", flush=True)
        while not stop.wait(0.5):
            pass
        server.stop(grace=1).wait(5)
        return 0
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
