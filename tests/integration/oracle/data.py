"""Deterministic rows for the oracle (one seed: a failure reproduces), and SQL literals for both dialects.

Values cover NULLs (in every nullable column), unicode text (accents, case variants that MariaDB's
utf8mb4_general_ci treats as equal, Greek, CJK, an emoji, quotes and a backslash), decimals (negative, zero,
scale 2 and 3) and dates (a leap day, year ends).
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.integration.oracle.schema import CUSTOMER, EVENT, ITEM, ORDERS, TABLES, WAREHOUSE, TableDef

SEED = 20240229
Row = tuple[Any, ...]

# Names: several groups that utf8mb4_general_ci folds together (Zoë/zoe/ZOË, Élodie/elodie), code points outside
# Latin-1, an apostrophe. No trailing spaces (PAD SPACE would fold them too) and no supplementary characters in
# columns that are grouped or ordered (general_ci gives every one of them the same weight).
NAMES = ("Zoë", "zoe", "ZOË", "Élodie", "elodie", "Ñandú", "nandu", "Łukasz", "Ærø", "Östen", "ostén", "Ana",
         "ana", "Bob", "bob", "Chloé", "Dmitri", "Δέσποινα", "Ελένη", "東京", "大阪", "O'Brien", "o'brien",
         "Jürgen", "Juergen", "Çelik", "celik", "Søren", "Ümit", "Yusuf", "Émile", "emile", "Zed", "aaron",
         "Aaron", "Ðorđe", "Iñigo", "Mëlissa", "İlker", "Ægir")
REGIONS = ("north", "south", "east", "west", "Nord", "Süd", "centre")
STATUSES = ("new", "paid", "shipped", "returned", "cancelled")
KINDS = ("click", "view", "buy", "refund", "login", "Logout")
TAGS = (*(f"tag{i:02d}" for i in range(24)), "été", "Été", "naïve", "tæg", "標籤", "Ωmega")
CATEGORIES = ("tools", "toys", "books", "food", "Garden", "garden", "music")
CITIES = ("Berlin", "München", "Zürich", "Kraków", "São Paulo", "Reykjavík", "Tōkyō", "Αθήνα", "Lyon", "Oslo",
          "Québec", "Łódź")
NOTES = ("", "rush", "gift 🎁", "fragile", "it's fine", "back\\slash", "50% off", "quote \"x\"", "ünïcødé",
         "日本語のメモ", "multi word note", "tab\there")


@dataclass
class Dataset:
    """Every table's rows, in primary key order (auto ids are the sequence's: 1, 2, 3… in insert order)."""

    rows: dict[str, list[Row]] = field(default_factory=dict)

    def table(self, name: str) -> list[Row]:
        return self.rows[name]

    def column(self, table: str, name: str) -> list[Any]:
        idx = TABLES[table].column_names.index(name)
        return [r[idx] for r in self.rows[table]]

    def values(self, table: str, name: str) -> list[Any]:
        """Distinct non-NULL values of a column, sorted by repr (deterministic)."""
        return sorted({v for v in self.column(table, name) if v is not None}, key=repr)


def _maybe(rng: random.Random, p_null: float, value: Any) -> Any:
    return None if rng.random() < p_null else value


def _date(rng: random.Random, start: dt.date, days: int) -> dt.date:
    return start + dt.timedelta(days=rng.randrange(days))


def generate(seed: int = SEED, customers: int = 240, orders: int = 720, events: int = 600) -> Dataset:
    rng = random.Random(seed)
    ds = Dataset()
    special_dates = (dt.date(2024, 2, 29), dt.date(2023, 12, 31), dt.date(2024, 1, 1), dt.date(2000, 1, 1))

    ds.rows["warehouse"] = [
        (i, CITIES[i - 1], _maybe(rng, 0.2, rng.choice(REGIONS)), _maybe(rng, 0.2, rng.randrange(100, 5000, 50)),
         _maybe(rng, 0.2, Decimal(rng.randrange(-5000, 900000)) / 100), _maybe(rng, 0.2, _date(rng, dt.date(1990, 1, 1),
                                                                                               12000)))
        for i in range(1, len(CITIES) + 1)]
    ds.rows["item"] = [
        (i, f"{rng.choice(('Hammer', 'Ball', 'Book', 'Bread', 'Rake', 'Flute', 'Säge', 'Кукла'))} {i}",
         _maybe(rng, 0.15, rng.choice(CATEGORIES)), Decimal(rng.randrange(0, 20000)) / 100,
         _maybe(rng, 0.2, _date(rng, dt.date(2015, 1, 1), 3000)))
        for i in range(1, 41)]

    cust: list[Row] = []
    for i in range(1, customers + 1):
        name = NAMES[rng.randrange(len(NAMES))] if rng.random() < 0.9 else f"user{i:03d}"
        email = f"c{i:03d}.{rng.choice(('mail', 'post', 'box'))}@example.{rng.choice(('com', 'org', 'de'))}"
        joined = rng.choice(special_dates) if rng.random() < 0.05 else _date(rng, dt.date(2019, 1, 1), 2200)
        cust.append((i, name, email, _maybe(rng, 0.12, rng.choice(REGIONS)),
                     _maybe(rng, 0.1, Decimal(rng.randrange(-20000, 1000000)) / 100),
                     _maybe(rng, 0.15, rng.randrange(0, 100)), _maybe(rng, 0.1, joined), rng.randrange(2)))
    ds.rows["customer"] = cust

    ords: list[Row] = []
    for i in range(1, orders + 1):
        cid = rng.randrange(1, customers + 1) if rng.random() < 0.97 else customers + 1000 + i  # a few orphans
        ords.append((i, cid, _maybe(rng, 0.1, rng.randrange(1, 45)), rng.randrange(1, 10),
                     _maybe(rng, 0.08, Decimal(rng.randrange(0, 100000)) / 100), rng.choice(STATUSES),
                     _maybe(rng, 0.4, rng.choice(NOTES)), _date(rng, dt.date(2022, 1, 1), 900)))
    ds.rows["orders"] = ords

    evs: list[Row] = []
    used: set[int] = set()
    while len(evs) < events:
        eid = rng.choice((rng.randrange(1, 5000), rng.randrange(1, 10**12)))
        if eid in used:
            continue
        used.add(eid)
        happened = rng.choice(special_dates) if rng.random() < 0.1 else _date(rng, dt.date(2023, 1, 1), 500)
        evs.append((eid, _maybe(rng, 0.15, rng.randrange(1, customers + 40)), rng.choice(TAGS), rng.choice(KINDS),
                    _maybe(rng, 0.2, rng.randrange(-50, 200)),
                    _maybe(rng, 0.2, Decimal(rng.randrange(-99999, 999999)) / 1000), _maybe(rng, 0.1, happened),
                    _maybe(rng, 0.3, rng.choice(NOTES + NAMES))))
    evs.sort(key=lambda r: r[0])
    ds.rows["event"] = evs
    for t in (CUSTOMER, ORDERS, EVENT, ITEM, WAREHOUSE):
        assert all(len(r) == len(t.columns) for r in ds.rows[t.name]), t.name
    return ds


# --- literals -----------------------------------------------------------------------------------------------
def literal(value: Any, engine: str) -> str:
    """``value`` as an SQL literal of ``engine`` (MySQL escapes backslashes; PostgreSQL strings are standard)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        text = value.replace("'", "''")
        if engine == "mysql":
            text = text.replace("\\", "\\\\")
        return f"'{text}'"
    raise TypeError(f"no literal for {type(value).__name__}")


def insert_sql(table: TableDef, rows: list[Row], engine: str, *, omit_auto_id: bool = False) -> str:
    cols = list(table.column_names)
    start = 1 if omit_auto_id and table.auto_id else 0
    values = ", ".join("(" + ", ".join(literal(v, engine) for v in r[start:]) + ")" for r in rows)
    return f"INSERT INTO {table.name} ({', '.join(cols[start:])}) VALUES {values}"
