"""Bad input for the PostgreSQL frontend: at least 100,000 frontend messages within 60 s, mostly mutations of
captured valid sessions (psql, asyncpg, psycopg, pgbench: startup, simple and extended query, COPY), the rest
random (bad lengths, unknown types, truncated messages, messages over the maximum size, messages out of order).

Checked: the share of messages that reach command dispatch is reported; a connection sent a message that cannot be
framed gets a FATAL ErrorResponse or is closed; a live session running its own queries meanwhile sees no error and
correct answers; the router's memory stays bounded; the frontend's internal-error counter stays at 0.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest

from router.frontend.postgres import messages as M
from tests.support.backends import DatabaseServer
from tests.support.pg_router import USERS, Cluster, InProcessRouter, make_cluster
from tests.unit.frontend.postgres.support import all_captures, split_frontend

pytestmark = [pytest.mark.backend, pytest.mark.timeout(150)]

TARGET_MESSAGES = 100_000
TIME_LIMIT = 60.0
WORKERS = 4
MAX_MESSAGE = 64 * 1024
SEED = 20240611


@pytest.fixture(scope="module")
async def cluster(pg_cluster: list[DatabaseServer]) -> AsyncIterator[Cluster]:
    c = await make_cluster(pg_cluster)
    yield c
    await asyncio.to_thread(c.drop)


@dataclass
class Stats:
    sent: int = 0
    connections: int = 0
    mutated: int = 0
    random: int = 0
    unframeable: int = 0  # connections that were sent a message no reader can resynchronise after
    unframeable_answered: int = 0  # … and got a FATAL error or a close for it
    errors_seen: int = 0
    hung: int = 0
    live_queries: int = 0
    notes: list[str] = field(default_factory=list)


def _msg(kind: int, body: bytes) -> bytes:
    return bytes((kind,)) + struct.pack("!i", len(body) + 4) + body


def _cheap_session() -> list[bytes]:
    """A valid session of cheap statements, to mix with the captures."""
    return [M.fe_startup({"user": "app", "database": "customer"}),
            M.fe_query("SELECT 1"), M.fe_parse("s1", "SELECT $1::int + 1", [0]), M.fe_bind("", "s1", [b"41"]),
            M.fe_describe("P", ""), M.fe_execute("", 0), M.fe_sync(),
            M.fe_parse("", "SELECT customer_id FROM customer WHERE customer_id = $1", []),
            M.fe_bind("p", "", [struct.pack("!q", 7)], [1], [1]), M.fe_execute("p", 1), M.fe_close("P", "p"),
            M.fe_describe("S", "s1"), M.fe_flush(), M.fe_sync(), M.fe_query("BEGIN; SELECT 2; COMMIT"),
            M.fe_query(""), M.fe_query("SHOW TimeZone"), M.fe_terminate()]


class Mutator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def body(self, msg: bytes) -> bytes:
        """A change inside the body; the length header is recomputed (the message still frames)."""
        rng = self.rng
        kind, body = msg[0], bytearray(msg[5:])
        choice = rng.random()
        if kind in (ord("Q"), ord("P")) and body and choice < 0.15:
            # SQL text: a few bytes of it (kept rare: every distinct text costs a parse in the planner)
            for _ in range(rng.randint(1, 3)):
                body[rng.randrange(len(body))] = rng.choice(b"';()$ \x00\xff0aZ,")
        elif body and choice < 0.55:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(body))
                body[i] = rng.choice((0, 1, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif choice < 0.75 and body:
            cut = rng.randrange(len(body))
            body = body[:cut] if rng.random() < 0.5 else body + bytes(rng.randrange(256) for _ in range(3))
        elif choice < 0.85:
            kind = rng.choice(b"QPBDECSHXdcfF")  # the body read as another message type
        else:
            body = bytearray(rng.randbytes(rng.randrange(0, 40)))
        return _msg(kind, bytes(body))

    def random_message(self) -> tuple[bytes, bool]:
        """(bytes, frames): a random message; ``frames`` False when no reader can resynchronise after it."""
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            kind = rng.randrange(256)
            return _msg(kind, rng.randbytes(rng.randrange(0, 30))), kind in M.MESSAGE_NAMES and kind != ord("p")
        if r < 0.5:
            return bytes((rng.choice(b"QPBDE"),)) + struct.pack("!i", rng.choice((0, 1, 3, -1, -(2**31)))), False
        if r < 0.65:
            return bytes((ord("Q"),)) + struct.pack("!i", MAX_MESSAGE + rng.randrange(1, 10**6)), False
        if r < 0.8:
            return M.fe_startup({"user": "app"}), False  # a second startup packet, out of order
        if r < 0.9:
            return M.fe_password(b"md5" + rng.randbytes(8) + b"\0"), False  # a password outside authentication
        return M.fe_execute("nope", rng.randrange(10)), True


async def _reader(reader: asyncio.StreamReader, stats: Stats, seen: dict[str, bool]) -> None:
    buf = b""
    while True:
        try:
            data = await reader.read(65536)
        except (ConnectionError, OSError):
            break
        if not data:
            break
        buf += data
        while len(buf) >= 5:
            if buf[0] in b"NS" and not seen.get("started") and (len(buf) == 1 or buf[1] in b"NSRE"):
                buf = buf[1:]
                continue
            size = struct.unpack_from("!i", buf, 1)[0]
            if len(buf) < 1 + size:
                break
            kind = chr(buf[0])
            seen["started"] = True
            if kind == "E":
                seen["error"] = True
                stats.errors_seen += 1
                if b"SFATAL\0" in buf[5:1 + size]:
                    seen["fatal"] = True
            buf = buf[1 + size:]
    seen["closed"] = True


async def _one_connection(port: int, messages: list[bytes], mutator: Mutator, stats: Stats,
                          rng: random.Random) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stats.connections += 1
    seen: dict[str, bool] = {}
    read_task = asyncio.ensure_future(_reader(reader, stats, seen))
    out: list[bytes] = []
    unframeable = False
    startup = next(i for i, m in enumerate(messages) if m[4:8] == b"\0\x03\0\0")
    for i, msg in enumerate(messages):
        if i <= startup:  # SSLRequest and the startup packet: rarely touched, or nothing after them would count
            if rng.random() < 0.03:
                msg = msg[:4] + bytes(rng.randrange(256) for _ in range(4)) + msg[8:]
                stats.mutated += 1
                unframeable = True
            out.append(msg)
            continue
        r = rng.random()
        if r < 0.2:
            out.append(mutator.body(msg))
            stats.mutated += 1
        elif r < 0.23:
            continue  # dropped
        elif r < 0.26:
            out += [msg, msg]  # duplicated
        elif r < 0.27 and i + 1 < len(messages):
            out += [messages[i + 1], msg]  # swapped with the next one (which then comes twice)
        elif r < 0.28 and not unframeable:
            extra, frames = mutator.random_message()
            out.append(extra)
            stats.random += 1
            unframeable |= not frames
            out.append(msg)
        else:
            out.append(msg)
    if rng.random() < 0.1:  # truncated: the connection ends inside a message
        out.append(M.fe_query("SELECT 1")[:rng.randrange(1, 9)])
        unframeable = True
    if not unframeable:
        out += [M.fe_sync(), M.fe_terminate()]
    stats.sent += len(out)
    try:
        for k in range(0, len(out), 8):
            writer.write(b"".join(out[k:k + 8]))
            await writer.drain()
        if unframeable:
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    try:
        await asyncio.wait_for(asyncio.shield(read_task), 10)
    except TimeoutError:
        stats.hung += 1
        read_task.cancel()
    if unframeable:
        stats.unframeable += 1
        stats.unframeable_answered += bool(seen.get("fatal") or seen.get("closed"))
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def _live_session(router: InProcessRouter, stop: asyncio.Event, stats: Stats) -> tuple[int, int]:
    """A well-behaved client running its own work throughout: every answer must be right. Returns the messages
    its connection sent and dispatched (not the fuzzer's)."""
    conn = await asyncpg.connect(host="127.0.0.1", port=router.port, user="plain", password=USERS["plain"],
                                 database="customer")
    try:
        await conn.execute("INSERT INTO customer (customer_id, name) VALUES (150, 'live') "
                           "ON CONFLICT (customer_id) DO NOTHING")
        # (the captured sessions change customers 1-5 and delete those from 300 up; 150 is left alone)
        stmt = await conn.prepare("SELECT name FROM customer WHERE customer_id = $1")
        while not stop.is_set():
            assert await stmt.fetchval(150) == "live"
            assert await conn.fetchval("SELECT $1::int * 3", 14) == 42
            stats.live_queries += 2
            await asyncio.sleep(0.01)
        mine = [c.proto for c in router.frontend.connections
                if c.handler is not None and c.handler.session.state.user == "plain"]
        return (mine[0].messages + 1, mine[0].dispatched + 1) if mine else (0, 0)  # + its Terminate
    finally:
        await conn.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_fuzz_the_frontend(cluster: Cluster) -> None:
    from router.frontend.postgres.auth import parse_hba

    router = await InProcessRouter(cluster.doc, max_message=MAX_MESSAGE, hba=parse_hba(
        "host all all 127.0.0.1/32 trust")).start()
    sessions = [split_frontend(data) for data in all_captures().values()]
    sessions += [_cheap_session()] * 4
    stats = Stats()
    stop = asyncio.Event()
    live = asyncio.ensure_future(_live_session(router, stop, stats))
    rss_start = _rss_mb()
    rss_peak = rss_start
    in_use_peak = [0]
    started = time.monotonic()

    async def worker(n: int) -> None:
        nonlocal rss_peak
        wrng = random.Random(SEED + n)
        mutator = Mutator(wrng)
        while stats.sent < TARGET_MESSAGES and time.monotonic() - started < TIME_LIMIT:
            await _one_connection(router.port, wrng.choice(sessions), mutator, stats, wrng)
            rss_peak = max(rss_peak, _rss_mb())
            in_use_peak[0] = max([in_use_peak[0], *(st.in_use for st in router.gateway.pools.stats())])

    try:
        await asyncio.gather(*(worker(n) for n in range(WORKERS)))
        elapsed = time.monotonic() - started
        stop.set()
        live_messages, live_dispatched = await asyncio.wait_for(live, 10)
        await asyncio.sleep(0.2)
        metrics = router.frontend.metrics
        decoded = metrics.messages - live_messages
        dispatched = metrics.dispatched - live_dispatched
        share = dispatched / max(1, stats.sent)
        print(f"\nfuzz: {stats.sent} messages in {elapsed:.1f} s over {stats.connections} connections "
              f"({stats.mutated} mutated, {stats.random} random); {decoded} decoded, "
              f"{dispatched} reached command dispatch ({share:.1%}); {stats.errors_seen} ErrorResponses; "
              f"live session: {stats.live_queries} queries; RSS {rss_start:.0f} → {rss_peak:.0f} MB")
        assert stats.sent >= TARGET_MESSAGES, f"only {stats.sent} messages in {elapsed:.1f} s"
        assert elapsed <= TIME_LIMIT + 5
        assert stats.hung == 0
        assert stats.unframeable_answered == stats.unframeable
        assert metrics.internal_errors == 0, "internal errors: a bug reached the frontend (see the logged tracebacks)"
        assert share > 0.3
        assert stats.live_queries > 100
        assert rss_peak - rss_start < 300, (rss_start, rss_peak)
        assert not router.frontend.connections or len(router.frontend.connections) <= 1
        # Sessions that ended give their shard connections back (at most one per worker and one live session).
        for _ in range(50):
            held = {st.target: st.in_use for st in router.gateway.pools.stats() if st.in_use}
            if not held:
                break
            await asyncio.sleep(0.1)
        assert not held, f"shard connections still held after every client left: {held}"
        print(f"peak shard connections in use per pool: {in_use_peak[0]}")
    finally:
        stop.set()
        live.cancel()
        with contextlib.suppress(BaseException):
            await live
        await router.close()
