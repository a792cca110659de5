"""NeMo's frame VAD (Frame_VAD_Multilingual_MarbleNet_v2.0's config) against ours: the
fixture's `.nemo` through `nemo-mlx-convert`, per-frame speech probabilities within 1e-4
relative error, and NeMo's post-processed speech segments identical, for every setting the
fixture holds (tests/reference/make_vad_fixtures.py)."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from workspace import ROOT

from mlx_audio_frontend import load_audio
from mlx_frame_vad import FrameVAD, PostProcessing, speech_segments
from nemo_mlx_convert import convert_nemo, open_model_directory

FIXTURES = ROOT / "tests" / "fixtures"
VAD = FIXTURES / "vad"
META = json.loads((VAD / "frame_vad_marblenet.json").read_text())
REFERENCE = np.load(VAD / "frame_vad_marblenet.npz")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> FrameVAD:
    target = tmp_path_factory.mktemp("vad") / "model"
    directory = open_model_directory(convert_nemo(VAD / "frame_vad_marblenet.nemo", target).output)
    return FrameVAD.from_nemo(directory.nemo_config, mx.load(str(directory.weights)))


def _audio(name: str) -> mx.array:
    return load_audio(VAD / name if (VAD / name).exists() else FIXTURES / "audio" / name)


@pytest.mark.parametrize("name", META["inputs"])
def test_probabilities_and_segments_equal_nemos(model, name):
    probs = model.speech_probabilities(_audio(name))
    expected = REFERENCE[f"{name}/probs"]
    assert probs.shape == expected.shape == (META["inputs"][name]["frames"],)
    assert np.linalg.norm(probs - expected) / np.linalg.norm(expected) <= 1e-4
    assert model.config.frame_seconds == META["frame_length_in_sec"]
    for setting, params in META["postprocessing"].items():
        table = META["inputs"][name]["segments"][setting]
        ours = model.segments(_audio(name), PostProcessing(**params))
        assert [[s.start, s.end] for s in ours] == [row[:2] for row in table], setting
        # and from NeMo's own probabilities: the post-processing alone
        again = speech_segments(expected, model.config.frame_seconds, PostProcessing(**params))
        assert again == ours


def test_the_defaults_are_nemos_frame_vad_infer_config():
    assert vars(PostProcessing()) == META["postprocessing"]["nemo_defaults"]


def test_the_probabilities_follow_the_audio():
    """Not a constant model: speech frames high, noise frames low (NeMo's own numbers)."""
    stats = META["stats"]
    assert stats["speech_frames_above_0.5"] > 0.9
    assert stats["noise_frames_below_0.3"] > 0.9
    assert len(META["inputs"]["vad_speech_and_noise_16k.flac"]["segments"]["nemo_defaults"]) == 2
