"""The cluster config as frozen data; ``sharding.config`` reads and checks the file that makes it.

Nothing here holds a secret: shard passwords are ``SecretRef``s read at connect time, user credentials are
verifiers whose repr shows no key material.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharding.auth import Verifier
from sharding.db import DSN, Engine, TLSMode
from sharding.errors import ConfigError
from sharding.keyrange import KeyRange
from sharding.vschema_model import VSchema
from sharding.yamldoc import join_path

__all__ = [
    "DEFAULT_LISTENERS",
    "ROLES",
    "ClientLimits",
    "ClusterConfig",
    "FrontendTLS",
    "KeyspaceConfig",
    "ListenAddress",
    "Listeners",
    "SecretRef",
    "ShardConfig",
    "TopologyConfig",
    "UserConfig",
]

ROLES = frozenset({"admin"})  # admin: VSchema DDL and the admin console
DEFAULT_LISTENERS = {"postgres": "127.0.0.1:15432", "mysql": "127.0.0.1:15306"}


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int  # 0: any free port (tests)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Listeners:
    postgres: ListenAddress | None = None
    mysql: ListenAddress | None = None
    metrics: ListenAddress | None = None


@dataclass(frozen=True, slots=True)
class FrontendTLS:
    cert: Path
    key: Path
    require: bool = False


@dataclass(frozen=True, slots=True)
class UserConfig:
    name: str
    roles: frozenset[str]
    verifiers: Mapping[str, Verifier]  # method -> verifier (its repr shows no key material)
    auth: Mapping[str, str]  # protocol ("postgres" | "mysql") -> method; absent: no login over that protocol
    max_connections: int | None = None  # client sessions of this user at once (None: limits.max_user_connections)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def verifier_for(self, protocol: str) -> tuple[str, Verifier] | None:
        """The method to ask for on ``protocol`` and its verifier, or None when the user cannot log in there."""
        method = self.auth.get(protocol)
        return None if method is None else (method, self.verifiers[method])


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret is, not what it is: an environment variable or a file, read only by ``resolve()``."""

    env: str | None = None
    file: Path | None = None

    def resolve(self) -> str:
        """The secret, read now. ``ConfigError`` names the variable or file (never a value) when it is missing."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"environment variable {self.env} is not set (it holds a database password)")
            return value
        assert self.file is not None
        try:
            text = self.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise ConfigError(f"cannot read password file {self.file}: {reason}") from None
        return text.rstrip("\r\n")  # editors and `echo` add a newline; secrets mounted by Kubernetes do not

    def problem(self) -> str | None:
        """Why ``resolve()`` would fail now (for ``config validate``), without reading a value into memory."""
        if self.env is not None:
            return None if self.env in os.environ else f"environment variable {self.env} is not set"
        assert self.file is not None
        if not self.file.is_file():
            return f"password file {self.file} does not exist"
        if not os.access(self.file, os.R_OK):
            return f"password file {self.file} is not readable"
        return None

    def __str__(self) -> str:
        return f"${self.env}" if self.env is not None else f"file:{self.file}"


@dataclass(frozen=True, slots=True)
class ShardConfig:
    keyspace: str
    name: str
    key_range: KeyRange
    engine: Engine
    host: str
    port: int
    database: str
    user: str
    password: SecretRef | None = None  # None: no password (trust, peer or certificate authentication)
    tls_mode: TLSMode = TLSMode.DISABLE
    tls_ca_file: Path | None = None
    # Read replicas (same keyspace, shard and key range; their own host/port/...). Not part of equality: the
    # primary's pool stays when only its replicas change.
    replicas: tuple[ShardConfig, ...] = field(default=(), compare=False)

    def dsn(self) -> DSN:
        """The backend DSN with the password read now (``ConfigError`` naming a missing variable or file)."""
        return DSN(engine=self.engine, host=self.host, port=self.port, database=self.database, user=self.user,
                   password=self.password.resolve() if self.password is not None else "",
                   tls_mode=self.tls_mode, tls_ca_file=str(self.tls_ca_file) if self.tls_ca_file else None)


@dataclass(frozen=True, slots=True)
class KeyspaceConfig:
    name: str
    engine: Engine
    shards: tuple[ShardConfig, ...]  # in key-range order

    def shard(self, name: str) -> ShardConfig | None:
        return next((s for s in self.shards if s.name == name), None)


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """Client sessions at once, over both protocols and every worker's listeners (0: no limit). A session over
    the limit is refused at login with MySQL error 1040 / PostgreSQL SQLSTATE 53300."""

    max_client_connections: int = 0  # all users together
    max_user_connections: int = 0  # each user, unless the user's own max_connections says otherwise


@dataclass(frozen=True, slots=True)
class TopologyConfig:
    store: str = "file"
    path: Path = Path("topo")
    poll_interval: float = 1.0  # how often watches look for changes (seconds)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    source: str
    listeners: Listeners
    tls: FrontendTLS | None
    users: tuple[UserConfig, ...]
    keyspaces: Mapping[str, KeyspaceConfig]
    vschema: VSchema = field(repr=False)  # vschema.to_json() seeds the topology store
    topology: TopologyConfig
    warnings: tuple[str, ...] = ()
    limits: ClientLimits = ClientLimits()
    # Sections checked by a layer above (``acl``, ``rules``: ``router.config_sections``): name -> parsed value.
    sections: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def user(self, name: str) -> UserConfig | None:
        return next((u for u in self.users if u.name == name), None)

    def check_secrets(self) -> list[str]:
        """Warnings, ``FILE: key.path: problem``, for shard passwords that could not be read right now."""
        out = []
        for ks in self.keyspaces.values():
            for shard in ks.shards:
                if shard.password is not None and (problem := shard.password.problem()) is not None:
                    key = "password_env" if shard.password.env is not None else "password_file"
                    path = join_path("keyspaces", ks.name, "shards", shard.name, key)
                    out.append(f"{self.source}: {path}: {problem}")
        return out
