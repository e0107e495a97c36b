"""The MySQL wire-protocol frontend: clients speak MySQL to shardgate (the mysql CLI, sysbench, PyMySQL, aiomysql,
mysql-connector), and the gateway routes their statements to the shards.

Layout, by direction of traffic (PgDog's habit): ``constants`` (flags and codes), ``packets`` (framing and one
dataclass per packet), ``columns`` and ``binary`` (values in the text and binary protocols), ``auth`` (plugins, RSA
keys), ``protocol`` (the sans-I/O state machine), ``sysvars`` (what clients ask on connect), ``commands`` (running
commands against a gateway session, with ``local`` for the statements answered here and ``prepared`` for prepared
statements) and ``server`` (asyncio glue: ``start_mysql_listener``).
"""
from typing import Any

__all__ = ["MysqlListener", "start_mysql_listener"]


def __getattr__(name: str) -> Any:
    # Lazy: the packet and protocol modules are used (and unit-tested) without the gateway and the engine.
    if name in __all__:
        from router.frontend.mysql import server

        return getattr(server, name)
    raise AttributeError(name)
