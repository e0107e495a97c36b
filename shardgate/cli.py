"""The ``shardgate`` command.

Every subcommand imports what it needs lazily, so ``shardgate version`` stays instant. No input produces a Python
traceback: shardgate errors print their message and exit 2, bad usage exits 2 (argparse), Ctrl-C exits 130, and a
bug prints one line naming it (exit 70) unless ``SHARDGATE_DEBUG=1`` asks for the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 2, 70, 130


def _cmd_version(args: argparse.Namespace) -> int:
    import platform

    import sqlglot

    import cython_ext
    from shardgate import __version__

    print(f"shardgate {__version__}")
    print(f"implementation: {cython_ext.IMPLEMENTATION}")
    print(f"python: {platform.python_version()}")
    print(f"sqlglot: {sqlglot.__version__}")
    return EXIT_OK


def _add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="print the version and whether the Cython core is in use")
    p.set_defaults(func=_cmd_version)

    from shardgate import commands

    commands.register(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shardgate",
        description="A Vitess-style distributed SQL shard router and online migration service.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from sharding.errors import ShardgateError

    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ShardgateError as exc:
        problems = getattr(exc, "problems", None) or [exc.message]
        for line in problems:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing more to say.
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("SHARDGATE_DEBUG") == "1":
            raise
        print(f"shardgate: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
