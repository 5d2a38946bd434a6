"""Recorder: bridged audio buffered per packet, decoded and aligned at the end, WAV out."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from sipdialer.media import g711, rtp
from sipdialer.media.analysis import dominant_frequency
from sipdialer.media.recorder import RESYNC, Recorder, write_wav
from sipdialer.media.relay import CallRelay, RingbackFrames, StreamSpec
from sipdialer.media.tones import RINGBACK_EU, Tone, frames


def tone_packets(hz: float, pt: int, count: int, ssrc: int, ts0: int = 0) -> list[bytes]:
    pcm = Tone((hz,), ((count * 0.02, 0.0),), -10.0).pcm()
    return [
        rtp.build(frame, pt, k, ts0 + 160 * k, ssrc)
        for k, frame in enumerate(frames(pcm, pt)[:count])
    ]


def test_each_leg_lands_on_its_channel_at_its_time() -> None:
    rec = Recorder()
    assert rec.empty
    rec.add(0, tone_packets(440, 0, 1, 1)[0], 5.0)  # before start(): not kept
    rec.start(10.0)
    for k, data in enumerate(tone_packets(440, g711.PCMU, 50, ssrc=1)):
        rec.add(0, data, 10.0 + 0.02 * k)
    for k, data in enumerate(tone_packets(1000, g711.PCMA, 50, ssrc=2, ts0=12345)):
        rec.add(1, data, 10.5 + 0.02 * k)  # the member starts half a second later
    assert rec.packets(0) == 50 and rec.packets(1) == 50
    left, right = rec.pcm()
    assert len(left) == len(right) == 4000 + 8000  # ends with the member's last frame
    assert dominant_frequency(left[:8000]) == pytest.approx(440, abs=3)
    assert dominant_frequency(right[4000:]) == pytest.approx(1000, abs=3)
    assert not np.any(right[:4000]) and not np.any(left[8000:])


def test_jitter_does_not_move_audio_but_a_drifting_stream_re_anchors() -> None:
    rec = Recorder()
    rec.start(0.0)
    packets = tone_packets(440, g711.PCMU, 20, ssrc=7)
    jitter = [0.0, 0.015, 0.0, 0.03, 0.005] * 4
    for k, (data, late) in enumerate(zip(packets, jitter, strict=True)):
        rec.add(0, data, 0.02 * k + late)
    left, _ = rec.pcm()
    expected = g711.ulaw_decode(b"".join(p[12:] for p in packets))
    assert np.array_equal(left[: len(expected)], expected)  # placed by timestamp
    # Timestamps that stop advancing (a broken sender) follow the clock again past RESYNC.
    stuck = Recorder()
    stuck.start(0.0)
    same_ts = rtp.build(b"\x00" * 160, 0, 1, 0, 9)
    stuck.add(1, same_ts, 0.0)
    stuck.add(1, same_ts, RESYNC + 0.5)
    _, right = stuck.pcm()
    assert len(right) == round((RESYNC + 0.5) * 8000) + 160


def test_write_wav_is_stereo_8khz_pcm16(tmp_path: Path) -> None:
    left = np.arange(100, dtype=np.int16)
    right = -left
    path = tmp_path / "x.wav"
    write_wav(path, left, right)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(data[:, 0], left) and np.array_equal(data[:, 1], right)
    with pytest.raises(ValueError):
        write_wav(path, left, right[:5])


def test_the_relay_records_only_while_bridged() -> None:
    rec = Recorder()
    r = CallRelay(RingbackFrames(RINGBACK_EU.pcm()), media_timeout=0, recorder=rec)
    r.set_agent(StreamSpec("127.0.0.1", 4000, g711.PCMU), 0.0)
    r.set_member(StreamSpec("127.0.0.1", 5000, g711.PCMA), 0.0)
    r.early_media(0.0)
    r.member_rtp(tone_packets(1000, 8, 1, 3)[0], ("127.0.0.1", 5000), 0.0)
    assert rec.empty  # early media is not recorded
    r.bridge(1.0)
    for k, data in enumerate(tone_packets(440, g711.PCMU, 40, ssrc=4)):
        r.agent_rtp(data, ("127.0.0.1", 4000), 1.0 + 0.02 * k)
    for k, data in enumerate(tone_packets(1000, g711.PCMA, 40, ssrc=5)):
        r.member_rtp(data, ("127.0.0.1", 5000), 1.0 + 0.02 * k)
    digit = rtp.build(rtp.TelephoneEvent(1).serialize(), 101, 99, 0, 4)
    r.agent_rtp(digit, ("127.0.0.1", 4000), 1.9)  # not audio: not recorded
    assert rec.packets(0) == rec.packets(1) == 40
    left, right = rec.pcm()
    assert dominant_frequency(left) == pytest.approx(440, abs=3)
    assert dominant_frequency(right) == pytest.approx(1000, abs=3)
