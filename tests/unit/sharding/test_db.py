"""sharding.db without servers: DSN parsing and formatting, TLS settings, and that a password never leaks."""
from __future__ import annotations

import dataclasses
import logging
import pickle
import ssl

import pytest

from sharding import db
from sharding.db import DSN, TLSMode
from sharding.errors import ConfigError

SECRET = "s3cr:et/@p%ss?#"  # every character that needs escaping in a URL's userinfo


@pytest.mark.parametrize("url", [
    "postgresql://app:pw@127.0.0.1:5432/orders",
    "postgresql://app@db.example.com:6432/orders",
    "postgresql://127.0.0.1:5432",
    "postgresql://app:pw@[::1]:5432/orders",
    "postgresql://app:pw@10.0.0.1:5432/orders?sslmode=require",
    "postgresql://app:pw@10.0.0.1:5432/orders?sslmode=verify-ca&sslrootcert=/etc/ssl/ca.pem",
    "postgresql://app:pw@10.0.0.1:5432/orders?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem",
    "mysql://root:pw@127.0.0.1:3306/shop",
    "mysql://root@127.0.0.1:3307",
    "mysql://root:pw@127.0.0.1:3306/shop?ssl-mode=REQUIRED",
    "mysql://root:pw@127.0.0.1:3306/shop?ssl-mode=VERIFY_CA&ssl-ca=/etc/ssl/ca.pem",
    "mysql://root:pw@127.0.0.1:3306/shop?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/ssl/ca.pem",
])
def test_url_round_trip(url: str) -> None:
    dsn = DSN.parse(url)
    assert dsn.url(with_password=True) == url
    assert DSN.parse(dsn.url(with_password=True)) == dsn


def test_parse_fields_and_defaults() -> None:
    dsn = DSN.parse("postgres://app:pw@db1/orders")
    assert dsn == DSN(engine="postgres", host="db1", port=5432, database="orders", user="app", password="pw")
    assert DSN.parse("mariadb://u@h").port == 3306
    assert DSN.parse("mariadb://u@h").engine == "mysql"
    assert DSN.parse("mysql://u@h:3306/").database == ""
    assert DSN.parse("mysql://u@h").address == "h:3306"
    assert DSN.parse("postgresql://u@[::1]:5433").address == "[::1]:5433"


def test_special_characters_survive_a_round_trip() -> None:
    dsn = DSN(engine="postgres", host="127.0.0.1", port=5432, database="my db", user="us@r:1", password=SECRET)
    url = dsn.url(with_password=True)
    assert SECRET not in url  # percent-encoded
    assert DSN.parse(url) == dsn


@pytest.mark.parametrize("query, mode, ca", [
    ("sslmode=disable", TLSMode.DISABLE, None),
    ("sslmode=require", TLSMode.REQUIRE, None),
    ("ssl-mode=REQUIRED", TLSMode.REQUIRE, None),
    ("ssl_mode=verify_identity", TLSMode.VERIFY_FULL, None),
    ("sslmode=verify-ca&sslrootcert=/ca.pem", TLSMode.VERIFY_CA, "/ca.pem"),
    ("ssl-ca=/ca.pem", TLSMode.VERIFY_FULL, "/ca.pem"),  # a CA alone means verify, as mysql --ssl-ca does
])
def test_tls_parameters(query: str, mode: TLSMode, ca: str | None) -> None:
    dsn = DSN.parse(f"mysql://u:p@h:3306/d?{query}")
    assert (dsn.tls_mode, dsn.tls_ca_file) == (mode, ca)
    pg = DSN.parse(f"postgresql://u:p@h:5432/d?{query}")
    assert (pg.tls_mode, pg.tls_ca_file) == (mode, ca)
    assert DSN.parse(pg.url(with_password=True)) == pg  # written back in libpq's spelling


@pytest.mark.parametrize("url, words", [
    ("http://u@h/d", "scheme"),
    ("postgresql://u@h:99999/d", "(?i)port"),
    ("postgresql://u@h:notaport/d", "malformed"),
    ("postgresql://u@/d", "host"),
    ("postgresql://u@h/d?sslmode=prefer", "sslmode"),
    ("postgresql://u@h/d?application_name=x", "application_name"),
    ("postgresql://u@h/a/b", "database"),
    ("mysql://u@h/d#frag", "fragment"),
])
def test_parse_errors_name_the_problem(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        DSN.parse(url)


def test_parse_error_never_echoes_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        DSN.parse(f"postgresql://u:{SECRET.replace('/', '%2F').replace('?', '%3F').replace('#', '%23')}@h:1x/d")
    assert SECRET not in str(info.value) and "s3cr" not in str(info.value)


def test_constructor_validates() -> None:
    with pytest.raises(ConfigError):
        DSN(engine="oracle", host="h", port=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        DSN(engine="mysql", host="h", port=0)
    with pytest.raises(ConfigError, match="TLS"):
        DSN(engine="mysql", host="h", port=3306, tls_ca_file="/ca.pem")


def test_password_never_in_repr_str_format_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    dsn = DSN(engine="mysql", host="127.0.0.1", port=3306, database="d", user="u", password=SECRET)
    texts = [repr(dsn), str(dsn), f"{dsn}", f"{dsn!r}", "%s" % (dsn,),  # noqa: UP031 (logging's way)
             dsn.url(), repr([dsn]), str({"k": dsn})]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("connecting to %s (%r)", dsn, dsn)
    texts.append(caplog.text)
    for text in texts:
        assert SECRET not in text and "s3cr" not in text, text
    assert str(dsn) == "mysql://u:***@127.0.0.1:3306/d"
    assert "password" not in repr(dsn)
    assert DSN.parse(dsn.url(with_password=True)).password == SECRET  # only when asked for


def test_dsn_is_a_frozen_hashable_value() -> None:
    dsn = DSN.parse("postgresql://u:p@h:5432/d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dsn.port = 1  # type: ignore[misc]
    assert {dsn, DSN.parse("postgresql://u:p@h:5432/d")} == {dsn}
    assert dsn.with_database("other").database == "other" and dsn.database == "d"
    assert pickle.loads(pickle.dumps(dsn)) == dsn
    assert db.BackendAddress is DSN


def test_ssl_context_per_mode(tmp_path) -> None:
    base = DSN(engine="postgres", host="h", port=5432)
    assert base.ssl_context() is None
    require = dataclasses.replace(base, tls_mode=TLSMode.REQUIRE).ssl_context()
    assert require is not None and require.verify_mode == ssl.CERT_NONE and not require.check_hostname
    verify_ca = dataclasses.replace(base, tls_mode=TLSMode.VERIFY_CA).ssl_context()
    assert verify_ca is not None and verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    full = dataclasses.replace(base, tls_mode=TLSMode.VERIFY_FULL).ssl_context()
    assert full is not None and full.verify_mode == ssl.CERT_REQUIRED and full.check_hostname
    missing = dataclasses.replace(base, tls_mode=TLSMode.VERIFY_FULL, tls_ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="CA file"):
        missing.ssl_context()
