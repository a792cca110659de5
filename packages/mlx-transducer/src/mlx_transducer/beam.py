"""Beam search for RNNT and TDT: NeMo's `default` beam algorithms, n-best for n-best.

Per utterance, as NeMo runs them (`BeamRNNTInfer.default_beam_search`,
`BeamTDTInfer.default_beam_search`): expand the best hypothesis of the current frame with
its top-k tokens (TDT: top-k token x duration pairs) and with blank, until enough finished
hypotheses beat every open one. The arithmetic follows NeMo's to the rounding: candidate
log-probabilities are float32; the RNNT search accumulates scores in Python floats as NeMo
does, the TDT search in float32 (NeMo adds its float scores to float32 tensors there), and
merged TDT duplicates are log-added in float32. Near-ties then order as NeMo orders them.

Scores: `score` is NeMo's hypothesis score; `normalized` divides it by the sequence length
(NeMo's start symbol included) raised to `length_penalty`, and ranks the n-best. NeMo's
`score_norm=True` is `length_penalty=1.0` (the default), `score_norm=False` is 0.0; values in
between or above favour shorter or longer hypotheses less or more. NeMo sorts its n-best by
`score / len(y_sequence)` when `score_norm` (`BeamRNNTInfer.sort_nbest`,
`BeamTDTInfer.sort_nbest` in nemo/collections/asr/parts/submodules/{rnnt,tdt}_beam_decoding.py,
`score_norm=True` by default). This is not the seq2seq (Canary) beam's `length_penalty`,
GNMT's ((5 + length) / 6) ** alpha with default 0.0 (mlx-seq2seq-decoder), which follows
NeMo's `BeamSearchSequenceGenerator`; each default is the NeMo default of its search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

from .hypothesis import Token
from .networks import JointNetwork, PredictionNetwork


@dataclass
class BeamHypothesis:
    """One entry of an n-best list. `tokens[i].frame` is the frame the token was emitted at."""

    tokens: list[Token] = field(default_factory=list)
    score: float = 0.0
    normalized: float = 0.0

    @property
    def ids(self) -> list[int]:
        return [token.id for token in self.tokens]


@dataclass(eq=False)  # identity: list.remove must drop this very hypothesis
class _Hyp:
    sequence: list[int]  # NeMo's y_sequence: starts with the blank start symbol
    score: float
    state: tuple[mx.array, mx.array] | None
    frames: list[int]
    durations: list[int]
    logprobs: list[float]
    last_frame: int = 0


class _Scorer:
    """The prediction network and joint for one hypothesis at a time, with NeMo's cache."""

    def __init__(
        self,
        prednet: PredictionNetwork,
        joint: JointNetwork,
        blank_id: int,
        encoder_output: mx.array,
    ):
        self.prednet, self.joint, self.blank_id = prednet, joint, blank_id
        self.enc = joint.project_encoder(encoder_output)  # (T, H)
        self.cache: dict[tuple[int, ...], tuple[mx.array, tuple[mx.array, mx.array]]] = {}

    def predictor(self, hyp: _Hyp) -> tuple[mx.array, tuple[mx.array, mx.array]]:
        key = tuple(hyp.sequence)
        if key not in self.cache:
            last = hyp.sequence[-1]
            if last == self.blank_id:  # NeMo: predict(None): zero input and zero state
                state = self.prednet.initial_state(1, self.enc.dtype)
                x = mx.zeros((1, self.prednet.hidden), dtype=self.enc.dtype)
                out, state = _step_from_input(self.prednet, x, state)
            else:
                out, state = self.prednet(mx.array([last], dtype=mx.int32), hyp.state)
            self.cache[key] = (self.joint.project_prednet(out), state)
        return self.cache[key]

    def logits(self, frame: int, g: mx.array) -> np.ndarray:
        out = self.joint(self.enc[frame : frame + 1], g)[0]
        return np.array(out.astype(mx.float32))


