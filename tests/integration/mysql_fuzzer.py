"""The client side of the MySQL fuzz test (``test_mysql_fuzz.py``), run as a subprocess so that it does not compete
with the router for the test process's interpreter lock.

    python -m tests.integration.mysql_fuzzer --port P --user U --password W --packets 110000 --seconds 55

Threads each open connection after connection. Most connections log in properly and send batches of command
packets: valid packets from captured client sessions, mutations of them (bit flips, a new command byte,
truncation, garbage appended or spliced in, a wrong statement id), and random packets. Each batch ends with a
sentinel query whose answer shows the router went through the whole batch. Some batches end with a packet that
breaks the framing (a wrong sequence id, a length larger than what follows, an oversized packet), after which the
connection is dropped. Some connections fuzz the handshake instead (garbage, truncated, mutated or
wrongly-sequenced handshake responses, garbage auth data). Prints one JSON line of counters.
"""
from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import threading
import time
from typing import Any

from router.frontend.mysql.constants import Command
from router.frontend.mysql.packets import HandshakeV10, PacketDecoder, PacketError, frame
from tests.support.mysql_wire import handshake_response, query, stmt_close, stmt_execute, stmt_prepare
from tests.unit.frontend.mysql.captured import SESSIONS


def corpus() -> list[bytes]:
    """Command payloads of the captured sessions (their logins left out) and a few more of ours."""
    out: list[bytes] = []
    for data in SESSIONS.values():
        dec = PacketDecoder(1 << 24)
        dec.feed(data)
        while (p := dec.next_packet()) is not None:
            first, _, payload = p
            if first == 0 and payload and payload[0] != Command.QUIT:
                out.append(payload)
    out += [query(sql) for sql in (
        "SELECT @@version_comment LIMIT 1", "SELECT DATABASE(), CONNECTION_ID()", "SELECT 1", "SHOW DATABASES",
        "SELECT id, s FROM ty WHERE id = 2", "SELECT id, s FROM ty ORDER BY id", "SHOW WARNINGS",
        "SELECT COUNT(*) FROM ty", "BEGIN", "ROLLBACK", "UPDATE ty SET s = s WHERE id = 3", "SHOW TABLES",
        "SELECT id FROM ty WHERE id IN (1, 2, 3)", "VEXPLAIN PLAN SELECT * FROM ty", "SELECT 1; SELECT 2",
        "SET autocommit = 1", "USE main", "SHOW VARIABLES LIKE 'max_allowed_packet'")]
    out += [stmt_prepare("SELECT id, s FROM ty WHERE id = ?"), stmt_execute(1, [1]), stmt_execute(1, [None]),
            stmt_execute(1, [2], flags=1), bytes((Command.STMT_FETCH,)) + struct.pack("<II", 1, 1),
            bytes((Command.STMT_RESET,)) + struct.pack("<I", 1), stmt_close(1),
            bytes((Command.STMT_SEND_LONG_DATA,)) + struct.pack("<IH", 1, 0) + b"long",
            bytes((Command.PING,)), bytes((Command.INIT_DB,)) + b"main", bytes((Command.FIELD_LIST,)) + b"ty\0",
            bytes((Command.SET_OPTION,)) + b"\x00\x00", bytes((Command.STATISTICS,)),
            bytes((Command.RESET_CONNECTION,)), query("USE main")]
    return out


