"""Stored verifiers and the server side of each login exchange, against known answers and simulated clients.

The client halves are written here from the RFCs / MySQL's documentation, independently of sharding.auth.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharding import auth
from sharding.auth import (
    CachingSha2Verifier,
    Md5Verifier,
    MysqlNativeVerifier,
    ScramSha256Verifier,
    make_user_entry,
    parse_verifier,
    saslprep,
    scram_server_final,
    scram_server_first,
)
from sharding.errors import AuthenticationError, ConfigError

FAST = {"scram_iterations": 64, "sha2_iterations": 1000}  # keep the suite quick; defaults are tested once


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# --- client simulations -----------------------------------------------------------------------------------
def scram_client_final(password: bytes, client_first_bare: bytes, server_first: bytes,
                       gs2_header: bytes = b"n,,", cb_data: bytes = b"") -> tuple[bytes, bytes]:
    """RFC 5802 client: returns (client-final-message, expected server signature)."""
    attrs = dict(part.split(b"=", 1) for part in server_first.split(b","))
    salted = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(attrs[b"s"]), int(attrs[b"i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = b"c=" + base64.b64encode(gs2_header + cb_data) + b",r=" + attrs[b"r"]
    auth_message = client_first_bare + b"," + server_first + b"," + without_proof
    proof = _xor(client_key, hmac.new(stored_key, auth_message, "sha256").digest())
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    server_sig = hmac.new(server_key, auth_message, "sha256").digest()
    return without_proof + b",p=" + base64.b64encode(proof), b"v=" + base64.b64encode(server_sig)


def mysql_native_client(password: bytes, nonce: bytes) -> bytes:
    stage1 = hashlib.sha1(password).digest()
    return _xor(stage1, hashlib.sha1(nonce + hashlib.sha1(stage1).digest()).digest())


def caching_sha2_client(password: bytes, nonce: bytes) -> bytes:
    stage1 = hashlib.sha256(password).digest()
    stage2 = hashlib.sha256(stage1).digest()
    return _xor(stage1, hashlib.sha256(stage2 + nonce).digest())


# --- SCRAM-SHA-256 ----------------------------------------------------------------------------------------
RFC7677 = {
    "client_first": b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "server_nonce": b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "server_first": b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def rfc7677_verifier() -> ScramSha256Verifier:
    return ScramSha256Verifier.from_password("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="),
                                             iterations=4096)


def test_scram_rfc7677_exchange() -> None:
    server_first, state = scram_server_first(rfc7677_verifier(), RFC7677["client_first"],
                                             server_nonce=RFC7677["server_nonce"])
    assert server_first == RFC7677["server_first"]
    assert scram_server_final(state, RFC7677["client_final"]) == RFC7677["server_final"]


def test_scram_rfc7677_client_simulation_agrees() -> None:
    final, server_sig = scram_client_final(b"pencil", b"n=user,r=rOprNGfwEbeRWgbNEkqO", RFC7677["server_first"])
    assert final == RFC7677["client_final"]
    assert server_sig == RFC7677["server_final"]


def test_scram_rfc7677_wrong_password_fails() -> None:
    wrong = ScramSha256Verifier.from_password("pencil2", salt=rfc7677_verifier().salt, iterations=4096)
    _, state = scram_server_first(wrong, RFC7677["client_first"], server_nonce=RFC7677["server_nonce"])
    with pytest.raises(AuthenticationError):
        scram_server_final(state, RFC7677["client_final"])


def test_scram_verifier_text_is_postgres_format_and_round_trips() -> None:
    v = rfc7677_verifier()
    text = v.to_text()
    # Keys computed independently from RFC 5802's definitions.
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", v.salt, 4096)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    assert text == (f"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="
                    f"${base64.b64encode(stored).decode()}:{base64.b64encode(server).decode()}")
    assert ScramSha256Verifier.parse(text) == v
    assert parse_verifier("scram-sha-256", text) == v
    assert v.verify_password("pencil") and not v.verify_password("pencil ")


def test_scram_fresh_verifier_defaults_and_random_salt() -> None:
    a, b = ScramSha256Verifier.from_password("pw"), ScramSha256Verifier.from_password("pw")
    assert a.iterations == 4096 and len(a.salt) == 16
    assert a.salt != b.salt and a.stored_key != b.stored_key


@pytest.mark.parametrize("password", ["secret", "pässwörd", "I\u00adX", "\u2168"])
def test_scram_full_exchange_with_simulated_client(password: str) -> None:
    v = ScramSha256Verifier.from_password(password, iterations=64)
    bare = b"n=,r=fyko+d2lbbFgONRv9qkxdawL"
    server_first, state = scram_server_first(v, b"n,," + bare)
    final, server_sig = scram_client_final(saslprep(password), bare, server_first)
    assert scram_server_final(state, final) == server_sig
    # A client that types a different password fails.
    bad, _ = scram_client_final(b"other", bare, server_first)
    with pytest.raises(AuthenticationError):
        scram_server_final(state, bad)


def test_scram_channel_binding_plus() -> None:
    v = ScramSha256Verifier.from_password("pw", iterations=64)
    cb = ("tls-server-end-point", hashlib.sha256(b"certificate").digest())
    gs2 = b"p=tls-server-end-point,,"
    bare = b"n=,r=abcdef"
    server_first, state = scram_server_first(v, gs2 + bare, channel_binding=cb)
    final, sig = scram_client_final(b"pw", bare, server_first, gs2_header=gs2, cb_data=cb[1])
    assert scram_server_final(state, final) == sig
    # Binding data of another certificate (a man in the middle) is refused.
    final, _ = scram_client_final(b"pw", bare, server_first, gs2_header=gs2, cb_data=b"x" * 32)
    with pytest.raises(AuthenticationError, match="password authentication failed"):
        scram_server_final(state, final)


@pytest.mark.parametrize(("client_first", "cb", "reason"), [
    (b"y,,n=,r=abc", ("tls-server-end-point", b"h"), "downgrade"),
    (b"p=tls-server-end-point,,n=,r=abc", None, "not available"),
    (b"p=tls-unique,,n=,r=abc", ("tls-server-end-point", b"h"), "unsupported"),
    (b"n,a=admin,n=,r=abc", None, "authorization identity"),
    (b"n,,m=ext,n=,r=abc", None, "extension"),
    (b"n,,n=,r=", None, "nonce"),
    (b"x,,n=,r=abc", None, "flag"),
    (b"n,,", None, "too short"),
    (b"garbage", None, "too short"),
])
def test_scram_client_first_rejections(client_first: bytes, cb: tuple[str, bytes] | None, reason: str) -> None:
    v = ScramSha256Verifier.from_password("pw", iterations=64)
    with pytest.raises(AuthenticationError) as info:
        scram_server_first(v, client_first, channel_binding=cb)
    detail = info.value.detail or ""
    assert reason in detail or (reason == "downgrade" and "negotiation" in detail)
    assert str(info.value) == "password authentication failed"  # nothing useful for a prober


def test_scram_client_first_optional_extensions_and_y_flag_accepted() -> None:
    v = ScramSha256Verifier.from_password("pw", iterations=64)
    server_first, _ = scram_server_first(v, b"n,,n=,r=abc,x=ext", server_nonce=b"S")
    assert server_first.startswith(b"r=abcS,s=")
    scram_server_first(v, b"y,,n=,r=abc")  # 'y' is fine when we did not offer -PLUS


def test_scram_client_final_rejections() -> None:
    v = ScramSha256Verifier.from_password("pw", iterations=64)
    bare = b"n=,r=abc"
    server_first, state = scram_server_first(v, b"n,," + bare)
    good, _ = scram_client_final(b"pw", bare, server_first)
    nonce = server_first.split(b",")[0][2:]
    for bad in (
        good.replace(b"c=biws", b"c=eSws"),  # channel-binding header differs from client-first
        good.replace(nonce, nonce + b"x"),  # nonce changed
        b"c=biws,r=" + nonce + b",p=AAAA",  # proof too short
        b"c=biws,r=" + nonce + b",p=!!!",  # not base64
        b"c=biws,p=AAAA",
        b"",
    ):
        with pytest.raises(AuthenticationError):
            scram_server_final(state, bad)
    assert scram_server_final(state, good).startswith(b"v=")


def test_scram_mock_verifier_is_stable_and_always_fails() -> None:
    secret = b"k" * 32
    m1, m2 = auth.scram_mock_verifier("ghost", secret), auth.scram_mock_verifier("ghost", secret)
    assert m1.salt == m2.salt and len(m1.salt) == 16
    assert auth.scram_mock_verifier("other", secret).salt != m1.salt
    bare = b"n=,r=abc"
    server_first, state = scram_server_first(m1, b"n,," + bare)
    final, _ = scram_client_final(b"anything", bare, server_first)
    with pytest.raises(AuthenticationError):
        scram_server_final(state, final)
    assert not m1.verify_password("anything")


# --- SASLprep ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    ("user", b"user"),  # ASCII: unchanged
    ("I\u00adX", b"IX"),  # RFC 4013 section 3: soft hyphen mapped to nothing
    ("\u00aa", b"a"),  # NFKC
    ("\u2168", b"IX"),  # NFKC
    ("a\u00a0b", b"a b"),  # non-ASCII space mapped to SPACE
    ("\x07", b"\x07"),  # prohibited in RFC 4013, but PostgreSQL passes pure ASCII through
    ("\u00e9\x07", "\u00e9\x07".encode()),  # prohibited -> raw bytes, as PostgreSQL falls back
    ("\u0627\u0031", "\u0627\u0031".encode()),  # bidi rule broken (RandAL not at the end) -> raw bytes
    ("\u0627\u0031\u0628", "\u0627\u0031\u0628".encode()),  # bidi rule satisfied -> prepared (same text)
    ("\u00ad", "\u00ad".encode()),  # maps to nothing -> empty -> raw bytes
    ("\U000e0001x\u00e9", "\U000e0001x\u00e9".encode()),  # tagging character prohibited -> raw
])
def test_saslprep_as_postgres(given: str, expected: bytes) -> None:
    assert saslprep(given) == expected


def test_saslprep_invalid_utf8_falls_back_to_raw_bytes() -> None:
    assert saslprep(b"\xff\xfepw") == b"\xff\xfepw"


# --- PostgreSQL md5 ---------------------------------------------------------------------------------------
def test_md5_known_answer() -> None:
    # PostgreSQL stores 'md5' || md5(password || username): user "foo", password "bar".
    v = Md5Verifier.from_password("bar", user="foo")
    assert v.to_text() == "md5" + hashlib.md5(b"barfoo").hexdigest() == "md5" + "96948aad3fcae80c08a35c9b5958cd89"
    assert Md5Verifier.parse(v.to_text()) == v


def test_md5_client_response_round_trip() -> None:
    v = Md5Verifier.from_password("bar", user="foo")
    salt = auth.md5_salt()
    assert len(salt) == 4
    inner = hashlib.md5(b"barfoo").hexdigest().encode()
    response = b"md5" + hashlib.md5(inner + salt).hexdigest().encode()
    assert v.verify_response(response, salt)
    assert v.verify_response(response + b"\0", salt)  # as read from the PasswordMessage
    assert v.verify_response(response.decode(), salt)
    assert not v.verify_response(response, b"\0\0\0\1" if salt != b"\0\0\0\1" else b"\0\0\0\2")
    wrong = b"md5" + hashlib.md5(hashlib.md5(b"bazfoo").hexdigest().encode() + salt).hexdigest().encode()
    assert not v.verify_response(wrong, salt)
    assert not v.verify_response(b"", salt)


def test_md5_verify_password_is_bound_to_user() -> None:
    v = Md5Verifier.from_password("bar", user="foo")
    assert v.verify_password("bar", user="foo")
    assert not v.verify_password("bar", user="foo2")
    assert not v.verify_password("baz", user="foo")


# --- MySQL mysql_native_password --------------------------------------------------------------------------
def test_mysql_native_known_answer() -> None:
    assert MysqlNativeVerifier.from_password("password").to_text() == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    parsed = MysqlNativeVerifier.parse("*2470c0c06dee42fd1618bb99005adca2ec9d1e19")  # case-insensitive on input
    assert parsed.to_text() == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


def test_mysql_native_scramble_round_trip() -> None:
    v = MysqlNativeVerifier.from_password("password")
    nonce = auth.mysql_nonce()
    assert v.verify_scramble(mysql_native_client(b"password", nonce), nonce)
    assert not v.verify_scramble(mysql_native_client(b"Password", nonce), nonce)
    assert not v.verify_scramble(mysql_native_client(b"password", nonce), auth.mysql_nonce())
    assert not v.verify_scramble(b"", nonce)  # empty password response
    assert not v.verify_scramble(b"\0" * 19, nonce)
    assert v.verify_password("password") and not v.verify_password("passwor")


def test_mysql_nonce_shape() -> None:
    for _ in range(50):
        n = auth.mysql_nonce()
        assert len(n) == 20 and all(0 < b < 0x80 and b != 0x24 for b in n)


# --- MySQL caching_sha2_password --------------------------------------------------------------------------
def test_caching_sha2_fast_auth_round_trip() -> None:
    v = CachingSha2Verifier.from_password("password", iterations=1000)
    assert v.fast_digest == hashlib.sha256(hashlib.sha256(b"password").digest()).digest()
    nonce = auth.mysql_nonce()
    assert v.verify_scramble(caching_sha2_client(b"password", nonce), nonce)
    assert not v.verify_scramble(caching_sha2_client(b"passwore", nonce), nonce)
    assert not v.verify_scramble(caching_sha2_client(b"password", nonce), auth.mysql_nonce())
    assert not v.verify_scramble(b"", nonce)


def test_caching_sha2_full_auth_is_salted_and_iterated() -> None:
    v = CachingSha2Verifier.from_password("password", iterations=1000)
    assert v.digest == hashlib.pbkdf2_hmac("sha256", b"password", v.salt, 1000)
    assert len(v.salt) == 16
    assert v.verify_password("password") and v.verify_password(b"password")
    assert not v.verify_password("password\0") and not v.verify_password("")
    other = CachingSha2Verifier.from_password("password", iterations=1000)
    assert other.salt != v.salt and other.digest != v.digest  # same password, different stored hash


def test_caching_sha2_default_iterations() -> None:
    assert CachingSha2Verifier.from_password("pw").iterations == 600_000


def test_caching_sha2_text_format_round_trip() -> None:
    v = CachingSha2Verifier.from_password("pw", salt=b"0123456789abcdef", iterations=1000)
    text = v.to_text()
    salt_b64 = base64.b64encode(b"0123456789abcdef").decode()
    digest_b64 = base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"pw", b"0123456789abcdef", 1000)).decode()
    fast_hex = hashlib.sha256(hashlib.sha256(b"pw").digest()).hexdigest()
    assert text == f"$SG$sha2$1000${salt_b64}${digest_b64}${fast_hex}"
    assert CachingSha2Verifier.parse(text) == v


def test_caching_sha2_without_fast_digest_needs_full_auth() -> None:
    v = CachingSha2Verifier.from_password("pw", iterations=1000, fast_auth=False)
    assert v.to_text().endswith("$") and not v.can_fast_auth
    assert CachingSha2Verifier.parse(v.to_text()) == v
    nonce = auth.mysql_nonce()
    scramble = caching_sha2_client(b"pw", nonce)
    assert not v.verify_scramble(scramble, nonce)
    # After one full authentication a frontend may cache the digest in memory.
    assert v.verify_password("pw")
    assert v.verify_scramble(scramble, nonce, fast_digest=CachingSha2Verifier.fast_digest_of("pw"))


def test_rsa_password_unscramble() -> None:
    nonce = auth.mysql_nonce()
    sent = b"a long password longer than the nonce" + b"\0"
    xored = bytes(b ^ nonce[i % 20] for i, b in enumerate(sent))
    assert auth.unscramble_rsa_password(xored, nonce) == b"a long password longer than the nonce"


# --- parsing and the user entry ---------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "text", "message"), [
    ("md5", "md5abc", "not an md5 verifier"),
    ("md5", "md5" + "A" * 32, "not an md5 verifier"),  # PostgreSQL writes lower-case hex only
    ("md5", "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", "not an md5 verifier"),
    ("mysql_native_password", "2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", "not a mysql_native_password"),
    ("mysql_native_password", "*XYZ", "not a mysql_native_password"),
    ("scram-sha-256", "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA", "32 bytes"),
    ("scram-sha-256", "SCRAM-SHA-256$0:c2FsdA==$" + "A" * 43 + "=:" + "A" * 43 + "=", "iteration count"),
    ("scram-sha-256", "SCRAM-SHA-256$4096:c2Fsd!==$x:y", "base64"),
    ("scram-sha-256", "plain", "not a scram-sha-256 verifier"),
    ("caching_sha2_password", "$A$005$abc", "not a caching_sha2_password verifier"),
    ("caching_sha2_password", "$SG$sha2$1000$c2FsdA==$" + "A" * 43 + "=$", "salt must be at least 8 bytes"),
    ("bcrypt", "x", "unknown method"),
    ("md5", 12345, "expected a string"),
])
def test_parse_verifier_rejects(method: str, text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_verifier(method, text)  # type: ignore[arg-type]


def test_make_user_entry_has_every_verifier_and_no_password() -> None:
    entry = make_user_entry("app", "s3cret-Pa55", roles=["admin"], **FAST)
    assert entry["name"] == "app" and entry["roles"] == ["admin"]
    verifiers = entry["verifiers"]
    assert isinstance(verifiers, dict)
    assert list(verifiers) == ["scram-sha-256", "md5", "caching_sha2_password", "mysql_native_password"]
    assert "s3cret" not in repr(entry)
    for method, text in verifiers.items():
        v = parse_verifier(method, text)
        assert v.verify_password("s3cret-Pa55", user="app"), method
        assert not v.verify_password("s3cret-Pa56", user="app"), method
        assert "s3cret" not in repr(v) and text not in repr(v)


def test_make_user_entry_method_subset_and_no_fast_digest() -> None:
    entry = make_user_entry("app", "pw", methods=["caching_sha2_password", "scram-sha-256"], fast_auth=False,
                            **FAST)
    assert list(entry["verifiers"]) == ["scram-sha-256", "caching_sha2_password"]  # type: ignore[arg-type]
    assert entry["verifiers"]["caching_sha2_password"].endswith("$")  # type: ignore[index]


@pytest.mark.parametrize(("user", "password", "methods", "message"), [
    ("", "pw", auth.METHODS, "user name"),
    ("app", "", auth.METHODS, "non-empty"),
    ("app", "a\0b", auth.METHODS, "NUL"),
    ("app", "pw", ["md4"], "unknown methods"),
    ("app", "pw", [], "no methods"),
])
def test_make_user_entry_rejects(user: str, password: str, methods: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_user_entry(user, password, methods=methods, **FAST)


def test_preferred_method() -> None:
    assert auth.preferred_method({"md5": 1, "scram-sha-256": 1}, "postgres") == "scram-sha-256"
    assert auth.preferred_method({"mysql_native_password": 1}, "mysql") == "mysql_native_password"
    assert auth.preferred_method({"md5": 1}, "mysql") is None


@settings(max_examples=30, deadline=None)
@given(password=st.text(min_size=1, max_size=20).filter(lambda s: "\0" not in s),
       nonce=st.binary(min_size=20, max_size=20))
def test_property_mysql_round_trips(password: str, nonce: bytes) -> None:
    raw = password.encode()
    assert MysqlNativeVerifier.from_password(password).verify_scramble(mysql_native_client(raw, nonce), nonce)
    sha2 = CachingSha2Verifier.from_password(password, iterations=1)
    assert sha2.verify_scramble(caching_sha2_client(raw, nonce), nonce)
    assert sha2.verify_password(password)
