"""CallRelay, the pure relay core: packets in with a hand-fed ``now``, octets out."""

from __future__ import annotations

import numpy as np
import pytest

from sipdialer.media import g711, rtp
from sipdialer.media.leg import FILL_AFTER
from sipdialer.media.relay import (
    RELATCH_AFTER,
    RELATCH_PACKETS,
    CallRelay,
    Mode,
    RingbackFrames,
    StreamSpec,
)
from sipdialer.media.rtp import ReceiverReport, ReportBlock, RtpPacket, SenderReport
from sipdialer.media.tones import RINGBACK_EU

AGENT_SDP = ("192.168.1.20", 4000)
MEMBER_SDP = ("203.0.113.5", 30000)
AGENT_FROM = ("198.51.100.7", 4000)
MEMBER_FROM = ("203.0.113.5", 30002)  # a NAT moved the source port
RINGBACK = RingbackFrames(RINGBACK_EU.pcm())


def spec(addr: tuple[str, int], pt: int = g711.PCMU, **options: object) -> StreamSpec:
    return StreamSpec(addr[0], addr[1], pt, **options)  # type: ignore[arg-type]


def relay(
    agent_pt: int = g711.PCMU, member_pt: int = g711.PCMU, timeout: float = 30.0, **kw: object
) -> CallRelay:
    r = CallRelay(RINGBACK, media_timeout=timeout)
    # The phone behind NAT: its SDP names its private address, it registered (and its SIP
    # goes) from the public one its RTP comes from.
    agent = spec(AGENT_SDP, agent_pt, event_pt=kw.get("agent_event"), signal_host=AGENT_FROM[0])
    r.set_agent(agent, 0.0)
    r.set_member(spec(MEMBER_SDP, member_pt, event_pt=kw.get("member_event")), 0.0)
    return r


def packet(seq: int, ts: int, ssrc: int = 0xAAAA, pt: int = 0, payload: bytes = b"") -> bytes:
    return rtp.build(payload or bytes([seq & 0xFF]) * 160, pt, seq, ts, ssrc)


def from_member(r: CallRelay, seq: int, ts: int, now: float, **kw: object) -> RtpPacket | None:
    out = r.member_rtp(packet(seq, ts, **kw), MEMBER_FROM, now)  # type: ignore[arg-type]
    return None if out is None else RtpPacket.parse(out)


def from_agent(r: CallRelay, seq: int, ts: int, now: float, **kw: object) -> RtpPacket | None:
    out = r.agent_rtp(packet(seq, ts, **kw), AGENT_FROM, now)  # type: ignore[arg-type]
    return None if out is None else RtpPacket.parse(out)


def test_first_packet_latches_the_real_source_and_silence_allows_a_relatch() -> None:
    """NAT: nothing came from the SDP address, so the first packets from the real source
    are accepted and latch. Later another source takes over only after RELATCH_AFTER of
    silence and RELATCH_PACKETS consecutive packets of one stream."""
    r = relay()
    assert r.member.rtp_to == MEMBER_SDP and r.member.rtcp_to == ("203.0.113.5", 30001)
    r.bridge(0.0)
    assert from_member(r, 1, 160, 0.0) is not None  # to the agent's SDP address: not latched
    assert r.agent.rtp_to == AGENT_SDP
    assert r.member.rtp_to == MEMBER_FROM  # learnt from the packet, not the SDP
    out = from_agent(r, 7, 700, 0.01)
    assert out is not None and r.agent.rtp_to == AGENT_FROM
    # Another source while the latched one talks: dropped, counted, no re-latch.
    stray = r.member_rtp(packet(2, 320), ("203.0.113.66", 9), 0.02 + RELATCH_AFTER / 2)
    assert stray is None and r.foreign == 1 and r.member.rtp_to == MEMBER_FROM
    # After the latched source fell silent, a new stream takes over (the NAT rebound):
    # its first RELATCH_PACKETS - 1 packets are its probation (dropped).
    moved, at = ("203.0.113.5", 40000), 0.02 + RELATCH_AFTER + 0.1
    for k in range(RELATCH_PACKETS - 1):
        assert r.member_rtp(packet(3 + k, 480 + 160 * k), moved, at + 0.02 * k) is None
    assert r.member.rtp_to == MEMBER_FROM
    last = RELATCH_PACKETS - 1
    assert r.member_rtp(packet(3 + last, 480 + 160 * last), moved, at + 0.1) is not None
    assert r.member.rtp_to == moved
    # A re-INVITE with a new address forgets the latch.
    r.set_member(spec(("203.0.113.9", 31000)), 5.0)
    assert r.member.rtp_to == ("203.0.113.9", 31000) and r.member.latched is None


