"""The prediction network's first-layer input table (`PredictionNetwork.input_table`), which
the greedy step reads instead of multiplying the label's embedding by `Wx` each step.

The table is one product over every label (a gemm); the step without it is one product per
label (on the CPU at batch 1 a gemv): the same sums in another order, so the contract is
float32 rounding (relative 1e-6, far inside the 1e-4 the encoder is held to), not bit
equality. Greedy decoding with it gives the plain loop's ids exactly
(test_greedy_reference.py); here: the table against the per-step product on
parakeet-tdt-0.6b's prediction-network sizes, and a table made anew when the weights change.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_transducer import Transducer, TransducerConfig
from mlx_transducer.greedy import GreedyDecoder

RTOL = 1e-6  # float32 rounding of a 640-term sum in another order


def _model(vocab: int, hidden: int, layers: int, seed: int = 0) -> Transducer:
    mx.random.seed(seed)
    config = TransducerConfig(vocab_size=vocab, pred_hidden=hidden, pred_rnn_layers=layers,
                              joint_hidden=hidden, encoder_hidden=16,
                              durations=(0, 1, 2, 3, 4), max_symbols=10)  # fmt: skip
    return Transducer(config)


def _close(a: mx.array, b: mx.array) -> None:
    a, b = np.array(a), np.array(b)
    scale = np.abs(b).max()
    np.testing.assert_allclose(a, b, rtol=0, atol=RTOL * scale)


@pytest.mark.parametrize("batch", [1, 3])
def test_step_with_the_table_equals_the_step_without(batch):
    """parakeet-tdt-0.6b's sizes (vocabulary 1024, hidden 640, two layers): every label's
    row, and a step's outputs and states, agree with the per-step product to rounding."""
    prednet = _model(1024, 640, 2).decoder
    table = prednet.input_table()
    labels = mx.arange(1025, dtype=mx.int32)
    first = prednet.prediction["dec_rnn"].lstm[0]
    _close(table, first.input_gates(prednet.prediction["embed"](labels)))
    rng = np.random.default_rng(batch)
    layers = [
        (mx.array(rng.normal(0, 0.5, (batch, 640)).astype(np.float32)),
         mx.array(rng.normal(0, 0.5, (batch, 640)).astype(np.float32)))
        for _ in range(2)
    ]  # fmt: skip
    picked = mx.array(rng.integers(0, 1025, batch).astype(np.int32))
    out, new = prednet.step(picked, layers, table)
    out_ref, new_ref = prednet.step(picked, layers)
    _close(out, out_ref)
    for (h, c), (h_ref, c_ref) in zip(new, new_ref, strict=True):
        _close(h, h_ref)
        _close(c, c_ref)


def test_a_new_table_for_new_weights():
    """The decoder keeps its table while the weights stay, and makes it anew when they are
    replaced (as `set_dtype` or `load_weights` do): the decisions follow the new weights."""
    model = _model(12, 16, 2)
    out = model.joint.joint_net[-1]
    out.weight = out.weight * 6.0
    frames = mx.random.normal((1, 20, 16)) * 2.0
    lengths = mx.array([20], dtype=mx.int32)
    decoder = GreedyDecoder(model.decoder, model.joint, blank_id=12, durations=(0, 1, 2, 3, 4))
    decoder(frames, lengths)
    kept = decoder.input_table()
    assert decoder.input_table() is kept
    embed = model.decoder.prediction["embed"]
    embed.weight = mx.random.normal(embed.weight.shape) * 3.0
    assert decoder.input_table() is not kept
    fresh = GreedyDecoder(model.decoder, model.joint, blank_id=12, durations=(0, 1, 2, 3, 4))
    assert decoder(frames, lengths)[0].ids == fresh(frames, lengths)[0].ids
    assert np.array_equal(np.array(decoder.input_table()), np.array(fresh.input_table()))
