"""``shardgate demo``: a local sharded cluster on real servers, behind the router, and a tour of it.

It starts one local server per shard — PostgreSQL for keyspaces ``customer`` (sharded ``-80``/``80-`` by ``hash``
on customer_id) and ``commerce`` (unsharded: sequences, the lookup table and the product reference source),
MariaDB for the same pair as ``customer_mysql`` and ``commerce_mysql`` — applies the sample schema, loads sample
rows where their keyspace ids place them, and runs the router in this process (``router.serve.serve``) on
127.0.0.1:15432 (PostgreSQL) and 127.0.0.1:15306 (MySQL) with user ``demo``/``demo``. The tour then runs real
queries through both protocols. Everything lives in a temp dir and is removed on exit (Ctrl-C or SIGTERM).

Modules: ``data`` (what the cluster holds; pure), ``cluster`` (the servers), ``runner`` (phases, signals,
router), ``tour`` (the clients).
"""
from __future__ import annotations

from shardgate.demo.runner import run_demo

__all__ = ["run_demo"]
