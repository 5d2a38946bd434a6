"""TimerConfig (RFC 3261 table 4, RFC 6026), Deadlines, and Peer."""

from __future__ import annotations

from enum import Enum, auto

import pytest

from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import DEFAULT_TIMERS, Deadlines, TimerConfig, TimerName


def test_defaults_are_rfc_3261_table_4() -> None:
    t = DEFAULT_TIMERS
    assert (t.t1, t.t2, t.t4) == (0.5, 4.0, 5.0)
    assert (t.timer_a, t.timer_e, t.timer_g) == (0.5, 0.5, 0.5)
    assert (t.timer_b, t.timer_f, t.timer_h) == (32.0, 32.0, 32.0)
    assert (t.timer_l, t.timer_m, t.cancel_wait) == (32.0, 32.0, 32.0)
    assert t.timer_d(reliable=False) == 32.0
    assert t.timer_i(reliable=False) == 5.0
    assert t.timer_j(reliable=False) == 32.0
    assert t.timer_k(reliable=False) == 5.0


def test_reliable_transports_zero_d_i_j_k() -> None:
    t = DEFAULT_TIMERS
    zeroed = [t.timer_d, t.timer_i, t.timer_j, t.timer_k]
    assert [timer(reliable=True) for timer in zeroed] == [0.0] * 4
    for name in (TimerName.D, TimerName.I, TimerName.J, TimerName.K):
        assert t.duration(name, reliable=True) == 0.0
    for name in (TimerName.A, TimerName.E, TimerName.G):
        assert t.duration(name, reliable=True) is None  # no retransmissions on TCP
        assert t.duration(name, reliable=False) == 0.5


def test_derived_timers_follow_t1_and_d_keeps_its_32_s_floor() -> None:
    t = TimerConfig(t1=0.1, t2=0.4, t4=0.5)
    assert (t.timer_b, t.timer_f, t.timer_h, t.timer_l, t.timer_m) == (6.4,) * 5
    assert t.timer_j(reliable=False) == pytest.approx(6.4)
    assert t.timer_d(reliable=False) == 32.0  # RFC 3261: "> 32 s for UDP"
    assert TimerConfig(t1=1.0, t2=4.0).timer_d(reliable=False) == 64.0
    assert t.duration(TimerName.B, reliable=True) == pytest.approx(6.4)
    assert t.duration(TimerName.TRYING, reliable=False) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"t1": 0}, {"t1": -1}, {"t1": 5.0, "t2": 4.0}, {"t4": 0}, {"t2": float("inf")},
     {"t1": float("nan")}],
)  # fmt: skip
def test_bad_values_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TimerConfig(**kwargs)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_TIMERS.t1 = 1.0  # type: ignore[misc]


class T(Enum):
    A = auto()
    B = auto()


def test_deadlines_book_keeping() -> None:
    d: Deadlines[T] = Deadlines()
    assert d.next_deadline() is None and d.pop_due(100.0) is None
    d.start(T.A, 1.0)
    d.start(T.B, 5.0)
    assert d.next_deadline() == 1.0 and T.A in d and len(d) == 2
    assert d.pop_due(0.5) is None  # early: harmless
    assert d.pop_due(1.0) is T.A
    assert d.pop_due(1.0) is None
    d.start(T.B, 3.0)  # re-arming replaces
    assert d.deadline(T.B) == 3.0
    d.cancel(T.A, T.B)
    assert d.next_deadline() is None


def test_a_late_caller_gets_the_later_timer_first() -> None:
    # Timer A due at 0.5 and Timer B due at 32: waking at 100, B (the timeout) wins.
    d: Deadlines[T] = Deadlines()
    d.start(T.A, 0.5)
    d.start(T.B, 32.0)
    assert d.pop_due(100.0) is T.B
    assert d.pop_due(100.0) is T.A


def test_peer_normalises_and_knows_reliability() -> None:
    assert Peer("udp", "192.0.2.1", 5060) == Peer("UDP", "192.0.2.1", 5060)
    assert not Peer("UDP", "192.0.2.1", 5060).reliable
    assert Peer("tcp", "192.0.2.1", 5060).reliable and Peer("TLS", "h", 5061).reliable
    v6 = Peer("UDP", "[2001:db8::1]", 5060)
    assert v6.host == "2001:db8::1"
    assert str(v6) == "UDP:[2001:db8::1]:5060"
    assert str(Peer("TCP", "192.0.2.1", 5070)) == "TCP:192.0.2.1:5070"
    assert len({v6, Peer("udp", "2001:db8::1", 5060)}) == 1
    with pytest.raises(ValueError):
        Peer("UDP", "192.0.2.1", 70000)
    with pytest.raises(ValueError):
        Peer("UDP", "", 5060)
