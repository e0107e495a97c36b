"""Binding: the values of one execution, from the fingerprint's literals and the client's bind parameters."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cython_ext.fpvalues import Param
from sharding.errors import InvalidValueError


def _param(p: Param, params: Sequence[Any] | Mapping[str, Any] | None) -> Any:
    if params is None:
        raise InvalidValueError("the statement has bind parameters but no values were given")
    try:
        value = params[p.key]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        name = f"${p.key + 1}" if isinstance(p.key, int) else f":{p.key}"
        raise InvalidValueError(f"no value for bind parameter {name}") from None
    if p.is_list:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InvalidValueError(f"bind parameter ::{p.key} needs a list of values")
        if not value:
            raise InvalidValueError(f"bind parameter ::{p.key} is an empty list")
        return tuple(value)
    return value


def bind_values(values: Sequence[Any], params: Sequence[Any] | Mapping[str, Any] | None) -> list[Any]:
    """The fingerprint's values with every ``Param`` replaced by the client's value for it.

    Folded IN lists stay tuples; a list parameter inside one is spliced in.
    """
    out: list[Any] = []
    for v in values:
        cls = v.__class__
        if cls is Param:
            out.append(_param(v, params))
        elif cls is tuple:
            items: list[Any] = []
            for item in v:
                if item.__class__ is Param:
                    bound = _param(item, params)
                    if item.is_list:
                        items.extend(bound)
                    else:
                        items.append(bound)
                else:
                    items.append(item)
            out.append(tuple(items))
        else:
            out.append(v)
    return out


def count_params(values: Sequence[Any]) -> int:
    """How many positional parameters the statement takes (the highest ``?``/``$n`` index + 1)."""
    top = -1
    for v in values:
        for item in (v if v.__class__ is tuple else (v,)):
            if item.__class__ is Param and isinstance(item.key, int):
                top = max(top, item.key)
    return top + 1
