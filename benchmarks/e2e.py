"""End to end, audio samples to token ids: this project vs NeMo vs parakeet-mlx, side by side.

Needs MLX, this workspace, the `reference` group (NeMo, torch) and `parakeet-mlx` in one
environment (`pip install parakeet-mlx`), then:

    python benchmarks/e2e.py                                  # CPU, float32: every workload
    python benchmarks/e2e.py --workloads 60s --repeats 5
    python benchmarks/e2e.py --device gpu --dtype bfloat16    # MLX CUDA vs NeMo CUDA
    python benchmarks/e2e.py --systems ours ours-q8 ours-q4 nemo --workloads 60s

The model: a random-weight EncDecRNNTBPEModel of nvidia/parakeet-tdt-0.6b-v2's geometry, built
with NeMo once into the git-ignored `.benchmarks-cache/` (its joint scaled and its blank and
duration outputs biased so that greedy decoding writes ~6 tokens per second, as on speech:
`build_tdt(speech_rate=True)`), converted once with nemo-mlx-convert;
parakeet-mlx loads the same converted tensors. Audio: espeak-ng speech, 1 min, 10 min, and 64
clips of 2-20 s cut from the 10 min (at batch 1, 8 and 32: workloads clips-b1, -b8, -b32).
Workload dense-30s: 30 s of speech through a second model (`DENSE_MODEL`, `build_tdt(speechlike=
True)` without the speech-rate bias), which emits `max_symbols` tokens on most frames, as a real
model can on noise: decoding then costs a prediction-network step per token.

Each system runs in its own worker process per workload (so peak memory is its own): it loads
the model, warms up on 5 s of audio, then runs the workload when the parent says so; the parent
interleaves the systems' repeats (rotating who goes first). The workers of a workload are
loaded together; one that dies (NeMo's full attention on the 10 min input needs more than a
24 GiB machine has) is reported as such in the table and the others go on. Timed: decoded 16 kHz float32
samples in memory to token ids (features, encoder, greedy decoding, and for ours and
parakeet-mlx also their text assembly), inputs sorted by length and batched in the same way
for every system. NeMo runs its preprocessor, encoder and `greedy_batch` TDT decoding directly
(what `transcribe` runs, without its data loader); on a GPU with its CUDA-graph decoder and,
for bfloat16, weights in bfloat16 (preprocessor in float32). parakeet-mlx cannot mask padding
in a batch, so it runs one input at a time, with its CLI's default 120 s chunks for the
10 min input (every other input is under 120 s); ours is asked for 4 min chunks on inputs
over 5 min (`chunk_duration=240`: its default runs them whole, with full attention up to its
attention budget). Its log-mel fails on bfloat16 samples with MLX 0.32 on Linux, so it is
given float32 samples and its features cast to the model's dtype.

Reported: wall time (median), real-time factor (audio seconds per second), peak RSS of the
worker while transcribing (sampled every 2 ms), peak device memory (GPU), each ratio against
NeMo, and the token ids against NeMo's. The floor line: the model's matmul FLOPs per audio
second and this machine's measured matmul rate, i.e. the fastest any implementation can be.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import (
    CACHE,
    SAMPLE_RATE,
    PeakRSS,
    agreement,
    build_tdt,
    clip_paths,
    failure,
    read_wav,
    receive,
    result_channel,
    send,
    speech,
    start_worker,
)

MODEL = CACHE / "tdt-0.6b-speechrate.nemo"
LONG_SECONDS = 300  # inputs over this are run in chunks (ours: 240 s pieces; parakeet-mlx: 120 s)
WORKLOADS = {  # name: (audio, batch size)
    "60s": ("1min", 1),
    "10min": ("10min", 1),
    "clips-b1": ("clips", 1),
    "clips-b8": ("clips", 8),  # the parakeet CLI's default batch size
    "clips-b32": ("clips", 32),
    "dense-30s": ("30s", 1),  # with DENSE_MODEL: max_symbols tokens on most frames
}
# The dense-emission workload's model: `build_tdt(speechlike=True)` without the speech-rate
# duration bias emits `max_symbols` tokens on most frames (as a real model can on noise), so
# greedy decoding costs a prediction-network step per token: ~125 tokens per audio second.
DENSE_MODEL = CACHE / "tdt-0.6b-speechlike.nemo"
SYSTEM_ENV = {"ours-refblas": {"MLX_CPU_BLAS": "off"}, "ours-sgemm": {"MLX_CPU_GEMV": "off"}}


# --------------------------------------------------------------------------- audio


def audio_set(name: str) -> list[np.ndarray]:
    paths = {
        "30s": lambda: [speech(0.5)],
        "1min": lambda: [speech(1)],
        "10min": lambda: [speech(10)],
        "clips": clip_paths,
    }[name]()
    return [read_wav(p).astype(np.float32) / 32768.0 for p in paths]


def batches(lengths: list[int], size: int) -> list[list[int]]:
    """Indices sorted by length, in batches of `size` (what every system is given)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


