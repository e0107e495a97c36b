"""The protocol state machine, fed bytes (captured client sessions and hand-made ones); no sockets, no router."""
import struct

import pytest

from router.frontend.postgres import messages as M
from router.frontend.postgres.auth import AuthPolicy, parse_hba
from router.frontend.postgres.protocol import Cancel, Login, NeedTLS, PgProtocol, State
from sharding.auth import make_user_entry
from sharding.config import parse_config
from tests.unit.frontend.postgres.support import ScramClient, all_captures, drain, replies, split_frontend

TRUST = parse_hba("host all all all trust")


def users() -> tuple:
    doc = {
        "users": [make_user_entry("app", "secret", roles=["admin"]),
                  make_user_entry("old", "pw", methods=["md5"])],
        "keyspaces": {"ks": {"shards": {"0": {"engine": "postgres", "host": "127.0.0.1", "port": 5432,
                                              "database": "d", "user": "u"}}}},
        "vschema": {"keyspaces": {"ks": {"sharded": False, "tables": {}}}},
    }
    return parse_config(doc, source="<test>").users


def ready_proto(**kw: object) -> PgProtocol:
    proto = PgProtocol(AuthPolicy((), TRUST), peer="127.0.0.1", **kw)  # type: ignore[arg-type]
    proto.feed(M.fe_startup({"user": "u", "database": "ks"}))
    events = drain(proto)
    assert isinstance(events[0], Login)
    proto.take_output()
    return proto


# --- startup ----------------------------------------------------------------------------------------------------
def test_trust_login_reports_parameters_key_and_ready() -> None:
    proto = PgProtocol(AuthPolicy((), TRUST), peer="127.0.0.1")
    proto.feed(M.fe_startup({"user": "u", "database": "ks", "application_name": "t"}))
    ev = proto.next_event()
    assert ev == Login("u", "ks", {"user": "u", "database": "ks", "application_name": "t"}, False)
    assert proto.state is State.LOGIN and proto.next_event() is None
    proto.accept({"server_version": "15.0", "client_encoding": "UTF8"}, 77, 99)
    kinds = [k for k, _ in replies(proto)]
    assert kinds == ["R", "S", "S", "K", "Z"]
    assert proto.state is State.READY


def test_database_defaults_to_the_user() -> None:
    proto = PgProtocol(AuthPolicy((), TRUST))
    proto.feed(M.fe_startup({"user": "alice"}))
    ev = proto.next_event()
    assert isinstance(ev, Login) and ev.database == "alice"


def test_ssl_request_is_refused_without_tls_and_startup_follows() -> None:
    proto = PgProtocol(AuthPolicy((), TRUST))
    proto.feed(M.fe_ssl_request() + M.fe_gssenc_request())
    assert proto.next_event() is None
    assert proto.take_output() == b"NN"
    proto.feed(M.fe_startup({"user": "u"}))
    assert isinstance(proto.next_event(), Login)


def test_ssl_request_with_tls_hands_over_and_refuses_early_data() -> None:
    proto = PgProtocol(AuthPolicy((), TRUST), tls_available=True)
    proto.feed(M.fe_ssl_request())
    assert isinstance(proto.next_event(), NeedTLS)
    assert proto.take_output() == b"S" and proto.state is State.TLS
    proto.tls_started(b"cb")
    proto.feed(M.fe_startup({"user": "u"}))
    assert isinstance(proto.next_event(), Login)
    bad = PgProtocol(AuthPolicy((), TRUST), tls_available=True)
    bad.feed(M.fe_ssl_request() + M.fe_startup({"user": "u"}))  # plaintext after the request: CVE-2021-23214
    assert bad.next_event() is None and bad.closing
    assert M.error_fields(replies(bad)[0][1])["C"] == "08P01"


def test_require_tls_refuses_plain_connections() -> None:
    proto = PgProtocol(AuthPolicy((), TRUST), tls_available=True, tls_required=True)
    proto.feed(M.fe_startup({"user": "u"}))
    assert proto.next_event() is None and proto.closing
    fields = M.error_fields(replies(proto)[0][1])
    assert fields["S"] == "FATAL" and fields["C"] == "28000"


def test_cancel_request_is_an_event_and_ends_the_connection() -> None:
    proto = PgProtocol()
    proto.feed(M.fe_cancel(5, 6))
    assert proto.next_event() == Cancel(5, 6)
    assert proto.closing and proto.take_output() == b""


