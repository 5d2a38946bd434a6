"""SDP parsing, formatting and offer/answer (sipdialer.sip.sdp), fed raw fixture bytes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipdialer.sip.sdp import (
    Attribute,
    Connection,
    Direction,
    Media,
    NoCommonCodec,
    Rtcp,
    RtpMap,
    SdpError,
    SessionDescription,
)
from sipdialer.sip.sdp_offer import (
    Negotiated,
    bump_version,
    hold,
    make_answer,
    make_offer,
    negotiated,
    resume,
    with_direction,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sdp"
FIXTURES = sorted(p.name for p in DATA.glob("*.sdp"))


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def sdp(text: str) -> SessionDescription:
    return SessionDescription.parse(text.strip("\n").replace("\n", "\r\n") + "\r\n")


def offer_of(
    codecs: tuple[str, ...] = ("PCMU", "PCMA"), direction: Direction | str = "sendrecv"
) -> SessionDescription:
    return make_offer(
        "10.0.0.1", 4000, codecs, direction=direction, session_id=7, session_version=1
    )


def answer(
    offer: SessionDescription,
    supported: tuple[str, ...] = ("PCMU", "PCMA"),
    *,
    telephone_event: bool = True,
    ptime: int | None = 20,
    direction: Direction | str = "sendrecv",
) -> tuple[SessionDescription, Negotiated]:
    return make_answer(
        offer,
        "192.0.2.1",
        30000,
        supported,
        telephone_event=telephone_event,
        ptime=ptime,
        direction=direction,
        session_id=42,
        session_version=1,
    )


# --- parsing and formatting ---------------------------------------------------------------


def test_parse_baresip_offer() -> None:
    offer = SessionDescription.parse(load("baresip_offer.sdp"))
    assert offer.origin.username == "-"
    assert offer.origin.session_id == 3185213734
    assert offer.origin.session_version == 1289917984
    assert offer.connection == Connection("127.0.0.1")
    assert offer.attributes == (Attribute("tool", "baresip 1.0.0"),)
    audio = offer.audio
    assert audio is not None
    assert (audio.kind, audio.port, audio.proto, audio.formats) == (
        "audio",
        45000,
        "RTP/AVP",
        ("0", "8", "101"),
    )
    assert [m.encoding for m in audio.rtpmaps] == ["PCMU", "PCMA", "telephone-event"]
    assert audio.telephone_event() == RtpMap(101, "telephone-event", 8000)
    assert audio.fmtp(101) == "0-15"
    assert audio.ptime == 20
    assert audio.maxptime is None
    assert audio.rtcp is None
    assert audio.attribute("rtcp-rsize") is None
    assert audio.attribute("ssrc") == "3303635136 cname:sip:agent1@127.0.0.1:45070"
    assert offer.media_direction(audio) is Direction.SENDRECV
    assert offer.audio_endpoint() == ("127.0.0.1", 45000)
    assert not offer.is_hold()


def test_parse_linphone_offer_static_payload_types_and_rtcp() -> None:
    offer = SessionDescription.parse(load("linphone_offer.sdp"))
    audio, video = offer.media
    assert audio.rtpmap(0) == RtpMap(0, "PCMU", 8000)  # no rtpmap line: static default
    assert audio.rtpmap(18) == RtpMap(18, "G729", 8000)
    assert audio.rtpmap(96) == RtpMap(96, "opus", 48000, 2)
    assert audio.rtpmap(55) is None
    assert audio.fmtp(18) == "annexb=yes"
    assert audio.telephone_event(8000) == RtpMap(100, "telephone-event", 8000)
    assert audio.telephone_event(48000) == RtpMap(101, "telephone-event", 48000)
    assert audio.rtcp == Rtcp(7079)
    assert video.kind == "video" and video.rtcp == Rtcp(9079)
    assert offer.session_name == "Talk"


@pytest.mark.parametrize("name", FIXTURES)
def test_round_trip_is_byte_exact(name: str) -> None:
    data = load(name)
    parsed = SessionDescription.parse(data)
    assert parsed.to_bytes() == data
    assert str(parsed) == data.decode()
    assert SessionDescription.parse(str(parsed)) == parsed


@pytest.mark.parametrize("name", FIXTURES)
def test_lf_only_and_trailing_whitespace_are_tolerated(name: str) -> None:
    data = load(name)
    sloppy = data.replace(b"\r\n", b" \t\n") + b"\n\n"
    assert SessionDescription.parse(sloppy) == SessionDescription.parse(data)


def test_rfc4566_example_keeps_other_lines() -> None:
    data = load("rfc4566_example.sdp")
    parsed = SessionDescription.parse(data)
    assert ("i", "A Seminar on the session description protocol") in parsed.lines
    assert ("t", "2873397496 2873404696") in parsed.lines
    assert parsed.direction is Direction.RECVONLY
    assert parsed.media_direction(parsed.media[1]) is Direction.RECVONLY
    assert parsed.connection == Connection("224.2.17.12/127")


def test_repeat_lines_stay_behind_their_timing_line() -> None:
    text = "v=0\no=- 1 1 IN IP4 h\ns=-\nt=1 2\nr=7d 1h 0\nt=3 4\nr=1d 1h 0\nz=0 -1h\n"
    parsed = SessionDescription.parse(text)
    assert str(parsed).split("\r\n")[3:8] == ["t=1 2", "r=7d 1h 0", "t=3 4", "r=1d 1h 0", "z=0 -1h"]


def test_lines_out_of_order_are_written_in_rfc_order() -> None:
    text = "v=0\nb=AS:64\no=- 1 1 IN IP4 h\nt=0 0\ni=x\nm=audio 4 RTP/AVP 0\nb=AS:1\ni=y\n"
    parsed = SessionDescription.parse(text)
    assert str(parsed).split("\r\n") == [
        "v=0",
        "o=- 1 1 IN IP4 h",
        "s=-",
        "i=x",
        "b=AS:64",
        "t=0 0",
        "m=audio 4 RTP/AVP 0",
        "i=y",
        "b=AS:1",
        "",
    ]
    assert SessionDescription.parse(parsed.to_bytes()) == parsed


def test_missing_s_and_t_are_tolerated_and_repaired() -> None:
    parsed = SessionDescription.parse("v=0\no=- 1 1 IN IP4 h\nm=audio 4000 RTP/AVP 0\n")
    assert parsed.session_name == "-"
    assert parsed.lines == (("t", "0 0"),)
    assert (
        parsed.to_bytes()
        == b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    )


def test_media_level_connection_and_direction_override_session() -> None:
    offer = sdp("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
a=inactive
m=audio 4000 RTP/AVP 8
c=IN IP4 10.0.0.2
a=sendonly
a=ptime:20.0
a=maxptime:bogus
m=audio 4002 RTP/AVP 0
""")
    first, second = offer.media
    assert offer.connection_for(first) == Connection("10.0.0.2")
    assert offer.connection_for(second) == Connection("10.0.0.1")
    assert offer.media_direction(first) is Direction.SENDONLY
    assert offer.media_direction(second) is Direction.INACTIVE  # session-level default
    assert first.ptime == 20
    assert first.maxptime is None  # malformed: treated as absent
    assert offer.audio_endpoint() == ("10.0.0.2", 4000)


