"""NeMo state-dict names and layouts -> the MLX model packages' names and layouts.

The model packages use NeMo's own parameter names (so do the existing MLX ports, whose
directories therefore load as they are). What changes:

- convolution weights go channels-last: Conv1d (out, in, k) -> (out, k, in) and Conv2d
  (out, in, kh, kw) -> (out, kh, kw, in), as MLX convolutions store them;
- each LSTM layer `lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_lN` becomes
  `lstm.N.{Wx,Wh,bias}` with `bias = bias_ih + bias_hh` (gate order i, f, g, o is the same
  in torch and MLX);
- Canary's Transformer decoder (`transf_decoder`, `log_softmax`, `encoder_decoder_proj`)
  is renamed to mlx-seq2seq-decoder's names under `transf_decoder.` (see `_SEQ2SEQ`); its
  fixed positional table is kept as `embedding.position_embedding.weight`, and NeMo's
  token-type embedding, which its generators never use, is dropped;
- Sortformer's Transformer encoder (`transformer_encoder`) takes the same attention and
  feed-forward names (`first_sub_layer.query_net` -> `self_attn.query`, `second_sub_layer` ->
  `ffn`; see `_TRANSFORMER_ENCODER`); its `sortformer_modules.*` keep their names, but for
  `hidden_to_spks`, which NeMo's inference never calls (dropped);
- a prompt model's `prompt_kernel.{0,2}.*` (Nemotron 3.5 ASR's language projection) keep
  their names and layouts, as do a multitalker model's speaker kernels
  (`spk_kernels.<layer>.{0,3}.*`, `bg_spk_kernels.<layer>.{0,3}.*`);
- the preprocessor's `window` and `fb` buffers are dropped (mlx-audio-frontend computes
  both exactly, bit for bit for the filterbank), as is every `num_batches_tracked`.

Every tensor must match a rule: a key no rule knows is an error naming it, never a
silent skip, so a variant we have not checked cannot convert into a wrong model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import ConversionError

_I = r"\d+"
_DROPPED = {
    r"preprocessor\.featurizer\.(window|fb)": "recomputed exactly by mlx-audio-frontend",
    r".+\.num_batches_tracked": "training-only batch-norm counter",
    r"loss\.weight": "the training loss's class weights (frame classification)",
    r"transf_decoder\._embedding\.token_type_embedding\.weight": (
        "token types are never passed by NeMo's sequence generators"
    ),
    r"sortformer_modules\.hidden_to_spks\.(weight|bias)": (
        "Sortformer's two-frame head, never called at inference"
    ),
}
_ENCODER = (
    rf"encoder\.pre_encode\.conv\.{_I}\.(weight|bias)",
    r"encoder\.pre_encode\.out\.(weight|bias)",
    rf"encoder\.layers\.{_I}\.norm_(feed_forward1|feed_forward2|self_att|conv|out)\.(weight|bias)",
    rf"encoder\.layers\.{_I}\.feed_forward[12]\.linear[12]\.(weight|bias)",
    rf"encoder\.layers\.{_I}\.self_attn\.linear_(q|k|v|out|pos)\.(weight|bias)",
    rf"encoder\.layers\.{_I}\.self_attn\.pos_bias_[uv]",
    rf"encoder\.layers\.{_I}\.conv\.(pointwise_conv1|pointwise_conv2|depthwise_conv)\.(weight|bias)",
    rf"encoder\.layers\.{_I}\.conv\.batch_norm\.(weight|bias|running_mean|running_var)",
    r"encoder\.out_proj\.(weight|bias)",
)
_TRANSDUCER = (
    r"decoder\.prediction\.embed\.weight",
    rf"decoder\.prediction\.dec_rnn\.lstm\.(weight_ih|weight_hh|bias_ih|bias_hh)_l{_I}",
    r"joint\.(pred|enc)\.(weight|bias)",
    rf"joint\.joint_net\.{_I}\.(weight|bias)",
)
# NeMo's language-ID prompt projection after the encoder (`PromptStreamingMixin`), kept
# under its NeMo names for mlx-conformer's `LanguagePrompt`: Linear, ReLU (no tensors), Linear.
_PROMPT = r"prompt_kernel\.[02]\.(weight|bias)"
# NeMo's speaker kernels (`SpeakerKernelMixin`, multitalker ASR): per encoder layer index, an
# `ff` kernel Linear, ReLU, Dropout, Linear (tensors at 0 and 3), for the target speaker and
# (`add_bg_spk_kernel`) the background speakers; kept under their NeMo names for mlx-conformer.
_SPEAKER_KERNELS = rf"(bg_)?spk_kernels\.{_I}\.[03]\.(weight|bias)"
# NeMo's ConvASREncoder (MarbleNet frame VAD): JasperBlocks of masked convolutions
# (`mconv.<i>`, residual `res.<j>.<i>`) and batch norms, kept under their NeMo names for
# mlx-frame-vad; its frame classifier is NeMo's MultiLayerPerceptron (`decoder.layer<i>`).
_CONVASR_CONV = rf"encoder\.encoder\.{_I}\.(mconv|res\.{_I})\.{_I}\.conv\.weight"
_CONVASR = (
    _CONVASR_CONV,
    rf"encoder\.encoder\.{_I}\.(mconv|res\.{_I})\.{_I}\.(weight|bias|running_mean|running_var)",
)
_MLP_HEAD = rf"decoder\.layer{_I}\.(weight|bias)"
_CTC_HEAD = r"decoder\.decoder_layers\.0\.(weight|bias)"
_HYBRID_CTC_HEAD = r"ctc_decoder\.decoder_layers\.0\.(weight|bias)"

# Canary's decoder: NeMo name -> mlx-seq2seq-decoder name (under `transf_decoder.`).
_SEQ2SEQ = (
    (r"transf_decoder\._embedding\.position_embedding\.pos_enc", "embedding.position_embedding.weight"),
    (r"transf_decoder\._embedding\.(position_embedding|token_embedding|layer_norm)\.(weight|bias)",
     r"embedding.\1.\2"),
    (r"transf_decoder\._decoder\.layers\.(\d+)\.(layer_norm_[123])\.(weight|bias)", r"layers.\1.\2.\3"),
    (r"transf_decoder\._decoder\.layers\.(\d+)\.first_sub_layer\.(query|key|value)_net\.(weight|bias)",
     r"layers.\1.self_attn.\2.\3"),
    (r"transf_decoder\._decoder\.layers\.(\d+)\.first_sub_layer\.out_projection\.(weight|bias)",
     r"layers.\1.self_attn.out.\2"),
    (r"transf_decoder\._decoder\.layers\.(\d+)\.second_sub_layer\.(query|key|value)_net\.(weight|bias)",
     r"layers.\1.cross_attn.\2.\3"),
    (r"transf_decoder\._decoder\.layers\.(\d+)\.second_sub_layer\.out_projection\.(weight|bias)",
     r"layers.\1.cross_attn.out.\2"),
    (r"transf_decoder\._decoder\.layers\.(\d+)\.third_sub_layer\.(dense_in|dense_out)\.(weight|bias)",
     r"layers.\1.ffn.\2.\3"),
    (r"transf_decoder\._decoder\.final_layer_norm\.(weight|bias)", r"final_layer_norm.\1"),
    (r"encoder_decoder_proj\.(weight|bias)", r"memory_proj.\1"),
)  # fmt: skip
_SEQ2SEQ_RULES = tuple((re.compile(p), r) for p, r in _SEQ2SEQ)
# Sortformer's Transformer encoder: NeMo name -> mlx-diarization's (the attention and
# feed-forward are mlx-seq2seq-decoder's, so their names are the decoder's above).
_TRANSFORMER_ENCODER = (
    (r"transformer_encoder\.layers\.(\d+)\.(layer_norm_[12])\.(weight|bias)",
     r"transformer_encoder.layers.\1.\2.\3"),
    (r"transformer_encoder\.layers\.(\d+)\.first_sub_layer\.(query|key|value)_net\.(weight|bias)",
     r"transformer_encoder.layers.\1.self_attn.\2.\3"),
    (r"transformer_encoder\.layers\.(\d+)\.first_sub_layer\.out_projection\.(weight|bias)",
     r"transformer_encoder.layers.\1.self_attn.out.\2"),
    (r"transformer_encoder\.layers\.(\d+)\.second_sub_layer\.(dense_in|dense_out)\.(weight|bias)",
     r"transformer_encoder.layers.\1.ffn.\2.\3"),
    (r"transformer_encoder\.final_layer_norm\.(weight|bias)", r"transformer_encoder.final_layer_norm.\1"),
)  # fmt: skip
_TRANSFORMER_ENCODER_RULES = tuple((re.compile(p), r) for p, r in _TRANSFORMER_ENCODER)
_SORTFORMER_HEAD = r"sortformer_modules\.(encoder_proj|first_hidden_to_hidden|single_hidden_to_spks)\.(weight|bias)"
_HEAD_LAYER = re.compile(r"log_softmax\.mlp\.layer(\d+)\.(weight|bias)")

# NeMo target class -> the families of tensors such a model holds. The character-vocabulary
# classes (`EncDecRNNTModel`, `EncDecCTCModel`, `EncDecHybridRNNTCTCModel`) hold the same
# modules under the same names as their BPE subclasses; only the vocabulary differs.
_ASR = "nemo.collections.asr.models"
MODEL_CLASSES: dict[str, tuple[str, ...]] = {
    f"{_ASR}.rnnt_bpe_models.EncDecRNNTBPEModel": (*_ENCODER, *_TRANSDUCER),
    f"{_ASR}.ctc_bpe_models.EncDecCTCModelBPE": (*_ENCODER, _CTC_HEAD),
    f"{_ASR}.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel": (
        *_ENCODER,
        *_TRANSDUCER,
        _HYBRID_CTC_HEAD,
    ),
    # NeMo's end-of-utterance models: an RNNT model (and a hybrid RNNT + CTC one) whose
    # vocabulary holds <EOU> / <EOB>
    f"{_ASR}.asr_eou_models.EncDecRNNTBPEEOUModel": (*_ENCODER, *_TRANSDUCER),
    f"{_ASR}.asr_eou_models.EncDecHybridRNNTCTCBPEEOUModel": (
        *_ENCODER,
        *_TRANSDUCER,
        _HYBRID_CTC_HEAD,
    ),
    f"{_ASR}.rnnt_models.EncDecRNNTModel": (*_ENCODER, *_TRANSDUCER),
    f"{_ASR}.ctc_models.EncDecCTCModel": (*_ENCODER, _CTC_HEAD),
    f"{_ASR}.hybrid_rnnt_ctc_models.EncDecHybridRNNTCTCModel": (
        *_ENCODER,
        *_TRANSDUCER,
        _HYBRID_CTC_HEAD,
    ),
    # Prompt models (Nemotron 3.5 ASR): the two above with the prompt projection. NeMo builds
    # it when `model_defaults.initialize_prompt_feature` is set; without it the checkpoint
    # holds no `prompt_kernel.*`, which the loader then tells by what is there.
    f"{_ASR}.rnnt_bpe_models_prompt.EncDecRNNTBPEModelWithPrompt": (
        *_ENCODER,
        *_TRANSDUCER,
        _PROMPT,
    ),
    f"{_ASR}.hybrid_rnnt_ctc_bpe_models_prompt.EncDecHybridRNNTCTCBPEModelWithPrompt": (
        *_ENCODER,
        *_TRANSDUCER,
        _HYBRID_CTC_HEAD,
        _PROMPT,
    ),
    # Multitalker ASR (multitalker-parakeet-streaming-0.6b-v1): an RNNT model with speaker kernels
    f"{_ASR}.multitalker_asr_models.EncDecMultiTalkerRNNTBPEModel": (
        *_ENCODER,
        *_TRANSDUCER,
        _SPEAKER_KERNELS,
    ),
    f"{_ASR}.aed_multitask_models.EncDecMultiTaskModel": (
        *_ENCODER,
        *(p for p, _ in _SEQ2SEQ),
        _HEAD_LAYER.pattern,
    ),
    f"{_ASR}.classification_models.EncDecFrameClassificationModel": (*_CONVASR, _MLP_HEAD),
    # Sortformer diarization (mlx-diarization): FastConformer, Transformer encoder, head
    f"{_ASR}.sortformer_diar_models.SortformerEncLabelModel": (
        *_ENCODER,
        *(p for p, _ in _TRANSFORMER_ENCODER),
        _SORTFORMER_HEAD,
    ),
}
# Classes whose encoder is a ConvASREncoder rather than a (Fast)Conformer.
_CONVASR_CLASSES = (f"{_ASR}.classification_models.EncDecFrameClassificationModel",)
_CONV_WEIGHTS = (
    rf"encoder\.pre_encode\.conv\.{_I}\.weight",
    rf"encoder\.layers\.{_I}\.conv\.(pointwise_conv1|pointwise_conv2|depthwise_conv)\.weight",
    r"(ctc_)?decoder\.decoder_layers\.0\.weight",
    _CONVASR_CONV,
)
_LSTM = re.compile(
    r"(?P<prefix>.+\.lstm)\.(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh)_l(?P<layer>\d+)"
)


@dataclass
class MappedWeights:
    """Converted tensors by MLX name, and what was dropped on purpose (name -> reason)."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


