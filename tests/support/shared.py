"""Where the shared test vectors live: ``$SHARDGATE_SHARED`` or ``../shared`` beside the checkout.

Tests read the vectors in place; they are never copied into the project.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    env = os.environ.get("SHARDGATE_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@functools.cache
def load_vectors(name: str) -> Any:
    """``load_vectors("vitess_vindex_vectors")`` -> the parsed JSON document."""
    path = shared_dir() / "vectors" / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"shared vectors not found at {path}; set SHARDGATE_SHARED to the shared/ folder")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)
