"""The compiled module of a Cython/pure twin pair, for tests that run one body on both (uvloop's habit)."""
from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def load_compiled(name: str) -> ModuleType:
    """``cython_ext.<name>`` as built from its .pyx: a test failure under CI, a skip elsewhere, when absent."""
    try:
        return importlib.import_module(f"cython_ext.{name}")
    except ImportError as exc:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"cython_ext.{name} is not built, and CI requires the compiled module: {exc}")
        pytest.skip(f"cython_ext.{name} is not built ({exc})")