# Encoders NeMo's ASR classes can hold that no model package implements, and the checkpoints
# users know them from (for the one-line refusal).
_OTHER_ENCODERS = {
    "ConvASREncoder": "QuartzNet, Jasper, Citrinet",
    "SqueezeformerEncoder": "Squeezeformer",
    "ParallelConvASREncoder": "ContextNet-style",
    "RNNEncoder": "LSTM",
}


def supported_classes() -> list[str]:
    return sorted(MODEL_CLASSES)


def encoder_problem(config: Mapping, model_class: str) -> str | None:
    """None if the model's encoder is the one its class is converted with, else why not, in
    one line naming class and encoder: a `ConformerEncoder` (Conformer and FastConformer, the
    one mlx-conformer implements) for the ASR classes, a `ConvASREncoder` for frame VAD.

    The class alone does not tell: `EncDecCTCModel` is QuartzNet's and Citrinet's class as
    well as a character Conformer-CTC's.
    """
    encoder = config.get("encoder") or {}
    target = str(encoder.get("_target_") or encoder.get("target") or "").rsplit(".", 1)[-1]
    short = model_class.rsplit(".", 1)[-1]
    if model_class in _CONVASR_CLASSES:
        if target in ("", "ConvASREncoder"):
            return None
        return f"{short} with a {target} encoder is not supported; supported: ConvASREncoder (MarbleNet)"
    if target in ("", "ConformerEncoder"):
        return None
    known = f" ({_OTHER_ENCODERS[target]})" if target in _OTHER_ENCODERS else ""
    return (
        f"{short} with a {target} encoder{known} is not supported; "
        "supported: Conformer and FastConformer encoders (ConformerEncoder)"
    )