def test_a_stranger_during_a_pause_does_not_take_over() -> None:
    """The hijack: the agent's phone pauses 1 s (silence suppression); a stranger's
    stream in that pause is dropped, and the phone's next packet still goes through."""
    r = relay()
    r.bridge(0.0)
    now = 0.0
    for seq in range(10):
        now += 0.02
        assert r.agent_rtp(packet(seq, seq * 160), AGENT_SDP, now) is not None
    stranger = ("203.0.113.66", 5555)
    for seq in range(10):  # a well-formed stream, one SSRC, consecutive seq
        out = r.agent_rtp(packet(seq, seq * 160, ssrc=0x99), stranger, now + 0.5 + 0.02 * seq)
        assert out is None
    assert r.agent.rtp_to == AGENT_SDP and r.foreign == 10
    assert r.agent_rtp(packet(10, 1600), AGENT_SDP, now + 1.0) is not None


def test_the_sdp_address_is_preferred_and_latches_at_once() -> None:
    """A stranger's stream that got through its probation before the trunk sent anything
    (it could be the trunk's media behind another NAT address) latches, but the SDP
    address takes over with its first packet, and then the stranger is foreign."""
    r = relay()
    r.early_media(0.0)
    stranger = ("198.51.100.99", 7000)
    for k in range(RELATCH_PACKETS):
        out = r.member_rtp(packet(1 + k, 160 * k, ssrc=5), stranger, 0.1 + 0.02 * k)
        assert (out is None) == (k < RELATCH_PACKETS - 1)
    assert r.member.rtp_to == stranger
    assert r.member_rtp(packet(1, 160), MEMBER_SDP, 0.2) is not None
    assert r.member.rtp_to == MEMBER_SDP
    assert r.member_rtp(packet(9, 320, ssrc=5), stranger, 0.22) is None
    assert r.foreign == RELATCH_PACKETS  # its probation packets, then this one


def test_a_stranger_before_the_peer_does_not_latch_and_the_peer_takes_over() -> None:
    """RTP bleed: someone sprays our fresh ports before the peer's first packet. Stray
    packets never latch; a stream that passes probation does, but the peer's own host
    (its signalling address, here the NATed phone's public one) replaces it at once."""
    r = relay()
    r.bridge(0.0)
    spray = [("192.0.2.50", 1000 + k) for k in range(20)]
    for k, source in enumerate(spray):  # one packet per source port: no stream
        assert r.agent_rtp(packet(k, 160 * k, ssrc=0x77), source, 0.001 * k) is None
    assert r.agent.latched is None and r.agent.rtp_to == AGENT_SDP
    assert r.foreign == 20
    stranger = ("192.0.2.50", 2000)
    for k in range(RELATCH_PACKETS):
        r.agent_rtp(packet(100 + k, 160 * k, ssrc=0x77), stranger, 0.1 + 0.02 * k)
    assert r.agent.latched == stranger
    # The phone's own public address (as registered) takes over at its first packet.
    assert from_agent(r, 1, 160, 0.2) is not None
    assert r.agent.latched == AGENT_FROM and r.agent.rtp_to == AGENT_FROM
    assert r.agent_rtp(packet(104, 800, ssrc=0x77), stranger, 0.21) is None
    # Its RTCP: the stranger's is dropped, the phone's own host's is taken.
    report = ReceiverReport(ssrc=0x1234).serialize()
    r.bridge(0.3)
    assert r.agent_rtcp(report, ("192.0.2.50", 2001), 0.3) is None
    assert r.agent.rtcp_latched is None
    assert r.agent_rtcp(report, (AGENT_FROM[0], AGENT_FROM[1] + 1), 0.31) is not None
    assert r.agent.rtcp_latched == (AGENT_FROM[0], AGENT_FROM[1] + 1)


def test_a_phone_whose_media_leaves_by_another_address_latches_after_probation() -> None:
    """Media from neither the SDP nor the signalling host (another NAT address of a
    carrier-grade NAT pool) is still learnt: after RELATCH_PACKETS of one stream."""
    r = relay()
    r.bridge(0.0)
    other = ("198.51.100.200", 31000)
    got = [from_member(r, 1, 160, 0.0)]  # the member latches MEMBER_FROM (its SDP host)
    got += [r.agent_rtp(packet(k, 160 * k), other, 0.02 * k) for k in range(RELATCH_PACKETS)]
    assert got[0] is not None
    assert got[1:RELATCH_PACKETS] == [None] * (RELATCH_PACKETS - 1) and got[-1] is not None
    assert r.agent.latched == other


