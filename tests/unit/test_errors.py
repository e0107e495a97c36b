"""The error catalog: stable unique ids, and codes that client libraries recognise."""
import re

import pytest

from sharding import errors


def test_ids_are_unique_and_well_formed() -> None:
    classes = errors.all_error_classes()
    ids = [cls.id for cls in classes]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for cls in classes:
        assert re.fullmatch(r"SG\d{4}", cls.id), cls
        assert re.fullmatch(r"[0-9A-Z]{5}", cls.pg_sqlstate), cls
        assert re.fullmatch(r"[0-9A-Z]{5}", cls.mysql_sqlstate), cls
        assert 1000 <= cls.mysql_errno < 10000, cls


@pytest.mark.parametrize(
    ("cls", "errno", "pg"),
    [
        (errors.SyntaxError_, 1064, "42601"),
        (errors.UnknownTableError, 1146, "42P01"),
        (errors.PermissionDeniedError, 1142, "42501"),
        (errors.TooManyConnectionsError, 1040, "53300"),
        (errors.QueryCanceledError, 1317, "57014"),
        (errors.InternalError, 1105, "XX000"),
    ],
)
def test_codes_clients_expect(cls: type[errors.ShardgateError], errno: int, pg: str) -> None:
    assert (cls.mysql_errno, cls.pg_sqlstate) == (errno, pg)


def test_backend_error_passes_server_codes_through() -> None:
    exc = errors.BackendError("duplicate key", mysql_errno=1062, mysql_sqlstate="23000", pg_sqlstate="23505")
    assert (exc.mysql_errno, exc.mysql_sqlstate, exc.pg_sqlstate) == (1062, "23000", "23505")
    assert errors.BackendError.mysql_errno == 1105  # the class default is untouched


def test_client_message_carries_the_id() -> None:
    assert errors.UnknownTableError("table 'x' not found").client_message() == "SG2003: table 'x' not found"


def test_config_error_keeps_every_problem() -> None:
    exc = errors.ConfigError("2 problems", problems=["a: bad", "b: worse"])
    assert exc.problems == ["a: bad", "b: worse"]
