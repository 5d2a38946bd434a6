"""RTP/RTCP packets (RFC 3550) and telephone-event (RFC 4733), with aiortc as an oracle."""

from __future__ import annotations

import struct

import aiortc.rtp as aiortc_rtp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipdialer.media.rtp import (
    RTCP_APP,
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpUnknown,
    RtpError,
    RtpPacket,
    SenderReport,
    SourceDescription,
    TelephoneEvent,
    build,
    goodbye,
    header_fields,
    is_rtcp,
    ntp_middle,
    ntp_timestamp,
    parse_rtcp,
    report,
    rewrite,
)

PAYLOAD = bytes(range(160))
# V=2, no P/X/CC; M=1, PT=0; seq 0x1234; ts 0x00010203; SSRC 0xDEADBEEF; 160 octets PCMU.
PCMU_PACKET = bytes.fromhex("8080123400010203deadbeef") + PAYLOAD


def test_header_fields_of_a_plain_packet() -> None:
    assert header_fields(PCMU_PACKET) == (1, 0, 0x1234, 0x00010203, 0xDEADBEEF, 12, 172)


def test_header_fields_skip_csrcs_extension_and_padding() -> None:
    # CC=2, X=1, P=1: 2 CSRCs, a one-word extension, 3 padding octets.
    data = (
        bytes.fromhex("b20800010000000200000003")
        + bytes.fromhex("1111111122222222")
        + bytes.fromhex("bede0001aabbccdd")
        + b"voice"
        + b"\x00\x00\x03"
    )
    marker, pt, seq, ts, ssrc, start, end = header_fields(data)
    assert (marker, pt, seq, ts, ssrc) == (0, 8, 1, 2, 3)
    assert data[start:end] == b"voice"
    packet = RtpPacket.parse(data)
    assert packet.csrc == (0x11111111, 0x22222222)
    assert packet.extension == (0xBEDE, bytes.fromhex("aabbccdd"))
    assert packet.padding == 3 and packet.payload == b"voice"
    assert packet.serialize() == data


def test_rewrite_replaces_what_a_relay_changes_and_copies_the_rest() -> None:
    out = rewrite(PCMU_PACKET, seq=0x10000 + 5, ts=2**32 + 7, ssrc=42, pt=8)
    assert header_fields(out)[:5] == (1, 8, 5, 7, 42)  # marker kept, seq/ts wrapped
    assert out[12:] == PCMU_PACKET[12:]
    assert header_fields(rewrite(PCMU_PACKET, 1, 1, 1, 0, marker=False))[0] == 0
    plain = build(b"x", 0, 1, 1, 1)
    assert header_fields(rewrite(plain, 1, 1, 1, 0, marker=True))[0] == 1


def test_rewrite_keeps_csrcs_and_extension_octets() -> None:
    packet = RtpPacket(0, 1, 2, 3, b"abc", csrc=(9,), extension=(1, b"1234"), padding=2)
    data = packet.serialize()
    assert RtpPacket.parse(rewrite(data, 7, 8, 9, 8)) == RtpPacket(
        8, 7, 8, 9, b"abc", csrc=(9,), extension=(1, b"1234"), padding=2
    )


def test_build_equals_the_value_serialised() -> None:
    assert build(PAYLOAD, 0, 0x1234, 0x00010203, 0xDEADBEEF, marker=True) == PCMU_PACKET
    assert RtpPacket(0, 0x1234, 0x00010203, 0xDEADBEEF, PAYLOAD, True).serialize() == PCMU_PACKET


def test_aiortc_reads_what_we_write_and_we_read_what_it_writes() -> None:
    theirs = aiortc_rtp.RtpPacket.parse(PCMU_PACKET)
    assert (theirs.marker, theirs.payload_type, theirs.sequence_number) == (1, 0, 0x1234)
    assert (theirs.timestamp, theirs.ssrc, theirs.payload) == (0x00010203, 0xDEADBEEF, PAYLOAD)
    written = aiortc_rtp.RtpPacket(8, 0, 65535, 2**32 - 1, 1, b"\xd5" * 160).serialize()
    assert RtpPacket.parse(written) == RtpPacket(8, 65535, 2**32 - 1, 1, b"\xd5" * 160)


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)


