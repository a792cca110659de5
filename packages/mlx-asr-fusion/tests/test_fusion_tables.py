"""What a decoding step reads from `fusion_tables` equals the models' own `advance` answers.

A dense model with one alpha is read from a table weighted once (cast to the logits' dtype,
times alpha in that dtype), and its next state only for the token chosen (`fusion_next`);
the others are walked and weighted at each step; a state moves only where the step says.
Every path must give the bits of a step that asks `advance` (held to NeMo's answers by
`test_nemo_parity.py`) and weights its row: the decoders' parity with NeMo rests on it.
Tolerance: none.
"""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import numpy as np
import pytest
from fusion_inputs import fusion_models  # tests/: the fusion fixtures' models

from mlx_asr_fusion import (
    FusionModel,
    fusion_next,
    fusion_scores,
    fusion_shapes,
    fusion_tables,
)
from mlx_asr_fusion import fusion as fusion_module

VOCAB = 128  # the fusion fixtures' tokenizer (tests/fixtures/fusion/)
BATCH = 16


def models() -> list[FusionModel]:
    """The fixtures' 3-gram LM and tree, each with an alpha no float16 or bfloat16 holds."""
    return fusion_models({"lm": 0.7, "boost": 1.3}, VOCAB)


def step(tables, states, tokens, moves, shapes, dtype):
    """A decoding step's reads: the weighted scores, the states after `tokens` where `moves`."""
    scores, candidates = fusion_scores(tables, states, shapes, dtype)
    return scores, fusion_next(tables, states, candidates, tokens, moves)


def expected(fused: FusionModel, states: mx.array, tokens: mx.array, moves, dtype: mx.Dtype):
    """A step's answer as the model gives it: `advance`, the row cast and weighted, the
    state moved by the token where it moves."""
    scores, nxt = fused.model.advance(states)
    alpha = mx.array(fused.alpha, dtype=mx.float32)
    alpha = alpha if alpha.ndim == 0 else alpha[:, None]
    weighted = scores.astype(dtype) * alpha.astype(dtype)
    read = mx.take_along_axis(nxt, mx.minimum(tokens, VOCAB - 1)[:, None], axis=1)[:, 0]
    return weighted, mx.where(moves, read, states)


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "walked"])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_step_reads_equal_advance(monkeypatch, dense, dtype):
    if not dense:  # no model small enough to be kept whole
        monkeypatch.setattr(fusion_module, "DENSE_ENTRIES", 0)
    fused = models()
    rng = np.random.default_rng(0)
    per_item = [
        FusionModel(f.model, rng.uniform(0.1, 3, BATCH).tolist() if i else f.alpha)
        for i, f in enumerate(fused)
    ]
    for chosen in (fused, per_item):
        states = [mx.array(rng.integers(0, f.model.num_states, BATCH), dtype=mx.int32)
                  for f in chosen]  # fmt: skip
        tokens = rng.integers(0, VOCAB + 1, BATCH)  # the blank (VOCAB) too, where none moves
        moves = mx.array((tokens < VOCAB) & (rng.random(BATCH) < 0.7))
        tokens = mx.array(tokens, dtype=mx.int32)
        tables = fusion_tables(chosen, VOCAB, dtype)
        assert ("weighted" in tables[0]) == dense  # the read this test means to check

        scores, moved = mx.compile(partial(step, shapes=fusion_shapes(chosen), dtype=dtype))(
            tables, states, tokens, moves
        )
        for i, f in enumerate(chosen):
            want_scores, want_next = expected(f, states[i], tokens, moves, dtype)
            assert scores[i].dtype == dtype
            exact = [np.array(a.astype(mx.float32)) for a in (scores[i], want_scores)]  # exact
            np.testing.assert_array_equal(*exact)
            np.testing.assert_array_equal(np.array(moved[i]), np.array(want_next))