def mutate(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    op = rng.randrange(8)
    if op == 0 and data:  # flip bits
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif op == 1 and data:  # another command
        data[0] = rng.randrange(256)
    elif op == 2:  # truncate
        data = data[:rng.randrange(len(data) + 1)]
    elif op == 3:  # garbage appended
        data += rng.randbytes(rng.randint(1, 64))
    elif op == 4 and data:  # garbage spliced in
        i = rng.randrange(len(data))
        data[i:i + rng.randint(1, 8)] = rng.randbytes(rng.randint(0, 8))
    elif op == 5 and len(data) >= 5 and data[0] in (Command.STMT_EXECUTE, Command.STMT_CLOSE, Command.STMT_RESET,
                                                   Command.STMT_FETCH, Command.STMT_SEND_LONG_DATA):
        data[1:5] = struct.pack("<I", rng.choice((0, 2, 3, 0xFFFFFFFF, rng.randrange(1 << 32))))
    elif op == 6 and data and data[0] == Command.QUERY:  # keep the command, scramble the words
        words = bytes(data[1:]).split(b" ")
        rng.shuffle(words)
        data = bytearray(data[:1] + b" ".join(words))
    else:  # a random packet
        data = bytearray(rng.randbytes(rng.randint(0, 40)))
    if data and data[0] in (Command.PROCESS_KILL, Command.QUIT):
        data[0] = Command.PING  # KILL is tested elsewhere; QUIT would only end the batch early
    return bytes(data)


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.packets = 0
        self.handshake_packets = 0
        self.handshake_fuzz = 0  # connections whose handshake response was broken on purpose
        self.connections = 0
        self.batches = 0
        self.framing_breaks = 0
        self.timeouts = 0
        self.login_failures = 0

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def read_packet(self) -> tuple[int, bytes]:
        while True:
            if len(self.buf) >= 4:
                n = int.from_bytes(self.buf[:3], "little")
                if len(self.buf) >= 4 + n:
                    seq, payload = self.buf[3], self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return seq, payload
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def wait_for(self, marker: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                return False
            if not chunk:
                raise ConnectionError("closed")
            self.buf = self.buf[-4096:] + chunk  # bounded: only the tail can hold the marker
        self.buf = b""
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def fuzz_handshake(rng: random.Random, conn: Conn, hs: HandshakeV10, user: str, password: str) -> int:
    valid = handshake_response(user, password, hs.auth_data, database="main")
    op = rng.randrange(6)
    if op == 0:
        payload, seq = rng.randbytes(rng.randint(0, 120)), 1
    elif op == 1:
        payload, seq = valid[:rng.randrange(len(valid))], 1
    elif op == 2:
        payload, seq = mutate(rng, valid), 1
    elif op == 3:
        payload, seq = valid, rng.choice((0, 2, 5, 255))
    elif op == 4:  # garbage auth data of the right shape
        payload, seq = handshake_response(user, rng.randbytes(8).hex(), rng.randbytes(20), database="main"), 1
    else:  # a length larger than what follows, then silence
        conn.sock.sendall(struct.pack("<I", 5000 | 1 << 24) + valid)
        return 1
    conn.sock.sendall(frame(payload, seq)[0])
    sent = 1
    try:
        while True:  # the answer: ERR, an auth switch, OK; then perhaps garbage auth data
            _, reply = conn.read_packet()
            if reply[:1] in (b"\x00", b"\xff"):
                break
            conn.sock.sendall(frame(rng.randbytes(rng.randint(0, 40)), 3)[0])
            sent += 1
    except (OSError, ConnectionError):
        pass
    return sent


def login(conn: Conn, hs: HandshakeV10, user: str, password: str) -> bool:
    conn.sock.sendall(frame(handshake_response(user, password, hs.auth_data, database="main"), 1)[0])
    _, reply = conn.read_packet()
    return reply[:1] == b"\x00"


def worker(seed: int, args: argparse.Namespace, stop_at: float, counters: Counters, items: list[bytes]) -> None:
    rng = random.Random(seed)
    sentinel_n = 0
    while time.monotonic() < stop_at and counters.packets < args.packets:
        try:
            conn = Conn(args.port)
        except OSError:
            time.sleep(0.05)
            continue
        counters.add(connections=1)
        try:
            _, first = conn.read_packet()
            hs = HandshakeV10.decode(first)
            if rng.random() < 0.3:
                n = fuzz_handshake(rng, conn, hs, args.user, args.password)
                counters.add(packets=n, handshake_packets=n, handshake_fuzz=1)
                continue
            if not login(conn, hs, args.user, args.password):
                counters.add(login_failures=1)
                continue
            counters.add(packets=1, handshake_packets=1)
            for _ in range(rng.randint(3, 25)):
                batch = []
                for _ in range(args.batch):
                    r = rng.random()
                    payload = rng.choice(items)
                    if r < 0.65:
                        payload = mutate(rng, payload)
                    elif r < 0.70:
                        payload = rng.randbytes(rng.randint(0, 64))
                    batch.append(frame(payload, 0)[0])
                breaking = rng.random() < 0.04
                if breaking:
                    kind = rng.randrange(3)
                    if kind == 0:
                        batch.append(frame(query("SELECT 1"), rng.randint(1, 255))[0])
                    elif kind == 1:
                        batch.append(struct.pack("<I", 900) + b"\x03SELECT 1")  # shorter than announced
                    else:
                        batch.append(struct.pack("<I", args.max_packet + 1) + b"\x03")
                    conn.sock.sendall(b"".join(batch))
                    counters.add(packets=len(batch), framing_breaks=1)
                    break
                sentinel_n += 1
                marker = f"fz{seed}x{sentinel_n}".encode()
                batch.append(frame(query(b"SELECT '" + marker + b"' AS m, CONNECTION_ID()"), 0)[0])
                conn.sock.sendall(b"".join(batch))
                counters.add(packets=len(batch), batches=1)
                if not conn.wait_for(marker, args.batch_timeout):
                    counters.add(timeouts=1)
                    break
        except (OSError, ConnectionError, PacketError):
            pass
        finally:
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--packets", type=int, default=110_000)
    parser.add_argument("--seconds", type=float, default=55)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--batch-timeout", type=float, default=10)
    parser.add_argument("--max-packet", type=int, default=1 << 20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    counters = Counters()
    items = corpus()
    started = time.monotonic()
    stop_at = started + args.seconds
    threads = [threading.Thread(target=worker, args=(args.seed * 1000 + i, args, stop_at, counters, items))
               for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out: dict[str, Any] = {k: v for k, v in vars(counters).items() if k != "lock"}
    out["seconds"] = round(time.monotonic() - started, 2)
    out["corpus"] = len(items)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
