"""The fast greedy decoder (greedy.py) against the plain loop (greedy_reference.py).

Random prediction networks and joints, many seeds, sharpened and biased so that every
branch of the algorithm is taken: blanks that jump, several tokens on one frame, duration-0
tokens, the `max_symbols` limit (and no limit), a duration jumping past the end, empty
utterances. The fast decoder, at several window sizes, must give exactly the plain loop's
ids, frames and durations, and its log-probabilities to 1e-5; so must the chunked
`GreedyStream`. The same with shallow fusion: a random 3-gram LM over the tokens and a
boosting tree of random phrases (mlx-asr-fusion), with weights that change decisions
(NeMo parity with fusion on NeMo-built models: tests/test_fusion_decoding.py at the root).
Every test runs twice: with the native CPU loop where it applies (cpu_greedy.py, the default
on the CPU) and with `MLX_TRANSDUCER_NATIVE=off` (the compiled step everywhere).
"""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import mlx.core as mx
import numpy as np
import pytest

from mlx_asr_fusion import BoostingTree, FusionModel, NGramLM
from mlx_transducer import Transducer, TransducerConfig, greedy_reference
from mlx_transducer.hypothesis import Hypothesis
from mlx_transducer.streaming import GreedyStream

VOCAB, ENC = 12, 8
SEEDS = range(24)


@pytest.fixture(autouse=True, params=["native", "compiled"])
def _path(request, monkeypatch):
    """The native CPU loop (where it applies) or the compiled step."""
    monkeypatch.setenv("MLX_TRANSDUCER_NATIVE", "on" if request.param == "native" else "off")


DURATIONS = [
    (0, 1, 2, 3, 4),  # as parakeet-tdt
    (1, 2),  # TDT without duration 0
    (0, 1, 3, 5),  # not consecutive: looked up in a table
    (),  # RNNT
]


def _model(seed: int, durations: tuple[int, ...], max_symbols: int | None) -> Transducer:
    """Random weights, the joint's output sharpened and blank and durations biased by seed:
    from mostly blank to mostly tokens, with duration 0 now rare, now common."""
    rng = np.random.default_rng(seed)
    mx.random.seed(seed)
    config = TransducerConfig(
        vocab_size=VOCAB, pred_hidden=16, pred_rnn_layers=1 + seed % 2, joint_hidden=16,
        encoder_hidden=ENC, activation=("relu", "tanh", "sigmoid")[seed % 3],
        joint_dropout=bool(seed % 2), durations=durations, max_symbols=max_symbols,
    )  # fmt: skip
    model = Transducer(config)
    out = model.joint.joint_net[-1]
    bias = np.array(out.bias)
    bias[VOCAB] += rng.uniform(-3.0, 3.0)
    bias[VOCAB + 1 :] += rng.normal(0.0, 1.5, len(durations))
    out.weight = out.weight * float(rng.uniform(4.0, 8.0))
    out.bias = mx.array(bias)
    embed = model.decoder.prediction["embed"]
    embed.weight = embed.weight * 3.0
    return model


def _inputs(seed: int) -> tuple[mx.array, mx.array]:
    """A batch of 1 to 8 utterances of uneven lengths: 0 and 1 frame among them."""
    rng = np.random.default_rng(1000 + seed)
    batch = 1 + seed % 8
    time = int(rng.choice([1, 2, 5, 13, 24]))
    lengths = rng.integers(0, time + 1, batch)
    lengths[rng.integers(batch)] = time
    if batch > 1:
        lengths[rng.integers(batch)] = rng.choice([0, 1])
    frames = rng.normal(0.0, 2.0, (batch, time, ENC)).astype(np.float32)
    return mx.array(frames), mx.array(lengths.astype(np.int32))


