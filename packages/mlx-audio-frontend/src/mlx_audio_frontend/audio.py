"""Turning files, bytes and arrays into mono float32 samples at the model's rate.

The path mirrors NeMo's `AudioSegment.from_file` so that features match NeMo's on the same
file: libsndfile decodes (WAV, FLAC, OGG, MP3 and the rest it knows), channels are averaged,
then soxr resamples at its HQ setting to ceil(n * ratio) samples, as librosa does for NeMo.
Formats libsndfile cannot read (M4A/AAC, video containers, ...) go through ffmpeg when it is
installed.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import BinaryIO

import mlx.core as mx
import numpy as np
import soundfile as sf
import soxr

from .errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    EmptyAudioError,
    InvalidSamplesError,
    MissingDecoderError,
)
from .wav import read_pcm_wav

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | np.ndarray | mx.array

FFMPEG_HINT = "install ffmpeg (apt install ffmpeg / brew install ffmpeg) to decode it"


def load_audio(source: AudioSource, sr: int = 16000, *, source_sr: int | None = None) -> mx.array:
    """Mono float32 samples in [-1, 1] at `sr` Hz, as a 1-D `mx.array` (`load_samples`'s,
    which says what `source` may be and what is raised)."""
    return mx.array(load_samples(source, sr, source_sr=source_sr))


def load_samples(
    source: AudioSource, sr: int = 16000, *, source_sr: int | None = None
) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at `sr` Hz, as a 1-D numpy array (what a model's
    batching pads on the host; `load_audio` gives them as an `mx.array`).

    `source` is a path, the bytes of an encoded file, a binary file object, or an array of
    samples (numpy or MLX; (samples,), (samples, channels) or (channels, samples) when the
    channel axis is the short one). An array is taken to be at `source_sr` Hz, or at `sr` when
    `source_sr` is not given. Integer arrays are scaled by their type's range.

    Raises an `AudioError` subclass with a one-line message for anything that is not usable
    audio: a missing path, a directory, an unknown or corrupt or truncated file, no samples,
    or samples that are not finite.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if isinstance(source, (np.ndarray, mx.array)):
        samples, rate, label = _from_array(source, source_sr or sr), source_sr or sr, "audio array"
    else:
        if source_sr is not None:
            raise ValueError("source_sr applies to arrays; files carry their own sample rate")
        samples, rate, label = _decode(source)
    samples = _to_mono(samples)
    if samples.size == 0:
        raise EmptyAudioError(f"{label} contains no audio samples")
    if not np.all(np.isfinite(samples)):
        raise InvalidSamplesError(f"{label} contains NaN or infinite samples")
    return resample(samples, rate, sr)


def resample(samples: np.ndarray, source_sr: int, target_sr: int) -> np.ndarray:
    """soxr HQ resampling to exactly ceil(n * target / source) samples, as NeMo's librosa path."""
    if source_sr == target_sr:
        return np.ascontiguousarray(samples, dtype=np.float32)
    out = soxr.resample(np.asarray(samples, dtype=np.float32), source_sr, target_sr, quality="HQ")
    size = math.ceil(samples.shape[0] * float(target_sr) / source_sr)
    if out.shape[0] < size:
        out = np.pad(out, (0, size - out.shape[0]))
    return np.ascontiguousarray(out[:size], dtype=np.float32)


def _from_array(array: np.ndarray | mx.array, rate: int) -> np.ndarray:
    samples = np.asarray(array)
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    if samples.ndim == 2 and samples.shape[0] < samples.shape[1] and samples.shape[0] <= 8:
        samples = samples.T  # (channels, samples) -> (samples, channels)
    if samples.ndim not in (1, 2):
        raise InvalidSamplesError(f"audio array must be 1-D or 2-D, got shape {samples.shape}")
    if samples.dtype.kind in "iu":
        return _int_to_float(samples)
    if samples.dtype.kind != "f":
        raise InvalidSamplesError(f"audio array has unsupported dtype {samples.dtype}")
    return samples.astype(np.float32, copy=False)


def _int_to_float(samples: np.ndarray) -> np.ndarray:
    info = np.iinfo(samples.dtype)
    if info.min == 0:  # unsigned PCM is offset binary
        mid = (int(info.max) + 1) // 2
        return ((samples.astype(np.float64) - mid) / mid).astype(np.float32)
    return (samples.astype(np.float64) / -float(info.min)).astype(np.float32)


