"""Multitalker ASR against NeMo's: a transcript per speaker from speaker activity.

The fixture (tests/reference/make_multitalker_fixture.py) is NeMo's `EncDecMultiTalkerRNNTBPEModel`
configured as nvidia/multitalker-parakeet-streaming-0.6b-v1 (the nemotron-speech-streaming-en-0.6b
checkpoint fixture with the card's speaker kernels before layer 0 and background kernels),
and NeMo's outputs for four speakers' activity on a 10.2 s clip: offline (forward after
`set_speaker_targets`), without targets (what `transcribe()` runs), and NeMo's parallel
streaming (`SpeakerTaggedASR`) for each of the checkpoint's four lookaheads, with and
without its cache gating.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import nemo_mlx_parakeet as parakeet
from mlx_conformer import SpeakerKernels, SpeakerTargets
from mlx_conformer.speaker import fit_mask
from nemo_mlx_convert import supported_classes
from nemo_mlx_parakeet.speaker_asr import transcribe_by_speaker

ROOT = Path(__file__).resolve().parent
FIXTURE = ROOT / "fixtures" / "checkpoints" / "multitalker-parakeet-streaming-0.6b-v1"
AUDIO = ROOT / "fixtures" / "audio"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(Path(f"{FIXTURE}.json").read_text())


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> parakeet.Parakeet:
    cache = tmp_path_factory.mktemp("cache")
    return parakeet.load(f"{FIXTURE}.nemo", cache_dir=cache, dtype="float32", verbose=False)


@pytest.fixture(scope="module")
def clip(reference) -> np.ndarray:
    """The `long` clip as the fixture script joined it (16 kHz WAV pieces, read exactly)."""
    pieces = reference["clip"]["pieces"]
    signal = np.concatenate([_read(AUDIO / name)[start:end] for name, start, end in pieces])
    assert len(signal) == reference["clip"]["num_samples"]
    return signal


def _read(path: Path) -> np.ndarray:
    from mlx_audio_frontend import load_audio

    return np.array(load_audio(path, 16000))


def test_the_class_converts_and_loads(model, reference):
    assert reference["model_class"] in supported_classes()
    kernels = model.encoder.speaker_kernels
    assert isinstance(kernels, SpeakerKernels)
    assert kernels.indices == (0,)
    assert "bg_spk_kernels" in kernels
    assert reference["nemo_version"] == "3.0.0"


def test_offline_ids_per_speaker_equal_nemo(model, reference, clip):
    activity = np.array(reference["activity"], dtype=np.float32)
    results = parakeet.transcribe_speakers(model, clip, activity)
    assert [r.speaker for r in results] == [0, 1, 2, 3]
    for result in results:
        nemo = reference["offline"][str(result.speaker)]
        assert [t.id for t in result.transcript.tokens] == nemo["ids"], result.speaker
    assert len({tuple(reference["offline"][s]["ids"]) for s in "0123"}) == 4


def test_without_targets_equals_nemo(model, reference, clip):
    """NeMo's model without speaker targets still runs its layer-0 kernels (all-ones target,
    all-zeros background): plain `transcribe` gives that."""
    result = model.transcribe(clip)
    assert [t.id for t in result.tokens] == reference["no_targets"]["ids"]


@pytest.mark.parametrize("context", ["70_13", "70_6", "70_1", "70_0"])
def test_streaming_ids_per_speaker_equal_nemo(model, reference, clip, context):
    activity = np.array(reference["activity"], dtype=np.float32)
    left, right = (int(v) for v in context.split("_"))
    results = parakeet.transcribe_speakers(
        model, clip, activity, streaming=True, context=[left, right], cache_gating=False
    )
    nemo = reference["streaming"][context]["speakers"]
    for result in results:
        ours = [t.id for t in result.transcript.tokens]
        assert ours == nemo[str(result.speaker)]["ids"], (context, result.speaker)


@pytest.mark.parametrize("context", ["70_13", "70_6", "70_1", "70_0"])
def test_gated_streaming_ids_per_speaker_equal_nemo(model, reference, clip, context):
    """NeMo's default cache gating: an instance runs only the chunks where its speaker was
    active in the last two; a speaker NeMo never ran (3) has no tokens."""
    activity = np.array(reference["activity"], dtype=np.float32)
    left, right = (int(v) for v in context.split("_"))
    results = parakeet.transcribe_speakers(
        model, clip, activity, streaming=True, context=[left, right]
    )
    nemo = reference["streaming_gated"][context]["speakers"]
    assert "3" not in nemo
    for result in results:
        ours = [t.id for t in result.transcript.tokens]
        assert ours == nemo.get(str(result.speaker), {"ids": []})["ids"], (context, result.speaker)
    ungated = reference["streaming"][context]["speakers"]
    assert any(nemo[s]["ids"] != ungated[s]["ids"] for s in nemo)


def test_one_speaker_and_bad_activity(model, reference, clip):
    activity = np.array(reference["activity"], dtype=np.float32)
    (only,) = parakeet.transcribe_speakers(model, clip, activity, speakers=[2])
    assert only.speaker == 2
    assert [t.id for t in only.transcript.tokens] == reference["offline"]["2"]["ids"]
    with pytest.raises(parakeet.ParakeetError, match="probabilities"):
        parakeet.transcribe_speakers(model, clip, activity * 2)
    with pytest.raises(parakeet.ParakeetError, match="frames, speakers"):
        parakeet.transcribe_speakers(model, clip, activity[:, 0])
    with pytest.raises(parakeet.ParakeetError, match="not among"):
        parakeet.transcribe_speakers(model, clip, activity, speakers=[4])


def test_mask_lengths_follow_nemo():
    """`solve_length_mismatch`: shorter masks padded on the left with the default, longer
    ones keep their last frames."""
    x = mx.zeros((1, 4, 2))
    short = fit_mask(mx.array([[0.2, 0.3]]), x, 1.0)
    assert np.allclose(np.array(short), [[1.0, 1.0, 0.2, 0.3]])
    long = fit_mask(mx.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]), x, 0.0)
    assert np.allclose(np.array(long), [[0.3, 0.4, 0.5, 0.6]])
    assert np.allclose(np.array(fit_mask(None, x, 0.0)), 0.0)
    assert SpeakerTargets(None).background is None


class _GivenActivity:
    """A diarizer stand-in whose probabilities are the fixture's activity."""

    def __init__(self, activity: np.ndarray, frame_seconds: float = 0.08) -> None:
        self.activity = activity
        self.frame_seconds = frame_seconds

    def probabilities(self, audio) -> np.ndarray:
        return self.activity