def test_protocol_3_2_gets_negotiate_protocol_version() -> None:
    proto = PgProtocol(AuthPolicy((), TRUST))
    proto.feed(M.fe_startup({"user": "u", "_pq_.x": "1"}, version=(3 << 16) | 2))
    assert isinstance(proto.next_event(), Login)
    assert [k for k, _ in replies(proto)][:2] == ["v", "R"]


@pytest.mark.parametrize("packet", [
    M.fe_startup({"database": "x"}),  # no user
    M.fe_startup({"user": "u"}, version=2 << 16),
    struct.pack("!i", 99999) + b"\0" * 8,
    M.fe_ssl_request() + M.fe_ssl_request(),
])
def test_bad_startups_are_fatal(packet: bytes) -> None:
    proto = PgProtocol(AuthPolicy((), TRUST))
    proto.feed(packet)
    assert drain(proto) == [] and proto.closing
    kinds = replies(proto)
    assert kinds[-1][0] == "E" and M.error_fields(kinds[-1][1])["S"] == "FATAL"


# --- authentication ---------------------------------------------------------------------------------------------
def test_scram_login() -> None:
    proto = PgProtocol(AuthPolicy(users()), peer="10.0.0.1")
    proto.feed(M.fe_startup({"user": "app", "database": "ks"}))
    assert proto.next_event() is None
    (kind, body), = replies(proto)
    assert kind == "R" and body[:4] == struct.pack("!i", 10) and b"SCRAM-SHA-256\0" in body
    client = ScramClient("secret")
    proto.feed(M.fe_password(client.first()))
    assert proto.next_event() is None
    (kind, body), = replies(proto)
    assert body[:4] == struct.pack("!i", 11)
    proto.feed(M.fe_password(client.final(body[4:])))
    ev = proto.next_event()
    assert isinstance(ev, Login) and ev.is_admin
    (_, final), (_, ok) = replies(proto)
    assert final[:4] == struct.pack("!i", 12) and final[4:] == b"v=" + client.server_signature
    assert ok == struct.pack("!i", 0)


@pytest.mark.parametrize("user", ["app", "nobody"])
def test_scram_wrong_password_and_unknown_user_fail_alike(user: str) -> None:
    proto = PgProtocol(AuthPolicy(users()))
    proto.feed(M.fe_startup({"user": user}))
    proto.next_event()
    proto.take_output()
    client = ScramClient("wrong")
    proto.feed(M.fe_password(client.first()))
    proto.next_event()
    (_, body), = replies(proto)
    proto.feed(M.fe_password(client.final(body[4:])))
    assert proto.next_event() is None and proto.closing
    fields = M.error_fields(replies(proto)[0][1])
    assert (fields["S"], fields["C"]) == ("FATAL", "28P01")
    assert fields["M"] == f'password authentication failed for user "{user}"'


