"""The one-launch CUDA greedy loop (cuda_greedy.py) against the compiled MLX step.

Runs where MLX's CUDA backend is the default device (the GPU machine; CI has none: there
`test_greedy_reference.py` holds the compiled step to the plain loop, and run on a CUDA
device that same file holds the kernel to the plain loop on small random models). Here the
models have a real checkpoint's geometry (parakeet-tdt-0.6b: 1024 or 8192 tokens, hidden
640, two LSTM layers, durations 0-4; and an RNNT joint), so that the joint's rows spread
over every block of the grid; float32, batches of 1 to 64 utterances of uneven lengths:
ids, frames and durations identical, log-probabilities to 1e-4. The compiled step's float32
matmuls must then be float32: MLX's CUDA backend runs them as TF32 (10-bit mantissa)
unless `MLX_ENABLE_TF32=0`, which is how to run this file; under TF32 the log-probabilities
differ by up to ~1e-3 (the kernel's sums are float32) and the bound is 5e-3.
"""

from __future__ import annotations

import os

import mlx.core as mx
import numpy as np
import pytest

from mlx_transducer import Transducer, TransducerConfig, cuda_greedy

LOGPROB_ATOL = 1e-4 if os.environ.get("MLX_ENABLE_TF32") == "0" else 5e-3
pytestmark = pytest.mark.skipif(
    not cuda_greedy.available(), reason="needs MLX's CUDA backend as the default device"
)


def _model(vocab: int, durations: tuple[int, ...], seed: int) -> Transducer:
    mx.random.seed(seed)
    config = TransducerConfig(vocab_size=vocab, pred_hidden=640, pred_rnn_layers=2, joint_hidden=640,
                              encoder_hidden=1024, durations=durations, max_symbols=10)  # fmt: skip
    model = Transducer(config)
    out = model.joint.joint_net[-1]
    out.weight = out.weight * 8.0  # tokens every few frames, as decode.py's workload
    out.bias = out.bias + mx.where(mx.arange(out.bias.shape[0]) == vocab, 6.0 - seed, 0.0)
    mx.eval(model.parameters())
    return model


@pytest.mark.parametrize("vocab", [1024, 8192])
@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
@pytest.mark.parametrize("batch", [1, 5, 16, 32, 64])
def test_kernel_equals_the_compiled_step(vocab, durations, batch):
    for seed in range(3):
        model = _model(vocab, durations, seed)
        rng = np.random.default_rng(seed)
        frames = int(rng.integers(40, 160))
        x = mx.array(rng.normal(size=(batch, frames, 1024)).astype(np.float32))
        lengths = mx.array(rng.integers(0, frames + 1, batch).astype(np.int32))
        decoder = model.greedy_decoder(1)
        decoder.kernel = False
        expected = decoder(x, lengths)
        decoder.kernel = True
        got = decoder(x, lengths)
        assert decoder._fused is not None  # the kernel ran
        tokens = 0
        for ours, ref in zip(got, expected, strict=True):
            assert ours.ids == ref.ids
            assert ours.frames == ref.frames
            assert ours.durations == ref.durations
            np.testing.assert_allclose(
                [t.logprob for t in ours.tokens], [t.logprob for t in ref.tokens], atol=LOGPROB_ATOL
            )
            tokens += len(ours.tokens)
        assert tokens > batch  # decisions that emit, not blank everywhere
