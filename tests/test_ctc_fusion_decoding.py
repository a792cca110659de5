"""Greedy CTC decoding with shallow fusion, against NeMo's on NeMo-built models.

`tests/reference/make_ctc_fusion_fixtures.py` ran NeMo 3.0.0's `greedy_batch` CTC decoding
(`GreedyBatchedCTCInfer`) of the `ctc` model and the hybrid's CTC head with an n-gram LM
(`ngram_lm_model`, lm3.arpa), a boosting tree (`boosting_tree`, the fusion fixtures' key
phrases) and both, on NeMo's own CTC log-probabilities of each clip, and recorded the
per-frame labels; the fixture shows that fusion changed the ids of several clips. Ours
(mlx-asr-fusion's models given to mlx-ctc-decoder's greedy search) must choose the same
label on every frame, clip by clip and batched; the stream (chunk by chunk) too.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from fusion_inputs import FUSION, fusion_models

from mlx_ctc_decoder import greedy_decode
from mlx_ctc_decoder.streaming import GreedyCTCStream

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CTC_FUSION = json.loads((FIXTURES / "fusion" / "ctc_fusion.json").read_text())
RESULTS = CTC_FUSION["results"]
SETTINGS = [s for s in next(iter(RESULTS.values()))["settings"] if s != "plain"]
VOCAB = 128  # the fixture models' tokenizer (the script asserts it)


@pytest.fixture(scope="module", params=list(RESULTS))
def model(request):
    name = request.param
    with np.load(FIXTURES / "models" / f"{name}.npz") as data:
        log_probs = {
            clip: mx.array(data[f"{Path(clip).stem}/ctc_log_probs"])
            for clip in RESULTS[name]["clips"]
        }
    return name, log_probs


def test_the_inputs_are_the_fusion_fixtures():
    """NeMo took the fusion fixtures' LM and phrases (`fusion_inputs`), tokenized alike."""
    assert CTC_FUSION["lm"] == FUSION["decoding"]["lm"]
    assert CTC_FUSION["boosting_tree"] == FUSION["decoding"]["boosting_tree"]
    for results in RESULTS.values():
        assert results["phrase_ids"] == FUSION["phrase_ids"]


@pytest.mark.parametrize("setting_name", SETTINGS)
def test_fused_ctc_greedy_equals_nemos_clip_by_clip(model, setting_name):
    name, log_probs = model
    expected = RESULTS[name]["settings"][setting_name]
    assert expected["changed"], "the fixture shows fusion changing NeMo's output"
    fusion = fusion_models(expected["fusion"], VOCAB)
    for clip, frames in log_probs.items():
        (hyp,) = greedy_decode(frames[None], blank_id=VOCAB, fusion=fusion)
        want = expected["clips"][clip]
        assert hyp.alignment == want["alignment"], (setting_name, clip)
        assert hyp.ids == want["ids"], (setting_name, clip)


@pytest.mark.parametrize("setting_name", SETTINGS)
def test_fused_ctc_greedy_batched_equals_nemos(model, setting_name):
    name, log_probs = model
    expected = RESULTS[name]["settings"][setting_name]
    fusion = fusion_models(expected["fusion"], VOCAB)
    lengths = [p.shape[0] for p in log_probs.values()]
    batch = mx.zeros((len(lengths), max(lengths), VOCAB + 1))
    for i, p in enumerate(log_probs.values()):
        batch[i, : p.shape[0]] = p
    hyps = greedy_decode(batch, mx.array(lengths), blank_id=VOCAB, fusion=fusion)
    for clip, hyp in zip(log_probs, hyps, strict=True):
        assert hyp.alignment == expected["batched"][clip]["alignment"], (setting_name, clip)


def test_fused_ctc_stream_equals_nemos_in_chunks(model):
    """The stream carries the models' states and the last label from chunk to chunk."""
    name, log_probs = model
    expected = RESULTS[name]["settings"]["lm_boost"]
    fusion = fusion_models(expected["fusion"], VOCAB)
    for clip, frames in log_probs.items():
        stream = GreedyCTCStream(VOCAB, fusion=fusion)
        for start in range(0, frames.shape[0], 5):
            stream.feed(frames[start : start + 5])
        assert stream.alignment == expected["clips"][clip]["alignment"], clip
        assert [t.id for t in stream.tokens] == expected["clips"][clip]["ids"], clip