def test_md5_login() -> None:
    import hashlib

    proto = PgProtocol(AuthPolicy(users()))
    proto.feed(M.fe_startup({"user": "old"}))
    proto.next_event()
    (_, body), = replies(proto)
    assert body[:4] == struct.pack("!i", 5)
    salt = body[4:]
    inner = hashlib.md5(b"pw" + b"old").hexdigest().encode()
    proto.feed(M.fe_password(b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0"))
    assert isinstance(proto.next_event(), Login)


def test_hba_rules_pick_methods_per_network() -> None:
    rules = parse_hba("""
        host all app 127.0.0.1/32 trust   # local admin
        host all all 10.0.0.0/8 reject
        host all all all scram-sha-256
    """)
    local = PgProtocol(AuthPolicy(users(), rules), peer="127.0.0.1")
    local.feed(M.fe_startup({"user": "app"}))
    assert isinstance(local.next_event(), Login)
    remote = PgProtocol(AuthPolicy(users(), rules), peer="10.1.2.3")
    remote.feed(M.fe_startup({"user": "app"}))
    assert remote.next_event() is None and remote.closing
    assert M.error_fields(replies(remote)[0][1])["C"] == "28000"


def test_password_message_before_startup_and_wrong_type_during_auth() -> None:
    proto = PgProtocol(AuthPolicy(users()))
    proto.feed(M.fe_startup({"user": "app"}) + M.fe_query("select 1"))
    assert proto.next_event() is None and proto.closing


# --- commands ----------------------------------------------------------------------------------------------------
def test_commands_are_events_in_order() -> None:
    proto = ready_proto()
    proto.feed(M.fe_parse("", "select $1", [23]) + M.fe_bind("", "", [b"1"]) + M.fe_describe("P", "")
               + M.fe_execute("", 0) + M.fe_close("S", "") + M.fe_flush() + M.fe_sync() + M.fe_query("select 1")
               + M.fe_terminate())
    events = drain(proto)
    assert [type(e).__name__ for e in events] == ["Parse", "Bind", "Describe", "Execute", "Close", "Flush", "Sync",
                                                  "Query", "Terminate"]
    assert proto.state is State.CLOSED and proto.dispatched == 9


def test_after_an_extended_error_messages_are_skipped_until_sync() -> None:
    proto = ready_proto()
    proto.feed(M.fe_parse("", "bad", []) + M.fe_bind("", "", []) + M.fe_execute("", 0) + M.fe_query("x")
               + M.fe_sync() + M.fe_parse("", "ok", []))
    assert isinstance(proto.next_event(), M.Parse)
    proto.error("42601", "syntax error")
    proto.fail_extended()
    assert proto.next_event() is M.SYNC
    assert isinstance(proto.next_event(), M.Parse)
    assert proto.skipped == 3


def test_a_malformed_extended_message_costs_it_and_skips_to_sync() -> None:
    proto = ready_proto()
    proto.feed(b"D\0\0\0\x07Xs\0" + M.fe_execute("", 0) + M.fe_sync())
    assert proto.next_event() is M.SYNC
    (kind, body), = replies(proto)
    assert kind == "E" and M.error_fields(body)["C"] == "08P01"


def test_a_malformed_query_gets_ready_for_query() -> None:
    proto = ready_proto()
    proto.feed(b"Q\0\0\0\x06ab" + M.fe_query("select 1"))
    assert proto.next_event() == M.Query("select 1")
    assert [k for k, _ in replies(proto)] == ["E", "Z"]


def test_unknown_message_type_is_fatal() -> None:
    proto = ready_proto()
    proto.feed(b"z\0\0\0\x04" + M.fe_query("select 1"))
    assert proto.next_event() is None and proto.closing
    fields = M.error_fields(replies(proto)[0][1])
    assert fields["S"] == "FATAL" and "invalid frontend message type 122" in fields["M"]


def test_stray_copy_messages_are_ignored() -> None:
    proto = ready_proto()
    proto.feed(M.fe_copy_data(b"x") + M.fe_copy_done() + M.fe_copy_fail("x") + M.fe_sync())
    assert proto.next_event() is M.SYNC


def test_copy_in_mode() -> None:
    proto = ready_proto()
    proto.begin_copy_in()
    proto.feed(M.fe_copy_data(b"1\n") + M.fe_flush() + M.fe_sync() + M.fe_copy_done() + M.fe_query("q"))
    assert proto.next_event() == M.CopyData(b"1\n")
    assert proto.next_event() is M.COPY_DONE
    proto.end_copy()
    assert proto.next_event() == M.Query("q")
    proto.begin_copy_in()
    proto.feed(M.fe_parse("", "x", []))
    ev = proto.next_event()
    assert isinstance(ev, M.CopyFail) and "unexpected message type 0x50" in ev.message


def test_oversized_message_is_fatal() -> None:
    proto = ready_proto(max_message=1000)
    proto.feed(M.fe_query("x" * 2000))
    assert proto.next_event() is None and proto.closing
    assert M.error_fields(replies(proto)[0][1])["C"] == "54000"


# --- captured client sessions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(all_captures()))
def test_captured_sessions_decode_completely(name: str) -> None:
    data = all_captures()[name]
    for chunk in (len(data), 1, 7):  # whole, byte by byte, odd pieces
        proto = PgProtocol(AuthPolicy((), TRUST), peer="127.0.0.1")
        events = []
        for i in range(0, len(data), chunk):
            proto.feed(data[i:i + chunk])
            events += drain(proto)
            if proto.state is State.COPY_IN or any(isinstance(e, M.Query) and "COPY" in e.sql.upper()
                                                   for e in events[-1:]):
                proto.begin_copy_in()
            if events and isinstance(events[-1], M.CopyDone):
                proto.end_copy()
        errors = [b for k, b in replies(proto) if k == "E"]
        assert errors == [], [M.error_fields(b) for b in errors]
        assert isinstance(events[0], Login)
        assert events[-1] is M.TERMINATE
        assert proto.messages == len(split_frontend(data))


def test_captures_cover_every_message_type() -> None:
    kinds: set[str] = set()
    for data in all_captures().values():
        for msg in split_frontend(data)[1:]:
            kinds.add(chr(msg[0]))
    assert {"Q", "P", "B", "D", "E", "S", "H", "X", "d", "c"} <= kinds  # Close: see test_commands_are_events…
