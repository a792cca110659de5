"""Affine weight quantisation of a model's linear layers (MLX's `nn.quantize`).

The apps quantise the encoder and the decoders with this one rule: every `nn.Linear` whose
input size is a multiple of the group size. Convolutions (the conformer's pointwise and
depthwise convolutions, the subsampling) and embeddings stay in float: they are used as raw
weights by fused code paths, and the linear layers hold ~88% of a FastConformer's weights.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .fastmath import on_cpu

BITS = (4, 8)
GROUP_SIZE = 64
_BLAS_ROWS = 16  # from this many input rows on, dequantise and let BLAS multiply (CPU)


class QuantizedLinear(nn.QuantizedLinear):
    """MLX's quantised linear layer, with a faster path for many rows on the CPU.

    MLX's CPU quantised matmul has no BLAS path: (750, 1024) x (1024, 4096) takes ~35x
    the time of OpenBLAS's float32 one. Dequantising the weight for the one matmul
    (a ~16 MB float copy that lives only until the product is done) and multiplying
    through BLAS brings it to ~1.1x float32, with the same weights; on GPUs and for
    single rows (decoding steps) MLX's own kernels are used.

    MLX 0.32.4's CUDA quantised matmul is wrong when the input is one group (64 features)
    and there is more than one row (relative error ~1, at times inf, at 8 and 4 bits;
    128 features and more, and single rows, agree with the dequantised product: measured on
    an H200); such products take the dequantised path there too.
    """

    def __call__(self, x: mx.array) -> mx.array:
        if not self._dequantises(x):
            return super().__call__(x)
        weight = mx.dequantize(
            self["weight"], self["scales"], self.get("biases"), self.group_size, self.bits,
            mode=self.mode, dtype=x.dtype,
        )  # fmt: skip
        return mx.addmm(self["bias"], x, weight.T) if "bias" in self else x @ weight.T

    def _dequantises(self, x: mx.array) -> bool:
        rows = x.size // x.shape[-1]
        if on_cpu():
            return rows >= _BLAS_ROWS
        return rows > 1 and x.shape[-1] == self.group_size and on_cuda()


def on_cuda() -> bool:
    """Whether MLX's GPU is a CUDA device (not Metal)."""
    return mx.cuda.is_available()


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
    for _, layer in module.named_modules():
        if type(layer) is nn.QuantizedLinear:
            layer.__class__ = QuantizedLinear  # same parameters, the CPU fast path added
    return count