def map_state_dict(state: Mapping[str, np.ndarray], model_class: str) -> MappedWeights:
    """Rename and re-lay-out a NeMo state dict for `model_class` (its `target` in the config)."""
    if model_class not in MODEL_CLASSES:
        raise ConversionError(
            f"model class {model_class!r} is not supported; supported: {', '.join(supported_classes())}"
        )
    allowed = re.compile("|".join(f"(?:{p})" for p in MODEL_CLASSES[model_class]))
    mapped = MappedWeights()
    lstm_parts: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    unexpected = []
    for name, array in state.items():
        reason = _drop_reason(name)
        if reason is not None:
            mapped.dropped[name] = reason
        elif not allowed.fullmatch(name):
            unexpected.append(name)
        elif (renamed := _renamed(name)) is not None:
            mapped.tensors[renamed] = array
        elif match := _LSTM.fullmatch(name):
            key = (match["prefix"], int(match["layer"]))
            lstm_parts.setdefault(key, {})[match["kind"]] = array
        else:
            mapped.tensors[name] = _channels_last(name, array)
    if unexpected:
        shown = ", ".join(sorted(unexpected)[:5]) + (" ..." if len(unexpected) > 5 else "")
        raise ConversionError(
            f"{len(unexpected)} tensor(s) of an unsupported model variant in the checkpoint: {shown}"
        )
    for (prefix, layer), parts in sorted(lstm_parts.items()):
        mapped.tensors.update(_lstm_layer(prefix, layer, parts))
    return mapped