# --------------------------------------------------------------------------- workers


class Worker:
    """One system in one process: `setup` once, then `run` a list of inputs -> token ids."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def run(self, audio: list[np.ndarray], batch: int) -> list[list[int]]:
        raise NotImplementedError

    def sync(self) -> None:
        pass

    def device_peak(self) -> int:
        return 0

    def reset_device_peak(self) -> None:
        pass


class Ours(Worker):
    def __init__(self, args: argparse.Namespace, quantize: int | None) -> None:
        super().__init__(args)
        import mlx_cpu_runtime.auto  # noqa: F401  (before mlx)

        import mlx.core as mx

        import nemo_mlx_parakeet as parakeet

        self.mx = mx
        mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
        kwargs = {"quantize": quantize} if quantize else {}
        # The baseline converts the .nemo with its own converter: an earlier revision may not
        # read the model directories of this one.
        source, cache = (
            (args.model, CACHE / "models-baseline")
            if args.worker == "baseline"
            else (args.model_dir, CACHE / "models")
        )
        self.model = parakeet.load(
            source, dtype=args.dtype, verbose=False, cache_dir=cache, **kwargs
        )

    def run(self, audio: list[np.ndarray], batch: int) -> list[list[int]]:
        long = max(len(a) for a in audio) > LONG_SECONDS * SAMPLE_RATE
        results = self.model.transcribe(
            audio, batch_size=batch, chunk_duration=240.0 if long else None
        )
        return [[t.id for t in r.tokens] for r in results]

    def device_peak(self) -> int:
        return self.mx.get_peak_memory() if self.args.device == "gpu" else 0

    def reset_device_peak(self) -> None:
        self.mx.reset_peak_memory()


class NeMo(Worker):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        import torch
        from nemo.collections.asr.models import ASRModel

        self.torch = torch
        torch.set_num_threads(os.cpu_count() or 1)
        self.device = torch.device("cuda" if args.device == "gpu" else "cpu")
        model = ASRModel.restore_from(str(args.model), map_location=self.device).eval()
        self.dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
        if self.dtype != torch.float32:  # the preprocessor stays float32, as NeMo's AMP keeps it
            for part in (model.encoder, model.decoder, model.joint):
                part.to(self.dtype)
        self.model = model

    def run(self, audio: list[np.ndarray], batch: int) -> list[list[int]]:
        torch, model = self.torch, self.model
        ids: list[list[int]] = [[] for _ in audio]
        with torch.inference_mode():
            for group in batches([len(a) for a in audio], batch):
                longest = max(len(audio[i]) for i in group)
                signal = np.zeros((len(group), longest), dtype=np.float32)
                for row, i in enumerate(group):
                    signal[row, : len(audio[i])] = audio[i]
                signal = torch.from_numpy(signal).to(self.device)
                length = torch.tensor([len(audio[i]) for i in group], device=self.device)
                features, feature_len = model.preprocessor(input_signal=signal, length=length)
                encoded, encoded_len = model.encoder(
                    audio_signal=features.to(self.dtype), length=feature_len
                )
                hyps = model.decoding.rnnt_decoder_predictions_tensor(
                    encoder_output=encoded, encoded_lengths=encoded_len
                )
                for i, hyp in zip(group, hyps, strict=True):
                    ids[i] = [int(t) for t in hyp.y_sequence]
        return ids

    def sync(self) -> None:
        if self.args.device == "gpu":
            self.torch.cuda.synchronize()

    def device_peak(self) -> int:
        return self.torch.cuda.max_memory_allocated() if self.args.device == "gpu" else 0

    def reset_device_peak(self) -> None:
        if self.args.device == "gpu":
            self.torch.cuda.reset_peak_memory_stats()


class Port(Worker):
    """parakeet-mlx 0.7: `transcribe` with its audio loader swapped for our decoded samples."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        import mlx_cpu_runtime.auto  # noqa: F401  (the same BLAS and malloc set-up as ours)

        import mlx.core as mx
        import parakeet_mlx.parakeet
        from parakeet_mlx import from_pretrained

        self.mx = mx
        mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
        self.mx_dtype = {"float32": mx.float32, "bfloat16": mx.bfloat16}[args.dtype]
        self.model = from_pretrained(str(port_directory(args.model_dir)), dtype=self.mx_dtype)
        self.samples: dict[str, np.ndarray] = {}
        # Its log-mel fails on bfloat16 samples with MLX 0.32 on Linux (the STFT comes back
        # with twice the bins): compute it from float32 samples, then cast, as the model runs.
        logmel = parakeet_mlx.parakeet.get_logmel
        parakeet_mlx.parakeet.get_logmel = lambda x, config: logmel(
            x.astype(mx.float32), config
        ).astype(x.dtype)
        parakeet_mlx.parakeet.load_audio = lambda path, rate, dtype: mx.array(
            self.samples[str(path)]
        ).astype(dtype)

    def run(self, audio: list[np.ndarray], batch: int) -> list[list[int]]:
        ids = []
        for k, samples in enumerate(audio):  # one at a time: no padding masks in its batches
            self.samples[f"input-{k}"] = samples
            chunk = 120.0 if len(samples) > LONG_SECONDS * SAMPLE_RATE else None
            result = self.model.transcribe(f"input-{k}", dtype=self.mx_dtype, chunk_duration=chunk)
            ids.append([t.id for t in result.tokens])
        return ids

    def device_peak(self) -> int:
        return self.mx.get_peak_memory() if self.args.device == "gpu" else 0

    def reset_device_peak(self) -> None:
        self.mx.reset_peak_memory()