def test_no_relatch_while_the_leg_is_on_hold() -> None:
    """A held peer (receive False) may send nothing for minutes: no other source
    latches however long the silence and however good its stream."""
    r = relay()
    r.bridge(0.0)
    assert from_member(r, 1, 160, 0.0) is not None
    r.set_member(spec(MEMBER_SDP, send=False, receive=False), 0.1)
    other = ("203.0.113.77", 6000)
    for k in range(2 * RELATCH_PACKETS):
        assert r.member_rtp(packet(10 + k, 160 * k, ssrc=7), other, 60.0 + 0.02 * k) is None
    assert r.member.latched == MEMBER_FROM


def test_the_agent_stream_is_continuous_across_ringback_early_media_and_bridge() -> None:
    r = relay()
    r.ringback(0.0)
    assert r.mode is Mode.RINGBACK and r.get_timer() == 0.0
    sent = []
    for k in range(5):
        sent += [RtpPacket.parse(p) for p in r.packets_due(k * 0.02)]
    assert len(sent) == 5 and r.ringback_sent == 5
    r.early_media(0.09)
    assert r.packets_due(0.2) == [] and r.get_timer() is None  # ringback stopped
    for k in range(3):  # early media from the trunk's announcement source
        out = from_member(r, 5000 + k, 90_000 + 160 * k, 0.1 + 0.02 * k, ssrc=0x1111)
        assert out is not None
        sent.append(out)
    r.bridge(0.16)
    for k in range(3):  # the answered call comes from another SSRC, other seq/ts
        out = from_member(r, 60000 + k, 7_000_000 + 160 * k, 0.16 + 0.02 * k, ssrc=0x2222)
        assert out is not None
        sent.append(out)
    out = from_member(r, 60003, 7_000_000 + 480, 0.22, ssrc=0x2222)
    assert out is not None
    sent.append(out)
    assert {p.ssrc for p in sent} == {r.agent.out_ssrc}  # ONE stream
    seqs = [p.sequence_number for p in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    steps = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(sent, sent[1:], strict=False)]
    # 20 ms apart everywhere; the switch after ringback follows the clock (0.08 -> 0.1 s).
    assert steps == [160] * 11
    assert [p.marker for p in sent] == [True] + [False] * 4 + [True, False, False] + [
        True,
        False,
        False,
        False,
    ]  # a marker where the source switched, nowhere else
    assert {p.payload_type for p in sent} == {g711.PCMU}
    assert sent[5].payload == packet(5000, 0)[12:]  # relayed untouched


def test_early_media_does_not_send_the_agent_to_the_member() -> None:
    r = relay()
    r.early_media(0.0)
    assert from_agent(r, 1, 160, 0.0) is None and r.member.suppressed == 1
    assert from_member(r, 1, 160, 0.0) is not None
    r.bridge(0.02)
    first = from_agent(r, 2, 320, 0.02)
    assert first is not None and first.marker and first.ssrc == r.member.out_ssrc


@pytest.mark.parametrize(
    ("agent_pt", "member_pt", "table"),
    [(g711.PCMU, g711.PCMA, g711.ULAW_TO_ALAW), (g711.PCMA, g711.PCMU, g711.ALAW_TO_ULAW)],
)
def test_different_laws_are_transcoded_both_ways(
    agent_pt: int, member_pt: int, table: bytes
) -> None:
    r = relay(agent_pt, member_pt)
    r.bridge(0.0)
    audio = bytes(range(160))
    out = from_agent(r, 10, 1600, 0.0, pt=agent_pt, payload=audio)
    assert (
        out is not None and out.payload_type == member_pt and out.payload == audio.translate(table)
    )
    back = from_member(r, 20, 3200, 0.0, pt=member_pt, payload=audio)
    assert back is not None and back.payload_type == agent_pt
    assert back.payload == audio.translate(
        g711.ULAW_TO_ALAW if agent_pt == 8 else g711.ALAW_TO_ULAW
    )
    assert r.counters()["member_transcoded"] == 1 and r.counters()["agent_transcoded"] == 1
    same = relay()
    same.bridge(0.0)
    plain = from_agent(same, 10, 1600, 0.0, payload=audio)
    assert plain is not None and plain.payload == audio and same.member.transcoded == 0


