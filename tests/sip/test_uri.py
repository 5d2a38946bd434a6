"""SIP, SIPS, tel and opaque URIs."""

from __future__ import annotations

import pytest

from sipdialer.sip.errors import ParseError
from sipdialer.sip.uri import (
    MAX_URI_LENGTH,
    AbsoluteUri,
    SipUri,
    TelUri,
    parse_sip_uri,
    parse_uri,
    parse_uri_params,
)


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_full_sip_uri() -> None:
    uri = sip(
        "sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr;maddr=10.0.0.1?subject=hi&x=%41"
    )
    assert (uri.scheme, uri.user, uri.password) == ("sips", "alice", "secret")
    assert (uri.host, uri.port, uri.host_port) == (
        "Atlanta.example.com",
        5061,
        "Atlanta.example.com:5061",
    )
    assert uri.params == (("transport", "TCP"), ("lr", None), ("maddr", "10.0.0.1"))
    assert uri.transport == "tcp" and uri.has_param("LR") and uri.param("lr") == ""
    assert uri.headers == (("subject", "hi"), ("x", "A"))
    assert uri.secure
    assert str(uri) == uri.raw  # as received


def test_minimal_and_ip_hosts() -> None:
    assert sip("sip:example.com") == SipUri("example.com")
    assert sip("SIP:192.0.2.1:5060").port == 5060
    v6 = sip("sip:alice@[2001:db8::10]:5070")
    assert (v6.host, v6.port) == ("[2001:db8::10]", 5070)
    assert sip("sip:h.example.com.").host == "h.example.com."


def test_user_part_holds_semicolons_and_question_marks() -> None:
    # RFC 4475 intmeth and semiuri: the first '@' ends the userinfo.
    uri = sip("sip:a;b?c,d@example.com;p=1?h=2")
    assert (uri.user, uri.host) == ("a;b?c,d", "example.com")
    assert uri.params == (("p", "1"),) and uri.headers == (("h", "2"),)
    assert sip("sip:user;par=u%40example.net@example.com").user == "user;par=u@example.net"


def test_escapes_are_decoded_once() -> None:
    uri = sip("sip:%61lice%00@h;n%61me=v%61lue%25%34%31")
    assert uri.user == "alice\x00"
    assert uri.params == (("name", "value%41"),)


def test_str_escapes_what_needs_it() -> None:
    uri = SipUri(
        "example.com", user="I have spaces", port=5060, params=(("lr", None), ("x", "a b"))
    )
    assert str(uri) == "sip:I%20have%20spaces@example.com:5060;lr;x=a%20b"
    assert sip(str(uri)) == uri
    assert str(SipUri("h", headers=(("Route", "<sip:x>"),))) == "sip:h?Route=%3Csip:x%3E"
    assert str(SipUri("h", user="\udcff")) == "sip:%FF@h"  # an undecodable octet, re-escaped
    assert str(SipUri("h", user="u", password="p:w")) == "sip:u:p%3Aw@h"


def test_with_and_without_params() -> None:
    uri = sip("sip:a@h;transport=udp;lr")
    changed = uri.with_params(transport="tcp", ob=None)
    assert changed.params == (("lr", None), ("transport", "tcp"), ("ob", None))
    assert str(changed) == "sip:a@h;lr;transport=tcp;ob"
    assert str(uri.without_params("LR")) == "sip:a@h;transport=udp"


def test_equivalence_rules() -> None:
    a = sip("sip:alice@AtLanTa.CoM;Transport=udp")
    assert a.equivalent(sip("sip:alice@atlanta.com;transport=UDP"))
    assert not a.equivalent(sip("sip:ALICE@atlanta.com;transport=udp"))  # user is case-sensitive
    assert sip("sip:carol@chicago.com").equivalent(sip("sip:carol@chicago.com;newparam=5"))
    assert not sip("sip:bob@biloxi.com").equivalent(sip("sip:bob@biloxi.com;transport=tcp"))
    assert not sip("sip:a@h").equivalent(sip("sips:a@h"))
    assert not sip("sip:a@h?x=1").equivalent(sip("sip:a@h"))
    assert not sip("sip:a@h").equivalent("sip:a@h")


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(uri, TelUri)
    assert uri.number == "+1-201-555-0123" and uri.is_global
    assert uri.params == (("phone-context", "example.com"),)
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"
    assert str(TelUri("5551234", (("ext", "7"),))) == "tel:5551234;ext=7"
    assert not TelUri("5551234").is_global


def test_other_schemes_are_opaque() -> None:
    uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")
    assert str(parse_uri("soap.beep://192.0.2.103:3002")) == "soap.beep://192.0.2.103:3002"
    with pytest.raises(ParseError) as caught:
        parse_sip_uri("http://example.com")
    assert caught.value.status_hint == 416
    assert parse_sip_uri("sip:a@b").user == "a"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip",
        "<sip:a@b>",
        "sip:a b@c",
        "sip:@host",
        "sip:user@",
        "sip:user@host:port",
        "sip:user@host:99999",
        "sip:user@host:",
        "sip:user@-host",
        "sip:user@ho$t",
        "sip:user@[::1",
        "sip:user@[zz]",
        "sip:h;",
        "sip:h;;lr",
        "sip:h;=x",
        "sip:h?",
        "sip:h?novalue",
        "sip:%zz@h",
        "sip:a%2@h",
        "tel:",
        "tel:+",
        "tel:12g34",
        "tel:555 1234",
        "1abc:x",
        "foo:",
        'sip:a"b@c',
    ],
)
def test_malformed_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_uri_length_limit_is_414() -> None:
    with pytest.raises(ParseError) as caught:
        parse_uri("sip:" + "a" * MAX_URI_LENGTH)
    assert caught.value.status_hint == 414


def test_parse_uri_params() -> None:
    assert parse_uri_params("a=1;LR;b=%41;c=") == (("a", "1"), ("lr", None), ("b", "A"), ("c", ""))
