"""Live speaker labels against NeMo's live path: speaker-tagged streaming ASR (serial).

The reference (tests/reference/make_live_speaker_fixture.py, NeMo 3.0.0) ran NeMo's
`SpeakerTaggedASR.perform_serial_streaming_stt_spk` over a clip, chunked by NeMo's
`CacheAwareStreamingAudioBuffer`, with the committed cache-aware RNNT fixture
(nemotron-speech-streaming-en-0.6b) and streaming Sortformer fixture
(diar_streaming_sortformer_4spk-v2), for two ASR contexts. Held to it:

- mlx-diarization's `LiveDiarization`, fed NeMo's chunks (the buffer's features, cut as the
  buffer cuts them): every chunk's speaker probabilities (relative error <= 1e-4);
- parakeet's `transcribe_stream(..., diarize=...)` fed the clip in 0.1 s pieces: NeMo's token
  ids, its probabilities, and every word NeMo labelled, with its frames and speaker
  (identical), on the final transcript's words too; the CLI's `--streaming --diarize` JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import mlx_diarization
import nemo_mlx_parakeet as parakeet
from mlx_audio_frontend import load_audio
from nemo_mlx_convert import convert_nemo

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT / "fixtures"
REFERENCE = FIXTURES / "diarization" / "live_speakers"
META = json.loads(REFERENCE.with_suffix(".json").read_text())
CONTEXTS = sorted(META["contexts"])
ASR = ROOT.parent / META["asr_fixture"]
DIAR = ROOT.parent / META["diar_fixture"]


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    with np.load(REFERENCE.with_suffix(".npz")) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def diar_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("live") / "sortformer"
    convert_nemo(DIAR, directory)
    return directory


def diarizer(diar_dir: Path) -> mlx_diarization.Diarizer:
    """The fixture's Sortformer; its config holds the reference's speaker-cache settings."""
    loaded = mlx_diarization.load(diar_dir)
    settings = {k: getattr(loaded.streaming, k) for k in META["sortformer_modules"]}
    assert settings == META["sortformer_modules"]
    return loaded


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> parakeet.Parakeet:
    cache = tmp_path_factory.mktemp("cache")
    return parakeet.load(str(ASR), cache_dir=cache, dtype="float32", verbose=False)


def clip() -> np.ndarray:
    pieces = META["clip"]["pieces"]
    parts = [np.array(load_audio(FIXTURES / "audio" / f))[a:b] for f, a, b in pieces]
    samples = np.concatenate(parts).astype(np.float32)
    assert len(samples) == META["clip"]["num_samples"]
    return samples


def nemo_chunks(features: np.ndarray, record: dict) -> list[tuple[np.ndarray, int]]:
    """NeMo's buffer's chunks, cut from its features as `CacheAwareStreamingAudioBuffer`
    cuts them (the first chunk and shift, then the later ones, each after its pre-encode
    cache, zeros first where too few frames precede); checked against NeMo's chunk sums."""
    sizes, shifts = record["chunk_size"], record["shift_size"]
    caches = record["pre_encode_cache_size"]
    chunks, index = [], 0
    for number, step in enumerate(record["steps"]):
        later = int(number > 0)
        piece = features[index : index + sizes[later]]
        before = features[max(0, index - caches[later]) : index]
        zeros = np.zeros((caches[later] - before.shape[0], features.shape[1]), np.float32)
        chunk = np.concatenate([zeros, before, piece])
        assert chunk.shape[0] == step["chunk_frames"] == step["chunk_length"]
        assert abs(float(chunk.astype(np.float64).sum()) - step["chunk_sum"]) < 1e-2
        chunks.append((chunk, step["drop"]))
        index += shifts[later]
    return chunks


def relative_error(ours: np.ndarray, nemo: np.ndarray) -> float:
    return float(np.linalg.norm(ours - nemo) / max(np.linalg.norm(nemo), 1e-12))


