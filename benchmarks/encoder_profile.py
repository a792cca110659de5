"""Where a FastConformer layer's time goes on the CPU, by op group, with the matmul share.

    python benchmarks/encoder_profile.py                 # 0.6b geometry, 60 s (750 frames)
    python benchmarks/encoder_profile.py --seconds 20

One random-weight layer of parakeet-tdt-0.6b's geometry and the subsampling, float32. Each
group is evaluated on its own (its inputs ready), median of `--repeats`: wall time and the
process's CPU time (all threads), which stays meaningful when other work shares the
machine. The matmuls inside each group are timed alone too: what is left is elementwise
work, which MLX's CPU backend runs on one thread while BLAS uses every core.
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlx_cpu_runtime.auto

import mlx.core as mx

from mlx_conformer import Conformer, ConformerConfig
from mlx_conformer.layers import _pointwise

CONFIG = {"feat_in": 128, "n_layers": 1, "d_model": 1024, "n_heads": 8, "subsampling": "dw_striding",
          "subsampling_factor": 8, "subsampling_conv_channels": 256, "ff_expansion_factor": 4,
          "conv_kernel_size": 9, "xscaling": True, "untie_biases": True}  # fmt: skip


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `mx.eval(fn())`."""
    mx.eval(fn())
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        mx.eval(fn())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    encoder = Conformer(ConformerConfig.from_nemo(CONFIG))
    mx.eval(encoder.parameters())
    frames = int(args.seconds * 100)
    t = frames // 8
    features = mx.random.normal((1, frames, 128))
    x = mx.random.normal((1, t, 1024))
    layer = encoder.layers[0]
    pos = encoder._positions(t, mx.float32)
    h = layer.norm_feed_forward1(x)
    mx.eval(features, x, pos.sin, pos.cos, h)
    att, ff, conv = layer.self_attn, layer.feed_forward1, layer.conv
    wide = ff.linear1(h)
    q = att._heads(att.linear_q(h))
    p = att._ascending_positions(pos)
    half_weight = mx.contiguous(att.linear_pos.weight[:, 0::2])
    scores = q @ q.swapaxes(-1, -2)
    mx.eval(wide, q, p, half_weight, scores)
    groups = {  # name: (the group, its matmuls alone)
        "subsampling (per input)": (
            lambda: encoder.pre_encode(features, mx.array([frames]))[0],
            None,
        ),
        "feed-forward (x2)": (
            lambda: [x + 0.5 * ff(layer.norm_feed_forward1(x)) for _ in range(2)],
            lambda: [ff.linear2(ff.linear1(h)) for _ in range(2)],
        ),
        "attention projections": (
            lambda: [att.linear_q(h), att.linear_k(h), att.linear_v(h), att.linear_out(h)],
            lambda: [h @ att.linear_q.weight.T for _ in range(4)],
        ),
        "positional projection": (  # 2T - 1 positions from the sin and cos halves of T
            lambda: att._ascending_positions(pos),
            lambda: [pos.sin @ half_weight.T, pos.cos @ half_weight.T],
        ),
        "attention core (+ rel-pos)": (
            lambda: att._full(q, q, q, q, p, None, None),
            # content scores, weights @ values, and the positional scores it computes
            lambda: [q @ q.swapaxes(-1, -2), scores @ q, q @ p[:, : t + 63].swapaxes(-1, -2)],
        ),
        "conv module": (
            lambda: x + conv(layer.norm_conv(x), None),
            lambda: [_pointwise(conv.pointwise_conv1, h), _pointwise(conv.pointwise_conv2, h)],
        ),
        "layer norms (x5)": (lambda: [layer.norm_out(x + i) for i in range(5)], None),
        "whole layer": (lambda: layer(x, pos, None, None), None),
    }
    print(f"FastConformer 0.6b geometry, {args.seconds:g} s ({t} frames), float32, CPU; "
          f"{mlx_cpu_runtime.auto.STATUS.blas or 'reference BLAS'}")  # fmt: skip
    print(f"{'group':28s} {'wall ms':>8s} {'CPU ms':>8s} {'matmul wall':>12s} {'matmul CPU':>11s} {'rest CPU':>9s}")  # fmt: skip
    for name, (group, matmuls) in groups.items():
        wall, cpu = timed(group, args.repeats)
        if matmuls is None:
            print(f"{name:28s} {wall * 1e3:8.1f} {cpu * 1e3:8.1f}")
            continue
        m_wall, m_cpu = timed(matmuls, args.repeats)
        print(f"{name:28s} {wall * 1e3:8.1f} {cpu * 1e3:8.1f} {m_wall * 1e3:12.1f} {m_cpu * 1e3:11.1f} "
              f"{(cpu - m_cpu) * 1e3:9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
