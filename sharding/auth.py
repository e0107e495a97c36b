"""Stored password verifiers, and checking what clients send against them. Never clear-text passwords.

Pure functions and frozen data: no sockets, no clocks. The frontends (``router/frontend/{postgres,mysql}``) move
the bytes; this module decides. Every comparison of secret-derived bytes uses ``hmac.compare_digest``.

Verifier formats (the text stored in the cluster config under ``users[].verifiers``)
------------------------------------------------------------------------------------
``scram-sha-256``  PostgreSQL's own format, byte for byte what ``pg_authid.rolpassword`` holds, so verifiers can
                   be copied from or to PostgreSQL (RFC 5802 / RFC 7677)::

                       SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>

                   SaltedPassword = PBKDF2-HMAC-SHA256(SASLprep(password), salt, iterations); ClientKey =
                   HMAC(SaltedPassword, "Client Key"); StoredKey = SHA256(ClientKey); ServerKey =
                   HMAC(SaltedPassword, "Server Key"). Defaults as PostgreSQL: 4096 iterations, 16-byte salt.
``md5``            PostgreSQL's legacy format: ``md5`` + hex(MD5(password + username)). It is bound to the user
                   name (renaming the user invalidates it) and is weak: prefer SCRAM.
``mysql_native_password``
                   MySQL's format: ``*`` + uppercase hex(SHA1(SHA1(password))), as ``SELECT PASSWORD('x')`` prints.
``caching_sha2_password``
                   Ours, since MySQL's own (``$A$005$`` SHA256-crypt) is only meant for its full-auth path::

                       $SG$sha2$<iterations>$<salt b64>$<hash b64>$<fast digest hex, or empty>

                   ``hash`` = PBKDF2-HMAC-SHA256(password, salt, iterations), 32 bytes, checks a clear-text password
                   (full authentication, received over TLS or RSA); salt 16 bytes; 600,000 iterations by default
                   (OWASP's figure for PBKDF2-HMAC-SHA256: about 0.2 s on these machines, so frontends run it in a
                   thread, ``asyncio.to_thread``). ``fast digest`` = SHA256(SHA256(password)), 32 bytes, checks the
                   fast-auth scramble without the clear-text password. It is optional: left empty, every login
                   uses full authentication (and a frontend may cache the digest in memory after one, as MySQL
                   itself does), so nothing unsalted is stored at all.

What a stolen config file gives away
------------------------------------
None of these reveals the password, but ``md5``, ``mysql_native_password`` and the fast digest of
``caching_sha2_password`` are unsalted, fast hashes: a dictionary attack on them is cheap. Keep the file private
(the config loader warns when it is readable by others), prefer ``scram-sha-256`` and ``caching_sha2_password``,
and generate verifiers only for the methods a user needs (``make_user_entry(..., methods=...)``). Whoever holds a
SCRAM StoredKey, a ``mysql_native_password`` hash or a fast digest and has also recorded one successful login of
that user can log in as that user: this is inherent in those protocols, not in how we store them.

SASLprep
--------
As PostgreSQL (``src/common/saslprep.c``): pure-ASCII passwords are used unchanged; otherwise RFC 4013 (map,
NFKC, prohibit, bidi check); when any step fails (invalid UTF-8, a prohibited or unassigned code point, an empty
result), the raw bytes are used instead. NFKC uses Python's Unicode tables, as PostgreSQL uses its own current
ones; only code points unassigned in Unicode 3.2 could be normalised differently, and those are prohibited anyway.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from sharding.errors import AuthenticationError, ConfigError

__all__ = [
    "CACHING_SHA2",
    "MD5",
    "METHODS",
    "MYSQL_METHODS",
    "MYSQL_NATIVE",
    "POSTGRES_METHODS",
    "SCRAM_SHA_256",
    "CachingSha2Verifier",
    "Md5Verifier",
    "MysqlNativeVerifier",
    "ScramServerState",
    "ScramSha256Verifier",
    "Verifier",
    "make_user_entry",
    "md5_salt",
    "mysql_nonce",
    "parse_verifier",
    "preferred_method",
    "saslprep",
    "scram_mock_verifier",
    "scram_server_final",
    "scram_server_first",
    "unscramble_rsa_password",
]

SCRAM_SHA_256 = "scram-sha-256"
MD5 = "md5"
MYSQL_NATIVE = "mysql_native_password"
CACHING_SHA2 = "caching_sha2_password"
POSTGRES_METHODS = (SCRAM_SHA_256, MD5)  # preferred first
MYSQL_METHODS = (CACHING_SHA2, MYSQL_NATIVE)  # preferred first
METHODS = POSTGRES_METHODS + MYSQL_METHODS

SCRAM_DEFAULT_ITERATIONS = 4096  # PostgreSQL's scram_iterations default
SCRAM_SALT_LEN = 16  # PostgreSQL's SCRAM_DEFAULT_SALT_LEN
SCRAM_NONCE_LEN = 18  # PostgreSQL's SCRAM_RAW_NONCE_LEN
SHA2_DEFAULT_ITERATIONS = 600_000
SHA2_SALT_LEN = 16
MAX_ITERATIONS = 10_000_000  # a typo must not make each login take minutes (SCRAM clients pay it too)
MYSQL_NONCE_LEN = 20

Password = str | bytes


def _password_bytes(password: Password) -> bytes:
    return password.encode("utf-8") if isinstance(password, str) else bytes(password)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict base64 (no stray characters); ``ValueError`` otherwise."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _check_iterations(iterations: int) -> None:
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iteration count {iterations} is outside 1..{MAX_ITERATIONS}")


# --- SASLprep (RFC 4013), PostgreSQL's flavour ----------------------------------------------------------------
_PROHIBITED = (
    stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22, stringprep.in_table_c3,
    stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7,
    stringprep.in_table_c8, stringprep.in_table_c9, stringprep.in_table_a1,
)


def _saslprep_strict(text: str) -> str | None:
    """RFC 4013 SASLprep for stored strings; ``None`` where PostgreSQL's ``pg_saslprep`` fails."""
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    if not mapped:
        return None
    normalized = unicodedata.normalize("NFKC", mapped)
    if any(check(ch) for ch in normalized for check in _PROHIBITED):
        return None
    if any(stringprep.in_table_d1(ch) for ch in normalized):
        if any(stringprep.in_table_d2(ch) for ch in normalized):
            return None
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            return None
    return normalized


