"""Build for shardgate: Python packages plus the Cython hot path in cython_ext/.

Every ``cython_ext/*.pyx`` becomes an extension module ``cython_ext.<name>``; its pure-Python twin lives in
``cython_ext/pure/<name>.py``. When the C build is impossible (no compiler, no Cython) the install still succeeds
and ``cython_ext`` uses the twins, unless ``SHARDGATE_REQUIRE_CYTHON=1`` makes a failed build an error (CI sets it
so the twin tests always compare compiled code with its twin).

Build knobs (uvloop habit): ``SHARDGATE_DEBUG=1`` builds with line tracing, annotation HTML and the
``SHARDGATE_DEBUG`` C macro; ``make debug`` sets it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
REQUIRE_CYTHON = os.environ.get("SHARDGATE_REQUIRE_CYTHON") == "1"
DEBUG = os.environ.get("SHARDGATE_DEBUG") == "1"


def _extensions() -> list:
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_CYTHON:
            raise
        print("shardgate: Cython not available, using the pure-Python twins", file=sys.stderr)
        return []
    from setuptools import Extension

    macros = [("SHARDGATE_DEBUG", "1" if DEBUG else "0")]
    if DEBUG:
        macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    cflags = ["-O0", "-g"] if DEBUG else ["-O3"]
    exts = [
        Extension(
            f"cython_ext.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            define_macros=macros,
            extra_compile_args=cflags,
        )
        for pyx in sorted((HERE / "cython_ext").glob("*.pyx"))
    ]
    directives = {
        "language_level": "3",
        "boundscheck": DEBUG,
        "wraparound": False,
        "cdivision": True,
        "embedsignature": True,
    }
    if DEBUG:
        directives["linetrace"] = True
    return cythonize(exts, compiler_directives=directives, annotate=DEBUG, quiet=True)


class OptionalBuildExt(build_ext):
    """Falls back to the pure-Python twins when compiling fails, unless the build is required."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing: the twins still work
            if REQUIRE_CYTHON:
                raise
            print(f"shardgate: C build failed ({exc}); using the pure-Python twins", file=sys.stderr)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE_CYTHON:
                raise
            print(f"shardgate: building {ext.name} failed ({exc}); its twin is used", file=sys.stderr)


setup(
    name="shardgate",
    version="0.1.0",
    description="A Vitess-style distributed SQL shard router and online migration service",
    python_requires=">=3.11",
    packages=find_packages(include=["router*", "sharding*", "replication*", "cython_ext*", "shardgate*",
                                    "operator_manifests*"]),
    package_data={
        "cython_ext": ["*.pyx", "*.pxd", "*.pyi", "py.typed", "data/*"],
        "shardgate.demo": ["*.json", "*.sql"],
    },
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    install_requires=[
        "asyncpg>=0.29,<0.33",
        "aiomysql>=0.2,<0.4",
        "PyMySQL>=1.1,<2",
        "sqlglot>=30.17,<31",
        "sqlglotc>=30.17,<31; platform_python_implementation == 'CPython'",
        "uvloop>=0.19,<0.24; sys_platform != 'win32'",
        "PyYAML>=6,<7",
        "prometheus-client>=0.20,<1",
        "rich>=13,<15",
        "cryptography>=41",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-asyncio>=0.23,<2",
            "pytest-timeout>=2.3,<3",
            "hypothesis>=6.100,<7",
            "pycryptodome>=3.20,<5",
            "xxhash>=3.4,<5",
            "testcontainers>=4.4,<5",
            "psycopg[binary]>=3.1,<4",
            "mysql-connector-python>=8.0",
            "SQLAlchemy>=2,<3",
            "ruff>=0.5",
            "mypy>=1.10",
            "import-linter>=2.0,<3",
        ],
    },
    entry_points={"console_scripts": ["shardgate = shardgate.cli:main"]},
    zip_safe=False,
)
