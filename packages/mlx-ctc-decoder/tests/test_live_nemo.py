"""Live parity: NeMo's ConvASRDecoder + CTCDecoding (greedy, timestamps) and ours."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_ctc_decoder import CTCConfig, CTCHead, greedy_decode
from nemo_mlx_convert import map_module_state

pytestmark = pytest.mark.reference

torch = pytest.importorskip("torch", reason="live NeMo parity needs the `reference` group (torch)")
conv_asr = pytest.importorskip(
    "nemo.collections.asr.modules.conv_asr", reason="needs nemo_toolkit[asr]"
)
ctc_decoding = pytest.importorskip("nemo.collections.asr.parts.submodules.ctc_decoding")
omegaconf = pytest.importorskip("omegaconf")

VOCAB = list(
    "abcdefghijklmnopqrstuvwxyz"
)  # no punctuation: NeMo refines its offsets (an app concern)
FEAT = 48
CTC_CLASS = "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE"


def test_greedy_ids_alignment_and_offsets_match_nemo():
    torch.manual_seed(0)
    head = conv_asr.ConvASRDecoder(feat_in=FEAT, num_classes=len(VOCAB), vocabulary=VOCAB).eval()
    with torch.no_grad():
        head.decoder_layers[0].weight.mul_(4.0)  # varied decisions
    ours = CTCHead(
        CTCConfig.from_nemo({"feat_in": FEAT, "num_classes": len(VOCAB), "vocabulary": VOCAB})
    )
    state = {k: v.numpy() for k, v in head.state_dict().items()}
    mapped = map_module_state(state, "decoder.", CTC_CLASS)
    ours.load_weights([(k, mx.array(v)) for k, v in mapped.items()], strict=True)

    lengths = torch.tensor([80, 57, 3])
    encoded = torch.randn(3, FEAT, 80)
    with torch.no_grad():
        log_probs = head(encoder_output=encoded)
    cfg = omegaconf.OmegaConf.create({"strategy": "greedy_batch", "compute_timestamps": True})
    decoding = ctc_decoding.CTCDecoding(cfg, vocabulary=VOCAB)
    expected = decoding.ctc_decoder_predictions_tensor(
        log_probs, decoder_lengths=lengths, return_hypotheses=True
    )

    ours_lp = ours(mx.array(encoded.transpose(1, 2).numpy()))
    np.testing.assert_allclose(np.array(ours_lp), log_probs.numpy(), atol=1e-5)
    hyps = greedy_decode(ours_lp, mx.array(lengths.numpy()), blank_id=len(VOCAB))
    varied = set()
    for hyp, ref, n in zip(hyps, expected, lengths.tolist(), strict=True):
        assert hyp.alignment == ref.y_sequence[:n].tolist()
        chars = [VOCAB[i] for i in hyp.ids]
        assert "".join(chars) == ref.text
        offsets = [(o["start_offset"], o["end_offset"]) for o in ref.timestamp["char"]]
        assert hyp.nemo_offsets() == [(int(a), int(b)) for a, b in offsets]
        varied.update(hyp.ids)
    assert len(varied) >= 5


@pytest.mark.parametrize(("beam_size", "beta"), [(4, 0.0), (8, 0.5), (2, -0.3)])
def test_beam_nbest_matches_nemo_beam_batch(beam_size, beta):
    from nemo.collections.asr.parts.submodules.ctc_beam_decoding import BeamBatchedCTCInfer

    from mlx_ctc_decoder import beam_search

    torch.manual_seed(3)
    blank = len(VOCAB)
    logits = torch.randn(1, 60, blank + 1) * 2.5
    logits[..., blank] += 1.5  # blank-heavy, as CTC models are
    log_probs = torch.log_softmax(logits, dim=-1)
    infer = BeamBatchedCTCInfer(blank_index=blank, beam_size=beam_size, return_best_hypothesis=False,
                                beam_beta=beta, allow_cuda_graphs=False)  # fmt: skip
    (expected,) = infer(decoder_output=log_probs, decoder_lengths=torch.tensor([60]))
    ours = beam_search(log_probs[0].numpy(), blank_id=blank, beam_size=beam_size, beam_beta=beta)
    ref = expected[0].n_best_hypotheses
    assert [h.ids for h in ours] == [list(h.y_sequence.tolist()) for h in ref]
    np.testing.assert_allclose([h.score for h in ours], [float(h.score) for h in ref], rtol=1e-5)