def port_directory(model_dir: Path) -> Path:
    """parakeet-mlx's directory layout (a plain NeMo config) over our converted tensors."""
    converted = json.loads((model_dir / "config.json").read_text())
    port = model_dir.parent / f"{model_dir.name}-parakeet-mlx"
    port.mkdir(exist_ok=True)
    config = converted["nemo_config"]
    # NVIDIA's published configs spell out the preprocessor; parakeet-mlx requires that.
    defaults = {"sample_rate": config.get("sample_rate", SAMPLE_RATE), "window": "hann",
                "normalize": "per_feature", "preemph": 0.97, "mag_power": 2.0}  # fmt: skip
    config["preprocessor"] = defaults | config["preprocessor"]
    encoder = {"pos_emb_max_len": 5000, "xscaling": True, "use_bias": True}  # NeMo's defaults
    config["encoder"] = encoder | config["encoder"]
    (port / "config.json").write_text(json.dumps(config))
    link = port / "model.safetensors"
    if not link.exists():
        link.symlink_to((model_dir / "model.safetensors").resolve())
    return port


def baseline_path(tree: Path | None) -> str:
    """PYTHONPATH putting the packages of `tree` (a checkout of an earlier revision, e.g. a
    `git worktree`) before the installed ones, so its worker runs that revision's code."""
    if tree is None:
        raise SystemExit("system 'baseline' needs --baseline TREE")
    roots = sorted((tree / "packages").glob("*/src")) + sorted((tree / "apps").glob("*/src"))
    if not roots:
        raise SystemExit(f"--baseline {tree}: no packages/*/src or apps/*/src there")
    return os.pathsep.join(str(r.resolve()) for r in roots)


def make_worker(args: argparse.Namespace) -> Worker:
    if args.worker == "nemo":
        return NeMo(args)
    if args.worker == "port":
        return Port(args)
    if args.worker in ("ours", "ours-refblas", "ours-sgemm", "baseline"):  # refblas: MLX's own BLAS
        return Ours(args, None)
    if args.worker.startswith("ours-q"):
        return Ours(args, int(args.worker.removeprefix("ours-q")))
    raise SystemExit(f"unknown system {args.worker!r}")


def serve(args: argparse.Namespace) -> None:
    """Worker loop: load, warm up, then one timed run per 'run' line on stdin."""
    started = time.perf_counter()
    channel = result_channel()  # results only; libraries' prints go to stderr
    worker = make_worker(args)
    audio_name, batch = WORKLOADS[args.workload]
    audio = audio_set(audio_name)
    worker.run([audio[0][: 5 * SAMPLE_RATE]], 1)  # warm-up: kernels, compiled graphs, caches
    worker.sync()
    send(channel, {"ready": time.perf_counter() - started})
    first = True
    for line in sys.stdin:
        if line.strip() != "run":
            break
        worker.reset_device_peak()
        with PeakRSS() as memory:
            start = time.perf_counter()
            ids = worker.run(audio, batch)
            worker.sync()
            wall = time.perf_counter() - start
        result = {"wall": wall, "rss": memory.peak, "device": worker.device_peak()}
        if first:
            result["ids"] = ids
            first = False
        send(channel, result)


