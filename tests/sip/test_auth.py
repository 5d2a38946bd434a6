"""Digest authentication (sipdialer.sip.auth): RFC test vectors, server checks, parsing."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipdialer.sip.auth import (
    ALGORITHMS,
    AuthError,
    Challenge,
    ClientAuthState,
    Credentials,
    answer_challenge,
    compute_ha1,
    compute_response,
    parse_challenges,
    supported,
)
from sipdialer.sip.auth_server import AuthOutcome, AuthResult, DigestServer, Ha1

SECRET = b"0123456789abcdef0123456789abcdef"
USERS = {"101": "secret", "102": "other"}


def algorithms_here() -> list[str]:
    """ALGORITHMS minus those this OpenSSL build lacks (SHA-512-256 is optional)."""
    return [a for a in ALGORITHMS if supported(Challenge("r", "n", a))]


# --- RFC test vectors -----------------------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int",'
    ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com",'
    ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth,'
    ' nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1",'
    ' opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def test_rfc2617_section_3_5_example() -> None:
    challenge = Challenge.parse(RFC2617_CHALLENGE)
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.algorithm is None
    credentials = answer_challenge(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", "0a4f113b"
    )
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert credentials.qop == "auth"  # preferred over auth-int
    assert credentials.nc == "00000001"
    assert credentials.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert credentials == Credentials.parse(RFC2617_AUTHORIZATION)
    assert Credentials.parse(str(credentials)) == credentials
    ha1 = compute_ha1(None, "Mufasa", "testrealm@host.com", "Circle Of Life")
    assert compute_response(credentials, ha1, "GET") == credentials.response


RFC7616_CHALLENGE = """Digest
    realm="http-auth@example.org",
    qop="auth, auth-int",
    algorithm={algorithm},
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""
RFC7616_AUTHORIZATION = """Digest username="Mufasa",
    realm="http-auth@example.org",
    uri="/dir/index.html",
    algorithm={algorithm},
    nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    nc=00000001,
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    qop=auth,
    response="{response}",
    opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, response: str) -> None:
    # The RFC folds the header over lines; a SIP parser unfolds them to single spaces.
    unfold = " ".join
    challenge = Challenge.parse(unfold(RFC7616_CHALLENGE.format(algorithm=algorithm).split()))
    assert challenge.qop == ("auth", "auth-int")
    credentials = answer_challenge(
        challenge,
        "GET",
        "/dir/index.html",
        "Mufasa",
        "Circle of Life",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert credentials.response == response
    text = RFC7616_AUTHORIZATION.format(algorithm=algorithm, response=response)
    assert Credentials.parse(unfold(text.split())) == credentials


def test_rfc2069_style_challenge_without_qop() -> None:
    challenge = Challenge("sip.example", "abc123")
    credentials = answer_challenge(challenge, "INVITE", "sip:x@sip.example", "u", "p", "cn")
    assert (credentials.qop, credentials.nc, credentials.cnonce) == (None, None, None)

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    expected = md5(f"{md5('u:sip.example:p')}:abc123:{md5('INVITE:sip:x@sip.example')}")
    assert credentials.response == expected
    assert str(credentials) == (
        'Digest username="u", realm="sip.example", nonce="abc123", uri="sip:x@sip.example",'
        f' response="{expected}"'
    )


def test_auth_int_covers_the_body() -> None:
    challenge = Challenge("r", "n", "MD5", ("auth-int",))
    with_body = answer_challenge(challenge, "INVITE", "sip:x@r", "u", "p", "c", body=b"v=0\r\n")
    without = answer_challenge(challenge, "INVITE", "sip:x@r", "u", "p", "c")
    assert with_body.qop == "auth-int"
    assert with_body.response != without.response
    ha1 = compute_ha1("MD5", "u", "r", "p")
    assert compute_response(with_body, ha1, "INVITE", b"v=0\r\n") == with_body.response


def test_sess_algorithms_use_the_cnonce() -> None:
    challenge = Challenge("r", "n", "MD5-sess", ("auth",))
    one = answer_challenge(challenge, "REGISTER", "sip:r", "u", "p", "c1")
    two = answer_challenge(challenge, "REGISTER", "sip:r", "u", "p", "c2")
    assert one.cnonce == "c1" and one.response != two.response
    ha1 = compute_ha1("MD5", "u", "r", "p")
    sess_ha1 = hashlib.md5(f"{ha1}:n:c1".encode()).hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:r").hexdigest()
    expected = hashlib.md5(f"{sess_ha1}:n:00000001:c1:auth:{ha2}".encode()).hexdigest()
    assert one.response == expected


def test_unusable_challenges() -> None:
    with pytest.raises(AuthError, match="algorithm"):
        answer_challenge(Challenge("r", "n", "SHA-999"), "GET", "/", "u", "p", "c")
    with pytest.raises(AuthError, match="qop"):
        answer_challenge(Challenge("r", "n", None, ("auth-conf",)), "GET", "/", "u", "p", "c")
    with pytest.raises(ValueError, match="nc"):
        answer_challenge(Challenge("r", "n"), "GET", "/", "u", "p", "c", nc=0)
    assert not supported(Challenge("r", "n", "SHA-999"))
    assert supported(Challenge("r", "n", "sha-256", ("AUTH",)))


# --- server ---------------------------------------------------------------------------------


def server(**kwargs: Any) -> DigestServer:
    return DigestServer("dialer.local", SECRET, **kwargs)


def client_for(
    srv: DigestServer, now: float, user: str = "101", password: str = "secret"
) -> ClientAuthState:
    state = ClientAuthState(user, password)
    assert state.handle_challenges(srv.challenge(now))
    return state


def login(
    srv: DigestServer, now: float, user: str = "101", password: str = "secret"
) -> Credentials:
    return client_for(srv, now, user, password).authorize("REGISTER", "sip:dialer.local", "cn")[0][
        1
    ]


def test_challenges_one_per_algorithm_sha256_first() -> None:
    challenges = server().challenge(10.0)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert all(c.qop == ("auth",) and c.realm == "dialer.local" for c in challenges)
    assert len({c.nonce for c in challenges}) == 1
    assert not any(c.stale for c in challenges)
    assert server().challenge(10.0, stale=True)[0].stale
    for challenge in challenges:
        assert Challenge.parse(str(challenge)) == challenge


def test_nonces_are_unique_even_at_the_same_time() -> None:
    srv = server()
    assert srv.challenge(5.0)[0].nonce != srv.challenge(5.0)[0].nonce


@pytest.mark.parametrize("algorithm", algorithms_here())
def test_round_trip_with_each_algorithm(algorithm: str) -> None:
    srv = server(algorithms=(algorithm,))
    credentials = login(srv, 0.0)
    assert credentials.algorithm == algorithm
    assert srv.verify(credentials, "REGISTER", USERS.get, 1.0) == AuthResult(AuthOutcome.OK, "101")
    parsed = Credentials.parse(str(credentials))  # as it would travel in a header
    assert srv.verify(replace(parsed, nc="00000002"), "REGISTER", USERS.get, 1.0) == AuthResult(
        AuthOutcome.BAD
    )  # a changed nc needs a new response


def test_client_reuses_the_nonce_with_growing_nc_and_replays_are_refused() -> None:
    srv = server()
    state = client_for(srv, 0.0)
    first = state.authorize("REGISTER", "sip:dialer.local", "a")[0][1]
    second = state.authorize("INVITE", "sip:500@dialer.local", "b")[0][1]
    assert (first.nc, second.nc) == ("00000001", "00000002")
    assert srv.verify(first, "REGISTER", USERS.get, 1.0).ok
    assert srv.verify(second, "INVITE", USERS.get, 2.0).ok
    assert srv.verify(first, "REGISTER", USERS.get, 3.0).outcome is AuthOutcome.REPLAY
    assert srv.verify(second, "INVITE", USERS.get, 3.0).outcome is AuthOutcome.REPLAY
    assert srv.verify(second, "BYE", USERS.get, 3.0).outcome is AuthOutcome.BAD  # other method


def test_stale_after_expiry_then_the_client_retries() -> None:
    srv = server(nonce_lifetime=30.0)
    state = client_for(srv, 0.0)
    credentials = state.authorize("REGISTER", "sip:dialer.local", "a")[0][1]
    assert srv.verify(credentials, "REGISTER", USERS.get, 30.0).ok
    late = state.authorize("REGISTER", "sip:dialer.local", "b")[0][1]
    assert srv.verify(late, "REGISTER", USERS.get, 30.5) == AuthResult(AuthOutcome.STALE, "101")
    # A stale response with a wrong password is still just BAD.
    wrong = login(srv, 0.0, password="guess")
    assert srv.verify(wrong, "REGISTER", USERS.get, 31.0) == AuthResult(AuthOutcome.BAD)
    assert state.handle_challenges(srv.challenge(31.0, stale=True))
    fresh = state.authorize("REGISTER", "sip:dialer.local", "c")[0][1]
    assert fresh.nc == "00000001"
    assert srv.verify(fresh, "REGISTER", USERS.get, 32.0).ok


def test_nonce_from_the_future_is_stale() -> None:
    srv = server()
    credentials = login(srv, 1000.0)
    assert srv.verify(credentials, "REGISTER", USERS.get, 999.5).ok  # within CLOCK_SKEW
    later = login(srv, 1000.0)
    assert srv.verify(later, "REGISTER", USERS.get, 10.0).outcome is AuthOutcome.STALE


def test_wrong_password_unknown_user_and_other_failures_look_the_same() -> None:
    srv = server()
    good = login(srv, 0.0)
    other = DigestServer("dialer.local", b"another secret, sixteen+", 300.0)
    bad = [
        login(srv, 0.0, password="wrong"),
        login(srv, 0.0, user="999"),
        login(srv, 0.0, user=""),
        replace(good, realm="elsewhere"),
        replace(good, response="0" * 64),
        replace(good, nonce=good.nonce[:-2] + "AA"),
        replace(good, nonce=good.nonce + "="),
        replace(good, nonce="not base64 at all é"),
        login(other, 0.0),
        replace(good, algorithm="SHA-999"),
        replace(good, algorithm="SHA-512-256"),  # not among this server's algorithms
        replace(good, nc="1"),
        replace(good, nc="zzzzzzzz"),
        replace(good, cnonce=None),
        replace(good, cnonce=""),
        replace(good, qop="auth-conf"),
        replace(good, qop=None, nc=None),  # RFC 2069 style is off by default
    ]
    results = [srv.verify(c, "REGISTER", USERS.get, 1.0) for c in bad]
    assert results == [AuthResult(AuthOutcome.BAD)] * len(bad)
    assert all(r.username is None and not r.ok for r in results)
    assert srv.verify(good, "REGISTER", USERS.get, 1.0).ok


def test_verify_header_parses_and_treats_malformed_as_bad() -> None:
    srv = server()
    credentials = login(srv, 0.0)
    assert srv.verify_header(str(credentials), "REGISTER", USERS.get, 1.0).ok
    for value in ("", "Digest", "Basic dXNlcjpwYXNz", str(credentials) + ', realm="x"'):
        assert srv.verify_header(value, "REGISTER", USERS.get, 1.0) == AuthResult(AuthOutcome.BAD)


def test_clients_that_ignore_qop_when_allowed() -> None:
    srv = server(allow_no_qop=True)
    challenge = srv.challenge(0.0)[1]
    rfc2069 = answer_challenge(
        replace(challenge, qop=()), "REGISTER", "sip:dialer.local", "101", "secret", "x"
    )
    assert rfc2069.qop is None
    assert srv.verify(rfc2069, "REGISTER", USERS.get, 1.0).ok
    assert srv.verify(rfc2069, "REGISTER", USERS.get, 2.0).ok  # no nc: no replay check
    assert srv.verify(rfc2069, "REGISTER", USERS.get, 301.0).outcome is AuthOutcome.STALE
    assert server().verify(rfc2069, "REGISTER", USERS.get, 1.0).outcome is AuthOutcome.BAD


def test_digest_uri_may_differ_from_the_request_uri() -> None:
    srv = server()
    state = client_for(srv, 0.0)
    credentials = state.authorize("INVITE", "sip:500@dialer.local;transport=UDP", "c")[0][1]
    assert credentials.uri == "sip:500@dialer.local;transport=UDP"
    assert srv.verify(credentials, "INVITE", USERS.get, 1.0).ok


def test_ha1_lookup() -> None:
    srv = server()
    stored = {"101": Ha1.compute("101", "dialer.local", "secret")}
    for index in (0, 1):  # SHA-256, then MD5, each with a nonce of its own
        challenge = srv.challenge(0.0)[index]
        credentials = answer_challenge(
            challenge, "REGISTER", "sip:dialer.local", "101", "secret", "c"
        )
        assert srv.verify(credentials, "REGISTER", stored.get, 1.0).ok
    md5_only = {"101": Ha1.compute("101", "dialer.local", "secret", ("MD5",))}
    sha = login(srv, 0.0)
    assert sha.algorithm == "SHA-256"
    assert srv.verify(sha, "REGISTER", md5_only.get, 1.0) == AuthResult(AuthOutcome.BAD)
    assert md5_only["101"].get("md5-sess") == compute_ha1("MD5", "101", "dialer.local", "secret")
    sess = server(algorithms=("SHA-256-sess",))
    sess_store = {"101": Ha1.compute("101", "dialer.local", "secret", ("SHA-256-sess",))}
    assert sess.verify(login(sess, 0.0), "REGISTER", sess_store.get, 1.0).ok


def test_nc_memory_is_bounded_and_pruned() -> None:
    srv = server(nonce_lifetime=10.0, max_nonces=5)
    logins = [login(srv, float(i)) for i in range(8)]
    for i, credentials in enumerate(logins):
        assert srv.verify(credentials, "REGISTER", USERS.get, float(i)).ok
    assert srv.tracked_nonces == 5
    # The oldest were evicted: their nc is unknown, so a reuse is answered STALE, not OK.
    assert srv.verify(logins[0], "REGISTER", USERS.get, 8.0).outcome is AuthOutcome.STALE
    assert srv.verify(logins[7], "REGISTER", USERS.get, 8.0).outcome is AuthOutcome.REPLAY
    srv.verify(logins[0], "REGISTER", USERS.get, 100.0)
    assert srv.tracked_nonces == 0  # all expired


def test_server_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="secret"):
        DigestServer("r", b"")
    with pytest.raises(ValueError, match="algorithms"):
        DigestServer("r", SECRET, algorithms=("SHA-1",))
    with pytest.raises(ValueError, match="positive"):
        DigestServer("r", SECRET, nonce_lifetime=0)


@given(
    st.builds(
        Credentials,
        st.text(max_size=8),
        st.sampled_from(["dialer.local", "x"]),
        st.text(max_size=50),
        st.text(max_size=8),
        st.text(max_size=64),
        st.sampled_from([None, "MD5", "SHA-256", "md5-sess", "bogus"]),
        st.one_of(st.none(), st.text(max_size=4)),
        st.none(),
        st.sampled_from([None, "auth", "auth-int", "x"]),
        st.one_of(st.none(), st.text(max_size=9)),
    )
)
def test_random_credentials_are_bad_never_an_exception(credentials: Credentials) -> None:
    srv = server(allow_no_qop=True)
    assert srv.verify(credentials, "REGISTER", USERS.get, 1.0) == AuthResult(AuthOutcome.BAD)


# --- client state ---------------------------------------------------------------------------


def test_client_state_detects_refused_credentials() -> None:
    state = ClientAuthState("101", "wrong")
    challenges = server().challenge(0.0)
    assert state.authorize("REGISTER", "sip:dialer.local", "c") == []
    assert state.handle_challenges(challenges)
    state.authorize("REGISTER", "sip:dialer.local", "c")
    assert not state.handle_challenges(challenges)  # same nonce again: refused
    assert state.handle_challenges([replace(c, stale=True) for c in challenges])


def test_client_state_uses_the_topmost_supported_challenge_per_realm() -> None:
    state = ClientAuthState("u", "p")
    assert state.handle_challenges(
        [
            Challenge("a", "n1", "SHA-999", ("auth",)),
            Challenge("a", "n2", "SHA-256", ("auth",)),
            Challenge("a", "n3", "MD5", ("auth",)),
            Challenge("b", "n4", None, ()),
        ]
    )
    assert state.handle_challenges([Challenge("proxy", "n5", "MD5", ("auth",))], proxy=True)
    headers = state.authorize("INVITE", "sip:x@a", "c")
    assert [(name, c.realm, c.nonce, c.algorithm) for name, c in headers] == [
        ("Authorization", "a", "n2", "SHA-256"),
        ("Authorization", "b", "n4", None),
        ("Proxy-Authorization", "proxy", "n5", "MD5"),
    ]
    assert not ClientAuthState("u", "p").handle_challenges([Challenge("a", "n", "SHA-999")])


# --- parsing and formatting ---------------------------------------------------------------


def test_parse_is_liberal_about_spacing_case_order_and_quoting() -> None:
    value = (
        'DIGEST  NONCE = "n1" ,  Algorithm="SHA-256",\tREALM="a \\"quoted\\" realm \\\\ x",'
        ' ,stale=true, qop=auth, Foo=bar, charset="UTF-8" , userhash=false'
    )
    challenge = Challenge.parse(value)
    assert challenge.realm == 'a "quoted" realm \\ x'
    assert (challenge.nonce, challenge.algorithm, challenge.qop) == ("n1", "SHA-256", ("auth",))
    assert challenge.stale
    assert challenge.extra == (
        ("Foo", "bar", False),
        ("charset", "UTF-8", True),
        ("userhash", "false", False),
    )
    assert str(challenge) == (
        'Digest realm="a \\"quoted\\" realm \\\\ x", nonce="n1", stale=TRUE, algorithm=SHA-256,'
        ' qop="auth", Foo=bar, charset="UTF-8", userhash=false'
    )
    assert Challenge.parse(str(challenge)) == challenge


@pytest.mark.parametrize(
    ("value", "stale", "algorithm"),
    [
        ('Digest realm="r", nonce="n", stale=FALSE, algorithm=MD5', False, "MD5"),
        ('Digest realm="r", nonce="n", stale="TRUE", algorithm="md5"', True, "md5"),
        ('Digest realm="r",nonce="n",stale=True', True, None),
        ("Digest realm=r, nonce=n", False, None),
    ],
)
def test_stale_and_algorithm_forms(value: str, stale: bool, algorithm: str | None) -> None:
    challenge = Challenge.parse(value)
    assert (challenge.realm, challenge.nonce) == ("r", "n")
    assert (challenge.stale, challenge.algorithm) == (stale, algorithm)


def test_credentials_with_bare_uri_and_quoted_qop() -> None:
    # Some phones quote qop or leave the uri unquoted; accept both.
    value = (
        'Digest username="101",realm="r",nonce="n",uri=sip:r,response="ab",qop="auth",'
        'nc=00000001,cnonce="c"'
    )
    credentials = Credentials.parse(value)
    assert (credentials.uri, credentials.qop, credentials.nc) == ("sip:r", "auth", "00000001")
    assert "qop=auth, nc=00000001" in str(credentials)
    assert 'uri="sip:r"' in str(credentials)


def test_parse_all_splits_joined_challenges_and_skips_other_schemes() -> None:
    value = (
        'Digest realm="r", nonce="1", algorithm=SHA-256, Basic realm="r",'
        ' Digest realm="r", nonce="1"'
    )
    challenges = Challenge.parse_all(value)
    assert [c.algorithm for c in challenges] == ["SHA-256", None]
    assert [scheme for scheme, _ in parse_challenges(value)] == ["Digest", "Basic", "Digest"]
    with pytest.raises(AuthError, match="one Digest"):
        Challenge.parse(value)


MALFORMED = [
    "",
    "   ",
    'Basic realm="r"',
    "Digest",
    'Digest realm="r"',
    'Digest nonce="n"',
    'Digest realm="r", nonce="n',
    'Digest realm="r" nonce="n"',
    'Digest realm="r", realm="s", nonce="n"',
    'Digest realm="r", REALM="s", nonce="n"',
    'realm="r", Digest nonce="n"',
    'Digest realm=, nonce="n"',
    'Digest realm="a\rb", nonce="n"',
    'Digest realm="r", nonce="n", =x',
    'Digest realm="r", nonce="n", "x"',
    'Digest realm="r", nonce="n" x="y"',
]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_challenges(value: str) -> None:
    with pytest.raises(AuthError):
        Challenge.parse(value)


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="r", nonce="n", uri="u", response="x"',  # no username
        'Digest username="u", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="u", username="u", realm="r", nonce="n", uri="u", response="x"',
    ],
)
def test_malformed_credentials(value: str) -> None:
    with pytest.raises(AuthError):
        Credentials.parse(value)


def test_formatting_refuses_header_injection() -> None:
    credentials = answer_challenge(
        Challenge("r", "n", "MD5", ("auth",)), "GET", "/", "u\r\nX: y", "p", "c"
    )
    with pytest.raises(AuthError, match="control"):
        str(credentials)


def test_auth_error_is_a_value_error() -> None:
    assert issubclass(AuthError, ValueError)


@given(st.text())
def test_random_text_raises_only_auth_error(value: str) -> None:
    for parse in (Challenge.parse, Challenge.parse_all, Credentials.parse, parse_challenges):
        try:
            parse(value)
        except AuthError:
            pass


PIECES = st.sampled_from(
    [
        "Digest",
        "digest ",
        "realm",
        "nonce",
        "username",
        "uri",
        "response",
        "qop",
        "nc",
        "=",
        '"',
        '\\"',
        ",",
        " ",
        "\t",
        "auth",
        "MD5",
        "x",
        "00000001",
        '"quoted"',
        "\\",
        "é",
        "\r",
    ]
)


@given(st.lists(PIECES, max_size=30).map("".join))
def test_random_header_like_text_raises_only_auth_error(value: str) -> None:
    try:
        challenge = Challenge.parse(value)
    except AuthError:
        pass
    else:
        assert Challenge.parse(str(challenge)) == challenge
    try:
        credentials = Credentials.parse(value)
    except AuthError:
        pass
    else:
        assert Credentials.parse(str(credentials)) == credentials
    try:
        Challenge.parse_all(value)
    except AuthError:
        pass


BARE = r'[^\s,"\x00-\x1f\x7f]+'  # what the formatter may leave unquoted
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20)
TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789-.!%*_+`'~", min_size=1, max_size=10)
KNOWN = {
    "realm",
    "domain",
    "nonce",
    "opaque",
    "stale",
    "algorithm",
    "qop",
    "username",
    "uri",
    "response",
    "cnonce",
    "nc",
}
EXTRA = st.lists(
    st.tuples(TOKEN.filter(lambda n: n.lower() not in KNOWN), SAFE_TEXT, st.booleans()),
    max_size=3,
    unique_by=lambda p: p[0].lower(),
).map(lambda params: tuple((n, v, q or not re.fullmatch(BARE, v)) for n, v, q in params))


@given(
    st.builds(
        Challenge,
        SAFE_TEXT,
        SAFE_TEXT,
        st.one_of(st.none(), TOKEN),
        st.lists(TOKEN, max_size=3).map(tuple),
        st.one_of(st.none(), SAFE_TEXT),
        st.booleans(),
        st.one_of(st.none(), SAFE_TEXT),
        extra=EXTRA,
    )
)
def test_challenge_format_parse_round_trip(challenge: Challenge) -> None:
    assert Challenge.parse(str(challenge)) == challenge


@given(
    st.builds(
        Credentials,
        SAFE_TEXT,
        SAFE_TEXT,
        SAFE_TEXT,
        SAFE_TEXT,
        SAFE_TEXT,
        st.one_of(st.none(), TOKEN),
        st.one_of(st.none(), SAFE_TEXT),
        st.one_of(st.none(), SAFE_TEXT),
        st.one_of(st.none(), TOKEN),
        st.one_of(st.none(), TOKEN),
        extra=EXTRA,
    )
)
def test_credentials_format_parse_round_trip(credentials: Credentials) -> None:
    assert Credentials.parse(str(credentials)) == credentials
