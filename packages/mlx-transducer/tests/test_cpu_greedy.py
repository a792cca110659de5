"""The native CPU greedy loop (cpu_greedy.py, kernels/greedy_cpu.c) against the compiled MLX
step, as test_cuda_greedy.py holds the CUDA kernel to it.

Random float32 models with small hidden sizes (for speed) and real vocabularies (1024 and
8192 tokens), TDT and RNNT, one and two LSTM layers, batches of 1, 3, 8 and 16 utterances of
uneven lengths, `max_symbols` 1, 2, 10 and None, on a dense-emission joint (tokens of
duration 0 and rare blanks: `max_symbols` tokens on most frames, issue 22's workload) and a
sparse one (mostly blanks). Ids, frames and durations identical; log-probabilities to 1e-5.
(test_greedy_reference.py holds the default decoder, now this loop on the CPU, to the plain
loop too, and test_live_nemo.py to NeMo.) Also: the fallbacks to the compiled step.
"""

from __future__ import annotations

from collections import Counter

import mlx.core as mx
import numpy as np
import pytest

from mlx_transducer import Transducer, TransducerConfig, cpu_greedy
from mlx_transducer.hypothesis import Hypothesis
from mlx_transducer.records import StepRecords, collect_hypotheses

ENC, HIDDEN = 16, 32
LOGPROB_ATOL = 1e-5
BATCHES = (1, 3, 8, 16)
RNNT_SPARSE = 3.0  # blank's extra bias in a sparse RNNT joint


@pytest.fixture(autouse=True)
def _on_the_cpu():
    device = mx.default_device()
    mx.set_default_device(mx.cpu)
    if not cpu_greedy.available():
        pytest.fail("the native loop needs a C compiler and a system BLAS (CI installs both)")
    yield
    mx.set_default_device(device)


def _model(vocab: int, durations: tuple[int, ...], layers: int, seed: int, dense: bool,
           max_symbols: int | None) -> Transducer:  # fmt: skip
    """Random weights, the joint's output sharpened; dense: blank rarely wins and a TDT
    token's duration is 0 (it stays on its frame); sparse: blank usually wins."""
    mx.random.seed(seed)
    config = TransducerConfig(
        vocab_size=vocab, pred_hidden=HIDDEN, pred_rnn_layers=layers, joint_hidden=HIDDEN,
        encoder_hidden=ENC, activation=("relu", "tanh", "sigmoid")[seed % 3],
        durations=durations, max_symbols=max_symbols,
    )  # fmt: skip
    model = Transducer(config)
    out = model.joint.joint_net[-1]
    bias = np.array(out.bias)
    if dense:
        bias[vocab] -= 4.0
        if durations:
            bias[vocab + 1 + durations.index(0)] += 20.0
    else:  # RNNT tokens stay on their frame: blank must win over more of them
        bias[vocab] += (5.5 if vocab <= 1024 else 7.0) + (0.0 if durations else RNNT_SPARSE)
    out.weight = out.weight * 6.0
    out.bias = mx.array(bias)
    embed = model.decoder.prediction["embed"]
    embed.weight = embed.weight * 3.0
    mx.eval(model.parameters())
    return model


def _inputs(batch: int, seed: int) -> tuple[mx.array, mx.array]:
    rng = np.random.default_rng(100 + seed)
    time = int(rng.integers(20, 40))
    lengths = rng.integers(0, time + 1, batch)
    lengths[rng.integers(batch)] = time
    frames = rng.normal(0.0, 2.0, (batch, time, ENC)).astype(np.float32)
    return mx.array(frames), mx.array(lengths.astype(np.int32))


def _both(model: Transducer, frames: mx.array, lengths: mx.array):
    """The native loop's hypotheses, the compiled step's (from one decoder), and the
    log-probabilities of the compiled step's tokens in float64 (`_exact`)."""
    decoder = model.greedy_decoder()
    enc_proj = model.joint.project_encoder(frames)
    decoder.kernel, kept = False, decoder._fused
    state = decoder.initial_state(frames.shape[0], enc_proj.dtype)
    _, records = decoder.run(enc_proj, lengths, state)
    assert decoder._fused is kept  # not the loop
    expected = collect_hypotheses(records, enc_proj, model.joint, decoder.blank_id, decoder.tdt)
    decoder.kernel = True
    got = decoder(frames, lengths)
    assert isinstance(decoder._fused[1], cpu_greedy.NativeGreedy)  # the loop ran
    return got, expected, _exact(model, enc_proj, records)