def map_module_state(
    state: Mapping[str, np.ndarray],
    prefix: str,
    model_class: str = "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
) -> dict[str, np.ndarray]:
    """One NeMo module's state dict in MLX names and layouts, by `map_state_dict`.

    `state` is a bare module's (e.g. a `ConformerEncoder`'s `state_dict()` as numpy arrays),
    `prefix` where the model holds it ("encoder."): the names come back relative to it, as
    the MLX module's `load_weights` takes them. The tests and benchmarks that build NeMo
    modules by hand use this instead of transposing convolutions themselves.
    """
    mapped = map_state_dict({prefix + k: v for k, v in state.items()}, model_class)
    return {k[len(prefix) :]: v for k, v in mapped.tensors.items() if k.startswith(prefix)}


def _renamed(name: str) -> str | None:
    """The new name of a tensor whose name changes (Transformer layers), or None."""
    for pattern, replacement in _TRANSFORMER_ENCODER_RULES:
        if pattern.fullmatch(name):
            return pattern.sub(replacement, name)
    return _seq2seq_name(name)


def _seq2seq_name(name: str) -> str | None:
    """Canary decoder tensors: mlx-seq2seq-decoder's name under `transf_decoder.`, or None."""
    for pattern, replacement in _SEQ2SEQ_RULES:
        if pattern.fullmatch(name):
            return "transf_decoder." + pattern.sub(replacement, name)
    if match := _HEAD_LAYER.fullmatch(name):
        # NeMo's MLP interleaves activations: its linear layers are layer0, layer2, ...
        index = int(match[1])
        if index % 2:
            raise ConversionError(f"{name}: an activation slot of NeMo's MLP holds a tensor")
        return f"transf_decoder.head.layers.{index // 2}.{match[2]}"
    return None