@given(packets)
def test_parse_serialise_round_trip(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert RtpPacket.parse(data) == packet
    marker, pt, seq, ts, ssrc, start, end = header_fields(data)
    assert (bool(marker), pt, seq, ts, ssrc) == (
        packet.marker,
        packet.payload_type,
        packet.sequence_number,
        packet.timestamp,
        packet.ssrc,
    )
    assert data[start:end] == packet.payload


@pytest.mark.parametrize(
    "data",
    [
        b"",
        PCMU_PACKET[:11],
        b"\x40" + PCMU_PACKET[1:],  # version 1
        b"\x81" + PCMU_PACKET[1:12],  # one CSRC announced, none there
        b"\x90" + PCMU_PACKET[1:12] + b"\xbe\xde",  # extension header cut
        b"\x90" + PCMU_PACKET[1:12] + b"\xbe\xde\x00\x09" + b"x" * 8,  # extension too long
        b"\xa0" + PCMU_PACKET[1:12],  # padding bit, no room for the count
        b"\xa0" + PCMU_PACKET[1:] + b"\x00",  # padding count 0
        b"\xa0" + PCMU_PACKET[1:12] + b"ab\x09",  # padding longer than the payload
    ],
    ids=["empty", "short", "v1", "csrc", "ext-cut", "ext-long", "pad-room", "pad0", "pad-long"],
)
def test_malformed_rtp_is_rejected(data: bytes) -> None:
    with pytest.raises(RtpError):
        header_fields(data)
    with pytest.raises(RtpError):
        RtpPacket.parse(data)


def test_rtp_error_is_a_value_error() -> None:
    assert issubclass(RtpError, ValueError)
    with pytest.raises(RtpError):
        rewrite(b"\x00" * 12, 0, 0, 0, 0)
    with pytest.raises(RtpError):
        RtpPacket(128, 0, 0, 0)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_rtp_error(data: bytes) -> None:
    for parse in (header_fields, RtpPacket.parse, parse_rtcp, TelephoneEvent.parse, is_rtcp):
        try:
            parse(data)
        except RtpError:
            pass
    try:
        rewrite(data, 1, 2, 3, 4)
    except RtpError:
        pass


@given(
    st.binary(min_size=4, max_size=60), st.integers(0, 31), st.sampled_from([200, 201, 202, 203])
)
def test_rtcp_shaped_garbage_raises_only_rtp_error(body: bytes, count: int, pt: int) -> None:
    body = body[: len(body) // 4 * 4]
    data = struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body
    try:
        parse_rtcp(data)
    except RtpError:
        pass


# -- RTCP ------------------------------------------------------------------------------

BLOCK = ReportBlock(
    ssrc=0x01020304,
    fraction_lost=25,
    cumulative_lost=-3,
    highest_sequence=0x0001FFFF,
    jitter=80,
    lsr=0x12345678,
    dlsr=65536,
)


def test_report_builds_sr_then_sdes_cname_and_parses_back() -> None:
    sr = SenderReport(0xCAFEBABE, ntp_timestamp(1_700_000_000.5), 160_000, 1000, 160_000, (BLOCK,))
    data = report(sr, "dialer@192.0.2.10")
    assert is_rtcp(data) and len(data) % 4 == 0
    parsed_sr, sdes = parse_rtcp(data)
    assert parsed_sr == sr
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == 0xCAFEBABE and sdes.chunks[0].cname == "dialer@192.0.2.10"
    their_sr, their_sdes = aiortc_rtp.RtcpPacket.parse(data)
    assert isinstance(their_sr, aiortc_rtp.RtcpSrPacket)
    assert isinstance(their_sdes, aiortc_rtp.RtcpSdesPacket)
    assert their_sr.sender_info.packet_count == 1000
    assert their_sr.reports[0].packets_lost == -3 and their_sr.reports[0].fraction_lost == 25
    assert their_sdes.chunks[0].items == [(1, b"dialer@192.0.2.10")]


def test_receiver_report_from_aiortc() -> None:
    info = aiortc_rtp.RtcpReceiverInfo(7, 128, 1000, 70000, 33, 0xAABBCCDD, 32768)
    data = bytes(aiortc_rtp.RtcpRrPacket(ssrc=5, reports=[info]))
    assert parse_rtcp(data) == [
        ReceiverReport(5, (ReportBlock(7, 128, 1000, 70000, 33, 0xAABBCCDD, 32768),))
    ]
    assert report(ReceiverReport(5), "x")[:8] == bytes.fromhex("80c9000100000005")


def test_goodbye_is_rr_sdes_bye() -> None:
    rr, sdes, bye = parse_rtcp(goodbye(0x11, "leg", "call ended"))
    assert rr == ReceiverReport(0x11)
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "leg"
    assert bye == Goodbye((0x11,), b"call ended")
    their_bye = aiortc_rtp.RtcpPacket.parse(goodbye(0x11, "leg"))[2]
    assert isinstance(their_bye, aiortc_rtp.RtcpByePacket) and their_bye.sources == [0x11]


def test_unknown_rtcp_types_are_kept_opaque_and_padding_is_removed() -> None:
    app = struct.pack("!BBH", 0xA0 | 3, RTCP_APP, 3) + b"\x00\x00\x00\x09name" + b"\x00\x00\x00\x04"
    assert parse_rtcp(app) == [RtcpUnknown(RTCP_APP, 3, b"\x00\x00\x00\x09name")]


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\xc9\x00",  # short
        b"\x40\xc9\x00\x01\x00\x00\x00\x01",  # version 1
        b"\x80\xc9\x00\x05\x00\x00\x00\x01",  # length past the datagram
        b"\x81\xc9\x00\x01\x00\x00\x00\x01",  # one block announced, none there
        b"\xa0\xc9\x00\x01\x00\x00\x00\x00",  # padding count 0
        b"\x81\xca\x00\x01\x00\x00\x00\x01",  # SDES chunk with no end
        b"\x81\xcb\x00\x01\x00\x00\x00\x01\x80\xc9\x00\x00",  # fine, then a truncated RR
    ],
)
def test_malformed_rtcp_is_rejected(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtcp(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PCMU_PACKET, False),
        (build(b"e" * 4, 101, 1, 1, 1, marker=True), False),  # 0x80|101 = 229
        (report(ReceiverReport(1), "x"), True),
        (bytes.fromhex("80c8000600000001"), True),
        (bytes.fromhex("80c8"), False),
    ],
)
def test_is_rtcp_demultiplexes_per_rfc_5761(data: bytes, expected: bool) -> None:
    assert is_rtcp(data) is expected


