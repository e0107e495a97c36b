"""The ``acl:`` section of the cluster config: our YAML entries and Vitess's ``table_groups`` JSON, checked
strictly with every problem reported, one per line, ``FILE: acl.key.path: problem`` (``sharding.yamldoc``).

Config (``acl:`` in the cluster YAML; ``parse_acl``/``check_acl``)::

    acl:
      default: allow                 # keyspaces without an ACL: allow (default) | deny
      groups:                        # group -> users
        analysts: [alice, bob]
      keyspaces:
        customer:                    # ours: ordered entries, the first matching one decides
          - tables: [salary]         # no rights listed: nobody (but role admin for admin rights)
          - name: orders             # optional, shown in messages
            tables: [orders, "order_*"]
            read: [app, analysts]
            write: [app]
            admin: [dba]
          - tables: ["*"]
            read: ["*"]
        main:                        # Vitess tableacl JSON (inline: JSON is YAML)
          table_groups:
            - name: products
              table_names_or_prefixes: [product, "product_%"]
              readers: [app, analysts]
              writers: [app]
              admins: [dba]
        legacy:
          file: acl/legacy.json      # a Vitess tableacl JSON file, relative to the config file

Rules beyond the shape: unknown keys are errors (with a "did you mean"); a table list is not empty and has no
character classes nor the keyspace's own name as a qualifier; a group is not named ``*`` nor like a user; a Vitess
name has ``%`` only at its end and does not overlap another (names compare case-insensitively); an ACL for a
keyspace the VSchema does not have is an error (it would never apply); a principal that is neither a user nor a
group is a warning. No I/O here: a ``file:`` is read with the ``read_text`` the caller passes.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from router.acl import EVERYONE, RIGHTS, Acl, AclEntry, KeyspaceAcl, TablePattern
from sharding.errors import ConfigError
from sharding.yamldoc import DocChecker, describe, join_path, load_yaml

__all__ = ["check_acl", "parse_acl"]

_POLICIES = ("allow", "deny")

_ENTRY_KEYS = ["name", "tables", *RIGHTS]
_VITESS_RIGHTS = {"readers": "read", "writers": "write", "admins": "admin"}
_VITESS_KEYS = {"name": "name", "table_names_or_prefixes": "tables", "tableNamesOrPrefixes": "tables",
                "readers": "readers", "writers": "writers", "admins": "admins"}


def parse_acl(doc: Any, source: str = "cluster.yaml", *, path: str = "acl", users: Iterable[str] | None = None,
              keyspaces: Iterable[str] | None = None, base_dir: str | Path | None = None,
              read_text: Callable[[Path], str] | None = None) -> Acl:
    """The ``acl:`` section ``doc`` as an ``Acl``, or ``ConfigError`` whose ``problems`` list every problem, one
    per line, ``FILE: acl.key.path: problem``. ``users`` and ``keyspaces`` (when given) are checked against:
    an ACL for an unknown keyspace is a problem (it would never apply), an unknown principal a warning.
    ``read_text(path)`` reads a ``file:`` (a Vitess tableacl JSON); the module itself does no I/O."""
    c = DocChecker(source, Path(base_dir) if base_dir is not None else Path("."))
    acl = check_acl(c, doc, path=path, users=users, keyspaces=keyspaces, read_text=read_text)
    if c.problems or acl is None:
        raise ConfigError("\n".join(c.problems), problems=c.problems)
    return acl


def check_acl(c: DocChecker, doc: Any, *, path: str = "acl", users: Iterable[str] | None = None,
              keyspaces: Iterable[str] | None = None, read_text: Callable[[Path], str] | None = None
              ) -> Acl | None:
    """As ``parse_acl``, adding problems and warnings to ``c`` (the config's own checker); None on a problem."""
    before, warned = len(c.problems), len(c.warnings)
    section = c.mapping(doc, path, ["default", "groups", "keyspaces"])
    if section is None:
        return None
    known_users = frozenset(users) if users is not None else None
    default = section.get("default", "allow")
    if default not in _POLICIES:
        c.problem(join_path(path, "default"), f"expected allow or deny, got {_shown(default)}")
    groups = _groups(c, section.get("groups", {}), join_path(path, "groups"), known_users)
    principals = None if known_users is None else known_users | frozenset(groups) | {EVERYONE}
    known_keyspaces = frozenset(keyspaces) if keyspaces is not None else None
    out: dict[str, KeyspaceAcl] = {}
    body = section.get("keyspaces", {})
    if not isinstance(body, dict):
        c.problem(join_path(path, "keyspaces"), f"expected a mapping of keyspace to entries, got {describe(body)}")
        body = {}
    for ks, value in body.items():
        ks_path = join_path(path, "keyspaces", ks)
        if known_keyspaces is not None and ks not in known_keyspaces:
            c.problem(ks_path, f"no keyspace {ks!r} in the VSchema (an ACL for it would never apply)")
            continue
        entries = _keyspace_entries(c, ks, value, ks_path, read_text)
        if entries is not None:
            out[ks] = KeyspaceAcl(ks, tuple(entries))
            if principals is not None:
                _warn_unknown(c, ks_path, entries, principals)
    if len(c.problems) > before:
        return None
    return Acl(MappingProxyType(out), MappingProxyType(groups), default, tuple(c.warnings[warned:]))


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) and len(value) <= 40 else describe(value)


