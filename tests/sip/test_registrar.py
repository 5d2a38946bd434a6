"""The registrar core (sipdialer.sip.registrar): RFC 3261 §10.3 fed with raw REGISTERs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

import pytest
from helpers import crlf

from sipdialer.sip.auth import Challenge, answer_challenge
from sipdialer.sip.bindings import (
    Binding,
    BindingAdded,
    BindingExpired,
    BindingRefreshed,
    BindingRemoved,
    RegistrarEvent,
    SourceLockedOut,
    contact_key,
)
from sipdialer.sip.headers import parse_contacts
from sipdialer.sip.lockout import LockoutConfig
from sipdialer.sip.message import Request, parse_message
from sipdialer.sip.peer import Peer
from sipdialer.sip.registrar import RegisterAnswer, RegistrarConfig, RegistrarCore
from sipdialer.sip.uri import parse_sip_uri

SECRET = b"0123456789abcdef0123456789abcdef"
USERS = {"101": "secret1", "102": "secret2"}
PHONE = Peer("UDP", "127.0.0.1", 5070)
WALL = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC, minus the t=0 of the tests' clock


def core(**overrides: object) -> RegistrarCore:
    config = replace(RegistrarConfig(domains=("127.0.0.1",)), **overrides)  # type: ignore[arg-type]
    return RegistrarCore(config, USERS, SECRET, wall_offset=WALL)


def drain(registrar: RegistrarCore) -> list[RegistrarEvent]:
    out = []
    while (event := registrar.next_event()) is not None:
        out.append(event)
    return out


@dataclass
class Phone:
    """Builds REGISTERs the way a phone does, answering 401s itself."""

    user: str = "101"
    password: str = "secret1"
    contacts: list[str] = field(default_factory=lambda: ["<sip:101@127.0.0.1:5070>"])
    call_id: str = "reg-1@127.0.0.1"
    cseq: int = 0
    ruri: str = "sip:dialer.local"
    to_user: str | None = None
    peer: Peer = PHONE
    algorithm: str | None = None
    "Which challenge to answer (None: the first, as a careful client does)."
    qop: bool = True
    "False: answer RFC 2069 style, as pyVoIP does."
    nc: int = 0

    def request(
        self,
        *,
        expires: int | None = None,
        extra: str = "",
        contacts: list[str] | None = None,
        authorization: str | None = None,
    ) -> Request:
        self.cseq += 1
        lines = [
            f"REGISTER {self.ruri} SIP/2.0",
            f"Via: SIP/2.0/{self.peer.transport} {self.peer.host_port};branch=z9hG4bK{self.cseq}x",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@dialer.local>;tag=ft{self.user}",
            f"To: <sip:{self.to_user or self.user}@dialer.local>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            "User-Agent: test-phone/1.0",
        ]
        lines += [f"Contact: {c}" for c in (self.contacts if contacts is None else contacts)]
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if authorization:
            lines.append(f"Authorization:  {authorization}")  # a double space, seen on the wire
        if extra:
            lines.append(extra)
        message = parse_message(crlf("\n".join(lines) + "\nContent-Length: 0\n\n"))
        assert isinstance(message, Request)
        return message

    def answer(self, challenge_answer: RegisterAnswer) -> str:
        challenges = [Challenge.parse(v) for v in challenge_answer.header_lines("WWW-Authenticate")]
        chosen = next(c for c in challenges if self.algorithm in (None, c.algorithm))
        if not self.qop:
            chosen = replace(chosen, qop=())
        self.nc += 1
        uri = f"{self.ruri};transport=UDP"  # digest uri unlike the Request-URI, as pyVoIP
        credentials = answer_challenge(
            chosen, "REGISTER", uri, self.user, self.password, "cafebabe", self.nc
        )
        return str(credentials)

    def register(self, registrar: RegistrarCore, now: float, **kwargs: object) -> RegisterAnswer:
        """REGISTER, and if challenged, REGISTER again with credentials."""
        first = registrar.handle_register(self.request(**kwargs), self.peer, now)  # type: ignore[arg-type]
        if first.status != 401:
            return first
        auth = self.answer(first)
        return registrar.handle_register(
            self.request(authorization=auth, **kwargs),  # type: ignore[arg-type]
            self.peer,
            now,
        )


def listed(answer: RegisterAnswer) -> dict[str, int]:
    """Contact URI -> expires, from a 200."""
    out = {}
    for contact in parse_contacts(answer.header_lines("Contact")):
        assert contact.address is not None and contact.expires is not None
        out[str(contact.address.uri)] = contact.expires
    return out


# --- registering, refreshing, listing -----------------------------------------------------


def test_register_challenges_then_binds_and_lists_with_date() -> None:
    registrar = core()
    phone = Phone()
    first = registrar.handle_register(phone.request(expires=300), PHONE, 10.0)
    assert first.status == 401
    challenges = [Challenge.parse(v) for v in first.header_lines("WWW-Authenticate")]
    assert [c.algorithm for c in challenges] == ["MD5", "SHA-256"]  # sipp takes the first
    assert all(c.qop == ("auth",) and c.realm == "dialer.local" for c in challenges)
    assert drain(registrar) == []
    ok = registrar.handle_register(
        phone.request(expires=300, authorization=phone.answer(first)), PHONE, 10.0
    )
    assert ok.status == 200
    assert listed(ok) == {"sip:101@127.0.0.1:5070": 300}
    assert ok.header("Date") == "Thu, 01 Jan 2026 00:00:10 GMT"
    [event] = drain(registrar)
    assert isinstance(event, BindingAdded)
    binding = event.binding
    assert (binding.aor, binding.source, binding.call_id) == ("101", PHONE, phone.call_id)
    assert binding.cseq == 2
    assert binding.expires_at == 310.0 and binding.user_agent == "test-phone/1.0"
    assert registrar.is_registered("101", 11.0) and not registrar.is_registered("102", 11.0)
    assert registrar.lookup("101", 11.0) == [binding]
    assert ok.to_response(phone.request(), to_tag="t1").status_code == 200


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_each_algorithm_is_accepted(algorithm: str) -> None:
    registrar = core()
    assert Phone(algorithm=algorithm).register(registrar, 0.0).status == 200


def test_phones_that_ignore_qop_register() -> None:
    registrar = core()
    assert Phone(algorithm="MD5", qop=False).register(registrar, 0.0).status == 200
    strict = core(allow_no_qop=False)
    assert Phone(algorithm="MD5", qop=False).register(strict, 0.0).status == 401


def test_expiry_from_contact_param_header_or_default_and_capped() -> None:
    registrar = core()
    phone = Phone(contacts=["<sip:101@127.0.0.1:5070>;expires=120", "<sip:101@127.0.0.1:5071>",
                            "sip:101@127.0.0.1:5072;expires=99999"])  # fmt: skip
    answer = phone.register(registrar, 0.0, expires=600)
    assert listed(answer) == {"sip:101@127.0.0.1:5070": 120, "sip:101@127.0.0.1:5071": 600,
                              "sip:101@127.0.0.1:5072": 3600}  # fmt: skip
    other = Phone(contacts=["<sip:101@127.0.0.1:6000>"], call_id="other")
    assert listed(other.register(registrar, 1.0))["sip:101@127.0.0.1:6000"] == 3600


def test_refresh_extends_and_every_200_lists_all_bindings_of_the_aor() -> None:
    registrar = core(qualify_interval=0)
    desk = Phone()
    soft = Phone(contacts=["<sip:101@127.0.0.1:5080;transport=tcp>"], call_id="soft")
    desk.register(registrar, 0.0, expires=100)
    soft.register(registrar, 10.0, expires=200)
    drain(registrar)
    refreshed = desk.register(registrar, 50.0, expires=100)
    assert listed(refreshed) == {"sip:101@127.0.0.1:5070": 100,
                                 "sip:101@127.0.0.1:5080;transport=tcp": 160}  # fmt: skip
    [event] = drain(registrar)
    assert isinstance(event, BindingRefreshed) and event.binding.expires_at == 150.0
    assert event.binding.registered_at == 0.0
    assert registrar.get_timer() == 150.0


def test_query_without_contact_lists_and_changes_nothing() -> None:
    registrar = core()
    Phone().register(registrar, 0.0, expires=100)
    drain(registrar)
    answer = Phone(call_id="query").register(registrar, 40.0, contacts=[])
    assert answer.status == 200 and listed(answer) == {"sip:101@127.0.0.1:5070": 60}
    assert drain(registrar) == []
    empty = Phone(user="102", password="secret2").register(registrar, 0.0, contacts=[])
    assert empty.status == 200 and empty.header_lines("Contact") == []


def test_contacts_are_keyed_by_rfc3261_uri_equivalence() -> None:
    registrar = core()
    phone = Phone(contacts=["<sip:101@127.0.0.1:5070;transport=UDP;ob>"])
    phone.register(registrar, 0.0)
    drain(registrar)
    phone.contacts = ['"Desk" <sip:101@Phone.example:5070;transport=udp>']
    phone.register(registrar, 1.0)
    assert isinstance(drain(registrar)[0], BindingAdded)  # another host: a new binding
    # Same URI per §19.1.4 (transport case, other params ignored): a refresh.
    phone.contacts = ["<sip:101@127.0.0.1:5070;transport=udp;x=1>"]
    phone.register(registrar, 2.0)
    assert [type(e) for e in drain(registrar)] == [BindingRefreshed]
    assert len(registrar) == 2


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:101@h:5070", "sip:101@H:5070"),
        ("sip:101@h;transport=TCP", "sip:101@h;transport=tcp;lr"),
        ("sip:%31%30%31@h", "sip:101@h"),
        ("sip:101@h", "sip:101@h:5060"),
        ("sip:101@h", "sip:101@h;transport=udp"),
        ("sip:101@h", "sips:101@h"),
        ("sip:101@h", "sip:102@h"),
        ("sip:Bob@h", "sip:bob@h"),
        ("sip:101@h?subject=a", "sip:101@h?subject=b"),
        ("sip:101:pw@h", "sip:101@h"),
    ],
)
def test_contact_key_agrees_with_equivalent(a: str, b: str) -> None:
    ua, ub = parse_sip_uri(a), parse_sip_uri(b)
    assert (contact_key(ua) == contact_key(ub)) is ua.equivalent(ub)


# --- removing -----------------------------------------------------------------------------


def test_expires_zero_removes_one_contact() -> None:
    registrar = core()
    phone = Phone(contacts=["<sip:101@127.0.0.1:5070>", "<sip:101@127.0.0.1:5071>"])
    phone.register(registrar, 0.0)
    drain(registrar)
    answer = phone.register(registrar, 1.0, contacts=["<sip:101@127.0.0.1:5071>;expires=0"])
    assert listed(answer) == {"sip:101@127.0.0.1:5070": 3599}
    [event] = drain(registrar)
    assert isinstance(event, BindingRemoved) and event.reason == "unregistered"


def test_unregister_with_a_new_call_id_and_expires_header() -> None:
    registrar = core()
    Phone().register(registrar, 0.0)
    drain(registrar)
    answer = Phone(call_id="another-call-id").register(registrar, 1.0, expires=0)
    assert answer.status == 200 and listed(answer) == {}
    assert [type(e) for e in drain(registrar)] == [BindingRemoved]
    assert not registrar.is_registered("101", 1.0)
    assert registrar.get_timer() is None


def test_wildcard_removes_all() -> None:
    registrar = core()
    Phone().register(registrar, 0.0)
    Phone(contacts=["<sip:101@127.0.0.1:5071>"], call_id="b").register(registrar, 0.0)
    drain(registrar)
    answer = Phone(call_id="c").register(registrar, 1.0, contacts=["*"], expires=0)
    assert answer.status == 200 and answer.header_lines("Contact") == []
    events = drain(registrar)
    assert len(events) == 2 and all(isinstance(e, BindingRemoved) for e in events)


@pytest.mark.parametrize(
    ("contacts", "expires"), [(["*"], None), (["*"], 60), (["*", "<sip:101@127.0.0.1>"], 0)]
)
def test_wildcard_needs_expires_zero_and_no_other_contact(
    contacts: list[str], expires: int | None
) -> None:
    registrar = core()
    Phone().register(registrar, 0.0)
    drain(registrar)
    answer = Phone(call_id="c").register(registrar, 1.0, contacts=contacts, expires=expires)
    assert answer.status == 400
    assert drain(registrar) == [] and registrar.is_registered("101", 1.0)


# --- intervals, order, limits -------------------------------------------------------------


def test_too_brief_gets_423_with_min_expires() -> None:
    registrar = core()
    answer = Phone().register(registrar, 0.0, expires=30)
    assert answer.status == 423 and answer.reason is None
    assert answer.header("Min-Expires") == "60"
    param = Phone().register(registrar, 0.0, contacts=["<sip:101@127.0.0.1:5070>;expires=59"])
    assert param.status == 423
    assert drain(registrar) == [] and len(registrar) == 0
    assert Phone().register(core(min_expires=1), 0.0, expires=1).status == 200


def test_same_call_id_with_lower_or_equal_cseq_is_out_of_order() -> None:
    registrar = core()
    phone = Phone()
    phone.register(registrar, 0.0, expires=100)
    drain(registrar)
    phone.cseq -= 2  # the next request reuses CSeq 2, the binding's
    stale = phone.register(registrar, 1.0, expires=0)
    assert stale.status == 500 and stale.reason == "Out Of Order Request"
    assert drain(registrar) == [] and registrar.is_registered("101", 1.0)
    phone.cseq = 10
    assert phone.register(registrar, 2.0, expires=0).status == 200


def test_another_call_id_replaces_the_binding() -> None:
    registrar = core()
    Phone(cseq=50).register(registrar, 0.0)
    drain(registrar)
    rebooted = Phone(call_id="after-reboot", peer=Peer("UDP", "127.0.0.1", 5999))
    assert rebooted.register(registrar, 5.0).status == 200
    [event] = drain(registrar)
    assert isinstance(event, BindingRefreshed)
    assert (event.binding.call_id, event.binding.cseq) == ("after-reboot", 2)
    assert event.binding.source.port == 5999


def test_too_many_contacts_gets_403() -> None:
    registrar = core(max_contacts=2)
    contacts = [f"<sip:101@127.0.0.1:{5070 + i}>" for i in range(3)]
    assert Phone(contacts=contacts).register(registrar, 0.0).status == 403
    assert Phone(contacts=contacts[:2]).register(registrar, 0.0).status == 200


@pytest.mark.parametrize(
    "contact", ["<tel:+15551234>", "<sip:101@127.0.0.1>;expires=soon", "<sip:101@h>;q=2"]
)
def test_bad_contacts_get_400(contact: str) -> None:
    assert Phone().register(core(), 0.0, contacts=[contact]).status == 400


# --- authentication and authorization -----------------------------------------------------


def answer_shape(answer: RegisterAnswer) -> tuple[object, ...]:
    """Everything of a 401 but the nonce (and the Date)."""
    headers = [
        (k, re.sub(r'nonce="[^"]*"', "nonce=N", v)) for k, v in answer.headers if k != "Date"
    ]
    return answer.status, answer.reason, tuple(headers)


def test_unknown_user_and_wrong_password_get_the_same_answer() -> None:
    registrar = core()
    wrong = Phone(password="nope").register(registrar, 0.0)
    unknown = Phone(user="999", password="nope").register(registrar, 0.0)
    right_user_no_auth = registrar.handle_register(Phone().request(), PHONE, 0.0)
    assert wrong.status == unknown.status == 401
    assert answer_shape(wrong) == answer_shape(unknown) == answer_shape(right_user_no_auth)
    assert registrar.stats["failures"] == 2


def test_stale_nonce_gets_stale_true_then_registers() -> None:
    registrar = core(nonce_lifetime=30)
    phone = Phone()
    first = registrar.handle_register(phone.request(), PHONE, 0.0)
    auth = phone.answer(first)
    late = registrar.handle_register(phone.request(authorization=auth), PHONE, 31.0)
    assert late.status == 401
    assert all(Challenge.parse(v).stale for v in late.header_lines("WWW-Authenticate"))
    again = registrar.handle_register(phone.request(authorization=phone.answer(late)), PHONE, 31.0)
    assert again.status == 200
    assert registrar.stats["failures"] == 0


def test_replayed_nonce_count_is_refused_and_counted() -> None:
    registrar = core()
    phone = Phone()
    first = registrar.handle_register(phone.request(), PHONE, 0.0)
    auth = phone.answer(first)
    assert registrar.handle_register(phone.request(authorization=auth), PHONE, 1.0).status == 200
    replay = registrar.handle_register(phone.request(authorization=auth), PHONE, 2.0)
    assert replay.status == 401 and registrar.stats["failures"] == 1


def test_auth_user_must_be_the_to_user() -> None:
    registrar = core()
    answer = Phone(user="102", password="secret2", to_user="101").register(registrar, 0.0)
    assert answer.status == 403 and not registrar.is_registered("101", 0.0)


def test_credentials_for_another_realm_are_treated_as_none() -> None:
    registrar = core()
    phone = Phone()
    foreign = Challenge("elsewhere", "abc", "MD5", ("auth",))
    creds = answer_challenge(foreign, "REGISTER", phone.ruri, "101", "secret1", "c0ffee")
    answer = registrar.handle_register(phone.request(authorization=str(creds)), PHONE, 0.0)
    assert answer.status == 401 and registrar.stats["failures"] == 0


def test_a_nonce_we_never_issued_is_not_a_failure() -> None:
    # A phone that cached the nonce of the registrar before its restart (another secret).
    before = core()
    phone = Phone()
    auth = phone.answer(before.handle_register(phone.request(), PHONE, 0.0))
    after = RegistrarCore(before.config, USERS, b"another secret", wall_offset=WALL)
    answer = after.handle_register(phone.request(authorization=auth), PHONE, 1.0)
    assert answer.status == 401 and after.stats["failures"] == 0


@pytest.mark.parametrize(
    ("ruri", "status"),
    [
        ("sip:dialer.local", 200),
        ("sip:DIALER.local:5060", 200),
        ("sip:127.0.0.1:5999", 200),
        ("sip:example.com", 403),
        ("sip:10.1.2.3", 403),
        ("tel:+15551234", 403),
    ],
)
def test_request_uri_must_name_our_domain(ruri: str, status: int) -> None:
    registrar = core()
    answer = Phone(ruri=ruri).register(registrar, 0.0)
    assert answer.status == status
    if status == 403:
        assert answer.reason == "Not Our Domain" and registrar.stats["challenged"] == 0


def test_any_ip_literal_when_listening_on_a_wildcard_address() -> None:
    registrar = core(any_ip_literal=True)
    assert Phone(ruri="sip:10.1.2.3").register(registrar, 0.0).status == 200
    assert Phone(ruri="sip:[::1]:5060", call_id="v6").register(registrar, 0.0).status == 200
    assert Phone(ruri="sip:example.com", call_id="x").register(registrar, 0.0).status == 403


def test_users_may_be_a_lookup_function() -> None:
    registrar = RegistrarCore(RegistrarConfig(), {"101": "secret1"}.get, SECRET)
    assert Phone().register(registrar, 0.0).status == 200


# --- lockout ------------------------------------------------------------------------------


def test_lockout_after_failures_from_one_ip() -> None:
    registrar = core(lockout=LockoutConfig(max_failures=3, window=60, duration=300))
    attacker = Phone(password="guess")
    for _ in range(3):
        assert attacker.register(registrar, 10.0).status == 401
    events = drain(registrar)  # the IP, and the user it guessed for
    assert all(isinstance(e, SourceLockedOut) for e in events)
    assert [(e.kind, e.key, e.until, e.peer) for e in events] == [  # type: ignore[attr-defined]
        ("ip", "127.0.0.1", 310.0, PHONE),
        ("user", "101", 310.0, PHONE),
    ]
    # Now everything from that IP gets 403 before any challenge: even the right password.
    assert Phone().register(registrar, 11.0).status == 403
    assert registrar.locked_out(PHONE, 11.0)
    assert Phone().register(registrar, 310.0).status == 200


def test_user_lockout_spares_the_ip_that_holds_a_binding() -> None:
    registrar = core(lockout=LockoutConfig(max_failures=3))
    phone = Phone()
    phone.register(registrar, 0.0)
    drain(registrar)
    for i in range(3):  # three scanners, one guess each
        scanner = Phone(password="guess", peer=Peer("UDP", f"127.0.0.{10 + i}", 5060))
        assert scanner.register(registrar, 1.0).status == 401
    [event] = drain(registrar)
    assert isinstance(event, SourceLockedOut) and (event.kind, event.key) == ("user", "101")
    other = Phone(peer=Peer("UDP", "127.0.0.99", 5060))
    assert other.register(registrar, 2.0).status == 403
    assert phone.register(registrar, 2.0).status == 200  # the phone keeps refreshing


def test_unauthenticated_and_stale_requests_are_not_failures() -> None:
    registrar = core(lockout=LockoutConfig(max_failures=2))
    for _ in range(10):
        assert registrar.handle_register(Phone().request(), PHONE, 0.0).status == 401
    assert drain(registrar) == [] and not registrar.locked_out(PHONE, 0.0)


# --- expiry, restore ----------------------------------------------------------------------


def test_bindings_expire_on_time() -> None:
    registrar = core(qualify_interval=0)
    Phone().register(registrar, 0.0, expires=100)
    Phone(contacts=["<sip:101@127.0.0.1:5071>"], call_id="b").register(registrar, 0.0, expires=200)
    drain(registrar)
    assert registrar.get_timer() == 100.0
    registrar.handle_timer(99.9)
    assert drain(registrar) == []
    registrar.handle_timer(100.0)
    [event] = drain(registrar)
    assert isinstance(event, BindingExpired) and event.binding.uri.port == 5070
    assert registrar.get_timer() == 200.0
    registrar.handle_timer(1000.0)  # a late wake-up expires what is due, once
    assert [type(e) for e in drain(registrar)] == [BindingExpired]
    assert registrar.get_timer() is None and len(registrar) == 0


def test_lookup_ignores_bindings_past_expiry_before_the_timer_fires() -> None:
    registrar = core()
    Phone().register(registrar, 0.0, expires=100)
    assert registrar.lookup("101", 100.0) == [] and not registrar.is_registered("101", 100.0)


def test_restore_keeps_live_bindings_and_drops_expired() -> None:
    registrar = core()
    Phone().register(registrar, 0.0, expires=100)
    Phone(contacts=["<sip:101@127.0.0.1:5071>"], call_id="b").register(registrar, 0.0, expires=500)
    stored = registrar.bindings()
    fresh = core()
    expired = fresh.restore(stored, 200.0)
    assert [b.uri.port for b in expired] == [5070]
    assert [b.uri.port for b in fresh.lookup("101", 200.0)] == [5071]
    assert drain(fresh) == []
    fresh.handle_timer(500.0)
    assert [type(e) for e in drain(fresh)] == [BindingExpired]
    # A restored binding is refreshed by its phone's next REGISTER (same Call-ID, CSeq up).
    again = core()
    again.restore(stored, 50.0)
    assert Phone(cseq=5).register(again, 60.0).status == 200
    assert [type(e) for e in drain(again)] == [BindingRefreshed]


# --- target (NAT and network discipline) --------------------------------------------------


def binding(contact: str, source: Peer) -> Binding:
    uri = parse_sip_uri(contact.strip("<>"))
    return Binding("101", contact, contact_key(uri), source, "c", 1, 100.0, 0.0)


def udp(port: int) -> Peer:
    return Peer("UDP", "127.0.0.1", port)


def tcp(port: int) -> Peer:
    return Peer("TCP", "127.0.0.1", port)


@pytest.mark.parametrize(
    ("contact", "source", "target"),
    [
        # Same IP as the source: the contact's port and transport (sipp agents, baresip).
        ("<sip:101@127.0.0.1:5090>", udp(5081), udp(5090)),
        ("<sip:101@127.0.0.1:5090;transport=tcp>", udp(5081), tcp(5090)),
        ("<sip:101@127.0.0.1>", udp(5081), udp(5081)),
        ("<sip:101@[::1]:5090>", Peer("UDP", "::1", 5081), Peer("UDP", "::1", 5090)),
        # Anything else: where it came from (NAT, host names, scanners' 1.1.1.1).
        ("<sip:101@192.168.1.20:5060>", udp(40000), udp(40000)),
        ("<sip:123@1.1.1.1>", udp(5099), udp(5099)),
        ("<sip:101@phone.example:5060>", tcp(40001), tcp(40001)),
    ],
)
def test_target_prefers_the_source_unless_the_contact_names_it(
    contact: str, source: Peer, target: Peer
) -> None:
    assert binding(contact, source).target() == target


def test_behind_nat() -> None:
    assert binding("<sip:101@192.168.1.20:5060>", PHONE).behind_nat
    assert binding("<sip:101@phone.example>", PHONE).behind_nat
    assert not binding("<sip:101@127.0.0.1:5090>", PHONE).behind_nat


def test_every_target_is_the_source_address() -> None:
    for contact in ("<sip:a@8.8.8.8:5060>", "<sip:a@10.0.0.1>", "<sip:a@127.0.0.2:5060>"):
        assert binding(contact, PHONE).target().host == PHONE.host


# --- qualify ------------------------------------------------------------------------------


def registered(**overrides: object) -> tuple[RegistrarCore, Binding]:
    registrar = core(qualify_interval=30, **overrides)
    Phone().register(registrar, 0.0, expires=3600)
    [event] = drain(registrar)
    assert isinstance(event, BindingAdded)
    return registrar, event.binding


def test_qualify_comes_due_every_interval_after_each_outcome() -> None:
    registrar, b = registered()
    assert registrar.get_timer() == 30.0
    assert registrar.due_qualify(29.0) == []
    [due] = registrar.due_qualify(30.0)
    assert due.key == b.key
    assert registrar.get_timer() == 3600.0  # in flight: no qualify deadline
    registrar.qualify_answered(due, 30.5)
    assert registrar.get_timer() == 60.5
    [current] = registrar.lookup("101", 31.0)
    assert current.qualify_supported is True


def test_a_phone_that_answered_then_went_silent_is_unregistered() -> None:
    registrar, b = registered()
    [due] = registrar.due_qualify(30.0)
    registrar.qualify_answered(due, 30.0)  # a 405 or 501 counts: the shell says answered
    [due] = registrar.due_qualify(60.0)
    registrar.qualify_failed(due, 92.0)
    assert registrar.is_registered("101", 92.0)
    assert registrar.lookup("101", 92.0)[0].qualify_failures == 1
    [due] = registrar.due_qualify(122.0)
    registrar.qualify_failed(due, 154.0)
    [event] = drain(registrar)
    assert isinstance(event, BindingRemoved) and event.reason == "unreachable"
    assert not registrar.is_registered("101", 154.0)
    assert registrar.get_timer() is None


def test_an_answer_resets_the_failure_count() -> None:
    registrar, b = registered()
    [due] = registrar.due_qualify(30.0)
    registrar.qualify_answered(due, 30.0)
    for step in range(6):  # fail, answer, fail, answer ...: never two failures in a row
        now = registrar.get_timer() or 0.0
        [due] = registrar.due_qualify(now)
        if step % 2:
            registrar.qualify_answered(due, now + 1)
        else:
            registrar.qualify_failed(due, now + 32)
    assert registrar.is_registered("101", 600.0) and drain(registrar) == []


def test_a_phone_that_never_answers_options_stays_registered() -> None:
    registrar, b = registered()
    now = 0.0
    for _ in range(10):
        now = registrar.get_timer() or 0.0
        [due] = registrar.due_qualify(now)
        registrar.qualify_failed(due, now + 32.0)
    [current] = registrar.lookup("101", now)
    assert current.qualify_supported is False
    assert drain(registrar) == []
    registrar.handle_timer(3600.0)
    assert [type(e) for e in drain(registrar)] == [BindingExpired]


def test_qualify_outcomes_for_bindings_gone_are_ignored() -> None:
    registrar, b = registered()
    [due] = registrar.due_qualify(30.0)
    Phone(call_id="x").register(registrar, 31.0, expires=0)
    drain(registrar)
    registrar.qualify_failed(due, 40.0)
    registrar.qualify_answered(due, 40.0)
    assert drain(registrar) == [] and len(registrar) == 0 and registrar.get_timer() is None


def test_qualify_off() -> None:
    registrar = core(qualify_interval=0)
    Phone().register(registrar, 0.0, expires=100)
    assert registrar.get_timer() == 100.0 and registrar.due_qualify(99.0) == []


# --- misc ---------------------------------------------------------------------------------


def test_configuration_is_checked() -> None:
    bad_ones: list[dict[str, float]] = [
        {"min_expires": 0},
        {"min_expires": 100, "max_expires": 50},
        {"default_expires": 10},
        {"unreachable_after": 0},
        {"qualify_interval": -1},
    ]
    for bad in bad_ones:
        with pytest.raises(ValueError):
            replace(RegistrarConfig(), **bad)  # type: ignore[arg-type]


def test_the_secret_never_appears_in_answers() -> None:
    registrar = core()
    answer = registrar.handle_register(Phone().request(), PHONE, 0.0)
    text = " ".join(v for _, v in answer.headers)
    assert SECRET.decode() not in text and hashlib.sha256(SECRET).hexdigest() not in text
