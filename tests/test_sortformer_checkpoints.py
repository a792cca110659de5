"""NVIDIA's Sortformer diarizers, offline and streaming, against NeMo itself.

One NeMo-made fixture per checkpoint (tests/reference/make_sortformer_fixtures.py, NeMo 3.0.0):
diar_sortformer_4spk-v1 (offline) and diar_streaming_sortformer_4spk-v2 (speaker cache and
FIFO), each built from its NeMo recipe with only sizes shrunk. The `.nemo` is converted with
`nemo-mlx-convert` and loaded with `mlx_diarization.load`; held to NeMo: the features (<= 1e-4),
the per-frame speaker probabilities (relative error <= 1e-4) of `forward` and of `diarize()`,
and `diarize()`'s post-processed speaker lines, identical; the streaming model for every chunk
setting the fixture records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mlx_diarization
from nemo_mlx_convert import convert_nemo

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHECKPOINTS = FIXTURES / "checkpoints"


def _clips(meta: dict) -> dict[str, np.ndarray]:
    """The fixture's clips, rebuilt from the WAVs as the script builds them (the pieces read
    with our loader, which reads 16 kHz WAVs exactly as NeMo's does)."""
    from mlx_audio_frontend import load_audio

    clips = {}
    for name, pieces in meta["clips"].items():
        parts = [np.array(load_audio(FIXTURES / "audio" / f))[a:b] for f, a, b in pieces]
        if name == "overlap":
            at = meta["overlap_at_sample"]
            first, second = parts
            mixed = np.zeros(max(len(first), at + len(second)) + 8000, np.float32)
            mixed[: len(first)] += first
            mixed[at : at + len(second)] += np.float32(0.8) * second
            clips[name] = mixed
        else:
            clips[name] = np.concatenate(parts).astype(np.float32)
    return clips


class Fixture:
    def __init__(self, name: str, directory: Path) -> None:
        self.meta = json.loads((CHECKPOINTS / f"{name}.json").read_text())
        with np.load(CHECKPOINTS / f"{name}.npz") as data:
            self.arrays = {key: data[key] for key in data.files}
        self.diarizer = mlx_diarization.load(directory)
        self.clips = _clips(self.meta)


def _converted(tmp_path_factory, name: str) -> Fixture:
    directory = tmp_path_factory.mktemp("sortformer") / name
    convert_nemo(CHECKPOINTS / f"{name}.nemo", directory)
    return Fixture(name, directory)


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> Fixture:
    return _converted(tmp_path_factory, "diar_sortformer_4spk-v1")


@pytest.fixture(scope="module")
def streaming(tmp_path_factory) -> Fixture:
    return _converted(tmp_path_factory, "diar_streaming_sortformer_4spk-v2")


def relative_error(ours: np.ndarray, nemo: np.ndarray) -> float:
    return float(np.linalg.norm(ours - nemo) / max(np.linalg.norm(nemo), 1e-12))


def check_clip(fixture: Fixture, prefix: str, clip: str, record: dict) -> None:
    samples = fixture.clips[clip]
    assert len(samples) == record["num_samples"]
    features = np.array(fixture.diarizer.features(samples)[0])
    nemo_features = fixture.arrays[f"{clip}/features"]
    assert np.abs(features - nemo_features[: len(features)]).max() <= 1e-4
    preds = fixture.diarizer.probabilities(samples)
    nemo = fixture.arrays[f"{prefix}{clip}/preds"]
    assert preds.shape == nemo.shape == (record["frames"], 4)
    assert relative_error(preds, nemo) <= 1e-4
    if not record["diarize_preds_equal_forward"]:
        assert relative_error(preds, fixture.arrays[f"{prefix}{clip}/diarize_preds"]) <= 1e-4
    assert [turn.line for turn in fixture.diarizer.diarize(samples)] == record["diarize_lines"]


@pytest.mark.parametrize("clip", ["long", "overlap", "short"])
def test_offline_probabilities_and_segments_equal_nemo(offline, clip):
    assert not offline.diarizer.model.config.streaming_mode
    check_clip(offline, "", clip, offline.meta["forward"][clip])


SETTINGS = ["recipe", "fifo", "low_latency"]


@pytest.mark.parametrize("clip", ["long", "overlap", "short"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_streaming_chunk_by_chunk_equals_nemo(streaming, setting, clip):
    recorded = streaming.meta["settings"][setting]
    config = streaming.diarizer.streaming
    streaming.diarizer.streaming = config.with_chunks(**recorded["values"])
    try:
        check_clip(streaming, f"{setting}/", clip, recorded["clips"][clip])
    finally:
        streaming.diarizer.streaming = config


def test_fixtures_depend_on_the_audio(offline, streaming):
    """Every speaker crosses 0.5 on some frames and not on others (asserted when made)."""
    stats = [offline.meta["stats"]] + [s["stats"] for s in streaming.meta["settings"].values()]
    for stat in stats:
        assert all(0.02 < share < 0.98 for share in stat["active_share"]), stat
    assert sorted(streaming.meta["settings"]) == sorted(SETTINGS)
