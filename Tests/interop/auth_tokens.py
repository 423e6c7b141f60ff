"""Access tokens for the interop tests, minted with stock libraries (cryptography, PyJWT).

One Ed25519 key per test session, published to the services under test as a JWKS file
(`STB_AUTH_KEYS_FILE`), signs tokens for every role. `mint` makes good and bad tokens
(expired, wrong audience, another key); `BearerInterceptor` gives a grpcio channel a
default `authorization` metadata; `STB_TOKEN` is set in the environment so stbctl and
other child processes present an admin's token.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import tempfile
import time
import uuid

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ISSUER = "stb-gateway"
AUDIENCE = "stb"
ROLES = ("viewer", "operator", "engineer", "admin", "service")
# Long enough for the slowest test session; real access tokens live 10 minutes.
TEST_LIFETIME = 4 * 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    """An Ed25519 key with a `kid`, as the gateway holds one."""

    def __init__(self, kid: str):
        self.kid = kid
        self.private = Ed25519PrivateKey.generate()

    @property
    def jwk(self) -> dict:
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": self.kid, "use": "sig", "alg": "EdDSA"}


KEY = SigningKey("interop")
# A key the services do not know.
STRANGER = SigningKey("interop")

_DIR = tempfile.mkdtemp(prefix="stb-interop-auth-")
atexit.register(shutil.rmtree, _DIR, True)
JWKS_PATH = os.path.join(_DIR, "jwks.json")
with open(JWKS_PATH, "w") as _file:
    json.dump({"keys": [KEY.jwk]}, _file)


def mint(role: str = "admin", name: str | None = None, *, lifetime: int = TEST_LIFETIME, audience: str = AUDIENCE,
         issuer: str = ISSUER, key: SigningKey = KEY, subject: str | None = None) -> str:
    """A signed access token for `name` (default: the role's name) holding `role`."""
    name = name or (f"{role}-user" if role != "service" else "rules")
    now = int(time.time())
    claims = {
        "iss": issuer, "aud": audience,
        "sub": subject or (f"service:{name}" if role == "service" else f"user:{name}"),
        "name": name, "role": role,
        "iat": min(now, now + lifetime) - 5, "nbf": min(now, now + lifetime) - 5, "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})


def unsigned(role: str = "admin") -> str:
    """An `alg: none` token with an admin's claims (no signature)."""
    now = int(time.time())
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": KEY.kid}).encode())
    payload = _b64url(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": f"user:{role}", "name": role, "role": role,
                                  "iat": now, "nbf": now, "exp": now + 600}).encode())
    return f"{header}.{payload}."


def tampered(role: str = "admin") -> str:
    """A good token whose signature has been altered."""
    token = mint(role)
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0xFF
    return f"{head}.{payload}.{_b64url(bytes(raw))}"


def metadata(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token else []


class BearerInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call that does not carry its own."""

    def __init__(self, token: str):
        self.token = token

    def _details(self, details):
        existing = list(details.metadata or [])
        if any(key == "authorization" for key, _ in existing):
            return details
        fields = details._asdict() if hasattr(details, "_asdict") else {
            "method": details.method, "timeout": details.timeout, "metadata": details.metadata,
            "credentials": details.credentials, "wait_for_ready": getattr(details, "wait_for_ready", None),
            "compression": getattr(details, "compression", None)}
        fields["metadata"] = existing + metadata(self.token)
        return _CallDetails(**fields)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready=None, compression=None):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def authenticated(channel: grpc.Channel, token: str | None = None) -> grpc.Channel:
    """`channel` with `token` (an admin's by default) on every call."""
    return grpc.intercept_channel(channel, BearerInterceptor(token or mint("admin", "interop-admin")))


# Child processes (stbctl, scripts) present an admin's token.
os.environ.setdefault("STB_TOKEN", mint("admin", "interop-admin"))