def _drop_reason(name: str) -> str | None:
    for pattern, reason in _DROPPED.items():
        if re.fullmatch(pattern, name):
            return reason
    return None


def _channels_last(name: str, array: np.ndarray) -> np.ndarray:
    if not any(re.fullmatch(p, name) for p in _CONV_WEIGHTS):
        return array
    # Transposed views: the copy is made when the tensor is written, one at a time.
    if array.ndim == 4:  # Conv2d (out, in, kh, kw) -> (out, kh, kw, in)
        return array.transpose(0, 2, 3, 1)
    if array.ndim == 3:  # Conv1d (out, in, k) -> (out, k, in)
        return array.transpose(0, 2, 1)
    raise ConversionError(
        f"{name}: expected a 3-d or 4-d convolution weight, got shape {array.shape}"
    )


def _lstm_layer(
    prefix: str, layer: int, parts: Mapping[str, np.ndarray]
) -> Iterable[tuple[str, np.ndarray]]:
    missing = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"} - set(parts)
    if missing:
        raise ConversionError(f"{prefix} layer {layer} lacks {', '.join(sorted(missing))}")
    bias_ih, bias_hh = parts["bias_ih"], parts["bias_hh"]
    bias = (bias_ih.astype(np.float32) + bias_hh.astype(np.float32)).astype(bias_ih.dtype)
    yield f"{prefix}.{layer}.Wx", parts["weight_ih"]
    yield f"{prefix}.{layer}.Wh", parts["weight_hh"]
    yield f"{prefix}.{layer}.bias", bias
