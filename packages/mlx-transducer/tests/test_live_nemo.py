"""Live parity: NeMo's RNNTDecoder / RNNTJoint / GreedyBatched{RNNT,TDT}Infer and ours.

Same random weights, random encoder frames scaled so that decisions vary; token ids,
emission frames and TDT durations must be identical. Runs where NeMo is importable.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_transducer import Transducer, TransducerConfig

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
rnnt = pytest.importorskip("nemo.collections.asr.modules.rnnt", reason="needs nemo_toolkit[asr]")
greedy = pytest.importorskip("nemo.collections.asr.parts.submodules.rnnt_greedy_decoding")

VOCAB, ENC, PRED, JOINT = 30, 48, 32, 40


def _nemo_modules(durations: list[int], layers: int, dropout: float, blank_bias: float = 0.0):
    torch.manual_seed(0)
    decoder = rnnt.RNNTDecoder(
        prednet={"pred_hidden": PRED, "pred_rnn_layers": layers, "dropout": 0.0},
        vocab_size=VOCAB,
        blank_as_pad=True,
    ).eval()
    joint = rnnt.RNNTJoint(
        jointnet={
            "joint_hidden": JOINT,
            "activation": "relu",
            "encoder_hidden": ENC,
            "pred_hidden": PRED,
            "dropout": dropout,
        },
        num_classes=VOCAB,
        num_extra_outputs=len(durations),
    ).eval()
    with torch.no_grad():  # sharper decisions than the init gives, so tokens vary
        joint.joint_net[-1].weight.mul_(6.0)
        decoder.prediction["embed"].weight.mul_(3.0)
        # NeMo's default RNNT beam search expands tokens on one frame without a bound; with
        # random weights blank must be likely enough for it to finish in reasonable time.
        joint.joint_net[-1].bias[VOCAB] += blank_bias
    return decoder, joint


def _ours(
    decoder, joint, durations: list[int], layers: int, dropout: float, max_symbols: int
) -> Transducer:
    config = TransducerConfig(
        vocab_size=VOCAB, pred_hidden=PRED, pred_rnn_layers=layers, joint_hidden=JOINT,
        encoder_hidden=ENC, joint_dropout=bool(dropout), durations=tuple(durations), max_symbols=max_symbols,
    )  # fmt: skip
    model = Transducer(config)
    weights = []
    for name, tensor in {**{f"decoder.{k}": v for k, v in decoder.state_dict().items()},
                         **{f"joint.{k}": v for k, v in joint.state_dict().items()}}.items():  # fmt: skip
        weights.append((name, tensor.numpy()))
    from nemo_mlx_convert.mapping import map_state_dict

    mapped = map_state_dict(
        dict(weights), "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel"
    )
    model.load_weights([(k, mx.array(v)) for k, v in mapped.tensors.items()], strict=True)
    return model


@pytest.mark.parametrize(
    ("durations", "layers", "dropout", "max_symbols"),
    [
        ([0, 1, 2, 3, 4], 1, 0.2, 10),  # TDT as parakeet-tdt
        ([0, 1, 2, 3, 4], 2, 0.0, 2),  # TDT, tight max_symbols, joint_net.1
        ([], 2, 0.2, 10),  # RNNT
        ([], 1, 0.2, 1),  # RNNT, one symbol per frame
    ],
)
def test_greedy_batch_matches_nemo(durations, layers, dropout, max_symbols):
    decoder, joint = _nemo_modules(durations, layers, dropout)
    model = _ours(decoder, joint, durations, layers, dropout, max_symbols)
    if durations:
        infer = greedy.GreedyBatchedTDTInfer(
            decoder, joint, blank_index=VOCAB, durations=durations, max_symbols_per_step=max_symbols,
            include_duration=True, use_cuda_graph_decoder=False,
        )  # fmt: skip
    else:
        infer = greedy.GreedyBatchedRNNTInfer(
            decoder,
            joint,
            blank_index=VOCAB,
            max_symbols_per_step=max_symbols,
            use_cuda_graph_decoder=False,
        )
    torch.manual_seed(1)
    lengths = torch.tensor([60, 41, 7, 1])
    encoded = torch.randn(4, ENC, 60) * 2.0
    with torch.no_grad():
        (expected,) = infer(encoder_output=encoded, encoded_lengths=lengths)
    frames = mx.array(encoded.transpose(1, 2).numpy())
    ours = model.greedy(frames, mx.array(lengths.numpy()))
    distinct = set()
    for window in (None, 1, 2, 5, 8):  # frames evaluated per decoding step
        hyps = model.greedy_decoder(window)(frames, mx.array(lengths.numpy()))
        for hyp, ref in zip(hyps, expected, strict=True):
            ids = ref.y_sequence.tolist()
            distinct.update(ids)
            assert hyp.ids == ids, window
            assert hyp.frames == ref.timestamp.tolist(), window
            if durations:
                assert hyp.durations == ref.token_duration.tolist(), window
    assert len(distinct) >= 5  # the decisions really varied
    for i in range(4):  # an utterance alone decodes as in the batch
        alone = model.greedy(mx.array(encoded[i : i + 1, :, : lengths[i]].transpose(1, 2).numpy()))
        assert alone[0].ids == ours[i].ids


beam_decoding = pytest.importorskip("nemo.collections.asr.parts.submodules.rnnt_beam_decoding")
tdt_beam_decoding = pytest.importorskip("nemo.collections.asr.parts.submodules.tdt_beam_decoding")


@pytest.mark.parametrize(
    ("durations", "beam_size", "score_norm"),
    [([0, 1, 2, 3, 4], 4, True), ([0, 1, 2, 3, 4], 2, False), ([], 4, True), ([], 3, False)],
)
def test_default_beam_search_nbest_matches_nemo(durations, beam_size, score_norm):
    decoder, joint = _nemo_modules(durations, 1, 0.2, blank_bias=4.0 if durations else 8.0)
    model = _ours(decoder, joint, durations, 1, 0.2, 10)
    if durations:
        infer = tdt_beam_decoding.BeamTDTInfer(
            decoder, joint, durations=durations, beam_size=beam_size, search_type="default",
            score_norm=score_norm, return_best_hypothesis=False,
        )  # fmt: skip
    else:
        infer = beam_decoding.BeamRNNTInfer(
            decoder, joint, beam_size=beam_size, search_type="default", score_norm=score_norm,
            return_best_hypothesis=False,
        )  # fmt: skip
    torch.manual_seed(2)
    lengths = torch.tensor([20, 11])
    encoded = torch.randn(2, ENC, 20) * 2.0
    with torch.no_grad():
        (expected,) = infer(encoder_output=encoded, encoded_lengths=lengths)
    ours = model.beam(mx.array(encoded.transpose(1, 2).numpy()), mx.array(lengths.numpy()),
                      beam_size=beam_size, length_penalty=float(score_norm))  # fmt: skip
    for nbest, ref in zip(ours, expected, strict=True):
        ref_hyps = ref.n_best_hypotheses
        assert [h.ids for h in nbest] == [h.y_sequence.tolist() for h in ref_hyps]
        np.testing.assert_allclose([h.score for h in nbest], [h.score for h in ref_hyps], rtol=1e-5)
        for ours_hyp, ref_hyp in zip(nbest, ref_hyps, strict=True):
            stamps = (
                [t.frame + (t.duration or 0) for t in ours_hyp.tokens]
                if durations
                else ours_hyp.tokens and [t.frame for t in ours_hyp.tokens]
            )
            assert (stamps or []) == list(ref_hyp.timestamp)
