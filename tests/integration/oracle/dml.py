"""The ``dml`` family: writes (each compared by affected rows) followed by the reads that check them, in a fixed
order, after every read family has run on the loaded data.

Writes cover point, IN, lookup-routed and scatter UPDATE/DELETE, changes of owned lookup columns (unique and
non-unique), INSERT with ids from a sequence (the reference side gets the ids the router reported), reference
table writes (every shard's copy must change: joins with it are checked afterwards), the unsharded keyspace,
upserts, and multi-statement transactions that commit or roll back. The last case reads every table whole.
"""
from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Callable
from decimal import Decimal

from tests.integration.oracle import schema
from tests.integration.oracle.corpus import FAMILIES, Case, Gen, Query
from tests.integration.oracle.data import NAMES, NOTES, REGIONS, STATUSES, Dataset

FAMILY = "dml"


class _Writes:
    def __init__(self, data: Dataset, engine: str, rng: random.Random) -> None:
        self.g = Gen(data, engine, rng)
        self.engine = engine
        self.fresh = itertools.count(1)
        self.event_ids = itertools.count(9_000_000_000_001, 7919)
        self.item_ids = itertools.count(1001)

    def w(self, sql: str, ref: str | None = None, session: tuple[str, ...] = ()) -> Query:
        return Query(FAMILY, sql, write=True, ref_sql=ref, session=session)

    def r(self, sql: str, ordered: bool = False, ci: bool = False) -> Query:
        return Query(FAMILY, sql, ordered, ci)

    # --- the kinds of write -------------------------------------------------------------------------------------
    def update_customer_point(self) -> list[Query]:
        g = self.g
        cid = g.cid()
        sets = g.choice((f"score = COALESCE(score, 0) + {g.rng.randint(1, 9)}", "balance = balance - 1.25",
                         f"region = {g.lit(g.choice(REGIONS))}", f"joined = {g.lit(dt.date(2024, 2, 29))}",
                         f"name = {g.lit(g.choice(NAMES))}, vip = 1 - vip", "score = NULL"))
        return [self.w(f"UPDATE customer SET {sets} WHERE customer_id = {cid}"),
                self.r(f"SELECT * FROM customer WHERE customer_id = {cid}")]

    def update_scatter(self) -> list[Query]:
        g = self.g
        region = g.lit(g.pick("customer", "region"))
        score = g.rng.randint(10, 90)
        return [self.w(f"UPDATE customer SET vip = 1 - vip, balance = balance + 0.01 WHERE region = {region} "
                       f"AND score < {score}"),
                self.r(f"SELECT customer_id, vip, balance FROM customer WHERE region = {region} ORDER BY customer_id",
                       True)]

    def update_order_by_lookup(self) -> list[Query]:
        g = self.g
        oid = g.oid()
        return [self.w(f"UPDATE orders SET status = {g.lit(g.choice(STATUSES))}, note = {g.lit(g.choice(NOTES))}, "
                       f"qty = qty + 1 WHERE order_id = {oid}"),
                self.r(f"SELECT * FROM orders WHERE order_id = {oid}")]

    def update_email(self) -> list[Query]:
        g = self.g
        cid = int(g.pick("customer", "customer_id"))
        new = f"moved{next(self.fresh)}.{g.choice(('é', 'x', 'Ü'))}@example.net"
        return [self.w(f"UPDATE customer SET email = {g.lit(new)} WHERE customer_id = {cid}"),
                self.r(f"SELECT customer_id, email, name FROM customer WHERE email = {g.lit(new)}"),
                self.r(f"SELECT customer_id, email FROM customer WHERE customer_id = {cid}")]

    def update_tag(self) -> list[Query]:
        g = self.g
        eid = int(g.pick("event", "event_id"))
        tag = g.pick("event", "tag")
        return [self.w(f"UPDATE event SET tag = {g.lit(tag)}, weight = COALESCE(weight, 0) - 3 WHERE event_id = "
                       f"{eid}"),
                self.r(f"SELECT event_id, tag, weight FROM event WHERE tag = {g.lit(tag)} ORDER BY event_id", True)]

    def delete_order(self) -> list[Query]:
        g = self.g
        oid = g.oid()
        cid = g.cid()
        return [self.w(f"DELETE FROM orders WHERE order_id = {oid}"),
                self.r(f"SELECT * FROM orders WHERE order_id = {oid}"),
                self.r(f"SELECT COUNT(*), SUM(amount) FROM orders WHERE customer_id = {cid}")]

    def delete_events(self) -> list[Query]:
        g = self.g
        tag = g.lit(g.pick("event", "tag"))
        return [self.w(f"DELETE FROM event WHERE tag = {tag} AND weight < {g.rng.randint(-40, 60)}"),
                self.r(f"SELECT event_id, weight FROM event WHERE tag = {tag} ORDER BY event_id", True)]

    def delete_scatter(self) -> list[Query]:
        g = self.g
        kind = g.lit(g.pick("event", "kind"))
        return [self.w(f"DELETE FROM event WHERE kind = {kind} AND cost < {g.rng.randint(-99, 0)}"),
                self.r("SELECT kind, COUNT(*) FROM event GROUP BY kind", ci=True)]

    def delete_customers(self) -> list[Query]:
        g = self.g
        ids = sorted({g.cid() for _ in range(g.rng.randint(1, 4))})
        lst = g.in_list(ids)
        return [self.w(f"DELETE FROM customer WHERE customer_id IN {lst}"),
                self.r(f"SELECT COUNT(*) FROM customer WHERE customer_id IN {lst}"),
                self.r("SELECT COUNT(*), MAX(customer_id) FROM customer")]

    def update_events_in(self) -> list[Query]:
        g = self.g
        ids = [int(g.pick("event", "event_id")) for _ in range(g.rng.randint(2, 6))]
        lst = g.in_list(ids)
        return [self.w(f"UPDATE event SET weight = COALESCE(weight, 0) + 1, payload = {g.lit(g.choice(NOTES))} "
                       f"WHERE event_id IN {lst}"),
                self.r(f"SELECT event_id, weight, payload FROM event WHERE event_id IN {lst} ORDER BY event_id",
                       True)]

    def insert_customer(self) -> list[Query]:
        g = self.g
        n = g.rng.randint(1, 3)
        rows, emails = [], []
        for _ in range(n):
            email = f"new{next(self.fresh)}@example.org"
            emails.append(email)
            rows.append((g.choice(NAMES), email, g.choice((*REGIONS, None)),
                         g.choice((Decimal("0.00"), Decimal("-3.50"), None, Decimal("123456.78"))),
                         g.choice((None, 1, 50, 99)), g.choice((None, dt.date(2024, 2, 29), dt.date(2020, 5, 17))),
                         g.rng.randrange(2)))
        cols = "name, email, region, balance, score, joined, vip"
        router = f"INSERT INTO customer ({cols}) VALUES " + ", ".join(
            "(" + ", ".join(g.lit(v) for v in r) + ")" for r in rows)
        ref = f"INSERT INTO customer (customer_id, {cols}) VALUES " + ", ".join(
            "({id" + str(k) + "}, " + ", ".join(g.lit(v) for v in r) + ")" for k, r in enumerate(rows))
        return [self.w(router, ref),
                self.r(f"SELECT * FROM customer WHERE email IN {g.in_list(emails)} ORDER BY customer_id", True),
                self.r("SELECT COUNT(*) FROM customer")]

    def insert_orders(self) -> list[Query]:
        g = self.g
        cid = int(g.pick("customer", "customer_id"))
        n = g.rng.randint(1, 4)
        rows = [(cid, g.choice((None, *range(1, 41))), g.rng.randint(1, 9),
                 g.choice((None, Decimal("9.99"), Decimal("0.01"), Decimal("1000.00"))), g.choice(STATUSES),
                 g.choice((None, *NOTES)), dt.date(2024, 1, g.rng.randint(1, 31))) for _ in range(n)]
        cols = "customer_id, item_id, qty, amount, status, note, placed"
        router = f"INSERT INTO orders ({cols}) VALUES " + ", ".join(
            "(" + ", ".join(g.lit(v) for v in r) + ")" for r in rows)
        ref = f"INSERT INTO orders (order_id, {cols}) VALUES " + ", ".join(
            "({id" + str(k) + "}, " + ", ".join(g.lit(v) for v in r) + ")" for k, r in enumerate(rows))
        return [self.w(router, ref),
                self.r(f"SELECT * FROM orders WHERE customer_id = {cid} ORDER BY order_id", True),
                self.r(f"SELECT o.order_id, i.title FROM orders o JOIN item i ON i.item_id = o.item_id "
                       f"WHERE o.customer_id = {cid} ORDER BY o.order_id", True)]

    def insert_events(self) -> list[Query]:
        g = self.g
        tag = g.pick("event", "tag")
        rows = [(next(self.event_ids), g.choice((None, g.cid())), tag, g.pick("event", "kind"),
                 g.choice((None, -5, 0, 77)), g.choice((None, Decimal("1.234"), Decimal("-0.001"))),
                 g.choice((None, dt.date(2023, 12, 31))), g.choice((None, *NOTES))) for _ in range(g.rng.randint(1, 5))]
        sql = f"INSERT INTO event ({', '.join(schema.EVENT.column_names)}) VALUES " + ", ".join(
            "(" + ", ".join(g.lit(v) for v in r) + ")" for r in rows)
        return [self.w(sql),
                self.r(f"SELECT * FROM event WHERE tag = {g.lit(tag)} ORDER BY event_id", True)]

    def insert_select_events(self) -> list[Query]:
        """INSERT … SELECT: rows read from the shards, placed again by their new ids, their lookup rows made."""
        g = self.g
        tag = g.lit(g.pick("event", "tag"))
        shift = 7_000_000_000_000 + next(self.fresh) * 10_000_000_000
        cols = ", ".join(schema.EVENT.column_names)
        sql = (f"INSERT INTO event ({cols}) SELECT event_id + {shift}, customer_id, tag, kind, weight, cost, "
               f"happened, payload FROM event WHERE tag = {tag} AND event_id < 5000")
        return [self.w(sql), self.r(f"SELECT * FROM event WHERE tag = {tag} ORDER BY event_id", True)]

    def insert_warehouse(self) -> list[Query]:
        g = self.g
        wid = 100 + next(self.fresh)
        return [self.w(f"INSERT INTO warehouse (wh_id, city, region, capacity, rent, opened) VALUES ({wid}, "
                       f"{g.lit(g.choice(('Bergen', 'Göteborg', 'Évora')))}, {g.lit(g.choice((*REGIONS, None)))}, "
                       f"{g.choice(('NULL', '10', '2500'))}, {g.choice(('NULL', '-1.50', '99.99'))}, "
                       f"{g.lit(g.choice((None, dt.date(2024, 2, 29))))})"),
                self.r("SELECT * FROM warehouse WHERE wh_id >= 100 ORDER BY wh_id", True),
                self.r("SELECT w.wh_id, COUNT(c.customer_id) FROM warehouse w LEFT JOIN customer c ON c.region = "
                       "w.region AND c.customer_id < 20 WHERE w.wh_id >= 100 GROUP BY w.wh_id ORDER BY w.wh_id", True)]

    def update_items(self) -> list[Query]:
        g = self.g
        cat = g.lit(g.pick("item", "category"))
        return [self.w(f"UPDATE item SET price = price + {g.choice(('1', '0.5', '10.25'))} WHERE category = {cat}"),
                self.r(f"SELECT * FROM item WHERE category = {cat} ORDER BY item_id", True),
                self.r(f"SELECT o.order_id, i.price FROM orders o JOIN item i ON i.item_id = o.item_id "
                       f"WHERE i.category = {cat} ORDER BY o.order_id", True)]

    def insert_delete_item(self) -> list[Query]:
        g = self.g
        iid = next(self.item_ids)
        cat = g.choice(("tools", "new", None))
        ins = self.w(f"INSERT INTO item (item_id, title, category, price, launched) VALUES ({iid}, "
                     f"{g.lit('Neu ' + str(iid))}, {g.lit(cat)}, 4.20, NULL)")
        out = [ins, self.r(f"SELECT * FROM item WHERE item_id = {iid}"),
               self.r(f"SELECT COUNT(*) FROM orders o JOIN item i ON i.item_id = o.item_id WHERE i.item_id = {iid}")]
        if g.chance(0.5):
            out += [self.w(f"DELETE FROM item WHERE item_id = {iid}"), self.r("SELECT COUNT(*) FROM item")]
        return out

    def upsert_item(self) -> list[Query]:
        g = self.g
        iid = int(g.pick("item", "item_id"))
        price = g.choice(("1.11", "99.99", "0.00"))
        if self.engine == "postgres":
            sql = (f"INSERT INTO item (item_id, title, category, price) VALUES ({iid}, 'Upserted', NULL, {price}) "
                   "ON CONFLICT (item_id) DO UPDATE SET price = EXCLUDED.price")
        else:
            sql = (f"INSERT INTO item (item_id, title, category, price) VALUES ({iid}, 'Upserted', NULL, {price}) "
                   "ON DUPLICATE KEY UPDATE price = VALUES(price)")
        return [self.w(sql), self.r(f"SELECT * FROM item WHERE item_id = {iid}")]

    def update_warehouse(self) -> list[Query]:
        g = self.g
        return [self.w(f"UPDATE warehouse SET capacity = COALESCE(capacity, 0) + 10, region = "
                       f"{g.lit(g.choice(REGIONS))} WHERE wh_id = {g.pick('warehouse', 'wh_id')}"),
                self.r("SELECT * FROM warehouse ORDER BY wh_id", True),
                self.r("SELECT c.customer_id, w.wh_id FROM customer c JOIN warehouse w ON w.region = c.region "
                       "ORDER BY c.customer_id, w.wh_id", True)]

    def update_with_input(self) -> list[Query]:
        """Writes that first read which rows they touch: UPDATE … LIMIT (MySQL), multi-table UPDATE/DELETE
        across vindexes, and a correlated subquery co-located with the written rows."""
        g = self.g
        region = g.lit(g.pick("customer", "region"))
        kind = g.lit(g.pick("event", "kind"))
        form = g.rng.randrange(4)
        if form == 0 and self.engine == "mysql":
            sql = (f"UPDATE customer SET score = 0 WHERE region = {region} ORDER BY customer_id "
                   f"LIMIT {g.rng.randint(1, 5)}")
        elif form <= 1:
            sql = (f"UPDATE customer c JOIN event e ON e.customer_id = c.customer_id SET c.score = c.vip + 40 "
                   f"WHERE e.kind = {kind}" if self.engine == "mysql" else
                   f"UPDATE customer c SET score = c.vip + 40 FROM event e WHERE e.customer_id = c.customer_id AND "
                   f"e.kind = {kind}")
        elif form == 2:
            sql = (f"UPDATE customer SET vip = 1 - vip WHERE region = {region} AND EXISTS (SELECT 1 FROM orders o "
                   f"WHERE o.customer_id = customer.customer_id AND o.qty > {g.rng.randint(3, 9)})")
        else:
            sql = (f"DELETE o FROM orders o JOIN customer c ON c.customer_id = o.customer_id WHERE c.region = "
                   f"{region} AND o.qty = {g.rng.randint(1, 9)}" if self.engine == "mysql" else
                   f"DELETE FROM orders o USING customer c WHERE c.customer_id = o.customer_id AND c.region = "
                   f"{region} AND o.qty = {g.rng.randint(1, 9)}")
        return [self.w(sql),
                self.r(f"SELECT customer_id, score, vip FROM customer WHERE region = {region} ORDER BY customer_id",
                       True),
                self.r(f"SELECT COUNT(*), SUM(qty) FROM orders o JOIN customer c ON c.customer_id = o.customer_id "
                       f"WHERE c.region = {region}")]

    def transaction(self) -> list[Query]:
        g = self.g
        a, b = int(g.pick("customer", "customer_id")), int(g.pick("customer", "customer_id"))
        end = g.choice(("COMMIT", "ROLLBACK"))
        steps = ("BEGIN", f"UPDATE customer SET score = 7 WHERE customer_id = {a}",
                 f"UPDATE orders SET qty = qty + 100 WHERE customer_id = {b}")
        return [Query(FAMILY, end, write=True, session=steps),
                self.r(f"SELECT customer_id, score FROM customer WHERE customer_id IN ({a}, {b}) ORDER BY customer_id",
                       True),
                self.r(f"SELECT order_id, qty FROM orders WHERE customer_id = {b} ORDER BY order_id", True)]


