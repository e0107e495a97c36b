"""Subcommands of ``shardgate`` that work offline: keyspace ids, validation, user entries, the demo.

Each ``_cmd_*`` returns an exit code; shardgate errors raised inside are printed by ``cli.main`` one problem per
line with exit 2.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_INVALID = 0, 2


# --- keyspace-id ------------------------------------------------------------------------------------------
def _parse_params(pairs: Sequence[str]) -> dict[str, str]:
    from sharding.errors import InvalidValueError

    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidValueError(f"--param {pair!r}: expected KEY=VALUE")
        params[key] = value
    return params


def _format_destination(dest: Any) -> str:
    from sharding.destination import AllShards, KeyRangeDest, KeyspaceId, KeyspaceIds

    if isinstance(dest, KeyspaceId):
        return dest.ksid.hex()
    if isinstance(dest, KeyspaceIds):
        return ",".join(k.hex() for k in dest.ksids) or "-"
    if isinstance(dest, KeyRangeDest):
        return f"keyrange:{dest.key_range}"
    if isinstance(dest, AllShards):
        return "keyrange:-"
    return "-"


def _cmd_keyspace_id(args: argparse.Namespace) -> int:
    from sharding.destination import resolve
    from sharding.errors import InvalidValueError, VSchemaError
    from sharding.snapshot import Shard
    from sharding.vindexes import registry
    from sharding.vindexes.base import Lookup, MultiColumn, SingleColumn

    try:
        vindex, warnings = registry.create(args.vindex, args.vindex, _parse_params(args.param))
    except VSchemaError as exc:  # its problems are paths inside a vindex definition; name the options instead
        problems = [p.replace("type: ", "--vindex: ", 1).replace("params.", "--param ", 1) for p in exc.problems]
        raise VSchemaError(exc.message, problems=problems) from None
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if isinstance(vindex, Lookup) or vindex.needs_vcursor:
        raise InvalidValueError(f"vindex type {args.vindex!r} reads a lookup table; it cannot map values offline")
    shards = None
    if args.shards is not None:
        from sharding.keyrange import check_coverage

        names = [s for s in args.shards.split(",") if s]
        problems = check_coverage(names)
        if problems:
            raise InvalidValueError(f"--shards: {problems[0]}")
        shards = sorted((Shard.from_name(n) for n in names), key=lambda s: s.key_range.start)
    if isinstance(vindex, MultiColumn):
        # One VALUE per row, its columns separated by commas.
        destinations = vindex.map_rows([v.split(",") for v in args.values])
    elif isinstance(vindex, SingleColumn):
        destinations = vindex.map(list(args.values))
    else:
        raise InvalidValueError(f"vindex type {args.vindex!r} cannot map values")
    out = sys.stdout
    for value, dest in zip(args.values, destinations, strict=True):
        line = f"{value}\t{_format_destination(dest)}"
        if shards is not None:
            line += "\t" + (",".join(resolve(dest, shards)) or "-")
        out.write(line + "\n")
    return EXIT_OK


# --- validation -------------------------------------------------------------------------------------------
def _load_document(path: str) -> Any:
    """A VSchema file as JSON, or YAML when it is not JSON (the config file embeds VSchemas as YAML)."""
    from sharding.errors import VSchemaError

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        line = f"{path}: cannot read: {exc.strerror or exc}"
        raise VSchemaError(line, problems=[line]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_exc:
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            line = f"{path}: invalid JSON at line {json_exc.lineno} column {json_exc.colno}: {json_exc.msg}"
            raise VSchemaError(line, problems=[line]) from None


def _cmd_vschema_validate(args: argparse.Namespace) -> int:
    from sharding.errors import VSchemaError
    from sharding.vschema import parse_vschema

    doc = _load_document(args.file)
    try:
        vschema = parse_vschema(doc, source=args.file)
    except VSchemaError as exc:
        raise VSchemaError(exc.message, problems=[f"{args.file}: {p}" for p in exc.problems]) from None
    for warning in vschema.warnings:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    print(f"{args.file}: ok ({len(vschema.keyspaces)} keyspaces)")
    return EXIT_OK


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from router.config_sections import load_config  # checks the router's acl: and rules: too

    config = load_config(args.file)
    for warning in [*config.warnings, *config.check_secrets()]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.file}: ok ({len(config.keyspaces)} keyspaces, {len(config.users)} users)")
    return EXIT_OK


# --- passwd -----------------------------------------------------------------------------------------------
def _read_password(args: argparse.Namespace) -> str:
    from sharding.errors import InvalidValueError

    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise InvalidValueError("the passwords differ")
    if not password:
        raise InvalidValueError("empty password")
    return password


def _cmd_passwd(args: argparse.Namespace) -> int:
    import yaml

    from sharding.auth import make_user_entry

    entry = make_user_entry(args.user, _read_password(args), roles=args.role)
    sys.stdout.write(yaml.safe_dump([entry], sort_keys=False, width=1000))
    return EXIT_OK


# --- plan -----------------------------------------------------------------------------------------------
def _snapshot_for_plan(args: argparse.Namespace) -> tuple[Any, bool]:
    from sharding.errors import InvalidValueError, VSchemaError
    from sharding.snapshot import ClusterSnapshot
    from sharding.vschema import parse_vschema

    doc = _load_document(args.vschema)
    try:
        vschema = parse_vschema(doc, source=args.vschema)
    except VSchemaError as exc:
        raise VSchemaError(exc.message, problems=[f"{args.vschema}: {p}" for p in exc.problems]) from None
    shards: dict[str, list[str]] = {}
    for spec in args.shards:
        ks, sep, names = spec.partition("=")
        if not sep or not ks or ks not in vschema.keyspaces:
            raise InvalidValueError(f"--shards {spec!r}: expected KEYSPACE=SHARD[,SHARD...] for a VSchema keyspace")
        shards[ks] = [n for n in names.split(",") if n]
    for name, ks in vschema.keyspaces.items():
        shards.setdefault(name, ["-"] if ks.sharded else ["0"])
    return ClusterSnapshot.build(1, vschema, shards), bool(args.shards)


def _plan_one(planner: Any, sql: str, session: Any, snapshot: Any, with_shards: bool) -> dict[str, Any]:
    from router.planner.explain import explain

    bound = planner.plan(sql, session, snapshot)
    return explain(bound, snapshot if with_shards else None, dialect=session.dialect)


def _cmd_plan(args: argparse.Namespace) -> int:
    from router.planner import Planner, SessionView
    from sharding.errors import ShardgateError

    snapshot, with_shards = _snapshot_for_plan(args)
    session = SessionView(dialect=args.dialect, keyspace=args.keyspace)
    planner = Planner()
    if args.sql != "-":
        print(json.dumps(_plan_one(planner, args.sql, session, snapshot, with_shards), indent=2, default=str))
        return EXIT_OK
    failed = False
    for line in sys.stdin:  # one statement per line, one JSON line each; errors go on their line
        sql = line.strip()
        if not sql:
            continue
        try:
            out: dict[str, Any] = _plan_one(planner, sql, session, snapshot, with_shards)
        except ShardgateError as exc:
            out = {"error": exc.client_message(), "Original": sql}
            failed = True
        sys.stdout.write(json.dumps(out, default=str) + "\n")
        sys.stdout.flush()
    return EXIT_INVALID if failed else EXIT_OK


# --- serve ----------------------------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace) -> int:
    from router import serve

    return serve.main(args)


# --- demo -------------------------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from shardgate.demo import run_demo

    return run_demo(args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keyspace-id", help="print the Vitess keyspace id (and shard) of values")
    p.add_argument("--vindex", required=True, metavar="TYPE", help="vindex type, e.g. hash, xxhash, numeric")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="vindex parameter (repeatable)")
    p.add_argument("--shards", metavar="LIST", help="comma-separated shard names, e.g. -80,80-")
    p.add_argument("values", nargs="+", metavar="VALUE", help="values; put -- before negative numbers")
    p.set_defaults(func=_cmd_keyspace_id)

    p = sub.add_parser("vschema", help="VSchema tools")
    vs = p.add_subparsers(dest="vschema_command", metavar="ACTION")
    vs.required = True
    v = vs.add_parser("validate", help="check a Vitess VSchema JSON file; exit 2 with one problem per line")
    v.add_argument("file")
    v.set_defaults(func=_cmd_vschema_validate)

    p = sub.add_parser("config", help="cluster config tools")
    cs = p.add_subparsers(dest="config_command", metavar="ACTION")
    cs.required = True
    c = cs.add_parser("validate", help="check a cluster config file; exit 2 with one problem per line")
    c.add_argument("file")
    c.set_defaults(func=_cmd_config_validate)

    p = sub.add_parser("passwd", help="print a users: entry with stored verifiers (never the password)")
    p.add_argument("user")
    p.add_argument("--role", action="append", default=[], help="role to grant, e.g. admin (repeatable)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    p.set_defaults(func=_cmd_passwd)

    p = sub.add_parser("serve", help="run the router: PostgreSQL and MySQL listeners over the configured shards")
    from router import serve

    serve.add_arguments(p)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("plan", help="print the routing plan of SQL against a VSchema (no server needed)")
    p.add_argument("--vschema", required=True, metavar="FILE", help="Vitess VSchema (JSON or YAML)")
    p.add_argument("--dialect", choices=("mysql", "postgres"), default="mysql")
    p.add_argument("--keyspace", default=None, help="the session's current keyspace")
    p.add_argument("--shards", action="append", default=[], metavar="KS=LIST",
                   help="shards of a keyspace, e.g. --shards=customer=-80,80- (repeatable); adds target Shards")
    p.add_argument("sql", metavar="SQL", help="the statement, or - to read one statement per line from stdin")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("demo", help="start a local sharded cluster behind the router and tour it")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--tour-only", action="store_true", help="run the tour and exit (0 when every answer is right)")
    mode.add_argument("--keep-running", action="store_true", help="skip the tour and stay up")
    p.add_argument("--pg-port", type=int, default=15432, metavar="PORT",
                   help="the router's PostgreSQL port on 127.0.0.1 (default 15432; 0 picks a free one)")
    p.add_argument("--mysql-port", type=int, default=15306, metavar="PORT",
                   help="the router's MySQL port on 127.0.0.1 (default 15306; 0 picks a free one)")
    p.add_argument("--dir", default=None, help="where to keep the demo's servers (default: a temp dir)")
    p.set_defaults(func=_cmd_demo)
