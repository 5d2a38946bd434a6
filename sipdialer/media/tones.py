"""Call-progress tones and prompts as PCM16 (numpy int16, 8 kHz mono) and G.711 frames.

Theory of operation. A ``Tone`` is data: frequencies, a level, and a cadence of (on, off)
seconds. ``tone.pcm()`` renders one cycle of the cadence; a player loops the frames of
that cycle (``repeat``) or plays them once. Everything is generated at start-up, so the
media path only ever sends prepared 20 ms frames.

The tones (ITU-T E.180 and its Supplement 2, national variants):

- ``RINGBACK_EU``: 425 Hz, 1 s on, 4 s off, -13 dBm0 (CEPT/ETSI countries).
- ``RINGBACK_US``: 440 + 480 Hz, 2 s on, 4 s off, -19 dBm0 each (the North American
  precise tone plan).
- ``BUSY_EU``: 425 Hz, 0.5 s on, 0.5 s off, -13 dBm0.
- ``CONFIRMATION``: 1000 Hz, 100 ms on, 100 ms off, 100 ms on (0.3 s, once), -10 dBm0: the
  short double beep a feature-code call plays when its code was taken.

Each burst starts at phase 0 and is shaped by a 4 ms raised-cosine ramp at both ends, so
the cadence has no clicks; the ramp does not move the tone's frequency or cadence.

Levels: a sine at 0 dBm0 has a peak of 32635 · 10^(-3.17/20) ≈ 22,650 in PCM16, since
µ-law's full scale is +3.17 dBm0 (G.711 §4, the "digital milliwatt").

``load_wav(path)`` reads a prompt or a custom ringback (``[media] ringback = "x.wav"``)
with the stdlib ``wave`` module: PCM of 8-32 bits, any number of channels (averaged), at
8 kHz or an integer multiple of it up to 96 kHz (low-pass filtered, then decimated).
Anything else is refused with ``WavError`` saying how to convert the file.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from . import g711
from .g711 import PCM16, SAMPLE_RATE

FULL_SCALE: Final = 32635
"PCM16 peak of µ-law's largest code: +3.17 dBm0."
_FULL_SCALE_DBM0: Final = 3.17
_RAMP: Final = 0.004
"Seconds of raised-cosine fade at each end of a burst."
MAX_WAV_RATE: Final = 96000

Samples = NDArray[np.float64]
"Audio being prepared: float64 on the PCM16 scale."


class WavError(ValueError):
    """A WAV file that cannot be played: not PCM, an unsupported rate, empty, unreadable."""


@dataclass(frozen=True)
class Tone:
    """A tone as data; ``pcm()`` renders one cycle of its cadence."""

    frequencies: tuple[float, ...]
    "Hz; more than one are summed (each at ``level_dbm0``)."
    cadence: tuple[tuple[float, float], ...]
    "(seconds on, seconds off) pairs; one cycle is their sum."
    level_dbm0: float = -13.0
    "Level of each frequency component, in dBm0."
    repeat: bool = True
    "Ringback and busy repeat until stopped; a beep plays once."

    def __post_init__(self) -> None:
        if not self.frequencies or not all(0 < f < SAMPLE_RATE / 2 for f in self.frequencies):
            raise ValueError(f"tone frequencies must be in (0, 4000) Hz: {self.frequencies}")
        if not self.cadence or any(on <= 0 or off < 0 for on, off in self.cadence):
            raise ValueError(f"cadence needs (on > 0, off >= 0) pairs: {self.cadence}")
        peak = amplitude(self.level_dbm0) * len(self.frequencies)
        if peak > FULL_SCALE:
            raise ValueError(f"{self.level_dbm0} dBm0 per component clips")

    @property
    def duration(self) -> float:
        """Seconds in one cycle of the cadence."""
        return sum(on + off for on, off in self.cadence)

    def pcm(self) -> PCM16:
        """One cycle of the cadence as PCM16 at 8 kHz."""
        parts = []
        for on, off in self.cadence:
            parts.append(self._burst(round(on * SAMPLE_RATE)))
            parts.append(np.zeros(round(off * SAMPLE_RATE), dtype=np.float64))
        return np.round(np.concatenate(parts)).astype(np.int16)

    def _burst(self, samples: int) -> Samples:
        t = np.arange(samples, dtype=np.float64) / SAMPLE_RATE
        wave_ = sum(np.sin(2 * math.pi * f * t) for f in self.frequencies)
        burst = amplitude(self.level_dbm0) * np.asarray(wave_, dtype=np.float64)
        ramp = min(round(_RAMP * SAMPLE_RATE), samples // 2)
        if ramp:
            fade = 0.5 - 0.5 * np.cos(math.pi * np.arange(ramp) / ramp)
            burst[:ramp] *= fade
            burst[samples - ramp :] *= fade[::-1]
        return burst


def amplitude(level_dbm0: float) -> float:
    """PCM16 peak of a sine at ``level_dbm0``."""
    return FULL_SCALE * 10 ** ((level_dbm0 - _FULL_SCALE_DBM0) / 20)


RINGBACK_EU: Final = Tone((425.0,), ((1.0, 4.0),), -13.0)
RINGBACK_US: Final = Tone((440.0, 480.0), ((2.0, 4.0),), -19.0)
BUSY_EU: Final = Tone((425.0,), ((0.5, 0.5),), -13.0)
CONFIRMATION: Final = Tone((1000.0,), ((0.1, 0.1), (0.1, 0.0)), -10.0, repeat=False)
RINGBACKS: Final = {"eu": RINGBACK_EU, "us": RINGBACK_US}
"The names ``[media] ringback`` accepts besides a WAV file."


def frames(pcm: PCM16, payload_type: int, ptime: float = 0.02) -> list[bytes]:
    """Split PCM16 into G.711 frames of ``ptime`` seconds (PCMU 0 or PCMA 8).

    The last frame is completed with silence, so every frame has the same size.
    """
    size = frame_samples(ptime)
    pad = -len(pcm) % size
    if pad:
        pcm = np.concatenate([pcm, np.zeros(pad, dtype=np.int16)])
    data = g711.encode(pcm, payload_type)
    return [data[i : i + size] for i in range(0, len(data), size)]


def frame_samples(ptime: float) -> int:
    """Samples (= G.711 octets) in a frame of ``ptime`` seconds: 160 for 20 ms."""
    size = round(ptime * SAMPLE_RATE)
    if size <= 0 or abs(size - ptime * SAMPLE_RATE) > 1e-6:
        raise ValueError(f"ptime {ptime} s is not a whole number of 8 kHz samples")
    return size


def ringback(setting: str, media_dir: str | Path = "media") -> PCM16:
    """The PCM16 of ``[media] ringback``: ``eu``, ``us``, or a WAV file under ``media_dir``."""
    tone = RINGBACKS.get(setting.lower())
    if tone is not None:
        return tone.pcm()
    return load_wav(Path(media_dir) / setting)


def load_wav(path: str | Path) -> PCM16:
    """Read a PCM WAV file as PCM16, 8 kHz, mono; raises ``WavError`` if it cannot."""
    advice = "convert it with: sox IN.wav -r 8000 -c 1 -b 16 OUT.wav"
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a PCM WAV file ({exc}); {advice}") from None
    except OSError as exc:
        raise WavError(f"{path}: cannot read: {exc.strerror or exc}") from None
    samples = _to_float(raw, width, path)
    if channels > 1:
        samples = samples[: len(samples) - len(samples) % channels]
        samples = samples.reshape(-1, channels).mean(axis=1)
    if not len(samples):
        raise WavError(f"{path}: no audio")
    if rate != SAMPLE_RATE:
        if rate % SAMPLE_RATE or rate > MAX_WAV_RATE:
            raise WavError(f"{path}: {rate} Hz is not 8000 Hz or a multiple of it; {advice}")
        samples = _decimate(samples, rate // SAMPLE_RATE)
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)


def _to_float(raw: bytes, width: int, path: str | Path) -> Samples:
    """WAV sample octets (little-endian) → float64 on the PCM16 scale."""
    if width == 1:  # 8-bit WAV is unsigned
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128) * 256
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if width == 3:
        octets = np.frombuffer(raw[: len(raw) - len(raw) % 3], dtype=np.uint8).reshape(-1, 3)
        value = octets[:, 0].astype(np.int32) | (octets[:, 1].astype(np.int32) << 8)
        value |= octets[:, 2].astype(np.int8).astype(np.int32) << 16
        return value.astype(np.float64) / 256
    if width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float64) / 65536
    raise WavError(f"{path}: {8 * width}-bit samples are not supported")


def _decimate(samples: Samples, factor: int) -> Samples:
    """Low-pass below 3.6 kHz (windowed sinc, Hamming), then keep every ``factor``-th."""
    half = 32 * factor
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = 3600.0 / (SAMPLE_RATE * factor)  # cycles per input sample
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(len(n))
    taps /= taps.sum()
    filtered = np.convolve(samples, taps, mode="same")
    return np.asarray(filtered[::factor], dtype=np.float64)
