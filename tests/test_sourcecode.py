"""Source checks that run with the suite (asyncpg's habit): lint and the layer contracts."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_ruff() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers() -> None:
    result = _run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_implementation_is_cython_under_ci() -> None:
    import cython_ext

    if os.environ.get("CI") == "true":
        assert cython_ext.IMPLEMENTATION == "cython", "CI requires the compiled core; the build fell back to the twins"
    assert cython_ext.IMPLEMENTATION in {"cython", "python"}
