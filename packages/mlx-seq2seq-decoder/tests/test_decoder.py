"""The cache and the padding: stepping equals recomputing; batching equals single runs.

NeMo parity (logits, greedy and beam ids against NeMo's own generators) is in the root
`tests/test_seq2seq_live_nemo.py` and, on the converted Canary fixture, `tests/test_canary*.py`.
"""

from __future__ import annotations

import copy
import tarfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import yaml

from mlx_seq2seq_decoder import DecoderConfig, TransformerDecoder, beam_search, greedy_search

EOS, PAD = 2, 0


@pytest.fixture(scope="module", params=[True, False], ids=["pre_ln", "post_ln"])
def decoder(request) -> TransformerDecoder:
    mx.random.seed(0)
    config = DecoderConfig(
        num_classes=40, hidden_size=32, inner_size=64, num_layers=2, num_heads=4,
        max_sequence_length=64, pre_ln=request.param, final_layer_norm=request.param, memory_size=24,
    )  # fmt: skip
    model = TransformerDecoder(config)
    model.update(
        {
            "head": {
                "layers": [
                    {"weight": model.head.layers[0].weight * 8, "bias": model.head.layers[0].bias}
                ]
            }
        }
    )
    return model


def _memory(lengths):
    states = mx.random.normal((len(lengths), max(lengths), 24), key=mx.random.key(1))
    return states, mx.array(lengths)


def test_cached_steps_equal_recomputing(decoder):
    states, lengths = _memory([11, 7])
    prompt = [1, 5, 6]
    path = [[9, 12, 3, 30, 17], [4, 4, 25, 8, 19]]
    logits, cache = decoder.start(states, lengths, [prompt, prompt])
    stepped = [np.array(logits)]
    for t in range(len(path[0])):
        stepped.append(np.array(decoder.step(mx.array([p[t] for p in path]), cache)))
    for t in range(len(path[0]) + 1):
        whole, _ = decoder.start(states, lengths, [prompt + p[:t] for p in path])
        np.testing.assert_allclose(stepped[t], np.array(whole), rtol=1e-5, atol=1e-5)


def test_padding_frames_are_ignored(decoder):
    states, lengths = _memory([6, 6])
    noisy = mx.concatenate([states, 100 * mx.ones((2, 5, 24))], axis=1)
    a, _ = decoder.start(states, lengths, [[1, 5], [1, 7]])
    b, _ = decoder.start(noisy, lengths, [[1, 5], [1, 7]])
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-5)


def test_batches_of_mixed_prompts_equal_single_runs(decoder):
    states, lengths = _memory([12, 5, 9])
    prompts = [[1, 5, 6], [1], [1, 8, 9, 10, 3]]
    batched = greedy_search(decoder, states, lengths, prompts, eos_id=EOS, max_delta=8)
    beams = beam_search(
        decoder, states, lengths, prompts, eos_id=EOS, pad_id=PAD, beam_size=3, max_delta=8
    )
    for i, prompt in enumerate(prompts):
        item = (states[i : i + 1, : int(lengths[i])], lengths[i : i + 1], [prompt])
        single = greedy_search(decoder, *item, eos_id=EOS, max_delta=8)[0]
        assert batched[i].tokens == single.tokens
        np.testing.assert_allclose(batched[i].log_probs, single.log_probs, atol=1e-5)
        single_beam = beam_search(decoder, *item, eos_id=EOS, pad_id=PAD, beam_size=3, max_delta=8)[
            0
        ]
        assert beams[i].tokens == single_beam.tokens
        assert beams[i].score == pytest.approx(single_beam.score, abs=1e-4)


def test_length_limit_follows_the_encoder_length(decoder):
    states, lengths = _memory([3, 10])
    # With EOS never chosen, each row stops at frames + max_delta - prompt length tokens.
    decoder_no_eos = decoder
    bias = decoder.head.layers[-1].bias
    decoder_no_eos.head.layers[-1].bias = bias - 1e4 * (mx.arange(bias.shape[0]) == EOS)
    try:
        out = greedy_search(
            decoder_no_eos, states, lengths, [[1, 5], [1, 5]], eos_id=EOS, max_delta=4
        )
    finally:
        decoder.head.layers[-1].bias = bias
    assert [len(r.tokens) for r in out] == [3 + 4 - 2, 10 + 4 - 2]
    assert not any(r.finished for r in out)


def test_the_final_layer_norm_flag_is_read_where_nemo_reads_it():
    """`get_nemo_transformer` takes `pre_ln_final_layer_norm` beside `config_dict`, as the
    real Canary configs put it; a copy inside `config_dict` is ignored, as NeMo ignores it."""
    nemo = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "models" / "canary.nemo"
    with tarfile.open(nemo) as archive:
        cfg = yaml.safe_load(archive.extractfile("./model_config.yaml").read())
    assert cfg["transf_decoder"]["config_dict"]["pre_ln"] is True
    assert DecoderConfig.from_nemo(cfg).final_layer_norm is True
    off = copy.deepcopy(cfg)
    off["transf_decoder"]["pre_ln_final_layer_norm"] = False
    assert DecoderConfig.from_nemo(off).final_layer_norm is False
    inside = copy.deepcopy(cfg)
    inside["transf_decoder"]["config_dict"]["pre_ln_final_layer_norm"] = False
    assert DecoderConfig.from_nemo(inside).final_layer_norm is True
    post_ln = copy.deepcopy(cfg)
    post_ln["transf_decoder"]["config_dict"]["pre_ln"] = False
    assert DecoderConfig.from_nemo(post_ln).final_layer_norm is False  # NeMo: pre_ln and the flag


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_top_k_is_the_stable_sort_s_first_k(k: int) -> None:
    # Beam search ranks each beam's vocabulary by `_top_k`: exactly the stable descending
    # sort's first k, ties (few distinct values here) taken lowest index first.
    from mlx_seq2seq_decoder.search import _top_k

    rng = np.random.default_rng(k)
    for values in (
        rng.integers(-3, 3, size=(16, 50)).astype(np.float32),  # many ties, at the boundary too
        rng.standard_normal((8, 5248)).astype(np.float32),
        np.zeros((3, 7), dtype=np.float32),
        np.array([[1.0, np.nan, 3.0, 3.0, -1.0, 2.0, 0.0, 5.0, 4.0]], dtype=np.float32),
    ):
        expected = np.argsort(-values, axis=-1, kind="stable")[:, :k]
        np.testing.assert_array_equal(_top_k(values, k), expected)
