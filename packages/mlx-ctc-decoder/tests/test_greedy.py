"""Greedy CTC collapse and spans on hand-made log-probabilities (no NeMo needed)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_ctc_decoder import CTCConfig, CTCHead, greedy_decode

BLANK = 4


def _log_probs(frames: list[list[int]], classes: int = 5) -> mx.array:
    """One-hot-ish log-probabilities whose argmax per frame is the given label."""
    batch = len(frames)
    time = max(len(f) for f in frames)
    lp = np.full((batch, time, classes), -5.0, dtype=np.float32)
    for b, labels in enumerate(frames):
        for t, label in enumerate(labels):
            lp[b, t, label] = -0.1
    return mx.array(lp)


def test_repeats_merge_and_blanks_separate():
    frames = [[0, 0, BLANK, 0, 1, 1, BLANK, BLANK, 2]]
    (hyp,) = greedy_decode(_log_probs(frames), blank_id=BLANK)
    assert hyp.ids == [0, 0, 1, 2]
    assert [(t.start_frame, t.end_frame) for t in hyp.tokens] == [(0, 1), (3, 3), (4, 5), (8, 8)]
    assert hyp.alignment == frames[0]
    assert hyp.tokens[0].logprob == pytest.approx(-0.1)


def test_lengths_cut_each_item():
    frames = [[1, 1, 2, 3], [3, 2, 2, 2]]
    hyps = greedy_decode(_log_probs(frames), mx.array([4, 2]), blank_id=BLANK)
    assert hyps[0].ids == [1, 2, 3]
    assert hyps[1].ids == [3, 2]
    assert hyps[1].alignment == [3, 2]


def test_nemo_offsets_follow_nemos_rule():
    # tokens start at frames 2, 5, 6: NeMo gives (1, 2), (2, 5), (5, 6)
    (hyp,) = greedy_decode(_log_probs([[BLANK, BLANK, 0, 0, BLANK, 1, 2]]), blank_id=BLANK)
    assert hyp.nemo_offsets() == [(1, 2), (2, 5), (5, 6)]


def test_all_blank_and_empty():
    hyps = greedy_decode(_log_probs([[BLANK, BLANK], [BLANK]]), mx.array([2, 0]), blank_id=BLANK)
    assert hyps[0].ids == []
    assert hyps[0].nemo_offsets() == []
    assert hyps[1].alignment == []


def test_head_is_a_log_softmax_over_vocab_and_blank():
    head = CTCHead(CTCConfig(feat_in=8, vocab_size=6))
    out = head(mx.random.normal((2, 5, 8)))
    assert out.shape == (2, 5, 7)
    np.testing.assert_allclose(np.exp(np.array(out)).sum(-1), 1.0, rtol=1e-5)


def test_config_from_nemo():
    cfg = CTCConfig.from_nemo({"feat_in": 512, "num_classes": -1, "vocabulary": ["a", "b", "c"]})
    assert (cfg.vocab_size, cfg.blank_id) == (3, 3)
    with pytest.raises(ValueError, match="ConvASRDecoderClassification"):
        CTCConfig.from_nemo(
            {"_target_": "x.ConvASRDecoderClassification", "feat_in": 4, "num_classes": 2}
        )


def test_beam_of_one_is_greedy():
    from mlx_ctc_decoder import beam_search

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 5)).astype(np.float32) * 3
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    (greedy,) = greedy_decode(mx.array(log_probs)[None], blank_id=BLANK)
    (best,) = beam_search(log_probs, blank_id=BLANK, beam_size=1)
    assert best.ids == greedy.ids
    assert best.frames == [t.start_frame for t in greedy.tokens]


def test_beam_recombines_paths_with_the_same_transcript():
    """Frames of 0.4 'a' / 0.6 blank. (a,a) and (-,a) both read "a" ending in 'a': the better
    one stays. (a,-) reads "a" too but ends in blank, so it is a different state (as in NeMo)."""
    from mlx_ctc_decoder import beam_search

    p = np.log(np.array([[0.4, 0.0, 0.0, 0.0, 0.6]] * 2, dtype=np.float32) + 1e-12)
    hyps = beam_search(p, blank_id=BLANK, beam_size=4)
    assert [h.ids for h in hyps] == [[], [0], [0]]
    np.testing.assert_allclose([h.score for h in hyps], np.log([0.36, 0.24, 0.24]), rtol=1e-5)


def test_scorer_hook_steers_the_search():
    from mlx_ctc_decoder import beam_search

    p = np.log(np.array([[0.5, 0.45, 0.0, 0.0, 0.05]], dtype=np.float32) + 1e-12)
    plain = beam_search(p, blank_id=BLANK, beam_size=3)
    boosted = beam_search(
        p, blank_id=BLANK, beam_size=3, scorer=lambda prefix, label: 1.0 if label == 1 else 0.0
    )
    assert plain[0].ids == [0]
    assert boosted[0].ids == [1]
