"""The RTP port pool: even/odd pairs, exhaustion, round-robin reuse."""

from __future__ import annotations

import pytest

from sipdialer.media.ports import (
    PortPair,
    PortPool,
    PortRangeError,
    PortsExhausted,
    parse_range,
)


def test_the_default_range_holds_500_even_odd_pairs() -> None:
    pool = PortPool.from_range("20000-20999")
    assert len(pool) == pool.free == 500 and pool.in_use == 0
    first = pool.allocate()
    assert first == PortPair(20000, 20001) and (first.rtp, first.rtcp) == (20000, 20001)
    pairs = [first] + [pool.allocate() for _ in range(499)]
    assert all(p.rtp % 2 == 0 and p.rtcp == p.rtp + 1 for p in pairs)
    assert pairs[-1] == PortPair(20998, 20999) and len(set(pairs)) == 500


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("20001-20004", [(20002, 20003)]),
        ("20000-20002", [(20000, 20001)]),
        (" 4000-4001 ", [(4000, 4001)]),
    ],
)
def test_odd_edges_are_skipped(text: str, pairs: list[tuple[int, int]]) -> None:
    pool = PortPool.from_range(text)
    assert [pool.allocate() for _ in range(len(pool))] == pairs


def test_exhaustion_is_an_error_naming_the_range() -> None:
    pool = PortPool.from_range("30000-30003")
    pool.allocate(), pool.allocate()
    with pytest.raises(PortsExhausted, match="30000-30003"):
        pool.allocate()


def test_a_released_pair_waits_behind_every_other_free_pair() -> None:
    pool = PortPool.from_range("30000-30007")  # four pairs
    a = pool.allocate()
    pool.release(a)
    assert [pool.allocate().rtp for _ in range(3)] == [30002, 30004, 30006]
    assert pool.allocate() == a  # only now
    b = PortPair(30002, 30003)
    pool.release(b)
    assert pool.free == 1 and pool.in_use == 3
    assert pool.allocate() == b


def test_release_of_a_pair_not_allocated_is_a_bug() -> None:
    pool = PortPool.from_range("30000-30003")
    pair = pool.allocate()
    pool.release(pair)
    with pytest.raises(ValueError):
        pool.release(pair)
    with pytest.raises(ValueError):
        pool.release(PortPair(40000, 40001))


@pytest.mark.parametrize(
    "text", ["", "20000", "20000-", "a-b", "20999-20000", "80-100", "60000-70000", "20001-20001"]
)
def test_bad_ranges(text: str) -> None:
    with pytest.raises(PortRangeError):
        PortPool.from_range(text)


def test_parse_range() -> None:
    assert parse_range("10000-20000") == (10000, 20000)
    assert issubclass(PortRangeError, ValueError)
