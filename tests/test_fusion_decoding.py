"""Greedy transducer decoding with shallow fusion, against NeMo's on NeMo-built models.

`tests/reference/make_fusion_fixtures.py` ran NeMo 3.0.0's `greedy_batch` decoding of the
`tdt` and `rnnt` fixture models with an n-gram LM (`ngram_lm_model`, lm3.arpa), a boosting
tree (`boosting_tree`, key phrases through the models' tokenizer) and both, on NeMo's own
encoder output of each clip, and recorded the ids, frames and TDT durations; the fixture
shows that fusion changed the ids of several clips. Ours (mlx-asr-fusion's models, given to
mlx-transducer's greedy search) must make the same decisions, clip by clip and batched.
(NeMo's `transcribe` on the speech clips gave the clip-by-clip ids: the script checks it.)
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from fusion_inputs import fusion_models

from mlx_transducer import Transducer
from nemo_mlx_convert import convert_nemo, open_model_directory

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FUSION = json.loads((FIXTURES / "fusion" / "fusion.json").read_text())
DECODING = FUSION["decoding"]
SETTINGS = [s for s in DECODING["results"][DECODING["models"][0]]["settings"] if s != "plain"]


def load_transducer(name: str, clips: list[str], tmp: Path) -> tuple[Transducer, dict]:
    """The fixture model's transducer (converted as users convert) and NeMo's encoder
    output of each clip."""
    convert_nemo(FIXTURES / "models" / f"{name}.nemo", tmp / name)
    directory = open_model_directory(tmp / name)
    transducer = Transducer.from_nemo(directory.nemo_config, mx.load(str(directory.weights)))
    with np.load(FIXTURES / "models" / f"{name}.npz") as data:
        encoded = {clip: mx.array(data[f"{Path(clip).stem}/encoder"]) for clip in clips}
    return transducer, encoded


def padded_batch(encoded: dict[str, mx.array]) -> tuple[mx.array, mx.array]:
    """The clips' encoder outputs as one zero-padded batch, and their lengths."""
    lengths = [e.shape[0] for e in encoded.values()]
    batch = mx.zeros((len(encoded), max(lengths), next(iter(encoded.values())).shape[1]))
    for i, e in enumerate(encoded.values()):
        batch[i, : e.shape[0]] = e
    return batch, mx.array(lengths)


@pytest.fixture(scope="module", params=DECODING["models"])
def model(request, tmp_path_factory):
    name = request.param
    clips = DECODING["results"][name]["clips"]
    return name, *load_transducer(name, clips, tmp_path_factory.mktemp("converted"))


@pytest.mark.parametrize("setting_name", SETTINGS)
def test_fused_greedy_equals_nemos_clip_by_clip(model, setting_name):
    name, transducer, encoded = model
    expected = DECODING["results"][name]["settings"][setting_name]
    assert expected["changed"], "the fixture shows fusion changing NeMo's output"
    fusion = fusion_models(expected["fusion"], transducer.config.blank_id)
    for clip, frames in encoded.items():
        (hyp,) = transducer.greedy(frames[None], fusion=fusion)
        want = expected["clips"][clip]
        assert hyp.ids == want["ids"], (setting_name, clip)
        assert hyp.frames == want["frames"], (setting_name, clip)
        if transducer.config.is_tdt:
            assert hyp.durations == want["durations"], (setting_name, clip)


@pytest.mark.parametrize("setting_name", SETTINGS)
def test_fused_greedy_batched_equals_nemos(model, setting_name):
    name, transducer, encoded = model
    expected = DECODING["results"][name]["settings"][setting_name]
    fusion = fusion_models(expected["fusion"], transducer.config.blank_id)
    hyps = transducer.greedy(*padded_batch(encoded), fusion=fusion)
    for clip, hyp in zip(encoded, hyps, strict=True):
        # NeMo's batched TDT records some durations from other items' joint calls
        # (tests/reference/README.md): ids and frames are the batch's, durations the clip's
        assert hyp.ids == expected["batched"][clip]["ids"], (setting_name, clip)
        assert hyp.frames == expected["batched"][clip]["frames"], (setting_name, clip)
        if transducer.config.is_tdt:
            assert hyp.durations == expected["clips"][clip]["durations"], (setting_name, clip)