_KINDS: tuple[tuple[Callable[[_Writes], list[Query]], int], ...] = (
    (_Writes.update_customer_point, 4), (_Writes.update_scatter, 2), (_Writes.update_order_by_lookup, 3),
    (_Writes.update_email, 2), (_Writes.update_tag, 2), (_Writes.delete_order, 2), (_Writes.delete_events, 2),
    (_Writes.delete_scatter, 1), (_Writes.delete_customers, 1), (_Writes.update_events_in, 2),
    (_Writes.insert_customer, 2), (_Writes.insert_orders, 2), (_Writes.insert_events, 2), (_Writes.update_items, 1),
    (_Writes.insert_delete_item, 1), (_Writes.upsert_item, 1), (_Writes.update_warehouse, 1),
    (_Writes.update_with_input, 2), (_Writes.transaction, 2), (_Writes.insert_select_events, 1),
    (_Writes.insert_warehouse, 1),
)


def write_cases(data: Dataset, engine: str, rng: random.Random) -> list[Case]:
    w = _Writes(data, engine, rng)
    out: list[Case] = []
    writes = 0
    # every kind at least once, then by weight
    kinds = [k for k, _ in _KINDS]
    while writes < FAMILIES[FAMILY]:
        kind = kinds.pop(0) if kinds else rng.choices([k for k, _ in _KINDS], [n for _, n in _KINDS])[0]
        steps = kind(w)
        writes += sum(1 for q in steps if q.write)
        out.append(Case(FAMILY, steps))
    final = Case(FAMILY, [Query(FAMILY, f"SELECT * FROM {t.name} ORDER BY {t.pk}", True)
                          for t in schema.TABLES.values()])
    out.append(final)
    return out
