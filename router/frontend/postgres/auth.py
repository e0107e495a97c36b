"""Who may log in over the PostgreSQL protocol, and how: rules per user and network, and the exchanges.

Methods: ``scram-sha-256`` (the default; ``SCRAM-SHA-256-PLUS`` with channel binding is offered on TLS
connections), ``md5``, ``password`` (clear text: only sensible over TLS), ``trust`` and ``reject``. The verifiers
themselves, and every check of what a client sends, are ``sharding.auth``'s; this module only chooses the method
and moves the exchange forward, message by message, without any I/O.

Rules are read like ``pg_hba.conf`` lines, first match wins::

    # TYPE      DATABASE   USER        ADDRESS          METHOD
    host        all        all         127.0.0.1/32     scram-sha-256
    hostssl     customer   app,report  10.0.0.0/8       md5
    hostnossl   all        all         all              reject
    host        all        +admin      ::1/128          trust

``DATABASE`` is ``all`` or a comma list of database names as the client sends them (``customer``,
``customer:-80``); ``USER`` is ``all``, a comma list of names, or ``+role`` for the users having a role. Without
any rule (or when none matches), a user logs in with the method the cluster config gives them for PostgreSQL
(``users[].auth.postgres``, by default the strongest verifier they have). A user that does not exist goes through
the same exchange against a mock verifier and fails it, so a client cannot tell unknown users from wrong
passwords.
"""
from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.frontend.postgres import messages as M
from sharding import auth as sa
from sharding.config_model import UserConfig
from sharding.errors import AuthenticationError, ConfigError

__all__ = ["AuthExchange", "AuthPolicy", "HbaRule", "METHODS", "parse_hba", "tls_server_end_point"]

SCRAM, MD5, PASSWORD, TRUST, REJECT = "scram-sha-256", "md5", "password", "trust", "reject"
METHODS = (SCRAM, MD5, PASSWORD, TRUST, REJECT)
_CONN_TYPES = ("host", "hostssl", "hostnossl")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class HbaRule:
    conn_type: str  # host | hostssl | hostnossl
    databases: frozenset[str] | None  # None: all
    users: frozenset[str] | None  # None: all; "+role" entries match users having that role
    network: Network | None  # None: any address
    method: str
    line: int = 0

    def matches(self, user: UserConfig | None, user_name: str, database: str, address: str | None,
                tls: bool) -> bool:
        if (self.conn_type == "hostssl" and not tls) or (self.conn_type == "hostnossl" and tls):
            return False
        if self.databases is not None and database not in self.databases:
            return False
        if self.users is not None:
            roles = user.roles if user is not None else frozenset()
            if user_name not in self.users and not any(f"+{r}" in self.users for r in roles):
                return False
        if self.network is not None:
            if address is None:
                return False
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                return False
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if ip.version != self.network.version or ip not in self.network:
                return False
        return True


def parse_hba(text: str, source: str = "<hba>") -> list[HbaRule]:
    """Rules from ``pg_hba.conf``-style text (see the module docstring). ``ConfigError`` lists every bad line."""
    rules: list[HbaRule] = []
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) != 5:
            problems.append(f"{source}:{n}: expected TYPE DATABASE USER ADDRESS METHOD, got {len(words)} fields")
            continue
        conn_type, dbs, users, addr, method = words
        if conn_type not in _CONN_TYPES:
            problems.append(f"{source}:{n}: unknown connection type {conn_type!r} (host, hostssl, hostnossl)")
            continue
        if method not in METHODS:
            problems.append(f"{source}:{n}: unknown method {method!r} ({', '.join(METHODS)})")
            continue
        network: Network | None = None
        if addr not in ("all", "0.0.0.0/0", "::/0"):
            try:
                network = ipaddress.ip_network(addr if addr != "samehost" else "127.0.0.1/32", strict=False)
            except ValueError:
                problems.append(f"{source}:{n}: bad address {addr!r}")
                continue
        rules.append(HbaRule(conn_type, None if dbs == "all" else frozenset(dbs.split(",")),
                             None if users == "all" else frozenset(users.split(",")), network, method, n))
    if problems:
        raise ConfigError("bad authentication rules", problems)
    return rules


def tls_server_end_point(cert_der: bytes) -> bytes:
    """RFC 5929 ``tls-server-end-point``: the certificate's hash with its signature's hash algorithm (SHA-256 when
    that is MD5 or SHA-1, or when the algorithm cannot be read)."""
    name = "sha256"
    try:
        from cryptography import x509

        algo = x509.load_der_x509_certificate(cert_der).signature_hash_algorithm
        if algo is not None and algo.name not in ("md5", "sha1"):
            name = algo.name
    except Exception:
        pass
    return hashlib.new(name, cert_der).digest()


@dataclass(frozen=True, slots=True)
class AuthPlan:
    method: str
    user: UserConfig | None
    verifier: Any  # sharding.auth verifier, or None for trust/reject