def _assert_same(
    fast: list[Hypothesis], plain: list[Hypothesis], what: str, atol: float = 1e-5
) -> None:
    assert len(fast) == len(plain), what
    for item, (ours, ref) in enumerate(zip(fast, plain, strict=True)):
        where = f"{what}, utterance {item}"
        assert ours.ids == ref.ids, where
        assert ours.frames == ref.frames, where
        assert ours.durations == ref.durations, where
        np.testing.assert_allclose(
            [t.logprob for t in ours.tokens], [t.logprob for t in ref.tokens], atol=atol,
            err_msg=where,
        )  # fmt: skip


def _branches(hyps: list[Hypothesis], lengths: list[int], counts: Counter) -> None:
    """Count which branches of the algorithm the plain loop's results show."""
    for hyp, length in zip(hyps, lengths, strict=True):
        counts["empty"] += not hyp.tokens
        counts["tokens"] += len(hyp.tokens)
        per_frame = Counter(hyp.frames)
        counts["frames with several tokens"] += sum(n > 1 for n in per_frame.values())
        counts["max per frame"] = max(counts["max per frame"], *per_frame.values(), 0)
        for token, after in pairwise(hyp.tokens):
            landed = token.frame + (token.duration if token.duration is not None else 0)
            forced = landed == token.frame  # the max_symbols limit may have moved it on
            counts["blank before a token"] += after.frame > landed + forced
        for token in hyp.tokens:
            counts["duration 0"] += token.duration == 0
            counts["past the end"] += token.frame + (token.duration or 0) > length


