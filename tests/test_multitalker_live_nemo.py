"""Live parity: per-speaker transcripts of the multitalker fixture against NeMo itself.

NeMo's `EncDecMultiTalkerRNNTBPEModel` restored from the committed fixture
(tests/reference/make_multitalker_fixture.py) decodes a test clip after
`set_speaker_targets(target, background)` for activity the fixture does not hold: random
soft activity, binary targets (NeMo's `binary_diar_preds`), and activity shorter and
longer than the encoder's frames (NeMo's `solve_length_mismatch` pads on the left or keeps
the last frames); and NeMo's parallel streaming (`SpeakerTaggedASR`, through the fixture
script's `streaming`) on activity where speakers stop and return, with and without cache
gating. `transcribe_speakers` must give NeMo's ids for every speaker. Runs where NeMo is
importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import nemo_mlx_parakeet as parakeet
from mlx_audio_frontend import load_audio

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch")
models = pytest.importorskip("nemo.collections.asr.models")

ROOT = Path(__file__).resolve().parent
FIXTURE = ROOT / "fixtures" / "checkpoints" / "multitalker-parakeet-streaming-0.6b-v1.nemo"
CLIP = ROOT / "fixtures" / "audio" / "speech_16k_mono.wav"
SPEAKERS = 3


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    return np.array(load_audio(CLIP, 16000))


@pytest.fixture(scope="module")
def nemo_model():
    model = models.ASRModel.restore_from(str(FIXTURE), map_location="cpu").eval()
    contexts = model.cfg.encoder.att_context_size
    model.encoder.set_default_att_context_size(list(contexts[0]))
    return model


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> parakeet.Parakeet:
    cache = tmp_path_factory.mktemp("cache")
    return parakeet.load(str(FIXTURE), cache_dir=cache, dtype="float32", verbose=False)


def _nemo_ids(model, signal: np.ndarray, activity: np.ndarray, speaker: int, binary: bool):
    others = [i for i in range(activity.shape[1]) if i != speaker]
    target = activity[:, speaker]
    if binary:
        target = (target > 0.5).astype(np.float32)
    background = (activity[:, others] > 0.5).any(-1).astype(np.float32)
    model.set_speaker_targets(torch.from_numpy(target[None]), torch.from_numpy(background[None]))
    with torch.no_grad():
        encoded, length = model.forward(
            input_signal=torch.from_numpy(signal[None]),
            input_signal_length=torch.tensor([len(signal)]),
        )
        (hyp,) = model.decoding.rnnt_decoder_predictions_tensor(
            encoded, length, return_hypotheses=True
        )
    model.clear_speaker_targets()
    return [int(i) for i in hyp.y_sequence], int(length[0])


@pytest.mark.parametrize(
    ("case", "extra", "binary"),
    [("soft", 0, False), ("binary", 0, True), ("shorter", -10, False), ("longer", 7, False)],
)
def test_speakers_equal_nemo(nemo_model, ours, signal, case, extra, binary):
    frames = _nemo_ids(nemo_model, signal, np.ones((1, 1), np.float32), 0, False)[1]
    rng = np.random.default_rng(len(case))
    smooth = np.repeat(rng.random((frames // 8 + 2, SPEAKERS)), 8, axis=0)
    activity = smooth[: frames + extra].astype(np.float32)
    results = parakeet.transcribe_speakers(ours, signal, activity, binary=binary)
    expected = [_nemo_ids(nemo_model, signal, activity, s, binary)[0] for s in range(SPEAKERS)]
    assert [[t.id for t in r.transcript.tokens] for r in results] == expected
    assert len({tuple(e) for e in expected}) > 1, "the speakers should differ"


def _reference_script():
    sys.path.insert(0, str(ROOT / "reference"))
    import make_multitalker_fixture

    return make_multitalker_fixture


@pytest.mark.parametrize("gating", [True, False], ids=["gated", "ungated"])
@pytest.mark.parametrize("context", [[70, 13], [70, 1]], ids=["70_13", "70_1"])
def test_streaming_speakers_equal_nemo(nemo_model, ours, signal, context, gating):
    """NeMo's `SpeakerTaggedASR` parallel streaming on activity where speakers stop and come
    back (a gated instance resumes with the caches it had), with and without cache gating."""
    script = _reference_script()
    diar_model = models.SortformerEncLabelModel.restore_from(
        str(script.DIAR_FIXTURE), map_location="cpu"
    ).eval()
    frames = _nemo_ids(nemo_model, signal, np.ones((1, 1), np.float32), 0, False)[1]
    turns = np.zeros((frames, 4), dtype=np.float32)
    t = np.arange(frames)
    turns[:, 0] = np.where((t // 20) % 2 == 0, 0.8, 0.2)  # on and off every 1.6 s
    turns[:, 1] = np.where((t // 20) % 2 == 1, 0.7, 0.1)
    turns[:, 2] = np.where(t > frames - 30, 0.9, 0.0)  # only at the end
    nemo = script.streaming(nemo_model, diar_model, signal, turns, context, gating)
    nemo_model.encoder.set_default_att_context_size(context)
    results = parakeet.transcribe_speakers(
        ours, signal, turns, streaming=True, context=context, cache_gating=gating
    )
    for result in results:
        expected = nemo["speakers"].get(str(result.speaker), {"ids": []})["ids"]
        assert [t.id for t in result.transcript.tokens] == expected, result.speaker
