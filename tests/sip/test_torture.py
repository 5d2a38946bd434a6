"""RFC 4475 torture messages: one test per message, asserting the RFC's verdict.

The corpus is ``tests/data/rfc4475`` (byte-exact; see the README there). A *valid*
message must parse, pass ``check_request``/``check_response`` and yield the right
values. An *invalid request* must raise ``ParseError`` whose ``status_hint`` is what
the UAS answers, and the UAS must still be able to build that answer. An *invalid
response* must raise so the shell drops it. Where the RFC's verdict belongs to UA
behaviour (420, 415, 406, 483, a registrar's 400/401), the test asserts what the
parser must hand the UA for it to decide; those tests say "UA:" in a comment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import DATA, load

from sipdialer.sip.errors import ParseError
from sipdialer.sip.framing import StreamFramer
from sipdialer.sip.headers import CSeq, parse_name_addr
from sipdialer.sip.message import (
    KNOWN_METHODS,
    Request,
    Response,
    check_request,
    check_response,
    parse_message,
    response_for,
)
from sipdialer.sip.multipart import parse_multipart
from sipdialer.sip.uri import AbsoluteUri, SipUri

CORPUS = DATA / "rfc4475"


def message(name: str) -> Request | Response:
    return parse_message(load(f"rfc4475/{name}.dat"))


def valid_request(name: str) -> Request:
    request = message(name)
    assert isinstance(request, Request)
    check_request(request)
    return request


def valid_response(name: str) -> Response:
    response = message(name)
    assert isinstance(response, Response)
    check_response(response)
    return response


def sip(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


# --- 3.1.1 valid messages -------------------------------------------------------------


def test_wsinv_short_tortuous_invite() -> None:
    request = valid_request("wsinv")
    assert request.method == "INVITE"
    assert request.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert sip(request.request_uri).params == (("unknownparam", None),)
    assert request.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert request.cseq == CSeq(9, "INVITE")  # "0009\r\n  INVITE", folded
    assert request.max_forwards == 68
    assert request.to.tag == "1918181833n"
    assert sip(request.to.uri).user == "vivekg"
    assert request.from_.display_name == 'J Rosenberg \\"'
    assert request.from_.tag == "98asjd8"
    vias = request.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert request.header("Subject") == ""  # "s :" with an empty value
    assert request.header("newfangledheader") == "newfangled value continued newfangled value"
    assert request.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = parse_name_addr(request.headers.get("Route") or "")
    assert sip(route.uri).params == (
        ("lr", None),
        ("unknownwith", "value"),
        ("unknown-no-value", None),
    )
    (contact,) = request.contacts
    assert contact.address is not None
    assert contact.address.display_name == 'Quoted string ""'
    assert contact.address.params == (
        ("newparam", "newvalue"),
        ("secondparam", None),
        ("q", "0.33"),
    )
    assert contact.q == 0.33
    assert request.content_type == "application/sdp"
    assert len(request.body) == 150 and request.body.startswith(b"v=0\r\n")


def test_intmeth_wide_range_of_valid_characters() -> None:
    request = valid_request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert request.method == method
    assert request.cseq == CSeq(139122385, method)
    # The user part holds '?', ';' and ',': the '@' ends it, not the '?'.
    uri = sip(request.request_uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com" and uri.params == () and uri.headers == ()
    assert request.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert request.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert sip(request.to.uri).user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert request.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert request.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert request.from_.tag == "_token~1'+`*%!-."
    assert request.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert request.header("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert request.max_forwards == 255


def test_esc01_valid_use_of_the_escape_mechanism() -> None:
    request = valid_request("esc01")
    uri = sip(request.request_uri)
    assert (uri.user, uri.host) == ("sips:user@example.com", "example.net")
    assert sip(request.to.uri).user == "user"
    assert sip(request.to.uri).equivalent(SipUri("example.com", user="user"))  # §19.1.4
    assert sip(request.from_.uri).user == "I have spaces"
    assert request.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact "i"
    assert request.content_type == "application/sdp"  # compact "C"
    (contact,) = request.contacts
    assert contact.address is not None
    contact_uri = sip(contact.address.uri)
    assert contact_uri.user == "caller"
    assert contact_uri.params == (("lr", None), ("name", "value%41"))  # unescaped once


def test_escnull_escaped_nulls_in_uris() -> None:
    request = valid_request("escnull")
    assert sip(request.to.uri).user == "null-\x00-null"
    assert sip(request.from_.uri).user == "null-\x00-null"
    users = [sip(c.address.uri).user for c in request.contacts if c.address is not None]
    assert users == ["\x00", "\x00\x00"]  # two distinct bindings, not shortened
    assert request.body == b""  # "L:0"


def test_esc02_escaped_method_is_not_register() -> None:
    request = valid_request("esc02")
    assert request.method == "RE%47IST%45R" != "REGISTER"
    assert request.cseq.method == "RE%47IST%45R"
    # UA: an unknown method is answered 501 (RFC 3261 §21.5.2).
    assert request.method not in KNOWN_METHODS
    # "C%6Fntact" is an extension header of its own, not a third Contact.
    assert [str(c) for c in request.contacts] == [
        "<sip:alias1@host1.example.com>",
        "<sip:alias3@host3.example.com>",
    ]
    assert request.header("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert request.to.display_name == "%Z%45"


def test_lwsdisp_no_lws_between_display_name_and_laquot() -> None:
    request = valid_request("lwsdisp")
    assert request.from_.display_name == "caller"
    assert request.from_.tag == "323"
    assert sip(request.from_.uri).user == "caller"


def test_longreq_long_values_in_header_fields() -> None:
    data = load("rfc4475/longreq.dat")
    assert len(data) == 3515
    request = valid_request("longreq")
    to = request.to
    assert to.display_name == f"I have a user name of {'extreme' * 10} proportion"
    to_uri = sip(to.uri)
    assert to_uri.port == 6000
    assert to_uri.param("unknownparam1") == f"very{'long' * 20}value"
    assert to_uri.param(f"longparam{'name' * 25}") == "shortvalue"
    assert to_uri.param(f"very{'long' * 25}ParameterNameWithNoValue") == ""
    caller = "amazinglylongcallername" * 5
    assert sip(request.from_.uri).user == caller
    assert request.from_.tag == "1" + "298" * 50 + "2424"
    assert request.call_id == f"longreq.one{'really' * 20}longcallid"
    vias = request.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[-1].received == "192.0.2.5"
    assert vias[-1].branch == f"very{'long' * 50}branchvalue"
    (contact,) = request.contacts
    assert contact.address is not None and sip(contact.address.uri).user == caller
    assert len(request.body) == 150  # "l: 150"


def test_dblreq_only_the_first_of_two_requests_in_a_datagram() -> None:
    request = valid_request("dblreq")
    assert request.method == "REGISTER"
    assert request.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert request.body == b""  # Content-Length: 0; the INVITE after it is ignored
    assert b"INVITE" not in request.to_bytes()


def test_semiuri_semicolon_separated_parameters_in_uri_user_part() -> None:
    request = valid_request("semiuri")
    uri = sip(request.request_uri)
    assert uri.user == "user;par=u@example.net"
    assert uri.host == "example.com" and uri.params == ()
    assert request.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_varied_and_unknown_transport_types() -> None:
    request = valid_request("transports")
    assert [v.transport for v in request.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert request.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_multipart_mime_message() -> None:
    request = valid_request("mpart01")
    assert request.content_type == "multipart/mixed"
    assert len(request.body) == 553
    text, binary = parse_multipart(request.body, request.headers.get("Content-Type") or "")
    assert (text.content_type, text.body) == ("text/plain", b"Hello")
    assert binary.content_type == "application/octet-stream"
    assert binary.headers.get("Content-Transfer-Encoding") == "binary"
    assert len(binary.body) == 342 and binary.body.startswith(b"0\x82\x01R")  # DER SEQUENCE


def test_unreason_unusual_reason_phrase() -> None:
    response = valid_response("unreason")
    assert response.status_code == 200
    assert response.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert response.cseq == CSeq(35, "INVITE")
    assert len(response.body) == 154


def test_noreason_empty_reason_phrase() -> None:
    response = valid_response("noreason")
    assert (response.status_code, response.reason) == (100, "")
    assert response.call_id == "noreason.asndj203insdf99223ndf"


# --- 3.1.2 invalid messages -----------------------------------------------------------

INVALID_REQUESTS = [
    ("badinv01", 400),  # ";;,;,," in Via, ";;;;" after Contact
    ("clerr", 400),  # Content-Length larger than the datagram's body
    ("ncl", 400),  # negative Content-Length
    ("scalar02", 400),  # CSeq, Max-Forwards and Expires out of range
    ("quotbal", 400),  # unterminated quoted display name
    ("ltgtruri", 400),  # Request-URI in <>
    ("lwsruri", 400),  # LWS inside the Request-URI
    ("lwsstart", 400),  # several SP between the Request-Line's elements
    ("trws", 400),  # SP after the SIP version
    ("escruri", 400),  # escaped headers in a Request-URI: 400 is the RFC's choice
    ("baddate", 400),  # Date not in GMT: 400 (the liberal choice would ignore it)
    ("regbadct", 400),  # Contact URI with '?' outside <>
    ("badaspec", 400),  # LWS inside <> in To
    ("baddn", 400),  # unquoted display names with commas
    ("badvers", 505),  # SIP/7.0
    ("mismatch01", 400),  # CSeq method differs from a known Request-Line method
    ("mismatch02", 501),  # ... from an unknown one: 501 (400 also allowed)
]


@pytest.mark.parametrize(("name", "status"), INVALID_REQUESTS, ids=[n for n, _ in INVALID_REQUESTS])
def test_invalid_request_is_answered_with_its_status(name: str, status: int) -> None:
    request = message(name)  # parses far enough for the UAS to answer...
    assert isinstance(request, Request)
    with pytest.raises(ParseError) as caught:
        check_request(request)  # ...but is refused
    assert caught.value.status_hint == status
    answer = parse_message(response_for(request, status).to_bytes())
    assert isinstance(answer, Response) and answer.status_code == status
    assert answer.headers.get("Call-ID") == request.headers.get("Call-ID")
    assert answer.headers.get_lines("Via") == request.headers.get_lines("Via")


@pytest.mark.parametrize("name", ["scalarlg", "bigcode"])
def test_invalid_response_is_dropped(name: str) -> None:
    # scalarlg: CSeq (and Retry-After, Warning code) beyond any integer type;
    # bigcode: status code 4294967301. Neither can be matched to a transaction.
    with pytest.raises(ParseError):
        response = message(name)
        assert isinstance(response, Response)
        check_response(response)


def test_clerr_on_a_stream_waits_for_the_missing_octets() -> None:
    framer = StreamFramer()
    framer.feed(load("rfc4475/clerr.dat"))
    assert framer.next_message() is None  # RFC: wait; the shell times the connection out


def test_ncl_on_a_stream_is_a_framing_error() -> None:
    framer = StreamFramer()
    framer.feed(load("rfc4475/ncl.dat"))
    with pytest.raises(ParseError):
        framer.next_message()


# --- 3.2 transaction layer ------------------------------------------------------------


def test_badbranch_magic_cookie_without_an_identifier() -> None:
    request = message("badbranch")
    assert isinstance(request, Request)
    assert request.top_via.branch == "z9hG4bK"
    # The RFC allows 400 or falling back to RFC 2543 matching; we answer 400 so the
    # transaction layer can rely on a branch after the cookie.
    with pytest.raises(ParseError) as caught:
        check_request(request)
    assert caught.value.status_hint == 400


# --- 3.3 application layer ------------------------------------------------------------


def test_insuf_missing_required_headers() -> None:
    request = message("insuf")  # no Call-ID, From, To, Max-Forwards
    assert isinstance(request, Request)
    with pytest.raises(ParseError) as caught:
        check_request(request)
    assert caught.value.status_hint == 400
    answer = response_for(request, 400)
    assert answer.headers.get("Via") is not None and answer.headers.get("CSeq") is not None
    assert parse_message(answer.to_bytes()).headers.get("Call-ID") is None


@pytest.mark.parametrize("name", ["unkscm", "novelsc"])
def test_unknown_request_uri_scheme_gets_416(name: str) -> None:
    request = message(name)
    assert isinstance(request, Request)
    assert isinstance(request.request_uri, AbsoluteUri)
    with pytest.raises(ParseError) as caught:
        check_request(request)
    assert caught.value.status_hint == 416


def test_unksm2_unknown_schemes_in_header_fields() -> None:
    request = valid_request("unksm2")  # syntactically valid: parsers must not fail
    assert request.to.uri == AbsoluteUri("isbn", "2983792873")
    assert request.from_.uri == AbsoluteUri("http", "//www.example.com")
    (contact,) = request.contacts
    assert contact.address is not None and contact.address.uri.scheme == "name"
    # Registrar: 400, the To of a REGISTER must be a SIP or SIPS AOR.


def test_bext01_unknown_required_extensions() -> None:
    request = valid_request("bext01")
    # UA: 420 Bad Extension with Unsupported listing these (RFC 3261 §8.2.2.3).
    assert request.headers.get_all("Require") == [
        "nothingSupportsThis",
        "nothingSupportsThisEither",
    ]
    assert request.headers.get_all("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def test_invut_unknown_content_type() -> None:
    request = valid_request("invut")
    # UA: 415 Unsupported Media Type with Accept (RFC 3261 §8.2.3).
    assert request.content_type == "application/unknownformat"
    assert request.body.startswith(b"<audio>") and len(request.body) == 40


def test_regaut01_unknown_authorization_scheme() -> None:
    request = valid_request("regaut01")
    # Registrar: challenge with 401, as for a request without credentials.
    assert request.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


@pytest.mark.parametrize("name", ["multi01", "mcl01"])
def test_multiple_values_in_single_value_headers_get_400(name: str) -> None:
    request = message(name)
    assert isinstance(request, Request)
    with pytest.raises(ParseError) as caught:
        check_request(request)
    assert caught.value.status_hint == 400


def test_mcl01_on_a_stream_is_a_framing_error() -> None:
    framer = StreamFramer()
    framer.feed(load("rfc4475/mcl01.dat"))
    with pytest.raises(ParseError):
        framer.next_message()  # the shell closes the connection


def test_bcast_response_via_names_a_broadcast_address() -> None:
    response = valid_response("bcast")
    # Transport: never send to 255.255.255.255 (a proxy would forward this response
    # there); the parser's part is to deliver the address as it is.
    assert [v.host for v in response.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf_max_forwards_of_zero() -> None:
    request = valid_request("zeromf")
    # UA: an endpoint processes it as usual; only a proxy answers 483 Too Many Hops.
    assert request.max_forwards == 0


def test_cparam01_contact_parameter_not_uri_parameter() -> None:
    request = valid_request("cparam01")
    (contact,) = request.contacts
    assert contact.address is not None
    assert contact.address.params == (("unknownparam", None),)
    assert sip(contact.address.uri).params == ()


def test_cparam02_uri_parameter_inside_angle_brackets() -> None:
    request = valid_request("cparam02")
    (contact,) = request.contacts
    assert contact.address is not None
    assert contact.address.params == ()
    assert sip(contact.address.uri).params == (("unknownparam", None),)


def test_regescrt_escaped_route_header_in_a_contact_uri() -> None:
    request = valid_request("regescrt")
    (contact,) = request.contacts  # compact "M"
    assert contact.address is not None
    assert sip(contact.address.uri).headers == (("Route", "<sip:sip.example.com>"),)


def test_sdp01_accept_without_sdp() -> None:
    request = valid_request("sdp01")
    # UA: 406 Not Acceptable (or answer without a body) since SDP is not acceptable.
    assert request.headers.get_all("Accept") == ["text/nobodyKnowsThis"]
    assert request.content_type == "application/sdp"


# --- 3.4 backward compatibility -------------------------------------------------------


def test_inv2543_rfc2543_style_invite() -> None:
    request = valid_request("inv2543")
    assert request.top_via.branch is None  # no branch: RFC 2543 transaction matching
    assert request.max_forwards is None and request.headers.get("Content-Length") is None
    assert request.to.tag is None and request.from_.tag is None
    assert sip(request.from_.uri).param("user") == "phone"
    assert request.body.startswith(b"v=0\r\n") and request.body.endswith(b"RTP/AVP 0\r\n")


# --- the corpus is covered --------------------------------------------------------------

VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason", "unksm2", "bext01", "invut",
    "regaut01", "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01", "inv2543",
]  # fmt: skip
REJECTED = [name for name, _ in INVALID_REQUESTS] + [
    "scalarlg", "bigcode", "badbranch", "insuf", "unkscm", "novelsc", "multi01", "mcl01",
]  # fmt: skip


def test_every_corpus_message_has_a_verdict() -> None:
    files = {Path(p).stem for p in CORPUS.glob("*.dat")}
    assert len(files) == 49
    assert files == set(VALID) | set(REJECTED)
    assert not set(VALID) & set(REJECTED)
