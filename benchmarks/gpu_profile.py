"""Where the batch-32 encoder time goes on a GPU: ours (MLX CUDA) against NeMo per module, and
MLX's bfloat16 matmul against torch's on the same shapes.

    python benchmarks/gpu_profile.py              # the three parts, each in its own process
    python benchmarks/gpu_profile.py --part gemm  # one part

FastConformer of parakeet-tdt-0.6b's geometry (random weights, 2 layers: per-layer times are
what matter), bfloat16, a batch of 32 inputs of 512-2048 feature frames (5-20 s, padded and
masked as a sorted batch of clips is). Module times are synced on the device, averaged over
20 runs after a warm-up. Each system runs in its own interpreter: torch cannot load its own
cuDNN in a process where MLX has loaded the system's. Needs MLX with CUDA, and for the NeMo
and torch parts the `reference` group (NeMo, torch CUDA).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

BATCH, FRAMES, REPEATS = 32, 2048, 20
CONFIG = {"feat_in": 128, "n_layers": 2, "d_model": 1024, "n_heads": 8, "subsampling": "dw_striding",
          "subsampling_factor": 8, "subsampling_conv_channels": 256, "ff_expansion_factor": 4,
          "conv_kernel_size": 9, "xscaling": True, "untie_biases": True}  # fmt: skip
SHAPES = [(8192, 1024, 4096), (8192, 4096, 1024), (8192, 1024, 1024)]  # (M, K, N) of the layers
PRODUCTS = 10  # matmuls per evaluation: per-evaluation costs (~25 us in MLX) shared


def lengths() -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = np.sort(rng.integers(FRAMES // 4, FRAMES + 1, BATCH))
    frames[-1] = FRAMES
    return frames


def mlx_timer(mx):
    def timed(fn) -> float:
        mx.eval(fn())
        mx.synchronize()
        start = time.perf_counter()
        for _ in range(REPEATS):
            mx.eval(fn())
        mx.synchronize()
        return (time.perf_counter() - start) / REPEATS * 1e3

    return timed


def torch_timer(torch):
    def timed(fn) -> float:
        with torch.inference_mode():
            fn()
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(REPEATS):
                fn()
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / REPEATS * 1e3

    return timed


def ours() -> dict[str, float]:
    import mlx_cpu_runtime.auto  # noqa: F401

    import mlx.core as mx

    from mlx_conformer import Conformer, ConformerConfig

    timed = mlx_timer(mx)
    encoder = Conformer(ConformerConfig.from_nemo(CONFIG))
    encoder.set_dtype(mx.bfloat16)
    rng = np.random.default_rng(1)
    features = mx.array(rng.standard_normal((BATCH, FRAMES, 128)).astype(np.float32))
    features = features.astype(mx.bfloat16)
    frames = mx.array(lengths().astype(np.int32))
    x, length = encoder.pre_encode(features, frames)
    pos, attention_lengths, mask, pad_mask = encoder._attention_inputs(x, length, None)
    mx.eval(encoder.parameters(), x, length)
    layer = encoder.layers[0]
    return {
        "pre-encode": timed(lambda: encoder.pre_encode(features, frames)[0]),
        "feed-forward (one)": timed(
            lambda: x + 0.5 * layer.feed_forward1(layer.norm_feed_forward1(x))
        ),
        "self-attention": timed(
            lambda: x + layer.self_attn(layer.norm_self_att(x), pos, attention_lengths, mask)
        ),
        "convolution module": timed(lambda: x + layer.conv(layer.norm_conv(x), pad_mask)),
        "layer": timed(lambda: layer(x, pos, attention_lengths, pad_mask, mask)),
        "encoder (2 layers)": timed(lambda: encoder(features, frames)[0]),
    }


def nemo() -> dict[str, float]:
    import torch
    from nemo.collections.asr.modules import ConformerEncoder

    timed = torch_timer(torch)
    encoder = ConformerEncoder(
        feat_in=128, n_layers=2, d_model=1024, subsampling="dw_striding", subsampling_factor=8,
        subsampling_conv_channels=256, ff_expansion_factor=4, self_attention_model="rel_pos",
        n_heads=8, conv_kernel_size=9, xscaling=True, untie_biases=True,
    )  # fmt: skip
    encoder = encoder.cuda().eval().to(torch.bfloat16)
    rng = np.random.default_rng(1)
    features = torch.from_numpy(rng.standard_normal((BATCH, 128, FRAMES)).astype(np.float32))
    features = features.cuda().to(torch.bfloat16)
    frames = torch.from_numpy(lengths()).cuda()
    with torch.inference_mode():
        x, length = encoder.pre_encode(x=features.transpose(1, 2), lengths=frames)
        x, pos = encoder.pos_enc(x=x, cache_len=0)
        pad_mask, att_mask = encoder._create_masks(
            att_context_size=encoder.att_context_size, padding_length=length.to(torch.int64),
            max_audio_length=x.size(1), offset=None, device=x.device,
        )  # fmt: skip
    layer = encoder.layers[0]

    def attention():
        y = layer.norm_self_att(x)
        return x + layer.self_attn(query=y, key=y, value=y, mask=att_mask, pos_emb=pos)

    return {
        "pre-encode": timed(lambda: encoder.pre_encode(x=features.transpose(1, 2), lengths=frames)),
        "feed-forward (one)": timed(
            lambda: x + 0.5 * layer.feed_forward1(layer.norm_feed_forward1(x))
        ),
        "self-attention": timed(attention),
        "convolution module": timed(lambda: x + layer.conv(layer.norm_conv(x), pad_mask=pad_mask)),
        "layer": timed(lambda: layer(x=x, att_mask=att_mask, pos_emb=pos, pad_mask=pad_mask)),
        "encoder (2 layers)": timed(lambda: encoder(audio_signal=features, length=frames)),
    }


def gemm_mlx() -> dict[str, float]:
    import mlx.core as mx

    timed = mlx_timer(mx)
    out = {}
    for m, k, n in SHAPES:
        xs = [mx.random.normal((m, k)).astype(mx.bfloat16) for _ in range(PRODUCTS)]
        weight = mx.random.normal((n, k)).astype(mx.bfloat16)
        mx.eval(xs, weight)
        total = timed(lambda xs=xs, weight=weight: [x @ weight.T for x in xs])
        out[f"{m}x{k}x{n}"] = total / PRODUCTS
    return out


def gemm_torch() -> dict[str, float]:
    import torch

    timed = torch_timer(torch)
    out = {}
    for m, k, n in SHAPES:
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(PRODUCTS)]
        weight = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        total = timed(
            lambda xs=xs, weight=weight: [torch.nn.functional.linear(x, weight) for x in xs]
        )
        out[f"{m}x{k}x{n}"] = total / PRODUCTS
    return out


PARTS = {"ours": ours, "nemo": nemo, "gemm-mlx": gemm_mlx, "gemm-torch": gemm_torch}


def run(part: str) -> dict[str, float]:
    """`part` in a fresh interpreter (its last output line is its JSON)."""
    done = subprocess.run([sys.executable, __file__, "--worker", part], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(title: str, left: str, right: str, a: dict[str, float], b: dict[str, float]) -> None:
    print(f"\n{title}\n{'':24s} {left:>10s} {right:>10s} {'ratio':>7s}")
    for name, ours_ms in a.items():
        print(f"{name:24s} {ours_ms:10.3f} {b[name]:10.3f} {ours_ms / b[name]:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part", choices=["modules", "gemm"], nargs="+", default=["modules", "gemm"]
    )
    parser.add_argument("--worker", choices=sorted(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(PARTS[args.worker]()))
        return
    if "modules" in args.part:
        table(f"FastConformer 0.6b geometry, batch {BATCH}, bfloat16, ms (ours / NeMo)",
              "ours", "NeMo", run("ours"), run("nemo"))  # fmt: skip
    if "gemm" in args.part:
        table(f"bfloat16 matmul (M x K x N), {PRODUCTS} per evaluation, ms each (MLX / torch)", "MLX", "torch",
              run("gemm-mlx"), run("gemm-torch"))  # fmt: skip


if __name__ == "__main__":
    main()