def _names(c: DocChecker, value: Any, path: str, what: str) -> list[str] | None:
    if not isinstance(value, list):
        c.problem(path, f"expected a list of {what}, got {describe(value)}")
        return None
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            c.problem(join_path(path, i), f"expected a non-empty string, got {describe(item)}")
        else:
            out.append(item)
    return out if len(out) == len(value) else None


def _groups(c: DocChecker, value: Any, path: str, users: frozenset[str] | None) -> dict[str, frozenset[str]]:
    if not isinstance(value, dict):
        c.problem(path, f"expected a mapping of group name to users, got {describe(value)}")
        return {}
    out: dict[str, frozenset[str]] = {}
    for name, members in value.items():
        gpath = join_path(path, name)
        if name == EVERYONE:
            c.problem(gpath, "'*' means every user; it cannot be a group name")
            continue
        if users is not None and name in users:
            c.problem(gpath, f"{name!r} is also a user name: entries naming it would be ambiguous")
            continue
        names = _names(c, members, gpath, "user names")
        if names is None:
            continue
        if users is not None:
            for i, member in enumerate(names):
                if member not in users:
                    c.warn(join_path(gpath, i), f"unknown user {member!r}")
        out[name] = frozenset(names)
    return out


def _warn_unknown(c: DocChecker, path: str, entries: list[AclEntry], principals: frozenset[str]) -> None:
    for entry in entries:
        for right in RIGHTS:
            for name in sorted(getattr(entry, right) - principals):
                c.warn(path, f"{entry.name}: {right}: unknown user or group {name!r}")


def _keyspace_entries(c: DocChecker, keyspace: str, value: Any, path: str,
                      read_text: Callable[[Path], str] | None) -> list[AclEntry] | None:
    if isinstance(value, list):
        return _our_entries(c, keyspace, value, path)
    if isinstance(value, dict) and "file" in value:
        c.mapping(value, path, ["file"])
        return _vitess_file(c, value["file"], join_path(path, "file"), read_text)
    if isinstance(value, dict):
        return _vitess_entries(c, value, path, c.source, path)
    c.problem(path, f"expected a list of entries, a Vitess tableacl document (table_groups) or file:, "
                    f"got {describe(value)}")
    return None


def _our_entries(c: DocChecker, keyspace: str, value: list[Any], path: str) -> list[AclEntry] | None:
    entries: list[AclEntry] = []
    ok = True
    for i, item in enumerate(value):
        epath = join_path(path, i)
        body = c.mapping(item, epath, _ENTRY_KEYS, required=["tables"])
        if body is None:
            ok = False
            continue
        name = body.get("name", epath)
        if not isinstance(name, str) or not name:
            c.problem(join_path(epath, "name"), f"expected a non-empty string, got {describe(name)}")
            ok = False
        patterns = _globs(c, keyspace, body.get("tables"), join_path(epath, "tables")) if "tables" in body else None
        rights: dict[str, frozenset[str]] = {}
        for right in RIGHTS:
            if right in body:
                names = _names(c, body[right], join_path(epath, right), "user or group names")
                if names is None:
                    ok = False
                    continue
                rights[right] = frozenset(names)
        if patterns is None:
            ok = False
        if ok and patterns is not None:
            entries.append(AclEntry(str(name), tuple(patterns), **rights))
    return entries if ok else None


