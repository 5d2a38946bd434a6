"""plan_route: first match wins, strip/prepend, caller-ID precedence, call_timeout."""

from __future__ import annotations

import pytest

from sipdialer.calls.routes import CALLER_ID_VARIABLE, NoRoute, plan_route, variable_text
from sipdialer.config import Config, RouteConfig, TrunkConfig, parse_config

CONFIG = parse_config(
    {
        "trunks": [
            {"name": "intl", "address": "203.0.113.5:5070", "caller_id": "380440000000"},
            {"name": "local", "address": "198.51.100.7", "caller_id": "1000"},
            {"name": "bare", "address": "198.51.100.8"},
        ],
        "routes": [
            # Ukrainian national numbers: 0XXXXXXXXX -> +380XXXXXXXXX on the local trunk.
            {"pattern": "^0\\d{9}$", "trunk": "local", "strip": 1, "prepend": "+380",
             "caller_id": "2000", "variables": {"call_timeout": 25, "vip": True}},
            {"pattern": "^\\+", "trunk": "intl", "variables": {"call_timeout": 45.0}},
            {"pattern": "^9", "trunk": "bare", "strip": 3},
            {"pattern": "7", "trunk": "intl"},  # unanchored: anywhere in the number
        ],
    }
)  # fmt: skip


@pytest.mark.parametrize(
    ("number", "trunk", "dialed", "caller_id", "timeout"),
    [
        ("0441234567", "local", "+380441234567", "2000", 25.0),
        ("+12025550100", "intl", "+12025550100", "380440000000", 45.0),
        ("9001234", "bare", "1234", "", 60.0),  # no caller ID anywhere: ""
        ("123456789", "intl", "123456789", "380440000000", 60.0),  # re.search, not match
        ("0447234", "intl", "0447234", "380440000000", 60.0),  # too short for route 1
    ],
)
def test_route_table(number: str, trunk: str, dialed: str, caller_id: str,
                     timeout: float) -> None:  # fmt: skip
    plan = plan_route(CONFIG, number)
    assert (plan.trunk.name, plan.dialed, plan.caller_id, plan.call_timeout) == (
        trunk, dialed, caller_id, timeout,
    )  # fmt: skip


def test_first_matching_route_wins_even_when_a_later_one_matches_too() -> None:
    # Matches the second route ("^\\+") and the fourth ("7"): the second wins.
    plan = plan_route(CONFIG, "+70000000000")
    assert plan.trunk.name == "intl" and plan.route is CONFIG.routes[1]


def test_member_variable_beats_route_and_trunk_caller_id() -> None:
    plan = plan_route(CONFIG, "0441234567", {CALLER_ID_VARIABLE: "5551234", "x": "y"})
    assert plan.caller_id == "5551234"
    # Empty or blank variable: falls through to the route.
    assert plan_route(CONFIG, "0441234567", {CALLER_ID_VARIABLE: " "}).caller_id == "2000"


def test_route_caller_id_beats_trunk_and_trunk_is_the_last_resort() -> None:
    assert plan_route(CONFIG, "0441234567").caller_id == "2000"
    assert plan_route(CONFIG, "+44").caller_id == "380440000000"


def test_route_variables_are_strings() -> None:
    plan = plan_route(CONFIG, "0441234567")
    assert dict(plan.variables) == {"call_timeout": "25", "vip": "true"}
    assert dict(plan_route(CONFIG, "+1").variables) == {"call_timeout": "45"}
    with pytest.raises(TypeError):
        plan.variables["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize("value", [(True, "true"), (False, "false"), (60.0, "60"),
                                   (1.5, "1.5"), (7, "7"), ("a b", "a b")])  # fmt: skip
def test_variable_text(value: tuple[object, str]) -> None:
    assert variable_text(value[0]) == value[1]


@pytest.mark.parametrize("number", ["", "abc", "123"])
def test_no_route(number: str) -> None:
    with pytest.raises(NoRoute) as info:
        plan_route(CONFIG, number)
    assert info.value.cause == "NO_ROUTE_DESTINATION" and info.value.number == number
    assert isinstance(info.value, LookupError)


def test_route_to_an_unknown_trunk_is_no_route() -> None:
    # parse_config refuses this; a Config built by hand (tests, tools) can still hold it.
    config = Config.model_construct(
        trunks=(TrunkConfig.model_validate({"name": "a", "address": "192.0.2.1"}),),
        routes=(RouteConfig.model_validate({"pattern": ".", "trunk": "missing"}),),
    )
    with pytest.raises(NoRoute, match="unknown trunk 'missing'"):
        plan_route(config, "123")


def test_empty_configuration_routes_nothing() -> None:
    with pytest.raises(NoRoute):
        plan_route(Config(), "+380441234567")
