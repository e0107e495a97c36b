"""Regenerates ``captured.py``: the bytes real clients send, recorded through a proxy in front of a running
shardgate MySQL listener whose nonce is fixed (``FIXED_NONCE``), so the recorded auth responses verify again when
the unit tests replay them.

    SHARDGATE_CAPTURE_PORT=15310 python -m tests.unit.frontend.mysql.capture_sessions

expects a listener on that port started with ``router.frontend.mysql.protocol.mysql_nonce`` patched to return
``FIXED_NONCE`` and the users ``demo``/``demo`` (mysql_native_password) and ``sha``/``shapw``
(caching_sha2_password with a stored fast digest), keyspace ``main`` holding a table ``ty (id INT PRIMARY KEY,
s VARCHAR(20))``. Not a test; run by hand when a client's bytes should be re-recorded.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

FIXED_NONCE = bytes(range(0x41, 0x41 + 20))


def _proxy(listen: socket.socket, target: int, out: list[bytes]) -> None:
    conn, _ = listen.accept()
    up = socket.create_connection(("127.0.0.1", target))
    recorded = bytearray()

    def pump(src: socket.socket, dst: socket.socket, record: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            if record:
                recorded.extend(data)
            dst.sendall(data)

    t = threading.Thread(target=pump, args=(up, conn, False), daemon=True)
    t.start()
    pump(conn, up, True)
    t.join(5)
    out.append(bytes(recorded))


def record(target: int, client: str) -> bytes:
    listen = socket.socket()
    listen.bind(("127.0.0.1", 0))
    listen.listen(1)
    port = listen.getsockname()[1]
    out: list[bytes] = []
    t = threading.Thread(target=_proxy, args=(listen, target, out), daemon=True)
    t.start()
    subprocess.run([sys.executable, "-c", CLIENTS[client].format(port=port)], check=True,
                   env={**os.environ, "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH", "")})
    t.join(10)
    return out[0]


CLIENTS = {
    "pymysql": """
import pymysql
c = pymysql.connect(host="127.0.0.1", port={port}, user="demo", password="demo", database="main",
                    client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
cur = c.cursor()
cur.execute("SELECT @@version_comment LIMIT 1")
cur.execute("SELECT id, s FROM ty WHERE id = %s", (1,))
cur.execute("SELECT 1; SELECT 2")
cur.nextset()
c.ping()
c.select_db("main")
c.commit()
c.close()
""",
    "connector_prepared": """
import mysql.connector
c = mysql.connector.connect(host="127.0.0.1", port={port}, user="sha", password="shapw", database="main",
                            use_pure=True)
cur = c.cursor(prepared=True)
cur.execute("SELECT id, s FROM ty WHERE id = ? AND s <> ?", (1, "x"))
cur.fetchall()
cur.execute("SELECT id, s FROM ty WHERE id = ? AND s <> ?", (2, None))
cur.fetchall()
cur.close()
c.close()
""",
}


def main() -> None:
    target = int(os.environ.get("SHARDGATE_CAPTURE_PORT", "15310"))
    lines = ['"""Client bytes recorded by ``capture_sessions.py`` (server nonce ``FIXED_NONCE``). Generated."""',
             "", f"FIXED_NONCE = {FIXED_NONCE!r}", "", "SESSIONS = {"]
    for name in CLIENTS:
        data = record(target, name)
        hexed = data.hex()
        chunks = [hexed[i:i + 100] for i in range(0, len(hexed), 100)]
        lines.append(f'    "{name}": bytes.fromhex(')
        lines.extend(f'        "{c}"' for c in chunks)
        lines.append("    ),")
    lines.append("}")
    path = os.path.join(os.path.dirname(__file__), "captured.py")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
