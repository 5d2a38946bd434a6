"""The REST bodies and replies (sipdialer/api/schemas.py): shapes, normalisation, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI, Query
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from sipdialer.api.schemas import (
    AgentOut,
    AgentStatusBody,
    AttemptFilter,
    AttemptOut,
    CampaignOut,
    MemberFilter,
    MemberIn,
    MemberOut,
    MembersAdded,
    MembersIn,
    MemberStatus,
    MemberUpdate,
    Page,
    PageQuery,
    StatusBody,
    describe_errors,
    member_status,
    normalise_number,
    parse_expire,
    parse_members,
)
from sipdialer.dialer.agents import AgentState, AgentStatus
from sipdialer.dialer.dispositions import DispositionKind, MemberState, Number, StatusResult
from sipdialer.store.member_rows import MemberRecord
from sipdialer.store.schema import attempts as attempts_table

WEBITEL_MEMBER = {
    "name": "Ivan Petrenko",
    "priority": 10,
    "timezone": "Europe/Kyiv",
    "variables": {"city": "Kyiv", "amount": 120.5, "vip": True, "order": 42},
    "communications": [
        {"number": "+38 (044) 123-45-67", "priority": 1, "description": "home", "type": 0},
        {"number": "067.111.22.33"},
    ],
    "expire": 1798754400000,  # 2027-01-01 00:00 in Kyiv, epoch ms as Webitel sends it
    "_id": "ignored",  # Webitel clients send document keys; a member ignores them
}


def errors(model: type[BaseModel], data: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return describe_errors(caught.value)


def member(**changes: Any) -> dict[str, Any]:
    return {"communications": [{"number": "+380441234567"}], **changes}


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+38 (044) 123-45-67", "+380441234567"),
        ("044.765.43.21", "0447654321"),
        ("  101 ", "101"),
        ("*1", "*1"),
        ("#31#0441234567", "#31#0441234567"),
        ("1" * 32, "1" * 32),
        ("+1\u00a0555\t0100", "+15550100"),  # a no-break space from a spreadsheet
    ],
)
def test_numbers_are_normalised(text: str, expected: str) -> None:
    assert normalise_number(text) == expected


@pytest.mark.parametrize(
    "text", ["", " - ", "12ab", "1+2", "++1", "1" * 33, "sip:101@host", "+", "1/2", "١٢٣"]
)
def test_undialable_numbers_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        normalise_number(text)


# --- a member ------------------------------------------------------------------------------


def test_a_webitel_member_is_accepted_and_normalised() -> None:
    m = MemberIn.model_validate(WEBITEL_MEMBER)
    assert m.name == "Ivan Petrenko"
    assert m.priority == 10
    assert m.timezone == "Europe/Kyiv"
    assert m.variables == {"city": "Kyiv", "amount": "120.5", "vip": "true", "order": "42"}
    assert [(c.number, c.priority) for c in m.communications] == [
        ("+380441234567", 1),
        ("0671112233", 0),
    ]
    assert m.expire == datetime(2026, 12, 31, 22, tzinfo=UTC)
    state = m.to_state()
    assert state == MemberState(
        numbers=(Number("+380441234567", priority=1), Number("0671112233", priority=0)),
        expire=m.expire,
    )


def test_defaults_of_a_member() -> None:
    m = MemberIn.model_validate(member())
    assert (m.name, m.priority, m.timezone, m.variables, m.expire) == ("", 0, None, {}, None)


def test_a_number_sent_as_a_json_number_is_taken_as_digits() -> None:
    m = MemberIn.model_validate({"communications": [{"number": 380441234567}]})
    assert m.communications[0].number == "380441234567"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1798754400000, datetime(2026, 12, 31, 22, tzinfo=UTC)),
        (1798754400000.0, datetime(2026, 12, 31, 22, tzinfo=UTC)),
        ("1798754400000", datetime(2026, 12, 31, 22, tzinfo=UTC)),
        ("2026-12-31T18:00:00+02:00", datetime(2026, 12, 31, 16, 0, tzinfo=UTC)),
        ("2026-12-31T18:00:00Z", datetime(2026, 12, 31, 18, 0, tzinfo=UTC)),
        ("2026-12-31T18:00:00", datetime(2026, 12, 31, 18, 0, tzinfo=UTC)),  # naive = UTC
        ("2026-12-31", datetime(2026, 12, 31, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_expire_forms(value: Any, expected: datetime | None) -> None:
    got = MemberIn.model_validate(member(expire=value)).expire
    assert got == expected
    if got is not None:
        assert got.utcoffset() == timedelta(0)


def test_expire_from_an_aware_datetime_is_converted_to_utc() -> None:
    kyiv_summer = timezone(timedelta(hours=3))
    noon = datetime(2026, 6, 1, 12, tzinfo=kyiv_summer)
    assert parse_expire(noon) == datetime(2026, 6, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize("value", [True, -1, 10**20, "soon", "31.12.2026", float("nan"), [1]])
def test_bad_expire_names_the_field(value: Any) -> None:
    (line,) = errors(MemberIn, member(expire=value))
    assert line.startswith("expire: ")


def test_timezone_empty_is_none_and_a_bad_one_gets_a_hint() -> None:
    assert MemberIn.model_validate(member(timezone="")).timezone is None
    assert errors(MemberIn, member(timezone="Europe/Kiyv")) == [
        'timezone: unknown time zone "Europe/Kiyv"; did you mean "Europe/Kyiv"?'
    ]
    assert errors(MemberIn, member(timezone="+03:00"))[0].startswith("timezone: unknown time")


def test_communications_errors_name_the_item() -> None:
    assert errors(MemberIn, {"name": "x"}) == ["communications: required"]
    assert errors(MemberIn, member(communications=[]))[0].startswith("communications: List")
    bad = errors(MemberIn, member(communications=[{"number": "1"}, {"number": "12a"}]))
    assert bad == [
        'communications.1.number: "12a" is not a dialable number (expected an optional "+"'
        " and 1..32 of 0-9 * #, after removing spaces, dashes, dots and parentheses)"
    ]
    assert errors(MemberIn, member(communications=[{"number": "1-2"}, {"number": "12"}])) == [
        'communications: number "12" is given twice (communications 0 and 1)'
    ]
    assert errors(MemberIn, member(communications=[{"priority": 1}])) == [
        "communications.0.number: required"
    ]


@pytest.mark.parametrize(
    ("priority", "ok"),
    [(5, True), ("5", True), (-3, True), (2**31 - 1, True), (True, False), (2**31, False),
     ("high", False), (1.5, False), (2.0, True)],
)  # fmt: skip
def test_priority(priority: Any, ok: bool) -> None:
    if ok:
        assert MemberIn.model_validate(member(priority=priority)).priority == int(priority)
    else:
        assert errors(MemberIn, member(priority=priority))[0].startswith("priority: ")


@pytest.mark.parametrize(
    "variables",
    [
        {"a": {"nested": 1}},
        {"a": None},
        {"bad name": "x"},
        {"x": "two\r\nlines"},
        {"x": "y" * 1025},
        {"n": float("inf")},
        ["not", "a", "map"],
    ],
)
def test_bad_variables_are_refused(variables: Any) -> None:
    assert errors(MemberIn, member(variables=variables))[0].startswith("variables: ")


def test_a_bad_variable_is_named() -> None:
    assert errors(MemberIn, member(variables={"ok": 1, "note": "a\nb"})) == [
        'variables: "note": a variable may not contain line breaks or NUL (it is sent as a header)'
    ]


def test_a_name_is_one_line() -> None:
    assert errors(MemberIn, member(name="a\nb"))[0].startswith("name: a name may not contain")
    assert errors(MemberIn, member(name="x" * 257))[0].startswith("name: ")


def test_one_member_or_a_list() -> None:
    one = MembersIn.model_validate(member(name="one")).root
    many = MembersIn.model_validate([member(name="a"), member(name="b")]).root
    assert [m.name for m in one] == ["one"]
    assert [m.name for m in many] == ["a", "b"]
    assert [m.name for m in parse_members(member(name="p"))] == ["p"]


def test_error_locations_follow_the_body_shape() -> None:
    single = {"communications": [{"number": "x"}]}
    assert errors(MembersIn, single)[0].startswith("communications.0.number: ")
    listed = [member(), {"communications": [{"number": "1"}], "priority": "no"}]
    assert errors(MembersIn, listed) == ['1.priority: expected a whole number, got "no"']
    assert errors(MembersIn, []) == ["List should have at least 1 item after validation, not 0"]
    assert errors(MembersIn, "x") == ["expected a member (an object) or a list of members"]
    with pytest.raises(ValidationError) as caught:
        parse_members([single])
    assert describe_errors(caught.value, prefix=("body",))[0].startswith(
        "body.0.communications.0.number: "
    )


def test_the_members_body_schema_offers_both_shapes() -> None:
    schema = MembersIn.model_json_schema()
    kinds = [option.get("type") for option in schema["anyOf"]]
    assert kinds == ["object", "array"]


def test_member_update_knows_which_keys_were_given() -> None:
    update = MemberUpdate.model_validate({"priority": 3, "expire": None, "extra": 1})
    assert update.changes() == {"priority": 3, "expire": None}
    update = MemberUpdate.model_validate({"communications": [{"number": "1 2", "priority": 2}]})
    assert update.changes() == {"communications": (Number("12", priority=2),)}
    assert errors(MemberUpdate, {"communications": []})[0].startswith("communications: ")


# --- status bodies -------------------------------------------------------------------------


def test_status_body_maps_to_the_engines_status_result() -> None:
    body = StatusBody.model_validate(
        {
            "success": False,
            "reset_retries": True,
            "next_after_sec": 90,
            "next_communication": "+38 067 000 11 22",
            "stop_communications": ["044-123", "044123", "+1 555"],
            "comment": "call back after lunch",
        }
    )
    assert body.to_result() == StatusResult(
        success=False,
        reset_retries=True,
        next_after_sec=90.0,
        next_communication="+380670001122",
        stop_communications=("044123", "+1555"),
        comment="call back after lunch",
    )
    assert StatusBody.model_validate({}).to_result() == StatusResult()
    assert StatusBody.model_validate({"stop_communications": "ALL"}).to_result() == StatusResult(
        stop_communications="all"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"next_after_sec": -1}, "next_after_sec: Input should be greater than or equal to 0"),
        ({"next_after_sec": True}, "next_after_sec: Input should be a valid number"),
        ({"next_after_sec": "60"}, "next_after_sec: Input should be a valid number"),
        ({"stop_communications": "some"}, "stop_communications: expected a list of numbers or"),
        ({"stop_communications": ["1", "x"]}, 'stop_communications.1: "x" is not a dialable'),
        ({"next_communication": "abc"}, 'next_communication: "abc" is not a dialable'),
        ({"sucess": True}, "sucess: unknown key"),
        ({"comment": "x" * 4097}, "comment: String should have at most 4096 characters"),
    ],
)
def test_bad_status_bodies_name_the_field(body: dict[str, Any], expected: str) -> None:
    (line,) = errors(StatusBody, body)
    assert line.startswith(expected)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Available", AgentStatus.AVAILABLE),
        ("available", AgentStatus.AVAILABLE),
        ("Break", AgentStatus.BREAK),
        ("LoggedOut", AgentStatus.LOGGED_OUT),
        ("logged_out", AgentStatus.LOGGED_OUT),
    ],
)
def test_agent_status_body(text: str, status: AgentStatus) -> None:
    assert AgentStatusBody.model_validate({"status": text}).status is status


def test_bad_agent_status_lists_the_choices() -> None:
    assert errors(AgentStatusBody, {"status": "Away"}) == [
        "status: Input should be 'LoggedOut', 'Available' or 'Break'"
    ]
    assert errors(AgentStatusBody, {}) == ["status: required"]


# --- queries -------------------------------------------------------------------------------


def test_unknown_query_parameters_are_ignored() -> None:
    assert MemberFilter.model_validate({"page": "2", "sort": "name"}).page == 2


def test_pagination() -> None:
    assert PageQuery().offset == 0
    assert PageQuery(page=3, size=50).offset == 100
    assert PageQuery(size=1000).size == 1000
    assert errors(PageQuery, {"size": 1001}) == ["size: Input should be less than or equal to 1000"]
    assert errors(PageQuery, {"page": 0})[0].startswith("page: ")


def test_filters_normalise_what_they_compare() -> None:
    members = MemberFilter.model_validate({"number": "+1 (555) 010", "status": "ended"})
    assert (members.number, members.status) == ("+1555010", MemberStatus.ENDED)
    attempts = AttemptFilter.model_validate(
        {"since": "2026-01-01", "until": 1767225600000, "disposition": "retry"}
    )
    assert attempts.since == attempts.until == datetime(2026, 1, 1, tzinfo=UTC)
    assert attempts.disposition is DispositionKind.RETRY
    assert errors(MemberFilter, {"status": "gone"})[0].startswith("status: Input should be")


# --- replies -------------------------------------------------------------------------------


def test_member_reply_from_the_engines_state() -> None:
    tried = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    state = MemberState(
        numbers=(Number("+1555", 1, attempts=2, last_tried=tried), Number("+1666", active=False)),
        attempts=2,
        expire=datetime(2026, 12, 31, 22, tzinfo=UTC),
        next_call_at=tried + timedelta(minutes=10),
    )
    reply = MemberOut.from_state(state, id="7", dialer="65f0c0ffee0000000000abcd", name="Ann")
    data = json.loads(reply.model_dump_json())
    assert data["expire"] == 1798754400000  # read back as it was sent
    assert data["next_call_at"] == "2026-03-01T09:40:00Z"
    assert data["status"] == "ready"
    assert data["communications"] == [
        {"number": "+1555", "priority": 1, "state": "active", "attempts": 2,
         "last_tried": "2026-03-01T09:30:00Z"},
        {"number": "+1666", "priority": 0, "state": "stopped", "attempts": 0, "last_tried": None},
    ]  # fmt: skip
    assert MemberIn.model_validate({**data, "expire": data["expire"]}).expire == state.expire


def test_member_status() -> None:
    numbers = (Number("1"),)
    assert member_status(MemberState(numbers)) is MemberStatus.READY
    assert member_status(MemberState(numbers), leased=True) is MemberStatus.LEASED
    assert member_status(MemberState(numbers, waiting_on="1")) is MemberStatus.WAITING
    assert member_status(MemberState(numbers, ended_with="NORMAL_CLEARING")) is MemberStatus.ENDED


def test_member_reply_from_the_stores_record() -> None:
    created = datetime(2026, 3, 1, tzinfo=UTC)
    record = MemberRecord(
        member_id=42,
        campaign_id="65f0c0ffee0000000000abcd",
        name="Ann",
        priority=3,
        timezone="Europe/Kyiv",
        variables={"city": "Kyiv"},
        expire=None,
        status="leased",
        state=MemberState(numbers=(Number("+1555"),), attempts=1),
        lease_owner="node-1",
        leased_at=created,
        result_deadline=None,
        created_at=created,
        updated_at=created,
        ended_at=None,
    )
    reply = MemberOut.from_record(record)
    assert (reply.id, reply.dialer, reply.status, reply.attempts) == (
        "42",
        "65f0c0ffee0000000000abcd",
        MemberStatus.LEASED,
        1,
    )
    assert {s.value for s in MemberStatus} == {"ready", "leased", "waiting", "ended"}


def test_attempt_reply_from_a_row_of_the_attempts_table() -> None:
    """Every column of the store's table is either shown or deliberately left out."""
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    row: dict[str, Any] = {name: None for name in attempts_table.columns.keys()}
    row.update(
        id=7, call_id="c1", campaign_id="65f0c0ffee0000000000abcd", member_id=42,
        number="+1555", node="node-1", state="ended", created_at=at, ended_at=at,
        counted=1, talk_seconds=12.5, disposition="ok", hangup_by="member",
        result={"success": True},
    )  # fmt: skip
    reply = AttemptOut.from_row(row)
    assert (reply.id, reply.member, reply.dialer) == ("7", "42", "65f0c0ffee0000000000abcd")
    assert reply.disposition is DispositionKind.OK
    assert json.loads(reply.model_dump_json())["created_at"] == "2026-03-01T09:00:00Z"


