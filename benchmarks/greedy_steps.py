"""Greedy TDT decoding alone, ours only: steps, host synchronisations and time per step.

    python benchmarks/greedy_steps.py                       # CPU
    python benchmarks/greedy_steps.py --device gpu --dtype bfloat16
    MLX_MAX_OPS_PER_BUFFER=100 python benchmarks/greedy_steps.py --device gpu

No NeMo needed (benchmarks/decode.py compares with NeMo): a random-weight prediction network
and joint of nvidia/parakeet-tdt-0.6b-v2's geometry (vocabulary 1024, hidden 640, two LSTM
layers, durations 0-4), the joint's output scaled and blank biased as in decode.py so that
tokens come every few frames; random encoder frames, 60 s (750 frames) per utterance, with
a pause (frames scaled down, so blanks run) in the middle third when `--pause` is given.
For each batch and window (frames a decoding step evaluates): tokens, steps, rounds (host
synchronisations), median wall time and time per step, after a warm-up, and whether the
decisions equal the first row's. On MLX's CUDA backend the first row of each batch (window
`1k`) is the one-launch kernel (cuda_greedy.py), the others the compiled step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS before mlx)

import mlx.core as mx
import numpy as np

from mlx_transducer import Transducer, TransducerConfig, cuda_greedy

VOCAB, D_MODEL, HIDDEN = 1024, 1024, 640


def build(dtype: mx.Dtype) -> Transducer:
    mx.random.seed(0)
    config = TransducerConfig(vocab_size=VOCAB, pred_hidden=HIDDEN, pred_rnn_layers=2, joint_hidden=HIDDEN,
                              encoder_hidden=D_MODEL, durations=(0, 1, 2, 3, 4), max_symbols=10)  # fmt: skip
    model = Transducer(config)
    out = model.joint.joint_net[-1]
    out.weight = out.weight * 8.0
    out.bias = out.bias + mx.where(mx.arange(out.bias.shape[0]) == VOCAB, 6.0, 0.0)
    model.set_dtype(dtype)
    mx.eval(model.parameters())
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--pause", action="store_true", help="near-silent middle third")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--blocks", type=int, help="CUDA kernel: blocks per launch (default: one per SM)"
    )
    args = parser.parse_args()
    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    cuda_greedy.BLOCKS = args.blocks
    dtype = {"float32": mx.float32, "bfloat16": mx.bfloat16}[args.dtype]
    model = build(dtype)
    frames = int(args.seconds * 12.5)
    rng = np.random.default_rng(0)
    print(f"greedy TDT, 0.6b geometry, {args.dtype}, {args.device}, mlx {mx.__version__}"
          f"{', pause in the middle third' if args.pause else ''}")  # fmt: skip
    print(f"{'batch':>5s} {'window':>6s} {'tokens':>7s} {'steps':>6s} {'rounds':>6s} {'wall ms':>8s} {'us/step':>8s} {'same ids':>8s}")  # fmt: skip
    for batch in args.batches:
        encoded = rng.normal(size=(batch, frames, D_MODEL)).astype(np.float32)
        if args.pause:
            encoded[:, frames // 3 : 2 * frames // 3] *= 0.05
        lengths = (
            np.linspace(frames // 2, frames, batch).astype(int) if batch > 1 else np.array([frames])
        )
        x, n = mx.array(encoded).astype(dtype), mx.array(lengths)
        mx.eval(x, n)
        reference = None
        runs = [(w, False) for w in args.windows]
        if cuda_greedy.available() and 1 in args.windows:  # the one-launch loop too
            runs.insert(0, (1, True))
        for window, kernel in runs:
            decoder = model.greedy_decoder(window)
            decoder.kernel = kernel
            hyps = decoder(x, n)
            ids = [[(t.id, t.frame, t.duration) for t in h.tokens] for h in hyps]
            reference = ids if reference is None else reference
            # float32: always the same; bfloat16: the joint's rounding depends on its row count
            same = "yes" if ids == reference else "no"
            times = []
            for _ in range(args.repeats):
                mx.synchronize()
                start = time.perf_counter()
                decoder(x, n)
                times.append(time.perf_counter() - start)
            wall = statistics.median(times)
            steps = len(
                decoder.run(
                    model.joint.project_encoder(x), n, decoder.initial_state(batch, x.dtype)
                )[1]
            )
            tokens = sum(len(h) for h in ids)
            label = f"{window}{'k' if kernel else ''}"
            print(f"{batch:5d} {label:>6s} {tokens:7d} {steps:6d} {decoder.rounds:6d} {wall * 1e3:8.1f} "
                  f"{wall / max(1, steps) * 1e6:8.0f} {same:>8s}")  # fmt: skip


if __name__ == "__main__":
    main()
