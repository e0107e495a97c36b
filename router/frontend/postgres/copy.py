"""COPY through the router.

``COPY t [(cols)] FROM STDIN`` (text or CSV): the rows arrive in CopyData messages, are parsed here, and go to the
shards as batched ``INSERT … VALUES`` statements through the engine, whose insert path routes each row by its
table's vindex (and fills sequences and lookup vindexes). Values stay the text COPY sent: each becomes an untyped
literal that the shard reads with the column's own input function, exactly as COPY would. The whole COPY is one
transaction (the session's, or one opened for it), so a bad row leaves nothing behind.

``COPY t TO STDOUT`` / ``COPY (query) TO STDOUT`` (text or CSV): the query runs through the engine (a scatter
for a sharded table) and its rows stream out as CopyData, formatted as PostgreSQL's COPY would format them.

Binary COPY, and COPY to or from a server file or program, are refused: the router has no files of the shards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from router.frontend.postgres import messages as M
from router.frontend.postgres import types as T
from router.frontend.postgres.portal import fields_of
from router.frontend.postgres.running import EngineRun
from router.frontend.postgres.statements import Info, classify
from sharding.errors import InvalidValueError, QueryCanceledError, SyntaxError_, UnsupportedError

__all__ = ["CopyStatement", "parse_copy", "run_copy"]

BATCH_ROWS = 500
MAX_LINE = 64 * 1024 * 1024

_TOKEN = re.compile(r"""\s*(?:
    (?P<qid>"(?:[^"]|"")*")
  | (?P<estr>[Ee]'(?:[^'\\]|''|\\.)*')
  | (?P<str>'(?:[^']|'')*')
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<num>[0-9]+)
  | (?P<punct>[(),.;*=])
)""", re.VERBOSE)


@dataclass(frozen=True, slots=True)
class CopyStatement:
    table: str | None  # as written (quoted parts kept), None for COPY (query)
    columns: tuple[str, ...]  # as written
    query: str | None
    direction: str  # "from" | "to"
    format: str = "text"  # text | csv | binary
    delimiter: str = "\t"
    null: str = "\\N"
    header: bool = False
    quote: str = '"'
    escape: str = '"'
    force_quote: tuple[str, ...] = ()
    force_quote_all: bool = False


def _unstr(tok: str) -> str:
    if tok[0] in "Ee":
        body = tok[2:-1]
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(m.group(1),
                                                                                                m.group(1)),
                      body.replace("''", "'"))
    return tok[1:-1].replace("''", "'")


def _tokens(sql: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    n = len(sql)
    while pos < n:
        if sql[pos:].strip() == "":
            break
        m = _TOKEN.match(sql, pos)
        if m is None or m.end() == pos:
            raise SyntaxError_(f"syntax error in COPY at position {pos + 1}", position=pos + 1)
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _closing_paren(sql: str, start: int) -> int | None:
    """The index of the parenthesis closing the one at ``start`` (strings, quoted names and comments skipped)."""
    depth, i, n = 0, start, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = i + 1
            while j < n and not (sql[j] == c and sql[j + 1:j + 2] != c):
                j += 2 if sql[j] == c else 1
            i = j + 1
            continue
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def parse_copy(sql: str) -> CopyStatement:
    """Read a COPY statement (current and pre-9.0 option syntax)."""
    table: str | None = None
    query: str | None = None
    columns: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise SyntaxError_(f"syntax error in COPY: expected {what}", position=1)

    head = re.match(r"\s*COPY\s*\(", sql, re.IGNORECASE)
    if head is not None:
        end = _closing_paren(sql, head.end() - 1)
        need(end is not None, "a closing parenthesis")
        assert end is not None
        query = sql[head.end():end].strip()
        toks = [("word", "COPY"), ("word", "_q_"), *_tokens(sql[end + 1:])]
    else:
        toks = _tokens(sql)
    i = 1  # after COPY

    def word(k: int) -> str:
        return toks[k][1].upper() if k < len(toks) and toks[k][0] == "word" else ""

    need(i < len(toks), "a table or a query")
    if query is not None:
        i = 2
    else:
        parts = []
        while i < len(toks) and toks[i][0] in ("word", "qid"):
            parts.append(toks[i][1])
            i += 1
            if i < len(toks) and toks[i] == ("punct", "."):
                i += 1
                continue
            break
        need(bool(parts), "a table name")
        table = ".".join(parts)
        if i < len(toks) and toks[i] == ("punct", "("):
            i += 1
            while i < len(toks) and toks[i] != ("punct", ")"):
                if toks[i][0] in ("word", "qid"):
                    columns.append(toks[i][1])
                i += 1
            need(i < len(toks), "')' after the column list")
            i += 1
    direction = word(i).lower()
    need(direction in ("from", "to"), "FROM or TO")
    i += 1
    target = word(i)
    if target not in ("STDIN", "STDOUT"):
        raise UnsupportedError("COPY to or from a file or program is not supported through the router: "
                               "use COPY … FROM STDIN / TO STDOUT (psql's \\copy)")
    need((direction, target) in (("from", "STDIN"), ("to", "STDOUT")), "STDIN" if direction == "from" else "STDOUT")
    i += 1
    opts: dict[str, Any] = {}
    if word(i) == "WITH":
        i += 1
    if i < len(toks) and toks[i] == ("punct", "("):
        i += 1
        while i < len(toks) and toks[i] != ("punct", ")"):
            name = word(i).lower()
            need(bool(name), "an option name")
            i += 1
            value: Any = True
            if i < len(toks) and toks[i] not in (("punct", ","), ("punct", ")")):
                kind, text = toks[i]
                if kind == "punct" and text == "(":
                    vals = []
                    i += 1
                    while i < len(toks) and toks[i] != ("punct", ")"):
                        if toks[i][0] in ("word", "qid"):
                            vals.append(toks[i][1])
                        i += 1
                    value = tuple(vals)
                elif kind == "punct" and text == "*":
                    value = "*"
                else:
                    value = _unstr(text) if kind in ("str", "estr") else text
                i += 1
            opts[name] = value
            if i < len(toks) and toks[i] == ("punct", ","):
                i += 1
    else:  # the old syntax: BINARY, DELIMITER 'x', NULL 'x', CSV, HEADER, QUOTE 'x', ESCAPE 'x', FORCE …
        while i < len(toks) and toks[i] != ("punct", ";"):
            w = word(i)
            i += 1
            if w == "AS":
                continue
            if w == "BINARY":
                opts["format"] = "binary"
            elif w == "CSV":
                opts["format"] = "csv"
            elif w == "HEADER":
                opts["header"] = True
            elif w in ("DELIMITER", "NULL", "QUOTE", "ESCAPE"):
                if word(i) == "AS":
                    i += 1
                need(i < len(toks) and toks[i][0] in ("str", "estr"), f"a string after {w}")
                opts[w.lower()] = _unstr(toks[i][1])
                i += 1
            elif w == "FORCE":
                kind2 = word(i)
                i += 1
                if kind2 == "NOT":
                    i += 1  # NULL
                cols = []
                while i < len(toks) and toks[i][0] in ("word", "qid") and word(i) not in ("CSV", "HEADER"):
                    cols.append(toks[i][1])
                    i += 1
                    if i < len(toks) and toks[i] == ("punct", ","):
                        i += 1
                if kind2 == "QUOTE":
                    opts["force_quote"] = tuple(cols)
            elif w == "FREEZE" or w == "OIDS":
                continue
            else:
                raise SyntaxError_(f"syntax error in COPY near {w or toks[i - 1][1]!r}", position=1)
    return _with_options(table, tuple(columns), query, direction, opts)


def _bool_opt(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    return str(v).lower() in ("true", "on", "1", "yes", "match")


def _with_options(table: str | None, columns: tuple[str, ...], query: str | None, direction: str,
                  opts: dict[str, Any]) -> CopyStatement:
    fmt = str(opts.pop("format", "text")).lower()
    if fmt not in ("text", "csv", "binary"):
        raise InvalidValueError(f'COPY format "{fmt}" not recognized')
    csv = fmt == "csv"
    delimiter = str(opts.pop("delimiter", "," if csv else "\t"))
    null = str(opts.pop("null", "" if csv else "\\N"))
    header = _bool_opt(opts.pop("header", False))
    quote = str(opts.pop("quote", '"'))
    escape = str(opts.pop("escape", quote))
    fq = opts.pop("force_quote", ())
    opts.pop("freeze", None)
    opts.pop("encoding", None)
    opts.pop("force_not_null", None)
    opts.pop("force_null", None)
    if opts:
        raise UnsupportedError(f"COPY option {next(iter(opts))!r} is not supported through the router")
    if len(delimiter) != 1 or len(quote) != 1 or len(escape) != 1:
        raise InvalidValueError("COPY delimiter, quote and escape must be a single one-byte character")
    if delimiter in ("\n", "\r") or (not csv and delimiter == "\\"):
        raise InvalidValueError("COPY delimiter cannot be newline, carriage return or backslash")
    return CopyStatement(table, columns, query, direction, fmt, delimiter, null, header, quote, escape,
                         tuple(fq) if isinstance(fq, tuple) else (), fq == "*")


# --- parsing rows ---------------------------------------------------------------------------------------------
_TEXT_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_ESC = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)", re.DOTALL)


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field

    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        if s in _TEXT_ESCAPES:
            return _TEXT_ESCAPES[s]
        if s[0] == "x" and len(s) > 1:
            return chr(int(s[1:], 16))
        if s[0].isdigit() and s[0] in "01234567":
            return chr(int(s, 8) & 0xFF)
        return s

    return _ESC.sub(one, field)


class TextRows:
    """COPY text format: one row per line, fields split on the delimiter, backslash escapes, ``\\N`` NULL."""

    def __init__(self, stmt: CopyStatement) -> None:
        self.stmt = stmt
        self.buf = b""
        self.ended = False
        self.line_no = 0

    def feed(self, data: bytes) -> list[list[str | None]]:
        if self.ended:
            return []
        self.buf += data
        if len(self.buf) > MAX_LINE and b"\n" not in self.buf:
            raise InvalidValueError("COPY line too long")
        lines = self.buf.split(b"\n")
        self.buf = lines.pop()
        return self._rows(lines)

    def finish(self) -> list[list[str | None]]:
        rest, self.buf = self.buf, b""
        return self._rows([rest]) if rest else []

    def _rows(self, lines: list[bytes]) -> list[list[str | None]]:
        out: list[list[str | None]] = []
        stmt = self.stmt
        delim, null = stmt.delimiter, stmt.null
        for raw in lines:
            if self.ended:
                break
            self.line_no += 1
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if raw == b"\\.":
                self.ended = True
                break
            if self.line_no == 1 and stmt.header:
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidValueError(f'invalid byte sequence for encoding "UTF8" (COPY line {self.line_no})')\
                    from None
            out.append([None if f == null else _unescape(f) for f in line.split(delim)])
        return out


class CsvRows:
    """COPY CSV format: quoted fields may hold delimiters, quotes (doubled, or escaped) and newlines; an unquoted
    empty field (the default NULL string) is NULL, a quoted one is an empty string."""

    def __init__(self, stmt: CopyStatement) -> None:
        self.stmt = stmt
        self.text = ""
        self.pending = b""
        self.header_done = not stmt.header
        self.ended = False

    def feed(self, data: bytes) -> list[list[str | None]]:
        if self.ended:
            return []
        raw = self.pending + data
        try:
            self.text += raw.decode("utf-8")
            self.pending = b""
        except UnicodeDecodeError as exc:
            if exc.start >= len(raw) - 3:  # a character split across messages
                self.text += raw[:exc.start].decode("utf-8")
                self.pending = raw[exc.start:]
            else:
                raise InvalidValueError('invalid byte sequence for encoding "UTF8" in COPY data') from None
        if len(self.text) > MAX_LINE and "\n" not in self.text:
            raise InvalidValueError("COPY line too long")
        return self._records(final=False)

    def finish(self) -> list[list[str | None]]:
        if self.pending:
            raise InvalidValueError('invalid byte sequence for encoding "UTF8" at the end of COPY data')
        return self._records(final=True)

    def _records(self, final: bool) -> list[list[str | None]]:
        stmt = self.stmt
        q, esc, delim, null = stmt.quote, stmt.escape, stmt.delimiter, stmt.null
        text, n = self.text, len(self.text)
        out: list[list[str | None]] = []
        pos = 0
        while pos < n and not self.ended:
            fields: list[str | None] = []
            field: list[str] = []
            quoted = False
            in_quotes = False
            i = pos
            complete = False
            while i < n:
                c = text[i]
                if in_quotes:
                    if c == esc and esc != q and i + 1 < n and text[i + 1] in (q, esc):
                        field.append(text[i + 1])
                        i += 2
                        continue
                    if c == q:
                        if esc == q and i + 1 < n and text[i + 1] == q:
                            field.append(q)
                            i += 2
                            continue
                        if esc == q and i + 1 >= n and not final:
                            break  # a doubled quote may be split across messages
                        in_quotes = False
                        i += 1
                        continue
                    field.append(c)
                    i += 1
                    continue
                if c == q:
                    in_quotes = quoted = True
                    i += 1
                elif c == delim:
                    fields.append(self._value(field, quoted, null))
                    field, quoted = [], False
                    i += 1
                elif c in "\r\n":
                    fields.append(self._value(field, quoted, null))
                    i += 2 if c == "\r" and i + 1 < n and text[i + 1] == "\n" else 1
                    complete = True
                    break
                else:
                    field.append(c)
                    i += 1
            if not complete:
                if final and i >= n and (field or fields or quoted):
                    if in_quotes:
                        raise InvalidValueError("unterminated CSV quoted field")
                    fields.append(self._value(field, quoted, null))
                    pos = n
                    complete = True
                else:
                    break
            pos = i if i > pos else n
            if fields == ["\\."] or (len(fields) == 1 and fields[0] == "\\." and not quoted):
                self.ended = True
                break
            if not self.header_done:
                self.header_done = True
                continue
            out.append(fields)
        self.text = text[pos:]
        return out

    @staticmethod
    def _value(field: list[str], quoted: bool, null: str) -> str | None:
        s = "".join(field)
        if not quoted and s == null:
            return None
        return s


# --- the COPY sub-protocol ----------------------------------------------------------------------------------
async def run_copy(handler: Any, sql: str, info: Info) -> str:
    """Run one COPY for ``handler`` (simple or extended protocol); returns the command tag."""
    if handler.failed:
        raise M.PgError("current transaction is aborted, commands ignored until end of transaction block",
                        sqlstate="25P02")
    stmt = parse_copy(sql)
    await handler._park_others()
    if stmt.format == "binary":
        raise UnsupportedError("binary COPY is not supported through the router; use text or CSV")
    if stmt.direction == "to":
        return await _copy_out(handler, stmt)
    return await _copy_in(handler, stmt)


def _split_table(handler: Any, table: str) -> tuple[str | None, str]:
    """``ks.t`` with ``ks`` a keyspace → (ks, t); otherwise (None, table as written)."""
    parts = table.split(".")
    if len(parts) == 2 and parts[0].strip('"') in handler.gateway.snapshot.keyspaces:
        return parts[0].strip('"'), parts[1]
    return None, table


async def _table_columns(handler: Any, table: str) -> list[str]:
    from router.frontend.postgres.catalog import on_first_shard

    keyspace, name = _split_table(handler, table)
    session = handler.session
    saved = session.state.keyspace
    if keyspace is not None:
        session.state.keyspace = keyspace
    try:
        literal = "'" + name.replace("'", "''") + "'"
        run = await on_first_shard(handler.gateway, session,
                                   f"SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = {literal}::regclass"
                                   " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", None)
    finally:
        session.state.keyspace = saved
    rows = await run.next_batch() or []
    return ['"' + str(r[0]).replace('"', '""') + '"' for r in rows]


async def _copy_in(handler: Any, stmt: CopyStatement) -> str:
    assert stmt.table is not None
    columns = list(stmt.columns) or await _table_columns(handler, stmt.table)
    if not columns:
        raise InvalidValueError(f'relation "{stmt.table}" has no columns to COPY into')
    proto, wire, session = handler.proto, handler.wire, handler.session
    parser: TextRows | CsvRows = CsvRows(stmt) if stmt.format == "csv" else TextRows(stmt)
    width = len(columns)
    head = f"INSERT INTO {stmt.table} ({', '.join(columns)}) VALUES "
    own_tx = not session.in_transaction
    if own_tx:
        await session.execute("BEGIN")
    proto.send(M.copy_in_response(True, width))
    proto.begin_copy_in()
    wire.flush()
    total = 0
    batch: list[list[str | None]] = []
    ok = False
    try:
        while True:
            event = await wire.next_event()
            if event is None or event is M.TERMINATE:
                raise QueryCanceledError("COPY from stdin failed: the connection closed")
            if isinstance(event, M.CopyData):
                batch.extend(parser.feed(event.data))
            elif isinstance(event, M.CopyDone):
                batch.extend(parser.finish())
                proto.end_copy()
                break
            elif isinstance(event, M.CopyFail):
                proto.end_copy()
                raise QueryCanceledError(f"COPY from stdin failed: {event.message}")
            while len(batch) >= BATCH_ROWS:
                total += await _insert(session, head, width, batch[:BATCH_ROWS], total)
                del batch[:BATCH_ROWS]
        if batch:
            total += await _insert(session, head, width, batch, total)
        ok = True
    finally:
        proto.end_copy()
        if own_tx:
            if ok:
                await session.execute("COMMIT")
            elif session.in_transaction:
                await session.execute("ROLLBACK")
    return f"COPY {total}"


_ROW_SQL: dict[tuple[int, int], str] = {}


def _values_sql(rows: int, width: int) -> str:
    key = (rows, width)
    text = _ROW_SQL.get(key)
    if text is None:
        groups = []
        n = 1
        for _ in range(rows):
            groups.append("(" + ", ".join(f"${n + k}" for k in range(width)) + ")")
            n += width
        text = ", ".join(groups)
        if len(_ROW_SQL) < 64:
            _ROW_SQL[key] = text
    return text


async def _insert(session: Any, head: str, width: int, rows: list[list[str | None]], done: int) -> int:
    params: list[Any] = []
    for k, row in enumerate(rows):
        if len(row) != width:
            what = "extra data after last expected column" if len(row) > width else \
                f'missing data for column {width - (width - len(row))}'
            raise InvalidValueError(f"{what} (COPY row {done + k + 1})")
        params.extend(row)
    await session.execute(head + _values_sql(len(rows), width), params)
    return len(rows)


# --- COPY TO STDOUT -----------------------------------------------------------------------------------------------
_TEXT_OUT = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
                           "\v": "\\v"})


async def _copy_out(handler: Any, stmt: CopyStatement) -> str:
    if stmt.query is not None:
        sql = stmt.query
    else:
        assert stmt.table is not None
        cols = ", ".join(stmt.columns) if stmt.columns else "*"
        sql = f"SELECT {cols} FROM {stmt.table}"
    info = classify(sql)
    if info.kind not in ("rows", "dml"):
        raise SyntaxError_("COPY (query) TO needs a SELECT, VALUES, or DML with RETURNING")
    run = await EngineRun(handler.session, sql, None, info).open()
    proto, wire = handler.proto, handler.wire
    total = 0
    try:
        fields = run.fields or fields_of(())
        encoders = [T.text_encoder(f.oid, handler._timezone) for f in fields]
        csv = stmt.format == "csv"
        delim = stmt.delimiter
        proto.send(M.copy_out_response(True, len(fields)))
        if stmt.header:
            proto.send(M.copy_data((delim.join(_csv_field(f.name, stmt, True) if csv else f.name for f in fields)
                                    + "\n").encode()))
        force = stmt.force_quote_all
        forced = {c.strip('"') for c in stmt.force_quote}
        names = [f.name for f in fields]
        while True:
            batch = await run.next_batch()
            if batch is None:
                break
            out = proto.out
            for row in batch:
                cells = []
                for k, (enc, v) in enumerate(zip(encoders, row, strict=True)):
                    if v is None:
                        cells.append(stmt.null)
                        continue
                    text = enc(v).decode("utf-8", "surrogateescape")
                    if csv:
                        cells.append(_csv_field(text, stmt, force or names[k] in forced))
                    else:
                        cells.append(text.translate(_TEXT_OUT).replace(delim, "\\" + delim) if delim != "\t"
                                     else text.translate(_TEXT_OUT))
                out += M.copy_data((delim.join(cells) + "\n").encode("utf-8", "surrogateescape"))
            total += len(batch)
            if len(out) >= 256 * 1024:
                await wire.drain()
                if wire.closed:
                    from router.frontend.postgres.handler import ClientGone

                    raise ClientGone("the client closed the connection")
        proto.send(M.COPY_DONE_MSG)
    except BaseException as exc:
        await run.close(exc)
        raise
    await run.close()
    return f"COPY {total}"


def _csv_field(text: str, stmt: CopyStatement, force: bool) -> str:
    q, esc = stmt.quote, stmt.escape
    if force or text == "" or text == stmt.null or any(c in text for c in (stmt.delimiter, q, "\n", "\r")) \
            or text.startswith("\\."):
        body = text.replace(esc, esc + esc) if esc != q else text
        return q + body.replace(q, esc + q) + q
    return text
