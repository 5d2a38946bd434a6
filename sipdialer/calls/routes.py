"""Outbound routing of a member's number: which trunk, what to dial, which caller ID.

Theory of operation (dialer-semantics §6). ``plan_route(config, number, variables)``
walks ``[[routes]]`` in file order and takes the first whose ``pattern`` matches the
member's number with ``re.search`` on the number *as given* (a route that wants the
whole number anchors its pattern with ``^...$``). The route's trunk must exist; the
number sent to the trunk is the number with ``strip`` characters removed from its
front and ``prepend`` put before what is left. The caller ID (the From user of the
member leg) is chosen in this order, the first non-empty one winning:

1. the call's variable ``outbound_caller_id_number`` (campaign variables overlaid with
   the member's, as the engine hands them in ``CallOrder.variables``),
2. the route's ``caller_id``,
3. the trunk's ``caller_id``;

``""`` means "none": the calls layer then puts its own user in From. The member leg's
ring time is the route's ``call_timeout`` variable, else 60 s.

No match, or a route naming a trunk that is not configured (``parse_config`` already
refuses that, but a ``Config`` can be built by hand), raises ``NoRoute``, whose
``cause`` is the hangup cause the attempt ends with (NO_ROUTE_DESTINATION, Q.850 3).

Pure: no IO, no clock. The result is a frozen ``RoutePlan``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sipdialer.config import ROUTE_CALL_TIMEOUT, Config, RouteConfig, TrunkConfig

__all__ = ["CALLER_ID_VARIABLE", "NoRoute", "RoutePlan", "plan_route", "variable_text"]

CALLER_ID_VARIABLE = "outbound_caller_id_number"
"The member/campaign variable that overrides the route's and the trunk's caller ID."

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class RoutePlan:
    """How to dial one member's number."""

    trunk: TrunkConfig
    "The trunk the member leg goes out on."
    dialed: str
    "The number after strip/prepend: the Request-URI and To user."
    caller_id: str
    "From user: member variable -> route -> trunk; empty = none configured."
    call_timeout: float
    "Member-leg ring time in seconds (route variable ``call_timeout``, default 60)."
    variables: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    "The route's variables, as strings (``variable_text``)."
    route: RouteConfig | None = field(default=None, compare=False)
    "The route that matched (for logs)."


class NoRoute(LookupError):
    """No route matches the number, or the matching route's trunk is unknown."""

    cause = "NO_ROUTE_DESTINATION"
    "The hangup cause the attempt ends with (causes.md: Q.850 3)."

    def __init__(self, number: str, detail: str = "no route matches") -> None:
        super().__init__(f"{detail}: {number!r}")
        self.number = number


def plan_route(config: Config, number: str, variables: Mapping[str, str] = _EMPTY) -> RoutePlan:
    """The plan for dialing *number*; raises ``NoRoute``.

    *variables* are the call's variables (campaign overlaid with member); only
    ``outbound_caller_id_number`` is read from them.
    """
    route = config.route_for(number)
    if route is None:
        raise NoRoute(number)
    trunk = next((t for t in config.trunks if t.name == route.trunk), None)
    if trunk is None:
        raise NoRoute(number, f"route {route.pattern!r} names unknown trunk {route.trunk!r}")
    caller_id = (variables.get(CALLER_ID_VARIABLE) or "").strip()
    caller_id = caller_id or route.caller_id or trunk.caller_id
    timeout = route.variables.get("call_timeout", ROUTE_CALL_TIMEOUT)
    route_vars = MappingProxyType({k: variable_text(v) for k, v in route.variables.items()})
    return RoutePlan(
        trunk=trunk,
        dialed=route.dial_string(number),
        caller_id=caller_id,
        call_timeout=float(timeout),
        variables=route_vars,
        route=route,
    )


def variable_text(value: object) -> str:
    """A TOML scalar as the text a header or a log shows: ``true``, ``60``, ``1.5``.

    TOML integers written as floats (``60.0``) show without the ``.0``; booleans in
    TOML's spelling, not Python's.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)
