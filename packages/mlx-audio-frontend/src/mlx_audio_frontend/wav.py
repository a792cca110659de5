"""Plain PCM WAV bytes read with numpy, the samples libsndfile gives for them.

`soundfile` reads bytes through Python callbacks (its virtual I/O): each of libsndfile's
reads takes the GIL; `load_samples` of a 17 s clip's bytes took 0.49 ms. A server decoding
uploads on threads beside its model's thread pays that in contention: with the upload
decode taken out entirely, the demo model's batching server had answered ~13% more requests
per second (16 clients, CPU). Here the RIFF chunks are walked and the data chunk viewed as
an array: 0.05 ms (`load_samples` 0.085 ms).

Only what is certainly plain is read: 16- or 32-bit integer PCM and 32-bit float, as
WAVE_FORMAT_PCM / IEEE_FLOAT or their WAVE_FORMAT_EXTENSIBLE forms, a `fmt ` chunk before
a `data` chunk that the bytes hold whole. Anything else (8 or 24 bits, other codecs, a
stream of unknown length, a truncated or odd file) returns None, and the caller goes to
libsndfile with its checks and messages. The values are libsndfile's: integers times
1 / 2^(bits - 1) in float32 (exact for 16 bits; a 32-bit integer rounds to float32 first,
as libsndfile's cast does), floats as stored.
"""

from __future__ import annotations

import struct

import numpy as np

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
# the KSDATAFORMAT_SUBTYPE GUIDs' bytes after their leading format code
_SUBTYPE_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_TYPES = {(_PCM, 16): "<i2", (_PCM, 32): "<i4", (_FLOAT, 32): "<f4"}
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # a stream written without knowing its length


def read_pcm_wav(data: bytes) -> tuple[np.ndarray, int] | None:
    """((frames, channels) float32 samples, sample rate) of a plain PCM WAV, or None."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset, layout = 12, None
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"fmt ":
            if layout is not None or body + size > len(data):
                return None
            layout = _layout(data[body : body + size])
            if layout is None:
                return None
        elif chunk_id == b"data":
            if layout is None or size in _UNKNOWN_SIZES or body + size > len(data):
                return None
            dtype, channels, rate = layout
            width = np.dtype(dtype).itemsize * channels
            frames = size // width
            if frames == 0:
                return None  # libsndfile's own message for an empty file
            raw = np.frombuffer(data, dtype=dtype, count=frames * channels, offset=body)
            return _scaled(raw).reshape(frames, channels), rate
        offset = body + size + (size & 1)
    return None


def _layout(fmt: bytes) -> tuple[str, int, int] | None:
    """(numpy dtype, channels, rate) of a `fmt ` chunk this reader takes, else None."""
    if len(fmt) < 16:
        return None
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 40 or fmt[26:40] != _SUBTYPE_TAIL:
            return None
        valid_bits = struct.unpack_from("<H", fmt, 18)[0]
        if valid_bits not in (0, bits):
            return None
        tag = struct.unpack_from("<H", fmt, 24)[0]
    dtype = _TYPES.get((tag, bits))
    if dtype is None or channels < 1 or rate < 1 or block_align != channels * bits // 8:
        return None
    return dtype, channels, rate


def _scaled(raw: np.ndarray) -> np.ndarray:
    if raw.dtype.kind == "f":
        return raw.astype(np.float32)
    scale = np.float32(1.0 / (1 << (8 * raw.dtype.itemsize - 1)))
    return raw.astype(np.float32) * scale
