"""TrunkGate: max_calls lines and a cps token bucket, on a fake clock."""

from __future__ import annotations

import math

import pytest

from sipdialer.calls.trunks import TrunkGate, TrunkGates
from sipdialer.config import TrunkConfig


def run(gate: TrunkGate, asks: list[float]) -> list[float | None]:
    return [gate.admit(now) for now in asks]


@pytest.mark.parametrize(
    ("cps", "asks", "expected"),
    [
        # 5 cps, burst 1: starts at least 0.2 s apart; a refused ask names the next slot.
        (5.0, [0.0, 0.0, 0.1, 0.2, 0.2, 0.35, 0.4], [None, 0.2, 0.2, None, 0.4, 0.4, None]),
        # 1 cps: an idle gap does not bank credit beyond the burst.
        (1.0, [0.0, 10.0, 10.5, 11.0], [None, None, 11.0, None]),
        # 0.5 cps: one start every 2 s.
        (0.5, [0.0, 1.0, 1.999, 2.0], [None, 2.0, 2.0, None]),
        # Late askers are admitted at once; the slot is measured from their start.
        (2.0, [0.0, 0.9, 1.0, 1.4], [None, None, 1.4, None]),
    ],
)
def test_cps_table(cps: float, asks: list[float], expected: list[float | None]) -> None:
    gate = TrunkGate(max_calls=100, cps=cps)
    results = run(gate, asks)
    assert [r if r is None else round(r, 9) for r in results] == expected


def test_asking_at_the_returned_time_is_admitted_despite_float_sums() -> None:
    gate = TrunkGate(max_calls=10_000, cps=10.0)
    now = 0.0
    admitted = 0
    for _ in range(1000):
        wait = gate.admit(now)
        if wait is None:
            admitted += 1
        else:
            now = wait
    assert admitted == 500  # never refused twice at the same instant: 1 000 asks, 500 starts
    assert now == pytest.approx(50.0)  # 500 starts at 10 cps: the 501st slot is at 50 s


def test_max_calls_refuses_with_inf_until_release() -> None:
    gate = TrunkGate(max_calls=2, cps=1000.0)
    assert gate.admit(0.0) is None and gate.admit(1.0) is None
    assert gate.in_use == 2 and gate.full
    assert gate.admit(2.0) == math.inf
    assert gate.admit(3.0) == math.inf and gate.in_use == 2  # refusal changes nothing
    gate.release()
    assert not gate.full and gate.admit(3.0) is None and gate.in_use == 2


def test_refused_for_lines_does_not_spend_a_start() -> None:
    gate = TrunkGate(max_calls=1, cps=1.0)
    assert gate.admit(0.0) is None
    assert gate.admit(5.0) == math.inf
    gate.release()
    assert gate.admit(5.0) is None  # the refusal at 5.0 did not push the next slot


def test_release_never_goes_below_zero() -> None:
    gate = TrunkGate(max_calls=1, cps=1.0)
    gate.release()
    assert gate.in_use == 0


def test_burst_allows_back_to_back_starts_after_idle() -> None:
    gate = TrunkGate(max_calls=100, cps=1.0, burst=3)
    assert run(gate, [0.0, 0.0, 0.0, 0.0]) == [None, None, None, 1.0]
    assert run(gate, [1.0, 1.5, 2.0]) == [None, 2.0, None]


@pytest.mark.parametrize(("max_calls", "cps", "burst"),
                         [(0, 1.0, 1), (1, 0.0, 1), (1, -1.0, 1), (1, math.inf, 1),
                          (1, math.nan, 1), (1, 1.0, 0)])  # fmt: skip
def test_bad_settings(max_calls: int, cps: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TrunkGate(max_calls, cps, burst=burst)


def test_gates_from_config() -> None:
    trunks = [TrunkConfig.model_validate({"name": "a", "address": "192.0.2.1", "max_calls": 3,
                                          "cps": 2.0}),
              TrunkConfig.model_validate({"name": "b", "address": "192.0.2.2"})]  # fmt: skip
    gates = TrunkGates.from_config(trunks)
    assert sorted(gates) == ["a", "b"] and len(gates) == 2
    assert (gates["a"].max_calls, gates["a"].cps) == (3, 2.0)
    assert (gates["b"].max_calls, gates["b"].cps) == (30, 5.0)
    assert gates["a"] is gates["a"]  # one gate per trunk, shared by all campaigns
    with pytest.raises(KeyError, match="no trunk 'c'"):
        gates["c"]
