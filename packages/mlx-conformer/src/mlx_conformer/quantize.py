"""Affine weight quantisation of a model's linear layers (MLX's `nn.quantize`).

The apps quantise the encoder and the decoders with this one rule: every `nn.Linear` whose
input size is a multiple of the group size. Convolutions (the conformer's pointwise and
depthwise convolutions, the subsampling) and embeddings stay in float: they are used as raw
weights by fused code paths, and the linear layers hold ~88% of a FastConformer's weights.
"""

from __future__ import annotations

import mlx.nn as nn

BITS = (4, 8)
GROUP_SIZE = 64


def quantize_linears(module: nn.Module, bits: int, group_size: int = GROUP_SIZE) -> int:
    """Quantise `module`'s linear layers in place to `bits` (4 or 8); returns how many."""
    if bits not in BITS:
        raise ValueError(f"quantisation to {bits} bits is not supported; choose 4 or 8")
    count = 0

    def predicate(_path: str, layer: nn.Module) -> bool:
        nonlocal count
        chosen = isinstance(layer, nn.Linear) and layer.weight.shape[-1] % group_size == 0
        count += chosen
        return chosen

    nn.quantize(module, group_size=group_size, bits=bits, class_predicate=predicate)
    return count
