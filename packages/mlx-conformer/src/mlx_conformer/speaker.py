"""`SpeakerKernels`: the speaker conditioning of NeMo's multitalker ASR inside the encoder.

NeMo's `SpeakerKernelMixin` (`EncDecMultiTalkerRNNTBPEModel`, multitalker-parakeet-streaming)
adds, before each encoder layer named in `spk_kernel_layers`, a residual
`x + K(x * active)` and then `x + K_bg(x * background)` (on the x that already has the
first), where `active` is the target speaker's activity per encoder frame, `background`
the other speakers', and each kernel is Linear -> ReLU -> Dropout -> Linear (`ff`).
NeMo runs them as forward hooks: a pre-hook on layer 0 and a post-hook on layer i - 1 for
i > 0, which is the same place. Two of its rules are kept exactly:

- a mask shorter than the layer's frames is padded on the left with its default (1 for
  the target speaker, 0 for the background), a longer one keeps its last frames (a stream's
  chunk takes the chunk's targets this way);
- without targets, the layer-0 kernel still runs (target mask all ones, background all
  zeros), and the kernels of later layers do not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn


@dataclass(frozen=True)
class SpeakerTargets:
    """Activity per encoder frame, (B, T) in [0, 1]: the target speaker's and the other
    (background) speakers'. None: NeMo's default for that mask."""

    active: mx.array | None
    background: mx.array | None = None


class _Kernel(nn.Module):
    """NeMo's `ff` speaker kernel; `layers` keep its Sequential's indices (0 and 3 hold
    tensors; the ReLU and the inference-time identity of its Dropout sit at 1 and 2)."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.layers = [
            nn.Linear(d_model, hidden),
            nn.ReLU(),
            nn.Identity(),
            nn.Linear(hidden, d_model),
        ]

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers:
            x = layer(x)
        return x


def fit_mask(mask: mx.array | None, x: mx.array, default: float) -> mx.array:
    """NeMo's `solve_length_mismatch`: `mask` (B, T_m) to x's (B, T) frames."""
    batch, time = x.shape[0], x.shape[1]
    if mask is None:
        return mx.full((batch, time), default, dtype=x.dtype)
    mask = mask.astype(x.dtype)
    if mask.ndim == 1:
        mask = mask[None]
    if mask.shape[1] < time:
        pad = mx.full((mask.shape[0], time - mask.shape[1]), default, dtype=x.dtype)
        mask = mx.concatenate([pad, mask], axis=1)
    elif mask.shape[1] > time:
        mask = mask[:, mask.shape[1] - time :]
    return mask


class SpeakerKernels(nn.Module):
    """The speaker kernels of a multitalker checkpoint, by encoder layer index."""

    _KEY = re.compile(r"(bg_)?spk_kernels\.(\d+)\.(\d+)\.(weight|bias)")

    def __init__(self, d_model: int, hidden: int, layers: tuple[int, ...], background: bool):
        super().__init__()
        self.indices = tuple(sorted(layers))
        # keyed `layer<i>`: MLX would take a bare number for a list index
        self.spk_kernels = {f"layer{i}": _Kernel(d_model, hidden) for i in self.indices}
        if background:
            self.bg_spk_kernels = {f"layer{i}": _Kernel(d_model, hidden) for i in self.indices}

    def before_layer(self, index: int, x: mx.array, targets: SpeakerTargets | None) -> mx.array:
        """x (B, T, D) as encoder layer `index` receives it in NeMo's multitalker model."""
        key = f"layer{index}"
        if key not in self.spk_kernels:
            return x
        if index > 0 and (targets is None or targets.active is None):
            return x  # NeMo's post-hooks pass the output through without targets
        active = targets.active if targets is not None else None
        x = x + self.spk_kernels[key](x * fit_mask(active, x, 1.0)[..., None])
        if "bg_spk_kernels" in self:
            background = targets.background if targets is not None else None
            x = x + self.bg_spk_kernels[key](x * fit_mask(background, x, 0.0)[..., None])
        return x

    @classmethod
    def from_nemo(cls, weights: Mapping[str, mx.array]) -> SpeakerKernels | None:
        """The kernels in a converted model's weights (`spk_kernels.<layer>.{0,3}.*`, and
        `bg_spk_kernels.*` with `add_bg_spk_kernel`), or None when it holds none."""
        own = {k: v for k, v in weights.items() if cls._KEY.fullmatch(k)}
        if not own:
            return None
        layers = {int(cls._KEY.fullmatch(k).group(2)) for k in own}
        first = own[f"spk_kernels.{min(layers)}.0.weight"]  # Linear(enc_hidden, d_model)
        background = any(k.startswith("bg_") for k in own)
        kernels = cls(first.shape[1], first.shape[0], tuple(layers), background)
        renamed = []
        for name, value in own.items():
            bg, layer, index, kind = cls._KEY.fullmatch(name).groups()
            renamed.append((f"{bg or ''}spk_kernels.layer{layer}.layers.{index}.{kind}", value))
        kernels.load_weights(renamed, strict=True)
        kernels.eval()
        return kernels
