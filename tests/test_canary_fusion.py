"""Canary beam search with shallow fusion, against NeMo's on a NeMo-built Canary checkpoint.

`tests/reference/make_canary_fusion_fixtures.py` ran NeMo 3.0.0's AED beam search (beam 4,
n-best) of the canary-180m-flash checkpoint fixture without fusion, with an n-gram LM
(`beam_fusion/canary_lm3.arpa`), a boosting tree (key phrases through the model's tokenizer,
`source_lang` en) and both (`BeamSearchSequenceGeneratorWithFusionModels`), on NeMo's own
encoder output of each clip, for an ASR and a translation prompt; fusion changed NeMo's best
ids on most prompt/clip pairs. Ours (mlx-asr-fusion's models given to mlx-seq2seq-decoder's
`beam_search(..., fusion=...)`) must give the same n-best: ids identical, scores to 1e-3.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import nemo_mlx_canary as canary
from mlx_asr_fusion import BoostingTree, BoostingTreeConfig, FusionModel, NGramLM
from mlx_seq2seq_decoder import beam_search, greedy_search
from nemo_mlx_convert import convert_nemo

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FUSION = json.loads((FIXTURES / "beam_fusion" / "canary_fusion.json").read_text())
CHECKPOINT = FIXTURES / FUSION["checkpoint"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("canary") / "model"
    convert_nemo(CHECKPOINT.with_suffix(".nemo"), out)
    loaded = canary.load(str(out), dtype="float32", verbose=False)
    with np.load(CHECKPOINT.with_suffix(".npz")) as data:
        encoded = {clip: data[f"encoded/{Path(clip).stem}"] for clip in FUSION["clips"]}
    return loaded, encoded


def fusion_models(setting: dict) -> list[FusionModel]:
    """NeMo's order: the LM, then the boosting tree (NeMo's phrase ids as the tokenizer)."""
    vocab = FUSION["vocab_size"]
    models = []
    if "lm" in setting:
        models.append(FusionModel(NGramLM.from_arpa(FIXTURES / FUSION["lm"], vocab), setting["lm"]))
    if "boost" in setting:
        tree = FUSION["boosting_tree"]
        config = BoostingTreeConfig(key_phrases_list=tree["key_phrases_list"],
                                    depth_scaling=tree["depth_scaling"])  # fmt: skip
        built = BoostingTree.from_config(config, FUSION["phrase_ids"].__getitem__, vocab)
        models.append(FusionModel(built, setting["boost"]))
    return models


def test_fixture_shows_fusion_changing_nemos_beam():
    for name, result in FUSION["results"].items():
        assert name == "plain" or len(result["changed"]) >= 2, name


@pytest.mark.parametrize("setting_name", list(FUSION["results"]))
def test_fused_beam_equals_nemos(model, setting_name):
    loaded, encoded = model
    expected = FUSION["results"][setting_name]
    fusion = fusion_models(expected["fusion"])
    tok = loaded.tokenizer
    assert (tok.eos_id, tok.pad_id) == (FUSION["eos_id"], FUSION["pad_id"])
    for prompt, ids in FUSION["prompts"].items():
        for clip, frames in encoded.items():
            (result,) = beam_search(
                loaded.decoder, mx.array(frames[None]), mx.array([len(frames)]), [ids],
                eos_id=tok.eos_id, pad_id=tok.pad_id, beam_size=FUSION["beam_size"],
                length_penalty=expected["length_penalty"],
                max_delta=expected["max_generation_delta"], fusion=fusion,
            )  # fmt: skip
            want = expected["nbest"][prompt][clip]
            assert [b[0] for b in result.beams] == [h["ids"] for h in want], (prompt, clip)
            np.testing.assert_allclose(
                [b[1] for b in result.beams], [h["score"] for h in want], rtol=0, atol=1e-3
            )


def test_greedy_refuses_fusion_as_nemo_does(model):
    loaded, encoded = model
    frames = next(iter(encoded.values()))
    ids = next(iter(FUSION["prompts"].values()))
    with pytest.raises(ValueError, match="beam"):
        greedy_search(loaded.decoder, mx.array(frames[None]), mx.array([len(frames)]), [ids],
                      eos_id=loaded.tokenizer.eos_id, fusion=fusion_models({"lm": 0.3}))  # fmt: skip
