"""The plain-WAV reader gives libsndfile's samples bit for bit, and leaves everything else
to libsndfile (whose checks and messages stay those of `load_samples`)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from mlx_audio_frontend import AudioDecodeError, load_samples
from mlx_audio_frontend import audio as audio_module
from mlx_audio_frontend.wav import read_pcm_wav


def _signal(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    loud = rng.uniform(-1.0, 1.0, (frames, channels))
    loud[:5] = [[-1.0], [1.0], [0.0], [-0.5], [0.999969]]  # the ends of the ranges
    return loud


def _wav(subtype: str, channels: int = 1, rate: int = 16000, container: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, _signal(4001, channels), rate, subtype=subtype, format=container)
    return buffer.getvalue()


def _libsndfile(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples, rate


@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_32", "FLOAT"])
@pytest.mark.parametrize(("channels", "rate"), [(1, 16000), (2, 44100), (3, 8000)])
def test_plain_wav_is_libsndfile_bit_for_bit(subtype, container, channels, rate):
    data = _wav(subtype, channels, rate, container)
    got = read_pcm_wav(data)
    assert got is not None
    expected, expected_rate = _libsndfile(data)
    assert got[1] == expected_rate == rate
    assert got[0].dtype == np.float32
    np.testing.assert_array_equal(got[0], expected)


def _with_chunk_before_data(data: bytes, chunk: bytes) -> bytes:
    at = data.index(b"data")
    body = data[12:at] + chunk + data[at:]
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def test_other_chunks_and_odd_padding_are_skipped():
    data = _with_chunk_before_data(_wav("PCM_16"), b"LIST" + struct.pack("<I", 5) + b"INFOx\0")
    got = read_pcm_wav(data)
    assert got is not None
    np.testing.assert_array_equal(got[0], _libsndfile(data)[0])


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "DOUBLE", "ULAW", "IMA_ADPCM"])
def test_other_encodings_are_left_to_libsndfile(subtype):
    data = _wav(subtype)
    assert read_pcm_wav(data) is None
    samples = load_samples(data)  # still read, by libsndfile
    np.testing.assert_array_equal(samples, _libsndfile(data)[0][:, 0])


def test_not_plain_files_are_left_to_libsndfile():
    data = _wav("PCM_16")
    at = data.index(b"data")
    unknown_length = data[: at + 4] + struct.pack("<I", 0xFFFFFFFF) + data[at + 8 :]
    truncated = data[:-100]
    no_data = data[:at]
    fmt = data.index(b"fmt ")
    data_first = data[:12] + data[at:] + data[fmt:at]  # no `fmt ` before the samples
    for case in (unknown_length, truncated, no_data, data_first, b"RIFF", b"", b"OggS" * 10):
        assert read_pcm_wav(case) is None
    with pytest.raises(AudioDecodeError, match="truncated WAV"):
        load_samples(truncated)


@pytest.mark.parametrize("clip", ["odd_length_16k.wav", "speech_44k_stereo.wav"])
def test_load_samples_of_bytes_unchanged(clip, audio_dir, monkeypatch):
    """The fixtures' bytes give the samples the libsndfile path gives (resampled too)."""
    data = (audio_dir / clip).read_bytes()
    assert read_pcm_wav(data) is not None
    fast = load_samples(data)
    monkeypatch.setattr(audio_module, "read_pcm_wav", lambda data: None)
    np.testing.assert_array_equal(fast, load_samples(data))
    np.testing.assert_array_equal(fast, load_samples(audio_dir / clip))
