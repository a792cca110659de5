"""load_audio: NeMo's samples for every container, every input kind, one-line errors."""

from __future__ import annotations

import io
import os
import subprocess

import mlx.core as mx
import numpy as np
import pytest
import soundfile as sf

from mlx_audio_frontend import (
    AudioDecodeError,
    AudioError,
    AudioFileNotFoundError,
    EmptyAudioError,
    InvalidSamplesError,
    MissingDecoderError,
    ffmpeg_available,
    load_audio,
    load_samples,
)
from mlx_audio_frontend import audio as audio_module

RESAMPLED = ["speech_44k_stereo.wav", "speech_22k.flac", "speech_24k.mp3", "speech_48k.ogg"]
needs_ffmpeg = pytest.mark.skipif(not ffmpeg_available(), reason="ffmpeg is not installed")


@pytest.mark.parametrize("clip", RESAMPLED)
def test_decoded_and_resampled_samples_equal_nemo_loader(clip, audio_dir, nemo_arrays):
    samples = load_audio(audio_dir / clip)
    expected = nemo_arrays[f"samples/{clip}"]
    assert samples.dtype == mx.float32
    assert samples.shape == expected.shape
    np.testing.assert_allclose(np.array(samples), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("clip", [*RESAMPLED, "odd_length_16k.wav"])
def test_load_samples_is_load_audio_as_numpy(clip, audio_dir):
    """The host-side samples (what the models' batching pads) are load_audio's exactly."""
    samples = load_samples(audio_dir / clip)
    assert isinstance(samples, np.ndarray)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    np.testing.assert_array_equal(samples, np.array(load_audio(audio_dir / clip)))
    with pytest.raises(EmptyAudioError):
        load_samples(b"")


def test_native_rate_wav_is_read_unchanged(audio_dir):
    raw, rate = sf.read(audio_dir / "odd_length_16k.wav", dtype="float32")
    assert rate == 16000
    np.testing.assert_array_equal(np.array(load_audio(audio_dir / "odd_length_16k.wav")), raw)


def test_path_bytes_and_file_object_agree(audio_dir):
    path = audio_dir / "speech_22k.flac"
    from_path = np.array(load_audio(str(path)))
    from_bytes = np.array(load_audio(path.read_bytes()))
    with path.open("rb") as handle:
        from_handle = np.array(load_audio(handle))
    np.testing.assert_array_equal(from_bytes, from_path)
    np.testing.assert_array_equal(from_handle, from_path)


def test_arrays_of_any_layout_and_type(audio_dir):
    stereo, rate = sf.read(audio_dir / "speech_44k_stereo.wav", dtype="int16")
    from_file = np.array(load_audio(audio_dir / "speech_44k_stereo.wav"))
    for array in (stereo, stereo.T.copy(), mx.array(stereo)):
        got = np.array(load_audio(array, source_sr=rate))
        np.testing.assert_allclose(got, from_file, rtol=0, atol=1e-7)


def test_array_without_rate_is_taken_as_target_rate():
    tone = np.sin(np.arange(8000) / 5.0)  # float64 in, float32 out, no resampling
    got = load_audio(tone)
    assert got.dtype == mx.float32
    np.testing.assert_allclose(np.array(got), tone.astype(np.float32))


def test_unsigned_8bit_is_offset_binary():
    got = np.array(load_audio(np.array([0, 128, 255], dtype=np.uint8)))
    np.testing.assert_allclose(got, [-1.0, 0.0, 127 / 128])


def test_resampling_length_is_ceil_of_ratio():
    assert load_audio(np.zeros(44101, dtype=np.float32), source_sr=44100).shape == (16001,)
    assert load_audio(np.zeros(1000, dtype=np.float32), sr=8000, source_sr=16000).shape == (500,)


@needs_ffmpeg
def test_formats_libsndfile_cannot_read_go_through_ffmpeg(audio_dir, tmp_path):
    m4a = tmp_path / "speech.m4a"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(audio_dir / "speech_16k_mono.wav"),
            "-c:a",
            "aac",
            str(m4a),
        ],
        check=True,
    )
    reference = np.array(load_audio(audio_dir / "speech_16k_mono.wav"))
    for source in (m4a, m4a.read_bytes()):
        got = np.array(load_audio(source))
        assert abs(len(got) - len(reference)) <= 1024  # AAC frames are 1024 samples
        n = min(len(got), len(reference))
        assert np.corrcoef(got[:n], reference[:n])[0, 1] > 0.95


def test_missing_ffmpeg_is_named(audio_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(audio_module.shutil, "which", lambda name: None)
    fake = tmp_path / "clip.m4a"
    fake.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(64))
    with pytest.raises(MissingDecoderError, match="ffmpeg"):
        load_audio(fake)


def _truncate(source, tmp_path, keep: float):
    data = source.read_bytes()
    target = tmp_path / f"cut_{source.name}"
    target.write_bytes(data[: int(len(data) * keep)])
    return target


@pytest.mark.parametrize(
    "clip", ["speech_16k_mono.wav", "speech_22k.flac", "speech_24k.mp3", "speech_48k.ogg"]
)
def test_truncated_files_are_reported(clip, audio_dir, tmp_path):
    with pytest.raises(AudioDecodeError, match="truncated") as err:
        load_audio(_truncate(audio_dir / clip, tmp_path, 0.5))
    assert "\n" not in str(err.value)


def test_streamed_wav_with_unknown_length_is_not_truncated(audio_dir):
    data = bytearray((audio_dir / "odd_length_16k.wav").read_bytes())
    index = data.index(b"data")
    data[index + 4 : index + 8] = b"\xff\xff\xff\xff"  # as ffmpeg writes to a pipe
    assert load_audio(bytes(data)).shape == (24001,)


def test_missing_file(tmp_path):
    with pytest.raises(AudioFileNotFoundError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioFileNotFoundError, match="directory"):
        load_audio(tmp_path)


def test_empty_file_and_empty_bytes(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudioError):
        load_audio(empty)
    with pytest.raises(EmptyAudioError):
        load_audio(b"")
    with pytest.raises(EmptyAudioError):
        load_audio(io.BytesIO())


def test_wav_with_zero_samples(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        load_audio(path)


def test_garbage_is_not_audio(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AudioDecodeError) as err:
        load_audio(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("array", "error"),
    [
        (np.array([0.0, np.nan, 0.1], dtype=np.float32), InvalidSamplesError),
        (np.array([0.0, np.inf], dtype=np.float32), InvalidSamplesError),
        (np.zeros(0, dtype=np.float32), EmptyAudioError),
        (np.zeros((2, 3, 4), dtype=np.float32), InvalidSamplesError),
        (np.array(["a", "b"]), InvalidSamplesError),
    ],
)
def test_bad_arrays(array, error):
    with pytest.raises(error):
        load_audio(array)


def test_every_error_is_an_audio_error_with_one_line(tmp_path):
    for source in (tmp_path / "missing.flac", tmp_path, b"", np.array([np.nan])):
        with pytest.raises(AudioError) as err:
            load_audio(source)
        assert str(err.value)
        assert "\n" not in str(err.value)


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read files without read permission")
    path = tmp_path / "locked.wav"
    path.write_bytes(b"RIFF")
    path.chmod(0)
    with pytest.raises(AudioDecodeError, match="cannot read"):
        load_audio(path)
