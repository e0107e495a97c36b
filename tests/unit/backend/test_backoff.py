"""Reconnect backoff: doubling to a ceiling, one probe at a time, reset on success (time passed in)."""
import random

from router.backend.backoff import Backoff


def test_delays_double_up_to_the_ceiling() -> None:
    b = Backoff(initial=0.1, ceiling=1.0, jitter=0.0)
    assert not b.down and b.wait_time(0.0) == 0.0
    delays = [b.failure(0.0, "refused") for _ in range(6)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.down and b.failures == 6 and b.last_error == "refused"


def test_jitter_stays_within_bounds() -> None:
    b = Backoff(initial=1.0, ceiling=10.0, jitter=0.2, _rng=random.Random(7))
    for _ in range(50):
        b.failures = 0
        delay = b.failure(0.0, "x")
        assert 0.8 <= delay <= 1.2


def test_wait_then_one_probe_then_recovery() -> None:
    b = Backoff(initial=0.5, ceiling=2.0, jitter=0.0)
    b.failure(10.0, "down")
    assert b.wait_time(10.2) == 0.5 - 0.2 or abs(b.wait_time(10.2) - 0.3) < 1e-9
    assert b.wait_time(10.6) == 0.0  # the delay passed: one attempt may go
    b.begin_probe()
    assert b.wait_time(10.6) > 0  # others keep failing fast while the probe is in flight
    b.failure(10.7, "still down")
    assert abs(b.wait_time(10.7) - 1.0) < 1e-9
    assert b.success() is True
    assert not b.down and b.wait_time(10.8) == 0.0 and b.last_error is None
    assert b.success() is False
    b.begin_probe()
    assert not b.probing  # probing only means something while down