def _exact(model: Transducer, enc_proj: mx.array, records: StepRecords) -> list[list[float]]:
    """Each emitted token's log-probability among tokens and blank, from the joint on the
    compiled step's frames and predictor outputs evaluated in float64: the reference for
    both paths' float32 log-softmax (over 8193 outputs the compiled path's float32
    log-sum-exp is off by up to ~1.5e-5, the loop's, summed in double, by ~1e-6)."""
    steps, items = np.nonzero(records.emit)
    g = np.array(records.g, dtype=np.float64)[steps, items]
    f = np.array(enc_proj, dtype=np.float64)[items, records.frame[steps, items]]
    x = f + g
    activation = model.joint.activation
    x = (
        np.maximum(x, 0.0)
        if activation == "relu"
        else np.tanh(x)
        if activation == "tanh"
        else 1.0 / (1.0 + np.exp(-x))
    )
    out = model.joint.joint_net[-1]
    blank = model.config.blank_id
    weight = np.array(out.weight, dtype=np.float64)[: blank + 1]
    logits = x @ weight.T + np.array(out.bias, dtype=np.float64)[: blank + 1]
    top = logits.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    logprob = logits[np.arange(steps.size), records.label[steps, items]] - lse
    exact: list[list[float]] = [[] for _ in range(enc_proj.shape[0])]
    for item, value in zip(items.tolist(), logprob.tolist(), strict=True):
        exact[item].append(value)
    return exact


def _decisions(hyps: list[Hypothesis]) -> list[list[tuple]]:
    return [[(t.id, t.frame, t.duration) for t in hyp.tokens] for hyp in hyps]


def _assert_same(
    got: list[Hypothesis],
    expected: list[Hypothesis],
    exact: list[list[float]],
    what: str,
    atol: float = LOGPROB_ATOL,
) -> None:
    """Every utterance's ids, frames and durations as the compiled step's; the
    log-probabilities to `atol` of the float64 ones."""
    assert _decisions(got) == _decisions(expected), what
    ours = [t.logprob for hyp in got for t in hyp.tokens]
    reference = [value for item in exact for value in item]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=atol, err_msg=what)


@pytest.mark.parametrize("vocab", [1024, 8192])
@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
@pytest.mark.parametrize("dense", [True, False], ids=["dense", "sparse"])
@pytest.mark.parametrize("max_symbols", [1, 2, 10])
def test_native_loop_equals_the_compiled_step(vocab, durations, dense, max_symbols):
    full, frames_seen, emitting = 0, 0, 0
    for seed, batch in enumerate(BATCHES):
        model = _model(vocab, durations, 1 + seed % 2, seed, dense, max_symbols)
        frames, lengths = _inputs(batch, seed)
        got, expected, exact = _both(model, frames, lengths)
        _assert_same(got, expected, exact, f"seed {seed}, batch {batch}")
        for hyp in expected:
            per_frame = Counter(hyp.frames)
            full += sum(n == max_symbols for n in per_frame.values())
            emitting += len(per_frame)
        frames_seen += int(np.array(lengths).sum())
    if dense:  # max_symbols tokens on most frames
        assert full > frames_seen / 2
    else:  # tokens on some frames, mostly blanks
        assert 0 < emitting < frames_seen / 2


def _counting(model: Transducer) -> Transducer:
    """For `max_symbols=None` (random weights could emit on one frame for ever): the last
    LSTM layer's first unit counts the tokens emitted (its cell grows by ~0.1 each) and
    blank's logit grows with it through the joint's first unit: ~15 tokens on the first
    frame, a few on later ones, then blanks. The other units stay random."""
    lstm = model.decoder.prediction["dec_rnn"].lstm[-1]
    rows = [q * HIDDEN for q in range(4)]  # unit 0's input, forget, cell and output gates
    wx, wh, bias = np.array(lstm.Wx), np.array(lstm.Wh), np.array(lstm.bias)
    wx[rows], wh[rows] = 0.0, 0.0
    bias[rows] = [10.0, 10.0, float(np.arctanh(0.1)), 10.0]
    lstm.Wx, lstm.Wh, lstm.bias = mx.array(wx), mx.array(wh), mx.array(bias)
    joint, out = model.joint, model.joint.joint_net[-1]
    enc_weight, enc_bias = np.array(joint.enc.weight), np.array(joint.enc.bias)
    enc_weight[0], enc_bias[0] = 0.0, 0.0
    pred_weight, pred_bias = np.array(joint.pred.weight), np.array(joint.pred.bias)
    pred_weight[0], pred_bias[0] = 0.0, 0.0
    pred_weight[0, 0] = 1.0
    weight, out_bias = np.array(out.weight), np.array(out.bias)
    blank = model.config.blank_id
    weight[:, 0] = 0.0
    # blank wins past tanh(0.1 n) = 0.9, by up to 100 (over the largest of 8192 tokens)
    weight[blank, 0], out_bias[blank] = 1000.0, -900.0
    joint.enc.weight, joint.enc.bias = mx.array(enc_weight), mx.array(enc_bias)
    joint.pred.weight, joint.pred.bias = mx.array(pred_weight), mx.array(pred_bias)
    out.weight, out.bias = mx.array(weight), mx.array(out_bias)
    return model


