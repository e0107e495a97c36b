"""Value markers shared by ``cython_ext.fingerprint`` and its twin ``cython_ext.pure.fingerprint``.

Both implementations return instances of these very classes, so results compare equal whichever module produced
them. Pure Python on purpose: the classes are created rarely (a bind parameter, an error), compared often.
"""
from __future__ import annotations

__all__ = ["FingerprintError", "Param"]


class Param:
    """A bind parameter that was already in the SQL text; its value arrives with the execute request.

    ``key`` is an ``int`` for positional parameters (``?`` counted from 0 in order of appearance, PostgreSQL
    ``$n`` as ``n - 1``) and a ``str`` for Vitess named ones (``:name``). ``is_list`` marks the Vitess list form
    ``::name`` (MySQL dialect only), whose bound value is a sequence, as in ``IN ::ids``. Immutable: the compiled
    module hands out shared instances for small positions.
    """

    __slots__ = ("is_list", "key")

    key: int | str
    is_list: bool

    def __init__(self, key: int | str, is_list: bool = False) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "is_list", is_list)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Param is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Param is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[type[Param], tuple[int | str, bool]]:
        return (Param, (self.key, self.is_list))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Param:
            return NotImplemented
        return self.key == other.key and self.is_list == other.is_list  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((Param, self.key, self.is_list))

    def __repr__(self) -> str:
        return f"Param({self.key!r}, is_list=True)" if self.is_list else f"Param({self.key!r})"


class FingerprintError(ValueError):
    """SQL text the fingerprint scanner cannot tokenize: an unterminated string, quoted identifier, comment or
    dollar quote, or an invalid escape in a PostgreSQL escape string. ``position`` is the 0-based index in the text
    where the offending construct starts."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position

    def __reduce__(self) -> tuple[type[FingerprintError], tuple[str, int]]:
        return (self.__class__, (self.message, self.position))
