"""Brute-force lockout (sipdialer.sip.lockout): counting, windows, locks, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipdialer.sip.lockout import Lock, Lockout, LockoutConfig


def test_locks_an_ip_after_n_failures_within_the_window() -> None:
    lockout = Lockout(LockoutConfig(max_failures=3, window=60, duration=300))
    assert lockout.failure("10.0.0.1", None, 0.0) == []
    assert lockout.failure("10.0.0.1", None, 10.0) == []
    assert not lockout.ip_locked("10.0.0.1", 10.0)
    assert lockout.failure("10.0.0.1", None, 20.0) == [Lock("ip", "10.0.0.1", 320.0, 3)]
    assert lockout.ip_locked("10.0.0.1", 20.0) and lockout.ip_locked("10.0.0.1", 319.9)
    assert not lockout.ip_locked("10.0.0.2", 20.0)
    assert not lockout.ip_locked("10.0.0.1", 320.0)


def test_failures_outside_the_window_do_not_count() -> None:
    lockout = Lockout(LockoutConfig(max_failures=3, window=60))
    for now in (0.0, 30.0, 61.0, 95.0, 122.0):  # never three within 60 s
        assert lockout.failure("10.0.0.1", None, now) == []
    assert lockout.failure("10.0.0.1", None, 150.0) != []  # 95, 122, 150


def test_users_are_counted_across_addresses() -> None:
    lockout = Lockout(LockoutConfig(max_failures=2))
    assert lockout.failure("10.0.0.1", "101", 0.0) == []
    assert lockout.failure("10.0.0.2", "101", 1.0) == [Lock("user", "101", 301.0, 2)]
    assert lockout.user_locked("101", 2.0) and not lockout.user_locked("102", 2.0)
    assert not lockout.ip_locked("10.0.0.1", 2.0) and not lockout.ip_locked("10.0.0.2", 2.0)


def test_both_locks_can_start_at_once_and_only_once() -> None:
    lockout = Lockout(LockoutConfig(max_failures=2))
    lockout.failure("10.0.0.1", "101", 0.0)
    assert [lock.kind for lock in lockout.failure("10.0.0.1", "101", 1.0)] == ["ip", "user"]
    assert lockout.failure("10.0.0.1", "101", 2.0) == []  # already locked: no new event


def test_a_new_count_starts_after_the_lock() -> None:
    lockout = Lockout(LockoutConfig(max_failures=2, window=1000, duration=10))
    lockout.failure("ip", None, 0.0)
    assert lockout.failure("ip", None, 1.0)
    assert lockout.failure("ip", None, 12.0) == []  # the two before the lock are spent
    assert lockout.failure("ip", None, 13.0)


def test_memory_is_pruned_and_bounded() -> None:
    lockout = Lockout(LockoutConfig(max_failures=5, window=60, duration=300, max_entries=100))
    for i in range(10_000):
        lockout.failure(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"u{i}", i * 0.001)
    assert len(lockout) <= 200
    lockout.ip_locked("x", 1000.0)  # any call prunes what left the window
    assert len(lockout) == 0


def test_locks_are_bounded_too() -> None:
    lockout = Lockout(LockoutConfig(max_failures=1, max_entries=10))
    for i in range(50):
        assert lockout.failure(f"10.0.0.{i}", None, float(i)) != []
    assert len(lockout) <= 10
    assert lockout.ip_locked("10.0.0.49", 50.0)


@pytest.mark.parametrize(
    "kwargs", [{"max_failures": 0}, {"window": 0}, {"duration": -1}, {"max_entries": 0}]
)
def test_configuration_is_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LockoutConfig(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([None, "u", "v"]),
                  st.floats(0, 5)),
        max_size=60,
    )
)  # fmt: skip
def test_a_lock_needs_max_failures_within_the_window(
    steps: list[tuple[str, str | None, float]],
) -> None:
    config = LockoutConfig(max_failures=3, window=10, duration=20, max_entries=1000)
    lockout = Lockout(config)
    now = 0.0
    history: dict[str, list[float]] = {}
    for ip, user, delta in steps:
        now += delta
        for lock in lockout.failure(ip, user, now):
            key = f"{lock.kind}:{lock.key}"
            recent = [t for t in history.get(key, []) if t > now - config.window]
            assert len(recent) + 1 >= config.max_failures
            assert lock.until == now + config.duration
        for key in (f"ip:{ip}", f"user:{user}" if user else ""):
            if key:
                history.setdefault(key, []).append(now)
