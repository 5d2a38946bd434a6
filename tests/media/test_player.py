"""FramePlayer: RTP pacing driven by hand-fed ``now``, no sleeps."""

from __future__ import annotations

import pytest

from sipdialer.media import g711
from sipdialer.media.player import MAX_BURST, FramePlayer
from sipdialer.media.rtp import RtpPacket
from sipdialer.media.tones import CONFIRMATION, RINGBACK_EU

FRAMES = [bytes([n]) * 160 for n in range(5)]


def player(**options: object) -> FramePlayer:
    defaults: dict[str, object] = {"ssrc": 0x1234, "sequence": 65534, "timestamp": 2**32 - 320}
    defaults.update(options)
    return FramePlayer(FRAMES, g711.PCMU, **defaults)  # type: ignore[arg-type]


def drive(p: FramePlayer) -> list[tuple[float, RtpPacket]]:
    """Run the player to the end the way the shell does: wake exactly at each timer."""
    sent = []
    while (at := p.get_timer()) is not None:
        sent += [(at, RtpPacket.parse(data)) for data in p.packets_due(at)]
    return sent


def test_one_shot_paces_frames_every_20_ms_with_continuous_seq_and_ts() -> None:
    p = player()
    assert p.get_timer() is None and p.packets_due(0.0) == []  # not started
    p.start(100.0)
    sent = drive(p)
    assert [at for at, _ in sent] == pytest.approx([100.0, 100.02, 100.04, 100.06, 100.08])
    packets = [packet for _, packet in sent]
    assert [pk.sequence_number for pk in packets] == [65534, 65535, 0, 1, 2]  # wraps
    assert [pk.timestamp for pk in packets] == [2**32 - 320, 2**32 - 160, 0, 160, 320]
    assert [pk.marker for pk in packets] == [True, False, False, False, False]
    assert {pk.ssrc for pk in packets} == {0x1234} and {pk.payload_type for pk in packets} == {0}
    assert [pk.payload for pk in packets] == FRAMES
    assert p.finished and p.get_timer() is None and p.packets_due(200.0) == []
    assert (p.packets_sent, p.octets_sent) == (5, 800)
    assert (p.sequence, p.timestamp) == (3, 480)  # where a following stream continues


def test_early_and_repeated_calls_send_nothing() -> None:
    p = player()
    p.start(0.0)
    assert len(p.packets_due(0.0)) == 1
    assert p.packets_due(0.0) == [] and p.packets_due(0.0199) == []
    assert p.get_timer() == pytest.approx(0.02)
    assert len(p.packets_due(0.02 - 1e-9)) == 1  # float rounding of the clock is on time


def test_a_slightly_late_wake_sends_the_missed_frames_at_once() -> None:
    p = player()
    p.start(0.0)
    p.packets_due(0.0)
    late = [RtpPacket.parse(d) for d in p.packets_due(0.045)]  # frames 1 and 2 due
    assert [pk.timestamp - (2**32 - 320) & 0xFFFFFFFF for pk in late] == [160, 320]
    assert p.get_timer() == pytest.approx(0.06)


def test_a_very_late_wake_sends_at_most_a_burst_and_keeps_timestamps_on_the_clock() -> None:
    p = FramePlayer(FRAMES * 10, g711.PCMU, ssrc=1, sequence=0, timestamp=0)
    p.start(0.0)
    p.packets_due(0.0)
    burst = [RtpPacket.parse(d) for d in p.packets_due(0.2)]  # frames 1..10 are due
    assert len(burst) == MAX_BURST == 3
    assert [pk.sequence_number for pk in burst] == [1, 2, 3]  # no gap: nothing "lost"
    assert [pk.timestamp for pk in burst] == [8 * 160, 9 * 160, 10 * 160]  # media time
    assert [pk.marker for pk in burst] == [True, False, False]  # re-sync the jitter buffer
    assert [pk.payload for pk in burst] == [FRAMES[3], FRAMES[4], FRAMES[0]]
    assert p.get_timer() == pytest.approx(0.22)
    nxt = RtpPacket.parse(p.packets_due(0.22)[0])
    assert (nxt.sequence_number, nxt.timestamp, nxt.marker) == (4, 11 * 160, False)


def test_a_one_shot_player_finishes_even_when_its_end_passes_during_a_stall() -> None:
    p = player(max_burst=2)
    p.start(0.0)
    assert len(p.packets_due(10.0)) == 2 and p.finished


def test_looping_player_repeats_until_stopped() -> None:
    p = player(loop=True)
    p.start(0.0)
    payloads = []
    for _ in range(12):
        at = p.get_timer()
        assert at is not None
        payloads += [RtpPacket.parse(d).payload for d in p.packets_due(at)]
    assert payloads == (FRAMES * 3)[:12] and not p.finished
    p.stop()
    p.stop()
    assert p.finished and p.get_timer() is None and p.packets_due(1.0) == []


def test_tone_players_and_ptime() -> None:
    ring = FramePlayer.from_tone(RINGBACK_EU, g711.PCMA, ssrc=7)
    ring.start(0.0)
    first = RtpPacket.parse(ring.packets_due(0.0)[0])
    assert first.payload_type == 8 and len(first.payload) == 160
    beep = FramePlayer.from_tone(CONFIRMATION, g711.PCMU, ptime=0.03, sequence=0, timestamp=0)
    beep.start(5.0)
    sent = drive(beep)
    assert len(sent) == 10 and beep.finished  # 0.3 s in 30 ms frames
    assert sent[-1][0] == pytest.approx(5.27) and sent[1][1].timestamp == 240


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        FramePlayer([b"\xff" * 100], g711.PCMU)  # not 20 ms
    with pytest.raises(ValueError):
        FramePlayer([], g711.PCMU)
    p = player()
    p.start(0.0)
    with pytest.raises(RuntimeError):
        p.start(1.0)


def test_random_rtp_start_values_when_not_given() -> None:
    a, b = FramePlayer(FRAMES, 0), FramePlayer(FRAMES, 0)
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)
