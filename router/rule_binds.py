"""Conditions of query rules on a statement's values (``router.rules``, ``match.binds``).

``parse_condition("bind.0 > 1000")`` reads one condition; ``BindCondition.holds(request)`` judges it. Grammar::

    condition := SUBJECT [OP VALUE | IN-OP (VALUE, …) | ~ 'regex' | IS [NOT] NULL] | len(SUBJECT) OP NUMBER
    SUBJECT   := bind.N (the statement's N-th value from 0: the fingerprint's :v{N+1}) | bind.NAME (a named
                 bind parameter, :NAME)
    OP        := = | == | != | <> | < | <= | > | >=        IN-OP := in | not in
    VALUE     := a number | 'text' | "text" (backslash escapes the next character)

A bare SUBJECT holds when the value is given and not NULL. Numbers compare as numbers, a string value being read as
MySQL converts it (its numeric prefix, else 0; so ``'5000abc' > 1000``); a string operand compares the value's text.
A list value (a folded ``IN (…)``) holds when one of its items does; ``len()`` counts its items (1 for a single
value, 0 for NULL). NULL compares to nothing. A value the statement does not have makes the condition false.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.rules import RuleRequest

__all__ = ["BindCondition", "parse_condition"]

_NUMBER_PREFIX = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne, "<>": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_MISSING = object()


def _as_number(value: Any) -> Decimal | float | int | None:
    """A value as a number the way MySQL converts it (a string's numeric prefix, else 0); None for NULL. Integers
    stay integers: they compare exactly with Decimal operands, and skip a conversion per statement."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | Decimal):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("latin-1")
    if isinstance(value, str):
        m = _NUMBER_PREFIX.match(value)
        if m is None:
            return Decimal(0)
        try:
            return Decimal(m.group().strip())
        except InvalidOperation:  # pragma: no cover - the pattern only matches valid numbers
            return Decimal(0)
    return None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


@dataclass(frozen=True, slots=True)
class BindCondition:
    """One condition on a statement value: ``subject`` is an index or a parameter name; ``length`` compares the
    count of items; ``op`` is a comparison, ``in``, ``not in``, ``~``, ``is null``, ``is not null`` or
    ``present``."""

    text: str
    subject: int | str
    op: str
    operand: Any = None  # a number (Decimal), a string, a tuple of those, or a compiled regex
    length: bool = False

    def value(self, request: RuleRequest) -> Any:
        if isinstance(self.subject, int):
            return request.binds[self.subject] if self.subject < len(request.binds) else _MISSING
        if request.params is None:
            return _MISSING
        return request.params.get(self.subject, _MISSING)

    def holds(self, request: RuleRequest) -> bool:
        value = self.value(request)
        if value is _MISSING:
            return False
        if self.length:
            count = len(value) if isinstance(value, tuple | list) else (0 if value is None else 1)
            return self._one(count)
        if self.op == "is null":
            return value is None
        if self.op == "is not null" or self.op == "present":
            return value is not None
        items = value if isinstance(value, tuple | list) else (value,)
        return any(self._one(v) for v in items)

    def _one(self, value: Any) -> bool:
        if value is None:
            return False  # SQL NULL compares to nothing
        op = self.op
        if op == "~":
            text = _as_text(value)
            return text is not None and self.operand.search(text) is not None
        if op in ("in", "not in"):
            found = any(self._equal(value, item) for item in self.operand)
            return found if op == "in" else not found
        compare = _OPS[op]
        if isinstance(self.operand, str):
            text = _as_text(value)
            return text is not None and compare(text, self.operand)
        number = _as_number(value)
        if number is None:
            return False
        operand = float(self.operand) if isinstance(number, float) else self.operand
        return bool(compare(number, operand))

    @staticmethod
    def _equal(value: Any, item: Any) -> bool:
        if isinstance(item, str):
            return _as_text(value) == item
        number = _as_number(value)
        return number is not None and (float(number) == float(item) if isinstance(number, float) else number == item)


_SUBJECT = r"bind\.(?P<subject>\d+|[A-Za-z_][A-Za-z0-9_]*)"
_CONDITION = re.compile(
    rf"\s*(?:len\(\s*{_SUBJECT}\s*\)|{_SUBJECT.replace('subject', 'subject2')})\s*"
    r"(?:(?P<op>is\s+not\s+null|is\s+null|not\s+in|in|<=|>=|<>|!=|==|=|<|>|~)\s*(?P<rest>.*?))?\s*",
    re.IGNORECASE | re.DOTALL)
_LITERAL = re.compile(r"\s*(?:'(?P<s1>(?:[^'\\]|\\.)*)'|\"(?P<s2>(?:[^\"\\]|\\.)*)\"|(?P<num>[+-]?(?:\d+(?:\.\d*)?|"
                      r"\.\d+)(?:[eE][+-]?\d+)?))\s*", re.DOTALL)


def _literal(text: str) -> tuple[Any, str] | None:
    """The first literal of ``text`` and the rest, or None."""
    m = _LITERAL.match(text)
    if m is None:
        return None
    if m.group("num") is not None:
        value: Any = Decimal(m.group("num"))
    else:
        raw = m.group("s1") if m.group("s1") is not None else m.group("s2")
        value = re.sub(r"\\(.)", r"\1", raw)
    return value, text[m.end():]


def parse_condition(text: str) -> BindCondition:
    """``bind.0 > 1000`` -> a ``BindCondition``; ``ValueError`` saying what is wrong."""
    m = _CONDITION.fullmatch(text)
    if m is None:
        raise ValueError("expected bind.N or bind.NAME (or len(bind.X)), an operator and a value, "
                         "e.g. \"bind.0 > 1000\"")
    length = m.group("subject") is not None
    raw = m.group("subject") if length else m.group("subject2")
    subject: int | str = int(raw) if raw.isdigit() else raw
    op = " ".join((m.group("op") or "").lower().split())
    rest = m.group("rest") or ""
    if not op:
        if length:
            raise ValueError("len(…) needs a comparison, e.g. len(bind.0) > 100")
        return BindCondition(text, subject, "present")
    if op in ("is null", "is not null"):
        if rest.strip() or length:
            raise ValueError(f"nothing may follow {op.upper()}" if rest.strip() else "len(…) is never NULL")
        return BindCondition(text, subject, op)
    if op in ("in", "not in"):
        inner = rest.strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            raise ValueError(f"{op} needs a parenthesized list, e.g. {op} (1, 2, 'a')")
        items: list[Any] = []
        body = inner[1:-1]
        while body.strip():
            got = _literal(body)
            if got is None:
                raise ValueError(f"cannot read a value at {body.strip()[:20]!r}")
            items.append(got[0])
            body = got[1].strip()
            if body.startswith(","):
                body = body[1:]
            elif body:
                raise ValueError(f"expected ',' or ')' at {body[:20]!r}")
        if not items:
            raise ValueError(f"{op} needs at least one value")
        return BindCondition(text, subject, op, tuple(items), length)
    if op == "~":
        got = _literal(rest)
        if got is None or got[1].strip() or not isinstance(got[0], str):
            raise ValueError("~ needs a quoted regular expression, e.g. bind.0 ~ '^admin'")
        try:
            return BindCondition(text, subject, op, re.compile(got[0]), length)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
    got = _literal(rest)
    if got is None or got[1].strip():
        raise ValueError(f"{op} needs one value: a number or a quoted string")
    if length and not isinstance(got[0], Decimal):
        raise ValueError("len(…) compares with a number")
    return BindCondition(text, subject, op, got[0], length)