def test_by_speaker_merges_the_active_speakers(model, reference, clip):
    """`--diarize` on a multitalker checkpoint: speakers above 0.5 somewhere (3 is not), each
    with its NeMo-equal transcript, words and segments labelled and in time order."""
    activity = np.array(reference["activity"], dtype=np.float32)
    merged = transcribe_by_speaker(model, clip, _GivenActivity(activity))
    per_speaker = parakeet.transcribe_speakers(model, clip, activity, speakers=[0, 1, 2])
    for result in per_speaker:
        label = f"speaker_{result.speaker}"
        assert [w.text for w in merged.words if w.speaker == label] == [
            w.text for w in result.transcript.words
        ]
    assert {w.speaker for w in merged.words} <= {"speaker_0", "speaker_1", "speaker_2"}
    assert [w.start for w in merged.words] == sorted(w.start for w in merged.words)
    assert all(s.speaker is not None for s in merged.segments)
    assert [t.speaker for t in merged.speakers] == [s.speaker for s in merged.segments]
    with pytest.raises(parakeet.ParakeetError, match="same frames"):
        transcribe_by_speaker(model, clip, _GivenActivity(activity, 0.04))


def test_cli_diarize_gives_speakers(tmp_path):
    """The command with a Sortformer fixture: every word has the speaker whose instance
    transcribed it, one of those the diarizer finds active."""
    diarizer = ROOT / "fixtures" / "checkpoints" / "diar_sortformer_4spk-v1.nemo"
    audio = AUDIO / "speech_16k_mono.wav"
    command = [sys.executable, "-m", "nemo_mlx_parakeet.cli", str(audio), "--model",
               f"{FIXTURE}.nemo", "--diarize", str(diarizer), "--cache-dir", str(tmp_path / "c"),
               "--quiet", "--output-format", "json", "--output-dir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "speech_16k_mono.json").read_text())
    assert data["words"]
    assert all(w["speaker"].startswith("speaker_") for w in data["words"])
    bad = subprocess.run([*command, "--decoding", "beam"], capture_output=True, text=True)
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "multitalker" in bad.stderr