def test_a_packet_with_csrc_and_padding_is_transcoded_payload_only() -> None:
    r = relay(g711.PCMU, g711.PCMA)
    r.bridge(0.0)
    data = RtpPacket(0, 1, 160, 0xAB, bytes(range(160)), csrc=(5,), padding=4).serialize()
    out = r.agent_rtp(data, AGENT_FROM, 0.0)
    assert out is not None
    parsed = RtpPacket.parse(out)
    assert parsed.csrc == (5,) and parsed.padding == 4
    assert parsed.payload == bytes(range(160)).translate(g711.ULAW_TO_ALAW)


def test_telephone_events_are_mapped_to_the_receivers_pt_and_never_transcoded() -> None:
    r = relay(g711.PCMU, g711.PCMA, agent_event=101, member_event=96)
    r.bridge(0.0)
    assert from_agent(r, 1, 160, 0.0) is not None  # audio first: the stream is anchored
    digit = rtp.TelephoneEvent.for_digit("5", duration=160).serialize()
    events = [from_agent(r, 2 + k, 320, 0.02 * k, pt=101, payload=digit) for k in range(3)]
    assert all(e is not None and e.payload_type == 96 and e.payload == digit for e in events)
    seqs = [e.sequence_number for e in events if e is not None]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]  # same stream as the audio
    assert r.agent.dtmf_events == 1 and r.member.transcoded == 1  # only the audio packet
    # A leg that negotiated no telephone-event gets none: dropped and counted.
    lone = relay(agent_event=101, member_event=None)
    lone.bridge(0.0)
    assert from_agent(lone, 1, 160, 0.0, pt=101, payload=digit) is None
    assert lone.dtmf_dropped == 1 and lone.dropped == 1 and lone.agent.dtmf_events == 1


def test_unknown_payload_types_and_garbage_are_dropped() -> None:
    r = relay()
    r.bridge(0.0)
    assert from_agent(r, 1, 160, 0.0, pt=13, payload=b"\x40") is None  # comfort noise
    assert r.agent_rtp(b"\x80\x00", AGENT_FROM, 0.0) is None
    assert r.agent_rtp(b"\x40" + bytes(20), AGENT_FROM, 0.0) is None  # version 1
    assert r.dropped == 3


def test_sequence_gaps_count_as_loss_and_a_late_packet_takes_one_back() -> None:
    r = relay()
    r.bridge(0.0)
    for seq in (100, 101, 104, 105, 103, 106):  # 102 lost, 103 late
        from_member(r, seq, seq * 160, 0.0)
    assert r.member.lost == 1 and r.member.received == 6
    out = [from_agent(r, s, s * 160, 0.0) for s in (65534, 65535, 0, 1)]  # wraps: no loss
    assert r.agent.lost == 0 and all(o is not None for o in out)


def test_rtcp_is_forwarded_with_the_outgoing_ssrc_and_shifted_rtp_time() -> None:
    r = relay()
    r.bridge(0.0)
    relayed = from_member(r, 500, 80_000, 0.0, ssrc=0x5151)
    assert relayed is not None
    block = ReportBlock(ssrc=r.member.out_ssrc, fraction_lost=0, cumulative_lost=0,
                        highest_sequence=7, jitter=3)  # fmt: skip
    sr = rtp.report(SenderReport(0x5151, 1 << 32, 80_000, 1, 160, (block,)), "member")
    out = r.member_rtcp(sr, ("203.0.113.5", 30003), 0.0)
    assert out is not None and r.agent.rtcp_to == AGENT_SDP[:1] + (4001,)
    forwarded = rtp.parse_rtcp(out)
    assert isinstance(forwarded[0], SenderReport)
    assert forwarded[0].ssrc == r.agent.out_ssrc  # the SSRC the agent hears
    assert forwarded[0].rtp_timestamp == relayed.timestamp  # same instant, agent's clock
    assert forwarded[0].reports == (block,) and len(forwarded) == 2  # SDES kept
    rr = rtp.report(ReceiverReport(0x7777), "agent")
    back = r.agent_rtcp(rr, ("198.51.100.7", 4001), 0.0)
    assert back is not None and rtp.parse_rtcp(back)[0] == ReceiverReport(r.member.out_ssrc)
    assert r.member.rtcp_to == ("203.0.113.5", 30003)  # latched
    assert r.rtcp_relayed == 2
    # RTCP from some other host is not forwarded; on the RTP port (mux) it is, and latches.
    assert r.agent_rtcp(rr, ("192.0.2.1", 1), 0.0) is None and r.foreign == 1
    muxed = r.agent_rtp(rr, AGENT_FROM, 0.0)
    assert muxed is not None and r.agent.rtcp_mux and r.agent.rtcp_to == AGENT_FROM