def test_replies_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        AgentOut(id="101", status=AgentStatus.BREAK, state=AgentState.WAITING, bogus=1)  # type: ignore[call-arg]
    agent = AgentOut(id="101", status=AgentStatus.BREAK, state=AgentState.WRAP_UP)
    assert json.loads(agent.model_dump_json())["state"] == "WrapUp"


def test_every_model_goes_into_an_openapi_document() -> None:
    """What the API module will do with them; a schema FastAPI cannot render fails here."""
    app = FastAPI()

    @app.post("/members", response_model=MembersAdded)
    def add(body: MembersIn) -> None: ...

    @app.get("/members", response_model=Page[MemberOut])
    def members(query: MemberFilter = Query()) -> None: ...  # noqa: B008

    @app.get("/attempts", response_model=Page[AttemptOut])
    def attempts(query: AttemptFilter = Query()) -> None: ...  # noqa: B008

    @app.put("/status", response_model=MemberOut)
    def status(body: StatusBody) -> None: ...

    @app.put("/agent", response_model=AgentOut)
    def agent(body: AgentStatusBody) -> None: ...

    @app.get("/dialer", response_model=list[CampaignOut])
    def campaigns() -> None: ...

    spec = app.openapi()
    params = [p["name"] for p in spec["paths"]["/attempts"]["get"]["parameters"]]
    assert params == ["page", "size", "member", "number", "agent", "cause", "disposition",
                      "since", "until"]  # fmt: skip
    schemas = set(spec["components"]["schemas"])
    assert {"MembersIn", "StatusBody", "MemberOut", "AttemptOut"} <= schemas


# --- no input makes a validator crash (the API would answer 500) ----------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["name", "priority", "timezone", "variables", "communications", "expire", "number",
     "success", "reset_retries", "next_after_sec", "next_communication",
     "stop_communications", "comment", "status", "page", "size", "since"]
)  # fmt: skip
BODIES = st.dictionaries(FIELDS, JSON, max_size=6) | JSON
MODELS = [MembersIn, MemberIn, MemberUpdate, StatusBody, AgentStatusBody, AttemptFilter]


@settings(max_examples=300, deadline=None)
@given(body=BODIES, which=st.sampled_from(MODELS))
def test_any_json_is_accepted_or_refused_with_a_validation_error(
    body: Any, which: type[BaseModel]
) -> None:
    try:
        which.model_validate(body)
    except ValidationError as exc:
        assert all(line for line in describe_errors(exc))


@settings(max_examples=200, deadline=None)
@given(number=st.text(alphabet="0123456789+*#-.() ", max_size=40))
def test_a_normalised_number_is_a_fixed_point(number: str) -> None:
    try:
        once = normalise_number(number)
    except ValueError:
        return
    assert normalise_number(once) == once
