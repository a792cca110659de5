"""NVIDIA's published model configs are read by every `from_nemo`, and unknown keys refused.

The configs in tests/reference/configs/ are the checkpoints' own `model_config.yaml`
(sources in each file's header). Every section's constructor must take them as they are,
full size, and each constructor follows one policy: a key it neither reads nor knows to
leave inference unchanged is an error naming the key, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlx_audio_frontend import LogMelConfig
from mlx_conformer import ConformerConfig
from mlx_ctc_decoder import CTCConfig
from mlx_seq2seq_decoder import DecoderConfig
from mlx_transducer import TransducerConfig

CONFIGS = Path(__file__).resolve().parent / "reference" / "configs"
# the complete published ones (the others are partial or recipes: see their headers)
PUBLISHED = ["parakeet-tdt-0.6b-v2", "parakeet-tdt-0.6b-v3",
             "stt_en_fastconformer_hybrid_large_streaming_multi", "canary-180m-flash"]  # fmt: skip


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", PUBLISHED)
def test_every_section_of_a_published_config_is_read(name):
    cfg = _config(name)
    frontend = LogMelConfig.from_nemo(cfg["preprocessor"])
    encoder = ConformerConfig.from_nemo(cfg["encoder"])
    assert frontend.n_mels == cfg["preprocessor"]["features"] == encoder.feat_in
    assert (encoder.d_model, encoder.n_layers) == (
        cfg["encoder"]["d_model"],
        cfg["encoder"]["n_layers"],
    )
    if "joint" in cfg:
        transducer = TransducerConfig.from_nemo(cfg)
        assert transducer.vocab_size == cfg["joint"]["num_classes"]
        assert transducer.pred_rnn_layers == cfg["decoder"]["prednet"]["pred_rnn_layers"]
        assert len(transducer.durations) == cfg["joint"].get("num_extra_outputs", 0)
    if cfg.get("target", "").endswith("EncDecHybridRNNTCTCBPEModel"):
        ctc = CTCConfig.from_nemo(cfg["aux_ctc"]["decoder"])
        assert ctc.vocab_size == len(cfg["aux_ctc"]["decoder"]["vocabulary"])
    if "transf_decoder" in cfg:
        decoder = DecoderConfig.from_nemo(cfg, num_classes=cfg["head"]["num_classes"])
        assert decoder.num_layers == cfg["transf_decoder"]["config_dict"]["num_layers"]
        assert decoder.final_layer_norm == cfg["transf_decoder"]["pre_ln_final_layer_norm"]


# NeMo's recipes of the character-vocabulary Conformer classes (training configs: `model:` with
# OmegaConf interpolations), the configs of tests/fixtures/checkpoints' char fixtures
RECIPES = ["stt_zh_conformer_transducer_large", "conformer_ctc_char",
           "conformer_hybrid_transducer_ctc_char"]  # fmt: skip


def _recipe(name: str) -> dict:
    """A recipe's `model` section, its `${model.a.b}` interpolations resolved."""
    model = _config(name)["model"]

    def resolve(node):
        if isinstance(node, dict):
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        if isinstance(node, str) and node.startswith("${model.") and node.endswith("}"):
            value = model
            for part in node[len("${model.") : -1].split("."):
                value = value[part]
            return resolve(value)
        return node

    return resolve(model)


@pytest.mark.parametrize("name", RECIPES)
def test_the_original_conformer_of_a_char_recipe_is_read_at_full_size(name):
    """Not the FastConformer: striding x4 subsampling with d_model channels, kernel 31,
    xscaling, at the recipe's real size; the CTC head's vocabulary is the labels."""
    cfg = _recipe(name)
    encoder = ConformerConfig.from_nemo(cfg["encoder"])
    assert (encoder.subsampling, encoder.subsampling_factor, encoder.conv_kernel_size) == (
        "striding",
        4,
        31,
    )
    assert encoder.xscaling
    assert encoder.subsampling_conv_channels == encoder.d_model
    assert (encoder.d_model, encoder.n_layers) == (
        cfg["encoder"]["d_model"],
        cfg["encoder"]["n_layers"],
    )
    assert LogMelConfig.from_nemo(cfg["preprocessor"]).n_mels == encoder.feat_in
    ctc = cfg["decoder"] if "joint" not in cfg else (cfg.get("aux_ctc") or {}).get("decoder")
    if ctc is not None:
        assert CTCConfig.from_nemo({**ctc, "feat_in": encoder.d_model}).vocab_size == len(
            cfg["labels"]
        )


def _with(cfg: dict, path: str, key: str) -> dict:
    """`cfg` with `key: 1` added to the section at dotted `path`."""
    section = cfg
    for part in path.split("."):
        section = section[part]
    section[key] = 1
    return cfg


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda c: LogMelConfig.from_nemo(c["preprocessor"]), "preprocessor"),
        (lambda c: ConformerConfig.from_nemo(c["encoder"]), "encoder"),
        (TransducerConfig.from_nemo, "decoder"),
        (TransducerConfig.from_nemo, "decoder.prednet"),
        (TransducerConfig.from_nemo, "joint"),
        (TransducerConfig.from_nemo, "joint.jointnet"),
        (lambda c: CTCConfig.from_nemo(c["aux_ctc"]["decoder"]), "aux_ctc.decoder"),
        (lambda c: DecoderConfig.from_nemo(c, num_classes=8), "transf_decoder"),
        (lambda c: DecoderConfig.from_nemo(c, num_classes=8), "transf_decoder.config_dict"),
        (lambda c: DecoderConfig.from_nemo(c, num_classes=8), "head"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_an_unknown_key_is_refused_by_name(build, path):
    name = (
        "canary-180m-flash"
        if path.startswith(("transf", "head"))
        else "stt_en_fastconformer_hybrid_large_streaming_multi"
    )
    cfg = _with(_config(name), path, "frobnicate")
    with pytest.raises(ValueError, match="frobnicate"):
        build(cfg)
