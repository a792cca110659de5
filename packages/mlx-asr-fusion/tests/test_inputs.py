"""Readers and builders on small hand-made inputs: what they accept, what they refuse."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_asr_fusion import BoostingTree, BoostingTreeConfig, NGramLM, read_arpa

# tokens 0, 1, 2 are "d", "e", "f" (offset 100); token 3 has no unigram
ARPA = """\\data\\
ngram 1=6
ngram 2=3

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-0.7\t</s>
-0.6\td\t-0.3
-0.8\te\t-0.2
-0.9\tf

\\2-grams:
-0.3\t<s> d
-0.4\td e
-0.2\td </s>

\\end\\
"""
LN10 = np.log(10.0)


@pytest.fixture
def arpa(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text(ARPA)
    return path


def test_reads_tokens_specials_and_natural_log_weights(arpa):
    by_order = read_arpa(arpa)
    assert [g.symbols for g in by_order[2]] == [(-1, 0), (0, 1), (0, -2)]
    assert by_order[1][1].weight == pytest.approx(-99 * LN10)
    assert by_order[1][3].backoff == pytest.approx(-0.3 * LN10)
    assert by_order[2][0].backoff == 0.0


def test_backs_off_and_scores_unknown_tokens(arpa):
    lm = NGramLM.from_arpa(arpa, vocab_size=4)
    scores, next_states = lm.advance(lm.get_init_states(1))  # after <s>
    scores = np.array(scores)[0]
    assert scores[0] == pytest.approx(-0.3 * LN10)  # <s> d
    assert scores[1] == pytest.approx((-0.5 - 0.8) * LN10)  # back-off of <s>, then e
    assert scores[3] == pytest.approx(
        -0.5 * LN10 - 1.0 * LN10, abs=1e-5
    )  # one unknown: not normalised
    assert np.array(next_states)[0, 3] == 0  # an unknown token leads to the start state
    d = int(np.array(next_states)[0, 0])
    assert float(lm.get_final(mx.array([d]))[0]) == pytest.approx(-0.2 * LN10)
    # e's state has no </s> of its own: its back-off plus the start state's
    e = int(np.array(lm.advance(mx.array([0]))[1])[0, 1])
    assert float(lm.get_final(mx.array([e]))[0]) == pytest.approx((-0.2 - 0.7) * LN10)


def test_two_unknown_tokens_share_unk_mass(arpa):
    lm = NGramLM.from_arpa(arpa, vocab_size=5)
    scores = np.array(lm.advance(mx.array([0]))[0])[0]
    assert scores[3] == scores[4] == pytest.approx(-1.0 * LN10 - np.log(2), abs=1e-5)
    plain = NGramLM.from_arpa(arpa, vocab_size=5, normalize_unk=False)
    assert np.array(plain.advance(mx.array([0]))[0])[0, 4] == pytest.approx(-1.0 * LN10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ngram 1=1\n", "no \\\\data\\\\ header"),
        (ARPA.replace("ngram 2=3", "ngram 2=4"), "the header says 4"),
        (ARPA.replace("-0.4\td e", "-0.4\td z"), "token 22 is not in"),
        (ARPA.replace("-0.4\td e", "-0.4\tg e"), "its history"),
        (ARPA.replace("-99\t<s>\t-0.5\n", "").replace("ngram 1=6", "ngram 1=5"), "no <s>"),
    ],
)
def test_refuses_bad_arpa(tmp_path, text, message):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        NGramLM.from_arpa(path, vocab_size=4)


def test_refuses_nemo_checkpoints(tmp_path):
    with pytest.raises(ValueError, match=r"\.nemo n-gram LMs are not supported"):
        NGramLM.from_file(tmp_path / "lm.nemo", vocab_size=4)


TOKENS = {"ab": [0, 1], "b": [1], "abc": [0, 1, 2], "bc": [1, 2]}


def test_tree_bonus_and_its_return_on_leaving_a_phrase():
    tree = BoostingTree.from_phrases(["abc"], TOKENS.__getitem__, vocab_size=4)
    states = tree.get_init_states(1)
    bonus = []
    for token in (0, 1, 3):  # a, b, then a token off the phrase
        scores, next_states = tree.advance(states)
        bonus.append(float(scores[0, token]))
        states = next_states[:, token]
    # context score 1, later tokens 1 * 2 + log(i + 1); leaving takes the bonus back
    assert bonus[:2] == pytest.approx([1.0, 2 + np.log(2)])
    assert bonus[2] == pytest.approx(-(1.0 + 2 + np.log(2)))
    assert int(states[0]) == 0


def test_tree_follows_failure_links():
    tree = BoostingTree.from_phrases(["ab", "bc"], TOKENS.__getitem__, vocab_size=4)
    ab = tree.advance(tree.advance(mx.array([0]))[1][:, 0])[1][:, 1]  # read a, b
    scores, _ = tree.advance(ab)
    # "ab" ended (its bonus kept); c continues "bc" from b, through the failure link
    assert float(scores[0, 2]) == pytest.approx(2 + np.log(2))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (BoostingTreeConfig(), "no key phrases"),
        (BoostingTreeConfig(key_phrases_list=["ab"], key_phrases_file="x.txt"), "not both"),
        (BoostingTreeConfig(key_phrases_list=["ab", ""]), "empty key phrase"),
    ],
)
def test_tree_refuses_bad_phrases(config, message):
    with pytest.raises(ValueError, match=message):
        BoostingTree.from_config(config, TOKENS.__getitem__, vocab_size=4)


def test_tree_refuses_tokens_outside_the_vocabulary():
    with pytest.raises(ValueError, match="not in \\[0, 2\\)"):
        BoostingTree.from_phrases(["abc"], TOKENS.__getitem__, vocab_size=2)