def _globs(c: DocChecker, keyspace: str, value: Any, path: str) -> list[TablePattern] | None:
    names = _names(c, value, path, "table names or globs")
    if names is None:
        return None
    if not names:
        c.problem(path, "an empty list covers no table; list names or globs (\"*\" for every table)")
        return None
    out = []
    for i, text in enumerate(names):
        if "[" in text or "]" in text:
            c.problem(join_path(path, i), f"{text!r}: character classes are not supported (use * and ?)")
        elif text.lower().startswith(keyspace.lower() + "."):
            c.problem(join_path(path, i), f"{text!r}: name tables without their keyspace "
                                          f"({text[len(keyspace) + 1:]!r}); the entry is already under {keyspace}")
        else:
            out.append(TablePattern.glob(text))
    return out if len(out) == len(names) else None


def _vitess_file(c: DocChecker, value: Any, path: str, read_text: Callable[[Path], str] | None
                 ) -> list[AclEntry] | None:
    text_path = c.string(value, path)
    if text_path is None:
        return None
    file = Path(text_path) if Path(text_path).is_absolute() else c.base_dir / text_path
    if read_text is None:
        c.problem(path, "tableacl files are read by the config loader; this check was given no reader")
        return None
    try:
        text = read_text(file)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        c.problem(path, f"cannot read {file}: {reason}")
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        try:  # YAML is accepted too; its errors carry line and column
            doc = load_yaml(text, str(file))
        except ConfigError as exc:
            c.problems.extend(exc.problems)
            return None
    # Problems inside the file are the file's: "acl/legacy.json: table_groups[0].readers: ...".
    return _vitess_entries(c, doc, "", str(file), f"{path}:{file}")


def _vitess_entries(c: DocChecker, doc: Any, path: str, source: str, label: str) -> list[AclEntry] | None:
    """Vitess ``tableacl`` JSON: ``{"table_groups": [{name, table_names_or_prefixes, readers, writers, admins}]}``
    (protojson also spells the keys in camelCase)."""
    sub = DocChecker(source, c.base_dir)
    body = sub.mapping(doc, path, ["table_groups", "tableGroups"])
    entries: list[AclEntry] = []
    seen: list[tuple[str, str]] = []  # (lower-cased name or prefix, as written), for Vitess's overlap check
    groups = body.get("table_groups", body.get("tableGroups", [])) if body is not None else []
    if body is not None and not isinstance(groups, list):
        sub.problem(join_path(path, "table_groups"), f"expected a list of table groups, got {describe(groups)}")
        groups = []
    for i, group in enumerate(groups):
        gpath = join_path(path, "table_groups", i)
        g = sub.mapping(group, gpath, list(_VITESS_KEYS))
        if g is None:
            continue
        name = g.get("name", f"{label}[{i}]" if not path else gpath)
        if not isinstance(name, str):
            sub.problem(join_path(gpath, "name"), f"expected a string, got {describe(name)}")
            continue
        key = "table_names_or_prefixes" if "table_names_or_prefixes" in g else "tableNamesOrPrefixes"
        names = _names(sub, g.get(key, []), join_path(gpath, key), "table names or prefixes")
        rights: dict[str, frozenset[str]] = {}
        for vkey, right in _VITESS_RIGHTS.items():
            if vkey in g:
                holders = _names(sub, g[vkey], join_path(gpath, vkey), "user or group names")
                if holders is not None:
                    rights[right] = frozenset(holders)
        if names is None:
            continue
        patterns = []
        for j, text in enumerate(names):
            npath = join_path(gpath, key, j)
            if "%" in text[:-1]:
                sub.problem(npath, f"{text!r}: '%' marks a prefix and may only end the name")
                continue
            low = text.lower()
            clash = next((w for s, w in seen if _overlap(s, low)), None)
            if clash is not None:
                sub.problem(npath, f"conflicting entries: {text!r} overlaps with {clash!r} "
                                   "(names compare case-insensitively)")
                continue
            seen.append((low, text))
            patterns.append(TablePattern.vitess(text))
        entries.append(AclEntry(name, tuple(patterns), **rights))
    c.problems.extend(sub.problems)
    c.warnings.extend(sub.warnings)
    return None if sub.problems else entries


def _overlap(a: str, b: str) -> bool:
    """Whether two Vitess names or prefixes can match the same table."""
    a_prefix, b_prefix = a.endswith("%"), b.endswith("%")
    a_text, b_text = a[:-1] if a_prefix else a, b[:-1] if b_prefix else b
    if a_prefix and b_prefix:
        return a_text.startswith(b_text) or b_text.startswith(a_text)
    if a_prefix:
        return b_text.startswith(a_text)
    if b_prefix:
        return a_text.startswith(b_text)
    return a_text == b_text
