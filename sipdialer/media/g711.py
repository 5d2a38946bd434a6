"""G.711 µ-law (PCMU, RTP PT 0) and A-law (PCMA, PT 8): encode, decode, transcode.

Theory of operation. Every conversion is a table lookup, built once at import:

- decode: a 256-entry int16 table per law, indexed by the code (numpy fancy indexing);
- encode: a 65,536-entry uint8 table per law, indexed by the PCM16 sample viewed as
  uint16, so encoding a frame is one lookup too and exactly equals the formula;
- transcode: 256-byte tables for ``bytes.translate`` (ULAW_TO_ALAW, ALAW_TO_ULAW), the
  relay's hot path (~0.1 µs per 160-octet frame; numpy costs ~1 µs, DESIGN.md).

The formulas follow ITU-T G.711 as its reference software implements them (ITU-T G.191
``g711.c``): 16-bit input, µ-law on the top 14 bits and A-law on the top 13; negative
samples are taken in one's complement (``~x``), so the quantiser is symmetric about -0.5
and the two laws treat a sample and its mirror alike. The transcoding tables are G.711's
own (Tables 3 and 4: µ-law ↔ A-law by code, not through linear PCM), as they appear in
the widely copied Sun Microsystems ``g711.c``.

Round trips (tested for all 256 codes):

- A-law: ``encode(decode(c)) == c`` for every code.
- µ-law: the same for 255 codes. The exception is 0x7F, "negative zero": it and 0xFF
  both decode to 0, and 0 encodes to 0xFF (positive zero), so 0x7F comes back as 0xFF.
- Transcoding is lossy both ways, by at most one step of the coarser law (+4 PCM16 units
  where the two grids are offset): each law has finer steps than the other somewhere
  (µ-law near zero, A-law in its middle segments), so 16 codes of each law come back one
  step off after µ → A → µ or A → µ → A. Digital silence is one of them: A-law has no
  zero, so PCMU 0xFF → PCMA 0xD5 (+8) → PCMU 0xFE (+8).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

PCMU: Final = 0
"RTP payload type of G.711 µ-law (RFC 3551 §6)."
PCMA: Final = 8
"RTP payload type of G.711 A-law (RFC 3551 §6)."
SAMPLE_RATE: Final = 8000
"G.711 is 8,000 samples per second, one octet per sample (RTP clock rate 8000)."

ULAW_SILENCE: Final = 0xFF
"The µ-law code of a 0 sample (positive zero)."
ALAW_SILENCE: Final = 0xD5
"The A-law code of a 0 sample (the smallest positive step, +8)."

PCM16 = NDArray[np.int16]


def _ulaw_encode_formula(x: NDArray[np.int32]) -> NDArray[np.uint8]:
    """G.191 ``ulaw_compress`` on a whole int32 array of PCM16 values."""
    negative = x < 0
    magnitude = np.where(negative, ~x, x) >> 2  # 14-bit magnitude, one's complement
    biased = np.minimum(magnitude + 33, 0x1FFF)  # bias 33, clip at the top of segment 7
    exponent = np.searchsorted(np.array([64, 128, 256, 512, 1024, 2048, 4096]), biased, "right")
    mantissa = (biased >> (exponent + 1)) & 0x0F
    code = 0x7F ^ ((exponent << 4) | mantissa)  # µ-law codes travel inverted
    result: NDArray[np.uint8] = np.where(negative, code, code | 0x80).astype(np.uint8)
    return result


def _alaw_encode_formula(x: NDArray[np.int32]) -> NDArray[np.uint8]:
    """G.191 ``alaw_compress`` on a whole int32 array of PCM16 values."""
    negative = x < 0
    magnitude = np.where(negative, ~x, x) >> 4  # 12-bit magnitude, one's complement
    exponent = np.searchsorted(np.array([16, 32, 64, 128, 256, 512, 1024]), magnitude, "right")
    shifted = magnitude >> np.maximum(exponent - 1, 0)
    mantissa = np.where(exponent == 0, magnitude, shifted - 16)
    code = (exponent << 4) | mantissa
    code = np.where(negative, code, code | 0x80)
    return (code ^ 0x55).astype(np.uint8)  # even bits inverted on the line (G.711 §2)


def _ulaw_decode_formula(code: NDArray[np.int32]) -> NDArray[np.int16]:
    """G.191 ``ulaw_expand``: the middle of each quantisation interval."""
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    result: NDArray[np.int16] = np.where(inverted & 0x80, -magnitude, magnitude).astype(np.int16)
    return result


def _alaw_decode_formula(code: NDArray[np.int32]) -> NDArray[np.int16]:
    """G.191 ``alaw_expand``: the middle of each quantisation interval."""
    value = (code ^ 0x55) & 0x7F
    exponent = value >> 4
    mantissa = (value & 0x0F) + np.where(exponent > 0, 16, 0)
    magnitude = ((mantissa << 4) + 8) << np.maximum(exponent - 1, 0)
    result: NDArray[np.int16] = np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)
    return result


_ALL_SAMPLES = np.arange(65536, dtype=np.int32).astype(np.uint16).view(np.int16).astype(np.int32)
_ALL_CODES = np.arange(256, dtype=np.int32)

# Encode tables are indexed by the sample's bit pattern as uint16 (0..65535).
_ULAW_ENCODE: Final = _ulaw_encode_formula(_ALL_SAMPLES)
_ALAW_ENCODE: Final = _alaw_encode_formula(_ALL_SAMPLES)
ULAW_DECODE: Final = _ulaw_decode_formula(_ALL_CODES)
"µ-law code → PCM16 sample (int16[256])."
ALAW_DECODE: Final = _alaw_decode_formula(_ALL_CODES)
"A-law code → PCM16 sample (int16[256])."

# G.711 Table 3 (µ → A) and Table 4 (A → µ), magnitude halves, 1-based as printed there.
_U2A = bytes(
    [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]
    + list(range(9, 26))
    + [27, 29, 31, 33, 34, 35, 36]
    + list(range(37, 45))
    + [46, 48]
    + list(range(49, 63))
    + list(range(64, 80))
    + list(range(81, 129))
)
_A2U = bytes(
    list(range(1, 16, 2))
    + list(range(16, 32))
    + [32, 32, 33, 33, 34, 34, 35, 35]
    + list(range(36, 48))
    + [48, 48, 49, 49]
    + list(range(50, 64))
    + [64, 64]
    + list(range(65, 80))
    + [79]
    + list(range(80, 128))
)

ULAW_TO_ALAW: Final = bytes(
    (0xD5 ^ (_U2A[0xFF ^ u] - 1)) if u & 0x80 else (0x55 ^ (_U2A[0x7F ^ u] - 1)) for u in range(256)
)
"256-byte ``bytes.translate`` table: a PCMU payload → PCMA (G.711 Table 3)."
ALAW_TO_ULAW: Final = bytes(
    (0xFF ^ _A2U[a ^ 0xD5]) if a & 0x80 else (0x7F ^ _A2U[a ^ 0x55]) for a in range(256)
)
"256-byte ``bytes.translate`` table: a PCMA payload → PCMU (G.711 Table 4)."


def ulaw_decode(data: bytes) -> PCM16:
    """µ-law octets → PCM16 samples (a new int16 array, one sample per octet)."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> PCM16:
    """A-law octets → PCM16 samples (a new int16 array, one sample per octet)."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(pcm: PCM16) -> bytes:
    """PCM16 samples (any int16 array) → µ-law octets."""
    return bytes(_ULAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)])


def alaw_encode(pcm: PCM16) -> bytes:
    """PCM16 samples (any int16 array) → A-law octets."""
    return bytes(_ALAW_ENCODE[np.asarray(pcm, dtype=np.int16).view(np.uint16)])


def ulaw_to_alaw(data: bytes) -> bytes:
    """Transcode a PCMU payload to PCMA (one ``bytes.translate``)."""
    return data.translate(ULAW_TO_ALAW)


def alaw_to_ulaw(data: bytes) -> bytes:
    """Transcode a PCMA payload to PCMU (one ``bytes.translate``)."""
    return data.translate(ALAW_TO_ULAW)


def encode(pcm: PCM16, payload_type: int) -> bytes:
    """PCM16 → G.711 octets for ``payload_type`` PCMU (0) or PCMA (8)."""
    if payload_type == PCMU:
        return ulaw_encode(pcm)
    if payload_type == PCMA:
        return alaw_encode(pcm)
    raise ValueError(f"G.711 payload type is 0 (PCMU) or 8 (PCMA), not {payload_type}")


def decode(data: bytes, payload_type: int) -> PCM16:
    """G.711 octets of ``payload_type`` PCMU (0) or PCMA (8) → PCM16."""
    if payload_type == PCMU:
        return ulaw_decode(data)
    if payload_type == PCMA:
        return alaw_decode(data)
    raise ValueError(f"G.711 payload type is 0 (PCMU) or 8 (PCMA), not {payload_type}")


def silence(payload_type: int, samples: int) -> bytes:
    """``samples`` octets of digital silence in PCMU (0) or PCMA (8)."""
    if payload_type == PCMU:
        return bytes([ULAW_SILENCE]) * samples
    if payload_type == PCMA:
        return bytes([ALAW_SILENCE]) * samples
    raise ValueError(f"G.711 payload type is 0 (PCMU) or 8 (PCMA), not {payload_type}")
