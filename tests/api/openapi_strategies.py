"""Hypothesis strategies from the API's own OpenAPI document (which FastAPI builds from
the pydantic models of ``sipdialer.api.schemas``): for each operation, requests whose path,
query and body follow the schema, break it, or are arbitrary JSON.

A small JSON-Schema-to-strategy converter (``from_schema``) covers what pydantic emits:
``$ref``, ``anyOf``/``oneOf``/``allOf``, ``const``, ``enum``, the scalar types with their
bounds, arrays and objects. Every node may also be replaced by arbitrary JSON
(``json_values``), so that both near-misses (one wrong field in a valid member) and
garbage reach the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_numbers = (
    st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True)
    | st.from_regex(r"\+?[0-9 ()-]{1,20}", fullmatch=True)  # spaces, dashes, parentheses
    | st.sampled_from(["1001", "+380441234567", "2000", "1-0-0-2"])
)


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int = 8
) -> st.SearchStrategy[Any]:
    """``good`` about ``odds - 1`` times in ``odds``, else ``bad``: most requests should
    get past validation, or the routes' own code is hardly reached."""
    # Not n == 0: hypothesis favours the ends of a range (and shrinks towards 0).
    return st.integers(0, odds - 1).flatmap(lambda n: bad if n == odds // 2 else good)


# Strings the schema cannot describe (it says "string"), by field name.
FIELD_TEXT: dict[str, st.SearchStrategy[Any]] = {
    "number": _numbers,
    "next_communication": _numbers,
    "timezone": st.sampled_from(["Europe/Kyiv", "UTC", "", "America/New_York"]),
    "status": st.sampled_from(["Available", "Break", "LoggedOut", "ready", "waiting", "ended"]),
    "encoding": st.sampled_from(["utf-8", "cp1251", "koi8-r", "latin-1"]),
    "delimiter": st.sampled_from([",", ";", "tab", "|"]),
    "map": st.sampled_from(["name=0,number=1", "number=0", "number=1,number=2,var:x=0"]),
}


def from_schema(
    schema: dict[str, Any], spec: dict[str, Any], depth: int = 0, field: str = ""
) -> st.SearchStrategy[Any]:
    """Values for ``schema`` (resolved against ``spec``), or, sometimes, anything."""
    exact = _exact(schema, spec, depth, field)
    return mostly(exact, json_values, odds=16) if depth else exact


def _exact(
    schema: dict[str, Any], spec: dict[str, Any], depth: int, field: str = ""
) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _exact(spec["components"]["schemas"][name], spec, depth, field)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([_exact(s, spec, depth, field) for s in schema[key]])
    if "allOf" in schema:
        return _exact(schema["allOf"][0], spec, depth, field)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_exact({**schema, "type": k}, spec, depth, field) for k in kind])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum", -1000), schema.get("maximum", 1000)
        return mostly(st.integers(min_value=low, max_value=max(low, min(high, low + 2000))),
                      st.integers())  # fmt: skip
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"),
                         allow_nan=False, allow_infinity=False)  # fmt: skip
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=30)
        if schema.get("format") == "date":
            return st.dates().map(lambda d: d.isoformat())
        if field in FIELD_TEXT:
            return mostly(FIELD_TEXT[field], st.text(max_size=20), odds=16)
        return st.text(max_size=min(schema.get("maxLength", 60), 60))
    if kind == "array":
        items = schema.get("items", {})
        least = schema.get("minItems", 0)
        return st.lists(
            from_schema(items, spec, depth + 1, field), min_size=least, max_size=least + 3
        )
    if kind == "object" or "properties" in schema:
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {name: from_schema(sub, spec, depth + 1, name) for name, sub in properties.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required}
            | {"extra_key": json_values},
        )
    return json_values


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]
    operation: dict[str, Any]


def operations(spec: dict[str, Any]) -> list[Operation]:
    """The ``/api`` operations, DELETE last (so the others meet existing members)."""
    found = [
        Operation(method.upper(), path, spec, operation)
        for path, item in sorted(spec["paths"].items())
        if path.startswith("/api/")
        for method, operation in sorted(item.items())
    ]
    return sorted(found, key=lambda op: op.method == "DELETE")


PATH_VALUES = {
    "id": ["plain", "wfr", "0123456789abcdef01234567", "plain", "wfr", "nope"],
    "mid": [*(str(i) for i in range(1, 61)), "99999999999999999999", "0"],
    "action": ["run", "stop"],
}


AGENT_IDS = ["101", "101", "102"]


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def requests(draw: st.DrawFn, op: Operation) -> dict[str, Any]:
    """httpx ``request`` keyword arguments for one call of ``op``."""
    path = op.path
    params: dict[str, str] = {}
    for parameter in op.operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        schema = parameter.get("schema", {})
        if where == "path":
            known = AGENT_IDS if name == "id" and "/agents/" in path else PATH_VALUES[name]
            value = draw(mostly(st.sampled_from(known), st.text(min_size=1, max_size=20)))
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        elif where == "query" and draw(st.integers(0, 3)) == 0:
            params[name] = _query_text(draw(from_schema(schema, op.spec, 1, name)))
    request: dict[str, Any] = {"method": op.method, "url": path, "params": params}
    body = op.operation.get("requestBody")
    if body is not None:
        content = body.get("content", {})
        if "application/json" in content:
            schema = content["application/json"].get("schema", {})
            request["json"] = draw(mostly(from_schema(schema, op.spec, 0), json_values))
        else:  # the CSV import: text that is sometimes CSV
            lines = st.lists(
                st.lists(st.text(max_size=12) | _numbers, max_size=5).map(";".join), max_size=6
            ).map("\n".join)
            text = draw(lines | st.text(max_size=80))
            request["content"] = text.encode(
                draw(st.sampled_from(["utf-8", "cp1251", "utf-16"])), "replace"
            )
    return request
