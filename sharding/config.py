"""The cluster config file (YAML): listeners, frontend TLS, users, keyspaces and their shards, the VSchema, and
where the topology store lives.

``load_config(path)`` reads and checks a file; ``parse_config(doc, source=...)`` checks an already loaded
document. Either returns a frozen ``ClusterConfig`` or raises ``ConfigError`` whose ``problems`` hold EVERY
problem found, one line each, ``FILE: key.path: problem``::

    cluster.yaml: keyspaces.customer.shards: gap between -40 and 80-: 40-80 is not covered
    cluster.yaml: users[1].verifiers.md5: not an md5 verifier (expected 'md5' followed by 32 lower-case hex digits)
    cluster.yaml: keyspaces.customer.shards.-80.password: clear-text passwords are not allowed; use password_env \
or password_file
    cluster.yaml:7:3: YAML syntax error: could not find expected ':'

A full example (relative paths are relative to the directory of the config file)::

    listeners:                      # optional; without it: postgres 127.0.0.1:15432 and mysql 127.0.0.1:15306
      postgres: "127.0.0.1:15432"   # each optional; "host:port", "[::1]:15432"; port 0 picks a free port
      mysql: "127.0.0.1:15306"
      metrics: "127.0.0.1:15000"
    tls:                            # optional: frontend TLS for both protocols
      cert: certs/server.pem
      key: certs/server.key
      require: false                # true refuses clients that do not start TLS
    users:                          # made by `shardgate passwd NAME`: verifiers only, never passwords
      - name: app
        roles: [admin]              # admin may run VSchema DDL and the admin console
        verifiers:
          scram-sha-256: "SCRAM-SHA-256$4096:...$...:..."
          md5: "md5..."
          caching_sha2_password: "$SG$sha2$600000$...$...$..."
          mysql_native_password: "*..."
        auth: {postgres: scram-sha-256, mysql: caching_sha2_password}   # optional; default: strongest present
        max_connections: 100        # optional: this user's client sessions at once (see limits)
    keyspaces:
      customer:
        shards:
          "-80": {engine: postgres, host: 127.0.0.1, port: 5433, database: customer_0, user: app,
                  password_env: SG_PW, tls: {mode: verify-full, ca: certs/ca.pem}}
          "80-": {engine: postgres, host: 127.0.0.1, port: 5434, database: customer_1, user: app,
                  password_file: secrets/customer_1}
      main:
        shards:
          "0": {engine: mysql, host: 127.0.0.1, database: main, user: app, password_env: SG_MAIN_PW,
                replicas: [{host: 127.0.0.1, port: 3307}]}   # read replicas; unset keys are the primary's
    vschema:                        # Vitess VSchema JSON, written as YAML; or `vschema_file: vschema.json`
      keyspaces:
        customer:
          sharded: true
          vindexes: {hash: {type: hash}}
          tables: {customer: {column_vindexes: [{column: customer_id, name: hash}]}}
        main: {sharded: false, tables: {product: {}}}
    topology: {store: file, path: ./topo, poll_interval: 1.0}   # the default; etcd later
    limits:                         # optional: client sessions at once (0: no limit); over it, MySQL 1040 / PG 53300
      max_client_connections: 2000  # every user, both protocols
      max_user_connections: 0       # each user; a user entry's own `max_connections: N` wins

The router's own sections, ``acl:`` (table ACLs, ``router.acl_config``) and ``rules:`` (query rules,
``router.rules``), are checked with the rest when the config is loaded through ``router.config_sections`` (this
module knows only their names: ``EXTENSION_SECTIONS``; their parsers come in as ``sections``).

Rules beyond the shape: unknown keys are errors (with a "did you mean"), and so are duplicate keys; shard
names are key ranges that tile their keyspace exactly (an unsharded keyspace has one shard, ``-`` or ``0``);
the keyspaces of the VSchema and of ``keyspaces:`` are the same set; one engine per keyspace; a shard password
comes from ``password_env`` or ``password_file`` and is read only at connect time (``ShardConfig.dsn()``), so
it is never held by the config, its repr or its logs. Shard ``tls``: ``mode`` is disable | require | verify-ca
| verify-full (default verify-full when ``tls`` is given), ``ca`` a CA bundle. Mapping keys are always read as
strings, so ``-80:`` or ``0:`` unquoted mean the shards ``-80`` and ``0``, not numbers.
"""
from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sharding import auth
from sharding.auth import Verifier
from sharding.config_model import (
    DEFAULT_LISTENERS,
    ROLES,
    ClientLimits,
    ClusterConfig,
    FrontendTLS,
    KeyspaceConfig,
    ListenAddress,
    Listeners,
    SecretRef,
    ShardConfig,
    TopologyConfig,
    UserConfig,
)
from sharding.db import DEFAULT_PORTS, TLSMode
from sharding.errors import ConfigError, KeyRangeError
from sharding.keyrange import KeyRange, check_coverage
from sharding.vschema import VSchema, parse_vschema
from sharding.yamldoc import DocChecker, describe, join_path, load_yaml, suggest

