"""The config's client-session limits: the ``limits`` section and a user's own ``max_connections``."""
from __future__ import annotations

import pytest

from sharding.config import parse_config
from sharding.config_model import ClientLimits
from sharding.errors import ConfigError
from tests.unit.sharding.test_config import ENTRY, READER, base_doc


def test_limits_default_to_none() -> None:
    config = parse_config(base_doc(), source="c.yaml")
    assert config.limits == ClientLimits(0, 0)
    assert all(u.max_connections is None for u in config.users)


def test_limits_and_a_users_own_limit() -> None:
    doc = base_doc()
    doc["limits"] = {"max_client_connections": 2000, "max_user_connections": 50}
    doc["users"] = [dict(ENTRY, max_connections=5), READER]
    config = parse_config(doc, source="c.yaml")
    assert config.limits == ClientLimits(2000, 50)
    assert config.user("app").max_connections == 5
    assert config.user("reader").max_connections is None


def test_bad_limits_are_reported_with_their_path() -> None:
    doc = base_doc()
    doc["limits"] = {"max_client_connections": -1, "max_clients": 3}
    doc["users"] = [dict(ENTRY, max_connections="many")]
    with pytest.raises(ConfigError) as info:
        parse_config(doc, source="c.yaml")
    text = "\n".join(info.value.problems)
    assert "limits.max_client_connections" in text and "max_clients" in text
    assert "users[0].max_connections" in text