GARBAGE = [
    (b"", "empty"),
    (b"o=- 1 1 IN IP4 h\r\ns=-\r\n", "v= must come first"),
    (b"v=1\r\no=- 1 1 IN IP4 h\r\n", "v="),
    (b"v=0\r\ns=-\r\nt=0 0\r\n", "no o= line"),
    (b"v=0\r\no=- one 1 IN IP4 h\r\n", "<sess-id>"),
    (b"v=0\r\no=- 1 1 IN IP4\r\n", "<sess-id>"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio abc RTP/AVP 0\r\n", "<port>"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n", "out of range"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000 RTP/AVP 0 200\r\n", "0-127"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000 RTP/AVP PCMU\r\n", "0-127"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000\r\n", "<proto>"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nhello world\r\n", "x=value"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n", "<address>"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nb=AS:lots\r\n", "<bwtype>"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nt=now later\r\n", "<start>"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\na=:x\r\n", "<name>"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nx=unknown\r\n", "unexpected x="),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n", "unexpected o="),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nr=7d 1h 0\r\n", "unexpected r="),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000 RTP/AVP 0\r\nt=0 0\r\n", "media section"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\nv=0\r\n", "only once"),
    (b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\xff\r\n", "UTF-8"),
]


@pytest.mark.parametrize(("data", "message"), GARBAGE)
def test_garbage_raises_sdp_error_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        SessionDescription.parse(data)


def test_sdp_error_is_a_value_error() -> None:
    assert issubclass(SdpError, ValueError)
    assert issubclass(NoCommonCodec, SdpError)


@given(st.one_of(st.text(), st.binary()))
def test_random_input_raises_only_sdp_error(data: str | bytes) -> None:
    try:
        parsed = SessionDescription.parse(data)
    except SdpError:
        return
    assert SessionDescription.parse(parsed.to_bytes()) == parsed


LINE = st.builds(
    "{}={}".format,
    st.sampled_from("vvoosctbamirxz"),
    st.one_of(
        st.sampled_from(
            [
                "0",
                "- 1 2 IN IP4 h",
                "IN IP4 0.0.0.0",
                "0 0",
                "AS:64",
                "sendonly",
                "audio 4000 RTP/AVP 0 8",
                "video 0 RTP/AVP 96",
                "rtpmap:96 x/8000",
                "ptime:20",
                "rtcp:9 IN IP4 h",
                "7d 1h 0",
            ]
        ),
        st.text(max_size=12),
    ),
)


@given(st.lists(LINE, max_size=12), st.sampled_from(["\r\n", "\n"]))
def test_random_sdp_like_lines_parse_or_raise_sdp_error(lines: list[str], eol: str) -> None:
    try:
        parsed = SessionDescription.parse(eol.join(["v=0", *lines]))
    except SdpError:
        return
    assert SessionDescription.parse(parsed.to_bytes()) == parsed
    for media in parsed.media:  # the lazy helpers never raise
        media.rtpmaps, media.ptime, media.maxptime, media.rtcp, media.telephone_event()
        parsed.is_hold(media)


# --- answering offers ---------------------------------------------------------------------


def test_answer_picks_the_offerers_first_supported_codec() -> None:
    offer = SessionDescription.parse(load("yealink_offer_pcma.sdp"))
    result_sdp, result = answer(offer)
    # We list PCMU first, but the offerer's order wins (RFC 3264 §6.1).
    assert result.codec == RtpMap(8, "PCMA", 8000)
    assert result.payload_type == 8
    assert result.telephone_event_pt == 101
    assert (result.remote_address, result.remote_port) == ("10.0.0.31", 11796)
    assert result.ptime == 20
    assert result.direction is Direction.SENDRECV
    assert not result.remote_hold
    assert str(result_sdp) == (
        "v=0\r\n"
        "o=sipdialer 42 1 IN IP4 192.0.2.1\r\n"
        "s=-\r\n"
        "c=IN IP4 192.0.2.1\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 8 101\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def test_answer_mirrors_telephone_event_and_rejects_video() -> None:
    offer = SessionDescription.parse(load("linphone_offer.sdp"))
    answer_sdp, result = answer(offer, ("PCMA", "PCMU"))
    assert result.codec == RtpMap(0, "PCMU", 8000)  # before PCMA in the offer
    assert result.telephone_event_pt == 100  # the 8 kHz one, with linphone's number
    assert result.remote_rtcp == Rtcp(7079)
    audio, video = answer_sdp.media
    assert audio.formats == ("0", "100")
    assert audio.telephone_event() == RtpMap(100, "telephone-event", 8000)
    assert (video.kind, video.port, video.formats, video.attributes) == (
        "video",
        0,
        ("96", "97"),
        (),
    )
    assert SessionDescription.parse(answer_sdp.to_bytes()) == answer_sdp


def test_answer_without_telephone_event() -> None:
    offer = SessionDescription.parse(load("baresip_offer.sdp"))
    answer_sdp, result = answer(offer, telephone_event=False, ptime=None)
    assert result.telephone_event_pt is None
    assert answer_sdp.media[0].formats == ("0",)
    assert answer_sdp.media[0].ptime is None


def test_answer_keeps_the_chosen_codecs_fmtp() -> None:
    offer = SessionDescription.parse(load("yealink_offer_pcma.sdp"))
    answer_sdp, result = answer(offer, ("G729",))
    assert result.codec.encoding == "G729"
    assert answer_sdp.media[0].fmtp(18) == "annexb=no"


@pytest.mark.parametrize(
    ("offered", "wanted", "answered"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("recvonly", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
    ],
)
def test_answer_direction(offered: str, wanted: str, answered: str) -> None:
    offer = offer_of(direction=offered)
    answer_sdp, result = answer(offer, direction=wanted)
    assert answer_sdp.media[0].direction == answered
    assert result.direction == answered
    assert negotiated(offer, answer_sdp).direction == Direction(offered).meet(Direction(answered))


def test_hold_offer_with_sendonly() -> None:
    offer = SessionDescription.parse(load("yealink_hold.sdp"))
    assert offer.is_hold()
    answer_sdp, result = answer(offer)
    assert result.remote_hold
    assert result.direction is Direction.RECVONLY
    assert answer_sdp.media[0].direction is Direction.RECVONLY


def test_hold_offer_rfc2543_style() -> None:
    offer = SessionDescription.parse(load("rfc2543_hold.sdp"))
    assert offer.connection == Connection("0.0.0.0")
    assert offer.is_hold()
    _, result = answer(offer)
    assert result.remote_hold
    assert result.remote_address == "0.0.0.0"


def test_hold_is_not_detected_for_recvonly_or_rejected_streams() -> None:
    offer = offer_of(direction="recvonly")
    assert not offer.is_hold()
    rejected = replace(offer, media=(replace(offer.media[0], port=0),))
    assert rejected.audio is None
    assert not rejected.is_hold()
    assert not rejected.is_hold(rejected.media[0])
    assert rejected.audio_endpoint() is None


def test_no_common_codec() -> None:
    offer = sdp("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 4000 RTP/AVP 18 101
a=rtpmap:101 telephone-event/8000
""")
    with pytest.raises(NoCommonCodec, match="offered G729, we support PCMU, PCMA"):
        answer(offer)
    assert answer(offer, ("G729/8000",))[1].codec.payload_type == 18


@pytest.mark.parametrize(
    "media",
    [
        "m=video 9078 RTP/AVP 96\na=rtpmap:96 VP8/90000",
        "m=audio 0 RTP/AVP 0",
        "m=audio 4000 RTP/SAVP 0",
        "m=image 4000 udptl t38",
    ],
)
def test_offers_without_a_usable_audio_stream(media: str) -> None:
    offer = sdp(f"v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n{media}\n")
    with pytest.raises(NoCommonCodec):
        answer(offer)


def test_audio_without_connection_is_not_usable() -> None:
    offer = sdp("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n")
    with pytest.raises(NoCommonCodec):
        answer(offer)


def test_rejected_and_extra_streams_get_port_zero_in_order() -> None:
    offer = sdp("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 0 RTP/AVP 0
m=video 5000 RTP/AVP 96
a=rtpmap:96 VP8/90000
m=audio 4000 RTP/AVPF 8
m=audio 4002 RTP/AVP 0
""")
    answer_sdp, result = answer(offer)
    assert result.media_index == 2
    ports = [(m.kind, m.port, m.proto) for m in answer_sdp.media]
    assert ports == [
        ("audio", 0, "RTP/AVP"),
        ("video", 0, "RTP/AVP"),
        ("audio", 30000, "RTP/AVPF"),
        ("audio", 0, "RTP/AVP"),
    ]
    assert negotiated(offer, answer_sdp).remote_port == 30000


# --- our offers, and reading answers --------------------------------------------------------


def test_make_offer() -> None:
    offer = make_offer("192.0.2.1", 20000, session_id=7, session_version=3)
    assert str(offer) == (
        "v=0\r\n"
        "o=sipdialer 7 3 IN IP4 192.0.2.1\r\n"
        "s=-\r\n"
        "c=IN IP4 192.0.2.1\r\n"
        "t=0 0\r\n"
        "m=audio 20000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert SessionDescription.parse(offer.to_bytes()) == offer


def test_make_offer_ipv6_and_options() -> None:
    offer = make_offer(
        "2001:db8::1",
        20000,
        ("pcma", "G722"),
        telephone_event=False,
        ptime=None,
        direction=Direction.INACTIVE,
        username="bob",
        session_id=1,
        session_version=1,
    )
    assert offer.origin.addrtype == "IP6" and offer.connection == Connection(
        "2001:db8::1", addrtype="IP6"
    )
    assert offer.origin.username == "bob"
    assert offer.media[0].formats == ("8", "9")
    assert offer.media[0].direction is Direction.INACTIVE
    assert offer.media[0].ptime is None


@pytest.mark.parametrize("codecs", [(), ("opus",)])
def test_make_offer_rejects_codecs_it_cannot_offer(codecs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        make_offer("192.0.2.1", 20000, codecs, session_id=1, session_version=1)


def test_negotiated_reads_a_sipp_answer() -> None:
    offer = offer_of()
    result = negotiated(offer, SessionDescription.parse(load("sipp_answer_pcma_30ms.sdp")))
    assert result.codec == RtpMap(8, "PCMA", 8000)
    assert result.telephone_event_pt == 101
    assert (result.remote_address, result.remote_port) == ("127.0.0.1", 6000)
    assert result.ptime == 30
    assert result.direction is Direction.SENDRECV
    assert result.media_index == 0


def test_negotiated_ignores_telephone_event_we_did_not_offer() -> None:
    offer = make_offer("127.0.0.1", 20000, telephone_event=False, session_id=1, session_version=1)
    result = negotiated(offer, SessionDescription.parse(load("sipp_answer_pcma_30ms.sdp")))
    assert result.telephone_event_pt is None


def test_our_offer_and_our_answer_agree() -> None:
    offer = offer_of(("PCMA", "PCMU"))
    answer_sdp, theirs = answer(offer)
    ours = negotiated(offer, answer_sdp)
    assert ours.codec == theirs.codec == RtpMap(8, "PCMA", 8000)
    assert ours.telephone_event_pt == theirs.telephone_event_pt == 101
    assert (ours.remote_address, ours.remote_port) == ("192.0.2.1", 30000)
    assert (theirs.remote_address, theirs.remote_port) == ("10.0.0.1", 4000)


def test_negotiated_errors() -> None:
    offer = offer_of()
    answer_sdp, _ = answer(offer)
    rejected = replace(answer_sdp, media=(answer_sdp.media[0].rejected(),))
    with pytest.raises(NoCommonCodec):
        negotiated(offer, rejected)
    with pytest.raises(SdpError, match="m-lines"):
        negotiated(offer, replace(answer_sdp, media=()))
    other = replace(answer_sdp, media=(replace(answer_sdp.media[0], formats=("18",)),))
    with pytest.raises(NoCommonCodec):
        negotiated(offer, other)


# --- re-INVITE: hold and resume -----------------------------------------------------------


def test_hold_and_resume_bump_the_version() -> None:
    offer = offer_of()
    held = hold(offer)
    assert held.origin.session_version == 2
    assert held.media[0].direction is Direction.SENDONLY
    assert [a.name for a in held.media[0].attributes].count("sendonly") == 1
    assert "sendrecv" not in str(held)
    # The peer answers recvonly, as RFC 3264 §8.4 says: we send (music), it does not.
    answer_sdp, theirs = answer(held)
    assert theirs.direction is Direction.RECVONLY and theirs.remote_hold
    assert negotiated(held, answer_sdp).direction is Direction.SENDONLY
    resumed = resume(held)
    assert resumed.origin.session_version == 3
    assert resumed.media[0].direction is Direction.SENDRECV
    assert not resumed.is_hold()


def test_hold_a_recvonly_stream_makes_it_inactive() -> None:
    offer = offer_of(direction="recvonly")
    assert hold(offer).media[0].direction is Direction.INACTIVE


def test_with_direction_moves_session_level_direction_to_the_media() -> None:
    offer = sdp("""
v=0
o=- 1 5 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
a=sendrecv
m=audio 4000 RTP/AVP 0
m=video 0 RTP/AVP 96
""")
    changed = with_direction(offer, "inactive")
    assert changed.origin.session_version == 6
    assert changed.direction is None
    assert changed.media[0].direction is Direction.INACTIVE
    assert changed.media[1] == offer.media[1]  # rejected streams are left alone
    assert bump_version(offer).origin.session_version == 6
    assert bump_version(offer).media == offer.media


def test_media_values_are_frozen() -> None:
    media = Media("audio", 4000, "RTP/AVP", ("0",))
    with pytest.raises(AttributeError):
        media.port = 5  # type: ignore[misc]
