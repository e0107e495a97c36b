"""Record what PostgreSQL clients send, for the protocol tests and the fuzzer (run by hand, not a test).

    python -m tests.unit.frontend.postgres.capture --listen 25499 --upstream 127.0.0.1:25433 --out DIR

Forwards each connection to the upstream router (or server) and writes the client's bytes of connection N to
``DIR/<prefix>-N.hex``: hex, 64 bytes a line. Run a client against the listen port, then stop with Ctrl-C. Record
against a router with ``trust`` authentication so that a replay needs no password exchange.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
from pathlib import Path


def write_hex(path: Path, data: bytes) -> None:
    lines = [data[i:i + 64].hex() for i in range(0, len(data), 64)]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def read_hex(path: Path) -> bytes:
    return bytes.fromhex("".join(path.read_text(encoding="ascii").split()))


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", default="session")
    args = p.parse_args()
    host, _, port = args.upstream.rpartition(":")
    out = Path(args.out)
    counter = itertools.count(1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = next(counter)
        up_r, up_w = await asyncio.open_connection(host, int(port))
        sent = bytearray()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bytearray | None) -> None:
            while data := await src.read(65536):
                if keep is not None:
                    keep += data
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_w, sent), pump(up_r, writer, None), return_exceptions=True)
        write_hex(out / f"{args.prefix}-{n}.hex", bytes(sent))

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