def saslprep(password: Password) -> bytes:
    """The bytes PostgreSQL feeds to SCRAM for ``password``: SASLprep'd, or the raw bytes when that fails."""
    raw = _password_bytes(password)
    if raw.isascii():
        return raw  # PostgreSQL's quick path: ASCII needs no processing (control characters included)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    prepared = _saslprep_strict(text)
    return raw if prepared is None else prepared.encode("utf-8")


# --- verifiers ------------------------------------------------------------------------------------------------
class Verifier(Protocol):
    """A stored verifier. ``to_text()`` is the config form; ``repr`` never shows key material."""

    method: ClassVar[str]

    def to_text(self) -> str: ...

    def verify_password(self, password: Password, *, user: str) -> bool:
        """Check a clear-text password (PostgreSQL ``password`` auth, MySQL full auth)."""
        ...


@dataclass(frozen=True, slots=True)
class ScramSha256Verifier:
    method: ClassVar[str] = SCRAM_SHA_256
    _RE: ClassVar[re.Pattern[str]] = re.compile(r"SCRAM-SHA-256\$(\d{1,9}):([^$:]+)\$([^$:]+):([^$:]+)")

    iterations: int
    salt: bytes = field(repr=False)
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    # A mock verifier (unknown user) has random keys and can never succeed; see scram_mock_verifier.
    mock: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def from_password(cls, password: Password, *, salt: bytes | None = None,
                      iterations: int = SCRAM_DEFAULT_ITERATIONS) -> ScramSha256Verifier:
        _check_iterations(iterations)
        salt = secrets.token_bytes(SCRAM_SALT_LEN) if salt is None else salt
        salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        return cls(iterations, salt, hashlib.sha256(client_key).digest(),
                   hmac.digest(salted, b"Server Key", "sha256"))

    @classmethod
    def parse(cls, text: str) -> ScramSha256Verifier:
        m = cls._RE.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError("not a scram-sha-256 verifier "
                             "(expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)")
        iterations = int(m.group(1))
        _check_iterations(iterations)
        salt, stored_key, server_key = (_unb64(m.group(i)) for i in (2, 3, 4))
        if not salt:
            raise ValueError("scram-sha-256 verifier has an empty salt")
        if len(stored_key) != 32 or len(server_key) != 32:
            raise ValueError("scram-sha-256 verifier keys must be 32 bytes each")
        return cls(iterations, salt, stored_key, server_key)

    def to_text(self) -> str:
        return (f"SCRAM-SHA-256${self.iterations}:{_b64(self.salt)}"
                f"${_b64(self.stored_key)}:{_b64(self.server_key)}")

    def verify_password(self, password: Password, *, user: str = "") -> bool:
        other = ScramSha256Verifier.from_password(password, salt=self.salt, iterations=self.iterations)
        ok = hmac.compare_digest(other.stored_key, self.stored_key)
        ok &= hmac.compare_digest(other.server_key, self.server_key)
        return ok and not self.mock


