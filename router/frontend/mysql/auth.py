"""Authentication of MySQL clients, sans I/O: which plugin to ask for, what to send next, when to check a password.

``MysqlAuthenticator`` takes the client's packets and answers with a step: ``Send`` (a packet for the client, then
wait for its answer), ``Verify`` (a clear-text password to check: CPU-heavy for caching_sha2_password, so the
caller runs it in a thread and passes the outcome to ``verified``), ``Done`` or ``Fail``. The verifiers and the
comparisons are ``sharding.auth``'s; this module only moves the protocol along.

Plugins:

- ``mysql_native_password``: the client answers the 20-byte nonce with SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))).
- ``caching_sha2_password``: fast auth with SHA256 scrambles when the user's fast digest is known (stored in the
  config, or cached here after a full authentication, as MySQL caches it): ``0x01 0x03`` then OK. Otherwise
  ``0x01 0x04`` (perform full authentication): over TLS the client sends its password in clear; without TLS it asks
  for our RSA public key (``0x02``) and sends the password XOR the nonce, encrypted with RSA-OAEP (SHA-1, as MySQL).
  Clients that refuse to fetch the key without TLS (MariaDB Connector/J, mysql2) cannot log in that way: give such
  users ``mysql_native_password`` or TLS.
- A client proposing another plugin than the user's gets an AuthSwitchRequest with the same nonce.

Failures look alike to the client (ERR 1045 "Access denied"), whatever the reason; the reason goes to ``detail``.
"""
from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.frontend.mysql.packets import AuthMoreData, AuthSwitchRequest
from sharding.auth import CACHING_SHA2, MYSQL_NATIVE, CachingSha2Verifier, MysqlNativeVerifier, unscramble_rsa_password
from sharding.config_model import UserConfig

__all__ = ["Done", "Fail", "MysqlAuthenticator", "RsaKeyPair", "Send", "Verify", "default_rsa_keys"]

REQUEST_PUBLIC_KEY = b"\x02"
FAST_AUTH_SUCCESS = b"\x03"
PERFORM_FULL_AUTH = b"\x04"


