"""NeMo state-dict names and layouts -> the MLX model packages' names and layouts.

The model packages use NeMo's own parameter names (so do the existing MLX ports, whose
directories therefore load as they are). What changes:

- convolution weights go channels-last: Conv1d (out, in, k) -> (out, k, in) and Conv2d
  (out, in, kh, kw) -> (out, kh, kw, in), as MLX convolutions store them;
- each LSTM layer `lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_lN` becomes
  `lstm.N.{Wx,Wh,bias}` with `bias = bias_ih + bias_hh` (gate order i, f, g, o is the same
  in torch and MLX);
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
_CTC_HEAD = r"decoder\.decoder_layers\.0\.(weight|bias)"
_HYBRID_CTC_HEAD = r"ctc_decoder\.decoder_layers\.0\.(weight|bias)"

# NeMo target class -> the families of tensors such a model holds.
MODEL_CLASSES: dict[str, tuple[str, ...]] = {
    "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel": (*_ENCODER, *_TRANSDUCER),
    "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE": (*_ENCODER, _CTC_HEAD),
    "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel": (
        *_ENCODER,
        *_TRANSDUCER,
        _HYBRID_CTC_HEAD,
    ),
}
_CONV_WEIGHTS = (
    rf"encoder\.pre_encode\.conv\.{_I}\.weight",
    rf"encoder\.layers\.{_I}\.conv\.(pointwise_conv1|pointwise_conv2|depthwise_conv)\.weight",
    r"(ctc_)?decoder\.decoder_layers\.0\.weight",
)
_LSTM = re.compile(
    r"(?P<prefix>.+\.lstm)\.(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh)_l(?P<layer>\d+)"
)


@dataclass
class MappedWeights:
    """Converted tensors by MLX name, and what was dropped on purpose (name -> reason)."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


def supported_classes() -> list[str]:
    return sorted(MODEL_CLASSES)


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