__all__ = [
    "DEFAULT_LISTENERS",
    "EXTENSION_SECTIONS",
    "ROLES",
    "ClusterConfig",
    "FrontendTLS",
    "KeyspaceConfig",
    "ListenAddress",
    "Listeners",
    "SecretRef",
    "SectionContext",
    "SectionParser",
    "ShardConfig",
    "TopologyConfig",
    "UserConfig",
    "load_config",
    "load_yaml",
    "parse_config",
]

_NAME = re.compile(r"[A-Za-z0-9_-]+")  # keyspace names (also topology key segments)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_MISSING = object()

# Sections checked by a layer above this one (the router's table ACLs and query rules: ``router.config_sections``
# passes their parsers as ``sections``). Their names are known here so that a file holding one is never accepted
# unchecked: without a parser for it, it is a problem.
EXTENSION_SECTIONS = ("acl", "rules", "consolidation", "buffering", "replica_health")


@dataclass(frozen=True, slots=True)
class SectionContext:
    """What a section parser may check against: the config's user names and keyspaces, and a file reader."""

    users: frozenset[str]
    keyspaces: frozenset[str]
    read_text: Callable[[Path], str]


# (checker, the section's value, its key path, context) -> the parsed section (None after a problem)
SectionParser = Callable[[DocChecker, Any, str, SectionContext], Any]


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def load_config(path: str | os.PathLike[str], *, sections: Mapping[str, SectionParser] | None = None
                ) -> ClusterConfig:
    """Read, parse and check the cluster config file at ``path`` (``sections``: see ``parse_config``)."""
    source = str(path)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        mode = file.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{source}: cannot read: {reason}", problems=[f"{source}: cannot read: {reason}"]) from None
    doc = load_yaml(text, source)
    if doc is None:
        line = f"{source}: the file is empty"
        raise ConfigError(line, problems=[line])
    config = parse_config(doc, source=source, base_dir=file.resolve().parent, sections=sections)
    if config.users and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warning = (f"{source}: the file holds password verifiers but others can read it "
                   f"(mode {stat.S_IMODE(mode):04o}); run chmod 600")
        config = replace(config, warnings=(*config.warnings, warning))
    return config