@dataclass(frozen=True, slots=True)
class Md5Verifier:
    method: ClassVar[str] = MD5
    _RE: ClassVar[re.Pattern[str]] = re.compile(r"md5[0-9a-f]{32}")  # PostgreSQL: lower-case hex only

    digest_hex: str = field(repr=False)  # the 32 hex digits after "md5"

    @classmethod
    def from_password(cls, password: Password, *, user: str) -> Md5Verifier:
        return cls(hashlib.md5(_password_bytes(password) + user.encode("utf-8")).hexdigest())

    @classmethod
    def parse(cls, text: str) -> Md5Verifier:
        if not isinstance(text, str) or cls._RE.fullmatch(text) is None:
            raise ValueError("not an md5 verifier (expected 'md5' followed by 32 lower-case hex digits)")
        return cls(text[3:])

    def to_text(self) -> str:
        return "md5" + self.digest_hex

    def expected_response(self, salt: bytes) -> bytes:
        """What a client sends in its PasswordMessage for this 4-byte ``salt`` (without the trailing NUL)."""
        return b"md5" + hashlib.md5(self.digest_hex.encode("ascii") + salt).hexdigest().encode("ascii")

    def verify_response(self, response: bytes | str, salt: bytes) -> bool:
        """Check the client's ``md5`` + hex(MD5(hex(MD5(password + user)) + salt)); a trailing NUL is ignored."""
        if isinstance(response, str):
            response = response.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(response.rstrip(b"\0"), self.expected_response(salt))

    def verify_password(self, password: Password, *, user: str) -> bool:
        return hmac.compare_digest(Md5Verifier.from_password(password, user=user).digest_hex, self.digest_hex)


@dataclass(frozen=True, slots=True)
class MysqlNativeVerifier:
    method: ClassVar[str] = MYSQL_NATIVE
    _RE: ClassVar[re.Pattern[str]] = re.compile(r"\*[0-9A-Fa-f]{40}")

    stage2: bytes = field(repr=False)  # SHA1(SHA1(password))

    @classmethod
    def from_password(cls, password: Password) -> MysqlNativeVerifier:
        return cls(hashlib.sha1(hashlib.sha1(_password_bytes(password)).digest()).digest())

    @classmethod
    def parse(cls, text: str) -> MysqlNativeVerifier:
        if not isinstance(text, str) or cls._RE.fullmatch(text) is None:
            raise ValueError("not a mysql_native_password verifier (expected '*' followed by 40 hex digits)")
        return cls(bytes.fromhex(text[1:]))

    def to_text(self) -> str:
        return "*" + self.stage2.hex().upper()

    def verify_scramble(self, response: bytes, nonce: bytes) -> bool:
        """Check SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))) against the 20-byte ``nonce`` sent in the handshake."""
        if len(response) != 20 or len(nonce) != MYSQL_NONCE_LEN:
            return False  # an empty response is an empty password, which we never store
        stage1 = _xor(response, hashlib.sha1(nonce + self.stage2).digest())
        return hmac.compare_digest(hashlib.sha1(stage1).digest(), self.stage2)

    def verify_password(self, password: Password, *, user: str = "") -> bool:
        return hmac.compare_digest(MysqlNativeVerifier.from_password(password).stage2, self.stage2)


