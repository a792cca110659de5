"""CTC-based word spotting (mlx-ctc-decoder's `spot_words`, `merge_spotted`) against NeMo's
`run_word_spotter` and `merge_alignment_with_ws_hyps` on NeMo's own CTC log-probs.

`tests/reference/make_word_spotter_fixture.py` ran NeMo 3.0.0's word spotter (the recipe of
its `eval_greedy_decoding_with_context_biasing.py`) on the bundled demo model's held-out
clips, with two settings, and merged the spotted words into the CTC head's greedy result
and the TDT head's; the spotter changes the text of several clips (asserted). Ours must spot
the same words with the same float64 scores on the same frames, and merge them into the
same text. A live test compares the context graph with NeMo's, state for state.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_ctc_decoder import (
    SpottedWord,
    SpotterConfig,
    SpottingGraph,
    ctc_token_frames,
    greedy_decode,
    merge_spotted,
    merged_text,
    spot_words,
)

DEMO = Path(__file__).resolve().parent / "fixtures" / "demo"
SPOTTER = json.loads((DEMO / "word_spotter.json").read_text())
PIECES = SPOTTER["pieces"]
BLANK = SPOTTER["blank_id"]
ITEMS = [(word, spellings) for word, spellings in SPOTTER["graph_items"]]
CASES = [(name, clip) for name, r in SPOTTER["settings"].items() for clip in r["clips"]]


@pytest.fixture(scope="module")
def log_probs():
    with np.load(DEMO / "word_spotter_logprobs.npz") as data:
        return {name: data[name] for name in data.files}


def config(name: str) -> SpotterConfig:
    return SpotterConfig(**SPOTTER["settings"][name]["settings"])


def test_fixture_shows_changes():
    for result in SPOTTER["settings"].values():
        assert result["changed"]["ctc"]
        assert result["changed"]["tdt"]


@pytest.mark.parametrize(("name", "clip"), CASES)
def test_spotted_words_and_merged_text_equal_nemo(log_probs, name, clip):
    expected = SPOTTER["settings"][name]["clips"][clip]
    probs = log_probs[Path(clip).stem]
    graph = SpottingGraph.from_words(ITEMS, BLANK)
    spotted = spot_words(probs, graph, PIECES, config(name))
    ours = [[w.word, w.score, w.start_frame, w.end_frame] for w in spotted]
    assert ours == expected["spotted"]  # scores exactly: NeMo's sums in NeMo's order
    (greedy,) = greedy_decode(mx.array(probs[None]), blank_id=BLANK)
    if spotted:
        frames = ctc_token_frames(greedy.alignment, BLANK)
        words = merge_spotted([PIECES[i] for i in greedy.ids], frames, spotted)
        assert merged_text(words) == expected["ctc_text"]
        pieces = [PIECES[i] for i in expected["tdt_ids"]]
        words = merge_spotted(pieces, expected["tdt_frames"], spotted, transducer=True)
        assert merged_text(words) == expected["tdt_text"]
    else:
        assert expected["ctc_text"] == expected["plain_ctc_text"]


def test_merged_words_keep_their_tokens():
    """Words of the result keep the positions of their tokens; spotted ones have none."""
    pieces = ["▁the", "▁b", "o", "at", "▁is", "▁fr"]
    frames = [1, 4, 5, 6, 9, 15]
    spotted = [SpottedWord("free", 1.0, 15, 16)]
    words = merge_spotted(pieces, frames, spotted)
    assert merged_text(words) == "the boat is free"
    assert [w.tokens for w in words] == [(0,), (1, 2, 3), (4,), ()]
    assert words[-1].spotted
    assert (words[-1].start_frame, words[-1].end_frame) == (15, 16)
    lone = merge_spotted(["▁", "x", "▁y"], [0, 1, 3], [], transducer=True)
    assert [(w.text, w.tokens) for w in lone] == [("x", (0, 1)), ("y", (2,))]


def test_graph_refuses_bad_spellings():
    with pytest.raises(ValueError, match="empty spelling"):
        SpottingGraph.from_words([("a", [[]])], BLANK)
    with pytest.raises(ValueError, match="blank id"):
        SpottingGraph.from_words([("a", [[3, BLANK]])], BLANK)


@pytest.mark.reference
def test_graph_equals_nemo():
    graphs = pytest.importorskip("nemo.collections.asr.parts.context_biasing.context_graph_ctc")
    items = [*ITEMS, ("aaa", [[5, 5, 5]]), ("abab", [[5, 6, 5, 6], [5, 5, 6]])]
    nemo = graphs.ContextGraphCTC(blank_id=BLANK)
    nemo.add_to_graph(items)
    ours = SpottingGraph.from_words(items, BLANK)
    seen, queue = {}, [nemo.root]
    while queue:  # every NeMo state, with its arcs in order
        state = queue.pop()
        if state.index in seen:
            continue
        seen[state.index] = state
        queue += list(state.next.values())
    assert len(seen) == len(ours.states) == nemo.num_nodes + 1
    for index, state in seen.items():
        mine = ours.states[index]
        assert (mine.is_end, mine.word) == (state.is_end, state.word)
        assert list(mine.next.items()) == [(t, s.index) for t, s in state.next.items()]
