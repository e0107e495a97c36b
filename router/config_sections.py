"""The router's sections of the cluster config: ``acl:`` (``router.acl_config``) and ``rules:``
(``router.rules``), checked together with the rest of the file by ``sharding.config`` (strict, every problem on a
line of its own, ``FILE: acl.keyspaces.customer[1].read: problem``).

``sharding`` may not import the router, so it only knows the names of these sections; the router hands it their
parsers. Load configs that may hold them through ``load_config`` / ``parse_config`` here (the gateway, ``shardgate
serve`` and RELOAD do); ``sharding.config.load_config`` alone reports such a section as a problem instead of
accepting it unchecked.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from router.acl import Acl
from router.acl_config import check_acl
from router.engine.ops_config import check_buffering, check_consolidation, check_replica_health
from router.rules import Rules, check_rules
from sharding import config as sharding_config
from sharding.config import ClusterConfig, SectionContext, SectionParser
from sharding.yamldoc import DocChecker

__all__ = ["SECTIONS", "acl_of", "load_config", "parse_config", "rules_of"]


def _acl(c: DocChecker, value: Any, path: str, ctx: SectionContext) -> Acl | None:
    return check_acl(c, value, path=path, users=ctx.users, keyspaces=ctx.keyspaces, read_text=ctx.read_text)


def _rules(c: DocChecker, value: Any, path: str, ctx: SectionContext) -> Rules | None:
    return check_rules(c, value, path=path, users=ctx.users, keyspaces=ctx.keyspaces)


SECTIONS: Mapping[str, SectionParser] = {"acl": _acl, "rules": _rules, "consolidation": check_consolidation,
                                         "buffering": check_buffering, "replica_health": check_replica_health}


def load_config(path: str | os.PathLike[str]) -> ClusterConfig:
    """``sharding.config.load_config`` with the router's sections checked too."""
    return sharding_config.load_config(path, sections=SECTIONS)


def parse_config(doc: Any, *, source: str = "cluster.yaml", base_dir: str | os.PathLike[str] | Path | None = None
                 ) -> ClusterConfig:
    """``sharding.config.parse_config`` with the router's sections checked too."""
    return sharding_config.parse_config(doc, source=source, base_dir=base_dir, sections=SECTIONS)


def acl_of(config: ClusterConfig) -> Acl | None:
    """The config's table ACLs; None without an ``acl:`` section (then every user may use every table)."""
    acl = config.sections.get("acl")
    return acl if isinstance(acl, Acl) else None


def rules_of(config: ClusterConfig) -> Rules:
    """The config's query rules (none without a ``rules:`` section)."""
    rules = config.sections.get("rules")
    return rules if isinstance(rules, Rules) else Rules()