def _step_from_input(prednet: PredictionNetwork, x: mx.array, state: tuple[mx.array, mx.array]):
    hs, cs = [], []
    for index, layer in enumerate(prednet.prediction["dec_rnn"].lstm):
        x, c = layer(x, state[0][index], state[1][index])
        hs.append(x)
        cs.append(c)
    return x, (mx.stack(hs), mx.stack(cs))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis in float32 (torch's order: shift by the max, then
    subtract the log of the summed exponentials)."""
    x = x.astype(np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))).astype(np.float32)


def _topk(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-values, kind="stable")[:k]
    return values[order], order


def _finish(hyps: list[_Hyp], length_penalty: float) -> list[BeamHypothesis]:
    """The n-best, ranked by score / len(sequence) ** length_penalty (NeMo's `sort_nbest`
    with `score_norm` for 1.0, without for 0.0)."""
    results = []
    for hyp in hyps:
        tokens = [
            Token(id=i, frame=f, duration=d, logprob=p)
            for i, f, d, p in zip(
                hyp.sequence[1:], hyp.frames, hyp.durations, hyp.logprobs, strict=True
            )
        ]
        normalized = (
            hyp.score / len(hyp.sequence) ** length_penalty if length_penalty else hyp.score
        )
        results.append(BeamHypothesis(tokens, hyp.score, normalized))
    return sorted(results, key=lambda h: h.normalized, reverse=True)


def beam_search_rnnt(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    encoder_output: mx.array,
    *,
    blank_id: int,
    beam_size: int = 4,
    length_penalty: float = 1.0,
) -> list[BeamHypothesis]:
    """NeMo's default RNNT beam search over one utterance's (T, D) encoder frames."""
    scorer = _Scorer(prednet, joint, blank_id, encoder_output)
    vocab = blank_id  # tokens excluding blank
    beam = min(beam_size, vocab)
    beam_k = min(beam, vocab - 1)
    kept = [_Hyp([blank_id], 0.0, None, [], [], [])]
    for frame in range(encoder_output.shape[0]):
        hyps, kept = kept, []
        while True:
            best = max(hyps, key=lambda h: h.score)
            hyps.remove(best)
            g, state = scorer.predictor(best)
            logp = _log_softmax(scorer.logits(frame, g))
            top_values, top_ids = _topk(logp[:blank_id], beam_k)
            candidates = [
                *zip(top_values.tolist(), top_ids.tolist(), strict=True),
                (float(logp[blank_id]), blank_id),
            ]
            for value, token in candidates:
                if token == blank_id:
                    kept.append(_Hyp(best.sequence[:], best.score + value, best.state, best.frames[:],
                                     best.durations[:], best.logprobs[:]))  # fmt: skip
                else:
                    hyps.append(_Hyp([*best.sequence, token], best.score + value, state, [*best.frames, frame],
                                     [*best.durations, None], [*best.logprobs, value]))  # fmt: skip
            ceiling = max(h.score for h in hyps)
            better = sorted((h for h in kept if h.score > ceiling), key=lambda h: h.score)
            if len(better) >= beam:
                kept = better
                break
    return _finish(kept, length_penalty)


def beam_search_tdt(
    prednet: PredictionNetwork,
    joint: JointNetwork,
    encoder_output: mx.array,
    *,
    blank_id: int,
    durations: tuple[int, ...],
    beam_size: int = 4,
    length_penalty: float = 1.0,
) -> list[BeamHypothesis]:
    """NeMo's default TDT beam search over one utterance's (T, D) encoder frames."""
    scorer = _Scorer(prednet, joint, blank_id, encoder_output)
    vocab = blank_id
    beam = min(beam_size, vocab)
    beam_k = min(beam, vocab - 1)
    durations_k = min(beam, len(durations))
    zero = durations.index(0) if 0 in durations else None
    smallest = min((i for i, d in enumerate(durations) if d != 0), key=lambda i: durations[i])
    kept = [_Hyp([blank_id], 0.0, None, [], [], [], last_frame=0)]
    for frame in range(encoder_output.shape[0]):
        hyps = [h for h in kept if h.last_frame == frame]
        kept = [h for h in kept if h.last_frame > frame]
        while hyps:
            best = max(hyps, key=lambda h: h.score)
            hyps.remove(best)
            g, state = scorer.predictor(best)
            logits = scorer.logits(frame, g)
            logp = _log_softmax(logits[: blank_id + 1])
            duration_logp = _log_softmax(logits[blank_id + 1 :])
            token_values, token_ids = _topk(logp[:blank_id], beam_k)
            duration_values, duration_ids = _topk(duration_logp, durations_k)
            # All (duration, token) pairs, durations major, summed in float32 as NeMo does.
            pairs = (
                (duration_values[:, None] + token_values[None, :]).reshape(-1).astype(np.float32)
            )
            pair_values, pair_ids = _topk(pairs, beam_k)
            for value, pair in zip(pair_values.tolist(), pair_ids.tolist(), strict=True):
                token = int(token_ids[pair % beam_k])
                duration = durations[int(duration_ids[pair // beam_k])]
                new = _Hyp([*best.sequence, token], _f32_sum(best.score, value), state, [*best.frames, frame],
                           [*best.durations, duration], [*best.logprobs, float(logp[token])],
                           last_frame=best.last_frame + duration)  # fmt: skip
                (hyps if duration == 0 else kept).append(new)
            for index in duration_ids.tolist():
                if index == zero:
                    if len(duration_ids) > 1:
                        continue
                    index = smallest
                score = _f32_sum(best.score, logp[blank_id], duration_logp[index])
                kept.append(_Hyp(best.sequence[:], score, best.state, best.frames[:],
                                 best.durations[:], best.logprobs[:], last_frame=best.last_frame + durations[index]))  # fmt: skip
            kept = _merge_duplicates(kept)
            if hyps:
                ceiling = max(h.score for h in hyps)
                better = sorted((h for h in kept if h.score > ceiling), key=lambda h: h.score)
                if len(better) >= beam:
                    kept = better
                    break
            else:
                kept = sorted(kept, key=lambda h: h.score, reverse=True)[:beam]
    return _finish(kept, length_penalty)


def _f32_sum(*terms: float) -> float:
    """Left-to-right sum in float32: NeMo's TDT beam adds a Python float to float32 tensors."""
    total = np.float32(terms[0])
    for term in terms[1:]:
        total = np.float32(total + np.float32(term))
    return float(total)


def _merge_duplicates(hyps: list[_Hyp]) -> list[_Hyp]:
    """Same tokens ending at the same frame (blanks whose durations add up alike): one
    hypothesis, its probability the sum, log-added in float32 as NeMo does."""
    merged: dict[tuple, _Hyp] = {}
    for hyp in sorted(hyps, key=lambda h: h.score, reverse=True):
        key = (tuple(hyp.sequence), hyp.last_frame)
        if key in merged:
            kept = merged[key]
            kept.score = float(np.logaddexp(np.float32(kept.score), np.float32(hyp.score)))
        else:
            merged[key] = hyp
    return list(merged.values())
