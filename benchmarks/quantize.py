"""`--quantize 8|4`: encoder error and token agreement against float32, and weight memory.

    python benchmarks/quantize.py                  # the fixture models and the 0.6b geometry
    python benchmarks/quantize.py --device gpu

For each model, the same audio goes through `parakeet.load(model)` in float32 and with its
linear layers quantised (MLX affine, groups of 64): the encoder output's relative error
against float32 (||q - f|| / ||f||), the share of token ids that agree with float32's
(matching blocks of the two sequences), and the bytes of the weights. The fixture models
(tests/fixtures/models, d_model 80) have few layers whose input size is a multiple of 64,
so only those are quantised there; the 0.6b-geometry model (`benchmarks/e2e.py` builds it)
is quantised as a real checkpoint would be. Speed and peak memory come from
`benchmarks/e2e.py --systems ours ours-q8 ours-q4 nemo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS and malloc tuning before mlx)

import mlx.core as mx
import numpy as np
from _common import CACHE, read_wav, speech, token_agreement
from mlx.utils import tree_flatten

import nemo_mlx_parakeet as parakeet

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ["tdt", "rnnt", "ctc", "hybrid_tdt_ctc"]
CLIPS = ["speech_16k_mono.wav", "speech_22k.flac", "speech_44k_stereo.wav", "odd_length_16k.wav"]


def weight_bytes(model: parakeet.Parakeet) -> int:
    parts = [m for m in (model.encoder, model.transducer, model.ctc) if m is not None]
    return sum(v.nbytes for m in parts for _, v in tree_flatten(m.parameters()))


def linear_counts(model: parakeet.Parakeet) -> tuple[int, int]:
    """(quantised, all) linear layers of the encoder and decoders."""
    import mlx.nn as nn

    parts = [m for m in (model.encoder, model.transducer, model.ctc) if m is not None]
    leaves = [m for part in parts for _, m in part.named_modules()]
    quantised = sum(isinstance(m, nn.QuantizedLinear) for m in leaves)
    return quantised, quantised + sum(isinstance(m, nn.Linear) for m in leaves)


def encode(model: parakeet.Parakeet, audio: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for samples in audio:
        features, length = model.frontend(samples)
        encoded, _ = model.encoder(features.astype(model.dtype), length)
        out.append(np.array(encoded[0].astype(mx.float32)))
    return out


def matmul_speed(args: argparse.Namespace) -> None:
    """(750, 1024) x (1024, 4096), a feed-forward matmul of 60 s: median of 5, CPU time too."""
    import statistics
    import time

    import mlx.nn as nn

    from mlx_conformer import quantize_linears

    dtype = {"float32": mx.float32, "bfloat16": mx.bfloat16}[args.dtype]
    x = mx.random.normal((750, 1024)).astype(dtype)
    layers = {"float": nn.Linear(1024, 4096)}
    layers["float"].set_dtype(dtype)
    for bits in args.bits:
        holder = nn.Sequential(nn.Linear(1024, 4096))
        holder.set_dtype(dtype)
        quantize_linears(holder, bits)
        layers[f"{bits} bits"] = holder.layers[0]
    print(f"{args.device}, {args.dtype}: (750, 1024) x (1024, 4096)")
    for name, layer in layers.items():
        paths = [("", layer)]
        if name != "float":
            paths.append(
                (" (MLX's quantized_matmul)", lambda v, m=layer: nn.QuantizedLinear.__call__(m, v))
            )
        for label, fn in paths:
            mx.eval(fn(x))
            walls, cpus = [], []
            for _ in range(5):
                wall, cpu = time.perf_counter(), time.process_time()
                mx.eval(fn(x))
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            print(
                f"{name + label:36s} {statistics.median(walls) * 1e3:8.1f} ms wall {statistics.median(cpus) * 1e3:8.1f} ms CPU"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--skip-large", action="store_true", help="fixture models only")
    parser.add_argument("--only-large", action="store_true", help="the 0.6b-geometry model only")
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 4], choices=[8, 4])
    parser.add_argument("--speed", action="store_true",
                        help="only time one feed-forward matmul: float, quantised (ours, MLX's kernel)")  # fmt: skip
    args = parser.parse_args()
    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    if args.speed:
        matmul_speed(args)
        return
    from mlx_audio_frontend import load_audio

    fixture_audio = [
        np.array(load_audio(ROOT / "tests" / "fixtures" / "audio" / c, 16000)) for c in CLIPS
    ]
    models = [(name, ROOT / "tests" / "fixtures" / "models" / f"{name}.nemo", fixture_audio)
              for name in FIXTURES if not args.only_large]  # fmt: skip
    large = CACHE / "tdt-0.6b-speechlike.nemo"
    if not args.skip_large and large.exists():
        minute = read_wav(speech(1)).astype(np.float32) / 32768.0
        models.append(("tdt-0.6b geometry (60 s)", large, [minute]))
    print(f"{args.device}, {args.dtype}; quantised: nn.Linear layers with input size % 64 == 0")
    print(f"{'model':26s} {'bits':>4s} {'linears':>8s} {'weights MiB':>11s} {'encoder rel. err':>16s} {'tokens agree':>12s}")  # fmt: skip
    for name, path, audio in models:
        kwargs = {"dtype": args.dtype, "verbose": False, "cache_dir": CACHE / "models"}
        reference = parakeet.load(path, **kwargs)
        ref_encoded = encode(reference, audio)
        ref_ids = [[t.id for t in r.tokens] for r in reference.transcribe(audio)]
        print(f"{name:26s} {'-':>4s} {'-':>8s} {weight_bytes(reference) / 2**20:11.1f} {'-':>16s} {'-':>12s}")  # fmt: skip
        del reference
        for bits in args.bits:
            model = parakeet.load(path, quantize=bits, **kwargs)
            encoded = encode(model, audio)
            error = np.sqrt(sum(np.sum((e - r) ** 2) for e, r in zip(encoded, ref_encoded, strict=True))
                            / sum(np.sum(r**2) for r in ref_encoded))  # fmt: skip
            ids = [[t.id for t in r.tokens] for r in model.transcribe(audio)]
            quantised, total = linear_counts(model)
            print(f"{'':26s} {bits:4d} {f'{quantised}/{total}':>8s} {weight_bytes(model) / 2**20:11.1f} "
                  f"{error:16.1e} {token_agreement(ids, ref_ids):12.1%}")  # fmt: skip
            del model


if __name__ == "__main__":
    main()
