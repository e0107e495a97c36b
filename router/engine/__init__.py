"""The engine: executes plans against shards, streaming, with per-session transactions.

    from router.engine import run, Session, ExecutionContext

``run(bound_plan, ctx, snapshot)`` executes one bound plan (``router.engine.run``); ``ExecutionContext`` is its
only I/O (``router.engine.context``; ``PoolContext`` over the backend pools, a recording fake in the unit tests);
``Session`` holds what a client session needs (keyspace, settings, the transaction: ``router.engine.session``).
One module per primitive's execution: ``route``, ``merge_sort``, ``limit``, ``sort``, ``aggregate``, ``distinct``,
``project``, ``join``, ``subquery``, ``concatenate``, ``send``, ``dml``, ``special``, ``vindex_lookup``.
"""
from router.engine.context import ExecutionContext, Limits
from router.engine.run import Execution, run
from router.engine.session import Result, Session

__all__ = ["Execution", "ExecutionContext", "Limits", "Result", "Session", "run"]