# --------------------------------------------------------------------------- parent


@dataclass
class Row:
    system: str
    workload: str
    audio_seconds: float
    walls: list[float]
    rss: int
    device: int
    ids: list[list[int]]
    failed: str = ""  # why the worker stopped, e.g. killed for memory

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)


def run_workload(
    args: argparse.Namespace, workload: str, model: Path, model_dir: Path
) -> list[Row]:
    audio_name, batch = WORKLOADS[workload]
    seconds = sum(len(a) for a in audio_set(audio_name)) / SAMPLE_RATE
    systems = [s for s in args.systems if not (s == "port" and batch > 1)]
    procs = {}
    for system in systems:
        command = ["--worker", system, "--workload", workload, "--device", args.device,
                   "--dtype", args.dtype, "--model", str(model), "--model-dir", str(model_dir)]  # fmt: skip
        env = os.environ | SYSTEM_ENV.get(system, {})
        if system == "baseline":
            env = env | {"PYTHONPATH": baseline_path(args.baseline)}
        procs[system] = start_worker(__file__, *command, env=env)
    rows = {s: Row(s, workload, seconds, [], 0, 0, []) for s in systems}
    for system, proc in procs.items():
        if receive(proc) is None:
            rows[system].failed = "failed to start: " + failure(proc)
            print(f"  {workload} {system}: {rows[system].failed}", file=sys.stderr, flush=True)
    # Fewer repeats for the long input only: the clips' total is long too, but a single run
    # would time one-off costs (kernel compilation, cuDNN plans for new shapes).
    longest = max(len(a) for a in audio_set(audio_name)) / SAMPLE_RATE
    repeats = args.repeats if longest < LONG_SECONDS else max(1, args.repeats // 3)
    for r in range(repeats):
        for system in systems[r % len(systems) :] + systems[: r % len(systems)]:
            proc, row = procs[system], rows[system]
            if row.failed:
                continue
            proc.stdin.write("run\n")
            proc.stdin.flush()
            result = receive(proc)
            if result is None:  # the others go on; the table says what happened
                row.failed = failure(proc)
                print(f"  {workload} {system}: {row.failed}", file=sys.stderr, flush=True)
                continue
            row.walls.append(result["wall"])
            row.rss = max(row.rss, result["rss"])
            row.device = max(row.device, result["device"])
            if "ids" in result:
                row.ids = result["ids"]
            print(f"  {workload} {system}: {result['wall']:.2f} s", file=sys.stderr, flush=True)
    for system, proc in procs.items():
        if not rows[system].failed:
            proc.stdin.close()
        proc.wait()
    return list(rows.values())


def model_flops(seconds: float, layers: int = 24, d: int = 1024, ff: int = 4096, channels: int = 256,
                mels: int = 128, kernel: int = 9, pred: int = 640, vocab: int = 1030) -> float:  # fmt: skip
    """Multiply-add FLOPs (2 per MAC) of one pass over `seconds` of audio, matmuls only."""
    frames = int(seconds * 100)
    t = frames // 8
    sub = 2 * (frames / 2) * (mels / 2) * channels * 9  # 3x3 conv, 1 -> C channels
    sub += 2 * (frames / 4) * (mels / 4) * channels * (9 + channels)  # depthwise + pointwise
    sub += 2 * (frames / 8) * (mels / 8) * channels * (9 + channels)
    sub += 2 * t * channels * (mels // 8) * d  # flatten -> d_model
    layer = 8 * t * d * ff  # two feed-forwards, two matmuls each
    layer += 8 * t * d * d + 2 * (2 * t - 1) * d * d  # q, k, v, out; positions
    layer += 6 * t * t * d  # content scores, positional scores, weights @ values
    layer += 2 * t * d * (2 * d + kernel + d)  # conv module
    tokens = t // 3  # about a token every three frames
    decoder = 2 * t * d * pred + (t + tokens) * 2 * pred * vocab + tokens * 2 * 8 * pred * pred
    return sub + layers * layer + decoder


def matmul_rate(device: str, dtype: str) -> float:
    """Measured FLOP/s of a large square matmul through MLX on this device."""
    import mlx_cpu_runtime.auto  # noqa: F401

    import mlx.core as mx

    mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    n = 8192 if device == "gpu" else 2048
    kind = {"float32": mx.float32, "bfloat16": mx.bfloat16}[dtype]
    a, b = (mx.random.normal((n, n)).astype(kind) for _ in range(2))
    mx.eval(a @ b)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        mx.eval(a @ b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


def converted_model(model: Path, dense: bool = False) -> Path:
    if not model.exists():
        print(f"building {model} with NeMo (once) ...", file=sys.stderr)
        build_tdt(model, speechlike=True, speech_rate=not dense)
    from nemo_mlx_convert import resolve_model

    return resolve_model(model, cache_dir=CACHE / "models").path


def report(rows: list[Row], args: argparse.Namespace) -> None:
    rate = matmul_rate(args.device, args.dtype)
    per_second = model_flops(60.0) / 60.0
    print(f"\nend to end, parakeet-tdt-0.6b geometry, {args.dtype}, {args.device}; "
          f"{platform.machine()}, {os.cpu_count()} cores")  # fmt: skip
    print(f"floor: {per_second / 1e9:.1f} GFLOP per audio second (at 60 s); matmul rate "
          f"{rate / 1e9:.0f} GFLOP/s -> at best {rate / per_second:.0f}x real time")  # fmt: skip
    header = f"{'workload':10s} {'system':9s} {'audio s':>8s} {'wall s':>8s} {'x real time':>11s} {'vs NeMo':>8s} "
    header += (
        f"{'peak RSS GiB':>12s} {'vs NeMo':>8s} {'device GiB':>10s} {'token ids vs NeMo':>20s}"
    )
    print(header)
    for workload in dict.fromkeys(r.workload for r in rows):
        group = [r for r in rows if r.workload == workload]
        for row in group:
            if row.failed:
                print(f"{workload:10s} {row.system:9s} {row.audio_seconds:8.0f} {row.failed}")
        group = [r for r in group if not r.failed]
        nemo = next((r for r in group if r.system == "nemo"), None)
        for row in group:
            wall_ratio = f"{row.wall / nemo.wall:8.2f}" if nemo else f"{'-':>8s}"
            rss_ratio = f"{row.rss / nemo.rss:8.2f}" if nemo else f"{'-':>8s}"
            ids = "-" if nemo is None or row is nemo else agreement(row.ids, nemo.ids)
            print(f"{workload:10s} {row.system:9s} {row.audio_seconds:8.0f} {row.wall:8.2f} "
                  f"{row.audio_seconds / row.wall:11.1f} {wall_ratio} {row.rss / 2**30:12.2f} {rss_ratio} "
                  f"{row.device / 2**30:10.2f} {ids:>20s}")  # fmt: skip
        port = next((r for r in group if r.system == "port"), None)
        ours = next((r for r in group if r.system == "ours"), None)
        base = next((r for r in group if r.system == "baseline"), None)
        if base and ours:
            print(f"{'':10s} ours vs baseline: {ours.wall / base.wall:.2f}x its time, "
                  f"{ours.rss / base.rss:.2f}x its RSS; token ids {agreement(ours.ids, base.ids)}")  # fmt: skip
        if port and ours:
            print(f"{'':10s} ours vs parakeet-mlx: {port.wall / ours.wall:.2f}x faster; "
                  f"token ids {agreement(ours.ids, port.ids)}")  # fmt: skip
    one = [r for r in rows if r.workload == "60s" and not r.failed]
    ten = [r for r in rows if r.workload == "10min" and not r.failed]
    for short in one:
        for long in ten:
            if long.system == short.system:
                print(
                    f"linearity, {short.system}: 10 min took {long.wall / short.wall:.1f}x the 1 min"
                )
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--systems", nargs="+", default=["ours", "nemo", "port"],
                        help="ours, ours-q8, ours-q4, ours-refblas (MLX_CPU_BLAS=off), ours-sgemm "
                             "(MLX_CPU_GEMV=off: one-row products through sgemm), nemo, port, "
                             "baseline (ours at the revision checked out in --baseline)")  # fmt: skip
    parser.add_argument("--baseline", type=Path,
                        help="a checkout of an earlier revision (git worktree add DIR REV) to time as "
                             "system 'baseline': a regression check in one run")  # fmt: skip
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(args)
        return
    rows: list[Row] = []
    for workload in args.workloads:
        dense = workload.startswith("dense")
        model = DENSE_MODEL if dense else args.model
        rows += run_workload(args, workload, model, converted_model(model, dense))
    report(rows, args)


if __name__ == "__main__":
    main()
