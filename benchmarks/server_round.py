"""Where a server round's time goes: a round of 16 of `server.py`'s clips, one request at a
time against one batch, per stage, in-process (no HTTP), the model loaded as the server
loads it (`nemo_mlx_serve.models.load_recognizer`, `Recognizer.run`).

    python benchmarks/server_round.py                  # demo model, 5 repeats
    python benchmarks/server_round.py --model 0.6b --repeats 1

Stages: audio (the WAV bytes to samples, as an upload is decoded), encoder (front end and
encoder, evaluated), decoder (the head's decoding, evaluated), rest (the round's other work:
pieces, batching, transcript assembly). Systems, interleaved, median of `--repeats` after
a warm-up: `one at a time` (a round of one per clip, as `--max-batch 1`), `batched` (one
round, the server's batch size, the encoder's default policy: padded batches on every
device since 2026-12-04), `batched, pieces encoded alone` (the other policy, `encode_each =
True`: the decoder batched, each piece through the encoder unpadded), `two rounds of 8` and
`four rounds of 4` (the clips in rounds as 16 clients waiting on their answers split
them)."""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import mlx_cpu_runtime.auto  # noqa: F401  (system BLAS and malloc tuning before mlx)

import mlx.core as mx
from _common import CACHE, clip_paths
from server import server_args

import nemo_mlx_parakeet.model as parakeet_model
from nemo_mlx_serve.batching import BatchLimits
from nemo_mlx_serve.models import ModelSpec, Options, load_recognizer

ROUND = 16
STAGES = ("audio", "encoder", "decoder")


def timed(stage: str, fn, clock: dict):
    """`fn`, its outputs evaluated and its seconds added to `clock[stage]`."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        mx.eval([a for a in (out if isinstance(out, tuple) else ()) if isinstance(a, mx.array)])
        clock[stage] += time.perf_counter() - start
        return out

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["demo", "0.6b"], default="demo")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model_args, name, _ = server_args(args.model)
    ref = model_args[1].partition("=")[2] or model_args[1]
    recognizer = load_recognizer(ModelSpec(name, ref), cache_dir=CACHE / "models")
    model = recognizer.model
    clock: dict[str, float] = defaultdict(float)
    for attr in ("encode_each", "encode_padded"):
        setattr(parakeet_model, attr, timed("encoder", getattr(parakeet_model, attr), clock))
    parakeet_model.decode = timed("decoder", parakeet_model.decode, clock)
    blobs = [path.read_bytes() for path in clip_paths()[:ROUND]]
    options, batch_size = recognizer.check(Options()), BatchLimits().batch_size

    def round_of(signals, policy):
        model.encode_each = policy
        try:
            recognizer.run(signals, options, batch_size)
        finally:
            model.encode_each = False

    systems = {
        "one at a time": lambda signals: [round_of([s], False) for s in signals],
        "batched": lambda signals: round_of(signals, False),
        "batched, pieces encoded alone": lambda signals: round_of(signals, True),
        # what 16 closed-loop clients make of a server's rounds: alternating groups
        "two rounds of 8": lambda signals: [round_of(signals[i : i + 8], False) for i in (0, 8)],
        "four rounds of 4": lambda signals: [
            round_of(signals[i : i + 4], False) for i in range(0, ROUND, 4)
        ],
    }
    times: dict[str, list[dict[str, float]]] = defaultdict(list)
    for repeat in range(args.repeats + 1):
        for system, run in systems.items():
            clock.clear()
            start = time.perf_counter()
            signals = [model.load_audio(blob) for blob in blobs]
            clock["audio"] = time.perf_counter() - start
            run(signals)
            clock["total"] = time.perf_counter() - start
            clock["rest"] = clock["total"] - sum(clock[s] for s in STAGES)
            if repeat:  # the first is the warm-up
                times[system].append(dict(clock))
    print(f"{args.model} model, a round of {ROUND} clips, {mx.default_device()}, medians of "
          f"{args.repeats} (seconds)")  # fmt: skip
    columns = (*STAGES, "rest", "total")
    print(f"{'system':26s}" + "".join(f"{s:>9s}" for s in columns))
    for system, rows in times.items():
        cells = [statistics.median(r.get(s, 0.0) for r in rows) for s in columns]
        print(f"{system:26s}" + "".join(f"{c:9.3f}" for c in cells))


if __name__ == "__main__":
    main()
