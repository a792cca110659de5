"""Per-item boosting trees in one batch (NeMo's per-stream boosting), greedy transducer decoding.

Each item of a batch carries its own phrase list: list A (the fusion fixture's key phrases),
list B (`tests/reference/make_per_item_fusion_fixtures.py`), or none, in turn. Each item must
equal NeMo 3.0.0's greedy decoding of that clip alone boosted by its list (`fusion/fusion.json`
for A, `fusion/per_item.json` for B, the unboosted `plain` for none), and NeMo's own
per-stream batch (`GPUBiasingMultiModel` with `multi_biasing_ids`, the same lists in the same
places: `per_item.json`'s `per_stream`, which the script found equal to the single-clip runs);
lists A and B change the ids of several clips differently, so a mix-up would show. (TDT
durations are held to the single-clip runs: NeMo's batched TDT records some durations from
other items, tests/reference/README.md.)
"""

from __future__ import annotations

import json

import mlx.core as mx
import pytest
from test_fusion_decoding import DECODING, FIXTURES, FUSION, load_transducer, padded_batch

from mlx_asr_fusion import BoostingTree, BoostingTreeConfig, FusionModel, PerItemAcceptor

PER_ITEM = json.loads((FIXTURES / "fusion" / "per_item.json").read_text())
ALPHA = PER_ITEM["boosting_tree_alpha"]
LISTS = ["a", "b", None]  # cycled over the batch's items


@pytest.fixture(scope="module", params=DECODING["models"])
def model(request, tmp_path_factory):
    name = request.param
    clips = DECODING["results"][name]["clips"]
    return name, *load_transducer(name, clips, tmp_path_factory.mktemp("converted"))


def trees(vocab_size: int) -> dict[str, BoostingTree]:
    ids = {**FUSION["phrase_ids"], **PER_ITEM["phrase_ids_b"]}
    phrases = {"a": DECODING["boosting_tree"]["key_phrases_list"], "b": PER_ITEM["phrases_b"]}
    return {
        name: BoostingTree.from_config(BoostingTreeConfig(key_phrases_list=p), ids.__getitem__,
                                       vocab_size)
        for name, p in phrases.items()
    }  # fmt: skip


def expected(name: str, clip: str, which: str | None) -> dict:
    if which == "b":
        return PER_ITEM["results"][name]["clips"][clip]
    setting = "boost" if which == "a" else "plain"
    return DECODING["results"][name]["settings"][setting]["clips"][clip]


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_each_item_equals_nemo_with_its_own_tree(model, shift):
    name, transducer, encoded = model
    built = trees(transducer.config.blank_id)
    lists = [LISTS[(i + shift) % len(LISTS)] for i in range(len(encoded))]
    acceptor = PerItemAcceptor([None if w is None else built[w] for w in lists])
    fusion = [FusionModel(acceptor, [ALPHA] * len(lists))]
    hyps = transducer.greedy(*padded_batch(encoded), fusion=fusion)
    streams = PER_ITEM["results"][name]["per_stream"][str(shift)]
    for clip, which, hyp in zip(encoded, lists, hyps, strict=True):
        want = expected(name, clip, which)
        assert hyp.ids == want["ids"], (clip, which)
        assert hyp.frames == want["frames"], (clip, which)
        # NeMo's own per-stream batch, same lists in the same places
        assert streams[clip]["list"] == which
        assert [hyp.ids, hyp.frames] == [streams[clip]["ids"], streams[clip]["frames"]], clip
        if transducer.config.is_tdt:
            assert hyp.durations == want["durations"], (clip, which)


def test_lists_change_the_ids_differently():
    for name in DECODING["models"]:
        assert len(PER_ITEM["results"][name]["differs_from_a"]) >= 2, name
        assert not PER_ITEM["results"][name]["per_stream_differences"], name


def test_per_item_acceptor_refuses_what_it_cannot_do(model):
    _, transducer, encoded = model
    built = trees(transducer.config.blank_id)
    acceptor = PerItemAcceptor([built["a"], built["b"]])
    with pytest.raises(ValueError, match="built for 2 items"):
        acceptor.get_init_states(3)
    with pytest.raises(ValueError, match="end of the sentence"):
        acceptor.advance(acceptor.get_init_states(2), eos_id=0)
    with pytest.raises(ValueError, match="greedy decoding only"):
        transducer.beam(*padded_batch(dict(list(encoded.items())[:2])), strategy="malsd_batch",
                        fusion=[FusionModel(acceptor, [1.0, 1.0])])  # fmt: skip
    with pytest.raises(ValueError, match="at least one model"):
        PerItemAcceptor([None, None])
    assert mx.array_equal(acceptor.get_init_states(2), mx.array([0, built["a"].num_states]))


def test_merged_answers_equal_each_trees_own():
    """Every state of each tree, queried in the merged arrays: the tree's own scores (bit for
    bit) and next states (shifted by the tree's offset); no tree: zero scores."""
    built = trees(FUSION["tokenizer"]["vocab_size"])
    acceptor = PerItemAcceptor([built["a"], None, built["b"]])
    starts = [int(s) for s in acceptor.get_init_states(3, bos=False).tolist()]
    for tree, offset in ((built["a"], starts[0]), (built["b"], starts[2])):
        states = mx.arange(tree.num_states)
        scores, nxt = tree.advance(states)
        merged_scores, merged_nxt = acceptor.advance(states + offset)
        assert mx.array_equal(scores, merged_scores)
        assert mx.array_equal(nxt + offset, merged_nxt)
    empty_scores, empty_nxt = acceptor.advance(mx.array([starts[1]]))
    assert not mx.any(empty_scores).item()
    assert mx.all(empty_nxt == starts[1]).item()
