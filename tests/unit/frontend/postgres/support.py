"""Helpers of the PostgreSQL frontend tests: a SCRAM client, captured sessions, and driving ``PgProtocol``."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from pathlib import Path
from typing import Any

from router.frontend.postgres import messages as M
from router.frontend.postgres.protocol import Login, PgProtocol

CAPTURES = Path(__file__).parent / "captures"


def capture(name: str) -> bytes:
    return bytes.fromhex("".join((CAPTURES / f"{name}.hex").read_text(encoding="ascii").split()))


def all_captures() -> dict[str, bytes]:
    return {p.stem: capture(p.stem) for p in sorted(CAPTURES.glob("*.hex"))}


def split_frontend(data: bytes) -> list[bytes]:
    """A captured client stream as its messages (startup packets included), each with its header."""
    out, pos = [], 0
    startup = True
    while pos < len(data):
        if startup:
            size = struct.unpack_from("!i", data, pos)[0]
            code = struct.unpack_from("!i", data, pos + 4)[0]
            out.append(data[pos:pos + size])
            pos += size
            startup = code in (M.SSL_CODE, M.GSSENC_CODE)
            continue
        size = struct.unpack_from("!i", data, pos + 1)[0]
        out.append(data[pos:pos + 1 + size])
        pos += 1 + size
    return out


class ScramClient:
    """The client half of SCRAM-SHA-256 (RFC 5802/7677), as libpq does it, without channel binding."""

    def __init__(self, password: str, nonce: bytes | None = None) -> None:
        self.password = password.encode()
        self.nonce = base64.b64encode(nonce or os.urandom(18))
        self.bare = b"n=,r=" + self.nonce
        self.server_signature = b""

    def first(self, mechanism: str = "SCRAM-SHA-256") -> bytes:
        data = b"n,," + self.bare
        return mechanism.encode() + b"\0" + struct.pack("!i", len(data)) + data

    def final(self, server_first: bytes) -> bytes:
        attrs = dict(part.split(b"=", 1) for part in server_first.split(b","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs[b"s"]), int(attrs[b"i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored = hashlib.sha256(client_key).digest()
        without_proof = b"c=" + base64.b64encode(b"n,,") + b",r=" + attrs[b"r"]
        auth_message = self.bare + b"," + server_first + b"," + without_proof
        signature = hmac.digest(stored, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = base64.b64encode(hmac.digest(server_key, auth_message, "sha256"))
        return without_proof + b",p=" + base64.b64encode(proof)


def drain(proto: PgProtocol) -> list[Any]:
    """Every event available now; a Login is accepted on the spot (as the glue would)."""
    events = []
    while (ev := proto.next_event()) is not None:
        events.append(ev)
        if isinstance(ev, Login):
            proto.accept({"server_version": "15.0"}, 1, 2)
    return events


def replies(proto: PgProtocol) -> list[tuple[str, bytes]]:
    """The backend messages written so far; the one-byte answers to SSLRequest/GSSENCRequest are dropped."""
    out = proto.take_output()
    while out[:1] in (b"N", b"S") and (len(out) == 1 or out[1:2] in (b"N", b"S", b"R", b"E", b"v")):
        out = out[1:]
    return M.read_backend(out)
