"""Table ACLs, query rules, SHOW SHARDGATE RULES and RELOAD through both real protocols.

One router in this process serves PostgreSQL clients (asyncpg, psycopg) and MySQL clients (PyMySQL,
mysql-connector with server-side prepared statements) over real shards: keyspaces ``customer`` (sharded, two
PostgreSQL servers: customer, corder, salary) and ``commerce`` (unsharded PostgreSQL: product, order_seq), and
``shop`` (unsharded MariaDB: item, secret). The ACL gives each user rights per table (ours and Vitess's
``table_groups`` form); ``ops`` is the user the query rules are about. The matrix runs users x tables x operations
and compares every outcome with what the config says; the tricks try to reach a denied table sideways. Zero escapes:
every denied statement fails with 1142 / 42501, and every allowed one succeeds.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import mysql.connector
import psycopg
import pymysql
import pytest
import yaml

from router.admin_reload import ConfigReloader
from sharding.auth import make_user_entry
from tests.support.backends import DatabaseServer, connected
from tests.support.pg_router import VSCHEMA as PG_VSCHEMA
from tests.support.pg_router import Cluster, RouterProcess, make_cluster

pytestmark = [pytest.mark.backend, pytest.mark.timeout(300)]

PASSWORDS = {"admin": "admin-pw", "app": "app-pw", "reader": "reader-pw", "nobody": "nobody-pw", "ops": "ops-pw",
             "late": "late-pw"}
METHODS = ["scram-sha-256", "mysql_native_password"]

ACL: dict[str, Any] = {
    "groups": {"staff": ["app", "reader"]},
    "keyspaces": {
        "customer": [
            {"name": "salaries", "tables": ["salary"], "read": ["admin", "ops"], "write": ["admin"]},
            {"name": "customers", "tables": ["customer", "corder"], "read": ["admin", "staff", "ops"],
             "write": ["admin", "app", "ops"]},
            {"name": "rest", "tables": ["*"], "read": ["admin"]},
        ],
        "commerce": {"table_groups": [  # Vitess's tableacl form
            {"name": "products", "table_names_or_prefixes": ["product"], "readers": ["admin", "app", "reader", "ops"],
             "writers": ["admin", "app", "ops"]},
            {"name": "sequences", "table_names_or_prefixes": ["order_%"], "readers": ["admin"],
             "writers": ["admin", "app", "ops"]},
        ]},
        "shop": [
            {"tables": ["item"], "read": ["admin", "staff", "ops"], "write": ["admin", "app", "ops"]},
            {"tables": ["secret"], "read": ["admin"], "write": ["admin"]},
        ],
    },
}
RULES: list[dict[str, Any]] = [
    {"name": "ops-in-lists", "match": {"users": ["ops"], "binds": ["len(bind.0) > 3"]}, "action": "deny",
     "message": "IN lists are limited to 3 values"},
    {"name": "ops-no-delete", "match": {"users": ["ops"], "kinds": ["delete"]}, "action": "deny",
     "message": "ops may not delete rows"},
    {"name": "ops-far-away", "match": {"users": ["ops"], "clients": ["10.0.0.0/8"]}, "action": "deny",
     "message": "not from 10/8"},
    {"name": "ops-customers-whole", "match": {"users": ["ops"], "clients": ["127.0.0.0/8"],
                                              "tables": ["customer.customer"], "kinds": ["select"]},
     "action": "allow"},
    {"name": "ops-row-limit", "match": {"users": ["ops"], "kinds": ["select"]}, "row_limit": 2},
    {"name": "ops-timeout", "match": {"users": ["ops"], "sql": "(?i)sleep"}, "timeout_ms": 300},
    {"name": "ops-log-updates", "match": {"users": ["ops"], "kinds": ["update"]}, "log": True},
    {"name": "ops-items-on-replicas", "match": {"users": ["ops"], "tables": ["shop.item"]}, "route": "replica"},
]

# What the ACL above grants (the oracle of the matrix); admin rights come with the admin role only.
GRANTS = {
    "customer.salary": {"read": {"admin", "ops"}, "write": {"admin"}},
    "customer.customer": {"read": {"admin", "app", "reader", "ops"}, "write": {"admin", "app", "ops"}},
    "customer.corder": {"read": {"admin", "app", "reader", "ops"}, "write": {"admin", "app", "ops"}},
    "commerce.product": {"read": {"admin", "app", "reader", "ops"}, "write": {"admin", "app", "ops"}},
    "shop.item": {"read": {"admin", "app", "reader", "ops"}, "write": {"admin", "app", "ops"}},
    "shop.secret": {"read": {"admin"}, "write": {"admin"}},
}
RIGHT_OF = {"select": "read", "insert": "write", "update": "write", "delete": "write", "ddl": "admin"}
MATRIX_USERS = ("admin", "app", "reader", "nobody")

SALARY_SCHEMA = "CREATE TABLE salary (customer_id bigint PRIMARY KEY, amount numeric(12,2))"
SHOP_SCHEMA = [
    "CREATE TABLE item (id BIGINT PRIMARY KEY, name VARCHAR(64))",
    "CREATE TABLE secret (id BIGINT PRIMARY KEY, v VARCHAR(64))",
    "INSERT INTO item VALUES (1, 'a'), (2, 'b'), (3, 'c')",
    "INSERT INTO secret VALUES (1, 'the secret')",
]


def allowed(user: str, table: str, op: str) -> bool:
    right = RIGHT_OF[op]
    if right == "admin":
        return user == "admin"
    return user in GRANTS[table][right]


def config_doc(cluster: Cluster, shop: Any, *, acl: Any = None, rules: Any = None,
               extra_users: tuple[str, ...] = (), replica: Any = None) -> dict[str, Any]:
    doc = dict(cluster.doc)
    doc["users"] = [make_user_entry(name, PASSWORDS[name], ["admin"] if name == "admin" else [], methods=METHODS)
                    for name in ("admin", "app", "reader", "nobody", "ops", *extra_users)]
    var = f"SG_ACLTEST_PW_{shop.port}"
    os.environ[var] = shop.password
    keyspaces = dict(doc["keyspaces"])
    keyspaces["shop"] = {"shards": {"0": {"engine": "mysql", "host": shop.host, "port": shop.port,
                                          "database": shop.database, "user": shop.user, "password_env": var,
                                          }}}
    if replica is not None:  # a copy of the database on the second server, as a "replica": where do reads go
        os.environ[f"{var}_R"] = replica.password
        keyspaces["shop"]["shards"]["0"]["replicas"] = [{"host": replica.host, "port": replica.port,
                                                         "database": replica.database, "user": replica.user,
                                                         "password_env": f"{var}_R"}]
    doc["keyspaces"] = keyspaces
    vschema = {"keyspaces": dict(PG_VSCHEMA["keyspaces"])}
    customer = dict(vschema["keyspaces"]["customer"])
    customer["tables"] = {**customer["tables"],
                          "salary": {"column_vindexes": [{"column": "customer_id", "name": "hash"}]}}
    vschema["keyspaces"]["customer"] = customer
    vschema["keyspaces"]["shop"] = {"sharded": False, "tables": {"item": {}, "secret": {}}}
    doc["vschema"] = vschema
    doc["acl"] = ACL if acl is None else acl
    doc["rules"] = RULES if rules is None else rules
    return doc


def write_config(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


class Router:
    """Gateway + PostgreSQL and MySQL listeners on free ports, loaded from a config file; RELOAD re-reads it."""

    def __init__(self, path: Path, doc: dict[str, Any], cluster: Cluster, shop: Any, replica: Any) -> None:
        self.replica = replica
        self.path = path
        self.doc = doc
        self.cluster = cluster
        self.shop = shop
        self.gateway: Any = None
        self.pg: Any = None
        self.mysql: Any = None

    async def start(self) -> Router:
        from router.frontend.mysql.server import start_mysql_listener
        from router.frontend.postgres.server import FrontendOptions, PgFrontend
        from router.gateway import Gateway

        self.gateway = await Gateway(self.path).start()
        config = self.gateway.config
        self.pg = await PgFrontend(self.gateway, FrontendOptions(port=0), config.users).start()
        self.mysql = await start_mysql_listener(self.gateway, config, host="127.0.0.1", port=0)
        reloader = ConfigReloader(self.gateway, self.path)
        reloader.attach_frontend(self.pg)
        reloader.attach_frontend(self.mysql)
        self.gateway.reloader = reloader
        return self

    async def close(self) -> None:
        await self.pg.close(5)
        await self.mysql.drain(timeout=5)
        await self.gateway.close()

    async def apg(self, user: str, database: str = "customer") -> asyncpg.Connection:
        return await asyncpg.connect(host="127.0.0.1", port=self.pg.port, user=user, password=PASSWORDS[user],
                                     database=database)

    async def psy(self, user: str, database: str = "customer") -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(host="127.0.0.1", port=self.pg.port, user=user,
                                                     password=PASSWORDS[user], dbname=database, autocommit=True)

    def my(self, user: str, database: str = "shop", **kw: Any) -> pymysql.Connection[Any]:
        return pymysql.connect(host="127.0.0.1", port=self.mysql.port, user=user, password=PASSWORDS[user],
                               database=database, autocommit=True, **kw)

    def my_prepared(self, user: str, database: str = "shop") -> Any:
        return mysql.connector.connect(host="127.0.0.1", port=self.mysql.port, user=user, password=PASSWORDS[user],
                                       database=database, autocommit=True, use_pure=True, ssl_disabled=True,
                                       auth_plugin="mysql_native_password")


@pytest.fixture(scope="module")
async def router(pg_cluster: list[DatabaseServer], mysql_cluster: list[DatabaseServer],
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Router]:
    cluster = await make_cluster(pg_cluster)
    for key in ("customer/-80", "customer/80-"):
        async with connected(cluster.dsns[key]) as conn:
            from sharding import db

            await db.execute(conn, SALARY_SCHEMA)
    shop_name = f"acl_{os.getpid()}_{int(time.time()) % 100000}"
    shop = await asyncio.to_thread(mysql_cluster[0].create_database, shop_name)
    replica = await asyncio.to_thread(mysql_cluster[-1].create_database, shop_name + "_r")
    for dsn in (shop, replica):
        conn = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                               database=dsn.database, autocommit=True)
        with conn.cursor() as cur:
            for sql in SHOP_SCHEMA:
                cur.execute(sql)
        conn.close()
    path = tmp_path_factory.mktemp("acl") / "cluster.yaml"
    doc = config_doc(cluster, shop, replica=replica)
    write_config(path, doc)
    r = await Router(path, doc, cluster, shop, replica).start()
    try:
        await _load_data(r)
    except BaseException:
        await r.close()
        raise
    yield r
    assert r.pg.metrics.internal_errors == 0
    await r.close()
    await asyncio.to_thread(cluster.drop)
    with contextlib.suppress(Exception):
        await asyncio.to_thread(mysql_cluster[0].drop_database, shop_name)
        await asyncio.to_thread(mysql_cluster[-1].drop_database, shop_name + "_r")


async def _load_data(r: Router) -> None:
    admin = await r.apg("admin")
    try:
        for i in range(1, 6):
            await admin.execute(f"INSERT INTO customer (customer_id, name) VALUES ({i}, 'c{i}')")
            await admin.execute(f"INSERT INTO salary (customer_id, amount) VALUES ({i}, {i}000)")
            await admin.execute(f"INSERT INTO corder (order_id, customer_id, sku, qty) VALUES ({i}, {i}, 'SKU-1', 1)")
        await admin.execute("INSERT INTO commerce.product (sku, description, price) VALUES ('SKU-3', 'Mouse', 9.90)")
    finally:
        await admin.close()


# --- helpers: run one statement, tell a permission denial from anything else ------------------------------------
class Denied(Exception):
    pass


async def pg_run(conn: asyncpg.Connection, sql: str, *, prepared: bool = False) -> Any:
    try:
        if prepared:
            return await conn.fetch(sql)
        return await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == "42501":
            raise Denied(str(exc)) from None
        raise


async def psy_run(conn: psycopg.AsyncConnection[Any], sql: str, params: Any = None) -> Any:
    try:
        cur = await conn.execute(sql, params)
        return await cur.fetchall() if cur.description else cur.rowcount
    except psycopg.Error as exc:
        if exc.sqlstate == "42501":
            raise Denied(str(exc)) from None
        raise


def my_run(conn: Any, sql: str, params: Any = None) -> Any:
    try:
        cur = conn.cursor(prepared=True) if isinstance(conn, mysql.connector.MySQLConnection) else conn.cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else cur.rowcount
        finally:
            with contextlib.suppress(Exception):
                cur.close()
    except (pymysql.err.MySQLError, mysql.connector.Error) as exc:
        errno = exc.args[0] if isinstance(exc, pymysql.err.MySQLError) else exc.errno
        if errno == 1142:
            raise Denied(str(exc)) from None
        raise


_ids = itertools.count(1000)

PG_OPS = {
    "customer.customer": {"select": "SELECT * FROM customer LIMIT 1",
                          "insert": "INSERT INTO customer (customer_id, name) VALUES ({id}, 'm')",
                          "update": "UPDATE customer SET name = name WHERE customer_id = -1",
                          "delete": "DELETE FROM customer WHERE customer_id = -1",
                          "ddl": "CREATE INDEX IF NOT EXISTS acl_ix_customer ON customer (name)"},
    "customer.corder": {"select": "SELECT * FROM corder LIMIT 1",
                        "insert": "INSERT INTO corder (order_id, customer_id, sku, qty) VALUES ({id}, 1, 'x', 1)",
                        "update": "UPDATE corder SET qty = qty WHERE customer_id = -1",
                        "delete": "DELETE FROM corder WHERE customer_id = -1",
                        "ddl": "CREATE INDEX IF NOT EXISTS acl_ix_corder ON corder (sku)"},
    "customer.salary": {"select": "SELECT * FROM salary LIMIT 1",
                        "insert": "INSERT INTO salary (customer_id, amount) VALUES ({id}, 1)",
                        "update": "UPDATE salary SET amount = amount WHERE customer_id = -1",
                        "delete": "DELETE FROM salary WHERE customer_id = -1",
                        "ddl": "CREATE INDEX IF NOT EXISTS acl_ix_salary ON salary (amount)"},
    "commerce.product": {"select": "SELECT * FROM product LIMIT 1",
                         "insert": "INSERT INTO product (sku, description, price) VALUES ('M{id}', 'm', 1)",
                         "update": "UPDATE product SET price = price WHERE sku = 'none'",
                         "delete": "DELETE FROM product WHERE sku = 'none'",
                         "ddl": "CREATE INDEX IF NOT EXISTS acl_ix_product ON product (price)"},
}
MY_OPS = {
    "shop.item": {"select": "SELECT * FROM item LIMIT 1",
                  "insert": "INSERT INTO item (id, name) VALUES ({id}, 'm')",
                  "update": "UPDATE item SET name = name WHERE id = -1",
                  "delete": "DELETE FROM item WHERE id = -1",
                  "ddl": "CREATE INDEX IF NOT EXISTS acl_ix_item ON item (name)"},
    "shop.secret": {"select": "SELECT * FROM secret LIMIT 1",
                    "insert": "INSERT INTO secret (id, v) VALUES ({id}, 'm')",
                    "update": "UPDATE secret SET v = v WHERE id = -1",
                    "delete": "DELETE FROM secret WHERE id = -1",
                    "ddl": "CREATE INDEX IF NOT EXISTS acl_ix_secret ON secret (v)"},
}


# --- the matrix ---------------------------------------------------------------------------------------------------
async def test_matrix_postgres_clients(router: Router) -> None:
    """users x tables x operations through asyncpg (simple and extended protocol) and psycopg."""
    escapes, wrong = [], []
    for user, table in itertools.product(MATRIX_USERS, PG_OPS):
        apg = await router.apg(user, table.partition(".")[0])  # each table's keyspace: the describer asks its shard
        psy = await router.psy(user, table.partition(".")[0])
        try:
            for ops in (PG_OPS[table],):
                for op, template in ops.items():
                    for client in ("asyncpg", "asyncpg-prepared", "psycopg"):
                        if client == "asyncpg-prepared" and op == "ddl":
                            continue
                        sql = template.format(id=next(_ids))
                        try:
                            if client == "psycopg":
                                await psy_run(psy, sql)
                            else:
                                await pg_run(apg, sql, prepared=client == "asyncpg-prepared")
                            outcome = True
                        except Denied as exc:
                            outcome = False
                            if table not in str(exc):
                                wrong.append((user, client, sql, f"message does not name {table}: {exc}"))
                        if outcome != allowed(user, table, op):
                            (escapes if outcome else wrong).append((user, client, sql, outcome))
        finally:
            await apg.close()
            await psy.close()
    assert escapes == [], f"statements that should have been denied ran: {escapes}"
    assert wrong == [], f"statements refused that should have run (or unclear denials): {wrong}"


async def test_matrix_mysql_clients(router: Router) -> None:
    """users x tables x operations through PyMySQL (text protocol) and mysql-connector (prepared statements)."""
    escapes, wrong = [], []
    for user in MATRIX_USERS:
        text = await asyncio.to_thread(router.my, user)
        prepared = await asyncio.to_thread(router.my_prepared, user)
        try:
            for table, ops in MY_OPS.items():
                for op, template in ops.items():
                    for client, conn in (("pymysql", text), ("prepared", prepared)):
                        sql = template.format(id=next(_ids))
                        try:
                            await asyncio.to_thread(my_run, conn, sql)
                            outcome = True
                        except Denied as exc:
                            outcome = False
                            if table not in str(exc):
                                wrong.append((user, client, sql, f"message does not name {table}: {exc}"))
                        if outcome != allowed(user, table, op):
                            (escapes if outcome else wrong).append((user, client, sql, outcome))
        finally:
            text.close()
            prepared.close()
    assert escapes == [], f"statements that should have been denied ran: {escapes}"
    assert wrong == [], f"statements refused that should have run (or unclear denials): {wrong}"


# --- tricks: every one must be refused with a permission error -----------------------------------------------------
PG_TRICKS = [
    "SELECT * FROM SALARY",
    'SELECT * FROM "salary"',
    "SELECT * FROM customer.salary",
    'SELECT * FROM "customer"."salary"',
    "/* harmless */ SELECT amount FROM salary -- comment",
    "SELECT amount FROM salary WHERE customer_id = 1",  # a point read: the single-shard fast path
    "SELECT * FROM customer WHERE customer_id IN (SELECT customer_id FROM salary)",
    "SELECT c.name, s.amount FROM customer c JOIN salary s ON s.customer_id = c.customer_id WHERE c.customer_id = 1",
    "SELECT name FROM customer WHERE EXISTS (SELECT 1 FROM salary s WHERE s.customer_id = customer.customer_id)",
    "SELECT name FROM customer UNION ALL SELECT amount::text FROM salary",
    "WITH s AS (SELECT * FROM salary) SELECT * FROM s",
    "SELECT * FROM (SELECT * FROM salary) AS t",
    "VEXPLAIN QUERIES SELECT * FROM salary",
    "VEXPLAIN PLAN SELECT * FROM salary",
    "UPDATE salary SET amount = 0 WHERE customer_id = 1",
    "DELETE FROM salary WHERE customer_id = 1",
    "INSERT INTO salary (customer_id, amount) VALUES (99, 1)",
    "INSERT INTO customer (customer_id, name) SELECT customer_id, 'x' FROM salary WHERE customer_id = 1",
    "DROP TABLE salary",
    "ALTER TABLE customer ADD COLUMN sneaky int",
    "CREATE TABLE sneaky (id int)",
    "TRUNCATE salary",
    "ALTER VSCHEMA ON customer.salary ADD VINDEX h2(amount) USING hash",
    "SELECT column_name FROM information_schema.columns WHERE table_name = 'salary'",
    "SELECT column_name FROM information_schema.columns",
    "SELECT relname FROM pg_catalog.pg_class WHERE relname = 'salary'",
    "SELECT relname FROM pg_class",
    "SELECT attname FROM pg_attribute WHERE attrelid = 'salary'::regclass",
    "SELECT query_to_xml('select * from salary', true, true, '')",
    "SELECT to_regclass('salary')",
    "SELECT * FROM pg_catalog.pg_stat_user_tables",
    # psql's \d: constructs the planner does not read, so the frontend sends it as written (the catalog path)
    "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON "
    "n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(salary)$' COLLATE pg_catalog.default",
    "VACUUM salary",  # maintenance statements go to every shard as written
    "ANALYZE salary",
]


async def test_tricks_postgres(router: Router) -> None:
    escapes = []
    apg = await router.apg("reader")
    psy = await router.psy("reader")
    try:
        for sql in PG_TRICKS:
            for client in ("asyncpg", "asyncpg-prepared", "psycopg", "psycopg-param"):
                try:
                    if client == "psycopg":
                        await psy_run(psy, sql)
                    elif client == "psycopg-param":
                        # the extended protocol with a bind value (Parse/Bind/Describe/Execute)
                        await psy_run(psy, f"SELECT * FROM ({sql}) AS q WHERE %s = 1" if sql.startswith("SELECT")
                                      else sql, (1,) if sql.startswith("SELECT") else None)
                    else:
                        await pg_run(apg, sql, prepared=client == "asyncpg-prepared")
                    escapes.append((client, sql))
                except Denied:
                    pass
                except (asyncpg.PostgresError, psycopg.Error) as exc:
                    # Refused for another reason first (syntax the router does not take): no data left either way,
                    # but the permission check must still be what stops the plain form.
                    if client in ("asyncpg", "psycopg"):
                        escapes.append((client, sql, f"not a permission error: {exc!r}"))
        # multi-statement: the first runs, the second is refused, nothing after it runs
        with pytest.raises(asyncpg.PostgresError) as info:
            await apg.execute("SELECT 1; SELECT * FROM salary; SELECT 2")
        assert info.value.sqlstate == "42501" and "customer.salary" in str(info.value)
        # COPY out of a denied table, and of a query on it
        async def sink(data: bytes) -> None:
            raise AssertionError("COPY sent rows of a denied table")

        with pytest.raises(asyncpg.PostgresError) as info:
            await apg.copy_from_table("salary", output=sink)
        assert info.value.sqlstate == "42501"
        with pytest.raises(asyncpg.PostgresError) as info:
            await apg.copy_from_query("SELECT * FROM salary", output=sink)
        assert info.value.sqlstate == "42501"
        # a prepared statement of a denied table is refused at Parse/Describe already (no columns leak)
        with pytest.raises(asyncpg.PostgresError) as info:
            await apg.prepare("SELECT * FROM salary WHERE customer_id = $1")
        assert info.value.sqlstate == "42501"
        # reading what is allowed still works, catalog included when pinned to a readable table
        assert len(await apg.fetch("SELECT * FROM customer WHERE customer_id <= 5")) == 5
        cols = await apg.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'customer'")
        assert "name" in {r[0] for r in cols}
    finally:
        await apg.close()
        await psy.close()
    assert escapes == []


MY_TRICKS = [
    "SELECT * FROM SECRET",
    "SELECT * FROM `secret`",
    "SELECT * FROM shop.secret",
    "SELECT * FROM `shop`.`secret`",
    "/* hi */ SELECT v FROM secret # comment",
    "SELECT v FROM secret WHERE id = 1",
    "/*!50000 SELECT v FROM secret */",
    "SELECT /*!50000 v FROM secret */",
    "SELECT * FROM item WHERE id IN (SELECT id FROM secret)",
    "SELECT i.name, s.v FROM item i JOIN secret s ON s.id = i.id",
    "SELECT name FROM item UNION SELECT v FROM secret",
    "SELECT * FROM (SELECT * FROM secret) AS t",
    "UPDATE secret SET v = 'x' WHERE id = 1",
    "DELETE FROM secret",
    "INSERT INTO item (id, name) SELECT id + 100, v FROM secret",
    "DROP TABLE secret",
    "ALTER TABLE item ADD COLUMN sneaky INT",
    "ALTER VSCHEMA ON shop.secret ADD VINDEX h(id) USING hash",
    "SHOW COLUMNS FROM secret",
    "DESCRIBE secret",
    "SHOW CREATE TABLE secret",
    "SELECT column_name FROM information_schema.columns WHERE table_name = 'secret'",
    "SELECT table_name FROM information_schema.tables",
    "VEXPLAIN QUERIES SELECT * FROM secret",
    "SELECT * FROM mysql.user",
]


async def test_tricks_mysql(router: Router) -> None:
    escapes = []
    text = await asyncio.to_thread(router.my, "reader", client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    prepared = await asyncio.to_thread(router.my_prepared, "reader")
    try:
        for sql in MY_TRICKS:
            for client, conn in (("pymysql", text), ("prepared", prepared)):
                try:
                    await asyncio.to_thread(my_run, conn, sql)
                    escapes.append((client, sql))
                except Denied:
                    pass
                except (pymysql.err.MySQLError, mysql.connector.Error) as exc:
                    if client == "pymysql":
                        escapes.append((client, sql, f"not a permission error: {exc!r}"))
        # multi-statement: the second statement is refused
        def multi() -> Any:
            with text.cursor() as cur:
                cur.execute("SELECT 1; SELECT * FROM secret")
                while cur.nextset():
                    pass
        with pytest.raises(pymysql.err.OperationalError) as info:
            await asyncio.to_thread(multi)
        assert info.value.args[0] == 1142 and "shop.secret" in info.value.args[1]
        # SHOW TABLES lists only the tables the user may read
        tables = await asyncio.to_thread(my_run, text, "SHOW TABLES")
        assert sorted(r[0] for r in tables) == ["item"]
        assert len(await asyncio.to_thread(my_run, text, "SELECT * FROM item")) >= 3
    finally:
        text.close()
        prepared.close()
    assert escapes == []


# --- query rules -----------------------------------------------------------------------------------------------
async def test_rules_postgres(router: Router, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shardgate.rules")
    ops = await router.apg("ops")
    try:
        with pytest.raises(asyncpg.PostgresError) as info:  # deny with a message: a bind condition
            await ops.fetch("SELECT * FROM customer WHERE customer_id IN (1, 2, 3, 4)")
        assert info.value.sqlstate == "42501" and "IN lists are limited to 3 values" in str(info.value)
        assert len(await ops.fetch("SELECT * FROM customer WHERE customer_id IN (1, 2, 3)")) == 3
        with pytest.raises(asyncpg.PostgresError) as info:
            await ops.execute("DELETE FROM corder WHERE customer_id = 5")
        assert info.value.sqlstate == "42501" and "ops may not delete rows" in str(info.value)
        # allow stops the evaluation: no row limit on customer (from loopback); the limit applies elsewhere
        assert len(await ops.fetch("SELECT * FROM customer WHERE customer_id <= 5")) == 5
        with pytest.raises(asyncpg.PostgresError) as info:
            await ops.fetch("SELECT * FROM corder WHERE customer_id <= 5")
        assert "Row count exceeded 2" in str(info.value)
        assert len(await ops.fetch("SELECT * FROM corder ORDER BY order_id LIMIT 2")) == 2
        with pytest.raises(asyncpg.PostgresError) as info:  # the unsharded keyspace (single-shard fast path)
            await ops.fetch("SELECT * FROM commerce.product")
        assert "Row count exceeded 2" in str(info.value)
        # timeout
        started = time.monotonic()
        with pytest.raises(asyncpg.PostgresError) as info:
            await ops.fetch("SELECT pg_sleep(2), sku FROM commerce.product WHERE sku = 'SKU-1'")
        assert time.monotonic() - started < 1.8, "the rule's 300 ms timeout did not stop the statement"
        # log: the fingerprint, never the literal
        await ops.execute("UPDATE customer SET name = 'top-secret-literal' WHERE customer_id = 1")
        records = [r for r in caplog.records if r.name == "shardgate.rules" and getattr(r, "event", "") ==
                   "query_rule"]
        assert records, "the update was not logged"
        message = records[-1].getMessage()
        assert "ops-log-updates" in message and "UPDATE customer SET name = :v1" in message
        assert all("top-secret-literal" not in r.getMessage() and "top-secret-literal" not in str(r.__dict__)
                   for r in caplog.records)
        # SHOW SHARDGATE RULES: admin only
        with pytest.raises(asyncpg.PostgresError) as info:
            await ops.fetch("SHOW SHARDGATE RULES")
        assert info.value.sqlstate == "42501"
    finally:
        await ops.close()
    admin = await router.apg("admin")
    try:
        rows = await admin.fetch("SHOW SHARDGATE RULES")
        assert [r[1] for r in rows] == [r["name"] for r in RULES]
        assert "deny" in rows[0][3] and "row_limit=2" in rows[4][3] and rows[7][3] == "route=replica"
        # the admin is not limited by the ops rules
        assert len(await admin.fetch("SELECT * FROM corder WHERE customer_id <= 5")) >= 5
    finally:
        await admin.close()


async def test_rules_mysql(router: Router) -> None:
    ops = await asyncio.to_thread(router.my, "ops")
    prepared = await asyncio.to_thread(router.my_prepared, "ops")
    try:
        for conn in (ops, prepared):
            with pytest.raises(Denied, match="IN lists are limited to 3 values"):
                await asyncio.to_thread(my_run, conn, "SELECT * FROM item WHERE id IN (1, 2, 3, 4)")
            with pytest.raises(Denied, match="ops may not delete rows"):
                await asyncio.to_thread(my_run, conn, "DELETE FROM item WHERE id = -1")
            with pytest.raises((pymysql.err.MySQLError, mysql.connector.Error), match="Row count exceeded 2"):
                await asyncio.to_thread(my_run, conn, "SELECT * FROM item")
            assert len(await asyncio.to_thread(my_run, conn, "SELECT * FROM item ORDER BY id LIMIT 2")) == 2
        # route: replica asks for the replicas for reads outside a transaction, never for writes or transactions
        # (the pools then pick a healthy replica or fall back to the primary: the health checker bans this copy)
        pools = router.gateway.pools
        asked: list[str] = []
        real_pool = pools.pool

        def recording(target: Any, *args: Any, **kw: Any) -> Any:
            if getattr(target, "keyspace", target) == "shop":
                asked.append(getattr(target, "role", kw.get("role", args[1] if len(args) > 1 else "primary")))
            return real_pool(target, *args, **kw)

        pools.pool = recording
        try:
            assert len(await asyncio.to_thread(my_run, ops, "SELECT * FROM item WHERE id = 1")) == 1
            assert asked == ["replica"]
            asked.clear()
            await asyncio.to_thread(my_run, ops, "UPDATE item SET name = name WHERE id = 1")
            await asyncio.to_thread(my_run, ops, "BEGIN")
            await asyncio.to_thread(my_run, ops, "SELECT * FROM item WHERE id = 1")
            await asyncio.to_thread(my_run, ops, "COMMIT")
            assert asked and set(asked) == {"primary"}
        finally:
            del pools.pool
        started = time.monotonic()
        with pytest.raises(pymysql.err.MySQLError):
            await asyncio.to_thread(my_run, ops, "SELECT SLEEP(2), name FROM item WHERE id = 1")
        assert time.monotonic() - started < 1.8
        with pytest.raises(Denied):
            await asyncio.to_thread(my_run, ops, "SHOW SHARDGATE RULES")
    finally:
        ops.close()
        prepared.close()
    admin = await asyncio.to_thread(router.my, "admin")
    try:
        rows = await asyncio.to_thread(my_run, admin, "SHOW SHARDGATE RULES")
        assert [r[1] for r in rows] == [r["name"] for r in RULES]
    finally:
        admin.close()


# --- RELOAD ------------------------------------------------------------------------------------------------------
async def test_reload_applies_to_open_connections_on_both_protocols(router: Router) -> None:
    doc = router.doc
    reader_pg = await router.apg("reader")
    reader_my = await asyncio.to_thread(router.my, "reader")
    admin_pg = await router.apg("admin")
    admin_my = await asyncio.to_thread(router.my, "admin")
    try:
        with pytest.raises(asyncpg.PostgresError):
            await reader_pg.fetch("SELECT * FROM salary WHERE customer_id = 1")
        with pytest.raises(Denied):
            await asyncio.to_thread(my_run, reader_my, "SELECT * FROM secret")
        # grant reader salary and secret, add a user and a rule; RELOAD over PostgreSQL
        acl = yaml.safe_load(yaml.safe_dump(ACL))
        acl["keyspaces"]["customer"][0]["read"].append("reader")
        acl["keyspaces"]["shop"][1]["read"].append("reader")
        rules = [*RULES, {"name": "late-rule", "match": {"users": ["reader"], "tables": ["shop.item"]},
                          "action": "deny", "message": "reader reads no items now"}]
        write_config(router.path, config_doc(router.cluster, router.shop, acl=acl, rules=rules,
                                             extra_users=("late",), replica=router.replica))
        result = await admin_pg.fetch("RELOAD")
        changes = dict((r[0], r[1]) for r in result)
        assert "changed" in changes["acl"] and "changed" in changes["rules"] and "changed" in changes["users"]
        assert len(await reader_pg.fetch("SELECT * FROM salary WHERE customer_id = 1")) == 1  # the same connection
        assert len(await asyncio.to_thread(my_run, reader_my, "SELECT * FROM secret WHERE id = 1")) == 1
        with pytest.raises(Denied, match="reader reads no items now"):
            await asyncio.to_thread(my_run, reader_my, "SELECT * FROM item")
        assert len(await admin_pg.fetch("SHOW SHARDGATE RULES")) == len(rules)
        late = await router.apg("late")  # a new user logs in over both protocols
        await late.close()
        (await asyncio.to_thread(router.my, "late")).close()

        # a bad config changes nothing and says why, one problem per line
        bad = config_doc(router.cluster, router.shop, acl={**acl, "bogus": 1}, replica=router.replica,
                         rules=[{"name": "x", "match": {"kinds": ["selekt"]}, "action": "deny"}])
        write_config(router.path, bad)
        with pytest.raises(Exception) as info:
            await asyncio.to_thread(my_run, admin_my, "RELOAD")
        message = str(info.value)
        assert "acl.bogus: unknown key" in message and "rules[0].match.kinds[0]" in message
        with pytest.raises(asyncpg.PostgresError) as pinfo:
            await admin_pg.execute("RELOAD")
        assert pinfo.value.sqlstate == "F0000"
        assert len(await reader_pg.fetch("SELECT * FROM salary WHERE customer_id = 1")) == 1  # still the new ACL
        # RELOAD is for admins only
        with pytest.raises(asyncpg.PostgresError) as pinfo:
            await reader_pg.execute("RELOAD")
        assert pinfo.value.sqlstate == "42501"
    finally:
        write_config(router.path, doc)  # back to the module's config, over MySQL this time
        rows = await asyncio.to_thread(my_run, admin_my, "RELOAD")
        assert dict(rows)["acl"].endswith("(changed)")
        for c in (reader_pg, admin_pg):
            await c.close()
        reader_my.close()
        admin_my.close()
    again = await router.apg("reader")
    try:
        with pytest.raises(asyncpg.PostgresError):
            await again.fetch("SELECT * FROM salary WHERE customer_id = 1")
    finally:
        await again.close()


async def test_sighup_reloads_the_router_process(pg_cluster: list[DatabaseServer], mysql_cluster: list[DatabaseServer],
                                                 router: Router) -> None:
    """``python -m router.serve``: SIGHUP re-reads the file; the open connection sees the new ACL."""
    doc = config_doc(router.cluster, router.shop)
    proc = await asyncio.to_thread(RouterProcess(doc).start)
    try:
        conn = await asyncpg.connect(host="127.0.0.1", port=proc.port, user="reader", password=PASSWORDS["reader"],
                                     database="customer")
        try:
            with pytest.raises(asyncpg.PostgresError):
                await conn.fetch("SELECT * FROM salary WHERE customer_id = 1")
            acl = yaml.safe_load(yaml.safe_dump(ACL))
            acl["keyspaces"]["customer"][0]["read"].append("reader")
            write_config(proc.config_path, config_doc(router.cluster, router.shop, acl=acl))
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while True:
                try:
                    rows = await conn.fetch("SELECT * FROM salary WHERE customer_id = 1")
                    break
                except asyncpg.PostgresError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"SIGHUP did not apply the new ACL: {proc.output()[-2000:]}") from None
                    await asyncio.sleep(0.1)
            assert len(rows) == 1
            # a bad file on SIGHUP is logged and changes nothing
            write_config(proc.config_path, {**doc, "acl": {"bogus": True}})
            proc.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while "reload failed" not in proc.output() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert "acl.bogus: unknown key" in proc.output()
            assert len(await conn.fetch("SELECT * FROM salary WHERE customer_id = 1")) == 1
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(proc.stop)