def test_rtcp_follows_the_mode() -> None:
    r = relay()
    rr = rtp.report(ReceiverReport(1), "x")
    r.early_media(0.0)
    assert r.agent_rtcp(rr, AGENT_FROM, 0.0) is None
    assert r.member_rtcp(rr, MEMBER_FROM, 0.0) is not None


def test_media_timeout_fires_once_when_a_receiving_leg_goes_quiet() -> None:
    r = relay(timeout=5.0)
    assert r.timeout_at() is None and not r.handle_timer(100.0)  # not bridged: not armed
    r.bridge(10.0)
    assert r.get_timer() == 15.0
    from_agent(r, 1, 160, 12.0)
    from_member(r, 1, 160, 13.0)
    assert r.timeout_at() == 17.0 and not r.handle_timer(16.9)
    r.set_agent(spec(AGENT_SDP, receive=False), 16.0)  # the agent holds: it may be quiet
    assert r.timeout_at() == 18.0
    assert r.handle_timer(18.0) and not r.handle_timer(19.0) and r.timeout_at() is None
    # What is left on the timer is the hold's silence to the member (nothing was sent to
    # it since the agent's packet at 12.0), not the timeout again.
    assert r.get_timer() == pytest.approx(12.0 + FILL_AFTER)


def test_resuming_from_hold_restarts_the_quiet_clock() -> None:
    r = relay(timeout=5.0)
    r.bridge(0.0)
    r.set_member(spec(MEMBER_SDP, receive=False), 0.0)
    r.set_agent(spec(AGENT_SDP, receive=False), 0.0)
    assert r.timeout_at() is None
    r.set_member(spec(MEMBER_SDP), 100.0)
    assert r.timeout_at() == 105.0


def test_hold_sends_nothing_to_the_held_leg_and_resume_continues_the_stream() -> None:
    r = relay()
    r.bridge(0.0)
    before = from_agent(r, 1, 160, 0.0)
    assert before is not None
    r.set_member(spec(MEMBER_SDP, send=False), 0.01)
    assert [from_agent(r, s, s * 160, 0.02 * s) for s in (2, 3, 4)] == [None] * 3
    assert r.member.suppressed == 3
    r.set_member(spec(MEMBER_SDP), 0.09)
    after = from_agent(r, 5, 800, 0.1)
    assert after is not None and after.marker and after.ssrc == before.ssrc
    assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF  # no fake loss
    assert (after.timestamp - before.timestamp) & 0xFFFFFFFF == 800  # 0.1 s by the clock
    # Hold applies to the ringback too.
    r2 = relay()
    r2.set_agent(spec(AGENT_SDP, send=False), 0.0)
    r2.ringback(0.0)
    assert r2.packets_due(0.0) == [] and r2.agent.suppressed == 1


def test_ringback_follows_the_agents_law_and_is_the_tone() -> None:
    r = relay(agent_pt=g711.PCMA)
    r.ringback(0.0)
    packets = [RtpPacket.parse(p) for k in range(50) for p in r.packets_due(k * 0.02)]
    assert {p.payload_type for p in packets} == {g711.PCMA}
    audio = g711.alaw_decode(b"".join(p.payload for p in packets)).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.fft.rfftfreq(len(audio), 1 / 8000)[np.argmax(spectrum)] == pytest.approx(425, abs=5)


def test_closed_relay_ignores_control() -> None:
    r = relay()
    r.close()
    r.ringback(0.0)
    r.bridge(0.0)
    assert r.mode is Mode.CLOSED and r.get_timer() is None


def test_stream_spec_validates() -> None:
    with pytest.raises(ValueError):
        StreamSpec("1.2.3.4", 5, 18)
    with pytest.raises(ValueError):
        StreamSpec("1.2.3.4", 5, 0, event_pt=13)
    held = StreamSpec("0.0.0.0", 5000, 0, rtcp_port=7000)
    assert held.rtp_address is None and held.rtcp_address is None
    assert StreamSpec("1.2.3.4", 5000, 0, rtcp_port=7000).rtcp_address == ("1.2.3.4", 7000)
