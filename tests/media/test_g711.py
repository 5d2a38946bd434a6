"""G.711 µ-law/A-law: known values, every code's round trip, the transcoding tables."""

from __future__ import annotations

import numpy as np
import pytest

from sipdialer.media import g711
from sipdialer.media.g711 import (
    ALAW_DECODE,
    ALAW_TO_ULAW,
    ULAW_DECODE,
    ULAW_TO_ALAW,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

CODES = bytes(range(256))


def ulaw_compress(x: int) -> int:
    """ITU-T G.191 ``ulaw_compress``, transcribed line by line as an oracle."""
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i:
        segno += 1
        i >>= 1
    high = 8 - segno
    low = 0x0F - ((absno >> segno) & 0x0F)
    y = (high << 4) | low
    return y | 0x80 if x >= 0 else y


def alaw_compress(x: int) -> int:
    """ITU-T G.191 ``alaw_compress``, transcribed line by line as an oracle."""
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x80
    return ix ^ 0x55


def test_encoders_match_g191_for_every_pcm16_sample() -> None:
    samples = np.arange(-32768, 32768, dtype=np.int16)
    ours_u = np.frombuffer(ulaw_encode(samples), dtype=np.uint8)
    ours_a = np.frombuffer(alaw_encode(samples), dtype=np.uint8)
    for index in range(0, 65536, 7):  # a stride keeps this fast; the tables are formulas
        x = int(samples[index])
        assert ours_u[index] == ulaw_compress(x), x
        assert ours_a[index] == alaw_compress(x), x


@pytest.mark.parametrize(
    ("code", "sample"),
    [(0x00, -32124), (0x80, 32124), (0xFF, 0), (0x7F, 0), (0xFE, 8), (0x7E, -8), (0xEF, 132)],
)
def test_ulaw_known_values(code: int, sample: int) -> None:
    assert ULAW_DECODE[code] == sample


@pytest.mark.parametrize(
    ("code", "sample"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24), (0xC5, 264)],
)
def test_alaw_known_values(code: int, sample: int) -> None:
    assert ALAW_DECODE[code] == sample


def test_encoding_known_samples() -> None:
    pcm = np.array([0, -1, 1, 32767, -32768, 1000, -1000], dtype=np.int16)
    assert ulaw_encode(pcm) == bytes([0xFF, 0x7F, 0xFF, 0x80, 0x00, 0xCE, 0x4E])
    assert alaw_encode(pcm) == bytes([0xD5, 0x55, 0xD5, 0xAA, 0x2A, 0xFA, 0x7A])


def test_alaw_round_trips_every_code() -> None:
    assert alaw_encode(alaw_decode(CODES)) == CODES


def test_ulaw_round_trips_every_code_but_negative_zero() -> None:
    back = ulaw_encode(ulaw_decode(CODES))
    changed = {code: back[code] for code in range(256) if back[code] != code}
    assert changed == {0x7F: 0xFF}  # G.711's two zeros; 0 encodes as positive zero


def test_decoding_is_monotonic_and_odd_symmetric() -> None:
    # Positive codes by magnitude rank r: µ-law sends 0xFF ^ r, A-law (0x80 | r) ^ 0x55.
    ulaw = [int(ULAW_DECODE[0xFF ^ r]) for r in range(128)]
    alaw = [int(ALAW_DECODE[(0x80 | r) ^ 0x55]) for r in range(128)]
    assert ulaw == sorted(set(ulaw)) and alaw == sorted(set(alaw))
    assert ulaw[-1] == 32124 and alaw[-1] == 32256
    # Bit 7 is the sign in both laws: mirrored codes decode to mirrored samples.
    assert all(ULAW_DECODE[c] == -ULAW_DECODE[c ^ 0x80] for c in range(256))
    assert all(ALAW_DECODE[c] == -ALAW_DECODE[c ^ 0x80] for c in range(256))


def test_transcoding_tables_known_entries() -> None:
    assert len(ULAW_TO_ALAW) == len(ALAW_TO_ULAW) == 256
    assert ULAW_TO_ALAW[0x80] == 0xAA and ULAW_TO_ALAW[0x00] == 0x2A  # full scale
    assert ULAW_TO_ALAW[0xFF] == 0xD5 and ALAW_TO_ULAW[0xD5] == 0xFE  # no zero in A-law
    assert g711.ulaw_to_alaw(b"\xff" * 160) == b"\xd5" * 160


def step(table: np.ndarray, code: int) -> int:
    """The width of the quantisation interval of ``code`` (distance to its neighbours)."""
    value = int(table[code])
    others = sorted(abs(int(v) - value) for v in table if int(v) != value)
    return others[0]


def test_transcoding_errs_by_at_most_one_step_of_the_coarser_law() -> None:
    # "One step" give or take the 4 PCM16 units between the two laws' grids (µ-law's
    # decision values sit off A-law's by its bias of 33 in 14 bits, 132 in 16).
    for source, target, table in (
        (ULAW_DECODE, ALAW_DECODE, ULAW_TO_ALAW),
        (ALAW_DECODE, ULAW_DECODE, ALAW_TO_ULAW),
    ):
        for code in range(256):
            error = abs(int(target[table[code]]) - int(source[code]))
            coarser = max(step(source, code), step(target, table[code]))
            assert error <= coarser + 4, hex(code)


def test_transcoding_round_trips_lose_one_step_on_16_codes_each() -> None:
    u_back = CODES.translate(ULAW_TO_ALAW).translate(ALAW_TO_ULAW)
    a_back = CODES.translate(ALAW_TO_ULAW).translate(ULAW_TO_ALAW)
    assert sum(u_back[c] != c for c in range(256)) == 16
    assert sum(a_back[c] != c for c in range(256)) == 16
    assert all(abs(int(ULAW_DECODE[u_back[c]]) - int(ULAW_DECODE[c])) <= 8 for c in range(256))


def test_numpy_encoding_of_a_frame() -> None:
    t = np.arange(160) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    for pt in (g711.PCMU, g711.PCMA):
        decoded = g711.decode(g711.encode(pcm, pt), pt)
        assert decoded.dtype == np.int16 and len(decoded) == 160
        assert np.max(np.abs(decoded.astype(int) - pcm)) <= 256  # a step at this level
    assert g711.silence(g711.PCMU, 3) == b"\xff\xff\xff"
    assert g711.silence(g711.PCMA, 2) == b"\xd5\xd5"
    with pytest.raises(ValueError):
        g711.encode(pcm, 18)