@dataclass(frozen=True, slots=True)
class CachingSha2Verifier:
    method: ClassVar[str] = CACHING_SHA2
    _RE: ClassVar[re.Pattern[str]] = re.compile(
        r"\$SG\$sha2\$(\d{1,9})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)\$([0-9a-fA-F]{64})?")

    iterations: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)  # PBKDF2-HMAC-SHA256(password, salt, iterations)
    fast_digest: bytes | None = field(default=None, repr=False)  # SHA256(SHA256(password)), or None

    @classmethod
    def from_password(cls, password: Password, *, salt: bytes | None = None,
                      iterations: int = SHA2_DEFAULT_ITERATIONS, fast_auth: bool = True) -> CachingSha2Verifier:
        _check_iterations(iterations)
        raw = _password_bytes(password)
        salt = secrets.token_bytes(SHA2_SALT_LEN) if salt is None else salt
        digest = hashlib.pbkdf2_hmac("sha256", raw, salt, iterations)
        fast = hashlib.sha256(hashlib.sha256(raw).digest()).digest() if fast_auth else None
        return cls(iterations, salt, digest, fast)

    @classmethod
    def parse(cls, text: str) -> CachingSha2Verifier:
        m = cls._RE.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            raise ValueError("not a caching_sha2_password verifier "
                             "(expected $SG$sha2$<iterations>$<salt b64>$<hash b64>$<fast digest hex or empty>)")
        iterations = int(m.group(1))
        _check_iterations(iterations)
        salt, digest = _unb64(m.group(2)), _unb64(m.group(3))
        if len(salt) < 8:
            raise ValueError("caching_sha2_password verifier salt must be at least 8 bytes")
        if len(digest) != 32:
            raise ValueError("caching_sha2_password verifier hash must be 32 bytes")
        fast = bytes.fromhex(m.group(4)) if m.group(4) else None
        return cls(iterations, salt, digest, fast)

    def to_text(self) -> str:
        fast = self.fast_digest.hex() if self.fast_digest is not None else ""
        return f"$SG$sha2${self.iterations}${_b64(self.salt)}${_b64(self.digest)}${fast}"

    @property
    def can_fast_auth(self) -> bool:
        """False: answer the scramble with ``perform_full_authentication`` (or use an in-memory cached digest)."""
        return self.fast_digest is not None

    def verify_scramble(self, response: bytes, nonce: bytes, *, fast_digest: bytes | None = None) -> bool:
        """Fast auth: ``response`` = SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce).

        ``fast_digest`` overrides the stored one (a frontend's in-memory cache filled by a full authentication).
        False when neither is known: the caller then asks for full authentication.
        """
        known = self.fast_digest if fast_digest is None else fast_digest
        if known is None or len(response) != 32 or len(nonce) != MYSQL_NONCE_LEN:
            return False
        stage1 = _xor(response, hashlib.sha256(known + nonce).digest())
        return hmac.compare_digest(hashlib.sha256(stage1).digest(), known)

    def verify_password(self, password: Password, *, user: str = "") -> bool:
        """Full auth: the clear-text password (trailing NUL stripped by the caller). CPU-heavy: run in a thread."""
        raw = _password_bytes(password)
        if b"\0" in raw:
            # HMAC zero-pads its key, so PBKDF2 would take "pw" and "pw\0" for the same password.
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", raw, self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.digest)

    @staticmethod
    def fast_digest_of(password: Password) -> bytes:
        """SHA256(SHA256(password)): what a frontend caches after a successful full authentication."""
        return hashlib.sha256(hashlib.sha256(_password_bytes(password)).digest()).digest()


_VERIFIER_TYPES: dict[str, type[ScramSha256Verifier | Md5Verifier | MysqlNativeVerifier | CachingSha2Verifier]] = {
    SCRAM_SHA_256: ScramSha256Verifier,
    MD5: Md5Verifier,
    MYSQL_NATIVE: MysqlNativeVerifier,
    CACHING_SHA2: CachingSha2Verifier,
}


def parse_verifier(method: str, text: str) -> Verifier:
    """The verifier for ``method`` stored as ``text``; ``ValueError`` with a one-line reason otherwise."""
    try:
        cls = _VERIFIER_TYPES[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}") from None
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {type(text).__name__}")
    return cls.parse(text)