@pytest.mark.parametrize("durations", DURATIONS, ids=["tdt0-4", "tdt1-2", "tdt0135", "rnnt"])
@pytest.mark.parametrize("max_symbols", [1, 2, 10])
def test_fast_greedy_equals_the_plain_loop(durations, max_symbols):
    counts: Counter = Counter()
    for seed in SEEDS:
        model = _model(seed, durations, max_symbols)
        frames, lengths = _inputs(seed)
        cfg = model.config
        plain = greedy_reference(model.decoder, model.joint, frames, lengths,
                                 blank_id=cfg.blank_id, durations=durations,
                                 max_symbols=max_symbols)  # fmt: skip
        _branches(plain, lengths.tolist(), counts)
        _assert_same(model.greedy(frames, lengths), plain, f"seed {seed}, default window")
        for window in (1, (2, 3, 5, 8)[(seed + seed // 8) % 4]):  # frames per step
            fast = model.greedy_decoder(window)(frames, lengths)
            _assert_same(fast, plain, f"seed {seed}, window {window}")
    # the decisions really varied: every branch was taken
    assert counts["empty"]
    assert counts["tokens"] > 100
    assert counts["blank before a token"]
    if 0 in durations or not durations:  # tokens can stay on their frame
        assert counts["duration 0"] or not durations
        assert counts["max per frame"] == max_symbols  # the limit was reached, never passed
        assert counts["frames with several tokens"] or max_symbols == 1
    else:
        assert counts["max per frame"] == 1
    if durations:
        assert counts["past the end"]


def _counting_model(durations: tuple[int, ...]) -> Transducer:
    """For `max_symbols=None`: random weights would emit tokens on one frame for ever. Here
    the prediction network counts the tokens emitted (its cell state grows by 0.1 each, the
    same in every unit) and blank's logit grows with the count through the joint's first
    unit: some 15 tokens on the first frame, a few on later ones, then only blanks. TDT
    tokens take duration 0."""
    model = _model(0, durations, None)
    lstm = model.decoder.prediction["dec_rnn"].lstm[0]
    hidden = lstm.Wh.shape[1]
    lstm.Wx, lstm.Wh = mx.zeros_like(lstm.Wx), mx.zeros_like(lstm.Wh)
    gates = [10.0, 10.0, float(np.arctanh(0.1)), 10.0]  # input, forget, cell, output
    lstm.bias = mx.repeat(mx.array(gates), hidden)
    joint, out = model.joint, model.joint.joint_net[-1]
    enc_weight, enc_bias = np.array(joint.enc.weight), np.array(joint.enc.bias)
    enc_weight[0], enc_bias[0] = 0.0, 0.0  # the first unit sees the count alone
    pred_weight = np.zeros(joint.pred.weight.shape, np.float32)
    pred_weight[0] = 1.0 / hidden
    weight, bias = np.array(out.weight), np.array(out.bias)
    weight[:, 0] = 0.0
    weight[VOCAB, 0], bias[VOCAB] = 200.0, -180.0  # blank wins past tanh(0.1 n) = 0.9
    if durations:
        bias[VOCAB + 1 + durations.index(0)] += 100.0
    joint.enc.weight, joint.enc.bias = mx.array(enc_weight), mx.array(enc_bias)
    joint.pred.weight, joint.pred.bias = mx.array(pred_weight), mx.zeros_like(joint.pred.bias)
    out.weight, out.bias = mx.array(weight), mx.array(bias)
    return model


@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
def test_no_limit_on_tokens_per_frame(durations):
    """`max_symbols=None`: as many tokens on a frame as the joint gives."""
    model = _counting_model(durations)
    most, stepped_alone = 0, False
    for seed in range(8):
        frames, lengths = _inputs(seed)
        plain = greedy_reference(model.decoder, model.joint, frames, lengths,
                                 blank_id=VOCAB, durations=durations, max_symbols=None)  # fmt: skip
        for window in (1, 3, 8):
            decoder = model.greedy_decoder(window)
            fast = decoder(frames, lengths)
            # blank's logit is 200 x - 180 here: float32 rounds it to ~1e-5
            _assert_same(fast, plain, f"seed {seed}, window {window}", atol=1e-4)
            stepped_alone |= window > 1 and 1 in decoder.windows
        most = max([most, *(max(Counter(h.frames).values(), default=0) for h in plain)])
    assert most > 10  # more than the default limit
    # ~15 tokens on the first frame: dense emission, where a round steps one frame at a time
    assert stepped_alone


def test_empty_input():
    model = _model(0, (0, 1, 2, 3, 4), 10)
    frames = mx.zeros((2, 0, ENC))
    plain = greedy_reference(model.decoder, model.joint, frames, blank_id=VOCAB,
                             durations=(0, 1, 2, 3, 4))  # fmt: skip
    assert [h.ids for h in plain] == [[], []]
    _assert_same(model.greedy(frames), plain, "no frames")


def _feed_in_chunks(stream: GreedyStream, frames: mx.array, rng) -> GreedyStream:
    """Feed frames (T, D) to the stream in chunks of 1 to 7 frames."""
    start = 0
    while start < frames.shape[0]:
        size = int(rng.integers(1, 8))
        stream.feed(frames[start : start + size])
        start += size
    return stream


@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
def test_stream_in_chunks_equals_the_plain_loop(durations):
    """GreedyStream carries the step's state across chunks of random sizes."""
    for seed in range(8):
        model = _model(seed, durations, 1 + seed % 3)
        rng = np.random.default_rng(seed)
        frames = mx.array(rng.normal(0.0, 2.0, (1, 30, ENC)).astype(np.float32))
        plain = greedy_reference(model.decoder, model.joint, frames, blank_id=VOCAB,
                                 durations=durations, max_symbols=1 + seed % 3)  # fmt: skip
        stream = _feed_in_chunks(GreedyStream(model), frames[0], rng)
        _assert_same([Hypothesis(stream.tokens)], plain, f"seed {seed}")


# --- shallow fusion ---------------------------------------------------------------------------


def _arpa(seed: int) -> str:
    """A 3-gram LM of random weights over the n-grams of random sentences (every history
    and suffix present, as ARPA requires); some tokens have no unigram."""
    rng = random.Random(seed)
    tokens = rng.sample(range(VOCAB), VOCAB - 3)
    grams: list[set] = [set(), set(), set()]
    for _ in range(30):
        sentence = ["<s>", *(rng.choice(tokens) for _ in range(rng.randint(2, 8))), "</s>"]
        for n in (1, 2, 3):
            grams[n - 1].update(tuple(sentence[i : i + n]) for i in range(len(sentence) - n + 1))
    grams[0].discard(("<s>",))
    lines = ["\\data\\", *(f"ngram {n}={len(g) + (n == 1) * 2}" for n, g in enumerate(grams, 1))]
    lines += ["", "\\1-grams:", "-99\t<s>\t-0.3", f"{-rng.uniform(1, 3):.4f}\t<unk>"]
    for n, group in enumerate(grams, 1):
        if n > 1:
            lines += ["", f"\\{n}-grams:"]
        for gram in sorted(group, key=str):
            text = " ".join(w if isinstance(w, str) else chr(w + 100) for w in gram)
            backoff = f"\t{-rng.uniform(0, 1):.4f}" if n < 3 and gram[-1] != "</s>" else ""
            lines.append(f"{-rng.uniform(0, 2):.4f}\t{text}{backoff}")
    return "\n".join([*lines, "", "\\end\\", ""])


def _fusion(seed: int, tmp_path) -> list[FusionModel]:
    path = tmp_path / f"lm{seed}.arpa"
    path.write_text(_arpa(seed))
    lm = NGramLM.from_arpa(path, VOCAB)
    rng = np.random.default_rng(seed)
    phrases = {f"p{i}": rng.integers(0, VOCAB, rng.integers(1, 4)).tolist() for i in range(4)}
    tree = BoostingTree.from_phrases(list(phrases), phrases.__getitem__, VOCAB)
    lm_fused = FusionModel(lm, float(rng.uniform(1, 4)))
    tree_fused = FusionModel(tree, float(rng.uniform(1, 4)))
    return [[lm_fused], [tree_fused], [lm_fused, tree_fused], [tree_fused, lm_fused]][seed % 4]


@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
def test_fused_greedy_equals_the_plain_loop(durations, tmp_path):
    changed = Counter()
    for seed in range(16):
        model = _model(seed, durations, 1 + seed % 3)
        fusion = _fusion(seed, tmp_path)
        frames, lengths = _inputs(seed)
        cfg = model.config
        plain = greedy_reference(model.decoder, model.joint, frames, lengths, blank_id=VOCAB,
                                 durations=durations, max_symbols=cfg.max_symbols,
                                 fusion=fusion)  # fmt: skip
        for window in (None, 1, 3):
            fast = model.greedy_decoder(window)(frames, lengths, fusion)
            _assert_same(fast, plain, f"seed {seed}, window {window}")
        unfused = model.greedy(frames, lengths)
        changed["utterances"] += sum(a.ids != b.ids for a, b in zip(plain, unfused, strict=True))
    assert changed["utterances"] >= 8  # fusion changed the output of many utterances


@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
def test_fused_stream_in_chunks_equals_the_plain_loop(durations, tmp_path):
    for seed in range(4):
        model = _model(seed, durations, 2)
        fusion = _fusion(seed, tmp_path)
        rng = np.random.default_rng(seed)
        frames = mx.array(rng.normal(0.0, 2.0, (1, 30, ENC)).astype(np.float32))
        plain = greedy_reference(model.decoder, model.joint, frames, blank_id=VOCAB,
                                 durations=durations, max_symbols=2, fusion=fusion)  # fmt: skip
        stream = _feed_in_chunks(GreedyStream(model, fusion), frames[0], rng)
        _assert_same([Hypothesis(stream.tokens)], plain, f"seed {seed}")


def test_refuses_a_fusion_model_of_another_vocabulary(tmp_path):
    model = _model(0, (), 2)
    tokens = {"a": [0]}
    tree = BoostingTree.from_phrases(["a"], tokens.__getitem__, VOCAB + 1)
    frames, lengths = _inputs(0)
    with pytest.raises(ValueError, match="cannot fuse with a decoder of 12 tokens"):
        model.greedy(frames, lengths, [FusionModel(tree, 1.0)])