@pytest.mark.parametrize("vocab", [1024, 8192])
@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
def test_no_limit_on_tokens_per_frame(vocab, durations):
    most = 0
    for seed, batch in enumerate(BATCHES):
        model = _model(vocab, durations, 1 + seed % 2, seed, True, None)
        model.joint.activation = "relu"  # the counting unit passes through relu
        frames, lengths = _inputs(batch, seed)
        got, expected, exact = _both(_counting(model), frames, lengths)
        # blank's logit is 1000 x - 900 here: float32 rounds it (and its share of the
        # log-sum-exp) to ~2e-5, as test_greedy_reference.py's no-limit case allows
        _assert_same(got, expected, exact, f"seed {seed}, batch {batch}", atol=1e-4)
        most = max([most, *(max(Counter(h.frames).values(), default=0) for h in expected)])
    assert most > 10  # more than the default limit


@pytest.mark.parametrize("durations", [(0, 1, 2, 3, 4), ()], ids=["tdt", "rnnt"])
@pytest.mark.parametrize("limit", [None, 7], ids=["whole", "in-calls-of-7-steps"])
def test_groups_of_a_batch_give_the_batch_records(durations, limit):
    """A batch split into groups that loop at once (one per thread) gives the records of
    the batch in one group: the same decisions, frames and step rows (a group that finishes
    first holds past-end rows), log-probabilities to float32 rounding; also when the steps
    run out inside a call and the next call continues (`limit`)."""
    model = _model(1024, durations, 2, 3, True, 10)
    frames, lengths = _inputs(16, 5)
    decoder = model.greedy_decoder()
    decoder(frames, lengths)
    fused = decoder._fused[1]
    assert isinstance(fused, cpu_greedy.NativeGreedy)
    enc_proj = model.joint.project_encoder(frames)

    def records(groups: int) -> tuple[np.ndarray, np.ndarray]:
        state = decoder.initial_state(frames.shape[0], enc_proj.dtype)
        recs, lps = [], []
        while True:
            state, rec, lp = fused.run(enc_proj, lengths, state, limit or 10_000, groups)
            recs.append(rec)
            lps.append(lp)
            if limit is None or len(rec) < limit:
                return np.concatenate(recs), np.concatenate(lps)

    whole, whole_lp = records(1)
    assert whole[..., 0].sum() > 100  # tokens in every utterance of some length
    for groups in (2, 3, 16, 40):
        rec, lp = records(groups)
        np.testing.assert_array_equal(rec, whole, err_msg=f"{groups} groups")
        np.testing.assert_allclose(lp, whole_lp, rtol=0, atol=LOGPROB_ATOL)


def test_new_weights_are_followed():
    """The loop's float32 copies are made anew when the parameter arrays are replaced."""
    model = _model(1024, (0, 1, 2, 3, 4), 2, 0, True, 10)
    frames, lengths = _inputs(3, 0)
    _both(model, frames, lengths)
    out = model.joint.joint_net[-1]
    out.weight = mx.random.normal(out.weight.shape) * 2.0
    _assert_same(*_both(model, frames, lengths), "after new weights")


def test_kernel_false_and_the_switch_keep_the_compiled_step(monkeypatch):
    """`kernel = False`, and `MLX_TRANSDUCER_NATIVE=off`, give the compiled step."""
    model = _model(1024, (0, 1, 2, 3, 4), 1, 0, True, 10)
    frames, lengths = _inputs(3, 1)
    decoder = model.greedy_decoder()
    decoder.kernel = False
    expected = decoder(frames, lengths)
    assert decoder._fused is None
    decoder.kernel = True
    monkeypatch.setenv("MLX_TRANSDUCER_NATIVE", "off")
    assert not cpu_greedy.available()
    assert decoder(frames, lengths) == expected  # the same step: the same tokens
    assert decoder._fused is None
    monkeypatch.delenv("MLX_TRANSDUCER_NATIVE")
    assert [h.ids for h in decoder(frames, lengths)] == [h.ids for h in expected]
    assert decoder._fused is not None


def test_other_dtypes_keep_the_compiled_step():
    model = _model(1024, (0, 1, 2, 3, 4), 1, 0, True, 10)
    model.set_dtype(mx.bfloat16)
    frames, lengths = _inputs(3, 2)
    decoder = model.greedy_decoder()
    decoder(frames.astype(mx.bfloat16), lengths)
    assert decoder._fused is None