@pytest.mark.parametrize("context", CONTEXTS)
def test_live_diarization_equals_nemo_chunk_by_chunk(diar_dir, arrays, context):
    record = META["contexts"][context]
    nemo = arrays[f"{context}/preds"]
    live = diarizer(diar_dir).live()
    done = 0
    for chunk, drop in nemo_chunks(arrays["features"], record):
        preds = live.step(chunk, drop)
        assert relative_error(preds, nemo[done : done + len(preds)]) <= 1e-4
        done += len(preds)
    assert done == nemo.shape[0] == record["preds_frames"]
    assert relative_error(live.probabilities, nemo) <= 1e-4


def stream(model, diarize, context: str, piece: int = 1600):
    samples = clip()
    left, right = (int(v) for v in context.split("_"))
    with model.transcribe_stream(context=[left, right], diarize=diarize) as live:
        for first in range(0, len(samples), piece):
            live.add_audio(samples[first : first + piece])
        transcript = live.finalize()
    return live, transcript


@pytest.mark.parametrize("context", CONTEXTS)
def test_stream_words_carry_nemo_live_speakers(model, diar_dir, arrays, context):
    record = META["contexts"][context]
    live, transcript = stream(model, diarizer(diar_dir), context)
    assert [t.id for t in live.head.stream.tokens] == record["ids"]
    assert relative_error(live.live.diarization.probabilities, arrays[f"{context}/preds"]) <= 1e-4
    ours = [[w.text, w.frame_start, w.frame_end, w.speaker] for w in live.live.words]
    nemo = [[w["word"], w["frame_stt"], w["frame_end"], w["speaker"]] for w in record["words"]]
    assert ours == nemo
    assert len(record["speakers"]) > 1  # the labels depend on the audio
    assert live.last_update.speakers == [w["speaker"] for w in record["words"]]
    assert len(transcript.words) == len(nemo)
    assert [w.speaker for w in transcript.words] == [w["speaker"] for w in record["words"]]
    assert all(w.speaker == s.speaker for s in transcript.segments for w in s.words)


def test_offline_sortformer_is_refused_for_live_labels(model, tmp_path):
    directory = tmp_path / "offline"
    convert_nemo(FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.nemo", directory)
    with pytest.raises(parakeet.ParakeetError, match="streaming Sortformer"):
        model.transcribe_stream(diarize=mlx_diarization.load(directory))


def test_cli_streaming_diarize_writes_nemo_speakers(tmp_path):
    """`parakeet --streaming --diarize SORTFORMER`: the JSON's words carry NeMo's live
    speakers (the fixture's config holds the reference's speaker-cache settings), and the
    printed lines show them."""
    context = CONTEXTS[0]
    record = META["contexts"][context]
    audio = tmp_path / "clip.wav"
    soundfile.write(audio, clip(), 16000, subtype="FLOAT")
    left, right = context.split("_")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(audio), "--model", str(ASR),
         "--cache-dir", str(tmp_path / "cache"), "--dtype", "float32",
         "--streaming", "--context", left, right, "--diarize", str(DIAR),
         "--output-dir", str(out), "--output-format", "json", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    words = json.loads((out / "clip.json").read_text())["words"]
    assert [w["speaker"] for w in words] == [w["speaker"] for w in record["words"]]
    assert "[speaker_" in result.stdout


def test_cli_refuses_an_offline_sortformer_live_in_one_line(tmp_path):
    audio = tmp_path / "clip.wav"
    soundfile.write(audio, clip()[:16000], 16000, subtype="FLOAT")
    offline = FIXTURES / "checkpoints" / "diar_sortformer_4spk-v1.nemo"
    result = subprocess.run(
        [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(audio), "--model", str(ASR),
         "--cache-dir", str(tmp_path / "cache"), "--streaming", "--diarize", str(offline),
         "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "streaming Sortformer" in result.stderr
