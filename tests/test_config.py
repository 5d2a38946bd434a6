"""The configuration file: defaults, the example, and error reports with key paths."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sipdialer.config import (
    DEFAULT_ERROR_CAUSES,
    DEFAULT_MINUS_CAUSES,
    DEFAULT_OK_CAUSES,
    DEFAULT_RETRY_CAUSES,
    KNOWN_CAUSES,
    Config,
    ConfigError,
    TimeWindow,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
DATA = Path(__file__).resolve().parent / "data" / "config"

TRUNK = {"name": "provider", "address": "sip.example:5060"}
AGENT = {"id": "101", "password": "secret"}
CALENDAR = {"name": "office"}
CAMPAIGN = {"name": "reminders", "calendar": "office"}


def problems(source: str | dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(source)
    return info.value.problems


def one_problem(source: str | dict[str, Any]) -> str:
    found = problems(source)
    assert len(found) == 1, found
    return found[0]


def with_campaign(**keys: Any) -> dict[str, Any]:
    return {
        "agents": [AGENT, {"id": "102", "password": "x"}],
        "calendars": [CALENDAR],
        "campaigns": [{**CAMPAIGN, **keys}],
    }


# --- valid files ---------------------------------------------------------------------------


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert [t.name for t in config.trunks] == ["provider"]
    assert config.trunks[0].host == "sip.provider.example"
    assert config.trunks[0].port == 5060
    assert len(config.routes) == 1 and config.routes[0].call_timeout == 60
    assert [a.id for a in config.agents] == ["101", "102"]
    assert [c.name for c in config.calendars] == ["office"]
    campaign = config.campaign("reminders")
    assert campaign.calendar == "office"
    assert campaign.agent_ids == ("101", "102")
    assert [t.level for t in campaign.agents] == [1, 2]
    assert config.sip.feature_codes.break_ == "*2"


def test_example_writes_out_the_default_cause_lists() -> None:
    lists = load_config(EXAMPLE).campaigns[0].effective_causes()
    assert lists.error == DEFAULT_ERROR_CAUSES
    assert lists.retry == DEFAULT_RETRY_CAUSES
    assert lists.ok == DEFAULT_OK_CAUSES
    assert lists.minus == DEFAULT_MINUS_CAUSES


def test_example_documents_every_key() -> None:
    """Every key of every model appears in the example file (as key = value)."""
    text = EXAMPLE.read_text()
    missing = []
    models: list[type[Any]] = [Config]
    seen: set[type[Any]] = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            key = field.alias or name
            if f"\n{key} =" not in text and f" {key} =" not in text and f"{{ {key} =" not in text:
                if f"[{key}]" not in text and f".{key}]" not in text and f"[[{key}]]" not in text:
                    missing.append(f"{model.__name__}.{key}")
            for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
                for inner in [arg, *getattr(arg, "__args__", ())]:
                    if isinstance(inner, type) and hasattr(inner, "model_fields"):
                        models.append(inner)
    assert missing == []


def test_empty_file_is_valid_with_defaults() -> None:
    config = load_config(DATA / "empty.toml")
    assert config == parse_config("") == Config()
    assert (config.sip.listen_host, config.sip.listen_port) == ("0.0.0.0", 5060)
    assert (config.sip.public_host, config.sip.public_port) == ("0.0.0.0", 5060)
    assert config.sip.realm == "dialer.local"
    assert config.sip.qualify_interval == 30
    assert (config.sip.t1, config.sip.t2, config.sip.t4) == (0.5, 4.0, 5.0)
    assert config.sip.feature_codes.available == "*1"
    assert config.sip.feature_codes.logged_out == "*0"
    assert (config.media.rtp_port_min, config.media.rtp_port_max) == (20000, 20999)
    assert config.media.media_timeout == 30 and config.media.ringback == "eu"
    assert config.media.recordings_dir == ""
    assert config.store.url == "sqlite:///sipdialer.db"
    assert (config.api.listen_host, config.api.listen_port) == ("127.0.0.1", 8080)
    assert [(t.token, t.key) for t in config.api.tokens] == [("change-me", "change-me-too")]
    assert (config.trunks, config.routes, config.agents) == ((), (), ())
    assert (config.calendars, config.campaigns) == ((), ())


def test_defaults_of_list_items() -> None:
    config = parse_config(
        {
            "trunks": [TRUNK],
            "routes": [{"pattern": ".", "trunk": "provider"}],
            **with_campaign(),
        }
    )
    trunk, route, agent = config.trunks[0], config.routes[0], config.agents[0]
    assert (trunk.transport, trunk.register_, trunk.max_calls, trunk.cps) == ("udp", False, 30, 5)
    assert (route.strip, route.prepend, route.call_timeout) == (0, "", 60)
    assert (agent.call_timeout, agent.wrap_up_time, agent.max_no_answer) == (15, 10, 3)
    assert (agent.busy_delay, agent.reject_delay, agent.no_answer_delay) == (30, 30, 30)
    assert agent.auto_answer is False
    calendar = config.calendars[0]
    assert calendar.timezone == "UTC" and calendar.start is None and calendar.end is None
    assert calendar.week.windows(0) == ()
    campaign = config.campaigns[0]
    assert (campaign.type, campaign.priority, campaign.limit) == ("progressive", 0, 10)
    assert (campaign.retry_wait, campaign.max_retries, campaign.min_success_duration) == (
        600,
        3,
        10,
    )
    assert (campaign.wrap_up_time, campaign.wait_for_result) == (60, False)
    assert campaign.strategy == "longest_idle" and campaign.id == ""
    assert campaign.effective_causes().ok == ("NORMAL_CLEARING",)
    assert isinstance(campaign.retry_wait, float)


def test_models_are_frozen() -> None:
    config = load_config(EXAMPLE)
    with pytest.raises(ValidationError):
        config.sip.realm = "other"


# --- a file with many mistakes --------------------------------------------------------------


def test_bad_file_reports_every_problem_with_its_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "bad.toml")
    assert info.value.problems == [
        'sip.qualify_intervall: unknown key; did you mean "qualify_interval"?',
        "media.rtp_ports: the first port must be even (RTP even, RTCP odd), got 20001",
        "routes[0].pattern: not a valid regular expression:"
        " missing ), unterminated subpattern at position 1",
        'agents[1].id: duplicate agent id "101" (already used by agents[0])',
        'calendars[0].timezone: unknown time zone "Europe/Kyev"; did you mean "Europe/Kyiv"?',
        'calendars[0].week.mon: windows "09:00-13:00" and "12:30-18:00" overlap',
        'campaigns[0].calendar: no calendar named "ofice"; did you mean "office"?',
        'campaigns[0].causes.retry[1]: unknown cause "NO_ANSWR"; did you mean "NO_ANSWER"?',
    ]
    assert "8 problems" in str(info.value)


def test_pydantic_errors_keep_their_message_under_the_key_path() -> None:
    found = problems({"trunks": [TRUNK, {**TRUNK, "name": "second", "cps": 0}]})
    assert found == ["trunks[1].cps: Input should be greater than 0"]


def test_reference_problems_are_reported_alongside_type_problems() -> None:
    source = {
        "sip": {"qualify_interval": "30"},
        "routes": [{"pattern": ".", "trunk": "nowhere"}],
        "agents": [AGENT],
        "calendars": [CALENDAR],
        "campaigns": [{**CAMPAIGN, "agents": ["101", {"id": "999", "level": 1}]}],
    }
    assert problems(source) == [
        "sip.qualify_interval: Input should be a valid number",
        'routes[0].trunk: no trunk named "nowhere": no [[trunks]] are defined',
        'campaigns[0].agents[1].id: no agent with id "999" (agents: 101)',
    ]


def test_duplicate_names_of_trunks_calendars_and_campaigns() -> None:
    source = {
        "trunks": [TRUNK, TRUNK],
        "calendars": [CALENDAR, CALENDAR],
        "campaigns": [
            CAMPAIGN,
            {**CAMPAIGN, "id": "A" * 24},
            {**CAMPAIGN, "name": "b", "id": "a" * 24},
        ],
    }
    assert problems(source) == [
        'trunks[1].name: duplicate trunk name "provider" (already used by trunks[0])',
        'calendars[1].name: duplicate calendar name "office" (already used by calendars[0])',
        'campaigns[1].name: duplicate campaign name "reminders" (already used by campaigns[0])',
        f'campaigns[2].id: duplicate campaign id "{"a" * 24}" (already used by campaigns[1])',
    ]


def test_direct_model_validation_also_checks_references() -> None:
    with pytest.raises(ValidationError, match='no calendar named "office"'):
        Config.model_validate({"campaigns": [CAMPAIGN]})


# --- TOML and file errors ------------------------------------------------------------------


def test_toml_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "syntax_error.toml")
    assert info.value.problems == [
        "line 3, column 7: invalid TOML: Expected '=' after a key in a key/value pair"
    ]


def test_toml_error_at_end_of_file() -> None:
    assert one_problem("[sip") == (
        "end of file: invalid TOML: Expected ']' at the end of a table declaration"
    )


def test_duplicate_toml_key_is_a_syntax_error() -> None:
    assert one_problem('[sip]\nrealm = "a"\nrealm = "b"\n').startswith("line 3, column ")


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "no-such-file.toml")
    [problem] = info.value.problems
    assert problem.endswith("no-such-file.toml: cannot read: No such file or directory")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[sip]\nrealm = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


# --- single keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("20000-20999", None),
        ("1024-1025", None),
        ("20001-20999", "must be even"),
        ("20000-20000", "below the last"),
        ("30000-20000", "below the last"),
        ("1000-2000", "within 1024..65535"),
        ("20000-70000", "within 1024..65535"),
        ("20000", 'expected "lo-hi"'),
        ("a-b", 'expected "lo-hi"'),
    ],
)
def test_rtp_port_range(value: str, message: str | None) -> None:
    source = {"media": {"rtp_ports": value}}
    if message is None:
        parse_config(source)
    else:
        problem = one_problem(source)
        assert problem.startswith("media.rtp_ports: ") and message in problem


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("0.0.0.0:5060", "0.0.0.0", 5060), ("[::]:5070", "::", 5070), ("localhost:0", "localhost", 0)],
)
def test_listen_addresses(listen: str, host: str, port: int) -> None:
    sip = parse_config({"sip": {"listen": listen}}).sip
    assert (sip.listen_host, sip.listen_port) == (host, port)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("0.0.0.0", 'missing ":port"'),
        ("0.0.0.0:65536", "within 0..65535"),
        ("::1:5060", "need brackets"),
        ("bad host:5060", "not a valid host name"),
        ("300.1.1.1:5060", "not a valid host name"),
        ("[1.2.3.4]:5060", "not an IPv6 address"),
        ("[::1", 'expected "[IPv6]:port"'),
    ],
)
def test_bad_listen_addresses(listen: str, message: str) -> None:
    problem = one_problem({"sip": {"listen": listen}})
    assert problem.startswith("sip.listen: ") and message in problem


def test_public_address_and_trunk_port_default() -> None:
    trunks = [{"name": "a", "address": "[2001:db8::1]"}, {"name": "b", "address": "b.example:5080"}]
    config = parse_config({"sip": {"public_address": "203.0.113.5"}, "trunks": trunks})
    assert (config.sip.public_host, config.sip.public_port) == ("203.0.113.5", 5060)
    assert [(t.host, t.port) for t in config.trunks] == [("2001:db8::1", 5060), ("b.example", 5080)]
    assert one_problem({"trunks": [{**TRUNK, "address": "x:0"}]}).startswith("trunks[0].address:")


@pytest.mark.parametrize(
    ("week", "message"),
    [
        ({"mon": ["09:00-13:00", "13:00-18:00"]}, None),
        ({"sun": ["18:00-24:00"]}, None),
        ({"mon": ["14:00-18:00", "09:00-15:00"]}, "calendars[0].week.mon: windows"),
        ({"tue": ["9-18"]}, 'calendars[0].week.tue[0]: expected "HH:MM-HH:MM"'),
        ({"wed": ["09:00-25:00"]}, "calendars[0].week.wed[0]: "),
        ({"thu": ["18:00-09:00"]}, "calendars[0].week.thu[0]: "),
        ({"fri": ["10:00-10:00"]}, "the start must be before the end"),
        ({"wen": ["09:00-18:00"]}, 'calendars[0].week.wen: unknown key; did you mean "wed"?'),
    ],
)
def test_calendar_windows(week: dict[str, list[str]], message: str | None) -> None:
    source = {"calendars": [{**CALENDAR, "week": week}]}
    if message is None:
        parse_config(source)
    else:
        assert message in one_problem(source)


def test_calendar_dates_and_windows_on() -> None:
    calendar_keys = {
        "start": date(2026, 1, 1),
        "end": date(2026, 12, 31),
        "holidays": [date(2026, 3, 9)],
        "week": {"mon": ["14:00-18:00", "09:00-13:00"]},
    }
    source = {"calendars": [{**CALENDAR, **calendar_keys}]}
    calendar = parse_config(source).calendars[0]
    assert calendar.windows_on(date(2026, 3, 2)) == (TimeWindow(540, 780), TimeWindow(840, 1080))
    assert calendar.windows_on(date(2026, 3, 9)) == ()  # a holiday
    assert calendar.windows_on(date(2026, 3, 3)) == ()  # Tuesday: closed
    assert calendar.windows_on(date(2027, 1, 4)) == ()  # after the end
    assert TimeWindow(540, 780).contains(540) and not TimeWindow(540, 780).contains(780)
    assert calendar.tzinfo.key == "UTC"
    bad = {"calendars": [{**CALENDAR, "start": date(2026, 2, 1), "end": date(2026, 1, 1)}]}
    assert one_problem(bad) == "calendars[0].end: end (2026-01-01) is before start (2026-02-01)"


def test_timezone() -> None:
    assert parse_config({"calendars": [{**CALENDAR, "timezone": "Europe/Kyiv"}]})
    problem = one_problem({"calendars": [{**CALENDAR, "timezone": "Mars/Olympus"}]})
    assert problem.startswith('calendars[0].timezone: unknown time zone "Mars/Olympus"')


@pytest.mark.parametrize(
    ("causes", "message"),
    [
        ({"ok": ["NORMAL_CLEARING"], "error": []}, None),
        ({"retry": ["USER_BUSY", "ABANDONED", "MAX_TRY_COUNT", "PROCESS_CRASH"]}, None),
        ({"ok": ["normal_clearing"]}, 'causes.ok[0]: unknown cause "normal_clearing"'),
        ({"retry": ["USER_BUSY", "USER_BUSY"]}, "causes.retry: USER_BUSY is listed twice"),
        (
            {"retry": ["NORMAL_TEMPORARY_FAILURE"]},
            'causes: NORMAL_TEMPORARY_FAILURE is in both "retry" and "minus"'
            ' ("minus" is the default list; set it)',
        ),
        ({"maybe": []}, "causes.maybe: unknown key"),
    ],
)
def test_cause_lists(causes: dict[str, list[str]], message: str | None) -> None:
    source = with_campaign(causes=causes)
    if message is None:
        parse_config(source)
    else:
        assert one_problem(source).startswith(f"campaigns[0].{message}")


def test_effective_cause_lists() -> None:
    campaign = parse_config(with_campaign(causes={"error": [], "ok": ["SUCCESS"]})).campaigns[0]
    lists = campaign.effective_causes()
    assert lists.error == () and lists.ok == ("SUCCESS",)
    assert lists.retry == DEFAULT_RETRY_CAUSES and lists.minus == DEFAULT_MINUS_CAUSES
    assert lists.list_of("USER_BUSY") == "retry"
    assert lists.list_of("NORMAL_TEMPORARY_FAILURE") == "minus"
    assert lists.list_of("UNALLOCATED_NUMBER") is None
    defaults = (
        DEFAULT_ERROR_CAUSES + DEFAULT_RETRY_CAUSES + DEFAULT_OK_CAUSES + DEFAULT_MINUS_CAUSES
    )
    assert set(defaults) <= KNOWN_CAUSES and len(set(defaults)) == len(defaults)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"id": "65f0c0ffee0000000000abcd"}, None),
        ({"id": "xyz"}, 'campaigns[0].id: expected "" or 24 hex digits'),
        ({"type": "predictive"}, "campaigns[0].type: Input should be 'progressive'"),
        ({"strategy": "random"}, "campaigns[0].strategy: Input should be"),
        ({"limit": 0}, "campaigns[0].limit: Input should be greater than or equal to 1"),
        ({"limit": 2.5}, "campaigns[0].limit: Input should be a valid integer"),
        ({"retry_wait": -1}, "campaigns[0].retry_wait: Input should be greater than or equal to 0"),
        (
            {"wait_for_result": "yes"},
            "campaigns[0].wait_for_result: Input should be a valid boolean",
        ),
        ({"agents": ["101", "101"]}, 'campaigns[0].agents: agent "101" is listed twice'),
        ({"agents": "101"}, "campaigns[0].agents: Input should be an array"),
        ({"variables": {"a": [1]}}, "campaigns[0].variables.a: a variable must be a string"),
        ({"variables": {"a": float("nan")}}, "campaigns[0].variables.a: a variable must be"),
        ({"calendar": None}, "campaigns[0].calendar: Input should be a valid string"),
    ],
)
def test_campaign_keys(keys: dict[str, Any], message: str | None) -> None:
    source = with_campaign(**keys)
    if message is None:
        parse_config(source)
    else:
        assert one_problem(source).startswith(message)


def test_campaign_lookup_by_name_or_id() -> None:
    config = parse_config(with_campaign(id="65F0C0FFEE0000000000ABCD"))
    assert config.campaigns[0].id == "65f0c0ffee0000000000abcd"
    assert config.campaign("65F0C0FFEE0000000000ABCD") is config.campaign("reminders")
    with pytest.raises(KeyError):
        config.campaign("other")


def test_required_keys_of_list_items() -> None:
    assert problems({"agents": [{"id": "101"}], "trunks": [{"name": "a"}]}) == [
        "trunks[0].address: required key is missing",
        "agents[0].password: required key is missing",
    ]


def test_routes() -> None:
    local = {"pattern": r"^0\d{9}$", "trunk": "provider", "strip": 1, "prepend": "+380"}
    routes = [
        {**local, "variables": {"call_timeout": 45}},
        {"pattern": r"^\+", "trunk": "provider"},
    ]
    source = {"trunks": [TRUNK], "routes": routes}
    config = parse_config(source)
    route = config.route_for("0501234567")
    assert route is config.routes[0] and route.call_timeout == 45
    assert route.dial_string("0501234567") == "+380501234567"
    assert config.route_for("+15551234567") is config.routes[1]
    assert config.route_for("12345") is None
    bad_route = {
        "pattern": ".",
        "trunk": "provider",
        "strip": -1,
        "variables": {"call_timeout": "x"},
    }
    bad = {"trunks": [TRUNK], "routes": [bad_route]}
    assert problems(bad) == [
        "routes[0].strip: Input should be greater than or equal to 0",
        "routes[0].variables: call_timeout must be seconds in (0, 3600], got 'x'",
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"sip": {"t1": 5.0}}, "sip.t2: t2 (4.0) must not be below t1 (5.0)"),
        ({"sip": {"t1": 0}}, "sip.t1: Input should be greater than 0"),
        (
            {"sip": {"qualify_interval": True}},
            "sip.qualify_interval: Input should be a valid number",
        ),
        (
            {"sip": {"qualify_interval": float("inf")}},
            "sip.qualify_interval: Input should be a finite",
        ),
        ({"sip": {"feature_codes": {"break": "*1"}}}, "sip.feature_codes: the three feature codes"),
        ({"sip": {"feature_codes": {"available": "1a"}}}, "sip.feature_codes.available: "),
        ({"media": {"ringback": "uk"}}, 'media.ringback: expected "eu", "us" or a .wav'),
        ({"store": {"url": "mysql://x"}}, "store.url: "),
        ({"api": {"tokens": [{"token": "a"}]}}, "api.tokens[0].key: required key is missing"),
        ({"trunks": [{**TRUNK, "register": True}]}, "trunks[0].register: register = true needs"),
        ({"trunks": [{**TRUNK, "transport": "tls"}]}, "trunks[0].transport: Input should be"),
        ({"agents": [{**AGENT, "id": "10 1"}]}, "agents[0].id: "),
        ({"agents": [{**AGENT, "call_timeout": 0}]}, "agents[0].call_timeout: Input should be"),
        ({"agents": [{**AGENT, "auto_answer": 1}]}, "agents[0].auto_answer: Input should be a"),
        ({"sip": []}, "sip: Input should be a table"),
        ({"campaign": []}, 'campaign: unknown key; did you mean "campaigns"?'),
    ],
)
def test_single_key_problems(source: dict[str, Any], message: str) -> None:
    assert one_problem(source).startswith(message)


def test_error_message_counts_problems() -> None:
    error = ConfigError(["a: x"])
    assert error.problems == ["a: x"]
    assert str(error) == "invalid configuration (1 problem):\na: x"


def test_dump_by_alias_round_trips() -> None:
    config = load_config(EXAMPLE)
    assert parse_config(config.model_dump(by_alias=True)) == config
