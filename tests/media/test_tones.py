"""Tones measured the way a listener's ear would: FFT for frequency, RMS for cadence."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from sipdialer.media import g711
from sipdialer.media.tones import (
    BUSY_EU,
    CONFIRMATION,
    RINGBACK_EU,
    RINGBACK_US,
    Tone,
    WavError,
    amplitude,
    frames,
    load_wav,
    ringback,
)

RATE = 8000


def peaks(pcm: np.ndarray, count: int = 1, rate: int = RATE) -> list[float]:
    """The ``count`` strongest frequencies (Hz) of ``pcm``, lowest first."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    bins = np.fft.rfftfreq(len(pcm), 1 / rate)
    strongest: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(bins[index] - f) > 15 for f in strongest):
            strongest.append(float(bins[index]))
        if len(strongest) == count:
            break
    return sorted(strongest)


def cadence(pcm: np.ndarray, block: float = 0.01) -> list[tuple[bool, float]]:
    """Runs of (sound on?, seconds), from the RMS of 10 ms blocks."""
    size = int(block * RATE)
    blocks = pcm[: len(pcm) // size * size].astype(np.float64).reshape(-1, size)
    on = np.sqrt((blocks**2).mean(axis=1)) > 100
    runs: list[tuple[bool, float]] = []
    for state in on:
        if runs and runs[-1][0] == state:
            runs[-1] = (bool(state), runs[-1][1] + block)
        else:
            runs.append((bool(state), block))
    return [(state, round(seconds, 2)) for state, seconds in runs]


def test_ringback_eu_is_425_hz_one_on_four_off() -> None:
    pcm = RINGBACK_EU.pcm()
    assert len(pcm) == 5 * RATE and pcm.dtype == np.int16
    assert peaks(pcm[:RATE]) == [pytest.approx(425, abs=2)]
    assert cadence(pcm) == [(True, 1.0), (False, 4.0)]


def test_ringback_us_is_440_plus_480_two_on_four_off() -> None:
    pcm = RINGBACK_US.pcm()
    assert peaks(pcm[: 2 * RATE], 2) == [pytest.approx(440, abs=2), pytest.approx(480, abs=2)]
    assert cadence(pcm) == [(True, 2.0), (False, 4.0)]


def test_busy_eu_and_confirmation_beep() -> None:
    assert peaks(BUSY_EU.pcm()[: RATE // 2]) == [pytest.approx(425, abs=4)]
    assert cadence(BUSY_EU.pcm()) == [(True, 0.5), (False, 0.5)]
    beep = CONFIRMATION.pcm()
    assert not CONFIRMATION.repeat and CONFIRMATION.duration == pytest.approx(0.3)
    assert peaks(beep) == [pytest.approx(1000, abs=10)]
    assert cadence(beep) == [(True, 0.1), (False, 0.1), (True, 0.1)]


def test_levels_in_dbm0_and_no_clicks() -> None:
    pcm = RINGBACK_EU.pcm()
    assert np.max(np.abs(pcm)) == pytest.approx(amplitude(-13.0), rel=0.01)
    assert amplitude(3.17) == pytest.approx(32635)
    # The ramp: the first and last samples of a burst are near zero.
    assert abs(int(pcm[0])) < 50 and abs(int(pcm[RATE - 1])) < 50


def test_tone_validation() -> None:
    with pytest.raises(ValueError):
        Tone((5000.0,), ((1.0, 0.0),))
    with pytest.raises(ValueError):
        Tone((425.0,), ((0.0, 1.0),))
    with pytest.raises(ValueError):
        Tone((425.0, 450.0), ((1.0, 1.0),), level_dbm0=0.0)  # two at 0 dBm0 clip


def test_frames_are_whole_g711_frames() -> None:
    out = frames(CONFIRMATION.pcm(), g711.PCMA)
    assert len(out) == 15 and {len(f) for f in out} == {160}
    assert out[7] == g711.silence(g711.PCMA, 160)  # inside the 100 ms gap
    odd = frames(np.ones(170, dtype=np.int16) * 1000, g711.PCMU, ptime=0.01)
    assert [len(f) for f in odd] == [80, 80, 80] and odd[-1][10:] == b"\xff" * 70
    with pytest.raises(ValueError):
        frames(CONFIRMATION.pcm(), g711.PCMU, ptime=0.00001)


def write_wav(
    path: Path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2
) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


def sine(freq: float, seconds: float, rate: int, peak: float = 10000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (peak * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_load_wav_at_8_khz_mono(tmp_path: Path) -> None:
    path = tmp_path / "prompt.wav"
    write_wav(path, sine(600, 0.5, RATE), RATE)
    pcm = load_wav(path)
    assert len(pcm) == 4000 and peaks(pcm) == [pytest.approx(600, abs=3)]
    assert np.array_equal(ringback("prompt.wav", tmp_path), pcm)
    assert np.array_equal(ringback("EU"), RINGBACK_EU.pcm())


def test_load_wav_mixes_down_and_decimates(tmp_path: Path) -> None:
    rate = 48000
    left, right = sine(1000, 1.0, rate), sine(5000, 1.0, rate)  # 5 kHz must not alias
    stereo = np.column_stack([left, right]).reshape(-1)
    write_wav(tmp_path / "s.wav", stereo, rate, channels=2)
    pcm = load_wav(tmp_path / "s.wav")
    assert len(pcm) == RATE
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert peaks(pcm) == [pytest.approx(1000, abs=3)]
    assert spectrum[3000] < spectrum[1000] / 100  # the alias of 5 kHz would land at 3 kHz


def test_load_wav_8_bit_and_32_bit(tmp_path: Path) -> None:
    u8 = (sine(500, 0.2, RATE, peak=100).astype(np.int32) + 128).astype(np.uint8)
    write_wav(tmp_path / "u8.wav", u8, RATE, width=1)
    assert peaks(load_wav(tmp_path / "u8.wav")) == [pytest.approx(500, abs=5)]
    i32 = sine(700, 0.2, RATE).astype(np.int32) << 16
    write_wav(tmp_path / "i32.wav", i32, RATE, width=4)
    assert np.max(np.abs(load_wav(tmp_path / "i32.wav"))) == pytest.approx(10000, abs=2)


def test_load_wav_refuses_with_a_clear_error(tmp_path: Path) -> None:
    write_wav(tmp_path / "cd.wav", sine(440, 0.1, 44100), 44100)
    with pytest.raises(WavError, match="44100 Hz.*sox"):
        load_wav(tmp_path / "cd.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEnope")
    with pytest.raises(WavError, match="not a PCM WAV"):
        load_wav(tmp_path / "junk.wav")
    with pytest.raises(WavError, match="cannot read"):
        load_wav(tmp_path / "missing.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.int16), RATE)
    with pytest.raises(WavError, match="no audio"):
        load_wav(tmp_path / "empty.wav")