def make_user_entry(user: str, password: str, roles: Iterable[str] = (), *,
                    methods: Iterable[str] = METHODS, scram_iterations: int = SCRAM_DEFAULT_ITERATIONS,
                    sha2_iterations: int = SHA2_DEFAULT_ITERATIONS, fast_auth: bool = True) -> dict[str, object]:
    """A ``users:`` entry for the cluster config with a verifier per method (``shardgate passwd USER``).

    Fresh random salts each call; the result holds only verifiers, never the password.
    """
    problems = []
    if not isinstance(user, str) or not user or "\0" in user:
        problems.append("user name must be a non-empty string without NUL characters")
    if not isinstance(password, str) or not password:
        problems.append("password must be a non-empty string")
    elif "\0" in password:
        problems.append("password must not contain NUL characters (neither protocol can send them)")
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in _VERIFIER_TYPES]
    if unknown:
        problems.append(f"unknown methods {unknown}; expected some of {', '.join(METHODS)}")
    if not methods:
        problems.append("no methods given")
    if problems:
        raise ConfigError("cannot make a user entry: " + "; ".join(problems), problems=problems)
    made: dict[str, Verifier] = {
        SCRAM_SHA_256: ScramSha256Verifier.from_password(password, iterations=scram_iterations),
    } if SCRAM_SHA_256 in methods else {}
    if MD5 in methods:
        made[MD5] = Md5Verifier.from_password(password, user=user)
    if MYSQL_NATIVE in methods:
        made[MYSQL_NATIVE] = MysqlNativeVerifier.from_password(password)
    if CACHING_SHA2 in methods:
        made[CACHING_SHA2] = CachingSha2Verifier.from_password(password, iterations=sha2_iterations,
                                                               fast_auth=fast_auth)
    return {
        "name": user,
        "roles": list(dict.fromkeys(roles)),
        "verifiers": {m: made[m].to_text() for m in METHODS if m in made},
    }


# --- PostgreSQL md5 and MySQL nonces --------------------------------------------------------------------------
def md5_salt() -> bytes:
    """The 4 random bytes of an AuthenticationMD5Password message."""
    return secrets.token_bytes(4)


def mysql_nonce() -> bytes:
    """20 random bytes as MySQL's ``generate_user_salt`` makes them: 7-bit, never NUL or ``$``.

    Clients treat the scramble as a NUL-terminated string, so it must contain no zero byte.
    """
    out = bytearray(secrets.token_bytes(MYSQL_NONCE_LEN))
    for i, b in enumerate(out):
        b &= 0x7F
        out[i] = b + 1 if b in (0, 0x24) else b
    return bytes(out)


def unscramble_rsa_password(plaintext: bytes, nonce: bytes) -> bytes:
    """caching_sha2 full auth over RSA: the client encrypts (password + NUL) XOR nonce (repeated); the frontend
    decrypts with RSA-OAEP and this undoes the XOR and strips the NUL, giving the password bytes."""
    if not nonce:
        raise ValueError("empty nonce")
    clear = bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(plaintext))
    return clear[:-1] if clear.endswith(b"\0") else clear


# --- SCRAM-SHA-256 server exchange (RFC 5802 section 3, PostgreSQL's rules) ---------------------------------
@dataclass(frozen=True, slots=True)
class ScramServerState:
    """What ``scram_server_final`` needs from the first half of the exchange."""

    verifier: ScramSha256Verifier = field(repr=False)
    gs2_header: bytes
    client_first_bare: bytes = field(repr=False)
    server_first: bytes = field(repr=False)
    nonce: bytes = field(repr=False)  # client nonce + server nonce
    channel_binding: bytes | None = field(repr=False)  # data the client must prove, when it chose 'p='


def _fail(reason: str) -> AuthenticationError:
    # Malformed exchanges and wrong passwords look alike to the client; ``detail`` is for the server log.
    return AuthenticationError("password authentication failed", detail=reason)


_PRINTABLE_NONCE = re.compile(rb"[\x21-\x2b\x2d-\x7e]+")  # RFC 5802 'printable': %x21-2B / %x2D-7E


def _attr(part: bytes, name: bytes) -> bytes:
    if not part.startswith(name + b"="):
        raise _fail(f"malformed SCRAM message: expected attribute {name.decode()!r}")
    return part[len(name) + 1:]