def test_round_trip_time_from_lsr_and_dlsr() -> None:
    sent = ntp_timestamp(1000.0)
    block = ReportBlock(1, 0, 0, 0, 0, lsr=ntp_middle(sent), dlsr=int(0.5 * 65536))
    rtt = block.round_trip_time(ntp_timestamp(1000.0 + 0.5 + 0.08))
    assert rtt == pytest.approx(0.08, abs=1e-4)
    assert ReportBlock(1, 0, 0, 0, 0).round_trip_time(sent) is None
    assert ntp_timestamp(0.0) >> 32 == 2208988800


# -- RFC 4733 --------------------------------------------------------------------------


def test_telephone_event_rfc_4733_layout() -> None:
    # Digit 5, end bit, volume 10 (-10 dBm0), 800 timestamp units (100 ms).
    data = bytes.fromhex("058a0320")
    event = TelephoneEvent.parse(data)
    assert event == TelephoneEvent(5, end=True, volume=10, duration=800)
    assert event.digit == "5" and event.serialize() == data
    assert TelephoneEvent.parse(bytes.fromhex("0bca0000")).volume == 10  # R bit ignored
    assert TelephoneEvent.for_digit("#").event == 11 and TelephoneEvent(16).digit is None
    with pytest.raises(ValueError):
        TelephoneEvent.for_digit("x")
    with pytest.raises(RtpError):
        TelephoneEvent.parse(b"\x05\x8a\x03")