class RsaKeyPair:
    """The RSA key pair of caching_sha2_password full authentication without TLS."""

    def __init__(self, private_key: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = private_key
        self.public_pem: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.size = private_key.key_size // 8

    @classmethod
    def generate(cls, bits: int = 2048) -> RsaKeyPair:
        from cryptography.hazmat.primitives.asymmetric import rsa

        return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RsaKeyPair:
        from cryptography.hazmat.primitives import serialization

        return cls(serialization.load_pem_private_key(Path(path).read_bytes(), password=None))

    @classmethod
    def load_or_generate(cls, path: str | os.PathLike[str]) -> RsaKeyPair:
        """The key at ``path``; made and written there (mode 0600) when the file does not exist."""
        from cryptography.hazmat.primitives import serialization

        p = Path(path)
        if p.exists():
            return cls.load(p)
        pair = cls.generate()
        pem = pair._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return pair

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        """RSA-OAEP (SHA-1) plaintext, or None when the ciphertext is not ours."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            return bytes(self._key.decrypt(ciphertext, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                                                    algorithm=hashes.SHA1(), label=None)))
        except Exception:  # ValueError for a bad ciphertext; anything else is the same for the client
            return None


_default_keys: RsaKeyPair | None = None
_default_lock = threading.Lock()


def default_rsa_keys() -> RsaKeyPair | None:
    """A key pair made once per process (when no key file is configured); None without ``cryptography``."""
    global _default_keys
    with _default_lock:
        if _default_keys is None:
            try:
                _default_keys = RsaKeyPair.generate()
            except ImportError:
                return None
        return _default_keys


# --- steps ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    payload: bytes  # one packet for the client; its answer goes to ``MysqlAuthenticator.next``


@dataclass(frozen=True, slots=True)
class Verify:
    verifier: Any = field(repr=False)
    password: bytes = field(repr=False)

    def run(self) -> bool:
        """Check the password (call it in a thread for caching_sha2_password: PBKDF2)."""
        if not self.password or b"\0" in self.password:
            return False
        return bool(self.verifier.verify_password(self.password))


@dataclass(frozen=True, slots=True)
class Done:
    user: UserConfig
    method: str
    before_ok: tuple[bytes, ...] = ()  # packets to send before the OK (caching_sha2's fast_auth_success)


@dataclass(frozen=True, slots=True)
class Fail:
    message: str
    detail: str = ""


Step = Send | Verify | Done | Fail


class MysqlAuthenticator:
    """One login (see the module docstring). ``secure`` is True when the connection runs over TLS."""

    def __init__(self, lookup: Callable[[str], UserConfig | None], nonce: bytes, *, secure: bool,
                 rsa: RsaKeyPair | None, fast_cache: dict[tuple[str, str], bytes] | None = None,
                 host: str = "") -> None:
        self._lookup = lookup
        self.nonce = nonce
        self.secure = secure
        self._rsa = rsa
        self._cache = fast_cache if fast_cache is not None else {}
        self._host = host
        self._user: UserConfig | None = None
        self._user_name = ""
        self._method = ""
        self._verifier: Any = None
        self._state = "start"
        self._password: bytes = b""

    def _deny(self, detail: str, using_password: bool = True) -> Fail:
        self._state = "done"
        return Fail(f"Access denied for user '{self._user_name}'@'{self._host}' "
                    f"(using password: {'YES' if using_password else 'NO'})", detail)

    def begin(self, user: str, client_plugin: str | None, response: bytes, *, plugin_auth: bool) -> Step:
        """The HandshakeResponse41: who, with which plugin, and the answer to our nonce."""
        self._user_name = user
        entry = self._lookup(user)
        if entry is None:
            return self._deny("unknown user", bool(response))
        chosen = entry.verifier_for("mysql")
        if chosen is None:
            return self._deny("the user has no MySQL login method", bool(response))
        self._user = entry
        self._method, self._verifier = chosen
        if client_plugin != self._method and not (client_plugin is None and self._method == MYSQL_NATIVE):
            if not plugin_auth:
                return self._deny(f"the client cannot switch to {self._method}")
            self._state = "switched"
            return Send(AuthSwitchRequest(self._method, self.nonce).encode())
        return self._check_scramble(response)

    def next(self, data: bytes) -> Step:
        """The client's next packet (after a ``Send``)."""
        state = self._state
        if state == "switched":
            return self._check_scramble(data)
        if state == "full":
            return self._full(data)
        if state == "rsa":
            return self._rsa_password(data)
        return self._deny(f"unexpected auth packet in state {state}")

    def verified(self, ok: bool) -> Step:
        """The outcome of a ``Verify`` step."""
        if self._state != "verifying":
            return self._deny("password check out of turn")
        password, self._password = self._password, b""
        if not ok:
            return self._deny("wrong password (full authentication)")
        if self._method == CACHING_SHA2:
            self._cache[self._cache_key()] = CachingSha2Verifier.fast_digest_of(password)
        self._state = "done"
        assert self._user is not None
        return Done(self._user, self._method)

    # --- internals ---------------------------------------------------------------------------------------------
    def _cache_key(self) -> tuple[str, str]:
        return (self._user_name, self._verifier.to_text())

    def _check_scramble(self, response: bytes) -> Step:
        assert self._user is not None
        if not response or response == b"\0":
            return self._deny("empty password", using_password=False)
        if self._method == MYSQL_NATIVE:
            verifier: MysqlNativeVerifier = self._verifier
            if verifier.verify_scramble(response, self.nonce):
                self._state = "done"
                return Done(self._user, self._method)
            return self._deny("wrong password (mysql_native_password)")
        if self._method == CACHING_SHA2:
            sha2: CachingSha2Verifier = self._verifier
            known = sha2.fast_digest or self._cache.get(self._cache_key())
            if known is not None and len(response) == 32:
                if sha2.verify_scramble(response, self.nonce, fast_digest=known):
                    self._state = "done"
                    return Done(self._user, self._method, (AuthMoreData(FAST_AUTH_SUCCESS).encode(),))
                if sha2.fast_digest is not None:
                    return self._deny("wrong password (caching_sha2_password fast auth)")
                self._cache.pop(self._cache_key(), None)  # a stale cache entry: fall back to full auth
            self._state = "full"
            return Send(AuthMoreData(PERFORM_FULL_AUTH).encode())
        return self._deny(f"unsupported method {self._method}")

    def _full(self, data: bytes) -> Step:
        if self.secure:
            return self._verify(data[:-1] if data.endswith(b"\0") else data)
        if data == REQUEST_PUBLIC_KEY:
            if self._rsa is None:
                return self._deny("RSA key retrieval asked, but the router has no RSA key")
            self._state = "rsa"
            return Send(AuthMoreData(self._rsa.public_pem).encode())
        if self._rsa is not None and len(data) == self._rsa.size:
            return self._rsa_password(data)  # the client had our key already
        return self._deny("full authentication needs TLS or RSA key retrieval")

    def _rsa_password(self, data: bytes) -> Step:
        plain = self._rsa.decrypt(data) if self._rsa is not None else None
        if plain is None:
            return self._deny("RSA-encrypted password cannot be decrypted")
        return self._verify(unscramble_rsa_password(plain, self.nonce))

    def _verify(self, password: bytes) -> Step:
        self._state = "verifying"
        self._password = password
        return Verify(self._verifier, password)