def scram_server_first(verifier: ScramSha256Verifier, client_first: bytes, *, server_nonce: bytes | None = None,
                       channel_binding: tuple[str, bytes] | None = None) -> tuple[bytes, ScramServerState]:
    """Read the client-first-message; return the server-first-message and the state for the final step.

    ``channel_binding`` is ``("tls-server-end-point", hash of our certificate)`` when the server offered
    SCRAM-SHA-256-PLUS (TLS connections), else ``None``. ``server_nonce`` is for tests; normally random.
    Raises ``AuthenticationError`` on a malformed message or a refused channel-binding choice.
    """
    parts = client_first.split(b",", 2)
    if len(parts) != 3:
        raise _fail("malformed SCRAM message: client-first-message is too short")
    cbind, authzid, bare = parts
    cb_data: bytes | None = None
    if cbind == b"n":
        pass
    elif cbind == b"y":
        # The client could bind but thinks we cannot. If we offered -PLUS, someone stripped it: a downgrade.
        if channel_binding is not None:
            raise _fail("SCRAM channel binding negotiation error (client chose 'y' although -PLUS was offered)")
    elif cbind.startswith(b"p="):
        if channel_binding is None:
            raise _fail("client requires SCRAM channel binding, but it is not available on this connection")
        if cbind[2:].decode("ascii", "replace") != channel_binding[0]:
            raise _fail(f"unsupported SCRAM channel-binding type {cbind[2:].decode('ascii', 'replace')!r}")
        cb_data = channel_binding[1]
    else:
        raise _fail("malformed SCRAM message: unexpected channel-binding flag")
    if authzid:
        raise _fail("client uses authorization identity, but it is not supported")
    bare_parts = bare.split(b",")
    if len(bare_parts) < 2:
        raise _fail("malformed SCRAM message: client-first-message-bare is too short")
    if bare_parts[0].startswith(b"m="):
        raise _fail("client requires an unsupported SCRAM extension")
    _attr(bare_parts[0], b"n")  # ignored, as PostgreSQL does: the startup message names the user
    client_nonce = _attr(bare_parts[1], b"r")
    if not _PRINTABLE_NONCE.fullmatch(client_nonce):
        raise _fail("malformed SCRAM message: client nonce is empty or not printable")
    if server_nonce is None:
        server_nonce = base64.b64encode(secrets.token_bytes(SCRAM_NONCE_LEN))
    nonce = client_nonce + server_nonce
    server_first = (b"r=" + nonce + b",s=" + base64.b64encode(verifier.salt)
                    + b",i=" + str(verifier.iterations).encode("ascii"))
    state = ScramServerState(verifier, cbind + b"," + authzid + b",", bare, server_first, nonce, cb_data)
    return server_first, state


def scram_server_final(state: ScramServerState, client_final: bytes) -> bytes:
    """Read the client-final-message, verify the proof, and return the server-final-message (``v=...``).

    Raises ``AuthenticationError`` on a wrong proof, a mismatched nonce or channel binding, or a malformed message.
    """
    parts = client_final.split(b",")
    if len(parts) < 3:
        raise _fail("malformed SCRAM message: client-final-message is too short")
    try:
        cb = base64.b64decode(_attr(parts[0], b"c"), validate=True)
        proof = base64.b64decode(_attr(parts[-1], b"p"), validate=True)
    except binascii.Error:
        raise _fail("malformed SCRAM message: invalid base64") from None
    expected_cb = state.gs2_header + (state.channel_binding or b"")
    if not hmac.compare_digest(cb, expected_cb):
        raise _fail("SCRAM channel binding check failed")
    if not hmac.compare_digest(_attr(parts[1], b"r"), state.nonce):
        raise _fail("SCRAM nonce does not match")
    if len(proof) != 32:
        raise _fail("malformed SCRAM message: client proof has the wrong length")
    without_proof = client_final[: client_final.rindex(b",p=")]
    auth_message = state.client_first_bare + b"," + state.server_first + b"," + without_proof
    verifier = state.verifier
    client_signature = hmac.digest(verifier.stored_key, auth_message, "sha256")
    client_key = _xor(proof, client_signature)
    if not hmac.compare_digest(hashlib.sha256(client_key).digest(), verifier.stored_key) or verifier.mock:
        raise _fail("SCRAM proof does not match")
    return b"v=" + base64.b64encode(hmac.digest(verifier.server_key, auth_message, "sha256"))


def scram_mock_verifier(user: str, server_secret: bytes) -> ScramSha256Verifier:
    """A verifier for a user that does not exist, so the exchange looks the same as for one that does.

    The salt is derived from ``server_secret`` (random per process or cluster) and the user name, so repeated
    attempts see the same salt, as PostgreSQL's ``scram_mock_salt`` does; the exchange can never succeed.
    """
    salt = hmac.digest(server_secret, b"shardgate scram mock salt\0" + user.encode("utf-8"), "sha256")
    return ScramSha256Verifier(SCRAM_DEFAULT_ITERATIONS, salt[:SCRAM_SALT_LEN], secrets.token_bytes(32),
                               secrets.token_bytes(32), mock=True)


def preferred_method(verifiers: Mapping[str, object], protocol: str) -> str | None:
    """The strongest method for ``protocol`` ("postgres" | "mysql") among ``verifiers``' keys."""
    order = POSTGRES_METHODS if protocol == "postgres" else MYSQL_METHODS
    return next((m for m in order if m in verifiers), None)
