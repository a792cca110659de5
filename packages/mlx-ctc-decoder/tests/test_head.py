"""`CTCHead.from_nemo`: the model class decides where a NeMo model keeps its CTC head."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from mlx_ctc_decoder import CTCHead

MODELS = "nemo.collections.asr.models."
HYBRID = MODELS + "hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel"
CTC = MODELS + "ctc_bpe_models.EncDecCTCModelBPE"
RNNT = MODELS + "rnnt_bpe_models.EncDecRNNTBPEModel"
HEAD = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 8,
        "num_classes": 5, "vocabulary": list("abcde")}  # fmt: skip
CONFIG = {"decoder": HEAD, "aux_ctc": {"decoder": HEAD}}


def _weights(prefix: str) -> dict[str, mx.array]:
    rng = np.random.default_rng(0)
    return {
        f"{prefix}decoder_layers.0.weight": mx.array(rng.standard_normal((6, 1, 8))),
        f"{prefix}decoder_layers.0.bias": mx.array(rng.standard_normal(6)),
        "encoder.out_proj.weight": mx.zeros((2, 2)),  # another module's: left alone
    }


def test_hybrid_head_is_aux_ctc_and_ctc_decoder_tensors():
    assert CTCHead.section(CONFIG, HYBRID) == (HEAD, "ctc_decoder.")
    weights = _weights("ctc_decoder.")
    head = CTCHead.from_nemo(CONFIG, weights, HYBRID)
    assert head is not None
    np.testing.assert_array_equal(
        head.decoder_layers[0].bias, weights["ctc_decoder.decoder_layers.0.bias"]
    )


def test_ctc_model_head_is_its_decoder():
    assert CTCHead.section(CONFIG, CTC) == (HEAD, "decoder.")
    assert CTCHead.from_nemo(CONFIG, _weights("decoder."), CTC) is not None


def test_transducer_with_an_unused_aux_ctc_section_has_no_head():
    assert CTCHead.section(CONFIG, RNNT) is None
    assert CTCHead.from_nemo(CONFIG, _weights("ctc_decoder."), RNNT) is None