def parse_config(doc: Any, *, source: str = "cluster.yaml", base_dir: str | os.PathLike[str] | None = None,
                 sections: Mapping[str, SectionParser] | None = None) -> ClusterConfig:
    """Check a loaded config document; relative paths resolve against ``base_dir`` (default: ``source``'s
    directory). Raises ``ConfigError`` listing every problem. ``sections`` parse the sections of layers above
    (``EXTENSION_SECTIONS``); their results are in ``ClusterConfig.sections``."""
    base = Path(base_dir) if base_dir is not None else Path(source).resolve().parent
    c = DocChecker(source, base)
    extra = dict(sections or {})
    top = c.mapping(doc, "", ["listeners", "tls", "users", "keyspaces", "vschema", "vschema_file", "topology",
                              "limits", *EXTENSION_SECTIONS, *(k for k in extra if k not in EXTENSION_SECTIONS)],
                    required=["keyspaces"])
    if top is None:
        raise ConfigError("\n".join(c.problems), problems=c.problems)

    listeners = _listeners(c, top.get("listeners", _MISSING))
    tls = _frontend_tls(c, top["tls"]) if "tls" in top else None
    users = _users(c, top.get("users", []))
    vschema = _vschema(c, top)
    keyspaces = _keyspaces(c, top.get("keyspaces"), vschema)
    topology = _topology(c, top.get("topology", {}))
    limits = _limits(c, top.get("limits", {}))
    parsed = _sections(c, top, extra, users, vschema)
    if c.problems:
        raise ConfigError("\n".join(c.problems), problems=c.problems)
    assert vschema is not None
    return ClusterConfig(source=source, listeners=listeners, tls=tls, users=tuple(users),
                         keyspaces=MappingProxyType({k.name: k for k in keyspaces}), vschema=vschema,
                         topology=topology, warnings=tuple(c.warnings), sections=MappingProxyType(parsed),
                         limits=limits)


_MAX_CLIENTS = 1_000_000


def _limits(c: DocChecker, value: Any) -> ClientLimits:
    section = c.mapping(value, "limits", ["max_client_connections", "max_user_connections"])
    if section is None:
        return ClientLimits()
    total = c.integer(section.get("max_client_connections", 0), "limits.max_client_connections", 0, _MAX_CLIENTS)
    per_user = c.integer(section.get("max_user_connections", 0), "limits.max_user_connections", 0, _MAX_CLIENTS)
    return ClientLimits(total or 0, per_user or 0)


def _sections(c: DocChecker, top: Mapping[str, Any], parsers: Mapping[str, SectionParser],
              users: list[UserConfig], vschema: VSchema | None) -> dict[str, Any]:
    names = [k for k in top if k in EXTENSION_SECTIONS or k in parsers]
    if not names:
        return {}
    keyspaces = frozenset(vschema.keyspaces) if vschema is not None else frozenset(
        top["keyspaces"] if isinstance(top.get("keyspaces"), dict) else ())
    context = SectionContext(frozenset(u.name for u in users), keyspaces, _read_text)
    out: dict[str, Any] = {}
    for name in names:
        parser = parsers.get(name)
        if parser is None:
            c.problem(name, "this section is checked by the router: load the config with "
                            "router.config_sections.load_config (as `shardgate serve` does)")
            continue
        out[name] = parser(c, top[name], name, context)
    return out