def _to_mono(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 2:
        return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    return samples


# ---------------------------------------------------------------------------- decoding


def _decode(
    source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
) -> tuple[np.ndarray, int, str]:
    """(samples as (frames, channels) float32, sample rate, a label for messages)."""
    if isinstance(source, (bytes, bytearray, memoryview)) or hasattr(source, "read"):
        label = "audio stream" if hasattr(source, "read") else "audio bytes"
        data = bytes(source.read() if hasattr(source, "read") else source)
        if not data:
            raise EmptyAudioError(
                f"{label} are empty" if label.endswith("bytes") else f"{label} is empty"
            )
        plain = read_pcm_wav(data)  # no libsndfile callbacks for the common case
        if plain is not None:
            return (*plain, label)
        return (*_decode_file(io.BytesIO(data), _BytesReader(data), label, None), label)
    path = Path(source)
    label = str(path)
    if not path.exists():
        raise AudioFileNotFoundError(f"{label}: no such file")
    if path.is_dir():
        raise AudioFileNotFoundError(f"{label}: is a directory, not an audio file")
    try:
        handle = path.open("rb")
    except OSError as err:
        raise AudioDecodeError(f"{label}: cannot read ({err.strerror or err})") from None
    with handle:
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{label}: file is empty")
        return (*_decode_file(handle, _FileReader(handle), label, path), label)


class _BytesReader:
    """Random access to the encoded bytes, for the container checks below."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read(self, offset: int, count: int) -> bytes:
        return self._data[offset : offset + count]


class _FileReader:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.size = os.fstat(handle.fileno()).st_size

    def read(self, offset: int, count: int) -> bytes:
        self._handle.seek(offset)
        return self._handle.read(count)


def _decode_file(
    stream: BinaryIO, reader: _BytesReader | _FileReader, label: str, path: Path | None
) -> tuple[np.ndarray, int]:
    try:
        with sf.SoundFile(stream) as handle:
            return _read_soundfile(handle, reader, label)
    except sf.LibsndfileError as err:
        reason = _libsndfile_reason(err)
    data = None if path is not None else reader.read(0, reader.size)
    return _decode_with_ffmpeg(data, label, path, reason)


def _read_soundfile(
    handle: sf.SoundFile, reader: _BytesReader | _FileReader, label: str
) -> tuple[np.ndarray, int]:
    declared = handle.frames
    kind = handle.format
    try:
        samples = handle.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioDecodeError(
            f"{label}: corrupt or truncated {kind} data ({_libsndfile_reason(err)})"
        ) from None
    truncated = samples.shape[0] < declared
    if kind == "WAV":
        truncated = truncated or _wav_is_truncated(reader)
    elif kind == "OGG":
        truncated = truncated or not _ogg_has_end_of_stream(reader)
    if truncated:
        raise AudioDecodeError(
            f"{label}: truncated {kind} file (the data stops before its declared end)"
        )
    return samples, handle.samplerate


def _libsndfile_reason(err: Exception) -> str:
    text = str(err)
    if ": " in text and text.startswith("Error opening"):
        text = text.rsplit(": ", 1)[-1]
    return text.strip().rstrip(".") or "unknown error"


def _wav_is_truncated(reader: _BytesReader | _FileReader) -> bool:
    """Whether a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile silently shortens such files; a size of 0 or 0xFFFFFFFF marks a stream
    written without knowing its length, which is not truncation.
    """
    header = reader.read(0, 12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return False
    offset = 12
    while offset + 8 <= reader.size:
        chunk = reader.read(offset, 8)
        chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:8])[0]
        if chunk_id == b"data":
            return size not in (0, 0xFFFFFFFF) and offset + 8 + size > reader.size
        offset += 8 + size + (size & 1)
    return True  # the chunks end before any data chunk


def _ogg_has_end_of_stream(reader: _BytesReader | _FileReader) -> bool:
    """Whether the last Ogg page is complete and carries the end-of-stream flag."""
    tail_start = max(0, reader.size - 70_000)  # an Ogg page is at most 65,307 bytes
    tail = reader.read(tail_start, reader.size - tail_start)
    start = tail.rfind(b"OggS")
    if start < 0 or start + 27 > len(tail):
        return False
    header_type, segments = tail[start + 5], tail[start + 26]
    if start + 27 + segments > len(tail):
        return False
    body = sum(tail[start + 27 : start + 27 + segments])
    return bool(header_type & 0x04) and start + 27 + segments + body <= len(tail)


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def _decode_with_ffmpeg(
    data: bytes | None, label: str, path: Path | None, reason: str
) -> tuple[np.ndarray, int]:
    """Decode what libsndfile cannot: native rate and channels, 32-bit float, first audio stream."""
    if not ffmpeg_available():
        raise MissingDecoderError(
            f"{label}: not a format libsndfile reads ({reason}); {FFMPEG_HINT}"
        )
    with tempfile.TemporaryDirectory(prefix="mlx-audio-") as tmp:
        if path is None:  # containers such as MP4 need a seekable input, not a pipe
            path = Path(tmp) / "input"
            path.write_bytes(data)
        rate, channels = _probe(path, label, reason)
        command = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
                   "-f", "f32le", "-acodec", "pcm_f32le", "-"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or result.stderr.strip():
        detail = (
            _first_line(result.stderr, path) or f"ffmpeg exited with status {result.returncode}"
        )
        raise AudioDecodeError(f"{label}: corrupt or truncated audio (ffmpeg: {detail})")
    samples = np.frombuffer(result.stdout, dtype="<f4").astype(np.float32)
    usable = samples.size - samples.size % channels
    return samples[:usable].reshape(-1, channels), rate


def _probe(path: Path, label: str, reason: str) -> tuple[int, int]:
    command = ["ffprobe", "-v", "error", "-select_streams", "a:0",
               "-show_entries", "stream=sample_rate,channels", "-of", "json", str(path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    streams = []
    if result.returncode == 0:
        try:
            streams = json.loads(result.stdout or b"{}").get("streams", [])
        except json.JSONDecodeError:
            streams = []
    if not streams:
        detail = _first_line(result.stderr, path) or "no audio stream"
        raise AudioDecodeError(
            f"{label}: not a readable audio file (libsndfile: {reason}; ffmpeg: {detail})"
        )
    return int(streams[0]["sample_rate"]), int(streams[0]["channels"])


def _first_line(raw: bytes, path: Path) -> str:
    """ffmpeg's first message, without the file name it starts with: the label names the
    input, and a temporary file's name is nobody's business (the server's clients')."""
    lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[0].replace(f"{path}: ", "") if lines else ""