class AuthPolicy:
    """Decides the method for one login attempt (pure: config data in, a plan out)."""

    def __init__(self, users: Iterable[UserConfig], rules: Sequence[HbaRule] = (), *,
                 server_secret: bytes | None = None) -> None:
        self.users = {u.name: u for u in users}
        self.rules = list(rules)
        self.server_secret = server_secret if server_secret is not None else secrets.token_bytes(32)

    def plan(self, user_name: str, database: str, address: str | None, tls: bool) -> AuthPlan:
        user = self.users.get(user_name)
        rule = next((r for r in self.rules if r.matches(user, user_name, database, address, tls)), None)
        if rule is not None:
            method = rule.method
        elif self.rules:
            method = REJECT  # rules given and none matched: PostgreSQL's "no pg_hba.conf entry"
        elif user is not None:
            method = user.auth.get("postgres") or REJECT
        else:
            method = SCRAM
        if method in (TRUST, REJECT):
            return AuthPlan(method, user, None)
        verifiers = user.verifiers if user is not None else {}
        if method == MD5 and sa.MD5 not in verifiers and sa.SCRAM_SHA_256 in verifiers:
            method = SCRAM  # as PostgreSQL: an md5 rule with a SCRAM verifier runs SCRAM
        if method == PASSWORD:
            chosen = verifiers.get(sa.SCRAM_SHA_256) or verifiers.get(sa.MD5)
            return AuthPlan(PASSWORD, user, chosen)
        verifier = verifiers.get(sa.SCRAM_SHA_256 if method == SCRAM else sa.MD5)
        if verifier is None and method == SCRAM:
            verifier = sa.scram_mock_verifier(user_name, self.server_secret)
        return AuthPlan(method, user, verifier)


@dataclass
class AuthExchange:
    """One login's exchange. ``start()`` gives the first Authentication message; each 'p' message goes to
    ``step()``, which returns what to send back and whether the client is now authenticated. A failure raises
    ``AuthenticationError`` (the caller sends FATAL and closes)."""

    plan: AuthPlan
    user_name: str
    channel_binding: bytes | None = None  # tls-server-end-point data on TLS connections
    done: bool = False
    _salt: bytes = b""
    _scram: Any = None
    _stage: int = 0
    _mechanisms: tuple[str, ...] = field(default=())

    def start(self) -> bytes:
        method = self.plan.method
        if method == TRUST:
            self.done = True
            return M.AUTH_OK
        if method == REJECT:
            raise M.PgError(f'no authentication rule allows user "{self.user_name}" from this address',
                            sqlstate="28000", fatal=True)
        if method == MD5:
            self._salt = sa.md5_salt()
            return M.auth_md5(self._salt)
        if method == PASSWORD:
            return M.auth_cleartext()
        mechs = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256") if self.channel_binding is not None else ("SCRAM-SHA-256",)
        self._mechanisms = mechs
        return M.auth_sasl(mechs)

    def _fail(self, why: str = "") -> AuthenticationError:
        return AuthenticationError(f'password authentication failed for user "{self.user_name}"', detail=why)

    def step(self, data: bytes) -> bytes:
        if self.done:
            raise M.ProtocolViolation("unexpected password message after authentication", fatal=True)
        method = self.plan.method
        verifier = self.plan.verifier
        if method == MD5:
            if not data.endswith(b"\0") or verifier is None or not verifier.verify_response(data[:-1], self._salt):
                raise self._fail("md5 response does not match")
            self.done = True
            return M.AUTH_OK
        if method == PASSWORD:
            if not data.endswith(b"\0") or b"\0" in data[:-1]:
                raise M.ProtocolViolation("invalid password packet", fatal=True)
            if verifier is None or not verifier.verify_password(data[:-1], user=self.user_name):
                raise self._fail("clear-text password does not match")
            self.done = True
            return M.AUTH_OK
        return self._scram_step(data)

    def _scram_step(self, data: bytes) -> bytes:
        if self._stage == 0:
            end = data.find(b"\0")
            if end < 0 or len(data) < end + 5:
                raise M.ProtocolViolation("malformed SASLInitialResponse", fatal=True)
            mech = data[:end].decode("ascii", "replace")
            size = int.from_bytes(data[end + 1:end + 5], "big", signed=True)
            first = data[end + 5:]
            if size != len(first):
                raise M.ProtocolViolation("malformed SASLInitialResponse: length mismatch", fatal=True)
            if mech not in self._mechanisms:
                raise AuthenticationError("client selected an invalid SASL authentication mechanism")
            binding = None
            if mech == "SCRAM-SHA-256-PLUS":
                assert self.channel_binding is not None
                binding = ("tls-server-end-point", self.channel_binding)
            elif self.channel_binding is not None and first.startswith(b"y"):
                binding = ("tls-server-end-point", self.channel_binding)  # 'y' while -PLUS was offered: refused
            server_first, self._scram = sa.scram_server_first(self.plan.verifier, first, channel_binding=binding)
            self._stage = 1
            return M.auth_sasl_continue(server_first)
        if self._stage == 1:
            try:
                final = sa.scram_server_final(self._scram, data)
            except AuthenticationError as exc:
                raise self._fail(exc.detail or "") from None
            self._stage = 2
            self.done = True
            return M.auth_sasl_final(final) + M.AUTH_OK
        raise M.ProtocolViolation("unexpected SASL message", fatal=True)