def _address(c: DocChecker, value: Any, path: str) -> ListenAddress | None:
    text = c.string(value, path)
    if text is None:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        c.problem(path, f"{text!r} is not host:port (e.g. 127.0.0.1:15432 or [::1]:15432)")
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            c.problem(path, f"{host!r} in brackets is not an IPv6 address")
            return None
    elif not host:
        c.problem(path, f"{text!r} has no host (use 0.0.0.0 or [::] to listen on every interface)")
        return None
    elif ":" in host:
        c.problem(path, f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:15432")
        return None
    elif not _HOSTNAME.fullmatch(host):
        c.problem(path, f"{host!r} is not an IP address or host name")
        return None
    port = int(port_text)
    if port > 65535:
        c.problem(path, f"port {port} is out of range 0..65535")
        return None
    return ListenAddress(host, port)


def _listeners(c: DocChecker, value: Any) -> Listeners:
    if value is _MISSING:
        value = dict(DEFAULT_LISTENERS)
    section = c.mapping(value, "listeners", ["postgres", "mysql", "metrics"])
    if section is None:
        return Listeners()
    found = {name: _address(c, section[name], join_path("listeners", name))
             for name in ("postgres", "mysql", "metrics") if name in section}
    if "postgres" not in section and "mysql" not in section:
        c.problem("listeners", "no postgres or mysql listener: clients could not connect")
    seen: dict[tuple[str, int], str] = {}
    for name, addr in found.items():
        if addr is None or addr.port == 0:
            continue
        if (addr.host, addr.port) in seen:
            c.problem(join_path("listeners", name), f"{addr} is already used by listeners.{seen[addr.host, addr.port]}")
        seen.setdefault((addr.host, addr.port), name)
    return Listeners(found.get("postgres"), found.get("mysql"), found.get("metrics"))


def _frontend_tls(c: DocChecker, value: Any) -> FrontendTLS | None:
    section = c.mapping(value, "tls", ["cert", "key", "require"], required=["cert", "key"])
    if section is None:
        return None
    cert = c.file(section["cert"], "tls.cert") if "cert" in section else None
    key = c.file(section["key"], "tls.key") if "key" in section else None
    require = c.boolean(section.get("require", False), "tls.require")
    if key is not None and key.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        c.warn("tls.key", f"the private key {key} is readable by others; run chmod 600")
    if cert is None or key is None or require is None:
        return None
    return FrontendTLS(cert, key, require)


def _users(c: DocChecker, value: Any) -> list[UserConfig]:
    if not isinstance(value, list):
        c.problem("users", f"expected a list, got {describe(value)}")
        return []
    users: list[UserConfig] = []
    names: dict[str, int] = {}
    for i, item in enumerate(value):
        path = join_path("users", i)
        entry = c.mapping(item, path, ["name", "roles", "verifiers", "auth", "max_connections"],
                          required=["name", "verifiers"],
                          hints={"password": "clear-text passwords are not allowed; store verifiers "
                                             "(made by `shardgate passwd NAME`)"})
        if entry is None:
            continue
        ok = True
        name = c.string(entry.get("name"), join_path(path, "name")) if "name" in entry else None
        if name is not None:
            if "\0" in name or len(name.encode("utf-8")) > 63:
                c.problem(join_path(path, "name"), "user names must be at most 63 bytes and contain no NUL")
                ok = False
            elif name in names:
                c.problem(join_path(path, "name"), f"duplicate user {name!r} (also users[{names[name]}])")
                ok = False
            else:
                names[name] = i
        roles = _roles(c, entry.get("roles", []), join_path(path, "roles"))
        verifiers = _verifiers(c, entry["verifiers"], join_path(path, "verifiers")) if "verifiers" in entry else None
        methods = _auth_methods(c, entry.get("auth", {}), join_path(path, "auth"), verifiers or {})
        max_conns = c.integer(entry["max_connections"], join_path(path, "max_connections"), 0, _MAX_CLIENTS) \
            if "max_connections" in entry else None
        if "max_connections" in entry and max_conns is None:
            ok = False
        if ok and name is not None and roles is not None and verifiers is not None and methods is not None:
            users.append(UserConfig(name, roles, MappingProxyType(verifiers), MappingProxyType(methods),
                                    max_connections=max_conns))
    return users


def _roles(c: DocChecker, value: Any, path: str) -> frozenset[str] | None:
    if not isinstance(value, list):
        c.problem(path, f"expected a list of roles, got {describe(value)}")
        return None
    roles = set()
    for j, role in enumerate(value):
        if not isinstance(role, str) or role not in ROLES:
            hint = suggest(role if isinstance(role, str) else "", sorted(ROLES), what="known roles")
            c.problem(join_path(path, j), f"unknown role {role!r}{hint}")
            continue
        roles.add(role)
    return frozenset(roles) if len(roles) == len(value) else None


def _verifiers(c: DocChecker, value: Any, path: str) -> dict[str, Verifier] | None:
    section = c.mapping(value, path, auth.METHODS)
    if section is None:
        return None
    if not section:
        c.problem(path, "no verifiers: the user could never log in (make them with `shardgate passwd NAME`)")
        return None
    out: dict[str, Verifier] = {}
    for method, text in section.items():
        if method not in auth.METHODS:
            continue  # already reported as an unknown key
        try:
            out[method] = auth.parse_verifier(method, text)
        except ValueError as exc:
            c.problem(join_path(path, method), str(exc))
    return out if len(out) == len(section) else None


def _auth_methods(c: DocChecker, value: Any, path: str, verifiers: Mapping[str, Any]) -> dict[str, str] | None:
    section = c.mapping(value, path, ["postgres", "mysql"])
    if section is None:
        return None
    methods: dict[str, str] = {}
    ok = True
    for protocol, allowed in (("postgres", auth.POSTGRES_METHODS), ("mysql", auth.MYSQL_METHODS)):
        if protocol in section:
            method = section[protocol]
            if method not in allowed:
                c.problem(join_path(path, protocol),
                          f"{method!r} is not a {protocol} method; expected one of: {', '.join(allowed)}")
                ok = False
            elif verifiers and method not in verifiers:
                c.problem(join_path(path, protocol), f"no {method} verifier for this user")
                ok = False
            else:
                methods[protocol] = method
        elif (best := auth.preferred_method(verifiers, protocol)) is not None:
            methods[protocol] = best
    return methods if ok else None


def _vschema(c: DocChecker, top: Mapping[str, Any]) -> VSchema | None:
    if "vschema" in top and "vschema_file" in top:
        c.problem("vschema_file", "give either vschema or vschema_file, not both")
        return None
    if "vschema_file" in top:
        path = c.file(top["vschema_file"], "vschema_file")
        if path is None:
            return None
        try:
            doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            c.problem("vschema_file", f"cannot read {path}: {exc}")
            return None
        except ConfigError as exc:
            c.problems.extend(exc.problems)
            return None
        # Problems in a separate file are that file's: "vschema.json: keyspaces.customer: ...".
        source = str(path)

        def lines(line: str) -> str:
            return line if line.startswith(source + ": ") else f"{source}: {line}"
    elif "vschema" in top:
        # Inline: paths continue the config's, "cluster.yaml: vschema.keyspaces.customer: ...".
        doc, source = top["vschema"], "vschema"

        def lines(line: str) -> str:
            if line.startswith("vschema: "):  # a problem of the document as a whole
                return f"{c.source}: {line}"
            return f"{c.source}: vschema{'' if line.startswith('[') else '.'}{line}"
    else:
        c.problem("", "missing required key 'vschema' (or 'vschema_file')")
        return None
    try:
        vschema = parse_vschema(doc, source=source)
    except ConfigError as exc:
        c.problems.extend(map(lines, exc.problems))
        return None
    c.warnings.extend(map(lines, vschema.warnings))
    return vschema


_SHARD_KEYS = ["engine", "host", "port", "database", "user", "password_env", "password_file", "tls", "replicas"]
_REPLICA_KEYS = ["host", "port", "database", "user", "password_env", "password_file", "tls"]


def _keyspaces(c: DocChecker, value: Any, vschema: VSchema | None) -> list[KeyspaceConfig]:
    if not isinstance(value, dict) or not value:
        c.problem("keyspaces", f"expected a mapping of keyspace name to shards, got {describe(value)}")
        return []
    section: dict[str, Any] = value
    out: list[KeyspaceConfig] = []
    vschema_keyspaces = getattr(vschema, "keyspaces", None) if vschema is not None else None
    for name, body in section.items():
        path = join_path("keyspaces", name)
        if not _NAME.fullmatch(name):
            c.problem(path, "keyspace names use only A-Z a-z 0-9 _ -")
            continue
        ks_vschema = vschema_keyspaces.get(name) if vschema_keyspaces is not None else None
        if vschema_keyspaces is not None and ks_vschema is None:
            c.problem(path, "not in the VSchema (add it under vschema.keyspaces)")
        entry = c.mapping(body, path, ["shards"], required=["shards"])
        if entry is None or "shards" not in entry:
            continue
        sharded = bool(getattr(ks_vschema, "sharded", True)) if ks_vschema is not None else None
        keyspace = _keyspace(c, name, entry["shards"], join_path(path, "shards"), sharded)
        if keyspace is not None:
            out.append(keyspace)
    if vschema_keyspaces is not None:
        for name in vschema_keyspaces:
            if name not in section:
                c.problem(join_path("vschema", "keyspaces", name), f"has no shards (add keyspaces.{name}.shards)")
    return out


def _keyspace(c: DocChecker, name: str, value: Any, path: str, sharded: bool | None) -> KeyspaceConfig | None:
    if not isinstance(value, dict) or not value:
        c.problem(path, f"expected a mapping of shard name to backend, got {describe(value)}")
        return None
    shards = [s for shard_name, body in value.items()
              if (s := _shard(c, name, shard_name, body, join_path(path, shard_name))) is not None]
    names = list(value)
    if sharded is False:
        if len(names) != 1 or names[0] not in ("-", "0"):
            c.problem(path, f"an unsharded keyspace has exactly one shard, named '-' or '0'; found {len(names)}: "
                            f"{', '.join(names)}")
    else:
        for problem in check_coverage(names):
            if not problem.startswith("invalid shard name"):  # already reported on the shard itself
                c.problem(path, problem)
    engines = sorted({s.engine for s in shards})
    if len(engines) > 1:
        c.problem(path, f"all shards of a keyspace use one engine; found {', '.join(engines)}")
    if len(shards) != len(value) or len(engines) != 1:
        return None
    shards.sort(key=lambda s: (s.key_range.start, s.key_range.end == b"", s.key_range.end))
    return KeyspaceConfig(name, shards[0].engine, tuple(shards))


def _shard(c: DocChecker, keyspace: str, name: str, value: Any, path: str) -> ShardConfig | None:
    try:
        key_range: KeyRange | None = KeyRange.parse(name)
    except KeyRangeError as exc:
        c.problem(path, exc.message)
        key_range = None
    body = c.mapping(value, path, _SHARD_KEYS, required=["engine", "host", "database", "user"],
                     hints={"password": "clear-text passwords are not allowed; use password_env or password_file"})
    if body is None:
        return None
    engine = body.get("engine")
    if "engine" in body and engine not in DEFAULT_PORTS:
        extra = " (MariaDB is mysql)" if engine == "mariadb" else ""
        c.problem(join_path(path, "engine"), f"unknown engine {engine!r}; expected postgres or mysql{extra}")
        engine = None
    host = c.string(body["host"], join_path(path, "host")) if "host" in body else None
    if host is not None and not _valid_host(host):
        c.problem(join_path(path, "host"), f"{host!r} is not an IP address or host name")
        host = None
    port = c.integer(body["port"], join_path(path, "port"), 1, 65535) if "port" in body else (
        DEFAULT_PORTS.get(engine or "", 0))
    database = c.string(body["database"], join_path(path, "database")) if "database" in body else None
    user = c.string(body["user"], join_path(path, "user")) if "user" in body else None
    secret_ok, secret = _secret(c, body, path)
    tls_mode, ca = _backend_tls(c, body.get("tls", _MISSING), join_path(path, "tls"))
    if None in (key_range, engine, host, port, database, user, tls_mode) or not secret_ok:
        return None
    assert key_range is not None and engine is not None and host is not None and port is not None
    assert database is not None and user is not None and tls_mode is not None
    primary = ShardConfig(keyspace, name, key_range, engine, host, port, database, user, secret, tls_mode, ca)
    replicas = _replicas(c, primary, body.get("replicas", []), join_path(path, "replicas"))
    return None if replicas is None else replace(primary, replicas=replicas)


def _replicas(c: DocChecker, primary: ShardConfig, value: Any, path: str) -> tuple[ShardConfig, ...] | None:
    """A shard's read replicas: each a mapping of the primary's connection keys; what it leaves out (port,
    database, user, password, tls) is the primary's."""
    if not isinstance(value, list):
        c.problem(path, f"expected a list of replicas (host, port, ...), got {describe(value)}")
        return None
    out: list[ShardConfig] = []
    for i, item in enumerate(value):
        at = join_path(path, i)
        body = c.mapping(item, at, _REPLICA_KEYS, required=["host"],
                         hints={"password": "clear-text passwords are not allowed; use password_env or password_file"})
        if body is None:
            continue
        host = c.string(body["host"], join_path(at, "host")) if "host" in body else None
        if host is not None and not _valid_host(host):
            c.problem(join_path(at, "host"), f"{host!r} is not an IP address or host name")
            host = None
        port = c.integer(body["port"], join_path(at, "port"), 1, 65535) if "port" in body else primary.port
        database = c.string(body["database"], join_path(at, "database")) if "database" in body \
            else primary.database
        user = c.string(body["user"], join_path(at, "user")) if "user" in body else primary.user
        secret_ok, secret = _secret(c, body, at)
        if "password_env" not in body and "password_file" not in body:
            secret = primary.password
        tls_mode, ca = _backend_tls(c, body["tls"], join_path(at, "tls")) if "tls" in body \
            else (primary.tls_mode, primary.tls_ca_file)
        if None in (host, port, database, user, tls_mode) or not secret_ok:
            continue
        assert host is not None and port is not None and database is not None and user is not None
        assert tls_mode is not None
        if (host, port) == (primary.host, primary.port):
            c.problem(at, f"{host}:{port} is the shard's primary")
            continue
        out.append(replace(primary, host=host, port=port, database=database, user=user, password=secret,
                           tls_mode=tls_mode, tls_ca_file=ca))
    return tuple(out) if len(out) == len(value) else None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return True


def _secret(c: DocChecker, body: Mapping[str, Any], path: str) -> tuple[bool, SecretRef | None]:
    """(no problem, the password reference or None when there is none)."""
    if "password_env" in body and "password_file" in body:
        c.problem(path, "give either password_env or password_file, not both")
        return False, None
    if "password_env" in body:
        # Never echo the value: someone may have put the password itself here.
        env = c.string(body["password_env"], join_path(path, "password_env"), pattern=_ENV_NAME,
                       what="environment variable name", echo=False)
        return env is not None, SecretRef(env=env) if env is not None else None
    if "password_file" in body:
        file = c.file(body["password_file"], join_path(path, "password_file"), must_exist=False)
        return file is not None, SecretRef(file=file) if file is not None else None
    return True, None


def _backend_tls(c: DocChecker, value: Any, path: str) -> tuple[TLSMode | None, Path | None]:
    if value is _MISSING:
        return TLSMode.DISABLE, None
    section = c.mapping(value, path, ["mode", "ca"])
    if section is None:
        return None, None
    mode: TLSMode | None = TLSMode.VERIFY_FULL
    if "mode" in section:
        try:
            mode = TLSMode(section["mode"])
        except ValueError:
            c.problem(join_path(path, "mode"), f"{section['mode']!r} is not a TLS mode; expected one of: "
                                           f"{', '.join(m.value for m in TLSMode)}")
            mode = None
    ca = c.file(section["ca"], join_path(path, "ca")) if "ca" in section else None
    if "ca" in section and ca is None:
        return None, None
    if ca is not None and mode is TLSMode.DISABLE:
        c.problem(path, "a CA file is given but mode is disable")
        return None, None
    return mode, ca


def _topology(c: DocChecker, value: Any) -> TopologyConfig:
    section = c.mapping(value, "topology", ["store", "path", "poll_interval"])
    if section is None:
        return TopologyConfig()
    store = section.get("store", "file")
    if store != "file":
        c.problem("topology.store", f"{store!r} is not available; use 'file' (etcd is planned)")
    path_text = section.get("path", "topo")
    path = None
    if c.string(path_text, "topology.path") is not None:
        path = Path(path_text) if os.path.isabs(path_text) else c.base_dir / path_text
    interval = section.get("poll_interval", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0 < interval <= 3600:
        c.problem("topology.poll_interval", "expected a number of seconds in (0, 3600]")
        interval = 1.0
    return TopologyConfig("file", path or c.base_dir / "topo", float(interval))
