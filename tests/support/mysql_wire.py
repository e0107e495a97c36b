"""The client's side of the MySQL protocol, for tests: scrambles, handshake responses, command packets, reading
what the server sent back, and a tiny blocking client (``WireClient``) for the fuzz and integration tests.
"""
from __future__ import annotations

import hashlib
import socket
import struct
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

from router.frontend.mysql.binary import encode_param, param_type_of
from router.frontend.mysql.constants import Capability, Command
from router.frontend.mysql.packets import (
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    PacketDecoder,
    frame,
)
from sharding import auth
from sharding.config_model import UserConfig

CLIENT_CAPS = int(Capability.LONG_PASSWORD | Capability.LONG_FLAG | Capability.PROTOCOL_41 | Capability.TRANSACTIONS
                  | Capability.SECURE_CONNECTION | Capability.MULTI_STATEMENTS | Capability.MULTI_RESULTS
                  | Capability.PS_MULTI_RESULTS | Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS
                  | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.DEPRECATE_EOF)


def make_user(name: str, password: str, methods: Sequence[str], roles: Sequence[str] = ("admin",),
              sha2_iterations: int = 1000, fast_auth: bool = True) -> UserConfig:
    entry = auth.make_user_entry(name, password, roles, methods=methods, sha2_iterations=sha2_iterations,
                                 fast_auth=fast_auth)
    verifiers = {m: auth.parse_verifier(m, t) for m, t in entry["verifiers"].items()}  # type: ignore[union-attr]
    return UserConfig(name, frozenset(roles), MappingProxyType(verifiers),
                      MappingProxyType({"mysql": auth.preferred_method(verifiers, "mysql") or ""}))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def native_scramble(password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    return _xor(stage1, hashlib.sha1(nonce + hashlib.sha1(stage1).digest()).digest())


def sha2_scramble(password: str, nonce: bytes) -> bytes:
    if not password:
        return b""
    p1 = hashlib.sha256(password.encode()).digest()
    p2 = hashlib.sha256(p1).digest()
    return _xor(p1, hashlib.sha256(p2 + nonce).digest())


def scramble(plugin: str, password: str, nonce: bytes) -> bytes:
    return native_scramble(password, nonce) if plugin == auth.MYSQL_NATIVE else sha2_scramble(password, nonce)


def handshake_response(user: str, password: str, nonce: bytes, *, plugin: str = auth.MYSQL_NATIVE,
                       database: str | None = None, caps: int = CLIENT_CAPS, charset: int = 45,
                       attrs: dict[str, str] | None = None) -> bytes:
    if database is not None:
        caps |= Capability.CONNECT_WITH_DB
    return HandshakeResponse41(caps, 1 << 24, charset, user.encode(), scramble(plugin, password, nonce),
                               database.encode() if database is not None else None, plugin,
                               attrs or {"_client_name": "shardgate-tests"}).encode()


def query(sql: str | bytes) -> bytes:
    return bytes((Command.QUERY,)) + (sql.encode() if isinstance(sql, str) else sql)


def stmt_prepare(sql: str) -> bytes:
    return bytes((Command.STMT_PREPARE,)) + sql.encode()


def stmt_execute(stmt_id: int, params: Sequence[Any], *, flags: int = 0, bind: bool = True,
                 long_data: Sequence[int] = ()) -> bytes:
    out = bytearray((Command.STMT_EXECUTE,)) + struct.pack("<IBI", stmt_id, flags, 1)
    if params:
        bitmap = bytearray((len(params) + 7) // 8)
        for i, v in enumerate(params):
            if v is None and i not in long_data:
                bitmap[i // 8] |= 1 << (i % 8)
        out += bitmap + bytes((1 if bind else 0,))
        types = [param_type_of(v) for v in params]
        if bind:
            for t, unsigned in types:
                out += bytes((t, 0x80 if unsigned else 0))
        for i, (v, (t, unsigned)) in enumerate(zip(params, types, strict=True)):
            if v is not None and i not in long_data:
                out += encode_param(v, t, unsigned)
    return bytes(out)


def stmt_close(stmt_id: int) -> bytes:
    return bytes((Command.STMT_CLOSE,)) + struct.pack("<I", stmt_id)


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """(sequence id, payload) of every packet in ``data`` (split packets joined)."""
    dec = PacketDecoder(1 << 30)
    dec.feed(data)
    out = []
    while (p := dec.next_packet()) is not None:
        out.append((p[0], p[2]))
    return out


class WireError(Exception):
    def __init__(self, err: ErrPacket) -> None:
        super().__init__(f"{err.errno} ({err.sqlstate}): {err.message}")
        self.err = err


class WireClient:
    """A minimal blocking MySQL client over a socket (mysql_native_password; CLIENT_DEPRECATE_EOF)."""

    def __init__(self, host: str, port: int, user: str, password: str, database: str | None = None,
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._dec = PacketDecoder(1 << 30)
        seq, payload = self.read()
        self.handshake = HandshakeV10.decode(payload)
        self.connection_id = self.handshake.connection_id
        self.send(handshake_response(user, password, self.handshake.auth_data, database=database), seq + 1)
        _, reply = self.read()
        if reply[:1] == b"\xfe":  # auth switch
            from router.frontend.mysql.packets import AuthSwitchRequest

            switch = AuthSwitchRequest.decode(reply)
            self.send(scramble(switch.plugin, password, switch.data), 3)
            _, reply = self.read()
            if reply[:2] == b"\x01\x03":
                _, reply = self.read()
        if reply[:1] == b"\xff":
            raise WireError(ErrPacket.decode(reply))

    def send(self, payload: bytes, seq: int = 0) -> None:
        self.sock.sendall(frame(payload, seq)[0])

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> tuple[int, bytes]:
        while True:
            p = self._dec.next_packet()
            if p is not None:
                return p[0], p[2]
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self._dec.feed(chunk)

    def command(self, payload: bytes) -> list[bytes]:
        """Send one command; the payloads of its whole answer (all result sets of a multi-statement)."""
        self.send(payload)
        return list(self._answer())

    def _answer(self) -> Iterator[bytes]:
        while True:
            _, first = self.read()
            yield first
            if first[:1] in (b"\x00", b"\xff") or (first[:1] == b"\xfe" and len(first) < 9):
                if first[:1] == b"\x00" and _more(first):
                    continue
                return
            # a result set: column definitions, then rows until the 0xFE OK
            while True:
                _, p = self.read()
                yield p
                if p[:1] == b"\xfe" and len(p) < 0xFFFFFF:
                    if _more(p):
                        break
                    return
                if p[:1] == b"\xff":
                    return

    def query(self, sql: str) -> list[bytes]:
        return self.command(query(sql))

    def close(self) -> None:
        try:
            self.send(bytes((Command.QUIT,)))
        except OSError:
            pass
        self.sock.close()


def _more(ok_payload: bytes) -> bool:
    from router.frontend.mysql.packets import OkPacket

    try:
        return bool(OkPacket.decode(ok_payload).status & 8)
    except Exception:
        return False
