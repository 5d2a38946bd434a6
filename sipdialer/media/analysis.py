"""Audio measurements off the media path: what tests and the simulator use to check
that audio really crossed a call (dominant frequency, level)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def dominant_frequency(pcm: NDArray[np.int16], rate: int = 8000) -> float:
    """The strongest frequency of ``pcm`` in Hz (0.0 for silence or too few samples).

    A Hann window before the FFT keeps a tone's energy in its own bin; parabolic
    interpolation between bins gives a result finer than ``rate / len(pcm)``.
    """
    samples = np.asarray(pcm, dtype=np.float64)
    if samples.size < 64 or not np.any(samples):
        return 0.0
    samples = samples - samples.mean()
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    if spectrum[peak] == 0.0:
        return 0.0
    shift = 0.0
    if 0 < peak < spectrum.size - 1:
        left, mid, right = spectrum[peak - 1], spectrum[peak], spectrum[peak + 1]
        denominator = left - 2 * mid + right
        if denominator != 0.0:
            shift = 0.5 * (left - right) / denominator
    return float((peak + shift) * rate / samples.size)


def rms_dbfs(pcm: NDArray[np.int16]) -> float:
    """Level of ``pcm`` in dB relative to PCM16 full scale (-inf for silence)."""
    samples = np.asarray(pcm, dtype=np.float64)
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(samples * samples)))
    return float("-inf") if rms == 0.0 else 20.0 * float(np.log10(rms / 32768.0))
