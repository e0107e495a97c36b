"""Sessions over fake connections: settings, autocommit, implicit transactions for multi-shard writes."""
from __future__ import annotations

from typing import Any

import pytest

from router.engine.context import Limits
from router.engine.session import Session
from router.planner import Planner
from sharding.errors import InvalidValueError, TransactionError, UnsupportedError
from sharding.snapshot import ClusterSnapshot
from tests.unit.engine.test_transaction import FakePools


class Host:
    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.planner = Planner()
        self.pools = FakePools()
        self.limits = Limits()
        self.coordinator: Any = None
        self._snapshot = snapshot

    @property
    def snapshot(self) -> ClusterSnapshot:
        return self._snapshot

    def backend_dialect(self, keyspace: str) -> str:
        return "mysql"

    async def apply_vschema_ddl(self, statement: Any, keyspace: str) -> list[str]:
        return []


@pytest.fixture
def host(snapshot: ClusterSnapshot) -> Host:
    return Host(snapshot)


def tx_lines(host: Host) -> list[str]:
    return [line for line in host.pools.log if not line.startswith("execute")]


async def test_autocommit_write_on_two_shards_runs_in_an_implicit_transaction(host: Host) -> None:
    s = Session(host, "mysql", "customer")  # type: ignore[arg-type]
    result = await s.execute("UPDATE customer SET name = 'x' WHERE customer_id IN (1, 4)")
    assert result.rows_affected == 2
    assert sorted(tx_lines(host)) == ["begin customer/-80", "begin customer/80-", "commit customer/-80",
                                      "commit customer/80-", "release customer/-80", "release customer/80-"]
    assert not s.in_transaction


async def test_explicit_transaction_spans_statements(host: Host) -> None:
    s = Session(host, "mysql", "customer")  # type: ignore[arg-type]
    await s.execute("BEGIN")
    await s.execute("UPDATE customer SET name = 'x' WHERE customer_id = 1")
    await s.execute("UPDATE customer SET name = 'y' WHERE customer_id = 1")
    assert tx_lines(host) == ["begin customer/-80"]
    await s.execute("COMMIT")
    assert tx_lines(host) == ["begin customer/-80", "commit customer/-80", "release customer/-80"]


async def test_single_mode_violation_rolls_back_and_leaves_the_session_usable(host: Host) -> None:
    s = Session(host, "mysql", "customer")  # type: ignore[arg-type]
    await s.execute("SET transaction_mode = 'single'")
    await s.execute("BEGIN")
    await s.execute("UPDATE customer SET name = 'x' WHERE customer_id = 1")
    with pytest.raises(TransactionError, match="single"):
        await s.execute("UPDATE customer SET name = 'x' WHERE customer_id = 4")
    assert not s.in_transaction
    assert "rollback customer/-80" in host.pools.log
    with pytest.raises(TransactionError, match="single"):  # autocommit, but the write needs two shards
        await s.execute("UPDATE customer SET name = 'x' WHERE customer_id IN (1, 4)")


async def test_autocommit_off_opens_a_transaction_at_the_first_statement(host: Host) -> None:
    s = Session(host, "mysql", "customer")  # type: ignore[arg-type]
    await s.execute("SET autocommit = 0")
    await s.execute("SELECT name FROM customer WHERE customer_id = 1")
    assert s.in_transaction and tx_lines(host) == ["begin customer/-80"]
    await s.execute("ROLLBACK")
    assert not s.in_transaction


async def test_settings(host: Host) -> None:
    s = Session(host, "mysql", "customer")  # type: ignore[arg-type]
    await s.execute("SET workload = 'olap'")
    assert s.limits().max_rows is None
    await s.execute("SET query_timeout = 1500")
    assert s.limits().query_timeout == 1.5
    await s.execute("SET sql_mode = 'ANSI_QUOTES'")
    assert s.view().fingerprint_flags != 0
    with pytest.raises(InvalidValueError):
        await s.execute("SET transaction_mode = 'sometimes'")
    with pytest.raises(TransactionError, match="twopc"):
        await s.execute("SET transaction_mode = 'twopc'")  # no decision log configured
    with pytest.raises(UnsupportedError):
        await s.execute("SET GLOBAL max_connections = 10")
    result = await s.execute("SET time_zone = '+00:00'")  # replayed on the shards' connections: tried at once
    assert not result.warnings
    assert "settings {'sql_mode': \"''\", 'time_zone': \"'+00:00'\"} customer/-80" in host.pools.log
    assert s.backend.settings == {"sql_mode": "''", "time_zone": "'+00:00'"}  # ANSI_QUOTES is the router's


async def test_use_changes_the_keyspace_of_later_statements(host: Host) -> None:
    s = Session(host, "mysql")  # type: ignore[arg-type]
    await s.execute("USE commerce")
    await s.execute("SELECT sku FROM product")
    assert host.pools.log == ["stream SELECT sku FROM product on commerce/0",  # pooled, no transaction
                              "release commerce/0"]
    assert s.state.keyspace == "commerce"


async def test_vschema_ddl_needs_the_admin_role(host: Host) -> None:
    from types import SimpleNamespace

    from sharding.errors import PermissionDeniedError

    users = {"ops": SimpleNamespace(roles=frozenset({"admin"})), "app": SimpleNamespace(roles=frozenset())}
    host.config = SimpleNamespace(user=users.get)  # type: ignore[attr-defined]
    for user in ("app", "stranger"):
        s = Session(host, "mysql", "customer", user=user)  # type: ignore[arg-type]
        with pytest.raises(PermissionDeniedError, match="admin role"):
            await s.execute("ALTER VSCHEMA ADD TABLE customer.t2")
    admin = Session(host, "mysql", "customer", user="ops")  # type: ignore[arg-type]
    await admin.execute("ALTER VSCHEMA ADD SEQUENCE customer.s")  # reaches the host (which accepts it)
    embedded = Session(host, "mysql", "customer")  # type: ignore[arg-type]
    await embedded.execute("ALTER VSCHEMA ADD SEQUENCE customer.s")
