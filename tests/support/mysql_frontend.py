"""A router in the test process with its MySQL listener, over the session's real MariaDB servers.

``start_router(servers, ...)`` makes a database per shard (keyspace ``customer`` sharded ``-80`` / ``80-`` across
two servers, keyspace ``main`` unsharded), a config with test users, a ``Gateway`` and ``start_mysql_listener`` on
a free port, and returns a ``Router`` whose ``close()`` undoes it all. Users (``USERS``):

- ``demo``/``demo``: mysql_native_password, admin;
- ``sha``/``shapw``: caching_sha2_password with a stored fast digest (fast auth);
- ``slow``/``slowpw``: caching_sha2_password without one (full authentication: TLS or RSA key retrieval);
- ``plain``/``plainpw``: mysql_native_password, not admin.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import secrets
import ssl
from pathlib import Path
from typing import Any

from router.frontend.mysql.server import MysqlListener, start_mysql_listener
from router.gateway import Gateway
from sharding import db
from sharding.auth import CACHING_SHA2, MYSQL_NATIVE
from tests.integration.engine_support import make_config
from tests.support.backends import DatabaseServer
from tests.support.mysql_wire import make_user

USERS = {"demo": "demo", "sha": "shapw", "slow": "slowpw", "plain": "plainpw"}
VSCHEMA: dict[str, Any] = {
    "keyspaces": {
        "main": {"sharded": False, "tables": {}},
        "customer": {"sharded": True, "vindexes": {"hash": {"type": "hash"}}, "tables": {}},
    }
}


def users() -> tuple[Any, ...]:
    return (make_user("demo", "demo", [MYSQL_NATIVE]),
            make_user("sha", "shapw", [CACHING_SHA2]),
            make_user("slow", "slowpw", [CACHING_SHA2], fast_auth=False),
            make_user("plain", "plainpw", [MYSQL_NATIVE], roles=()))


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost and its key (PEM files in ``directory``)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


@dataclasses.dataclass
class Router:
    gateway: Gateway
    listener: MysqlListener
    dsns: dict[str, db.DSN]  # "customer/-80", "customer/80-", "main/0"
    names: list[tuple[DatabaseServer, str]]
    cert: Path | None = None

    @property
    def port(self) -> int:
        return self.listener.port

    @property
    def stats(self) -> Any:
        return self.listener.stats

    async def close(self) -> None:
        await self.listener.drain(timeout=5)
        await self.gateway.close()
        await asyncio.to_thread(self.drop)

    def drop(self) -> None:
        for server, name in self.names:
            try:
                server.drop_database(name)
            except Exception:
                pass


async def start_router(servers: list[DatabaseServer], *, tls_dir: Path | None = None, require_tls: bool = False,
                       max_allowed_packet: int = 64 << 20, default_auth_plugin: str = MYSQL_NATIVE,
                       pool_config: Any = None) -> Router:
    tag = secrets.token_hex(3)
    names: list[tuple[DatabaseServer, str]] = []

    def create(server: DatabaseServer, name: str) -> db.DSN:
        names.append((server, name))
        return server.create_database(name)

    dsns = await asyncio.to_thread(lambda: {
        "customer/-80": create(servers[0], f"my_{tag}_a"),
        "customer/80-": create(servers[1 % len(servers)], f"my_{tag}_b"),
        "main/0": create(servers[0], f"my_{tag}_main"),
    })
    config = make_config("mysql", {"customer": {"-80": dsns["customer/-80"], "80-": dsns["customer/80-"]},
                                   "main": {"0": dsns["main/0"]}}, VSCHEMA)
    config = dataclasses.replace(config, users=users())
    gateway = Gateway(config, pool_config=pool_config)
    await gateway.start()
    ctx = None
    cert = None
    if tls_dir is not None:
        cert, key = self_signed(tls_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
    listener = await start_mysql_listener(gateway, config, host="127.0.0.1", port=0, ssl_context=ctx,
                                          require_tls=require_tls, max_allowed_packet=max_allowed_packet,
                                          default_auth_plugin=default_auth_plugin)
    return Router(gateway, listener, dsns, names, cert)


# --- the real entry point in a subprocess --------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]


async def make_config_doc(servers: list[DatabaseServer], tag: str | None = None
                          ) -> tuple[dict[str, Any], list[tuple[DatabaseServer, str]]]:
    """A cluster config document (YAML-able) for ``router.serve``: keyspaces ``customer`` (``-80``/``80-``) and
    ``main`` on fresh databases, the ``VSCHEMA`` above, and the MySQL test users (mysql_native_password for
    ``demo``, as libmariadb clients such as sysbench expect)."""
    from sharding.auth import make_user_entry

    tag = tag or secrets.token_hex(3)
    layout = {"customer/-80": (servers[0], f"mysb_{tag}_a"), "customer/80-": (servers[1 % len(servers)],
                                                                              f"mysb_{tag}_b"),
              "main/0": (servers[0], f"mysb_{tag}_main")}
    names: list[tuple[DatabaseServer, str]] = []
    keyspaces: dict[str, Any] = {}
    for key, (server, name) in layout.items():
        dsn = await asyncio.to_thread(server.create_database, name)
        names.append((server, name))
        var = f"SG_MYFE_PW_{dsn.port}"
        os.environ[var] = dsn.password
        ks, shard = key.split("/")
        keyspaces.setdefault(ks, {"shards": {}})["shards"][shard] = {
            "engine": "mysql", "host": dsn.host, "port": dsn.port, "database": dsn.database, "user": dsn.user,
            "password_env": var}
    doc = {
        "users": [make_user_entry("demo", USERS["demo"], roles=["admin"], methods=[MYSQL_NATIVE, "scram-sha-256"]),
                  make_user_entry("sha", USERS["sha"], methods=[CACHING_SHA2], sha2_iterations=1000)],
        "keyspaces": keyspaces,
        "vschema": VSCHEMA,
    }
    return doc, names


class RouterProcess:
    """``python -m router.serve`` with the MySQL listener on a free port; ``start()`` waits for its ready file."""

    def __init__(self, doc: dict[str, Any], *, workers: int = 1, extra: tuple[str, ...] = ()) -> None:
        import tempfile

        import yaml

        self.dir = Path(tempfile.mkdtemp(prefix="myfe-router-"))
        self.config_path = self.dir / "cluster.yaml"
        self.config_path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        self.config_path.chmod(0o600)
        self.ready = self.dir / "ready.json"
        self.log = self.dir / "router.log"
        self.workers = workers
        self.extra = extra
        self.proc: Any = None
        self.port = 0

    def start(self, timeout: float = 60) -> RouterProcess:
        import json
        import subprocess
        import sys
        import time

        cmd = [sys.executable, "-m", "router.serve", "--config", str(self.config_path), "--pg-listen",
               "127.0.0.1:0", "--mysql-listen", "127.0.0.1:0", "--ready-file", str(self.ready), "--workers",
               str(self.workers), "--drain-timeout", "5", *self.extra]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.exists():
                self.port = int(json.loads(self.ready.read_text())["mysql"])
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the router did not start: {self.output()[-3000:]}")

    def stop(self, timeout: float = 15) -> int | None:
        import signal
        import subprocess

        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return int(proc.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
