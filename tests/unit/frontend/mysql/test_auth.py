"""Authentication steps: mysql_native_password, caching_sha2_password fast and full (TLS, RSA key retrieval),
plugin switches, caching of the fast digest, and refusals that all look alike to the client."""
from __future__ import annotations

from typing import Any

import pytest

from router.frontend.mysql import auth as A
from router.frontend.mysql.packets import AuthSwitchRequest
from sharding.auth import CACHING_SHA2, MYSQL_NATIVE
from tests.support.mysql_wire import make_user, native_scramble, sha2_scramble

NONCE = bytes(range(1, 21))
USERS = {u.name: u for u in (make_user("native", "pw1", [MYSQL_NATIVE]),
                             make_user("fast", "pw2", [CACHING_SHA2]),
                             make_user("slow", "pw3", [CACHING_SHA2], fast_auth=False))}


@pytest.fixture(scope="module")
def rsa() -> A.RsaKeyPair:
    return A.RsaKeyPair.generate(1024)  # small: speed; the code does not care


def authenticator(secure: bool = False, rsa: A.RsaKeyPair | None = None,
                  cache: dict[Any, bytes] | None = None) -> A.MysqlAuthenticator:
    return A.MysqlAuthenticator(USERS.get, NONCE, secure=secure, rsa=rsa, fast_cache=cache, host="10.0.0.1")


def finish(a: A.MysqlAuthenticator, step: A.Step) -> A.Step:
    while isinstance(step, A.Verify):
        step = a.verified(step.run())
    return step


def test_native() -> None:
    a = authenticator()
    step = a.begin("native", MYSQL_NATIVE, native_scramble("pw1", NONCE), plugin_auth=True)
    assert isinstance(step, A.Done) and step.user.name == "native" and step.before_ok == ()
    bad = authenticator().begin("native", MYSQL_NATIVE, native_scramble("nope", NONCE), plugin_auth=True)
    assert isinstance(bad, A.Fail) and bad.message == "Access denied for user 'native'@'10.0.0.1' (using password: YES)"


def test_empty_password_is_refused() -> None:
    step = authenticator().begin("native", MYSQL_NATIVE, b"", plugin_auth=True)
    assert isinstance(step, A.Fail) and "using password: NO" in step.message


def test_unknown_user_looks_like_a_wrong_password() -> None:
    step = authenticator().begin("ghost", MYSQL_NATIVE, native_scramble("x", NONCE), plugin_auth=True)
    assert isinstance(step, A.Fail) and step.message.startswith("Access denied for user 'ghost'")
    assert step.detail == "unknown user"


def test_switch_to_the_users_plugin() -> None:
    a = authenticator()
    step = a.begin("fast", MYSQL_NATIVE, native_scramble("pw2", NONCE), plugin_auth=True)
    assert isinstance(step, A.Send) and AuthSwitchRequest.decode(step.payload) == AuthSwitchRequest(CACHING_SHA2,
                                                                                                    NONCE)
    done = a.next(sha2_scramble("pw2", NONCE))
    assert isinstance(done, A.Done) and done.before_ok == (b"\x01\x03",)
    no_plugin_auth = authenticator().begin("fast", None, b"x" * 20, plugin_auth=False)
    assert isinstance(no_plugin_auth, A.Fail)


def test_sha2_fast_auth_wrong_password() -> None:
    step = authenticator().begin("fast", CACHING_SHA2, sha2_scramble("bad", NONCE), plugin_auth=True)
    assert isinstance(step, A.Fail)


def test_sha2_full_auth_over_tls_then_fast_from_cache() -> None:
    cache: dict[Any, bytes] = {}
    a = authenticator(secure=True, cache=cache)
    step = a.begin("slow", CACHING_SHA2, sha2_scramble("pw3", NONCE), plugin_auth=True)
    assert isinstance(step, A.Send) and step.payload == b"\x01\x04"
    verify = a.next(b"pw3\0")
    assert isinstance(verify, A.Verify)
    assert isinstance(finish(a, verify), A.Done)
    assert len(cache) == 1
    # the next login of that user is a fast one
    again = authenticator(cache=cache).begin("slow", CACHING_SHA2, sha2_scramble("pw3", NONCE), plugin_auth=True)
    assert isinstance(again, A.Done) and again.before_ok == (b"\x01\x03",)


def test_sha2_full_auth_wrong_password_over_tls() -> None:
    a = authenticator(secure=True)
    a.begin("slow", CACHING_SHA2, sha2_scramble("x", NONCE), plugin_auth=True)
    assert isinstance(finish(a, a.next(b"nope\0")), A.Fail)


def _rsa_encrypt(public_pem: bytes, password: str) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_public_key(public_pem)
    clear = password.encode() + b"\0"
    xored = bytes(b ^ NONCE[i % len(NONCE)] for i, b in enumerate(clear))
    return key.encrypt(xored, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))


def test_sha2_full_auth_with_rsa_key_retrieval(rsa: A.RsaKeyPair) -> None:
    a = authenticator(rsa=rsa)
    assert isinstance(a.begin("slow", CACHING_SHA2, sha2_scramble("pw3", NONCE), plugin_auth=True), A.Send)
    key = a.next(b"\x02")
    assert isinstance(key, A.Send) and key.payload.startswith(b"\x01-----BEGIN PUBLIC KEY-----")
    step = a.next(_rsa_encrypt(key.payload[1:], "pw3"))
    assert isinstance(finish(a, step), A.Done)


def test_sha2_full_auth_client_already_has_the_key(rsa: A.RsaKeyPair) -> None:
    a = authenticator(rsa=rsa)
    a.begin("slow", CACHING_SHA2, sha2_scramble("pw3", NONCE), plugin_auth=True)
    assert isinstance(finish(a, a.next(_rsa_encrypt(rsa.public_pem, "pw3"))), A.Done)


def test_sha2_full_auth_refuses_clear_text_without_tls(rsa: A.RsaKeyPair) -> None:
    a = authenticator(rsa=rsa)
    a.begin("slow", CACHING_SHA2, sha2_scramble("pw3", NONCE), plugin_auth=True)
    assert isinstance(a.next(b"pw3\0"), A.Fail)
    b = authenticator(rsa=None)
    b.begin("slow", CACHING_SHA2, sha2_scramble("pw3", NONCE), plugin_auth=True)
    assert isinstance(b.next(b"\x02"), A.Fail)


def test_garbage_rsa_ciphertext(rsa: A.RsaKeyPair) -> None:
    a = authenticator(rsa=rsa)
    a.begin("slow", CACHING_SHA2, sha2_scramble("pw3", NONCE), plugin_auth=True)
    a.next(b"\x02")
    assert isinstance(a.next(b"\x00" * rsa.size), A.Fail)


def test_steps_out_of_turn() -> None:
    a = authenticator()
    assert isinstance(a.verified(True), A.Fail)
    assert isinstance(authenticator().next(b"x"), A.Fail)


def test_key_file_made_once(tmp_path: Any) -> None:
    path = tmp_path / "rsa.pem"
    first = A.RsaKeyPair.load_or_generate(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert A.RsaKeyPair.load_or_generate(path).public_pem == first.public_pem
